"""The source kind: documents and their verbatim text, declared once."""

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from api import search
from api.metrics.models import Metric
from api.records.kinds import Kind
from api.records.validation import Check, Problem
from api.sources import service
from api.sources.models import Source
from api.sources.schemas import SourcePublic, SourceRecord

MAX_SPAN_PROBLEMS = 20


def rules(data: dict[str, Any], check: Check) -> Iterator[Problem]:
    """A source's text may change only if every span quoting it still holds. A new source
    has no stored record quoting it (their source_id refers to it), so nothing is read: a
    load of 5,000 new sources asked each kind with evidence 25,000 times for none."""
    if check.old is None or not check.changed(data, "text"):
        return
    found = 0
    for kind in check.kinds.values():
        if not kind.evidence:
            continue
        table = kind.table
        pending = check.pending.get(kind.name, {})
        rows = check.session.execute(
            select(
                table.c.id, table.c.evidence_quote, table.c.evidence_start, table.c.evidence_end
            ).where(table.c.source_id == data["id"])
        )
        for record_id, quote, start, end in rows:
            if record_id not in pending and data["text"][start:end] != quote:
                found += 1
                if found <= MAX_SPAN_PROBLEMS:
                    yield Problem("text", f"{kind.label} {record_id!r} quotes [{start}:{end}]")


def _get(session: Session, record_id: str) -> SourcePublic:
    return service.get_source(session, source_id=record_id)


def _metric_count(session: Session, record_id: str) -> str:
    count = session.execute(
        select(func.count()).select_from(Metric).where(col(Metric.source_id) == record_id)
    ).scalar_one()
    return str(count)


SOURCE = Kind(
    name="source",
    label="source",
    plural="sources",
    section="",
    path="/sources",
    id_param="source_id",
    model=Source,
    record=SourceRecord,
    public=SourcePublic,
    get=_get,
    scope="admin",
    rules=rules,
    tag_variant=_metric_count,
    evidence=False,
    after_write=search.indexer("source"),
)
