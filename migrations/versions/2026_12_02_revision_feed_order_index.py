"""The change feed's order indexed: revisions by dataset version, then id.

`/v1/changes` pages by keyset (`after=`) in its order, dataset version then revision id: the
next page is the rest of the cursor's version after its id, then the versions after it. On
PostgreSQL an index of `dataset_version` alone holds each version's revisions in no useful
order, so a page that starts at a version sorted all of its revisions (737 ms for the 499,000
of one load at 1,000,000 revisions) and a deep page within one load read them by the primary
key, which leaves the order to how the ids happened to be allocated. An index of both columns
is a seek on either database; it replaces the one of `dataset_version`, which it contains
(SQLite's held the id already, as its rowid).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 05:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0021"
down_revision: str | Sequence[str] | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_revision_dataset_version_id", "revision", ["dataset_version", "id"])
    op.drop_index("ix_revision_dataset_version", table_name="revision")


def downgrade() -> None:
    op.create_index("ix_revision_dataset_version", "revision", ["dataset_version"])
    op.drop_index("ix_revision_dataset_version_id", table_name="revision")
