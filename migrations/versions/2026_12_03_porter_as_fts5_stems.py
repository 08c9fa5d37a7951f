"""PostgreSQL stems words as SQLite's FTS5 does.

FTS5's `porter` tokenizer is Martin Porter's own C implementation, which departs from the
published algorithm (PostgreSQL's Snowball `porter`) in two rules of its step 2:

- `logi` becomes `log`: oncology, oncological and oncologic are one word on SQLite
  (`oncolog`), where PostgreSQL made oncology `oncologi`, a word of its own;
- `bli` becomes `ble` (in place of `abli` -> `able`), and the later steps go on from there:
  assembly is `assembl`, possibly `possibl`, incredibly `incred`, where PostgreSQL kept
  `assembli`, `possibli`, `incredibli`.

So `q=oncological` found eight metrics on SQLite and none on PostgreSQL. `cdmo_search_vector`
now rewrites the stems those rules would have changed (`cdmo_porter_c`); queries go through
the same rewrite (`cdmo_porter_query`, api/search.py).

FTS5 also leaves a token under three *bytes* unstemmed, where PostgreSQL's documents kept
words under three *characters* unstemmed: `μs` (three bytes in UTF-8) is `μ` on SQLite and was
`μs` here. The guard of two-character words now covers ASCII ones only, as the queries' does.

The documents of every history row and live record whose stems change (a lexeme ending in
`logi` or `bli`, or a text that is not ASCII) are rebuilt, and `dataset_state.changed_at`
moves on, so that every process's response cache forgets the searches it answered. Down, 0016's
function, and the documents it would stem otherwise rebuilt. SQLite is unchanged.

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
# Words, split as FTS5's unicode61 splits them, stemmed; a word under three bytes (two ASCII
# characters ending in s or y, which the stemmer alone would change) is kept as it is. The
# text form of the tsvector, its stems rewritten by `cdmo_porter_c`.
_STEMMED = r"""
regexp_replace(
    to_tsvector('cdmo_search', regexp_replace(
        regexp_replace({text}, '[^[:alnum:]]+', ' ', 'g'),
        '\m([a-z0-9][sy])\M', '\10', 'gi'))::text,
    '''([a-z0-9][sy])0''', '''\1''', 'g')
"""
# One expression, so that PostgreSQL inlines the function into the statement that calls it,
# as it did 0016's (called instead, it cost 66 µs a metric description against 25 µs).
_FUNCTION = """
CREATE OR REPLACE FUNCTION cdmo_search_vector(document TEXT) RETURNS TSVECTOR
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$SELECT CAST(cdmo_porter_c({stemmed}) AS TSVECTOR)$$
"""
# Stems (a tsvector's or a tsquery's text, each stem quoted) as FTS5's C stemmer leaves the
# word, where Snowball's did otherwise: step 2's `logi` -> `log` and `bli` -> `ble`, each when
# the stem before it has a measure m > 0 (a vowel followed by a consonant); after `ble`, step 4
# drops `ible` when m > 1 before it, else step 5 the final e. (Porter's y is a vowel after a
# consonant only; here it is always one: a word whose measure turns on that differs.)
# PL/pgSQL, whose plan is made once: most texts have no such stem and are returned at once.
_PORTER_C = r"""
CREATE OR REPLACE FUNCTION cdmo_porter_c(stems TEXT) RETURNS TEXT
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE STRICT AS $$
BEGIN
    IF strpos(stems, 'logi''') = 0 AND strpos(stems, 'bli''') = 0 THEN
        RETURN stems;
    END IF;
    RETURN regexp_replace(regexp_replace(regexp_replace(stems,
        '''([^'']*[aeiouy][^aeiouy''][^'']*)logi''', '''\1log''', 'g'),
        '''([^'']*[aeiouy][^aeiouy''][^'']*[aeiouy][^aeiouy''][^'']*)ibli''', '''\1''', 'g'),
        '''([^'']*[aeiouy][^aeiouy''][^'']*)bli''', '''\1bl''', 'g');
END
$$
"""
# A query's words (`'stem'`, `'stem':*` for a prefix) so rewritten.
_QUERY = """
CREATE OR REPLACE FUNCTION cdmo_porter_query(query TSQUERY) RETURNS TSQUERY
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$SELECT CAST(cdmo_porter_c(CAST(query AS TEXT)) AS TSQUERY)$$
"""
_DROPPED = (
    "DROP FUNCTION IF EXISTS cdmo_porter_query(TSQUERY)",
    "DROP FUNCTION IF EXISTS cdmo_porter_c(TEXT)",
)


def _rebuild(kind: str, *, upgrading: bool) -> None:
    """The documents of `kind` whose words may stem otherwise now: up, those with a lexeme
    ending in `logi` or `bli`; down, those whose text has `log` or `bl` in it; either way,
    those whose text is not ASCII."""
    columns = _0016._columns(kind, "postgresql")
    document = " || ".join(
        f"setweight(cdmo_search_vector({column}), '{'ABCD'[min(position, 3)]}')"
        for position, column in enumerate(columns)
    )
    if upgrading:
        changed = r"CAST(f.document AS TEXT) ~ '(logi|bli)'''"
    else:
        changed = " OR ".join(f"{column} ~* '(log|bl)'" for column in columns)
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
    for statement in (_PORTER_C, _QUERY):
        op.execute(statement)
    op.execute(_FUNCTION.format(stemmed=_STEMMED.format(text=_NFKC)))
    for kind in _0016.DOCUMENTS:
        _rebuild(kind, upgrading=True)
    _0016._results_changed()


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("SET LOCAL statement_timeout = 0")
    op.execute(_0016._FUNCTION.format(body=_0016._SPLIT_AND_STEM.format(text=_NFKC)))
    for kind in _0016.DOCUMENTS:
        _rebuild(kind, upgrading=False)
    for statement in _DROPPED:
        op.execute(statement)
    _0016._results_changed()
