"""Each live metric keeps the JSON object a page shows: `metric.document`, rendered by the record
store whenever it writes the row (api.metrics.service.document), with `horizon_passed` false
(a read sets it from the year it is read in). A cold page then reads one text per metric rather
than 22 values to build an object from. The history keeps no document: reads at a version build
their items from its columns.

Filled here for every live metric, rendered as this revision defines it (a later change to the
items' JSON brings a migration of its own that renders them again). The responses' bytes do not
change, so no cache need forget them. Down, the column goes.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 06:00:00
"""

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    "id", "category", "name", "description", "value", "value_low", "value_high", "qualifier",
    "unit", "measure", "direction", "year", "forecast", "base_year", "geography", "cited_as",
    "baseline_id", "source_id", "evidence_quote", "evidence_start", "evidence_end",
    "subjects_json",
)  # fmt: skip
BATCH = 5000
INTEGRAL_BELOW = 2**53


def _figure(value: float | None) -> float | int | None:
    """A figure as the API writes it: an integral value below 2**53 without a ".0"."""
    if value is not None and value.is_integer() and abs(value) < INTEGRAL_BELOW:
        return int(value)
    return value


def _document(row: Any) -> str:
    """A metric row (COLUMNS) as the JSON object a page shows (MetricPublic's fields, in its
    order), `horizon_passed` false."""
    return orjson.dumps(
        {
            "id": row.id,
            "category": row.category,
            "name": row.name,
            "description": row.description,
            "value": _figure(row.value),
            "value_low": _figure(row.value_low),
            "value_high": _figure(row.value_high),
            "qualifier": row.qualifier,
            "unit": row.unit,
            "measure": row.measure,
            "direction": row.direction,
            "year": row.year,
            "forecast": bool(row.forecast),
            "horizon_passed": False,
            "base_year": row.base_year,
            "geography": row.geography,
            "subjects": orjson.loads(row.subjects_json),
            "cited_as": row.cited_as,
            "baseline_id": row.baseline_id,
            "source_id": row.source_id,
            "evidence": {
                "quote": row.evidence_quote,
                "start": row.evidence_start,
                "end": row.evidence_end,
            },
        }
    ).decode()


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # Rendering a large dataset takes longer than a request may.
        op.execute("SET LOCAL statement_timeout = 0")
    op.add_column("metric", sa.Column("document", sa.Text(), nullable=False, server_default=""))
    rendered = sa.table("metric_rendered", sa.column("id"), sa.column("document"))
    op.execute("CREATE TEMPORARY TABLE metric_rendered (id VARCHAR(100), document TEXT)")
    select = f"SELECT {', '.join(COLUMNS)} FROM metric WHERE id > :after ORDER BY id LIMIT {BATCH}"
    after = ""
    while True:
        rows = bind.execute(sa.text(select), {"after": after}).all()
        if not rows:
            break
        bind.execute(rendered.insert(), [{"id": r.id, "document": _document(r)} for r in rows])
        after = rows[-1].id
    op.execute(
        "UPDATE metric SET document = r.document FROM metric_rendered AS r WHERE metric.id = r.id"
    )
    op.execute("DROP TABLE metric_rendered")


def downgrade() -> None:
    op.execute("ALTER TABLE metric DROP COLUMN document")
