"""Search and facets of the live data at scale: an index of current documents, a facet tally.

- `<kind>_live_fts`: the search documents of the records as they are now (one per live record),
  beside `<kind>_fts`, which keeps every version's for reads at a version. A live search then
  counts its matches from the index alone and ranks only current documents. On SQLite it is
  FTS5 keyed by the history `row_id` of the current row; on PostgreSQL a table keyed by the
  record's id (deleted with the record), holding the tsvector of `<kind>_fts`.
- `metric_facet_count`: how many live metrics have each combination of the values facets
  count by (category, unit, measure, qualifier, direction, year, base_year, forecast,
  geography), keyed by that combination as a JSON array.

Both are filled from the tables as they stand.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The number of columns of each kind's document (api/search.py's DOCUMENTS as of 0006).
COLUMNS = {
    "metric": 4,
    "technology": 4,
    "pricing_model": 3,
    "regulatory_change": 5,
    "bottleneck": 3,
    "faq": 4,
    "source": 4,
}
TALLIED = (
    "category", "unit", "measure", "qualifier", "direction", "year", "base_year", "forecast",
    "geography",
)  # fmt: skip


def _live_index_sqlite(kind: str) -> None:
    names = ", ".join(f"c{position}" for position in range(COLUMNS[kind]))
    op.execute(
        f"CREATE VIRTUAL TABLE {kind}_live_fts USING fts5({names},"
        " tokenize = 'porter unicode61 remove_diacritics 0')"
    )
    copied = ", ".join(f"f.c{position}" for position in range(COLUMNS[kind]))
    op.execute(
        f"INSERT INTO {kind}_live_fts (rowid, {names}) SELECT f.rowid, {copied}"
        f" FROM {kind}_history h JOIN {kind}_fts f ON f.rowid = h.row_id"
        " WHERE h.valid_to IS NULL ORDER BY h.row_id"
    )


def _live_index_postgresql(kind: str) -> None:
    op.execute(
        f"CREATE TABLE {kind}_live_fts ("
        " id VARCHAR(100) NOT NULL,"
        " document TSVECTOR NOT NULL,"
        f" CONSTRAINT pk_{kind}_live_fts PRIMARY KEY (id),"
        f" CONSTRAINT fk_{kind}_live_fts_id_{kind} FOREIGN KEY (id)"
        f" REFERENCES {kind} (id) ON DELETE CASCADE)"
    )
    op.execute(
        f"INSERT INTO {kind}_live_fts (id, document) SELECT h.id, f.document"
        f" FROM {kind}_history h JOIN {kind}_fts f ON f.row_id = h.row_id"
        " WHERE h.valid_to IS NULL"
    )
    op.execute(f"CREATE INDEX ix_{kind}_live_fts_document ON {kind}_live_fts USING gin (document)")


def _cell(values: Sequence[object]) -> str:
    """The key of a combination (api/metrics/tally.py writes the same)."""
    *head, forecast, geography = values
    return orjson.dumps([*head, bool(forecast), geography]).decode()


def _facet_counts(bind: sa.Connection) -> None:
    table = op.create_table(
        "metric_facet_count",
        sa.Column("cell", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=10), nullable=False),
        sa.Column("unit", sa.String(length=7), nullable=False),
        sa.Column("measure", sa.String(length=11), nullable=False),
        sa.Column("qualifier", sa.String(length=6), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=True),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("base_year", sa.Integer(), nullable=True),
        sa.Column("forecast", sa.Boolean(), nullable=False),
        sa.Column("geography", sa.String(length=100), nullable=True),
        sa.Column("metrics", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("cell", name=op.f("pk_metric_facet_count")),
    )
    columns = ", ".join(TALLIED)
    rows = bind.execute(sa.text(f"SELECT {columns}, count(*) FROM metric GROUP BY {columns}")).all()
    cells = [
        {"cell": _cell(row[:-1]), **dict(zip(TALLIED, row[:-1], strict=True)), "metrics": row[-1]}
        for row in rows
    ]
    for cell in cells:
        cell["forecast"] = bool(cell["forecast"])
    if cells:
        op.bulk_insert(table, cells)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        # Filling the indexes of a large dataset takes longer than a request may.
        op.execute("SET LOCAL statement_timeout = 0")
    for kind in COLUMNS:
        (_live_index_postgresql if postgres else _live_index_sqlite)(kind)
    _facet_counts(bind)


def downgrade() -> None:
    op.drop_table("metric_facet_count")
    for kind in COLUMNS:
        op.execute(f"DROP TABLE {kind}_live_fts")
