"""Cheaper imports: the records an analyst has written are found in a small index; on
PostgreSQL the search tables lose their foreign keys and metric pages keep room for updates.

- An import asks, for every record it is about to change, whether an analyst wrote its newest
  revision (an analyst's edit is kept). It grouped every revision of every record for that
  (1.0-1.2 s of server CPU for 100,000 metrics with two revisions each); now it first finds,
  in the partial index `ix_revision_by_analyst` (revisions whose actor is not a loader: few),
  which of them an analyst has ever written (0.1 s), and looks up the newest revision of those
  only. `revision (kind, record_id)` becomes `(kind, record_id, id)`: a record's newest
  revision is the last entry of its run (SQLite's indexes already end with the rowid).
- PostgreSQL: `<kind>_fts.row_id` no longer references `<kind>_history` and `<kind>_live_fts.id`
  no longer references `<kind>`. Checking them cost a lookup and a row lock (a heap write) per
  document copied in: about 1.7 s of server CPU for the 200,000 documents an update of 100,000
  metrics writes. They only ever cascaded deletes that the writer makes anyway (history rows
  are never deleted; a deleted record's live document is deleted by the indexer in the same
  transaction, `api.search.indexer`), as SQLite's FTS5 tables, which have no foreign keys,
  always relied on.
- PostgreSQL: `metric` is filled to half its pages (fillfactor 50), so that an update that
  sets no indexed column (name, description, quote, value, ...: not category, forecast,
  value_high, geography, source_id or year) writes the new row version on the same page
  without touching the table's six indexes (a HOT update): updating the name and description
  of 100,000 metrics cost 3.4-4.1 s of server CPU on full pages, 0.6-0.9 s on half-full ones,
  and the VACUUM after it has no index entries to remove. The table takes twice the pages
  (71 MB for 100,000 metrics instead of 35 MB). Pages written before this migration stay as
  they are until their rows move.

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
        op.execute("ALTER TABLE metric SET (fillfactor = 50)")
        for kind in KINDS:
            op.execute(
                f"ALTER TABLE {kind}_fts DROP CONSTRAINT fk_{kind}_fts_row_id_{kind}_history"
            )
            op.execute(f"ALTER TABLE {kind}_live_fts DROP CONSTRAINT fk_{kind}_live_fts_id_{kind}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE metric RESET (fillfactor)")
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
