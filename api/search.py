"""Full-text search over metrics: SQLite FTS5 or PostgreSQL tsvector, kept in sync by writers.

Both indexes live in a `metric_fts` table that migrations create (it is not a model). Writers
call `reindex` in the transaction that changed metrics; readers join `matches`.
"""

import re
from collections.abc import Collection

from sqlalchemy import BindParameter, Float, String, Subquery, bindparam, text
from sqlmodel import Session

_WORD = re.compile(r"\w+")

_DOCUMENTS = {
    # Weights: name A, subjects B, description C, quote D.
    "postgresql": """
        INSERT INTO metric_fts (metric_id, document)
        SELECT m.id,
               setweight(to_tsvector('english', m.name), 'A')
            || setweight(to_tsvector('english', coalesce(
                   (SELECT string_agg(s.subject, ' ' ORDER BY s.position) FROM metric_subject s
                     WHERE s.metric_id = m.id), '')), 'B')
            || setweight(to_tsvector('english', m.description), 'C')
            || setweight(to_tsvector('english', m.evidence_quote), 'D')
        FROM metric m
    """,
    "sqlite": """
        INSERT INTO metric_fts (metric_id, name, subjects, description, quote)
        SELECT m.id, m.name,
               coalesce((SELECT group_concat(s.subject, ' ') FROM metric_subject s
                          WHERE s.metric_id = m.id), ''),
               m.description, m.evidence_quote
        FROM metric m
    """,
}
_MATCHES = {
    "postgresql": """
        SELECT metric_id, ts_rank(document, plainto_tsquery('english', :q)) AS score
        FROM metric_fts WHERE document @@ plainto_tsquery('english', :q)
    """,
    # bm25 is lower for better matches; the weights mirror PostgreSQL's A-D.
    "sqlite": """
        SELECT metric_id, -bm25(metric_fts, 0, 10.0, 5.0, 2.0, 1.0) AS score
        FROM metric_fts WHERE metric_fts MATCH :q
    """,
}


def words(query: str) -> list[str]:
    """The searchable words of a query; operators, quotes and punctuation are dropped."""
    return _WORD.findall(query.lower())


def reindex(session: Session, metric_ids: Collection[str] | None = None) -> None:
    """Rewrite the search documents of `metric_ids` (all metrics when None); drop stale ones."""
    dialect = session.get_bind().dialect.name
    if metric_ids is None:
        session.execute(text("DELETE FROM metric_fts"))
        session.execute(text(_DOCUMENTS[dialect]))
        return
    ids: BindParameter[list[str]] = bindparam("ids", list(metric_ids), expanding=True)
    session.execute(text("DELETE FROM metric_fts WHERE metric_id IN :ids").bindparams(ids))
    session.execute(text("DELETE FROM metric_fts WHERE metric_id NOT IN (SELECT id FROM metric)"))
    session.execute(text(_DOCUMENTS[dialect] + " WHERE m.id IN :ids").bindparams(ids))


def matches(session: Session, query: str) -> Subquery | None:
    """(metric_id, score) of the metrics matching every word of `query`; None if it has none."""
    terms = words(query)
    if not terms:
        return None
    dialect = session.get_bind().dialect.name
    q = " ".join(terms) if dialect == "postgresql" else " ".join(f'"{t}"' for t in terms)
    return (
        text(_MATCHES[dialect])
        .bindparams(q=q)
        .columns(metric_id=String, score=Float)
        .subquery("fts")
    )
