"""Reading sources and their verbatim text."""

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from api.errors import NotFound
from api.metrics.models import Metric
from api.pagination import PageQuery
from api.sources.models import Source
from api.sources.schemas import SourcePublic

_METRIC_COUNT = (
    select(func.count())
    .where(Metric.source_id == Source.id)  # type: ignore[arg-type]
    .correlate(Source)
    .scalar_subquery()
    .label("metric_count")
)
_COLUMNS: list[Any] = [
    Source.id,
    Source.title,
    Source.publisher,
    Source.author,
    Source.published_on,
    Source.kind,
    Source.url,
    _METRIC_COUNT,
]


def _public(row: Any) -> SourcePublic:
    return SourcePublic(**row, text_url=f"/v1/sources/{row['id']}/text")


def list_sources(session: Session, *, query: PageQuery) -> tuple[list[SourcePublic], int]:
    """One page of sources ordered by id, and the total."""
    total = session.execute(select(func.count()).select_from(Source)).scalar_one()
    rows = session.execute(
        select(*_COLUMNS).order_by(Source.id).limit(query.limit).offset(query.offset)
    ).mappings()
    return [_public(row) for row in rows], total


def stream_sources(session: Session) -> Iterator[SourcePublic]:
    """Every source, ordered by id."""
    rows = session.execute(select(*_COLUMNS).order_by(Source.id)).mappings()
    yield from (_public(row) for row in rows)


def get_source(session: Session, *, source_id: str) -> SourcePublic:
    """The source `source_id`; NotFound when there is none."""
    row = session.execute(select(*_COLUMNS).where(col(Source.id) == source_id)).mappings().first()
    if row is None:
        raise NotFound(f"There is no source {source_id!r}.")
    return _public(row)


def get_source_text(session: Session, *, source_id: str) -> str:
    """The verbatim text of source `source_id`."""
    text: str | None = session.execute(
        select(col(Source.text)).where(col(Source.id) == source_id)
    ).scalar_one_or_none()
    if text is None:
        raise NotFound(f"There is no source {source_id!r}.")
    return text
