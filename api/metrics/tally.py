"""The facet tally: how many live metrics have each combination of the values facets count by.

Kept in the transaction that changes metrics (each change takes one from its old combination
and adds one to its new), so it is exact at every committed version; the facets of the live
data sum it instead of counting every metric (`api.metrics.service.facets`).
"""

import importlib
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import delete
from sqlmodel import Session

from api.metrics.models import FACET_COUNT, TALLIED

if TYPE_CHECKING:
    from api.records.store import Change


def _values(data: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(data[name] for name in TALLIED)


def cell(values: Sequence[Any]) -> str:
    """The key of a combination: its values as a JSON array (migration 0008 writes the same)."""
    *head, forecast, geography = values
    return orjson.dumps([*head, bool(forecast), geography]).decode()


def count_changes(session: Session, changes: Sequence["Change"]) -> None:
    """Move the tally by `changes` (metrics created, updated or deleted in this transaction)."""
    moved: Counter[tuple[Any, ...]] = Counter()
    for change in changes:
        if change.old is not None:
            moved[_values(change.old.data)] -= 1
        if change.new is not None:
            moved[_values(change.new)] += 1
    rows = [
        {"cell": cell(values), **dict(zip(TALLIED, values, strict=True)), "metrics": by}
        for values, by in moved.items()
        if by
    ]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    # This database's dialect (`postgresql` or `sqlite`) only: importing PostgreSQL's costs an
    # SQLite server's start-up 30 ms.
    statement = importlib.import_module(f"sqlalchemy.dialects.{dialect}").insert(FACET_COUNT)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[FACET_COUNT.c.cell],
            set_={"metrics": FACET_COUNT.c.metrics + statement.excluded.metrics},
        ),
        rows,
    )
    emptied = [row["cell"] for row in rows if row["metrics"] < 0]
    if emptied:
        session.execute(
            delete(FACET_COUNT).where(FACET_COUNT.c.cell.in_(emptied), FACET_COUNT.c.metrics == 0)
        )
