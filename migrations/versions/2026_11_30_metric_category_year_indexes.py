"""Indexes that a category's pages sorted by year walk (issue 12).

Pages sorted by year walk an index of year (0014) and skip the rows of other filters. Where a
category's metrics hold the latest (or the earliest) years, every other category's rows come
first: at 1,000,000 metrics of bench/synthetic.py, where each year belongs to one category,
`category=market&sort=-year` passed 800,000 rows (SQLite 0.4-0.9 s, PostgreSQL 1.0 s) and
`category=mna&sort=year` as many. With category first, each order of year is one range of
its own index. The index of category alone is dropped: `(category, year, id)` serves
everything it did.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 18:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_metric_category_year_id", "metric", ["category", "year", "id"])
    op.create_index(
        "ix_metric_category_year_desc_id", "metric", ["category", sa.text("year DESC"), "id"]
    )
    op.drop_index("ix_metric_category", table_name="metric")


def downgrade() -> None:
    op.create_index("ix_metric_category", "metric", ["category"])
    op.drop_index("ix_metric_category_year_desc_id", table_name="metric")
    op.drop_index("ix_metric_category_year_id", table_name="metric")
