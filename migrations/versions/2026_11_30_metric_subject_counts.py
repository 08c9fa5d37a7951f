"""The facet tally by subject: `metric_subject_count`, how many live metrics have each
combination of the tallied values (as `metric_facet_count`) and each subject they are tagged
with (a null subject for metrics without any), filled from the live metrics; and an index of
subjects as filters compare them (lower case), for counts and facets of several subjects.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 13:30:00
"""

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TALLIED = (
    "category", "unit", "measure", "qualifier", "direction", "year", "base_year", "forecast",
    "geography",
)  # fmt: skip


def _cell(values: Sequence[object], subject: str | None) -> str:
    """The key of a combination and a subject (api/metrics/tally.py writes the same)."""
    *head, forecast, geography = values
    return orjson.dumps([*head, bool(forecast), geography, subject]).decode()


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("SET LOCAL statement_timeout = 0")  # a large dataset's tally takes a while
    table = op.create_table(
        "metric_subject_count",
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
        sa.Column("subject", sa.String(length=100), nullable=True),
        sa.Column("metrics", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("cell", name=op.f("pk_metric_subject_count")),
    )
    columns = ", ".join(f"m.{name}" for name in TALLIED)
    rows = bind.execute(
        sa.text(
            f"SELECT {columns}, s.subject, count(*) FROM metric m"
            " LEFT JOIN metric_subject s ON s.metric_id = m.id"
            f" GROUP BY {columns}, s.subject"
        )
    ).all()
    cells = []
    for row in rows:
        values, subject, metrics = row[: len(TALLIED)], row[-2], row[-1]
        cell = {"cell": _cell(values, subject), **dict(zip(TALLIED, values, strict=True))}
        cells.append({**cell, "forecast": bool(cell["forecast"]), "subject": subject,
                      "metrics": metrics})  # fmt: skip
    if cells:
        op.bulk_insert(table, cells)
    op.create_index(
        "ix_metric_subject_folded", "metric_subject", [sa.text("lower(subject)"), "metric_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_metric_subject_folded", table_name="metric_subject")
    op.drop_table("metric_subject_count")
