"""An index for the filtered, sorted page at scale: category, forecast, then value_high.

At 1,000,000 metrics `?category=market&forecast=false&sort=-value_high` counted and sorted a
fifth of the table through the category index; with this one the count reads the index alone
and the page walks it in order, stopping after the page.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 04:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_metric_category_forecast_value_high",
        "metric",
        ["category", "forecast", "value_high"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_metric_category_forecast_value_high", table_name="metric")
