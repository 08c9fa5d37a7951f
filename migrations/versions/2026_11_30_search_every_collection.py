"""Search on every collection, one query language on both databases.

- PostgreSQL: a `cdmo_search` text-search configuration: every token through Snowball's
  `porter` stemmer (the one FTS5's `porter` tokenizer implements), no stop words; documents
  are split where FTS5 splits them (see api/search.py).
- SQLite: every index is FTS5 with `porter unicode61 remove_diacritics 0` (PostgreSQL has no
  diacritics folding without an extension, so neither folds).
- `metric_fts` is rebuilt that way, and `<table>_fts` is added for technology, pricing_model,
  regulatory_change, bottleneck, faq and source: one document per history row (`row_id`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 04:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
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
TOKEN_TYPES = (
    "asciiword, word, numword, asciihword, hword, numhword, hword_asciipart, hword_part,"
    " hword_numpart, email, protocol, url, host, url_path, file, sfloat, float, int, uint,"
    " version, tag, entity"
)

# A document as FTS5 would index it: split at every run of characters that are not letters or
# digits (unicode61), then Porter-stemmed, except words under three characters (FTS5's porter
# leaves them alone; Snowball's turns "as" into "a"): those ending in s or y get a digit before
# stemming, dropped after in the vector's text form (where the lexeme reads 'as0'), whose input
# merges it with an "us" stemmed from "use", as FTS5's index does. One SQL expression, which
# the planner inlines: about twice the cost of a plain to_tsvector.
VECTOR_FUNCTION = r"""
CREATE FUNCTION cdmo_search_vector(document TEXT) RETURNS TSVECTOR
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT regexp_replace(
    to_tsvector('cdmo_search', regexp_replace(
        regexp_replace(document, '[^[:alnum:]]+', ' ', 'g'),
        '\m([[:alnum:]][sy])\M', '\10', 'gi'))::text,
    '''([[:alnum:]][sy])0''', '''\1''', 'g')::tsvector
$$
"""


def _columns(kind: str, dialect: str) -> list[str]:
    return [f"coalesce({c.format(**PIECES[dialect])}, '')" for c in DOCUMENTS[kind]]


def _create_postgresql(kind: str) -> None:
    op.execute(
        f"CREATE TABLE {kind}_fts ("
        " row_id INTEGER NOT NULL,"
        " document TSVECTOR NOT NULL,"
        f" CONSTRAINT pk_{kind}_fts PRIMARY KEY (row_id),"
        f" CONSTRAINT fk_{kind}_fts_row_id_{kind}_history FOREIGN KEY (row_id)"
        f" REFERENCES {kind}_history (row_id) ON DELETE CASCADE)"
    )
    op.execute(f"CREATE INDEX ix_{kind}_fts_document ON {kind}_fts USING gin (document)")
    document = " || ".join(
        f"setweight(cdmo_search_vector({column}), '{'ABCD'[min(position, 3)]}')"
        for position, column in enumerate(_columns(kind, "postgresql"))
    )
    op.execute(
        f"INSERT INTO {kind}_fts (row_id, document) SELECT h.row_id, {document}"
        f" FROM {kind}_history h"
    )


def _create_sqlite(kind: str) -> None:
    columns = _columns(kind, "sqlite")
    names = ", ".join(f"c{position}" for position in range(len(columns)))
    op.execute(
        f"CREATE VIRTUAL TABLE {kind}_fts USING fts5({names},"
        " tokenize = 'porter unicode61 remove_diacritics 0')"
    )
    op.execute(
        f"INSERT INTO {kind}_fts (rowid, {names}) SELECT h.row_id, {', '.join(columns)}"
        f" FROM {kind}_history h"
    )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute("DROP TABLE metric_fts")
    if postgres:
        op.execute(
            "CREATE TEXT SEARCH DICTIONARY cdmo_porter (TEMPLATE = snowball, Language = porter)"
        )
        op.execute("CREATE TEXT SEARCH CONFIGURATION cdmo_search (PARSER = default)")
        op.execute(
            "ALTER TEXT SEARCH CONFIGURATION cdmo_search"
            f" ADD MAPPING FOR {TOKEN_TYPES} WITH cdmo_porter"
        )
        op.execute(VECTOR_FUNCTION)
    for kind in DOCUMENTS:
        (_create_postgresql if postgres else _create_sqlite)(kind)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for kind in DOCUMENTS:
        op.execute(f"DROP TABLE {kind}_fts")
    # The metric index of 0005: English stemming and stop words, diacritics folded on SQLite.
    if postgres:
        op.execute("DROP FUNCTION cdmo_search_vector(text)")
        op.execute("DROP TEXT SEARCH CONFIGURATION cdmo_search")
        op.execute("DROP TEXT SEARCH DICTIONARY cdmo_porter")
        op.execute(
            "CREATE TABLE metric_fts ("
            " row_id INTEGER NOT NULL,"
            " document TSVECTOR NOT NULL,"
            " CONSTRAINT pk_metric_fts PRIMARY KEY (row_id),"
            " CONSTRAINT fk_metric_fts_row_id_metric_history FOREIGN KEY (row_id)"
            " REFERENCES metric_history (row_id) ON DELETE CASCADE)"
        )
        op.execute("CREATE INDEX ix_metric_fts_document ON metric_fts USING gin (document)")
        op.execute(
            "INSERT INTO metric_fts (row_id, document)"
            " SELECT h.row_id,"
            " setweight(to_tsvector('english', h.name), 'A')"
            " || setweight(to_tsvector('english', coalesce((SELECT string_agg(s.subject, ' '"
            f" ORDER BY s.position) FROM metric_subject_history s WHERE {_SUBJECTS_PERIOD}),"
            " '')), 'B')"
            " || setweight(to_tsvector('english', h.description), 'C')"
            " || setweight(to_tsvector('english', h.evidence_quote), 'D')"
            " FROM metric_history h"
        )
    else:
        op.execute(
            "CREATE VIRTUAL TABLE metric_fts USING fts5("
            "name, subjects, description, quote, tokenize = 'porter unicode61 remove_diacritics 2')"
        )
        op.execute(
            "INSERT INTO metric_fts (rowid, name, subjects, description, quote)"
            " SELECT h.row_id, h.name, coalesce((SELECT group_concat(s.subject, ' ')"
            f" FROM metric_subject_history s WHERE {_SUBJECTS_PERIOD}), ''),"
            " h.description, h.evidence_quote FROM metric_history h"
        )
