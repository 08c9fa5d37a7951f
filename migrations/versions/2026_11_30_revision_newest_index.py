"""Cheaper imports on PostgreSQL: the revision index by record ends with the revision id, and
the search tables lose their foreign keys.

- `revision (kind, record_id)` becomes `(kind, record_id, id)`, so that a record's newest
  revision is one backward seek.

  An import asks, for every record it is about to change, who wrote its newest revision (an
  analyst's edit is kept). With (kind, record_id) PostgreSQL fetched and grouped every revision
  of every record (1.2 s of server CPU for 100,000 metrics with two revisions each); with
  (kind, record_id, id) each record's newest revision is the last index entry of its run.
  SQLite's indexes already end with the rowid (`revision.id`), so there it is the same index in
  effect.
- PostgreSQL: `<kind>_fts.row_id` no longer references `<kind>_history` and `<kind>_live_fts.id`
  no longer references `<kind>`. Checking them cost a lookup and a row lock (a heap write) per
  document copied in: about 1.7 s of server CPU for the 200,000 documents an update of 100,000
  metrics writes. They only ever cascaded deletes that the writer makes anyway (history rows
  are never deleted; a deleted record's live document is deleted by the indexer in the same
  transaction, `api.search.indexer`), as SQLite's FTS5 tables, which have no foreign keys,
  always relied on.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Revisions an analyst wrote: the loaders write as `seed` and `import` (api.history.models).
BY_ANALYST = "actor NOT IN ('seed', 'import')"

# The kinds with search tables (api.search.DOCUMENTS, as migrations 0006 and 0008 made them).
KINDS = (
    "metric",
    "technology",
    "pricing_model",
    "regulatory_change",
    "bottleneck",
    "faq",
    "source",
)

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_revision_kind_record_id_id", "revision", ["kind", "record_id", "id"], unique=False
    )
    op.drop_index("ix_revision_kind_record_id", table_name="revision")
    op.create_index(
        "ix_revision_by_analyst",
        "revision",
        ["kind", "record_id"],
        unique=False,
        postgresql_where=sa.text(BY_ANALYST),
        sqlite_where=sa.text(BY_ANALYST),
    )
    if op.get_bind().dialect.name == "postgresql":
        for kind in KINDS:
            op.execute(
                f"ALTER TABLE {kind}_fts DROP CONSTRAINT fk_{kind}_fts_row_id_{kind}_history"
            )
            op.execute(f"ALTER TABLE {kind}_live_fts DROP CONSTRAINT fk_{kind}_live_fts_id_{kind}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for kind in KINDS:
            op.execute(
                f"ALTER TABLE {kind}_fts ADD CONSTRAINT fk_{kind}_fts_row_id_{kind}_history"
                f" FOREIGN KEY (row_id) REFERENCES {kind}_history (row_id) ON DELETE CASCADE"
            )
            op.execute(
                f"ALTER TABLE {kind}_live_fts ADD CONSTRAINT fk_{kind}_live_fts_id_{kind}"
                f" FOREIGN KEY (id) REFERENCES {kind} (id) ON DELETE CASCADE"
            )
    op.drop_index("ix_revision_by_analyst", table_name="revision")
    op.create_index("ix_revision_kind_record_id", "revision", ["kind", "record_id"], unique=False)
    op.drop_index("ix_revision_kind_record_id_id", table_name="revision")
