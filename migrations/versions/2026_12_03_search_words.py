"""The words of every search document, as written, so that `prefix*` finds the words that begin
with the prefix.

Both databases index stems, not words: FTS5's `porter` and PostgreSQL's `cdmo_search` keep
`person` for personalized, personalization and personal. A prefix was matched against the
stems, so `personaliz*` found nothing (no stem begins with it), nor `automat*` (automated is
`autom`), though `personal*` and `autom*` did. `search_word` holds each distinct word of each
kind's documents (every version: reads at a version search them too), in NFKC and lower case,
as `q` is read; a query's `prefix*` also finds the words of it that begin with the prefix, each
stemmed as any word of a query is (api/search.py `complete`). Writers add the words of what
they write in the same transaction; this migration adds those of every history row.

On PostgreSQL the word is compared byte by byte (`COLLATE "C"`), as on SQLite, so that the words
beginning with a prefix are one range of the primary key. Words over 64 bytes are left out: the
stemmers leave such a word as it is (FTS5 does not stem it), so the prefix finds it in the index.

`dataset_state.changed_at` moves on, so that every process's response cache forgets the
searches it answered. Down: the table goes.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 19:20:00
"""

import importlib.util
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | Sequence[str] | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LONGEST_WORD = 64  # bytes in UTF-8
_WORD = re.compile(r"[^\W_]+")
_FOLDED = str.maketrans({"\u03c2": "\u03c3", "\u0130": "I"})
_BATCH = 5000


def _revision_0016() -> ModuleType:
    """0016's module (the documents' columns of each kind, read from a history row)."""
    path = Path(__file__).with_name("2026_12_01_search_text_in_nfkc.py")
    spec = importlib.util.spec_from_file_location("cdmo_migration_0016", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _words(texts: Iterable[str | None]) -> set[str]:
    """The words of `texts` as api/search.py `words` reads them (NFKC, lower case)."""
    found: set[str] = set()
    for text in texts:
        if not text:
            continue
        lowered = (text if text.isascii() else unicodedata.normalize("NFKC", text)).lower()
        if not lowered.isascii():
            lowered = lowered.translate(_FOLDED)
        found.update(_WORD.findall(lowered))
    return {word for word in found if len(word.encode()) <= LONGEST_WORD}


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    op.create_table(
        "search_word",
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "word",
            sa.Text(collation="C") if dialect == "postgresql" else sa.Text(),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("kind", "word", name="pk_search_word"),
    )
    revision_0016 = _revision_0016()
    table = sa.table("search_word", sa.column("kind"), sa.column("word"))
    for kind in revision_0016.DOCUMENTS:
        columns = revision_0016._columns(kind, dialect)
        rows = bind.execute(sa.text(f"SELECT {', '.join(columns)} FROM {kind}_history h"))
        words: set[str] = set()
        for row in rows:
            words |= _words(row)
        ordered = sorted(words)
        for start in range(0, len(ordered), _BATCH):
            batch = ordered[start : start + _BATCH]
            bind.execute(table.insert(), [{"kind": kind, "word": word} for word in batch])
    revision_0016._results_changed()


def downgrade() -> None:
    op.drop_table("search_word")
    _revision_0016()._results_changed()
