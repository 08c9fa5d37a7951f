"""Loads validated dataset files through the history: one transaction, one release, and only
what differs. Records an analyst has corrected through the API are left as they are."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from api import records
from api.dataset import Dataset, DatasetError, EntityIn, MetricIn
from api.history.models import Release

SEED_ACTOR = "seed"
SECTION_KINDS = {
    "metrics": "metric",
    "technologies": "technology",
    "pricing_models": "pricing_model",
    "regulatory_changes": "regulatory_change",
    "bottlenecks": "bottleneck",
    "faqs": "faq",
}


@dataclass
class Counts:
    """What a load did to one kind of record."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"+{self.added} ~{self.changed} -{self.removed} ={self.unchanged}"

    @property
    def touched(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass
class Report:
    """Counts per section, the release written (if anything changed) and the records skipped."""

    counts: dict[str, Counts] = field(default_factory=dict)
    release_id: int | None = None
    kept: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def _records(dataset: Dataset) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(section, kind, records in canonical form) of a dataset file, source first."""
    source = dataset.data.source
    source_record = source.model_dump(exclude={"text_file"}) | {"text": dataset.text}
    sections: list[tuple[str, str, list[dict[str, Any]]]] = [
        ("sources", "source", [records.canonical(records.KINDS["source"], source_record)])
    ]
    entries: dict[str, list[MetricIn] | list[EntityIn]] = {
        "metrics": dataset.data.metrics,
        **dataset.entities(),
    }
    for section, kind in SECTION_KINDS.items():
        sections.append(
            (
                section,
                kind,
                [
                    records.canonical(
                        records.KINDS[kind], entry.model_dump() | {"source_id": source.id}
                    )
                    for entry in entries[section]
                ],
            )
        )
    return sections


def _check_ids_free(session: Session, datasets: Sequence[Dataset]) -> None:
    """Refuse a dataset whose ids belong to another source already in the database."""
    problems = []
    for dataset in datasets:
        source_id = dataset.data.source.id
        for section, kind_name, entries in _records(dataset)[1:]:
            table = records.KINDS[kind_name].table
            taken = session.execute(
                select(table.c.id, table.c.source_id).where(
                    table.c.id.in_([entry["id"] for entry in entries]),
                    table.c.source_id != source_id,
                )
            ).all()
            problems += [
                f"{dataset.path}: {section}[{record_id}].id: already used by source {other!r}"
                for record_id, other in taken
            ]
    if problems:
        raise DatasetError(problems)


def _last_seed_data(session: Session, kind: records.Kind, record_id: str) -> Any:
    from api.history.models import Revision

    return session.execute(
        select(col(Revision.data))
        .where(
            col(Revision.kind) == kind.name,
            col(Revision.record_id) == record_id,
            col(Revision.actor) == SEED_ACTOR,
        )
        .order_by(col(Revision.id).desc())
        .limit(1)
    ).scalar_one_or_none()


def load_datasets(
    session: Session,
    datasets: Sequence[Dataset],
    *,
    actor: str = SEED_ACTOR,
    label: str | None = None,
) -> Report:
    """Write `datasets` in the caller's transaction, through the history, as one release."""
    _check_ids_free(session, datasets)
    report = Report()
    release = Release(
        label=label or f"{actor} {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
        actor=actor,
        created_at=datetime.now(UTC),
    )
    session.add(release)
    session.flush()

    def count(section: str) -> Counts:
        return report.counts.setdefault(section, Counts())

    for dataset in datasets:
        source_id = dataset.data.source.id
        obsolete: list[tuple[str, records.Kind, str]] = []
        for section, kind_name, entries in _records(dataset):
            kind = records.KINDS[kind_name]
            counts = count(section)
            for data in entries:
                stored = records.read(session, kind, data["id"])
                if stored is not None and stored.data == data:
                    counts.unchanged += 1
                    continue
                last = records.last_revision(session, kind, data["id"])
                if stored is not None and last is not None and last.actor != SEED_ACTOR:
                    label_ = f"{kind.label} {data['id']!r} (edited by {last.actor})"
                    if _last_seed_data(session, kind, data["id"]) == data:
                        report.kept.append(label_)
                    else:
                        report.conflicts.append(label_)
                    continue
                records.write(session, kind, data, actor=actor, release_id=release.id)
                if stored is None:
                    counts.added += 1
                else:
                    counts.changed += 1
            if kind_name == "source":
                continue
            wanted = {data["id"] for data in entries}
            present = session.execute(
                select(kind.table.c.id).where(kind.table.c.source_id == source_id)
            ).scalars()
            for record_id in sorted(set(present) - wanted):
                last = records.last_revision(session, kind, record_id)
                if last is not None and last.actor != SEED_ACTOR:
                    report.kept.append(f"{kind.label} {record_id!r} (added by {last.actor})")
                    continue
                obsolete.append((section, kind, record_id))
        _remove(session, obsolete, actor, release.id, count)

    release.added = sum(c.added for c in report.counts.values())
    release.changed = sum(c.changed for c in report.counts.values())
    release.removed = sum(c.removed for c in report.counts.values())
    if release.added or release.changed or release.removed:
        report.release_id = release.id
    else:
        session.delete(release)
    session.flush()
    return report


def _remove(
    session: Session,
    obsolete: list[tuple[str, records.Kind, str]],
    actor: str,
    release_id: int | None,
    count: Any,
) -> None:
    """Delete records dropped from a file, each once nothing else refers to it any more."""
    pending = list(obsolete)
    while pending:
        removable = [
            entry for entry in pending if not records.references(session, entry[1], entry[2])
        ]
        if not removable:
            blocked = ", ".join(f"{kind.label} {record_id!r}" for _, kind, record_id in pending)
            raise DatasetError([f"cannot remove {blocked}: still referred to"])
        for section, kind, record_id in removable:
            records.remove(session, kind, record_id, actor=actor, release_id=release_id)
            count(section).removed += 1
        pending = [entry for entry in pending if entry not in removable]
