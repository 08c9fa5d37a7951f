"""Indexes that the sorted pages walk in their order (issue 12: a sorted page of 50 at
1,000,000 metrics read the whole table and sorted it).

Each page is ordered by its sort fields, then id; a page keyed on a nullable field reads its
rows with a value and its rows without one separately (api.metrics.service), so an index in
either direction of the field serves it, the few rows that tie on a value sorted by id:
`value` (with id, so that the rows without a value are read in id order), `value_low`,
`value_high` and `name`. `year` holds few values, each shared by a tenth of the metrics, so
both of its orders are indexed with id (replacing the index on `year` alone, which they
cover): ascending for `sort=year`, descending for `sort=-year`.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 16:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_metric_value_id", "metric", ["value", "id"])
    op.create_index("ix_metric_value_low_id", "metric", ["value_low", "id"])
    op.create_index("ix_metric_value_high_id", "metric", ["value_high", "id"])
    op.create_index("ix_metric_name", "metric", ["name"])
    op.create_index("ix_metric_year_id", "metric", ["year", "id"])
    op.create_index("ix_metric_year_desc_id", "metric", [sa.text("year DESC"), "id"])
    op.drop_index("ix_metric_year", table_name="metric")


def downgrade() -> None:
    op.create_index("ix_metric_year", "metric", ["year"])
    for name in (
        "ix_metric_year_desc_id",
        "ix_metric_year_id",
        "ix_metric_name",
        "ix_metric_value_high_id",
        "ix_metric_value_low_id",
        "ix_metric_value_id",
    ):
        op.drop_index(name, table_name="metric")
