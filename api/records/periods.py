"""History tables: every versioned table has a twin holding each of its rows with the range of
dataset versions in which it was current (`valid_from` <= v < `valid_to`, open while current).

The twin has the live table's columns without its keys and constraints (history only grows),
a surrogate `row_id`, and indexes that serve reads at a version: by id, and by each column the
live table indexes.
"""

from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Enum,
    Index,
    Integer,
    String,
    Table,
    and_,
    or_,
)

from api.db import metadata

HISTORY_SUFFIX = "_history"
VERSIONED: dict[Table, Table] = {}


def _plain_type(column: Column[object]) -> object:
    # Enumerations keep their values as VARCHAR; the CHECK stays with the live table.
    if isinstance(column.type, Enum):
        return String(column.type.length)
    return column.type.copy()


def kept_columns(live: Table) -> list[Column[object]]:
    """The columns of `live` that its history keeps: all but those marked `live_only` in their
    `info` (a rendering of the row that only live reads use)."""
    return [column for column in live.columns if not column.info.get("live_only")]


def history_of(live: Table, *, key: str) -> Table:
    """Declare the history twin of `live`, whose rows are identified by column `key`."""
    name = f"{live.name}{HISTORY_SUFFIX}"
    columns: list[Column[object]] = [Column("row_id", Integer, primary_key=True)]
    columns += [
        Column(column.name, _plain_type(column), nullable=column.nullable)  # type: ignore[arg-type]
        for column in kept_columns(live)
    ]
    columns += [
        Column("valid_from", Integer, nullable=False),
        Column("valid_to", Integer, nullable=True),
    ]
    indexes = [Index(f"ix_{name}_{key}", key, "valid_from")]
    # The columns of the live table's single-column indexes (but those marked `live_only`), and
    # those an index for sorting (`info["sort"]`, not kept in the history) names as its filter
    # column (`info["history"]`).
    indexed = [
        index.info.get("history")
        if index.info.get("sort") or index.info.get("live_only")
        else next(iter(index.columns)).name
        if len(index.columns) == 1
        else None
        for index in live.indexes
    ]
    indexes += [
        # With the key next, a filtered page in key order walks the index and stops early.
        Index(f"ix_{name}_{column}", column, key, "valid_from", "valid_to")
        for column in sorted({column for column in indexed if column is not None})
    ]
    history = Table(name, metadata, *columns, *indexes)
    VERSIONED[live] = history
    return history


def current_at(history: Table, version: BindParameter[int] | int) -> ColumnElement[bool]:
    """Rows of `history` current at dataset `version`."""
    columns = history.c
    return and_(
        columns.valid_from <= version,
        or_(columns.valid_to.is_(None), columns.valid_to > version),
    )
