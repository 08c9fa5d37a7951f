"""Reading sources and their verbatim text."""

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, false, func, select, true
from sqlmodel import Session, col

from api import search
from api.errors import NotFound
from api.metrics.models import Metric
from api.sources.models import Source
from api.sources.schemas import SourcePublic, SourceQuery

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


def _public(row: Any, at: str) -> SourcePublic:
    return SourcePublic(**row, text_url=f"/v1/sources/{row['id']}/text{at}")


def _at(session: Session) -> str:
    """The query string that reads a source's text at the moment this read answers at: the
    request's own `as_of`, if it has one (its text then is the one its evidence indexes)."""
    request = session.info.get("request")
    if request is None or session.info.get("as_of") is None:
        return ""
    return "?" + urlencode({"as_of": request.query_params["as_of"]})


def _where(session: Session, query: SourceQuery) -> ColumnElement[bool]:
    if query.q is None:
        return true()
    found = search.matches(session, "source", query.q)
    return false() if found is None else col(Source.id).in_(select(found.c.id))


def list_sources(session: Session, *, query: SourceQuery) -> tuple[list[SourcePublic], int]:
    """One page of the sources `query` selects, ordered by id, and the total."""
    where = _where(session, query)
    total = session.execute(select(func.count()).select_from(Source).where(where)).scalar_one()
    rows = session.execute(
        select(*_COLUMNS).where(where).order_by(Source.id).limit(query.limit).offset(query.offset)
    ).mappings()
    at = _at(session)
    return [_public(row, at) for row in rows], total


def stream_sources(session: Session, query: SourceQuery) -> Iterator[SourcePublic]:
    """Every source `query` selects, ordered by id."""
    rows = session.execute(
        select(*_COLUMNS).where(_where(session, query)).order_by(Source.id)
    ).mappings()
    at = _at(session)
    yield from (_public(row, at) for row in rows)


def get_source(session: Session, *, source_id: str) -> SourcePublic:
    """The source `source_id`; NotFound when there is none."""
    row = session.execute(select(*_COLUMNS).where(col(Source.id) == source_id)).mappings().first()
    if row is None:
        raise NotFound(f"There is no source {source_id!r}.")
    return _public(row, _at(session))


def get_source_text(session: Session, *, source_id: str) -> str:
    """The verbatim text of source `source_id`."""
    text: str | None = session.execute(
        select(col(Source.text)).where(col(Source.id) == source_id)
    ).scalar_one_or_none()
    if text is None:
        raise NotFound(f"There is no source {source_id!r}.")
    return text
