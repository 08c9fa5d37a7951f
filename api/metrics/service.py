"""Reading metrics: filters, full-text search, sorting, paging, streaming and facet counts."""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlmodel import Session

from api import search
from api.errors import NotFound
from api.filters import spell, years
from api.filters import values as filters_values
from api.metrics.models import Metric, MetricSubject
from api.metrics.schemas import (
    FacetQuery,
    Facets,
    FacetValue,
    MetricFilters,
    MetricPublic,
    MetricQuery,
)
from api.schemas import Evidence
from api.vocabulary import Category

METRIC = Metric.__table__  # type: ignore[attr-defined]
SUBJECT = MetricSubject.__table__  # type: ignore[attr-defined]
STREAM_BATCH = 500


def current_year() -> int:
    """The calendar year now (UTC): forecasts for earlier years have passed their horizon."""
    return datetime.now(UTC).year


def _horizon_passed() -> ColumnElement[bool]:
    return and_(
        METRIC.c.forecast == true(),
        METRIC.c.year.is_not(None),
        METRIC.c.year < current_year(),
    )


def _any_of(
    column: ColumnElement[Any], wanted: Sequence[Any], *, fold: bool = False
) -> ColumnElement[bool]:
    """`column` is one of the `wanted` values (None: has no value); `fold` ignores case."""
    present = [value for value in wanted if value is not None]
    options: list[ColumnElement[bool]] = []
    if present:
        if fold:
            options.append(func.lower(column).in_([str(value).lower() for value in present]))
        elif all(isinstance(value, str) for value in present):
            options.append(column.in_(present))
        else:
            options.extend(column == value for value in present)
    if len(present) < len(wanted):
        options.append(column.is_(None))
    return or_(*options)


def _in_years(column: ColumnElement[Any], raw: str) -> ColumnElement[bool]:
    options: list[ColumnElement[bool]] = []
    for span in years(raw):
        if span is None:
            options.append(column.is_(None))
            continue
        bounds = []
        if span.low is not None:
            bounds.append(column >= span.low)
        if span.high is not None:
            bounds.append(column <= span.high)
        options.append(and_(*bounds))
    return or_(*options)


def _tagged(wanted: Sequence[str | None]) -> ColumnElement[bool]:
    """Tagged with any of the `wanted` subjects (case-insensitive); None: with no subject."""
    # An alias, so that the subject facet's own join of metric_subject stays separate.
    tagged = SUBJECT.alias("tagged")
    present = [value.lower() for value in wanted if value is not None]
    options: list[ColumnElement[bool]] = []
    if present:
        options.append(
            exists().where(
                tagged.c.metric_id == METRIC.c.id, func.lower(tagged.c.subject).in_(present)
            )
        )
    if len(present) < len(wanted):
        options.append(~exists().where(tagged.c.metric_id == METRIC.c.id))
    return or_(*options)


def _selection(
    session: Session, filters: MetricFilters, category: Category | None
) -> tuple[FromClause, ColumnElement[bool], ColumnElement[Any] | None]:
    """(FROM clause, WHERE clause, relevance score or None) for `filters`."""
    conditions: list[ColumnElement[bool]] = []
    for name in ("category", "unit", "measure", "qualifier", "direction"):
        raw = getattr(filters, name)
        if raw is not None:
            conditions.append(_any_of(METRIC.c[name], filters_values(raw)))
    for name in ("year", "base_year"):
        raw = getattr(filters, name)
        if raw is not None:
            conditions.append(_in_years(METRIC.c[name], raw))
    if filters.forecast is not None:
        wanted = sorted({value == "true" for value in filters_values(filters.forecast)})
        conditions.append(_any_of(METRIC.c.forecast, wanted))
    if category is not None:
        conditions.append(METRIC.c.category == category)
    if filters.source is not None:
        conditions.append(_any_of(METRIC.c.source_id, filters_values(filters.source)))
    if filters.geography is not None:
        conditions.append(_any_of(METRIC.c.geography, filters_values(filters.geography), fold=True))
    if filters.subject is not None:
        conditions.append(_tagged(filters_values(filters.subject)))
    if filters.horizon_passed is not None:
        passed = _horizon_passed()
        expired = set(filters_values(filters.horizon_passed))
        if expired == {"true"}:
            conditions.append(passed)
        elif expired == {"false"}:
            conditions.append(not_(passed))
    if filters.value_min is not None:
        conditions.append(METRIC.c.value_high >= filters.value_min)
    if filters.value_max is not None:
        conditions.append(METRIC.c.value_low <= filters.value_max)
    from_clause: FromClause = METRIC
    score = None
    if filters.q is not None:
        matches = search.matches(session, "metric", filters.q)
        if matches is None:
            conditions.append(false())
        else:
            from_clause = METRIC.join(matches, matches.c.id == METRIC.c.id)
            score = matches.c.score
    return from_clause, and_(true(), *conditions), score


def _ordered(
    query: MetricQuery, statement: Select[Any], score: ColumnElement[Any] | None
) -> Select[Any]:
    keys = query.sort_keys()
    if not keys and score is not None:
        return statement.order_by(score.desc(), METRIC.c.id)
    order = [
        (METRIC.c[name].desc() if descending else METRIC.c[name].asc()).nulls_last()
        for name, descending in keys or [("id", False)]
    ]
    if "id" not in dict(keys):
        order.append(METRIC.c.id.asc())
    return statement.order_by(*order)


def _subjects(session: Session, metric_ids: Sequence[str]) -> dict[str, list[str]]:
    rows = session.execute(
        select(SUBJECT.c.metric_id, SUBJECT.c.subject)
        .where(SUBJECT.c.metric_id.in_(list(metric_ids)))
        .order_by(SUBJECT.c.metric_id, SUBJECT.c.position)
    )
    result: dict[str, list[str]] = {}
    for metric_id, subject in rows:
        result.setdefault(metric_id, []).append(subject)
    return result


def _public(rows: Sequence[Any], session: Session) -> list[MetricPublic]:
    subjects = _subjects(session, [row["id"] for row in rows])
    year = current_year()
    return [
        MetricPublic(
            **{name: row[name] for name in MetricPublic.model_fields if name in row},
            horizon_passed=bool(row["forecast"] and row["year"] is not None and row["year"] < year),
            subjects=subjects.get(row["id"], []),
            evidence=Evidence(
                quote=row["evidence_quote"], start=row["evidence_start"], end=row["evidence_end"]
            ),
        )
        for row in rows
    ]


def list_metrics(
    session: Session, *, query: MetricQuery, category: Category | None = None
) -> tuple[list[MetricPublic], int]:
    """One page of metrics matching `query` (within `category` if given), and the total."""
    from_clause, where, score = _selection(session, query, category)
    total = session.execute(select(func.count()).select_from(from_clause).where(where)).scalar_one()
    statement = select(METRIC).select_from(from_clause).where(where)
    rows = (
        session.execute(_ordered(query, statement, score).limit(query.limit).offset(query.offset))
        .mappings()
        .all()
    )
    return _public(rows, session), total


def stream_metrics(
    session: Session, *, query: MetricQuery, category: Category | None = None
) -> Iterator[MetricPublic]:
    """Every metric matching `query`, in order, fetched in batches (no paging)."""
    from_clause, where, score = _selection(session, query, category)
    statement = _ordered(query, select(METRIC).select_from(from_clause).where(where), score)
    result = session.execute(statement.execution_options(yield_per=STREAM_BATCH)).mappings()
    for rows in result.partitions():
        yield from _public(rows, session)


def get_metric(session: Session, *, metric_id: str) -> MetricPublic:
    """The metric `metric_id`; NotFound when there is none."""
    row = session.execute(select(METRIC).where(METRIC.c.id == metric_id)).mappings().first()
    if row is None:
        raise NotFound(f"There is no metric {metric_id!r}.")
    return _public([row], session)[0]


def _facet_column(name: str) -> tuple[ColumnElement[Any], bool]:
    """(the grouped expression, whether it needs the subject join)."""
    if name == "subject":
        return SUBJECT.c.subject, True
    if name == "source":
        return METRIC.c.source_id, False
    if name == "horizon_passed":
        return case((_horizon_passed(), literal(True)), else_=literal(False)), False
    return METRIC.c[name], False


def facets(
    session: Session, *, query: FacetQuery, path: str, params: Sequence[tuple[str, str]]
) -> Facets:
    """Counts per value of each facet in `query.facet`. `total` counts the metrics every filter
    selects; each facet counts over the metrics the other filters select (its own filter left
    out, so that a panel can offer the values not chosen yet), and each value links to `path`
    (the collection) with `params` (the request's filters), the facet's own filter set to that
    value: a link whose total is the count."""
    from_clause, where, _score = _selection(session, query, None)
    total = session.execute(select(func.count()).select_from(from_clause).where(where)).scalar_one()
    counts: dict[str, list[FacetValue]] = {}
    for name in dict.fromkeys(query.facet.split(",")):
        others = query.model_copy(update={name: None})
        from_clause, where, _score = _selection(session, others, None)
        column, needs_subjects = _facet_column(name)
        source = (
            from_clause.outerjoin(SUBJECT, SUBJECT.c.metric_id == METRIC.c.id)
            if needs_subjects
            else from_clause
        )
        rows = session.execute(
            select(column.label("value"), func.count().label("count"))
            .select_from(source)
            .where(where)
            .group_by(column)
        ).all()
        kept = [(key, value) for key, value in params if key not in (name, "facet")]
        values = [
            FacetValue(
                value=_plain(value), count=count, href=_link(path, kept, name, _plain(value))
            )
            for value, count in rows
        ]
        counts[name] = sorted(values, key=lambda v: (-v.count, v.value is None, str(v.value)))
    return Facets(total=total, facets=counts)


def _link(path: str, kept: list[tuple[str, str]], name: str, value: object) -> str:
    query = urlencode([*kept, (name, spell(value))], safe=",", quote_via=quote)
    return f"{path}?{query}"


def _plain(value: Any) -> str | int | bool | None:
    """Enum members (StrEnum) as their plain string values."""
    if isinstance(value, StrEnum):
        return value.value
    if value is None or isinstance(value, str | bool | int):
        return value
    return str(value)
