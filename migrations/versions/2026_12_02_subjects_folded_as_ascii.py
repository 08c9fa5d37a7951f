"""Subjects and geographies compared case aside the same way on both databases: ASCII letters.

The subject and geography filters (and their facets) ignore case by each database's `lower()`:
SQLite's folds ASCII letters only, PostgreSQL's every letter, so `geography=ÉMIRATS` found
"Émirats" on PostgreSQL and nothing on SQLite. Both now fold ASCII letters only
(api.metrics.models.ascii_lower: `translate(...)` on PostgreSQL). The indexes on the folded
subjects are rebuilt on that expression on PostgreSQL (SQLite's stay on `lower(subject)`,
which is the same thing there); down, they are built on `lower(subject)` again.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02 03:00:00
"""

import string
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As api.metrics.models.ASCII_LOWER writes it on PostgreSQL (a copy: this migration stays).
FOLDED = f"translate(subject, '{string.ascii_uppercase}', '{string.ascii_lowercase}')"
INDEXES = (
    ("ix_metric_subject_folded", "metric_subject", ("metric_id",)),
    ("ix_metric_subject_count_folded", "metric_subject_count", ()),
)


def _rebuild(folded: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table, more in INDEXES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, [sa.text(folded), *more])


def upgrade() -> None:
    _rebuild(FOLDED)


def downgrade() -> None:
    _rebuild("lower(subject)")
