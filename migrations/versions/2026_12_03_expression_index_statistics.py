"""Statistics for the indexes on folded subjects, on databases loaded before they were kept.

PostgreSQL keeps statistics of an index on an expression only from an ANALYZE of its whole
table; the VACUUM (ANALYZE) after a load named columns, which skips them, so a database loaded
since 0022 had none for `ix_metric_subject_folded` and `ix_metric_subject_count_folded`, and
the planner misjudged `subject=` with a value sort (45 ms a page at 1,000,000 metrics, 8 ms
analyzed). Autovacuum would not analyze those tables again until a tenth of their rows change.
Loads now analyze such tables whole (api.records.loading.tidy); this analyzes them once on
databases loaded before (0.35 s at 1,000,000 metrics). SQLite keeps no such statistics.

Down: nothing to undo (statistics are not schema).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 07:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | Sequence[str] | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE metric_subject")
        op.execute("ANALYZE metric_subject_count")


def downgrade() -> None:
    pass
