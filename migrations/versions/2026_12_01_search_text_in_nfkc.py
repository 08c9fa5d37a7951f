"""Search documents in Unicode NFKC, so that both databases find the same words.

FTS5's unicode61 and PostgreSQL's splitter disagreed on the compatibility forms Unicode gives
one word (api/normal_form.py): `x²y` was one word on SQLite and two on PostgreSQL, `①` a word
on SQLite only, a decomposed `é` split the word on PostgreSQL only, and SQLite folded the micro
sign `µ` to `μ` where PostgreSQL kept it. Documents are now indexed in NFKC, as `q` is read:

- PostgreSQL: `cdmo_search_vector` normalises its text first (`normalize(..., NFKC)`, for
  text that is not ASCII, then the final sigma and the dotted capital I folded: see
  api/normal_form.py);
- SQLite: the app registers `cdmo_nfkc(text)` on every connection, and its index statements
  wrap each column in it (registered here too, for the rebuild).

The documents of every history row and live record whose text is not ASCII (NFKC leaves ASCII
as it is) are rebuilt, and `dataset_state.changed_at` moves on, so that every process's
response cache forgets the searches it answered. Down, the same rows get their documents of
the text as stored.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 03:00:00
"""

import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The documents as this revision defines them (api/search.py may move on; this stays).
DOCUMENTS: dict[str, tuple[str, ...]] = {
    "metric": ("h.name", "{subjects}", "h.description", "h.evidence_quote"),
    "technology": ("h.name", "{examples}", "h.summary", "h.evidence_quote"),
    "pricing_model": ("h.name", "h.summary", "h.evidence_quote"),
    "regulatory_change": (
        "h.name",
        "h.agency",
        "h.summary",
        "h.expected_impact",
        "h.evidence_quote",
    ),
    "bottleneck": ("h.name", "h.summary", "h.evidence_quote"),
    "faq": ("h.name", "h.question", "h.summary", "h.evidence_quote"),
    "source": ("h.title", "h.author", "h.publisher", "h.text"),
}
# A history row's subjects are the subject rows current when the row began.
_SUBJECTS_PERIOD = (
    "s.metric_id = h.id AND s.valid_from <= h.valid_from"
    " AND (s.valid_to IS NULL OR s.valid_to > h.valid_from)"
)
PIECES = {
    "postgresql": {
        "subjects": "(SELECT string_agg(s.subject, ' ' ORDER BY s.position)"
        f" FROM metric_subject_history s WHERE {_SUBJECTS_PERIOD})",
        "examples": "CAST(h.examples AS TEXT)",
    },
    "sqlite": {
        "subjects": "(SELECT group_concat(subject, ' ') FROM (SELECT s.subject"
        f" FROM metric_subject_history s WHERE {_SUBJECTS_PERIOD} ORDER BY s.position))",
        "examples": "h.examples",
    },
}
NFKC = "cdmo_nfkc"

# 0006's function, with the text brought to NFKC first.
_SPLIT_AND_STEM = r"""
SELECT regexp_replace(
    to_tsvector('cdmo_search', regexp_replace(
        regexp_replace({text}, '[^[:alnum:]]+', ' ', 'g'),
        '\m([[:alnum:]][sy])\M', '\10', 'gi'))::text,
    '''([[:alnum:]][sy])0''', '''\1''', 'g')::tsvector
"""
_FUNCTION = """
CREATE OR REPLACE FUNCTION cdmo_search_vector(document TEXT) RETURNS TSVECTOR
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $${body}$$
"""


# The final sigma to the sigma, the dotted capital I to I (api/normal_form.py).
_FOLDED = str.maketrans({"\u03c2": "\u03c3", "\u0130": "I"})


def _nfkc(text: str | None) -> str | None:
    if text is None or text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_FOLDED)


def _columns(kind: str, dialect: str) -> list[str]:
    return [f"coalesce({c.format(**PIECES[dialect])}, '')" for c in DOCUMENTS[kind]]


def _not_ascii(columns: list[str], dialect: str) -> str:
    """SQL: whether any of `columns` holds a character outside ASCII."""
    if dialect == "postgresql":
        return " OR ".join(f"octet_length({c}) <> char_length({c})" for c in columns)
    # SQLite: UTF-8 takes more bytes than characters exactly when a character is not ASCII.
    return " OR ".join(f"length(CAST({c} AS BLOB)) <> length({c})" for c in columns)


def _rebuild_postgresql(kind: str) -> None:
    columns = _columns(kind, "postgresql")
    document = " || ".join(
        f"setweight(cdmo_search_vector({column}), '{'ABCD'[min(position, 3)]}')"
        for position, column in enumerate(columns)
    )
    op.execute(
        f"UPDATE {kind}_fts f SET document = {document} FROM {kind}_history h"
        f" WHERE f.row_id = h.row_id AND ({_not_ascii(columns, 'postgresql')})"
    )
    op.execute(
        f"UPDATE {kind}_live_fts l SET document = f.document"
        f" FROM {kind}_history h JOIN {kind}_fts f ON f.row_id = h.row_id"
        " WHERE h.id = l.id AND h.valid_to IS NULL AND l.document <> f.document"
    )


def _rebuild_sqlite(kind: str, normalise: bool) -> None:
    columns = _columns(kind, "sqlite")
    names = ", ".join(f"c{position}" for position in range(len(columns)))
    texts = ", ".join(f"{NFKC}({c})" if normalise else c for c in columns)
    changed = f"SELECT h.row_id FROM {kind}_history h WHERE {_not_ascii(columns, 'sqlite')}"
    op.execute(f"CREATE TEMPORARY TABLE rebuilt_{kind} AS {changed}")
    op.execute(f"DELETE FROM {kind}_fts WHERE rowid IN (SELECT row_id FROM rebuilt_{kind})")
    op.execute(
        f"INSERT INTO {kind}_fts (rowid, {names}) SELECT h.row_id, {texts}"
        f" FROM {kind}_history h WHERE h.row_id IN (SELECT row_id FROM rebuilt_{kind})"
    )
    live = (
        f"SELECT r.row_id FROM rebuilt_{kind} r JOIN {kind}_history h ON h.row_id = r.row_id"
        " WHERE h.valid_to IS NULL"
    )
    op.execute(f"DELETE FROM {kind}_live_fts WHERE rowid IN ({live})")
    op.execute(
        f"INSERT INTO {kind}_live_fts (rowid, {names}) SELECT f.rowid, {names}"
        f" FROM {kind}_fts f WHERE f.rowid IN ({live})"
    )
    op.execute(f"DROP TABLE rebuilt_{kind}")


def _migrate(normalise: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # normalize() costs PostgreSQL 8-9 µs a text even when it is ASCII, which NFKC leaves
        # as it is (the test: 0.5 µs); a load computes four texts a metric.
        text = (
            "CASE WHEN octet_length(document) = char_length(document) THEN document"
            " ELSE translate(normalize(document, NFKC), chr(962) || chr(304), chr(963) || 'I') END"
            if normalise
            else "document"
        )
        op.execute("SET LOCAL statement_timeout = 0")  # a rebuild of millions of rows
        op.execute(_FUNCTION.format(body=_SPLIT_AND_STEM.format(text=text)))
        for kind in DOCUMENTS:
            _rebuild_postgresql(kind)
    else:
        driver = bind.connection.driver_connection
        driver.create_function(NFKC, 1, _nfkc, deterministic=True)  # type: ignore[union-attr]
        for kind in DOCUMENTS:
            _rebuild_sqlite(kind, normalise)
    _results_changed()


def _results_changed() -> None:
    """Searches may answer otherwise now: a new `changed_at` (not a new version, as no record
    changed) is a new dataset revision, which empties the response cache of every process (on
    PostgreSQL the update's NOTIFY tells them; on SQLite each sees the file change)."""
    bind = op.get_bind()
    state = sa.table(
        "dataset_state", sa.column("id"), sa.column("changed_at", sa.DateTime(timezone=True))
    )
    current = bind.execute(sa.select(state.c.changed_at).where(state.c.id == 1)).scalar()
    if current is None:
        return
    current = current if current.tzinfo else current.replace(tzinfo=UTC)
    moment = max(datetime.now(UTC), current + timedelta(microseconds=1))
    if bind.dialect.name == "sqlite":  # stored without an offset, as api.records.versions does
        moment = moment.replace(tzinfo=None)
    bind.execute(sa.update(state).where(state.c.id == 1).values(changed_at=moment))


def upgrade() -> None:
    _migrate(normalise=True)


def downgrade() -> None:
    _migrate(normalise=False)
