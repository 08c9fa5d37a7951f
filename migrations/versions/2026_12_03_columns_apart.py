"""PostgreSQL: the columns of a search document are a position apart, as FTS5's are apart.

`||` numbers a tsvector's words on from the last of the vector before it, so the first word of
a document's column followed the last word of the column before, and a phrase was found across
them on PostgreSQL alone: `"therapy cell"` found a metric whose name ends with "therapy" and
whose subjects begin with "cell", which SQLite's FTS5 (columns apart) never finds. Every
document is rebuilt with a word no query can hold (` gap`: queries' words are letters and
digits) between each two columns, then taken out (`ts_delete`): its position stays a gap.
api/search.py `_document` builds documents so since.

Down: the documents as they were (the columns' words numbered on). SQLite is unchanged. Both
ways, `dataset_state.changed_at` moves on, so that every process's response cache forgets the
searches it answered.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03 19:40:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0026"
down_revision: str | Sequence[str] | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GAP = " gap"
# The tsvector ' gap':1, its colon written chr(58): SQLAlchemy's text() reads `:1` as a
# parameter.
_GAP_VECTOR = f"CAST('''{GAP}''' || chr(58) || '1' AS tsvector)"


def _revision_0016() -> ModuleType:
    """0016's module (the documents' columns of each kind, read from a history row)."""
    path = Path(__file__).with_name("2026_12_01_search_text_in_nfkc.py")
    spec = importlib.util.spec_from_file_location("cdmo_migration_0016", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rebuild(apart: bool) -> None:
    revision_0016 = _revision_0016()
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL statement_timeout = 0")  # a rebuild of millions of rows
        for kind in revision_0016.DOCUMENTS:
            vectors = [
                f"setweight(cdmo_search_vector({column}), '{'ABCD'[min(position, 3)]}')"
                for position, column in enumerate(revision_0016._columns(kind, "postgresql"))
            ]
            document = (
                f"ts_delete({f' || {_GAP_VECTOR} || '.join(vectors)}, '{GAP}')"
                if apart and len(vectors) > 1
                else " || ".join(vectors)
            )
            op.execute(
                f"UPDATE {kind}_fts f SET document = {document} FROM {kind}_history h"
                " WHERE f.row_id = h.row_id"
            )
            op.execute(
                f"UPDATE {kind}_live_fts l SET document = f.document"
                f" FROM {kind}_history h JOIN {kind}_fts f ON f.row_id = h.row_id"
                " WHERE h.id = l.id AND h.valid_to IS NULL"
            )
    revision_0016._results_changed()


def upgrade() -> None:
    _rebuild(apart=True)


def downgrade() -> None:
    _rebuild(apart=False)
