"""Reading metrics: filters, full-text search, sorting, paging, streaming and facet counts."""

import contextlib
import functools
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode

import orjson
from sqlalchemy import (
    Column,
    ColumnElement,
    Dialect,
    Enum,
    FromClause,
    Select,
    String,
    TypeDecorator,
    and_,
    bindparam,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    type_coerce,
    union_all,
)
from sqlmodel import Session

from api import search
from api.db import as_bytes
from api.errors import InvalidInput, NotFound
from api.filters import spell, years
from api.filters import values as filters_values
from api.metrics.models import (
    FACET_COUNT,
    SUBJECT_COUNT,
    SUBJECTS_SEPARATOR,
    TALLIED,
    Metric,
    MetricSubject,
    ascii_lower,
)
from api.metrics.schemas import (
    FacetQuery,
    Facets,
    FacetValue,
    MetricFilters,
    MetricPublic,
    MetricQuery,
)
from api.pagination import cursor_values
from api.records import asof
from api.records.driver import Prepared
from api.vocabulary import Category

METRIC = Metric.__table__  # type: ignore[attr-defined]
SUBJECT = MetricSubject.__table__  # type: ignore[attr-defined]


_year = (0, 0.0)  # (the year, until when it holds), so that a cached answer asks no clock


def current_year() -> int:
    """The calendar year now (UTC): forecasts for earlier years have passed their horizon."""
    global _year
    year, until = _year
    now = time.time()
    if now >= until or now < until - 60:
        year = datetime.now(UTC).year
        _year = (year, now + 1.0)  # looked up again at most once a second
    return year


def _horizon_passed(table: Any = METRIC) -> ColumnElement[bool]:
    return and_(
        table.c.forecast == true(),
        table.c.year.is_not(None),
        table.c.year < current_year(),
    )


# The filters that ignore case, and so the facets whose values are counted together when they
# differ only in case (a facet value's link then finds what it counts).
FOLDED_FACETS = ("geography", "subject")


def _folded(value: str) -> ColumnElement[str]:
    """`value` with its case folded as the column it is compared with (`ascii_lower`)."""
    return ascii_lower(literal(value, String))


def _any_of(
    column: ColumnElement[Any], wanted: Sequence[Any], *, fold: bool = False
) -> ColumnElement[bool]:
    """`column` is one of the `wanted` values (None: has no value); `fold` ignores case."""
    present = [value for value in wanted if value is not None]
    options: list[ColumnElement[bool]] = []
    if present:
        if fold:
            options.append(ascii_lower(column).in_([_folded(str(value)) for value in present]))
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


def _tagged(wanted: Sequence[str | None], counting: bool = False) -> ColumnElement[bool]:
    """Tagged with any of the `wanted` subjects (case-insensitive); None: with no subject.

    A page looks each metric up in its order until it has enough (EXISTS); a count or a facet,
    which reads every match, takes the tagged metrics' ids at once (IN): at 1,000,000 metrics a
    facet of two subjects took 7.7 s of CPU with a lookup per metric, 1.1 s so."""
    # An alias, so that the subject facet's own join of metric_subject stays separate.
    tagged = SUBJECT.alias("tagged")
    present = [_folded(value) for value in wanted if value is not None]
    options: list[ColumnElement[bool]] = []
    if present and counting:
        ids = select(tagged.c.metric_id).where(ascii_lower(tagged.c.subject).in_(present))
        options.append(METRIC.c.id.in_(ids))
    elif present:
        options.append(
            exists().where(
                tagged.c.metric_id == METRIC.c.id, ascii_lower(tagged.c.subject).in_(present)
            )
        )
    if len(present) < len(wanted):
        options.append(~exists().where(tagged.c.metric_id == METRIC.c.id))
    return or_(*options)


# The filters the facet tally holds the columns of (api.metrics.tally); the others (search,
# sources, figures) are answered from the metrics themselves, and subjects from the tally by
# subject (see `_tally_of`).
_TALLIED_FILTERS = {*TALLIED, "horizon_passed"}


def _tally_of(filters: MetricFilters, *grouped: str) -> Any:
    """The tally whose sums count the live metrics `filters` select (grouped by the facets
    `grouped`), or None when only counting the metrics can: the facet tally for its own
    columns; the tally by subject for those and `subject`, as a facet or as a filter (a metric
    counts once under each of its subjects, and no metric has two subjects equal but for case
    (api.metrics.kind), so the sum over one subject is exact; several are summed over the lead
    rows, one per metric)."""
    used = {*_used_filters(filters), *grouped}
    if used <= _TALLIED_FILTERS:
        return FACET_COUNT
    if used <= _TALLIED_FILTERS | {"subject"}:
        return SUBJECT_COUNT
    return None


def _subject_in(table: Any, wanted: Sequence[str | None]) -> ColumnElement[bool]:
    """The tally by subject's rows of the metrics tagged with any of the `wanted` subjects
    (case-insensitive, as `_tagged` selects metrics; None: with none): one subject, its rows;
    several, the lead rows whose list holds any of them, so that a metric tagged with two
    counts once."""
    present = sorted({value for value in wanted if value is not None})
    options: list[ColumnElement[bool]] = []
    if len(present) == 1:
        options.append(ascii_lower(table.c.subject) == _folded(present[0]))
    elif present:
        listed, sep = ascii_lower(table.c.subjects), SUBJECTS_SEPARATOR
        holds = [
            listed.like(_folded(f"%{sep}{_like_escaped(value)}{sep}%"), escape="/")
            for value in present
        ]
        options.append(and_(table.c.lead, or_(*holds)))
    if None in wanted:
        options.append(table.c.subject.is_(None))
    return or_(*options)


def _like_escaped(value: str) -> str:
    """`value` matched literally in a LIKE pattern escaped by `/`."""
    return value.replace("/", "//").replace("%", "/%").replace("_", "/_")


_FILTERS = set(MetricFilters.model_fields) - {"as_of"}


def _used_filters(filters: MetricFilters) -> set[str]:
    return {name for name in _FILTERS if getattr(filters, name) is not None}


def _conditions(
    filters: MetricFilters,
    category: Category | None,
    table: Any = METRIC,
    counting: bool = False,
    broad: bool = False,
) -> list[ColumnElement[bool]]:
    """The WHERE terms of every filter but `q`, on `table` (the metrics, or the facet tally
    when the filters are all tallied ones). `broad`: the category terms are said to hold for
    most rows (SQLite's `likely`), for a page on SQLite: its planner, which has no statistics,
    took the index of category for a narrow one and sorted the fifth of the table a category
    holds (0.7-1.1 s at 1,000,000 metrics), where walking the index of the page's order and
    skipping the other categories' rows reads a few hundred."""
    conditions: list[ColumnElement[bool]] = []
    for name in ("category", "unit", "measure", "qualifier", "direction"):
        raw = getattr(filters, name)
        if raw is not None:
            term = _any_of(table.c[name], filters_values(raw))
            conditions.append(func.likely(term) if broad and name == "category" else term)
    for name in ("year", "base_year"):
        raw = getattr(filters, name)
        if raw is not None:
            conditions.append(_in_years(table.c[name], raw))
    if filters.forecast is not None:
        wanted = sorted({value == "true" for value in filters_values(filters.forecast)})
        conditions.append(_any_of(table.c.forecast, wanted))
    if category is not None:
        term = table.c.category == category
        conditions.append(func.likely(term) if broad else term)
    if filters.source is not None:
        conditions.append(_any_of(table.c.source_id, filters_values(filters.source)))
    if filters.geography is not None:
        conditions.append(_any_of(table.c.geography, filters_values(filters.geography), fold=True))
    if filters.subject is not None:
        tags = filters_values(filters.subject)
        conditions.append(
            _subject_in(table, tags) if table is SUBJECT_COUNT else _tagged(tags, counting)
        )
    if filters.horizon_passed is not None:
        passed = _horizon_passed(table)
        expired = set(filters_values(filters.horizon_passed))
        if expired == {"true"}:
            conditions.append(passed)
        elif expired == {"false"}:
            conditions.append(not_(passed))
    if filters.value_min is not None:
        conditions.append(table.c.value_high >= filters.value_min)
    if filters.value_max is not None:
        conditions.append(table.c.value_low <= filters.value_max)
    low, high = filters.value_min, filters.value_max
    if low is not None and high is not None and low > high:
        # Bounds the wrong way round are no range: none overlaps it (as a year range that
        # ends before it starts holds no year), not those that happen to span the gap.
        conditions.append(false())
    return conditions


def _selection(
    session: Session, filters: MetricFilters, category: Category | None, counting: bool = False
) -> tuple[FromClause, ColumnElement[bool], ColumnElement[Any] | None]:
    """(FROM clause, WHERE clause, relevance score or None) for `filters`; `counting`: for a
    count or facets, which read every match, rather than a page."""
    broad = not counting and session.get_bind().dialect.name == "sqlite"
    conditions = _conditions(filters, category, counting=counting, broad=broad)
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


def _only_searched(filters: MetricFilters, category: Category | None) -> bool:
    """Whether `q` is the only filter: the live search index alone then answers which metrics
    match (every document in it is a live metric's)."""
    return category is None and _used_filters(filters) == {"q"}


SortKey = tuple[ColumnElement[Any], bool, bool]  # (expression, descending, may be null)
# The columns a page reads, in the order `_item` takes them.
FIELDS = (
    "id", "category", "name", "description", "value", "value_low", "value_high", "qualifier",
    "unit", "measure", "direction", "year", "forecast", "base_year", "geography", "cited_as",
    "baseline_id", "source_id", "evidence_quote", "evidence_start", "evidence_end",
)  # fmt: skip
_POSITION = {name: index for index, name in enumerate(FIELDS)}
_EXACT_INTEGER_LIMIT = 2**53


def _sort_keys(query: MetricQuery, score: ColumnElement[Any] | None) -> list[SortKey]:
    """The total order of a collection: the requested fields (default id, or relevance with
    `q`), then id to break ties."""
    keys = query.sort_keys()
    if not keys and score is not None:
        return [(score, True, False), (METRIC.c.id, False, False)]
    keys = keys or [("id", False)]
    order: list[SortKey] = [
        (METRIC.c[name], descending, bool(METRIC.c[name].nullable)) for name, descending in keys
    ]
    if "id" not in dict(keys):
        order.append((METRIC.c.id, False, False))
    return order


def _order_by(keys: Sequence[SortKey], table: Any = None) -> list[ColumnElement[Any]]:
    """ORDER BY terms; nulls sort last, and NULLS LAST is said only for columns that may hold
    a null (on PostgreSQL it would keep a descending walk of a plain index from being used)."""
    terms = []
    for column, descending, nullable in keys:
        expression = column if table is None else table.c[column.name]
        term = expression.desc() if descending else expression.asc()
        terms.append(term.nulls_last() if nullable else term)
    return terms


def _after(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows that sort after the row whose sort values are `values` (keyset paging)."""
    if len(values) != len(keys):
        raise InvalidInput("query", "after", "this cursor is for another sort order")
    bound = [_bound(column, value, nullable) for (column, _d, nullable), value in zip(
        keys, values, strict=True)]  # fmt: skip
    alternatives = []
    for index, (column, descending, nullable) in enumerate(keys):
        value = bound[index]
        if value is None:
            continue  # nulls sort last: nothing after a null at this level but other nulls
        beyond: ColumnElement[bool] = column < value if descending else column > value
        if nullable:
            beyond = or_(beyond, column.is_(None))
        same = [
            c.is_(None) if v is None else c == v
            for (c, _d, _n), v in zip(keys[:index], bound[:index], strict=True)
        ]
        alternatives.append(and_(*same, beyond))
    return or_(false(), *alternatives)


def _bound(column: ColumnElement[Any], value: Any, nullable: bool) -> Any:
    """A cursor value as a bound parameter of its column's type; a value of another type
    (not a token this API gave) is a 422, never a database error."""
    if value is None:
        if nullable:
            return None
    else:
        # A text column's value is a str, whatever Python type its column type names
        # (SQLModel's AutoString, a decorated String, names `object`: every value is one).
        stored = column.type.impl if isinstance(column.type, TypeDecorator) else column.type
        python_type = str if isinstance(stored, String) else column.type.python_type
        expected: tuple[type, ...] = (
            (int, float) if python_type is float else (str,) if issubclass(python_type, str)
            else (python_type,)
        )  # fmt: skip
        right = isinstance(value, expected) and (python_type is bool) == isinstance(value, bool)
        if python_type is int and right:  # the integer columns (year, base_year): 32 bits
            right = -(2**31) <= value < 2**31
        if right and not (isinstance(value, str) and ("\x00" in value or len(value) > 1000)):
            return bindparam(None, value, type_=column.type)
    raise InvalidInput("query", "after", "not a cursor this API gave (use the `next` link)")


def _figure(value: float | None) -> float | int | None:
    """As the API writes figures: integral values without a ".0" (api.schemas.Figure)."""
    if value is not None and value.is_integer() and abs(value) < _EXACT_INTEGER_LIMIT:
        return int(value)
    return value


def _item(r: Sequence[Any], subjects: list[str], year: int) -> dict[str, Any]:
    """A metric row as its public JSON object (MetricPublic's fields, in its order)."""
    forecast, when = r[12], r[11]
    return {
        "id": r[0],
        "category": r[1],
        "name": r[2],
        "description": r[3],
        "value": _figure(r[4]),
        "value_low": _figure(r[5]),
        "value_high": _figure(r[6]),
        "qualifier": r[7],
        "unit": r[8],
        "measure": r[9],
        "direction": r[10],
        "year": when,
        "forecast": forecast,
        "horizon_passed": bool(forecast and when is not None and when < year),
        "base_year": r[13],
        "geography": r[14],
        "subjects": subjects,
        "cited_as": r[15],
        "baseline_id": r[16],
        "source_id": r[17],
        "evidence": {"quote": r[18], "start": r[19], "end": r[20]},
    }


_FIGURES = (_POSITION["value"], _POSITION["value_low"], _POSITION["value_high"])
_NO_HORIZON = -(2**63)  # a year before every year: `horizon_passed` false
# The migration that last rendered every metric's document. A change to the items' JSON comes
# with a migration that renders them again, and names it here: a page's tag, made from its
# metrics' record versions (`_Layout.identity`), then changes with the bytes.
RENDERED_BY = "0017"
_NOT_PASSED, _PASSED = b'"horizon_passed":false', b'"horizon_passed":true'


def document(row: Mapping[str, Any]) -> str:
    """A metric's live row (its columns as the record store writes them) as the JSON object a
    page shows (`_item`, as orjson writes it), with `horizon_passed` false: `_dated` sets it
    when the row is read (Metric.document)."""
    values = [row[name] for name in FIELDS]
    for index in _FIGURES:  # a record may hold an integral figure as an int
        if values[index] is not None:
            values[index] = float(values[index])
    subjects = orjson.loads(row["subjects_json"])
    return orjson.dumps(_item(values, subjects, _NO_HORIZON)).decode()


def _dated(document: bytes, forecast: Any, year: int | None, now: int) -> bytes:
    """`document` as read in the year `now`: a forecast for an earlier year has passed its
    horizon. The first `"horizon_passed":false` in it is the field: the keys before it are
    fixed, and in a JSON string a quote is always escaped."""
    if forecast and year is not None and year < now:
        return document.replace(_NOT_PASSED, _PASSED, 1)
    return document


def _plain_column(column: Any) -> Any:
    """Enumerated columns read as the plain strings they hold (their values are valid by the
    table's CHECK): no enum member made per value."""
    if isinstance(column.type, Enum):
        return type_coerce(column, String)
    return column


_ROW_COLUMNS = [_plain_column(METRIC.c[name]) for name in FIELDS]


def _plain_value(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


@dataclass
class Rows:
    """One read of a collection: the items as JSON texts (UTF-8), in order, and where it
    ended."""

    documents: list[bytes]
    more: bool  # whether rows follow the last one
    last: list[Any] | None  # the sort values of the last item (for `after=`), when keyed
    # What the documents are, when read live (`_Layout.identity`): a page's ETag is made from
    # it rather than from its bytes (hashing a page of 50 cost a tenth of a cold read's CPU).
    identity: bytes | None = None

    @property
    def items(self) -> list[dict[str, Any]]:
        """The items as dicts (MetricPublic's fields)."""
        return [orjson.loads(text) for text in self.documents]


@dataclass(frozen=True)
class _Layout:
    """The columns a page reads, and how its rows become items. Live: each metric's `document`
    (as bytes: no str is made of it, then encoded again) and what `_dated` and a cursor need;
    at a version (the history keeps no document): the public fields, then the subjects' JSON
    array."""

    statement: Select[Any]
    positions: dict[str, int]  # where each sort field's value is in a row
    live: bool

    def documents(self, rows: Sequence[Sequence[Any]], now: int) -> list[bytes]:
        if self.live:
            return [_dated(row[0], row[1], row[2], now) for row in rows]
        loads = orjson.loads
        return [orjson.dumps(_item(row, loads(row[21]), now)) for row in rows]

    def identity(self, rows: Sequence[Sequence[Any]], now: int) -> bytes | None:
        """What the live documents of `rows` are, in the year `now`: each metric's id and
        record version (raised by every write of the row, never reused), then the year and
        the migration that rendered the documents (`RENDERED_BY`); None at a version."""
        if not self.live:
            return None
        at = self.positions["id"]
        rows_of = "\x1e".join([f"{row[at]}\x1f{row[3]}" for row in rows])
        return f"{rows_of}\x1d{now}\x1d{RENDERED_BY}".encode()


@functools.cache
def _layout(live: bool, dialect: str = "", sorted_by: tuple[str, ...] = ()) -> _Layout:
    """The layout of a page read live (on `dialect`) or at a version, sorted by the fields
    `sorted_by` (built once for each: a request adds only its FROM, WHERE, ORDER BY and
    LIMIT)."""
    if not live:
        return _Layout(select(*_ROW_COLUMNS, METRIC.c.subjects_json), _POSITION, False)
    names = ("id", *[name for name in sorted_by if name != "id"])
    columns = [as_bytes(METRIC.c.document, dialect), METRIC.c.forecast, METRIC.c.year]
    columns += [METRIC.c.version, *[_plain_column(METRIC.c[name]) for name in names]]
    return _Layout(select(*columns), {name: 4 + i for i, name in enumerate(names)}, True)


def _layout_of(session: Session, keys: Sequence[SortKey]) -> _Layout:
    sorted_by = tuple(column.name for column, _d, _n in keys if isinstance(column, Column))
    live = asof.read_version(session) is None
    return _layout(live, session.get_bind().dialect.name if live else "", sorted_by)


def keyed_page(
    session: Session,
    query: MetricQuery,
    category: Category | None,
    base: Select[Any],
    *,
    after: Sequence[Any] | None,
    limit: int,
    offset: int = 0,
    selection: tuple[FromClause, ColumnElement[bool], Any] | None = None,
) -> tuple[Select[Any], list[SortKey]]:
    """`base` (its columns) over up to `limit + 1` metrics that `query` selects (`selection`,
    if made already), in its sort order (not relevance), after the row `after` names (keyset)
    and `offset` more; and that order."""
    from_clause, where, _score = selection or _selection(session, query, category)
    keys = _sort_keys(query, None)
    if after is not None:
        where = and_(where, _after(keys, after))
    statement = (
        base.select_from(from_clause)
        .where(where)
        .order_by(*_order_by(keys))
        .limit(limit + 1)
        .offset(offset)
    )
    return statement, keys


def walked_page(
    session: Session,
    query: MetricQuery,
    category: Category | None,
    base: Select[Any],
    *,
    after: Sequence[Any] | None,
    limit: int,
    offset: int = 0,
    selection: tuple[FromClause, ColumnElement[bool], Any] | None = None,
    years: Sequence[int] | None = None,
) -> tuple[list[Select[Any]], list[SortKey]]:
    """`keyed_page`'s rows as parts, each walking an index in the sort order: read one after
    the other until `offset + limit + 1` rows (`read_walks`), they give the same rows.

    A part is a range of one sort field, the fields before it equal to the cursor's: a cursor
    as an OR of such ranges made both databases read and sort every row after it (1-5 s at
    1,000,000 metrics). A nullable field's rows without a value are a part of their own,
    ordered by the fields after it: the rows with one then walk an index of the field in
    either direction (NULLS LAST on PostgreSQL, or SQLite's nulls-first index order, would
    keep a descending or an ascending walk from serving them). The parts come in the sort
    order (rows equal to the cursor on more fields first; at each field, its values, then its
    nulls), so that most pages read the first part only.

    `years` (`_years_matched`, for a page sorted by year first): the years that hold a match;
    the rows with a year are then read a year at a time, each year a part in id order."""
    from_clause, where, _score = selection or _selection(session, query, category)
    keys = _sort_keys(query, None)
    parts: list[tuple[ColumnElement[bool], list[SortKey], bool]] = []  # (where, order, valued)
    lead, descending, nullable = keys[0]
    if after is None:
        if nullable:
            with_value = [(lead, descending, False), *keys[1:]]
            parts.append((lead.is_not(None), with_value, lead is METRIC.c.value))
            parts.append((lead.is_(None), keys[1:], False))
    else:
        parts = _parts_after(keys, after)
    if not parts:
        parts.append((true(), keys, False))
    if years is not None:
        if after is not None and after[0] is not None:  # the years past the cursor's
            years = [year for year in years if (year < after[0] if descending else year > after[0])]
        parts = _parts_by_year(parts, years, descending) or [(false(), keys, False)]
    valued = _valued(query)
    several = len(parts) > 1
    sort_values = [key for key, _d, _n in keys if key is not METRIC.c.id]
    # Each part's ids first, then their rows: a part sorts the rows that tie on a field by id
    # reading only an index that holds both (thousands tie on a round figure), not whole rows.
    chosen = [
        select(METRIC.c.id, *(sort_values if several and offset else ()))
        .select_from(from_clause)
        .where(and_(where, condition, *(valued if has_value else ())))
        .order_by(*_order_by(order))
        .limit(offset + limit + 1 if several else limit + 1)
        .offset(0 if several else offset)
        for condition, order, has_value in parts
    ]
    if several and offset:
        # Past an offset, which part the page starts in is not known: the parts' ids (and
        # sort values) in order, numbered by part, and the page cut from them, in one query
        # (read part by part, every row before the offset would come to Python).
        numbered = union_all(*[
            select(literal(number).label("part"), *part.subquery().c)
            for number, part in enumerate(chosen)
        ]).subquery("parts")  # fmt: skip
        page = (
            select(numbered.c.id)
            .order_by(numbered.c.part, *_order_by(keys, numbered))
            .limit(limit + 1)
            .offset(offset)
        )
        return [base.where(METRIC.c.id.in_(page)).order_by(*_order_by(keys))], keys
    walks = [
        base.where(METRIC.c.id.in_(ids)).order_by(*_order_by(order))
        for ids, (_condition, order, _v) in zip(chosen, parts, strict=True)
    ]
    return walks, keys


def _years_matched(
    session: Session, query: MetricQuery, category: Category | None
) -> tuple[int, ...] | None:
    """For a live page sorted by year, then id, and filtered on tallied fields (other than
    category alone, whose pages walk an index of category and year: migration 0015), the
    years that hold a match, from the tally (a few thousand rows); else None.

    Walking the index of year skips the rows the filters refuse, and where the matches sit
    in some years only, it passes every row of the years between: at 1,000,000 metrics,
    `geography=global&sort=-year` passed the 100,000 rows of the latest year, which held no
    match (145-236 ms)."""
    keys = _sort_keys(query, None)
    if (
        len(keys) != 2  # year, then id
        or keys[0][0] is not METRIC.c.year
        or query.q is not None
        or not _used_filters(query) - {"category"}
    ):
        return None
    tally = _tally_of(query)
    if tally is None or asof.read_version(session) is not None:
        return None
    where = and_(tally.c.year.is_not(None), *_conditions(query, category, tally))
    summed = func.sum(tally.c.metrics)
    found = session.execute(
        select(tally.c.year).where(where).group_by(tally.c.year).having(summed > 0)
    ).scalars()
    return tuple(sorted(found))


def _parts_by_year(
    parts: list[tuple[ColumnElement[bool], list[SortKey], bool]],
    years: Sequence[int],
    descending: bool,
) -> list[tuple[ColumnElement[bool], list[SortKey], bool]]:
    """`parts` with each range of years (a part ordered by year first) read as one part per
    year of `years` in it, in the sort order: each an equality on year, in id order."""
    ordered = sorted(years, reverse=descending)
    split: list[tuple[ColumnElement[bool], list[SortKey], bool]] = []
    for condition, order, valued in parts:
        if order and order[0][0] is METRIC.c.year:
            split += [
                (and_(condition, METRIC.c.year == year), order[1:], valued) for year in ordered
            ]
        else:
            split.append((condition, order, valued))
    return split


def _parts_after(
    keys: list[SortKey], after: Sequence[Any]
) -> list[tuple[ColumnElement[bool], list[SortKey], bool]]:
    """The parts of the rows after the row whose sort values are `after`, in the sort order:
    (where, order, whether every row of it has a `value`)."""
    if len(after) != len(keys):
        raise InvalidInput("query", "after", "this cursor is for another sort order")
    bound = [_bound(column, value, nullable) for (column, _d, nullable), value in zip(
        keys, after, strict=True)]  # fmt: skip
    parts: list[tuple[ColumnElement[bool], list[SortKey], bool]] = []
    for index in reversed(range(len(keys))):
        column, descending, nullable = keys[index]
        same = [
            c.is_(None) if v is None else c == v
            for (c, _d, _n), v in zip(keys[:index], bound[:index], strict=True)
        ]
        has_value = any(
            c is METRIC.c.value and v is not None
            for (c, _d, _n), v in zip(keys[:index], bound[:index], strict=True)
        )
        rest = keys[index + 1 :]
        value = bound[index]
        if value is None:
            continue  # after a null: only other nulls, which the next fields order
        beyond = column < value if descending else column > value
        with_value = [(column, descending, False), *rest]
        parts.append((and_(*same, beyond), with_value, has_value or column is METRIC.c.value))
        if nullable:
            parts.append((and_(*same, column.is_(None)), rest, has_value))
    return parts


def read_walks(
    session: Session,
    walks: Sequence[Select[Any]],
    prepared: Sequence[Prepared | None],
    *,
    limit: int,
    offset: int,
) -> Sequence[Any]:
    """The rows of `walked_page`'s parts, read in order until there are enough: up to
    `limit + 1` after `offset`."""
    if len(walks) == 1:
        ready = prepared[0] if prepared else None
        return ready.rows(session) if ready else session.execute(walks[0]).all()
    wanted = offset + limit + 1
    rows: list[Any] = []
    for index, walk in enumerate(walks):
        ready = prepared[index] if prepared else None
        rows += ready.rows(session) if ready else session.execute(walk).all()
        if len(rows) >= wanted:
            break
    return rows[offset:wanted]


def _valued(filters: MetricFilters) -> list[ColumnElement[bool]]:
    """What the figure filters say of a metric that has a `value` (a point figure: its
    `value_low` and `value_high` equal it, by the table's CHECK): a range of `value`."""
    terms = []
    if filters.value_min is not None:
        terms.append(METRIC.c.value >= filters.value_min)
    if filters.value_max is not None:
        terms.append(METRIC.c.value <= filters.value_max)
    return terms


def ranked_ids(
    session: Session, query: MetricQuery, category: Category | None, *, rows: int, offset: int
) -> list[str]:
    """The ids of up to `rows` metrics `query` (with `q`, no `sort`) selects after `offset`,
    in relevance order (ties by id)."""
    from_clause, where, score = _selection(session, query, category)
    if score is None:  # nothing can match
        return []
    return _ranked_ids(session, query, category, (from_clause, where, score), rows=rows,
                       offset=offset)  # fmt: skip


def read_page(
    session: Session,
    query: MetricQuery,
    category: Category | None,
    *,
    after: Sequence[Any] | None,
    limit: int,
    offset: int = 0,
) -> Rows:
    """Up to `limit` metrics in the collection's order, after the row `after` names (keyset)
    and `offset` more: one query, the subjects joined to the page."""
    dialect = session.get_bind().dialect.name
    if query.q is None:  # built only when its statement is not kept (`_keyed_statement`)
        selection = None
        ranked = False
    else:
        selection = _selection(session, query, category)
        ranked = selection[2] is not None and not query.sort_keys()
    keys = _sort_keys(query, selection[2] if selection else None)
    if after is not None and ranked:
        raise InvalidInput(
            "query", "after", "results ranked by relevance page by offset; give `sort`"
        )
    # The page's rows (each with its document, or the fields and subjects to make it): one
    # query, or for a page ranked by relevance, the page's ids in order first (ranking reads
    # no metric row), then their rows.
    layout = _layout_of(session, () if ranked else keys)
    from_clause, where, score = selection or (METRIC, true(), None)
    if ranked and score is not None:
        ids = _ranked_ids(
            session, query, category, (from_clause, where, score), rows=limit + 1, offset=offset
        )
        statement = layout.statement.where(METRIC.c.id.in_(ids))
        position = {metric_id: index for index, metric_id in enumerate(ids)}
        at = layout.positions["id"]
        rows: Sequence[Any] = sorted(
            session.execute(statement).all(), key=lambda row: position[row[at]]
        )
    else:
        walks, keys, prepared = _keyed_statement(
            session, query, category, dialect, layout, selection, after, limit, offset
        )
        rows = read_walks(session, walks, prepared, limit=limit, offset=offset)
    now = current_year()
    documents = layout.documents(rows[:limit], now)
    more = len(rows) > limit
    last = None
    if documents and not ranked:
        row = rows[len(documents) - 1]
        last = [_plain_value(row[layout.positions[column.name]]) for column, _d, _n in keys]
    return Rows(documents, more, last, layout.identity(rows[:limit], now))


V = TypeVar("V")


class _Recent(Generic[V]):
    """The values of the `most` keys used most recently. Pages are read in the thread pool:
    a key another thread has just evicted is simply not found."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.values: OrderedDict[tuple[Any, ...], V] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> V | None:
        value = self.values.get(key)
        if value is not None:
            with contextlib.suppress(KeyError):  # evicted meanwhile
                self.values.move_to_end(key)
        return value

    def keep(self, key: tuple[Any, ...], value: V) -> V:
        self.values[key] = value
        while len(self.values) > self.most:
            with contextlib.suppress(KeyError):  # another thread evicted it first
                self.values.popitem(last=False)
        return value


# Page statements by everything they are built from (without `q`, whose statement depends on
# the version read at): a statement built once keeps its SQLAlchemy cache key, which would
# otherwise be computed again over every column of the page for each request.
_STATEMENTS: _Recent[tuple[list[Select[Any]], list[SortKey], list[Prepared | None]]] = _Recent(256)
_NOT_BUILT_FROM = {"format", "count"}


def _keyed_statement(
    session: Session,
    query: MetricQuery,
    category: Category | None,
    dialect: str,
    layout: _Layout,
    selection: tuple[FromClause, ColumnElement[bool], Any] | None,
    after: Sequence[Any] | None,
    limit: int,
    offset: int,
) -> tuple[list[Select[Any]], list[SortKey], list[Prepared | None]]:
    """`walked_page`'s statements for a page, reused while the same page is asked for, and
    when kept, prepared for the driver (api.records.driver). A search sorted by a field
    sorts its matches: walking an index probes the search for each row it passes (2.1 s at
    1,000,000 metrics on PostgreSQL for a word whose matches hold only low figures, where
    sorting them took 0.8 s); its statement depends on the version read at, so is not kept."""
    if query.q is not None:
        statement, keys = keyed_page(
            session, query, category, layout.statement, after=after, limit=limit,
            offset=offset, selection=selection,
        )  # fmt: skip
        return [statement], keys, []
    built_from = query.model_dump(exclude=_NOT_BUILT_FROM)
    # The data's, so part of the key; pages by offset keep one walk (parts of each year cut
    # at an offset read the offset's rows in each: 0.4-2.9 s at offset 20,000 of 1,000,000).
    years = _years_matched(session, query, category) if offset == 0 else None
    key: tuple[Any, ...] = (dialect, layout.live, category, current_year(), limit, offset, years)
    key += (*sorted(built_from.items()),)
    key += (None,) if after is None else tuple((type(v), v) for v in after)
    found = _STATEMENTS.get(key)
    if found is not None:
        return found
    walks, keys = walked_page(
        session, query, category, layout.statement, after=after, limit=limit,
        offset=offset, selection=selection, years=years,
    )  # fmt: skip
    prepared = [_prepared(walk, session) for walk in walks]
    return _STATEMENTS.keep(key, (walks, keys, prepared))


def _prepared(statement: Select[Any], session: Session) -> Prepared | None:
    try:
        return Prepared(statement, session.get_bind().dialect)
    except ValueError:  # a filter's list of values: run through SQLAlchemy
        return None


# The best-ranked ids of a search by (dataset version, version read at, filters): the pages of
# a search after its first, and the same search with another page size, rank nothing again
# while the dataset stands still (ranking scores every match: 145,000 for a word in one metric
# in seven, at 1,000,000 metrics).
_RANKED: _Recent[list[str]] = _Recent(32)
RANKED_ROWS = 1000


def _ranked_ids(
    session: Session,
    query: MetricQuery,
    category: Category | None,
    selection: tuple[FromClause, ColumnElement[bool], ColumnElement[Any]],
    *,
    rows: int,
    offset: int,
) -> list[str]:
    """The ids of up to `rows` matches after `offset`, in relevance order (ties by id)."""
    version = session.info.get("dataset_version")
    if version is None or offset + rows > RANKED_ROWS:
        return _rank(session, query, category, selection, rows=rows, offset=offset)
    filters = query.model_dump(exclude=_NOT_FILTERS)
    key = (
        session.info.get(asof.REVISION), version, asof.read_version(session), current_year(),
        category, *sorted(filters.items()),
    )  # fmt: skip
    best = _RANKED.get(key)
    if best is None:
        best = _RANKED.keep(
            key, _rank(session, query, category, selection, rows=RANKED_ROWS, offset=0)
        )
    return best[offset : offset + rows]


def _rank(
    session: Session,
    query: MetricQuery,
    category: Category | None,
    selection: tuple[FromClause, ColumnElement[bool], ColumnElement[Any]],
    *,
    rows: int,
    offset: int,
) -> list[str]:
    """The ids of a ranked page; a ranking from the live index also counts every match (in
    the same pass on PostgreSQL), which is kept as the search's total."""
    page = _ranked_page(session, query, category, selection, limit=rows, offset=offset)
    if "matches" not in page.c:
        return list(session.execute(select(page.c.id)).scalars())
    found = session.execute(select(page.c.id, page.c.matches)).all()
    if found:
        _keep_count(session, query, category, found[0][1])
    return [row[0] for row in found]


def _ranked_page(
    session: Session,
    query: MetricQuery,
    category: Category | None,
    selection: tuple[FromClause, ColumnElement[bool], ColumnElement[Any]],
    *,
    limit: int,
    offset: int,
) -> Any:
    """(id, score) of the page's matches in relevance order (ties by id): the page's metric
    rows are then read for these keys only, not for every match. A live search with no other
    filter ranks the live index's matches without reading the metrics (and counts them,
    `matches`)."""
    if query.q is not None and _only_searched(query, category):
        found = search.ranked(session, "metric", query.q, rows=limit, offset=offset)
        if found is not None:
            return found
    from_clause, where, score = selection
    return (
        select(METRIC.c.id.label("id"), score.label("score"))
        .select_from(from_clause)
        .where(where)
        .order_by(score.desc(), METRIC.c.id)
        .limit(limit)
        .offset(offset)
        .subquery("page")
    )


def count_metrics(session: Session, query: MetricFilters, category: Category | None) -> int:
    """How many metrics match the filters."""
    if query.q is not None and _only_searched(query, category):
        found = search.count(session, "metric", query.q)
        if found is not None:
            return found
    tally = _tally_of(query)
    if tally is not None and asof.read_version(session) is None:
        return _tally_count(session, query, category, tally)
    from_clause, where, _score = _selection(session, query, category, counting=True)
    return int(
        session.execute(select(func.count()).select_from(from_clause).where(where)).scalar_one()
    )


def _tally_count(
    session: Session, filters: MetricFilters, category: Category | None, tally: Any
) -> int:
    """How many live metrics match filters that `tally` holds: its few rows per combination
    of values summed, rather than the metrics counted (a page's `total` at 1,000,000 metrics
    read a fifth of an index for one filter, all of it for none)."""
    summed = func.coalesce(func.sum(tally.c.metrics), 0)
    where = and_(true(), *_conditions(filters, category, tally))
    return int(session.execute(select(summed).where(where)).scalar_one())


def sort_tag(query: MetricQuery) -> str:
    """The sort order a cursor is for, as its first value: `-value,id`. A cursor names an
    item by its sort values, which another order would read as another item."""
    keys = _sort_keys(query, None)
    return ",".join(f"{'-' if descending else ''}{column.name}" for column, descending, _n in keys)


def _cursor_after(query: MetricQuery) -> list[Any] | None:
    """The sort values of the item `query.after` names, for the query's own sort order."""
    if query.after is None:
        return None
    tag, *values = cursor_values(query.after)
    if tag != sort_tag(query):
        raise InvalidInput("query", "after", "this cursor is for another sort order")
    # A number no sort field holds (an integer past 2**53, which no database column binds) is
    # not a cursor this API gave: a 422, not the driver's overflow.
    if any(type(v) is int and abs(v) >= _EXACT_INTEGER_LIMIT for v in values):
        raise InvalidInput("query", "after", "not a cursor this API gave (use the `next` link)")
    return values


def list_metrics(
    session: Session, *, query: MetricQuery, category: Category | None = None
) -> tuple[Rows, int | None]:
    """One page of metrics matching `query` (within `category` if given), and the total
    (None with `count=none`). A first page that holds every match is its own count."""
    after = _cursor_after(query)
    rows = read_page(session, query, category, after=after, limit=query.limit, offset=query.offset)
    total: int | None = None
    if query.count == "exact":
        if after is None and not rows.more and (rows.documents or query.offset == 0):
            total = query.offset + len(rows.documents)
        else:
            total = _counted(session, query, category)
    return rows, total


def public_page(
    session: Session, *, query: MetricQuery, category: Category | None = None
) -> tuple[list[MetricPublic], int]:
    """A page as models (for the explorer's templates), and its exact total."""
    rows, total = list_metrics(
        session, query=query.model_copy(update={"count": "exact"}), category=category
    )
    return [MetricPublic.model_validate_json(text) for text in rows.documents], total or 0


def stream_metrics(
    session: Session, *, query: MetricQuery, category: Category | None = None
) -> Iterator[MetricPublic]:
    """Every metric `query` selects, in the collection's order, read a page at a time."""
    after: Sequence[Any] | None = None
    offset = 0
    while True:
        rows = read_page(session, query, category, after=after, limit=STREAM_ROWS, offset=offset)
        yield from (MetricPublic.model_validate_json(text) for text in rows.documents)
        if not rows.more:
            return
        if rows.last is not None:
            after = rows.last
        else:  # ranked by relevance: paged by offset
            offset += len(rows.documents)


STREAM_ROWS = 2000


# Totals by (dataset version, filters): the pages after the first, and the same filters
# sorted another way, count nothing again while the dataset stands still.
_COUNTS: _Recent[int] = _Recent(1024)
_NOT_FILTERS = {"limit", "offset", "format", "sort", "after", "count"}


def _count_key(
    session: Session, query: MetricQuery, category: Category | None
) -> tuple[Any, ...] | None:
    version = session.info.get("dataset_version")
    if version is None:  # not a request's read session: no version to key on
        return None
    filters = query.model_dump(exclude=_NOT_FILTERS)
    revision = session.info.get(asof.REVISION)
    return (revision, version, current_year(), category, *sorted(filters.items()))


def _keep_count(
    session: Session, query: MetricQuery, category: Category | None, total: int
) -> None:
    key = _count_key(session, query, category)
    if key is not None:
        _COUNTS.keep(key, total)


def _counted(session: Session, query: MetricQuery, category: Category | None) -> int:
    key = _count_key(session, query, category)
    total = None if key is None else _COUNTS.get(key)
    if total is None:
        total = count_metrics(session, query, category)
        _keep_count(session, query, category, total)
    return total


def get_metric(session: Session, *, metric_id: str) -> MetricPublic:
    """The metric `metric_id`; NotFound when there is none."""
    return MetricPublic.model_validate_json(metric_item(session, metric_id=metric_id)[0])


def _item_select(layout: _Layout) -> Select[Any]:
    """One metric's row as `layout` reads it, then its record version: a read binds only the
    id (`metric_id`)."""
    return layout.statement.add_columns(METRIC.c.version).where(
        METRIC.c.id == bindparam("metric_id")
    )


_ITEMS: dict[tuple[str, str, bool], Prepared] = {}


def _item_prepared(dialect: Dialect, layout: _Layout) -> Prepared:
    """`_item_select(layout)` prepared for the driver, once per dialect and layout."""
    key = (dialect.name, dialect.driver, layout.live)
    if key not in _ITEMS:
        _ITEMS[key] = Prepared(_item_select(layout), dialect)
    return _ITEMS[key]


def metric_item(session: Session, *, metric_id: str) -> tuple[bytes, int]:
    """The metric `metric_id` as its public JSON text (UTF-8), and its record version (for
    its ETag); NotFound when there is none."""
    layout = _layout_of(session, ())
    rows = _item_prepared(session.get_bind().dialect, layout).rows(session, metric_id=metric_id)
    if not rows:
        raise NotFound(f"There is no metric {metric_id!r}.")
    return layout.documents(rows, current_year())[0], rows[0][-1]


def _facet_column(name: str, table: Any = METRIC) -> tuple[ColumnElement[Any], bool]:
    """(the grouped expression, whether it needs the subject join)."""
    if name == "subject":
        return (table.c.subject, False) if table is SUBJECT_COUNT else (SUBJECT.c.subject, True)
    if name == "source":
        return table.c.source_id, False
    if name == "horizon_passed":
        return case((_horizon_passed(table), literal(True)), else_=literal(False)), False
    return table.c[name], False


def facets(
    session: Session, *, query: FacetQuery, path: str, params: Sequence[tuple[str, str]]
) -> Facets:
    """Counts per value of each facet in `query.facet`. `total` counts the metrics every filter
    selects; each facet counts over the metrics the other filters select (its own filter left
    out, so that a panel can offer the values not chosen yet), and each value links to `path`
    (the collection) with `params` (the request's filters), the facet's own filter set to that
    value: a link whose total is the count.

    On the live data, a facet whose column and other filters the tally holds is summed from it
    (a few rows per combination of values, not one per metric); the others, and reads at a
    version, count the metrics."""
    live = asof.read_version(session) is None
    total = _facet_total(session, query, _tally_of(query) if live else None)
    counts: dict[str, list[FacetValue]] = {}
    for name in dict.fromkeys(query.facet.split(",")):
        others = query.model_copy(update={name: None})
        rows = _facet_rows(session, others, name, _tally_of(others, name) if live else None)
        kept = [(key, value) for key, value in params if key not in (name, "facet")]
        values = [
            FacetValue(
                value=_plain(value), count=count, href=_link(path, kept, name, _plain(value))
            )
            for value, count in rows
        ]
        counts[name] = sorted(values, key=lambda v: (-v.count, v.value is None, str(v.value)))
    return Facets(total=total, facets=counts)


def _facet_total(session: Session, query: FacetQuery, tally: Any) -> int:
    if tally is not None:
        return _tally_count(session, query, None, tally)
    from_clause, where, _score = _selection(session, query, None, counting=True)
    return int(
        session.execute(select(func.count()).select_from(from_clause).where(where)).scalar_one()
    )


def _facet_rows(
    session: Session, filters: FacetQuery, name: str, tally: Any
) -> list[tuple[Any, int]]:
    """(value, count) of facet `name` over the metrics `filters` select, summed from `tally`
    if one is given. Values of a facet whose filter ignores case (FOLDED_FACETS) are counted
    together when the database folds them alike, under the spelling most of them have."""
    if tally is not None:
        column, _subjects = _facet_column(name, tally)
        where = and_(true(), *_conditions(filters, None, tally))
        counted: Any = func.sum(tally.c.metrics)
        source: Any = tally
    else:
        from_clause, where, _score = _selection(session, filters, None, counting=True)
        column, needs_subjects = _facet_column(name)
        source = (
            from_clause.outerjoin(SUBJECT, SUBJECT.c.metric_id == METRIC.c.id)
            if needs_subjects
            else from_clause
        )
        counted = func.count()
    folded = ascii_lower(column) if name in FOLDED_FACETS else column
    rows = session.execute(
        select(folded.label("folded"), column.label("value"), counted.label("count"))
        .select_from(source)
        .where(where)
        .group_by(folded, column)
        .having(counted > 0)
    ).all()
    spellings: dict[Any, list[tuple[Any, int]]] = {}
    for key, value, count in rows:
        spellings.setdefault(key, []).append((value, int(count)))
    return [
        (min(found, key=lambda spelling: (-spelling[1], str(spelling[0])))[0],
         sum(count for _value, count in found))
        for found in spellings.values()
    ]  # fmt: skip


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
