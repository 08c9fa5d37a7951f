"""The metrics compared against a metric, found in an index: `ix_metric_baseline_id`.

Deleting a metric asks which metrics name it as their baseline, and so does moving it to
another source (a metric and its baseline keep to one source). Without an index each asked
every metric: 339 ms at 1,000,000 metrics on SQLite for one DELETE. The index is partial (only
the metrics that name a baseline, few), and the history keeps none.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAMED = "baseline_id IS NOT NULL"


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        # Migrations run in one transaction: an earlier one that rewrote metric rows leaves
        # their deferred foreign-key checks pending, which CREATE INDEX will not run beside.
        op.execute("SET CONSTRAINTS ALL IMMEDIATE")
    op.create_index(
        "ix_metric_baseline_id",
        "metric",
        ["baseline_id"],
        unique=False,
        postgresql_where=sa.text(NAMED),
        sqlite_where=sa.text(NAMED),
    )
    if postgresql:
        op.execute("SET CONSTRAINTS ALL DEFERRED")


def downgrade() -> None:
    op.drop_index("ix_metric_baseline_id", table_name="metric")
