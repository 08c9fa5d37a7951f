"""Reading metrics: filtering, search, sorting, paging."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, true
from sqlmodel import Session

from api.errors import NotFound
from api.metrics.models import Metric, MetricSubject
from api.metrics.schemas import MetricPublic, MetricQuery
from api.schemas import Evidence
from api.vocabulary import Category

_LIKE_ESCAPE = "\\"


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"


def _conditions(query: MetricQuery) -> list[ColumnElement[bool]]:
    table = Metric.__table__.c  # type: ignore[attr-defined]
    subjects = MetricSubject.__table__.c  # type: ignore[attr-defined]
    conditions: list[ColumnElement[bool]] = []
    for name in ("category", "unit", "measure", "year", "forecast"):
        value = getattr(query, name)
        if value is not None:
            conditions.append(table[name] == value)
    if query.source is not None:
        conditions.append(table.source_id == query.source)
    if query.geography is not None:
        conditions.append(func.lower(table.geography) == query.geography.lower())
    if query.subject is not None:
        conditions.append(
            exists().where(
                subjects.metric_id == table.id,
                func.lower(subjects.subject) == query.subject.lower(),
            )
        )
    for term in (query.q or "").split():
        pattern = _like_pattern(term)
        conditions.append(
            or_(
                *(
                    func.lower(column).like(pattern, escape=_LIKE_ESCAPE)
                    for column in (table.name, table.description, table.evidence_quote)
                ),
                exists().where(
                    subjects.metric_id == table.id,
                    func.lower(subjects.subject).like(pattern, escape=_LIKE_ESCAPE),
                ),
            )
        )
    return conditions


def _subjects_by_metric(session: Session, metric_ids: Sequence[str]) -> dict[str, list[str]]:
    subjects = MetricSubject.__table__.c  # type: ignore[attr-defined]
    rows = session.execute(
        select(subjects.metric_id, subjects.subject)
        .where(subjects.metric_id.in_(list(metric_ids)))
        .order_by(subjects.metric_id, subjects.position)
    )
    result: dict[str, list[str]] = {}
    for metric_id, subject in rows:
        result.setdefault(metric_id, []).append(subject)
    return result


def _public(row: Any, subjects: list[str]) -> MetricPublic:
    return MetricPublic(
        **{name: row[name] for name in MetricPublic.model_fields if name in row},
        subjects=subjects,
        evidence=Evidence(
            quote=row["evidence_quote"], start=row["evidence_start"], end=row["evidence_end"]
        ),
    )


def list_metrics(
    session: Session, *, query: MetricQuery, category: Category | None = None
) -> tuple[list[MetricPublic], int]:
    """One page of metrics matching `query` (within `category` if given), and the total."""
    table = Metric.__table__  # type: ignore[attr-defined]
    conditions = _conditions(query)
    if category is not None:
        conditions.append(table.c.category == category)
    where = and_(true(), *conditions)
    total = session.execute(select(func.count()).select_from(table).where(where)).scalar_one()
    order = [
        (table.c[name].desc() if descending else table.c[name].asc()).nulls_last()
        for name, descending in query.sort_keys()
    ]
    if "id" not in dict(query.sort_keys()):
        order.append(table.c.id.asc())
    rows = (
        session.execute(
            select(table).where(where).order_by(*order).limit(query.limit).offset(query.offset)
        )
        .mappings()
        .all()
    )
    subjects = _subjects_by_metric(session, [row["id"] for row in rows])
    return [_public(row, subjects.get(row["id"], [])) for row in rows], total


def get_metric(session: Session, *, metric_id: str) -> MetricPublic:
    """The metric `metric_id`; NotFound when there is none."""
    table = Metric.__table__  # type: ignore[attr-defined]
    row = session.execute(select(table).where(table.c.id == metric_id)).mappings().first()
    if row is None:
        raise NotFound(f"There is no metric {metric_id!r}.")
    return _public(row, _subjects_by_metric(session, [metric_id]).get(metric_id, []))
