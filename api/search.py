"""Full-text search over metrics, at any dataset version: SQLite FTS5 or PostgreSQL tsvector.

The index holds one document per row of `metric_history` (every version of every metric), keyed
by its `row_id`, in a `metric_fts` table that migrations create (it is not a model). Writers
call `index_new` in the transaction that wrote metrics; readers join `matches`, which keeps the
documents of the rows current at the version the session reads (the live one, or its as_of).
"""

import re

from sqlalchemy import Float, String, Subquery, text
from sqlmodel import Session

from api.records import asof

_WORD = re.compile(r"\w+")

_INDEX = {
    # Weights: name A, subjects B, description C, quote D.
    "postgresql": """
        INSERT INTO metric_fts (row_id, document)
        SELECT h.row_id,
               setweight(to_tsvector('english', h.name), 'A')
            || setweight(to_tsvector('english', coalesce(
                   (SELECT string_agg(s.subject, ' ' ORDER BY s.position)
                      FROM metric_subject_history s
                     WHERE s.metric_id = h.id AND s.valid_to IS NULL), '')), 'B')
            || setweight(to_tsvector('english', h.description), 'C')
            || setweight(to_tsvector('english', h.evidence_quote), 'D')
        FROM metric_history h WHERE h.valid_from = :version
        ON CONFLICT (row_id) DO NOTHING
    """,
    "sqlite": """
        INSERT INTO metric_fts (rowid, name, subjects, description, quote)
        SELECT h.row_id, h.name,
               coalesce((SELECT group_concat(s.subject, ' ') FROM metric_subject_history s
                          WHERE s.metric_id = h.id AND s.valid_to IS NULL), ''),
               h.description, h.evidence_quote
        FROM metric_history h
        WHERE h.valid_from = :version
          AND NOT EXISTS (SELECT 1 FROM metric_fts f WHERE f.rowid = h.row_id)
    """,
}
_MATCHES = {
    "postgresql": """
        SELECT h.id AS metric_id, ts_rank(f.document, plainto_tsquery('english', :q)) AS score
        FROM metric_fts f JOIN metric_history h ON h.row_id = f.row_id
        WHERE f.document @@ plainto_tsquery('english', :q) AND {period}
    """,
    # bm25 is lower for better matches; the weights mirror PostgreSQL's A-D.
    "sqlite": """
        SELECT h.id AS metric_id, -bm25(metric_fts, 10.0, 5.0, 2.0, 1.0) AS score
        FROM metric_fts JOIN metric_history h ON h.row_id = metric_fts.rowid
        WHERE metric_fts MATCH :q AND {period}
    """,
}
_LIVE = "h.valid_to IS NULL"
_AT_VERSION = "h.valid_from <= :version AND (h.valid_to IS NULL OR h.valid_to > :version)"


def words(query: str) -> list[str]:
    """The searchable words of a query; operators, quotes and punctuation are dropped."""
    return _WORD.findall(query.lower())


def index_new(session: Session, version: int) -> None:
    """Index the metric rows written at `version` (in this transaction) not yet indexed."""
    dialect = session.get_bind().dialect.name
    session.execute(text(_INDEX[dialect]), {"version": version})


def matches(session: Session, query: str) -> Subquery | None:
    """(metric_id, score) of the metrics matching every word of `query` at the version the
    session reads; None if the query has no words."""
    terms = words(query)
    if not terms:
        return None
    dialect = session.get_bind().dialect.name
    q = " ".join(terms) if dialect == "postgresql" else " ".join(f'"{t}"' for t in terms)
    version = asof.read_version(session)
    statement = text(_MATCHES[dialect].format(period=_LIVE if version is None else _AT_VERSION))
    statement = statement.bindparams(q=q, **({} if version is None else {"version": version}))
    return statement.columns(metric_id=String, score=Float).subquery("fts")
