"""Metric exports written by the database: each row one NDJSON line or one CSV record built in
SQL, so that Python handles one string per row, byte for byte what api.exports writes from the
dicts of `service.read_page` (`_item`).

Texts are escaped by the database (SQLite's `json_object`, PostgreSQL's `to_json`: the same
escapes as orjson; CSV cells as api.exports `_cell` writes them, in `CASE` expressions).
Figures are written as the API writes them: an integral value below 2**53 as an integer
("30", not "30.0"); any other by the shortest text that reads back as the same float. SQLite
has no such conversion, so it calls back into Python (orjson's text, `api.schemas.figure_text`,
as api.exports writes both), for fractional figures only. PostgreSQL's own float output is that
shortest text, written as Python and orjson write it between 1e-4 and 1e15 (plain
decimals); a chunk holding a fractional figure outside that range (the API accepts down to
the smallest float) is written by Python instead, from `service.read_page`.

In id order (the whole collection, filtered or not, ascending or descending) the database
also joins a read's lines into one value (`_joined_chunk`): Python then takes one string of
bytes per read, not one row per metric.
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    LargeBinary,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    or_,
)
from sqlalchemy import select as sql_select
from sqlmodel import Session

from api.cells import FORMULA_STARTS
from api.db import Bpchar
from api.exports import Chunk, Format
from api.metrics import service
from api.metrics.schemas import MetricPublic, MetricQuery
from api.records import asof
from api.schemas import figure_text
from api.vocabulary import Category

METRIC = service.METRIC
YEAR = "cdmo_current_year"  # the bound parameter of `horizon_passed`
_INTEGRAL_BELOW = 2.0**53  # as service._figure: larger integral floats keep their float text
_PLAIN_LOW, _PLAIN_HIGH = 1e-4, 1e15  # where every writer writes a float as a plain decimal
# SQLite calls these back for a fractional figure: the figure's text in each format.
_NUMBER = {Format.ndjson: "cdmo_json_number", Format.csv: "cdmo_csv_number"}
_NUMBER_TEXT: dict[Format, Callable[[float], str]] = {
    Format.ndjson: lambda value: orjson.dumps(value).decode(),
    Format.csv: figure_text,
}
# Enumerated columns hold only the vocabulary's plain words (CHECK constraints): no escapes.
_ENUMERATED = {"category", "qualifier", "unit", "measure", "direction"}
# Ids are slugs (lower-case letters and digits joined by single hyphens, api.records.fields.Slug,
# checked on every write, by the API and by the loaders): no escapes, no quoting, and no formula
# start either.
_SLUGS = {"id", "baseline_id", "source_id"}
# The fields in the order of MetricPublic, as `service._item` writes them.
_ORDER = tuple(MetricPublic.model_fields)
_FIGURES = ("value", "value_low", "value_high")
_INTEGERS = ("year", "base_year", "evidence_start", "evidence_end")


def _sql_text(text: str) -> ColumnElement[str]:
    """`text` as an SQL string literal (no bound parameter: the statement is a constant)."""
    return literal_column("'" + text.replace("'", "''") + "'", String)


def _sql_number(number: float) -> ColumnElement[Any]:
    """`number` as an SQL literal."""
    return literal_column(repr(number), Float() if isinstance(number, float) else Integer())


def _concat(*parts: ColumnElement[Any] | str) -> ColumnElement[str]:
    """`a || b || ...` (every part must be non-null: `||` with a null is null)."""
    clauses = [_sql_text(part) if isinstance(part, str) else part for part in parts]
    return functools.reduce(lambda joined, part: joined.concat(part), clauses)


class _Sql:
    """The database's own functions for writing a value as text."""

    def __init__(self, dialect: str, fmt: Format) -> None:
        self.postgres = dialect == "postgresql"
        self.fmt = fmt
        self.null = "null" if fmt is Format.ndjson else ""
        # SQLite writes a JSON object in one go (`json_object`), given values rather than
        # texts: its texts escaped, its numbers as they are, and values marked as JSON (by
        # `json()` or a JSON function) as they are.
        self.values = not self.postgres and fmt is Format.ndjson

    def text(self, column: ColumnElement[Any]) -> ColumnElement[str]:
        """A text column (or null) as a JSON string or CSV cell."""
        if self.values:
            return column
        if self.fmt is Format.ndjson:
            if self.postgres:
                return func.coalesce(cast(func.to_json(column), String), _sql_text("null"))
            return func.json_quote(column)
        return self._cell(column)

    def word(self, column: ColumnElement[Any]) -> ColumnElement[str]:
        """A column of vocabulary words or slugs (or null), which need no escaping."""
        if self.values:
            return column
        if self.fmt is Format.ndjson:
            return case((column.is_(None), _sql_text("null")), else_=_concat('"', column, '"'))
        return func.coalesce(column, _sql_text(""))

    def integer(self, column: ColumnElement[Any]) -> ColumnElement[str]:
        if self.values:
            return column
        return func.coalesce(cast(column, String), _sql_text(self.null))

    def flag(self, condition: ColumnElement[bool]) -> ColumnElement[str]:
        if self.values:
            return case(
                (condition, func.json(_sql_text("true"))), else_=func.json(_sql_text("false"))
            )
        return case((condition, _sql_text("true")), else_=_sql_text("false"))

    def figure(self, column: ColumnElement[Any]) -> ColumnElement[str]:
        """A figure as `service._figure` and the format write it."""
        if self.postgres:
            whole = and_(
                func.abs(column) < _sql_number(_INTEGRAL_BELOW), column == func.trunc(column)
            )
            fractional: ColumnElement[Any] = cast(column, String)
        else:
            whole = and_(
                func.abs(column) < _sql_number(_INTEGRAL_BELOW),
                column == cast(column, BigInteger()),
            )
            fractional = getattr(func, _NUMBER[self.fmt])(column)
            if self.values:
                return case(
                    (whole, cast(column, BigInteger())), else_=func.json(fractional)
                )  # a null stays null
        return case(
            (column.is_(None), _sql_text(self.null)),
            (whole, cast(cast(column, BigInteger()), String)),
            else_=fractional,
        )

    def subjects(self) -> ColumnElement[str]:
        """A metric's subjects in order, as the row keeps them (`Metric.subjects_json`,
        `subjects_csv`, written with the subjects): a JSON array, or the CSV cell."""
        if self.fmt is Format.csv:
            cell: ColumnElement[str] = METRIC.c.subjects_csv
            return cell
        array: ColumnElement[str] = METRIC.c.subjects_json
        if self.values:  # marked as JSON, which json_object writes as it is
            return func.json(array)
        return array

    def _cell(self, value: ColumnElement[Any]) -> ColumnElement[str]:
        """A CSV cell as api.exports writes text: a leading `'` when a spreadsheet would run
        it as a formula, quoted (quotes doubled) when it holds a comma, quote or line break."""
        position = func.strpos if self.postgres else func.instr
        character = func.chr if self.postgres else func.char
        line_feed, carriage_return = character(_sql_number(10)), character(_sql_number(13))
        special = [_sql_text(","), _sql_text('"'), line_feed, carriage_return]
        quoted = or_(*(position(value, mark) > _sql_number(0) for mark in special))
        starts = func.substr(value, _sql_number(1), _sql_number(1)).in_(
            [_sql_text(start) for start in FORMULA_STARTS]
        )
        prefix = case((starts, _sql_text("'")), else_=_sql_text(""))
        return case(
            (value.is_(None), _sql_text("")),
            (
                quoted,
                _concat('"', prefix, func.replace(value, _sql_text('"'), _sql_text('""')), '"'),
            ),
            (starts, _concat("'", value)),
            else_=value,
        )


def _fields(sql: _Sql) -> dict[str, ColumnElement[str] | list[tuple[str, ColumnElement[str]]]]:
    """Each field of MetricPublic written as text (evidence: its three subfields)."""
    c = METRIC.c
    year = bindparam(YEAR, type_=c.year.type)
    written: dict[str, Any] = {}
    for name in _ORDER:
        if name in _FIGURES:
            written[name] = sql.figure(c[name])
        elif name in _INTEGERS:
            written[name] = sql.integer(c[name])
        elif name in _ENUMERATED:
            written[name] = sql.word(service._plain_column(c[name]))
        elif name in _SLUGS:
            written[name] = sql.word(c[name])
        elif name == "forecast":
            written[name] = sql.flag(c.forecast == True)  # noqa: E712 (SQL, not Python)
        elif name == "horizon_passed":
            written[name] = sql.flag(
                and_(c.forecast == True, c.year.is_not(None), c.year < year)  # noqa: E712
            )
        elif name == "subjects":
            written[name] = sql.subjects()
        elif name == "evidence":
            written[name] = [
                ("quote", sql.text(c.evidence_quote)),
                ("start", sql.integer(c.evidence_start)),
                ("end", sql.integer(c.evidence_end)),
            ]
        else:
            written[name] = sql.text(c[name])
    return written


@functools.cache
def line(dialect: str, fmt: Format) -> ColumnElement[str]:
    """One metric as one NDJSON line or CSV record, its line break included."""
    sql = _Sql(dialect, fmt)
    if sql.values:
        pairs: list[ColumnElement[Any]] = []
        for name, value in _fields(sql).items():
            if isinstance(value, list):
                value = func.json_object(
                    *[x for sub, inner in value for x in (_sql_text(sub), inner)]
                )
            pairs += [_sql_text(name), value]
        return _bytes(_concat(func.json_object(*pairs), "\n"))
    parts: list[ColumnElement[str] | str] = []
    for name, value in _fields(sql).items():
        if fmt is Format.ndjson:
            parts.append(("{" if not parts else ",") + f'"{name}":')
            if isinstance(value, list):
                for index, (sub, inner) in enumerate(value):
                    parts += [("{" if index == 0 else ",") + f'"{sub}":', inner]
                parts.append("}")
            else:
                parts.append(value)
        else:
            for inner in [inner for _sub, inner in value] if isinstance(value, list) else [value]:
                if parts:
                    parts.append(",")
                parts.append(inner)
    parts.append("}\n" if fmt is Format.ndjson else "\r\n")
    if sql.postgres:
        return _concat(*parts).label("line")
    # SQLite's `||` makes a new string of each pair (a CSV record: 45 of them); `printf`
    # writes the record in one go (3.3 µs a row less at 100,000 metrics).
    template = "".join(
        "%s" if not isinstance(part, str) else part.replace("%", "%%") for part in parts
    )
    return _bytes(
        func.printf(_sql_text(template), *[part for part in parts if not isinstance(part, str)])
    )


def _bytes(line: ColumnElement[str]) -> ColumnElement[Any]:
    """SQLite's text as the bytes it holds (UTF-8): no str made of each line, and none
    encoded again."""
    return cast(line, LargeBinary()).label("line")


@functools.cache
def _unusual() -> ColumnElement[Any]:
    """Whether a row has a fractional figure that PostgreSQL would not write as a plain
    decimal (1 when it does, else null)."""
    odd = [
        and_(
            METRIC.c[name] != func.trunc(METRIC.c[name]),
            or_(
                func.abs(METRIC.c[name]) >= _sql_number(_PLAIN_HIGH),
                func.abs(METRIC.c[name]) < _sql_number(_PLAIN_LOW),
            ),
        )
        for name in _FIGURES
    ]
    return case((or_(*odd), _sql_number(1))).label("unusual")


def _prepare(session: Session, fmt: Format) -> str:
    """Ready the session's connection for writing figures; its dialect's name."""
    connection = session.connection()
    dialect = connection.dialect.name
    if dialect == "postgresql":
        # The shortest text that reads back as the same float (the default since 12); no JIT,
        # whose compiling of the long expression costs more than the chunk's read.
        connection.exec_driver_sql("SET LOCAL extra_float_digits = 1; SET LOCAL jit = off")
    else:
        raw: Any = connection.connection.dbapi_connection
        raw.create_function(_NUMBER[fmt], 1, _NUMBER_TEXT[fmt], deterministic=True)
    return dialect


def _in_key_order(session: Session, query: MetricQuery, category: Category | None) -> bool:
    """Whether the chunk is of every live metric in id order (no filter, no sort, no `q`,
    not `as_of`): read along the primary key, no row is sorted."""
    return (
        category is None
        and not service._used_filters(query)
        and not query.sort_keys()
        and asof.read_version(session) is None
    )


def splits(query: MetricQuery, category: Category | None) -> bool:
    """Whether `split_chunk` can tell where a read of `query` ends: the whole collection in
    id order, whose keys alone (the primary key's index) say it."""
    return (
        category is None
        and query.q is None
        and not service._used_filters(query)
        and not query.sort_keys()
    )


def split_chunk(
    session: Session,
    *,
    query: MetricQuery,
    category: Category | None,
    after: Sequence[Any] | None,
    limit: int,
) -> list[Any] | None:
    """The id of the last metric `read_chunk` returns after `after` given `limit` (a query
    that `splits`), or None when that read holds the collection's last metrics: read from
    the index of ids alone (PostgreSQL, 1,000,000 metrics: 1.3 ms, against 29 ms for the
    read itself), so that the reads after it can start at once (api.exports.KeyedReader)."""
    joined = session.get_bind().dialect.name == "postgresql" or _in_key_order(
        session, query, category
    )
    rows = limit * _JOINED_ROWS if joined else limit
    # The read returns `rows` metrics and names the last as where the next read starts, or
    # fewer (the last ones) and names none.
    statement, _keys = service.keyed_page(
        session, query, category, sql_select(METRIC.c.id), after=after, limit=0, offset=rows - 1
    )
    last = session.execute(statement).scalar()
    return None if last is None else [last]


def _sort_values(keys: Sequence[Any]) -> list[ColumnElement[Any]]:
    return [service._plain_column(column) for column, _d, _n in keys]


# A chunk joined by the database is its bytes alone (about 0.35 KB a row in CSV, 0.65 in
# NDJSON), where a chunk of rows holds the rows' objects as well: it reads this many times
# the engine's rows at once, so that each read's own cost (a transaction, the statement
# built and sent) is shared by more rows (PostgreSQL's reader at 100,000 metrics: 3.9-4.3
# µs of CPU a row in reads of 2,000, 2.0-2.1 in reads of 8,000). Not more: a row's texts may
# run to 100,000 characters, and the server's peak memory at 1,000,000 metrics was 117-119
# MiB with reads of 4,000, 129-133 with reads of 8,000 (102-113 before).
_JOINED_ROWS = 2


def _joined_chunk(
    session: Session,
    statement: Select[Any],
    fmt: Format,
    postgres: bool,
    params: dict[str, Any],
    limit: int,
) -> Chunk | None:
    """The chunk `statement` reads (lines in id order, up to `limit + 1` of them) as one row:
    its lines joined by the database, so that Python takes one string, not one row per
    metric; None when PostgreSQL would not write one of its figures as Python does."""
    # An aggregate takes the rows of a sorted subquery in its order (PostgreSQL's manual,
    # "Aggregate Expressions"; SQLite does not flatten a subquery with a LIMIT into an
    # aggregate, and reads it in its order).
    page = statement.limit(limit).subquery("page")
    if postgres:  # as bytes (api.db loads `bpchar` so)
        joined: ColumnElement[Any] = cast(func.string_agg(page.c.line, _sql_text("")), Bpchar())
        unusual: ColumnElement[Any] = func.count(page.c.unusual)
    else:
        joined = cast(func.group_concat(page.c.line, _sql_text("")), LargeBinary())
        unusual = _sql_number(0)
    written, rows, odd = session.execute(sql_select(joined, func.count(), unusual), params).one()
    if odd:
        return None
    if rows < limit:
        return Chunk([], None, written or b"")
    return Chunk([], [_last_id(written, fmt)], written)


def _last_id(written: bytes, fmt: Format) -> str:
    """The id of the last metric in `written`, whose every line (NDJSON) or record (CSV)
    begins with its id (a slug: never escaped nor quoted). Read from the bytes rather than
    asked of the database with the lines (`max(id)` compares every row's id under the
    collation: 0.5 µs a row of the database's CPU, the serial part of an export)."""
    end = len(written) - 1  # the last line break
    if fmt is Format.ndjson:  # a JSON line holds no line break
        start = written.rfind(b"\n", 0, end) + 1 + len(b'{"id":"')
        return written[start : written.index(b'"', start)].decode()
    # A CSV record's quotes come in pairs; a line break inside a quoted cell has an odd
    # number of quotes after it, the line break that ends a record an even number.
    start = end - 1
    while True:
        start = written.rfind(b"\r\n", 0, start)
        if start < 0 or written.count(b'"', start) % 2 == 0:
            break
    start = start + 2 if start >= 0 else 0
    return written[start : written.index(b",", start)].decode()


def read_chunk(
    session: Session,
    *,
    query: MetricQuery,
    category: Category | None,
    fmt: Format,
    after: Sequence[Any] | None,
    limit: int,
) -> Chunk:
    """Up to `limit` metrics after the row `after` names (for results ranked by relevance:
    after the count of rows `after` holds), written in `fmt` by the database."""
    ranked = query.q is not None and not query.sort_keys()
    skip = (after[0] if after else 0) if ranked else 0
    dialect = _prepare(session, fmt)
    postgres = dialect == "postgresql"
    # The line, then (PostgreSQL) whether Python must write it, then the sort values (or, for
    # results ranked by relevance, the id).
    columns: list[ColumnElement[Any]] = [line(dialect, fmt)]
    if postgres:
        columns.append(_unusual())
    params = {YEAR: service.current_year()}
    if ranked:  # the page's ids in relevance order first, as `service.read_page` reads them
        ids = service.ranked_ids(session, query, category, rows=limit + 1, offset=skip)
        position = {metric_id: index for index, metric_id in enumerate(ids)}
        statement = sql_select(*columns, METRIC.c.id).where(METRIC.c.id.in_(ids))
        rows: Sequence[Any] = sorted(
            session.execute(statement, params).all(), key=lambda row: position[row[-1]]
        )
        keys: list[Any] = []
    elif postgres or _in_key_order(session, query, category):
        # PostgreSQL writes the rows of a page only once it has sorted and cut it; SQLite
        # walks the whole live collection in id order along its key, writing only the page.
        statement, keys = service.keyed_page(
            session, query, category, sql_select(*columns), after=after, limit=limit
        )
        statement = statement.add_columns(*_sort_values(keys))
        if len(keys) == 1:  # in id order
            joined = _joined_chunk(session, statement, fmt, postgres, params, limit * _JOINED_ROWS)
            if joined is not None:
                return joined
        rows = session.execute(statement, params).all()
    else:
        # SQLite writes every row it sorts: it finds the page's ids first (sorting only their
        # sort values), then writes the rows of those ids.
        page, keys = service.keyed_page(
            session, query, category, sql_select(METRIC.c.id), after=after, limit=limit
        )
        chosen = page.subquery("page")
        statement = (
            sql_select(*columns, *_sort_values(keys))
            .select_from(METRIC.join(chosen, chosen.c.id == METRIC.c.id))
            .order_by(*service._order_by(keys))
        )
        rows = session.execute(statement, params).all()
    more = len(rows) > limit
    rows = rows[:limit]
    if postgres and any(row[1] for row in rows):
        # A figure outside the plain decimals: the chunk as Python writes it.
        read = service.read_page(
            session, query, category, after=None if ranked else after, limit=limit, offset=skip
        )
        written = None
        items = read.items
    else:
        written = (
            "".join([row[0] for row in rows]).encode()
            if postgres
            else b"".join([row[0] for row in rows])
        )
        items = []
    if not more or not rows:
        return Chunk(items, None, written)
    if ranked:
        return Chunk(items, [skip + len(rows)], written)
    first = 2 if postgres else 1
    return Chunk(items, [service._plain_value(value) for value in rows[-1][first:]], written)
