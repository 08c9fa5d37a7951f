"""One validation for every entry point (seed, import, API): a record's rules, its references
and its evidence, checked against the dataset it joins, returning every problem at once.

The shape (types, lengths, enumerations) is the kind's pydantic `record` model; this module
checks what the shape cannot: spans against source texts, references, the kind's own rules.
`Check` answers what rules ask of the dataset, from records being written alongside (a file)
first and the database second, fetching what it needs in one query per kind.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from api.records.kinds import Kind
from api.records.store import among

SQL_CHUNK = 5000


@dataclass(frozen=True)
class Problem:
    """What is wrong with one field of one record."""

    field: str
    detail: str


@dataclass
class Check:
    """The dataset a batch of records is checked against: `pending` records (by kind and id,
    None for a removal) over what the database holds."""

    session: Session
    kinds: dict[str, Kind]
    pending: dict[str, dict[str, dict[str, Any] | None]] = field(default_factory=dict)
    _known: dict[str, dict[str, dict[str, Any] | None]] = field(default_factory=dict)
    # The record being checked and its stored state, for rules that only need to look again
    # at what changed (a PATCH of a value does not re-read the source text).
    old: dict[str, Any] | None = None

    def changed(self, data: dict[str, Any], *names: str) -> bool:
        """Whether any of `names` differs from the stored record (always, for a new one)."""
        return self.old is None or any(self.old.get(name) != data.get(name) for name in names)

    def prefetch(self, kind_name: str, ids: Iterable[str]) -> None:
        """Read the records `ids` of a kind in as few queries as possible."""
        known = self._known.setdefault(kind_name, {})
        wanted = sorted({i for i in ids if i not in known and i not in self._pending(kind_name)})
        if not wanted:
            return
        kind = self.kinds[kind_name]
        table = kind.table
        columns = [table.c[name] for name in kind.columns]
        for start in range(0, len(wanted), SQL_CHUNK):
            chunk = wanted[start : start + SQL_CHUNK]
            condition = among(self.session, table.c.id, chunk)
            for row in self.session.execute(select(*columns).where(condition)):
                known[row.id] = dict(row._mapping)
        for record_id in wanted:
            known.setdefault(record_id, None)

    def _pending(self, kind_name: str) -> dict[str, dict[str, Any] | None]:
        return self.pending.get(kind_name, {})

    def get(self, kind_name: str, record_id: str) -> dict[str, Any] | None:
        """Record `record_id` of a kind as it will stand (its columns), or None."""
        pending = self._pending(kind_name)
        if record_id in pending:
            return pending[record_id]
        self.prefetch(kind_name, [record_id])
        return self._known[kind_name][record_id]

    def holders(self, kind_name: str, column: str, value: Any) -> list[str]:
        """Ids of the records of a kind whose `column` will equal `value`."""
        pending = self._pending(kind_name)
        found = [i for i, data in pending.items() if data is not None and data[column] == value]
        table = self.kinds[kind_name].table
        stored = self.session.execute(select(table.c.id).where(table.c[column] == value)).scalars()
        return found + [i for i in stored if i not in pending]


def check_record(kind: Kind, data: dict[str, Any], check: Check) -> list[Problem]:
    """Every problem of one record (already of its kind's shape) in the dataset `check`."""
    problems: list[Problem] = []
    if data["id"] in kind.reserved_ids:
        path = f"/v1{kind.path}/{data['id']}"
        problems.append(Problem("id", f"{data['id']!r} is reserved: {path} is another route"))
    if kind.evidence and check.changed(data, "evidence", "source_id"):
        problems += _evidence(data, check)
    for ref in kind.refs:
        if ref.field == "source_id" and kind.evidence:
            continue  # named by the evidence check, which needs the source anyway
        value = data[ref.field]
        values = value if isinstance(value, list) else [] if value is None else [value]
        if not check.changed(data, ref.field):
            continue
        for target in values:
            if target == data["id"] and ref.target == kind.name:
                problems.append(Problem(ref.field, f"a {kind.label} cannot refer to itself"))
            elif check.get(ref.target, target) is None:
                problems.append(Problem(ref.field, f"there is no {ref.target} {target!r}"))
        if isinstance(value, list) and len(set(value)) != len(value):
            problems.append(Problem(ref.field, "an id appears more than once"))
    if kind.rules is not None:
        problems += kind.rules(data, check)
    return problems


def _evidence(data: dict[str, Any], check: Check) -> list[Problem]:
    source = check.get("source", data["source_id"])
    if source is None:
        return [Problem("source_id", f"there is no source {data['source_id']!r}")]
    text: str = source["text"]
    evidence = data["evidence"]
    quote, start, end = evidence["quote"], evidence["start"], evidence["end"]
    if quote != quote.strip():
        return [Problem("evidence.quote", "has leading or trailing whitespace")]
    if end > len(text):
        return [Problem("evidence.end", f"{end} is past the end of the source ({len(text)})")]
    if text[start:end] != quote:
        found = text.find(quote)
        hint = f" (the quote occurs at {found}:{found + len(quote)})" if found >= 0 else ""
        return [Problem("evidence", f"the quote is not source_text[{start}:{end}]{hint}")]
    return []


def prefetch_references(kind: Kind, records: Sequence[dict[str, Any]], check: Check) -> None:
    """Fetch every record the batch refers to, one query per kind, before checking it."""
    wanted: dict[str, set[str]] = {}
    for ref in kind.refs:
        for data in records:
            value = data[ref.field]
            wanted.setdefault(ref.target, set()).update(
                value if isinstance(value, list) else [] if value is None else [value]
            )
    for target, ids in wanted.items():
        check.prefetch(target, ids)
