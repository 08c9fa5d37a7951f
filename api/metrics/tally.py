"""The facet tallies: how many live metrics have each combination of the values facets count by
(`metric_facet_count`), and the same for each subject they are tagged with
(`metric_subject_count`).

Kept in the transaction that changes metrics (each change takes one from its old combination
and adds one to its new), so they are exact at every committed version; the facets and totals
of the live data sum them instead of counting every metric (`api.metrics.service`).
"""

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Table, delete
from sqlmodel import Session

from api.metrics.models import FACET_COUNT, SUBJECT_COUNT, SUBJECTS_SEPARATOR, TALLIED
from api.records import store

if TYPE_CHECKING:
    from api.records.store import Change


def _values(data: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(data[name] for name in TALLIED)


def cell(values: Sequence[Any]) -> str:
    """The key of a combination: its values as a JSON array (migration 0008 writes the same)."""
    *head, forecast, geography = values
    return orjson.dumps([*head, bool(forecast), geography]).decode()


def subjects_key(subjects: Sequence[str]) -> str:
    """A metric's subjects as the tally by subject keeps them (migration 0013 writes the same):
    each between two separators, "" for none."""
    if not subjects:
        return ""
    return SUBJECTS_SEPARATOR + SUBJECTS_SEPARATOR.join(subjects) + SUBJECTS_SEPARATOR


def subject_cell(values: Sequence[Any], subject: str | None, subjects: str) -> str:
    """The key of a combination, a subject and the list (migration 0013 writes the same)."""
    tail = orjson.dumps([subject, subjects]).decode()[1:]
    return cell(values)[:-1] + "," + tail


def count_changes(session: Session, changes: Sequence["Change"]) -> None:
    """Move the tallies by `changes` (metrics created, updated or deleted in this
    transaction). An update that keeps the tallied values and the subjects moves nothing."""
    moved: Counter[tuple[Any, ...]] = Counter()
    by_subject: Counter[tuple[Any, ...]] = Counter()
    for change in changes:
        old = change.old.data if change.old is not None else None
        new = change.new
        before = _values(old) if old is not None else None
        after = _values(new) if new is not None else None
        if (
            before == after
            and old is not None
            and new is not None
            and old["subjects"] == new["subjects"]
        ):
            continue
        for data, values, by in ((old, before, -1), (new, after, 1)):
            if data is None or values is None:
                continue
            moved[values] += by
            listed = subjects_key(data["subjects"])
            for place, subject in enumerate(data["subjects"] or (None,)):
                by_subject[(*values, subject, listed, place == 0)] += by
    _move(session, FACET_COUNT, [
        {"cell": cell(values), **dict(zip(TALLIED, values, strict=True)), "metrics": by}
        for values, by in moved.items() if by
    ])  # fmt: skip
    _move(session, SUBJECT_COUNT, [
        {"cell": subject_cell(values, subject, listed), **dict(zip(TALLIED, values, strict=True)),
         "subject": subject, "subjects": listed, "lead": lead, "metrics": by}
        for (*values, subject, listed, lead), by in by_subject.items() if by
    ])  # fmt: skip


def _move(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    store.bulk_add(session, table, rows, key="cell", total="metrics")
    emptied = [row["cell"] for row in rows if row["metrics"] < 0]
    for group in store.chunks(emptied):
        session.execute(delete(table).where(table.c.cell.in_(group), table.c.metrics == 0))
