"""One record of any kind: read it, validate it against the database, write or delete it.

Every write goes through here — API, seed loader and import alike — so that each one is
validated the same way, leaves a revision in the history, keeps the search index in sync and
raises the dataset revision. Writes compare-and-set the record's `version`, so two writers
holding the same version cannot both succeed.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table, delete, func, insert, select, update
from sqlmodel import Session, SQLModel, col

from api import revision, search
from api.dataset import (
    BottleneckRecord,
    FaqRecord,
    MetricRecord,
    PricingModelRecord,
    RegulatoryChangeRecord,
    SourceRecord,
    TechnologyRecord,
)
from api.entities.models import (
    ENTITY_TABLES,
    Bottleneck,
    Faq,
    PricingModel,
    RegulatoryChange,
    Technology,
)
from api.errors import Conflict, InvalidInput, NotFound, PreconditionFailed, ProblemError
from api.history.models import Revision
from api.metrics.models import Metric, MetricSubject
from api.sources.models import Source


@dataclass(frozen=True)
class Kind:
    """A kind of record: its table, its record shape and its ordered child list, if any."""

    name: str
    label: str
    model: type[SQLModel]
    record: type[BaseModel]
    children: Table | None = None
    child_field: str = ""
    child_value: str = ""

    @property
    def table(self) -> Table:
        return self.model.__table__  # type: ignore[attr-defined, no-any-return]

    @property
    def owner_column(self) -> str:
        return "metric_id" if self.name == "metric" else f"{self.name}_id"


def _entity(name: str, label: str, model: type[SQLModel], record: type[BaseModel]) -> Kind:
    return Kind(name, label, model, record, ENTITY_TABLES[model], "metric_ids", "metric_id")  # type: ignore[index]


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("source", "source", Source, SourceRecord),
        Kind(
            "metric",
            "metric",
            Metric,
            MetricRecord,
            MetricSubject.__table__,  # type: ignore[attr-defined]
            "subjects",
            "subject",
        ),
        _entity("technology", "technology", Technology, TechnologyRecord),
        _entity("pricing_model", "pricing model", PricingModel, PricingModelRecord),
        _entity("regulatory_change", "regulatory change", RegulatoryChange, RegulatoryChangeRecord),
        _entity("bottleneck", "bottleneck", Bottleneck, BottleneckRecord),
        _entity("faq", "faq", Faq, FaqRecord),
    )
}


@dataclass(frozen=True)
class Stored:
    """A record as the database holds it, in its record shape, and its version."""

    data: dict[str, Any]
    version: int


def _to_row(kind: Kind, data: dict[str, Any]) -> dict[str, Any]:
    """Table columns of a record given in canonical JSON form (dates, enums as Python types)."""
    data = kind.record.model_validate(data).model_dump()
    row = {key: value for key, value in data.items() if key not in ("evidence", kind.child_field)}
    if "evidence" in data:
        evidence = data["evidence"]
        row |= {
            "evidence_quote": evidence["quote"],
            "evidence_start": evidence["start"],
            "evidence_end": evidence["end"],
        }
    return row


def _from_row(kind: Kind, row: Any, children: list[str]) -> dict[str, Any]:
    fields = kind.record.model_fields
    data = {name: row[name] for name in fields if name in row}
    if "evidence" in fields:
        data["evidence"] = {
            "quote": row["evidence_quote"],
            "start": row["evidence_start"],
            "end": row["evidence_end"],
        }
    if kind.children is not None:
        data[kind.child_field] = children
    return kind.record.model_validate(data).model_dump(mode="json")


def canonical(kind: Kind, data: dict[str, Any]) -> dict[str, Any]:
    """The canonical JSON form of a record, as stored in revisions and compared for changes."""
    return kind.record.model_validate(data).model_dump(mode="json")


def normalise(kind: Kind, record: BaseModel) -> dict[str, Any]:
    """`canonical` of a record already parsed (an API body)."""
    return canonical(kind, record.model_dump())


def read(session: Session, kind: Kind, record_id: str) -> Stored | None:
    """The stored record `record_id` of `kind`, or None."""
    row = session.execute(select(kind.table).where(kind.table.c.id == record_id)).mappings().first()
    if row is None:
        return None
    children: list[str] = []
    if kind.children is not None:
        owner = kind.children.c[kind.owner_column]
        children = list(
            session.execute(
                select(kind.children.c[kind.child_value])
                .where(owner == record_id)
                .order_by(kind.children.c.position)
            ).scalars()
        )
    return Stored(_from_row(kind, row, children), row["version"])


def etag(kind: Kind, record_id: str, version: int, variant: str = "json") -> str:
    """The strong tag of one representation of one version of a record."""
    digest = hashlib.sha256(f"{kind.name}\x1f{record_id}\x1f{version}\x1f{variant}".encode())
    return f'"r{digest.hexdigest()[:31]}"'


def _problem(field: str, detail: str) -> ProblemError:
    return ProblemError(in_="body", name=field, detail=detail)


def check(session: Session, kind: Kind, data: dict[str, Any]) -> None:
    """Refuse (422) a record whose evidence or references do not hold against the database."""
    problems: list[ProblemError] = []
    if kind.name == "source":
        problems += _check_source_text(session, data)
    else:
        text = session.execute(
            select(col(Source.text)).where(col(Source.id) == data["source_id"])
        ).scalar_one_or_none()
        if text is None:
            problems.append(_problem("source_id", f"there is no source {data['source_id']!r}"))
        else:
            problems += _check_evidence(text, data["evidence"], "evidence")
    if kind.name == "metric":
        problems += _check_metric(session, data)
    elif kind.children is not None:
        metric_ids = data[kind.child_field]
        known = set(
            session.execute(select(col(Metric.id)).where(col(Metric.id).in_(metric_ids))).scalars()
        )
        problems += [
            _problem("metric_ids", f"there is no metric {metric_id!r}")
            for metric_id in metric_ids
            if metric_id not in known
        ]
        if len(set(metric_ids)) != len(metric_ids):
            problems.append(_problem("metric_ids", "a metric id appears more than once"))
    if kind.name == "bottleneck":
        taken = session.execute(
            select(col(Bottleneck.id)).where(
                col(Bottleneck.rank) == data["rank"],
                col(Bottleneck.id) != data["id"],
            )
        ).scalar_one_or_none()
        if taken is not None:
            problems.append(_problem("rank", f"rank {data['rank']} belongs to {taken!r}"))
    if problems:
        raise InvalidInput.many(problems)


def _check_evidence(text: str, evidence: dict[str, Any], field: str) -> list[ProblemError]:
    quote, start, end = evidence["quote"], evidence["start"], evidence["end"]
    if quote != quote.strip():
        return [_problem(field, "the quote has leading or trailing whitespace")]
    if text[start:end] != quote:
        found = text.find(quote)
        hint = f"; the quote occurs at {found}:{found + len(quote)}" if found >= 0 else ""
        return [_problem(field, f"the quote is not source_text[{start}:{end}]{hint}")]
    return []


def _check_metric(session: Session, data: dict[str, Any]) -> list[ProblemError]:
    problems = []
    value, low, high = data["value"], data["value_low"], data["value_high"]
    if low > high:
        problems.append(_problem("value_low", "must not exceed value_high"))
    if value is not None and not low == value == high:
        problems.append(_problem("value", "a point figure needs value_low == value == value_high"))
    if data["measure"] == "change" and data["direction"] is None:
        problems.append(_problem("direction", "a change needs a direction"))
    if data["base_year"] and data["year"] and data["base_year"] > data["year"]:
        problems.append(_problem("base_year", "is after year"))
    baseline = data["baseline_id"]
    if baseline is not None:
        source = session.execute(
            select(col(Metric.source_id)).where(col(Metric.id) == baseline)
        ).scalar_one_or_none()
        if baseline == data["id"] or source != data["source_id"]:
            problems.append(
                _problem("baseline_id", f"no other metric {baseline!r} of the same source")
            )
    if len(set(data["subjects"])) != len(data["subjects"]):
        problems.append(_problem("subjects", "a subject appears more than once"))
    return problems


def _check_source_text(session: Session, data: dict[str, Any]) -> list[ProblemError]:
    """A source's text may change only if every span quoting it still holds."""
    problems = []
    for kind in KINDS.values():
        if kind.name == "source":
            continue
        rows = session.execute(
            select(
                kind.table.c.id,
                kind.table.c.evidence_quote,
                kind.table.c.evidence_start,
                kind.table.c.evidence_end,
            ).where(kind.table.c.source_id == data["id"])
        )
        for record_id, quote, start, end in rows:
            if data["text"][start:end] != quote:
                problems.append(
                    _problem("text", f"{kind.label} {record_id!r} quotes [{start}:{end}]")
                )
    return problems[:20]


def _changed_fields(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    keys = set(old or {}) | set(new or {})
    return sorted(key for key in keys if (old or {}).get(key) != (new or {}).get(key))


def _record_revision(
    session: Session,
    kind: Kind,
    record_id: str,
    version: int,
    action: str,
    actor: str,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    release_id: int | None,
) -> Revision:
    entry = Revision(
        kind=kind.name,
        record_id=record_id,
        version=version,
        action=action,
        actor=actor,
        at=datetime.now(UTC),
        data=new,
        changes=_changed_fields(old, new),
        release_id=release_id,
    )
    session.add(entry)
    session.flush()
    revision.bump(session)
    return entry


def _write_children(session: Session, kind: Kind, record_id: str, values: list[str]) -> None:
    assert kind.children is not None
    owner = kind.children.c[kind.owner_column]
    session.execute(delete(kind.children).where(owner == record_id))
    if values:
        session.execute(
            insert(kind.children),
            [
                {kind.owner_column: record_id, kind.child_value: value, "position": position}
                for position, value in enumerate(values)
            ],
        )


def write(
    session: Session,
    kind: Kind,
    data: dict[str, Any],
    *,
    actor: str,
    expected_version: int | None = None,
    release_id: int | None = None,
) -> Revision | None:
    """Create or replace a record (already validated); None when it is unchanged.

    With `expected_version`, the write succeeds only if the stored version still is that one.
    """
    record_id = data["id"]
    old = read(session, kind, record_id)
    if old is not None and old.data == data:
        if expected_version is not None and old.version != expected_version:
            raise PreconditionFailed("The record changed since the version you sent.")
        return None
    row = _to_row(kind, data)
    if old is None:
        if expected_version is not None:
            raise PreconditionFailed(f"There is no {kind.label} {record_id!r} any more.")
        session.execute(insert(kind.table).values(**row, version=1))
        version, action = 1, "create"
    else:
        version, action = (expected_version or old.version) + 1, "update"
        changed = session.execute(
            update(kind.table)
            .where(kind.table.c.id == record_id, kind.table.c.version == version - 1)
            .values(**row, version=version)
        )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise PreconditionFailed("The record changed since the version you sent.")
    if kind.children is not None:
        _write_children(session, kind, record_id, data[kind.child_field])
    if kind.name == "metric":
        search.reindex(session, [record_id])
    return _record_revision(
        session, kind, record_id, version, action, actor, old.data if old else None, data,
        release_id,
    )  # fmt: skip


def references(session: Session, kind: Kind, record_id: str) -> list[str]:
    """What still refers to the record (and so forbids deleting it)."""
    found = []
    if kind.name == "source":
        for other in KINDS.values():
            if other.name == "source":
                continue
            count = session.execute(
                select(func.count())
                .select_from(other.table)
                .where(other.table.c.source_id == record_id)
            ).scalar_one()
            if count:
                found.append(f"{count} {other.label}(s)")
    elif kind.name == "metric":
        baselines = session.execute(
            select(col(Metric.id)).where(col(Metric.baseline_id) == record_id)
        ).scalars()
        found += [f"metric {other!r} (baseline_id)" for other in baselines]
        for other in KINDS.values():
            if other.children is not None and other.child_field == "metric_ids":
                owners = session.execute(
                    select(other.children.c[other.owner_column]).where(
                        other.children.c.metric_id == record_id
                    )
                ).scalars()
                found += [f"{other.label} {owner!r} (metric_ids)" for owner in owners]
    return found


def remove(
    session: Session,
    kind: Kind,
    record_id: str,
    *,
    actor: str,
    expected_version: int | None = None,
    release_id: int | None = None,
) -> Revision:
    """Delete a record, leaving a tombstone revision; 409 while anything refers to it."""
    old = read(session, kind, record_id)
    if old is None:
        raise NotFound(f"There is no {kind.label} {record_id!r}.")
    blockers = references(session, kind, record_id)
    if blockers:
        raise Conflict(f"The {kind.label} {record_id!r} is referred to by {', '.join(blockers)}.")
    version = expected_version or old.version
    deleted = session.execute(
        delete(kind.table).where(kind.table.c.id == record_id, kind.table.c.version == version)
    )
    if deleted.rowcount != 1:  # type: ignore[attr-defined]
        raise PreconditionFailed("The record changed since the version you sent.")
    if kind.name == "metric":
        search.reindex(session, [record_id])
    return _record_revision(
        session, kind, record_id, version + 1, "delete", actor, old.data, None, release_id
    )


def last_revision(session: Session, kind: Kind, record_id: str) -> Revision | None:
    """The newest revision of a record, tombstones included."""
    return session.execute(
        select(Revision)
        .where(col(Revision.kind) == kind.name, col(Revision.record_id) == record_id)
        .order_by(col(Revision.id).desc())
        .limit(1)
    ).scalar_one_or_none()


def item_etag(session: Session, kind: Kind, record_id: str, variant: str = "json") -> str | None:
    """The tag of a record's public representation: it changes with the record's version, and
    with what else the representation shows (a metric's horizon_passed moves with the year, a
    source's metric_count with its metrics)."""
    version = session.execute(
        select(kind.table.c.version).where(kind.table.c.id == record_id)
    ).scalar_one_or_none()
    if version is None:
        return None
    if "as_of_revision" in session.info:
        variant += f"@{session.info['as_of_revision']}"
    if kind.name == "metric":
        variant += f":{datetime.now(UTC).year}"
    elif kind.name == "source":
        count = session.execute(
            select(func.count()).select_from(Metric).where(col(Metric.source_id) == record_id)
        ).scalar_one()
        variant += f":{count}"
    return etag(kind, record_id, version, variant)


def kind_of(model: type[SQLModel]) -> Kind:
    """The kind stored in `model`'s table."""
    return next(kind for kind in KINDS.values() if kind.model is model)
