"""PostgreSQL stems words as SQLite's FTS5 does.

FTS5's `porter` tokenizer is Martin Porter's own C implementation, which departs from the
published algorithm (PostgreSQL's Snowball `porter`) in three rules:

- step 2's `logi` becomes `log`: oncology, oncological and oncologic are one word on SQLite
  (`oncolog`), where PostgreSQL made oncology `oncologi`, a word of its own;
- step 2's `bli` becomes `ble` (in place of `abli` -> `able`), and the later steps go on from
  there: assembly is `assembl`, possibly `possibl`, incredibly `incred`, where PostgreSQL kept
  `assembli`, `possibli`, `incredibli`;
- step 1b undoubles every double consonant but l, s and z before a removed -ed or -ing, where
  Snowball undoubles bb, dd, ff, gg, mm, nn, pp, rr and tt only: trekking is `trek` on SQLite
  and was `trekk` here.

So `q=oncological` found eight metrics on SQLite and none on PostgreSQL. `cdmo_search_vector`
now rewrites the words those rules concern, before Snowball stems them, into the word Snowball
stems as the C code stems the first (oncology into `oncolog`, assembly into `assemble`,
trekking into `trek`); queries' words are rewritten alike (api/search.py `as_c_stemmer_reads`).
A word's measure (Porter's m: a vowel followed by a consonant) is read with y always a vowel,
where Porter counts a y after a vowel as a consonant: a word whose measure turns on that may
still differ.

FTS5 also leaves a token under three *bytes* unstemmed, where PostgreSQL's documents kept
words under three *characters* unstemmed: `μs` (three bytes in UTF-8) is `μ` on SQLite and was
`μs` here. The guard of two-character words now covers ASCII ones only, as the queries' does.
(FTS5 leaves a token over 64 bytes unstemmed too, which Snowball stems: no word is that long.)

The documents of every history row and live record holding such a word, or a text that is not
ASCII, are rebuilt, and `dataset_state.changed_at` moves on, so that every process's response
cache forgets the searches it answered. Down, 0016's function, and the same documents rebuilt.
SQLite is unchanged.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 13:30:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "0024"
down_revision: str | Sequence[str] | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _revision_0016() -> ModuleType:
    """0016's module (its documents, their texts, its function): it stays as it is."""
    path = Path(__file__).with_name("2026_12_01_search_text_in_nfkc.py")
    spec = importlib.util.spec_from_file_location("cdmo_migration_0016", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_0016 = _revision_0016()

_NFKC = (
    "CASE WHEN octet_length(document) = char_length(document) THEN document"
    " ELSE translate(normalize(document, NFKC), chr(962) || chr(304), chr(963) || 'I') END"
)
# The words Porter's C code stems otherwise than Snowball, each a regular expression of
# PostgreSQL (case aside; \m and \M bound a word), and what it is rewritten into: the word
# Snowball stems as the C code stems the first. (api/search.py has the same three, in Python.)
REWRITES = (
    (r"\m([a-z]*[aeiouy][b-df-hj-np-tv-xz][a-z]*log)(y|i|ies|is|ied|yed|ying)\M", r"\1"),
    (r"\m([a-z]*[aeiouy][b-df-hj-np-tv-xz][a-z]*bl)(y|i|ies|is|ied|yed|ying)\M", r"\1e"),
    (r"\m([a-z]*[aeiouy][a-z]*([chjkqvwx]))\2(ed|ing)\M", r"\1"),
)
# A text that may hold such a word: its words are rewritten (the rest, nine in ten metric
# descriptions, are not: the rewrites cost 20 µs a description); its document is rebuilt, up
# and down. A text that is not ASCII may hold one once in NFKC (fullwidth letters).
_CONCERNED = r"(log|bl)(y|i|ies|is|ied|yed|ying)\M|(cc|hh|jj|kk|qq|vv|ww|xx)(ed|ing)\M"
# Words, split as FTS5's unicode61 splits them (then rewritten), stemmed; a word under three
# bytes (two ASCII characters ending in s or y, which the stemmer alone would change) is kept.
_WORDS = "regexp_replace({text}, '[^[:alnum:]]+', ' ', 'g')"
_STEMMED = r"""
regexp_replace(
    to_tsvector('cdmo_search', regexp_replace({words}, '\m([a-z0-9][sy])\M', '\10', 'gi'))::text,
    '''([a-z0-9][sy])0''', '''\1''', 'g')::tsvector
"""
# One expression, which PostgreSQL inlines into the statement calling the function.
_FUNCTION = """
CREATE OR REPLACE FUNCTION cdmo_search_vector(document TEXT) RETURNS TSVECTOR
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN document ~* '{concerned}' OR octet_length(document) <> char_length(document)
    THEN {rewritten} ELSE {plain} END
$$
"""


def _rewritten(text: str) -> str:
    """SQL: `text` (an expression) with the words of REWRITES rewritten."""
    for pattern, replacement in REWRITES:
        text = f"regexp_replace({text}, '{pattern}', '{replacement}', 'gi')"
    return text


def _rebuild(kind: str) -> None:
    """The documents of `kind` whose words may stem otherwise now: those holding a word the
    rewrites concern, or a text that is not ASCII."""
    columns = _0016._columns(kind, "postgresql")
    document = " || ".join(
        f"setweight(cdmo_search_vector({column}), '{'ABCD'[min(position, 3)]}')"
        for position, column in enumerate(columns)
    )
    changed = " OR ".join(f"{column} ~* '{_CONCERNED}'" for column in columns)
    op.execute(
        f"UPDATE {kind}_fts f SET document = {document} FROM {kind}_history h"
        f" WHERE f.row_id = h.row_id AND ({changed}"
        f" OR {_0016._not_ascii(columns, 'postgresql')})"
    )
    op.execute(
        f"UPDATE {kind}_live_fts l SET document = f.document"
        f" FROM {kind}_history h JOIN {kind}_fts f ON f.row_id = h.row_id"
        " WHERE h.id = l.id AND h.valid_to IS NULL AND l.document <> f.document"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("SET LOCAL statement_timeout = 0")  # a rebuild of millions of rows
    words = _WORDS.format(text=_NFKC)
    rewritten, plain = (_STEMMED.format(words=w) for w in (_rewritten(words), words))
    op.execute(_FUNCTION.format(concerned=_CONCERNED, rewritten=rewritten, plain=plain))
    for kind in _0016.DOCUMENTS:
        _rebuild(kind)
    _0016._results_changed()


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("SET LOCAL statement_timeout = 0")
    op.execute(_0016._FUNCTION.format(body=_0016._SPLIT_AND_STEM.format(text=_NFKC)))
    for kind in _0016.DOCUMENTS:
        _rebuild(kind)
    _0016._results_changed()
