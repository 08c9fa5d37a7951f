"""The metric table and its subject tags."""

from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    desc,
    literal_column,
    text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel import Field, SQLModel

from api.db import metadata
from api.records.periods import history_of
from api.vocabulary import Category, Direction, Measure, Qualifier, Unit, enum_column_type

SORT = {"sort": True}  # an index for sorted pages only (api.records.periods.history_of)
LIVE_ONLY = {"live_only": True}  # a column the history does not keep (api.records.periods)


class Metric(SQLModel, table=True):
    __table_args__ = (
        CheckConstraint("value_low <= value_high", name="value_range"),
        CheckConstraint(
            "value IS NULL OR (value = value_low AND value = value_high)", name="point_value"
        ),
        CheckConstraint("evidence_start >= 0 AND evidence_start < evidence_end", name="evidence"),
        # The filtered, sorted page at scale (migration 0007).
        Index("ix_metric_category_forecast_value_high", "category", "forecast", "value_high"),
        # Sorted pages walk these in their order (migration 0014); the history keeps none of
        # them, only its index of year (which ix_metric_year_id serves on the live table).
        Index("ix_metric_value_id", "value", "id", info=SORT),
        Index("ix_metric_value_low_id", "value_low", "id", info=SORT),
        Index("ix_metric_value_high_id", "value_high", "id", info=SORT),
        Index("ix_metric_name", "name", info=SORT),
        Index("ix_metric_year_id", "year", "id", info={**SORT, "history": "year"}),
        Index("ix_metric_year_desc_id", desc(literal_column("year")), "id", info=SORT),
        # A category's pages sorted by year (migration 0015): where a category's metrics hold
        # the latest or earliest years, walking the index of year alone passes every other
        # category's rows first. The first also serves the category filter (the history keeps
        # its index of category).
        Index(
            "ix_metric_category_year_id",
            "category",
            "year",
            "id",
            info={**SORT, "history": "category"},
        ),
        Index(
            "ix_metric_category_year_desc_id",
            "category",
            desc(literal_column("year")),
            "id",
            info=SORT,
        ),
        # The metrics compared against one (few): what a delete of it, or a move of it to
        # another source, must ask (migration 0018). The history keeps none.
        Index(
            "ix_metric_baseline_id",
            "baseline_id",
            postgresql_where=text("baseline_id IS NOT NULL"),
            sqlite_where=text("baseline_id IS NOT NULL"),
            info=LIVE_ONLY,
        ),
    )

    id: str = Field(primary_key=True, max_length=100)
    category: Category = Field(sa_column=Column(enum_column_type(Category), nullable=False))
    name: str = Field(max_length=200)
    description: str = Field(sa_column=Column(Text, nullable=False))
    value: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    value_low: float = Field(sa_column=Column(Float, nullable=False))
    value_high: float = Field(sa_column=Column(Float, nullable=False))
    qualifier: Qualifier = Field(sa_column=Column(enum_column_type(Qualifier), nullable=False))
    unit: Unit = Field(sa_column=Column(enum_column_type(Unit), nullable=False))
    measure: Measure = Field(sa_column=Column(enum_column_type(Measure), nullable=False))
    direction: Direction | None = Field(
        default=None, sa_column=Column(enum_column_type(Direction), nullable=True)
    )
    year: int | None = Field(default=None)
    forecast: bool
    base_year: int | None = Field(default=None)
    geography: str | None = Field(default=None, max_length=100, index=True)
    cited_as: str | None = Field(default=None, max_length=200)
    # Deferred so that a loader can write a metric and its baseline in any order in one transaction.
    baseline_id: str | None = Field(
        default=None,
        sa_column=Column(
            String(100),
            ForeignKey("metric.id", deferrable=True, initially="DEFERRED"),
            nullable=True,
        ),
    )
    source_id: str = Field(foreign_key="source.id", index=True, max_length=100)
    evidence_quote: str = Field(sa_column=Column(Text, nullable=False))
    evidence_start: int
    evidence_end: int
    # The subjects kept with the row as written by the record store with them (migration
    # 0011): the JSON array (orjson's text) that pages and NDJSON exports show, and the CSV
    # cell that CSV exports write; `metric_subject` keeps them as rows for filters and facets.
    subjects_json: str = Field(sa_column=Column(Text, nullable=False))
    subjects_csv: str = Field(sa_column=Column(Text, nullable=False))
    # The metric as a page shows it (MetricPublic's JSON, as orjson writes it), rendered by the
    # record store whenever the row is written (`service.document`, migration 0017), with
    # `horizon_passed` false: a read sets it from the year it is read in. A cold page reads
    # one text per metric rather than 22 values to build an object from. The live table's
    # only: reads at a version (`as_of`) build their items from the history's columns.
    document: str = Field(sa_column=Column(Text, nullable=False, info=LIVE_ONLY))
    # Raised by every write; compare-and-set on it keeps concurrent writers from clobbering.
    version: int = Field(default=1)


class MetricSubject(SQLModel, table=True):
    __tablename__ = "metric_subject"

    metric_id: str = Field(
        foreign_key="metric.id", ondelete="CASCADE", primary_key=True, max_length=100
    )
    subject: str = Field(primary_key=True, max_length=100, index=True)
    position: int


METRIC_HISTORY = history_of(Metric.__table__, key="id")  # type: ignore[attr-defined]
SUBJECT_HISTORY = history_of(MetricSubject.__table__, key="metric_id")  # type: ignore[attr-defined]

# The columns of a metric that facets count by and filter on, kept as a tally of live metrics
# per combination of values (migration 0008): written in the transaction that changes metrics,
# so the facets of the live data read a few thousand rows instead of every metric.
TALLIED = (
    "category", "unit", "measure", "qualifier", "direction", "year", "base_year", "forecast",
    "geography",
)  # fmt: skip


def _tallied_columns() -> list[Column[Any]]:
    return [
        Column("category", String(10), nullable=False),
        Column("unit", String(7), nullable=False),
        Column("measure", String(11), nullable=False),
        Column("qualifier", String(6), nullable=False),
        Column("direction", String(8), nullable=True),
        Column("year", Integer, nullable=True),
        Column("base_year", Integer, nullable=True),
        Column("forecast", Boolean, nullable=False),
        Column("geography", String(100), nullable=True),
    ]


FACET_COUNT = Table(
    "metric_facet_count",
    metadata,
    # The combination's values as a JSON array: one key, whatever is null.
    Column("cell", Text, primary_key=True),
    *_tallied_columns(),
    Column("metrics", Integer, nullable=False),
)
# The same tally by subject (migrations 0012, 0013): how many live metrics have each
# combination of those values, each subject they are tagged with and the whole list of their
# subjects (a metric with two subjects counts once under each, once as the `lead` under its
# first; one with none under a null subject, as the lead), so that the subject facet, and the
# facets and totals of a filter on subjects, are summed rather than counted: one subject sums
# its rows, several sum the lead rows whose list holds any of them (each metric once).
SUBJECT_COUNT = Table(
    "metric_subject_count",
    metadata,
    # The combination's values, the subject, then the list, as a JSON array.
    Column("cell", Text, primary_key=True),
    *_tallied_columns(),
    Column("subject", String(100), nullable=True),
    # The metric's subjects, each between two SUBJECTS_SEPARATOR ("" for none).
    Column("subjects", Text, nullable=False),
    Column("lead", Boolean, nullable=False),
    Column("metrics", Integer, nullable=False),
)
# A character no subject holds (labels refuse control characters): `subjects` is
# "\x1fCAR-T\x1fTIL\x1f", so that one subject is found as "\x1fcar-t\x1f" in its lower case.
SUBJECTS_SEPARATOR = "\x1f"


class ascii_lower(FunctionElement[str]):
    """SQL: the text with its ASCII capitals lowered and no other letter touched, on both
    databases alike (api.filters.fold_case in Python): SQLite's `lower()`; on PostgreSQL,
    whose `lower()` folds every letter in the database's own collation, `lower()` in the "C"
    collation, which folds ASCII letters only (`translate()` did the same six times slower:
    83 ms against 13 ms over the 20,100 subject tallies of 1,000,000 metrics). The subject
    indexes are built on it (migrations 0012, 0013, 0019 and 0022), so its SQL text must stay
    exactly `ASCII_LOWER`."""

    type = String()
    inherit_cache = True


ASCII_LOWER = {
    "sqlite": "lower({})",
    "postgresql": 'lower(({}) COLLATE "C")',
}


@compiles(ascii_lower)
def _ascii_lower(element: ascii_lower, compiler: SQLCompiler, **kw: Any) -> str:
    text = compiler.process(element.clauses, **kw)
    return ASCII_LOWER.get(compiler.dialect.name, ASCII_LOWER["sqlite"]).format(text)
