"""How a kind of record is declared: its tables, schemas, child rows, rules and references.

Each feature package declares its kinds once (`api/metrics/kind.py`, ...); the engine in this
package reads nothing else. A declaration holds no logic of the engine's own.
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import Date, Table
from sqlmodel import Session, SQLModel

if TYPE_CHECKING:
    from api.records.store import Change
    from api.records.validation import Check, Problem


@dataclass(frozen=True)
class Child:
    """An ordered list field stored as rows of its own table (`subjects`, `metric_ids`)."""

    field: str
    table: Table
    owner_column: str
    value_column: str
    # The list also kept with its owner's row, rendered as text in columns of the owner's table
    # (column name, renderer), written whenever the list is: reads that show the list (pages,
    # exports) take it with the row instead of gathering its rows. The child rows stay, for
    # filters and facets.
    kept: tuple[tuple[str, Callable[[list[Any]], str]], ...] = ()
    # A kept column the whole list reads back from (column name, parser), exactly as its rows
    # hold it: a write's read of its records then takes the list with the row (one statement
    # rather than two; a metric PATCH runs 10).
    read_back: tuple[str, Callable[[str], list[Any]]] | None = None


@dataclass(frozen=True)
class Ref:
    """A field naming a record of another kind (or of its own): `baseline_id` names a metric."""

    field: str
    target: str
    # Whether the engine must refuse to delete a target while this reference holds (sources and
    # metrics referred to); every reference is checked to exist when written.
    blocks_delete: bool = True


@dataclass(frozen=True)
class Kind:
    """A kind of record, declared once by its feature package."""

    name: str
    label: str
    plural: str
    section: str  # its list in a dataset file (`metrics`); "" for the file's own `source`
    path: str  # its collection under /v1
    id_param: str
    model: type[SQLModel]
    record: type[BaseModel]  # the shape written: dataset files, POST bodies, revisions
    public: type[BaseModel]
    get: Callable[[Session, str], BaseModel]  # the public item, read from the database
    scope: str = "write"
    child: Child | None = None
    refs: tuple[Ref, ...] = ()
    rules: Callable[[dict[str, Any], "Check"], Iterable["Problem"]] | None = None
    # The public item from a record already in hand (no read), when it needs nothing else.
    present: Callable[[dict[str, Any]], BaseModel] | None = None
    # What else an item's representation shows, for its ETag (a metric's horizon moves with the
    # year, a source's metric_count with its metrics).
    tag_variant: Callable[[Session, str], str] | None = None
    # Columns of the live row rendered from the rest of it (column name, renderer of the row's
    # other columns), written whenever the row is: a metric's `document`, the JSON a page
    # shows. The history keeps none of them (`info["live_only"]` on the column).
    rendered: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = ()
    # Called after each batch of changes written in a transaction at dataset version `version`
    # (its search documents, the metric facet tally).
    after_write: Callable[[Session, int, Sequence["Change"]], None] | None = None
    evidence: bool = True
    tag: str = ""  # the OpenAPI tag of its read routes
    order_by: str = "id"  # the order of its collection, after source_id for entities
    # Words of routes beside its items (/v1/metrics/facets): no record may take them as ids,
    # or it could be written and never read.
    reserved_ids: tuple[str, ...] = ()

    @property
    def table(self) -> Table:
        return self.model.__table__  # type: ignore[attr-defined, no-any-return]

    @cached_property
    def columns(self) -> list[str]:
        """The table's own columns, without the engine's `version`, the columns that keep its
        child list (`Child.kept`) and those rendered from the row (`rendered`)."""
        kept = {name for name, _render in self.child.kept} if self.child else set()
        kept |= {name for name, _render in self.rendered}
        return [
            column.name
            for column in self.table.columns
            if column.name != "version" and column.name not in kept
        ]

    @cached_property
    def date_columns(self) -> tuple[str, ...]:
        """The table's date columns (records hold their dates as ISO text)."""
        return tuple(column.name for column in self.table.columns if isinstance(column.type, Date))
