"""Writes validated datasets into the database: one transaction, only what differs."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, insert, select
from sqlmodel import Session, SQLModel

from api import revision, search
from api.dataset import Dataset, DatasetError, EntityIn, MetricIn
from api.entities.models import (
    ENTITY_TABLES,
    Bottleneck,
    EntityColumns,
    Faq,
    PricingModel,
    RegulatoryChange,
    Technology,
)
from api.metrics.models import Metric, MetricSubject
from api.sources.models import Source

SECTION_MODELS: dict[str, type[EntityColumns]] = {
    "technologies": Technology,
    "pricing_models": PricingModel,
    "regulatory_changes": RegulatoryChange,
    "bottlenecks": Bottleneck,
    "faqs": Faq,
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


def _evidence_columns(record: MetricIn | EntityIn) -> dict[str, Any]:
    evidence = record.evidence
    return {
        "evidence_quote": evidence.quote,
        "evidence_start": evidence.start,
        "evidence_end": evidence.end,
    }


def _metric_row(metric: MetricIn, source_id: str) -> dict[str, Any]:
    row = metric.model_dump(exclude={"evidence", "subjects"})
    return row | _evidence_columns(metric) | {"source_id": source_id}


def _entity_row(entity: EntityIn, source_id: str) -> dict[str, Any]:
    row = entity.model_dump(exclude={"evidence", "metric_ids"})
    return row | _evidence_columns(entity) | {"source_id": source_id}


def _columns(model: type[SQLModel]) -> list[str]:
    return [column.name for column in model.__table__.columns]  # type: ignore[attr-defined]


def _sync(
    session: Session,
    model: type[SQLModel],
    source_id: str,
    desired: dict[str, dict[str, Any]],
    children: dict[str, list[str]],
    child_table: Table,
    child_key: str,
    child_value: str,
) -> Counts:
    """Make the rows of `model` for `source_id` (and their ordered child lists) equal `desired`."""
    table: Table = model.__table__  # type: ignore[attr-defined]
    columns = _columns(model)
    existing = {
        row["id"]: dict(row)
        for row in session.execute(select(table).where(table.c.source_id == source_id)).mappings()
    }
    existing_children: dict[str, list[str]] = {}
    for owner, value in session.execute(
        select(child_table.c[child_key], child_table.c[child_value])
        .where(child_table.c[child_key].in_(list(existing)))
        .order_by(child_table.c[child_key], child_table.c.position)
    ):
        existing_children.setdefault(owner, []).append(value)

    counts = Counts()
    for record_id in existing.keys() - desired.keys():
        session.execute(delete(table).where(table.c.id == record_id))
        counts.removed += 1
    for record_id, row in desired.items():
        row = {name: row[name] for name in columns}
        old = existing.get(record_id)
        if old is None:
            session.execute(insert(table).values(row))
            counts.added += 1
        elif old != row or existing_children.get(record_id, []) != children[record_id]:
            session.execute(table.update().where(table.c.id == record_id).values(row))
            counts.changed += 1
        else:
            counts.unchanged += 1
            continue
        session.execute(delete(child_table).where(child_table.c[child_key] == record_id))
        if children[record_id]:
            session.execute(
                insert(child_table),
                [
                    {child_key: record_id, child_value: value, "position": position}
                    for position, value in enumerate(children[record_id])
                ],
            )
    return counts


def _check_ids_free(session: Session, datasets: Sequence[Dataset]) -> None:
    """Refuse a dataset whose ids belong to another source already in the database."""
    problems = []
    for dataset in datasets:
        source_id = dataset.data.source.id
        sections: list[tuple[str, type[SQLModel], list[Any]]] = [
            ("metrics", Metric, list(dataset.data.metrics))
        ] + [
            (section, SECTION_MODELS[section], records)
            for section, records in dataset.entities().items()
        ]
        for section, model, records in sections:
            table: Table = model.__table__  # type: ignore[attr-defined]
            ids = [record.id for record in records]
            taken = session.execute(
                select(table.c.id, table.c.source_id).where(
                    table.c.id.in_(ids), table.c.source_id != source_id
                )
            ).all()
            problems += [
                f"{dataset.path}: {section}[{record_id}].id: already used by source {other!r}"
                for record_id, other in taken
            ]
    if problems:
        raise DatasetError(problems)


def load_datasets(session: Session, datasets: Sequence[Dataset]) -> dict[str, Counts]:
    """Write `datasets` in the caller's transaction; returns counts per kind of record."""
    _check_ids_free(session, datasets)
    totals: dict[str, Counts] = {}

    def add(kind: str, counts: Counts) -> None:
        total = totals.setdefault(kind, Counts())
        for name in ("added", "changed", "removed", "unchanged"):
            setattr(total, name, getattr(total, name) + getattr(counts, name))

    for dataset in datasets:
        source = dataset.data.source
        row = source.model_dump(exclude={"text_file"}) | {"text": dataset.text}
        existing = session.get(Source, source.id)
        counts = Counts()
        if existing is None:
            session.add(Source(**row))
            counts.added = 1
        elif existing.model_dump() != Source(**row).model_dump():
            for name, value in row.items():
                setattr(existing, name, value)
            counts.changed = 1
        else:
            counts.unchanged = 1
        session.flush()
        add("sources", counts)

        metrics = {metric.id: _metric_row(metric, source.id) for metric in dataset.data.metrics}
        subjects = {metric.id: list(metric.subjects) for metric in dataset.data.metrics}
        subject_table: Table = MetricSubject.__table__  # type: ignore[attr-defined]
        metric_counts = _sync(
            session, Metric, source.id, metrics, subjects, subject_table, "metric_id", "subject"
        )
        add("metrics", metric_counts)
        if metric_counts.touched:
            search.reindex(session, list(metrics))
        for section, records in dataset.entities().items():
            model = SECTION_MODELS[section]
            link_table = ENTITY_TABLES[model]
            owner_key = f"{model.__tablename__}_id"
            add(
                section,
                _sync(
                    session,
                    model,
                    source.id,
                    {entity.id: _entity_row(entity, source.id) for entity in records},
                    {entity.id: list(entity.metric_ids) for entity in records},
                    link_table,
                    owner_key,
                    "metric_id",
                ),
            )
    if any(counts.touched for counts in totals.values()):
        revision.bump(session)
    return totals
