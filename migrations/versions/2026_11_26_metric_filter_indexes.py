"""Indexes for the most used metric filters: category (and every category view) and year.

A filtered page on 10,000 metrics counted and sorted the whole table without them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 08:15:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_metric_category"), "metric", ["category"], unique=False)
    op.create_index(op.f("ix_metric_year"), "metric", ["year"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_metric_year"), table_name="metric")
    op.drop_index(op.f("ix_metric_category"), table_name="metric")
