"""A dataset version's timestamp kept once, in `dataset_version`, and set at its commit.

A version was dated at its first change, on each of its revisions (`revision.at`): a read
`as_of` a moment during a long import (or a `/v1/changes?since` poll made then) saw none of it,
and after the commit the same question showed all of it, back-dated by the import's length.
Dated at the commit instead, the timestamp would have to be rewritten on every revision the
transaction wrote (1,000,000 for a load of as many metrics: 11 s more on SQLite, a window in
which the question still changed its answer). So the timestamp moves to one row per version,
`dataset_version (version, at)`, written just before the commit (api.records.versions), and
revisions find theirs by `dataset_version` (indexed). Existing versions keep the timestamps
their revisions hold.

Down, `revision.at` is filled again from `dataset_version` (on SQLite the column comes back
NOT NULL with a default, as SQLite adds a NOT NULL column only so), with its index.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset_version",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_dataset_version")),
    )
    op.execute(
        "INSERT INTO dataset_version (version, at)"
        " SELECT dataset_version, max(at) FROM revision GROUP BY dataset_version"
    )
    op.create_index("ix_dataset_version_at", "dataset_version", ["at", "version"])
    op.create_index("ix_revision_dataset_version", "revision", ["dataset_version"])
    op.drop_index("ix_revision_at_dataset_version", table_name="revision")
    op.execute("ALTER TABLE revision DROP COLUMN at")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE revision ADD COLUMN at DATETIME NOT NULL DEFAULT '1970-01-01 00:00:00'"
        )
    else:
        op.add_column("revision", sa.Column("at", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE revision SET at = (SELECT v.at FROM dataset_version v"
        " WHERE v.version = revision.dataset_version)"
    )
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("revision", "at", nullable=False)
    op.create_index("ix_revision_at_dataset_version", "revision", ["at", "dataset_version"])
    op.drop_index("ix_revision_dataset_version", table_name="revision")
    op.drop_index("ix_dataset_version_at", table_name="dataset_version")
    op.drop_table("dataset_version")
