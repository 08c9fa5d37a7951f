"""Full-text search over every collection, at any dataset version: one query language, compiled
to SQLite FTS5 or PostgreSQL tsquery so that both databases find the same records.

The language of `q` (QUERY_HELP says it to clients):

- words are ANDed: `cell therapy` finds records with both words; case does not matter, and words
  are stemmed (Porter's algorithm): `outsource` finds "outsourcing";
- `"a phrase"` finds the words next to each other, in order;
- `-word` (or `-"a phrase"`) leaves out records that have it;
- `OR` (upper case) between two terms finds either: `cell OR gene therapy` is
  (cell or gene) and therapy;
- `prefix*` finds words beginning with the prefix: the stems that begin with the prefix's stem
  (`outsourc*`: outsourcing, outsourced), and the words of the documents that begin with it,
  each stemmed as a query's word is (`personaliz*`: personalized, whose stem, `person`, is
  shorter than the prefix; so also the other words stemmed `person`, as `personalized` finds);
- a word is a run of letters and digits; anything else separates words, so `CAR-T` is the
  phrase "car t"; a query with no word to find (only exclusions or punctuation) finds nothing;
- text, searched and searched for, is compared in Unicode's NFKC form (api.normal_form): `x2`
  finds "x²", `file` finds "ﬁle", `μg` finds "µg", and a composed `é` a decomposed one (the
  final sigma and the dotted capital I folded too).

The two databases index and read alike: documents are split into words at every character
that is not a letter or digit (FTS5's unicode61; on PostgreSQL a regular expression does it
before the parser), stemmed by the same Porter stemmer (FTS5's `porter`; PostgreSQL's Snowball
`porter` in the `cdmo_search` configuration, the words it would stem otherwise than Porter's own
C code, which FTS5 runs, rewritten first: migration 0024), words under three bytes left as they
are, with no stop words on either, so `the` is a word.

Each kind has two indexes, which migrations create (they are not models): `<table>_fts` holds
one document per row of its history table (every version of every record), keyed by the
history `row_id`, for reads at a version; `<table>_live_fts` holds the documents of the live
records only (migration 0008), so that a live search ranks and counts current documents
without joining the history. Writers call the kind's `indexer` in the transaction that wrote
records; readers join `matches`, the records found at the version the session reads (the live
one, or its as_of), and may `count` live matches from the index alone. A live search ranks by
the statistics of the live documents (FTS5's bm25 weighs a word by how many documents hold it).

Both indexes hold stems, not words; `search_word` holds each distinct word of each kind's
documents as written (NFKC, lower case; migration 0025), added by the same writers, so that a
prefix can be completed into the words that begin with it (`complete`).
"""

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, Float, Integer, String, Subquery, bindparam, text
from sqlmodel import Session

from api import normal_form
from api.records import asof

if TYPE_CHECKING:
    from api.records.store import Change

QUERY_HELP = (
    "Full-text search: words are ANDed and stemmed (outsource finds outsourcing); "
    '`"a phrase"` finds adjacent words, `-word` excludes, `OR` between two terms finds '
    "either, `prefix*` matches word beginnings; any character not a letter or digit separates "
    "words (CAR-T is the phrase car t); text is compared in Unicode NFKC form (x² is x2, µ is μ)."
)

# Columns of each kind's document, most weighted first (PostgreSQL weights A, B, C, then D for
# the rest; FTS5's bm25 the same order). `{subjects}` is the metric's subject tags.
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
_WEIGHTS = "ABCD"
_BM25 = (10.0, 5.0, 2.0, 1.0)
_PIECES = {
    "postgresql": {
        "subjects": "(SELECT string_agg(s.subject, ' ' ORDER BY s.position)"
        " FROM metric_subject_history s WHERE s.metric_id = h.id AND s.valid_to IS NULL)",
        "examples": "CAST(h.examples AS TEXT)",
    },
    "sqlite": {
        "subjects": "(SELECT group_concat(subject, ' ') FROM (SELECT s.subject"
        " FROM metric_subject_history s WHERE s.metric_id = h.id AND s.valid_to IS NULL"
        " ORDER BY s.position))",
        "examples": "h.examples",
    },
}
_AT_VERSION = "h.valid_from <= :version AND (h.valid_to IS NULL OR h.valid_to > :version)"


def _columns(kind: str, dialect: str) -> list[str]:
    """The SQL expressions of `kind`'s document columns, in NFKC (api.normal_form: on
    PostgreSQL `cdmo_search_vector` normalises)."""
    columns = [f"coalesce({column.format(**_PIECES[dialect])}, '')" for column in DOCUMENTS[kind]]
    if dialect == "sqlite":
        return [f"{normal_form.SQL_FUNCTION}({column})" for column in columns]
    return columns


def _weight(position: int) -> str:
    return _WEIGHTS[min(position, len(_WEIGHTS) - 1)]


# PostgreSQL: `||` numbers a vector's words on from the last of the one before it, so the
# first word of a column followed the last of the one before, and a phrase was found across
# them ("therapy cell": a name's last word, the subjects' first), which FTS5, whose columns
# are apart, never finds. A word no query can hold (queries' words are letters and digits) is
# put between each two columns, then taken out: its position stays a gap (migration 0026).
GAP = " gap"
# The tsvector ' gap':1, its colon written chr(58): SQLAlchemy's text() reads `:1` as a
# parameter.
_GAP_VECTOR = f"CAST('''{GAP}''' || chr(58) || '1' AS tsvector)"


def _document(vectors: Sequence[str]) -> str:
    """PostgreSQL: one document of the weighted `vectors` of its columns (SQL expressions),
    most weighted first, a position apart."""
    if len(vectors) == 1:
        return vectors[0]
    return f"ts_delete({f' || {_GAP_VECTOR} || '.join(vectors)}, '{GAP}')"


def _vector(columns: Sequence[str]) -> str:
    """PostgreSQL: the weighted document of `columns` (SQL expressions), most weighted first."""
    return _document(
        [
            f"setweight(cdmo_search_vector({column}), '{_weight(position)}')"
            for position, column in enumerate(columns)
        ]
    )


def index_statement(kind: str, dialect: str) -> str:
    """INSERT the documents of `kind`'s history rows written at `:version` not yet indexed."""
    columns = _columns(kind, dialect)
    if dialect == "postgresql":
        return (
            f"INSERT INTO {kind}_fts (row_id, document) SELECT h.row_id, {_vector(columns)}"
            f" FROM {kind}_history h WHERE h.valid_from = :version"
            " ON CONFLICT (row_id) DO NOTHING"
        )
    names = ", ".join(f"c{position}" for position in range(len(columns)))
    return (
        f"INSERT INTO {kind}_fts (rowid, {names}) SELECT h.row_id, {', '.join(columns)}"
        f" FROM {kind}_history h WHERE h.valid_from = :version"
        f" AND NOT EXISTS (SELECT 1 FROM {kind}_fts f WHERE f.rowid = h.row_id)"
    )


# The live index: drop the documents of records changed (`:ids`), then add those of the rows
# they have now, copied from the history index.
_LIVE_STATEMENTS = {
    "postgresql": (
        "DELETE FROM {kind}_live_fts WHERE id = ANY(:ids)",
        "INSERT INTO {kind}_live_fts (id, document) SELECT h.id, f.document"
        " FROM {kind}_history h JOIN {kind}_fts f ON f.row_id = h.row_id"
        " WHERE h.id = ANY(:ids) AND h.valid_to IS NULL",
    ),
    "sqlite": (
        "DELETE FROM {kind}_live_fts WHERE rowid IN (SELECT h.row_id FROM {kind}_history h"
        " WHERE h.id IN :ids AND h.valid_to = :version)",
        "INSERT INTO {kind}_live_fts (rowid, {names}) SELECT f.rowid, {names} FROM {kind}_fts f"
        " WHERE f.rowid IN (SELECT h.row_id FROM {kind}_history h"
        " WHERE h.id IN :ids AND h.valid_from = :version AND h.valid_to IS NULL)"
        " AND NOT EXISTS (SELECT 1 FROM {kind}_live_fts l WHERE l.rowid = f.rowid)",
    ),
}
_IDS_PER_STATEMENT = 5000


def live_statements(kind: str, dialect: str) -> tuple[str, str]:
    """(DELETE, INSERT) keeping `kind`'s live index: the documents of records `:ids` changed
    at `:version` go, those of their rows now current come."""
    names = ", ".join(f"c{position}" for position in range(len(DOCUMENTS[kind])))
    drop, add = _LIVE_STATEMENTS[dialect]
    return drop.format(kind=kind), add.format(kind=kind, names=names)


# Documents computed ahead (PostgreSQL). A document costs PostgreSQL about 100 µs (the
# expression of `cdmo_search_vector`, four times for a metric): a load of 10,000 metrics would
# spend a second on them inside its transaction, after its rows are in. They depend on the
# record alone, so a load has them computed on a connection of its own while it checks and
# writes (`ahead`), and copies them in; every other write indexes its rows by `index_statement`.
AHEAD = "search_documents_ahead"  # session.info: {kind: Future of {record id: document}}


def _texts(kind: str, data: dict[str, Any]) -> list[str | None]:
    """The texts of a record's document, as `_columns` reads them from its history row."""
    texts: list[str | None] = []
    for column in DOCUMENTS[kind]:
        if column == "{subjects}":
            texts.append(" ".join(data["subjects"]) or None)
        elif column == "{examples}":  # the JSON column's text, as the store writes it
            texts.append(orjson.dumps(data["examples"]).decode())
        elif column == "h.evidence_quote":
            texts.append(data["evidence"]["quote"])
        else:
            texts.append(data[column.removeprefix("h.")])
    return texts


def ahead(engine: Engine, kind: str, records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """PostgreSQL: the documents of `records` (record id -> tsvector in its text form),
    computed on a connection of `engine`'s own, outside the caller's transaction."""
    names = [f"c{position}" for position in range(len(DOCUMENTS[kind]))]
    with engine.connect() as connection:
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(
                f"CREATE TEMPORARY TABLE stage_{kind}_document (id TEXT,"
                f" {', '.join(f'{name} TEXT' for name in names)}) ON COMMIT DROP"
            )
            rows = [[data["id"], *_texts(kind, data)] for data in records]
            with cursor.copy(
                f"COPY stage_{kind}_document (id, {', '.join(names)}) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
            # A column whose texts repeat (a load's records share subjects, often descriptions)
            # has each distinct text's vector computed once; the others' are computed per
            # record. Either way the document is `_vector`'s expression over the same texts.
            shared = [
                position
                for position in range(len(names))
                if 2 * len({row[position + 1] for row in rows}) <= len(rows)
            ]
            if shared:
                distinct = " UNION ".join(
                    f"SELECT coalesce(c{position}, '') FROM stage_{kind}_document"
                    for position in shared
                )
                cursor.execute(
                    f"CREATE TEMPORARY TABLE stage_{kind}_vector ON COMMIT DROP AS"
                    f" SELECT t, cdmo_search_vector(t) AS v FROM ({distinct}) AS texts (t)"
                )
                cursor.execute(f"ANALYZE stage_{kind}_vector")
            joins = "".join(
                f" JOIN stage_{kind}_vector v{p} ON v{p}.t = coalesce(h.c{p}, '')" for p in shared
            )
            vectors = [
                f"v{p}.v" if p in shared else f"cdmo_search_vector(coalesce(h.c{p}, ''))"
                for p in range(len(names))
            ]
            document = _document(
                [f"setweight({vector}, '{_weight(p)}')" for p, vector in enumerate(vectors)]
            )
            cursor.execute(
                f"SELECT h.id, CAST({document} AS TEXT) FROM stage_{kind}_document h{joins}"
            )
            return dict(cursor.fetchall())
        finally:
            cursor.close()
            connection.rollback()


def _copy_documents(
    session: Session, kind: str, version: int, changes: Sequence["Change"], found: dict[str, str]
) -> bool:
    """Index the rows written at `version` with documents computed ahead (`found`), and
    the live index with the same documents, read from there by the database (a second COPY
    of 100,000 documents cost 0.4 s more); False (nothing done) if a row has none."""
    if not found:
        return False
    rows = session.execute(
        text(
            f"SELECT h.row_id, h.id FROM {kind}_history h WHERE h.valid_from = :version"
            f" AND NOT EXISTS (SELECT 1 FROM {kind}_fts f WHERE f.row_id = h.row_id)"
        ),
        {"version": version},
    ).all()
    written = [change.record_id for change in changes if change.new is not None]
    if any(record_id not in found for _row_id, record_id in rows) or any(
        record_id not in found for record_id in written
    ):
        return False
    drop, add = (text(statement) for statement in live_statements(kind, "postgresql"))
    changed = [change.record_id for change in changes if change.old is not None]
    for start in range(0, len(changed), _IDS_PER_STATEMENT):
        session.execute(drop, {"ids": changed[start : start + _IDS_PER_STATEMENT]})
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {kind}_fts (row_id, document) FROM STDIN") as copy:
            for row_id, record_id in rows:
                copy.write_row([row_id, found[record_id]])
    finally:
        cursor.close()
    for start in range(0, len(written), _IDS_PER_STATEMENT):
        session.execute(add, {"ids": written[start : start + _IDS_PER_STATEMENT]})
    return True


def _computed(session: Session, kind: str) -> dict[str, str]:
    """The documents computed ahead for this transaction's writes of `kind`, if any. Their
    connection is a saving, not a need: if it failed (a pool of one connection, say), the
    rows are indexed in the transaction as every other write's are."""
    future = session.info.get(AHEAD, {}).get(kind)
    try:
        return future.result() if future is not None else {}
    except Exception:
        return {}


# The words of documents, kept for completing prefixes (migration 0025 has the same reading).
LONGEST_WORD = 64  # bytes: longer words are not stemmed, and a prefix finds them in the index
_WORDS_PER_STATEMENT = 5000
_REMEMBER = {
    "postgresql": "INSERT INTO search_word (kind, word) VALUES (:kind, :word)"
    " ON CONFLICT DO NOTHING",
    "sqlite": "INSERT OR IGNORE INTO search_word (kind, word) VALUES (:kind, :word)",
}


def words(texts: Iterable[str | None]) -> set[str]:
    """The distinct words of `texts`, read as a query's are (NFKC, lower case), up to
    LONGEST_WORD bytes."""
    found: set[str] = set()
    for written in texts:
        if written:
            found.update(_WORD.findall(normal_form.query_text(written)))
    return {word for word in found if len(word.encode()) <= LONGEST_WORD}


def _remember_words(session: Session, kind: str, changes: Sequence["Change"]) -> None:
    """Add the words of the records written to `search_word`: those their texts did not
    hold before the change (those were added when it was written), if it does not hold them
    already. A change of figures alone adds none, and runs no statement."""
    texts: set[str | None] = set()
    before: set[str | None] = set()
    for change in changes:
        if change.new is not None:
            texts.update(_texts(kind, change.new))
            if change.old is not None:
                before.update(_texts(kind, change.old.data))
    statement = text(_REMEMBER[session.get_bind().dialect.name])
    # In one order, whichever transaction inserts them.
    new = sorted(words(texts - before) - words(before))
    for start in range(0, len(new), _WORDS_PER_STATEMENT):
        group = new[start : start + _WORDS_PER_STATEMENT]
        session.execute(statement, [{"kind": kind, "word": word} for word in group])


def indexer(kind: str) -> Callable[[Session, int, Sequence["Change"]], None]:
    """The `after_write` of `kind`: index the rows written at `version` in this transaction,
    keep the live index to the records as they now are, and remember their words."""

    def index_new(session: Session, version: int, changes: Sequence["Change"]) -> None:
        dialect = session.get_bind().dialect.name
        _remember_words(session, kind, changes)
        if _copy_documents(session, kind, version, changes, _computed(session, kind)):
            return
        if any(change.new is not None for change in changes):
            session.execute(text(index_statement(kind, dialect)), {"version": version})
        drop, add = (
            text(statement).bindparams(bindparam("ids", expanding=dialect == "sqlite"))
            for statement in live_statements(kind, dialect)
        )
        changed = [change.record_id for change in changes if change.old is not None]
        written = [change.record_id for change in changes if change.new is not None]
        for statement, ids in ((drop, changed), (add, written)):
            for start in range(0, len(ids), _IDS_PER_STATEMENT):
                group = ids[start : start + _IDS_PER_STATEMENT]
                session.execute(statement, {"ids": group, "version": version})

    return index_new


# The query language.

_WORD = re.compile(r"[^\W_]+")
_TERM = re.compile(r'(-?)"([^"]*)"(\*?)|(\S+)')


@dataclass
class Term:
    """Words that must appear next to each other (one word: anywhere); `prefix` marks the last
    as a word beginning."""

    words: list[str]
    prefix: bool = False
    # The documents' words that begin with the last word, when it is a prefix (`complete`).
    completions: list[str] = field(default_factory=list)


@dataclass
class Query:
    """Every clause must match (a clause: any of its terms); no excluded term may."""

    clauses: list[list[Term]] = field(default_factory=list)
    excluded: list[Term] = field(default_factory=list)


def parse(q: str) -> Query:
    """The clauses of `q` in the language the module describes."""
    query = Query()
    either = False  # the last token was OR
    last_positive = False  # the last term was a positive one (an OR may extend its clause)
    for match in _TERM.finditer(q):
        negated, phrase, star, bare = match.groups()
        if bare == "OR":
            either = last_positive
            continue
        if bare is not None:
            negated = "-" if bare.startswith("-") and len(bare) > 1 else ""
            body = bare[1:] if negated else bare
            star = "*" if body.endswith("*") else ""
            phrase = body
        # Words in NFKC, as documents are indexed; the syntax is ASCII (a fullwidth quote or
        # minus is in a word, not a phrase's end or an exclusion).
        words = _WORD.findall(normal_form.query_text(phrase))
        if not words:
            continue
        term = Term(words, prefix=bool(star))
        if negated:
            query.excluded.append(term)
            last_positive = either = False
        elif either:
            query.clauses[-1].append(term)
            either = False
        else:
            query.clauses.append([term])
            last_positive = True
    return query


# A prefix is completed into at most this many words, the shortest first: those whose stems may
# be shorter than the prefix (a stemmer takes at most about ten letters off a word: the words
# longer than that are found by the stems beginning with the prefix's anyway).
COMPLETIONS = 64


def complete(session: Session, kind: str, query: Query) -> None:
    """Fill each prefix term's `completions`: the words of `kind`'s documents that begin with
    it (but are not it), the shortest first."""
    found = text(
        "SELECT word FROM search_word WHERE kind = :kind AND word > :prefix AND word < :past"
        " ORDER BY length(word), word LIMIT :most"
    )
    for term in [t for clause in query.clauses for t in clause] + query.excluded:
        if term.prefix:
            prefix = term.words[-1]
            params = {"kind": kind, "prefix": prefix, "past": prefix + "\U0010ffff"}
            term.completions = list(session.scalars(found, {**params, "most": COMPLETIONS}))


def _fts5(query: Query) -> str:
    def term(t: Term) -> str:
        found = '"' + " ".join(t.words) + '"' + ("*" if t.prefix else "")
        if not t.completions:
            return found
        start = " ".join(t.words[:-1])
        completed = ['"' + f"{start} {word}".strip() + '"' for word in t.completions]
        return "(" + " OR ".join([found, *completed]) + ")"

    found = " AND ".join("(" + " OR ".join(map(term, clause)) + ")" for clause in query.clauses)
    if query.excluded:
        found = f"({found}) NOT ({' OR '.join(map(term, query.excluded))})"
    return found


# The words whose stems Porter's C code (FTS5's) and Snowball (PostgreSQL's) make otherwise,
# and what a query's word is rewritten into before PostgreSQL stems it: the word Snowball
# stems as the C code stems the first (oncology into `oncolog`, assembly into `assemble`,
# trekking into `trek`). Documents are rewritten alike (migration 0024's REWRITES).
_C_STEMMER_READS = (
    (
        re.compile(r"^([a-z]*[aeiouy][b-df-hj-np-tv-xz][a-z]*log)(?:y|i|ies|is|ied|yed|ying)$"),
        r"\1",
    ),
    (
        re.compile(r"^([a-z]*[aeiouy][b-df-hj-np-tv-xz][a-z]*bl)(?:y|i|ies|is|ied|yed|ying)$"),
        r"\1e",
    ),
    (re.compile(r"^([a-z]*[aeiouy][a-z]*([chjkqvwx]))\2(?:ed|ing)$"), r"\1"),
)


def as_c_stemmer_reads(word: str) -> str:
    """`word`, lower-cased, rewritten where Snowball would stem it otherwise than FTS5."""
    word = word.lower()
    for pattern, replacement in _C_STEMMER_READS:
        word = pattern.sub(replacement, word)
    return word


def _tsquery(query: Query) -> tuple[str, dict[str, str]]:
    """A PostgreSQL tsquery expression and its parameters. Words under three bytes are not
    stemmed, as in FTS5 (and in documents, see migration 0024's `cdmo_search_vector`): they
    go through the `simple` configuration. Others are stemmed as documents are, rewritten
    first where Snowball would stem them otherwise than FTS5 (`as_c_stemmer_reads`)."""
    params: dict[str, str] = {}

    def word(w: str, prefix: bool) -> str:
        name = f"q{len(params)}"
        short = len(w.encode()) < 3
        params[name] = f"'{w if short else as_c_stemmer_reads(w)}'" + (":*" if prefix else "")
        return f"to_tsquery('{'simple' if short else 'cdmo_search'}', :{name})"

    def last_word(t: Term) -> str:
        """The term's last word, or (a prefix completed) it and its completions."""
        found = word(t.words[-1], t.prefix)
        if not t.completions:
            return found
        return "(" + " || ".join([found, *(word(w, False) for w in t.completions)]) + ")"

    def term(t: Term) -> str:
        if len(t.words) == 1:
            return last_word(t)
        found = word(t.words[0], False)
        for w in t.words[1:-1]:
            found = f"tsquery_phrase({found}, {word(w, False)})"
        return f"tsquery_phrase({found}, {last_word(t)})"

    found = " && ".join("(" + " || ".join(map(term, clause)) + ")" for clause in query.clauses)
    if query.excluded:
        found = f"({found}) && !!({' || '.join(map(term, query.excluded))})"
    return found, params


_MATCHES = {
    "postgresql": """
        SELECT h.id AS id, ts_rank(f.document, query.q) AS score
        FROM {kind}_fts f JOIN {kind}_history h ON h.row_id = f.row_id,
             (SELECT {tsquery} AS q) AS query
        WHERE f.document @@ query.q AND {period}
    """,
    # bm25 is lower for better matches; the weights mirror PostgreSQL's A-D.
    "sqlite": """
        SELECT h.id AS id, -bm25({kind}_fts, {weights}) AS score
        FROM {kind}_fts JOIN {kind}_history h ON h.row_id = {kind}_fts.rowid
        WHERE {kind}_fts MATCH :q AND {period}
    """,
}
_LIVE_MATCHES = {
    "postgresql": """
        SELECT f.id AS id, ts_rank(f.document, query.q) AS score
        FROM {kind}_live_fts f, (SELECT {tsquery} AS q) AS query
        WHERE f.document @@ query.q
    """,
    "sqlite": """
        SELECT h.id AS id, -bm25({kind}_live_fts, {weights}) AS score
        FROM {kind}_live_fts JOIN {kind}_history h ON h.row_id = {kind}_live_fts.rowid
        WHERE {kind}_live_fts MATCH :q
    """,
}
_LIVE_COUNT = {
    "postgresql": "SELECT count(*) FROM {kind}_live_fts f WHERE f.document @@ ({tsquery})",
    "sqlite": "SELECT count(*) FROM {kind}_live_fts WHERE {kind}_live_fts MATCH :q",
}


# A live search's best `:rows` after `:offset`, in relevance order (ties by id), and how many
# it finds in all, from the live index alone. On SQLite the scores are kept once, and only the
# matches scoring at least the last wanted row's are joined to the history for their ids (the
# others cannot reach the page).
_LIVE_RANKED = {
    # The matches' scores are taken in a subquery of their own (OFFSET 0 keeps it one), so
    # that the count over them holds (id, score) rather than each match's document: at
    # 1,000,000 metrics, 145,000 matches spilled 100 MB to temporary files (455-475 ms,
    # against 324-332 ms so).
    "postgresql": """
        SELECT s.id AS id, s.score AS score, count(*) OVER () AS matches
        FROM (
            SELECT f.id AS id, ts_rank(f.document, query.q) AS score
            FROM {kind}_live_fts f, (SELECT {tsquery} AS q) AS query
            WHERE f.document @@ query.q OFFSET 0
        ) AS s
        ORDER BY s.score DESC, s.id LIMIT :rows OFFSET :offset
    """,
    "sqlite": """
        WITH scored AS MATERIALIZED (
            SELECT rowid AS row_id, -bm25({kind}_live_fts, {weights}) AS score
            FROM {kind}_live_fts WHERE {kind}_live_fts MATCH :q
        ), cut AS (
            SELECT score FROM scored ORDER BY score DESC LIMIT 1 OFFSET :offset + :rows - 1
        )
        SELECT h.id AS id, scored.score AS score, (SELECT count(*) FROM scored) AS matches
        FROM scored JOIN {kind}_history h ON h.row_id = scored.row_id
        WHERE NOT EXISTS (SELECT 1 FROM cut) OR scored.score >= (SELECT score FROM cut)
        ORDER BY scored.score DESC, h.id LIMIT :rows OFFSET :offset
    """,
}


def _compiled(session: Session, kind: str, query: Query) -> tuple[str, dict[str, object]]:
    """(the tsquery expression or "", the parameters) of `query`, its prefixes completed, for
    the session's database."""
    complete(session, kind, query)
    if session.get_bind().dialect.name == "postgresql":
        tsquery, words = _tsquery(query)
        return tsquery, dict(words)
    return "", {"q": _fts5(query)}


def matches(session: Session, kind: str, q: str) -> Subquery | None:
    """(id, score) of the records of `kind` that `q` finds at the version the session reads;
    None if the query has no word to find."""
    dialect = session.get_bind().dialect.name
    query = parse(q)
    if not query.clauses:
        return None
    version = asof.read_version(session)
    tsquery, params = _compiled(session, kind, query)
    weights = ", ".join(str(_BM25[min(i, 3)]) for i in range(len(DOCUMENTS[kind])))
    if version is None:
        sql = _LIVE_MATCHES[dialect].format(kind=kind, weights=weights, tsquery=tsquery)
    else:
        params["version"] = version
        sql = _MATCHES[dialect].format(
            kind=kind, weights=weights, period=_AT_VERSION, tsquery=tsquery
        )
    statement = text(sql).bindparams(**params)
    return statement.columns(id=String, score=Float).subquery(f"{kind}_found")


def ranked(session: Session, kind: str, q: str, *, rows: int, offset: int) -> Subquery | None:
    """(id, score, matches) of the live records of `kind` that `q` finds, ranked (ties by
    id), `rows` of them after `offset`, with the number of all matches: a page of a search
    with no other filter. None when the session
    reads at a version, or `q` has no word to find."""
    query = parse(q)
    if asof.read_version(session) is not None or not query.clauses:
        return None
    dialect = session.get_bind().dialect.name
    tsquery, params = _compiled(session, kind, query)
    weights = ", ".join(str(_BM25[min(i, 3)]) for i in range(len(DOCUMENTS[kind])))
    sql = _LIVE_RANKED[dialect].format(kind=kind, weights=weights, tsquery=tsquery)
    statement = text(sql).bindparams(**params, rows=rows, offset=offset)
    return statement.columns(id=String, score=Float, matches=Integer).subquery(f"{kind}_ranked")


def count(session: Session, kind: str, q: str) -> int | None:
    """How many live records of `kind` `q` finds, from the live index alone; None when the
    session reads at a version (as_of), which this index does not hold."""
    if asof.read_version(session) is not None:
        return None
    query = parse(q)
    if not query.clauses:
        return 0
    dialect = session.get_bind().dialect.name
    tsquery, params = _compiled(session, kind, query)
    sql = _LIVE_COUNT[dialect].format(kind=kind, tsquery=tsquery)
    return int(session.execute(text(sql).bindparams(**params)).scalar_one())
