"""Reading context entities of any kind, with the ids of the metrics that quantify them."""

from collections.abc import Iterator
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Table, and_, false, func, select, true
from sqlmodel import Session

from api import filters, search
from api.db import metadata
from api.entities.models import EntityColumns
from api.entities.schemas import EntityPublic, EntityQuery
from api.errors import NotFound
from api.schemas import Evidence

S = TypeVar("S", bound=EntityPublic)


def _table(model: type[EntityColumns]) -> Table:
    return model.__table__  # type: ignore[attr-defined, no-any-return]


def _metric_ids(
    session: Session, model: type[EntityColumns], entity_ids: list[str]
) -> dict[str, list[str]]:
    links = metadata.tables[f"{_table(model).name}_metric"]
    owner = links.c[f"{_table(model).name}_id"]
    rows = session.execute(
        select(owner, links.c.metric_id)
        .where(owner.in_(entity_ids))
        .order_by(owner, links.c.position)
    )
    result: dict[str, list[str]] = {}
    for entity_id, metric_id in rows:
        result.setdefault(entity_id, []).append(metric_id)
    return result


def _public(schema: type[S], row: Any, metric_ids: list[str]) -> S:
    fields = {name: row[name] for name in schema.model_fields if name in row}
    evidence = Evidence(
        quote=row["evidence_quote"], start=row["evidence_start"], end=row["evidence_end"]
    )
    return schema(**fields, evidence=evidence, metric_ids=metric_ids)


def _statement(
    session: Session,
    model: type[EntityColumns],
    query: EntityQuery,
    order_by: list[ColumnElement[Any]],
) -> tuple[Any, ColumnElement[bool]]:
    table = _table(model)
    conditions: list[ColumnElement[bool]] = []
    if query.source is not None:  # any of them; every item has a source, so null finds none
        wanted = [value for value in filters.values(query.source) if value is not None]
        conditions.append(table.c.source_id.in_(wanted))
    if query.q is not None:
        found = search.matches(session, table.name, query.q)
        conditions.append(false() if found is None else table.c.id.in_(select(found.c.id)))
    where = and_(true(), *conditions)
    return select(table).where(where).order_by(*order_by, table.c.id), where


def list_entities(
    session: Session,
    *,
    model: type[EntityColumns],
    schema: type[S],
    query: EntityQuery,
    order_by: list[ColumnElement[Any]],
) -> tuple[list[S], int]:
    """One page of entities of kind `model`, in `order_by` order, and the total."""
    statement, where = _statement(session, model, query, order_by)
    total = session.execute(
        select(func.count()).select_from(_table(model)).where(where)
    ).scalar_one()
    rows = session.execute(statement.limit(query.limit).offset(query.offset)).mappings().all()
    metric_ids = _metric_ids(session, model, [row["id"] for row in rows])
    return [_public(schema, row, metric_ids.get(row["id"], [])) for row in rows], total


def stream_entities(
    session: Session,
    *,
    model: type[EntityColumns],
    schema: type[S],
    query: EntityQuery,
    order_by: list[ColumnElement[Any]],
) -> Iterator[S]:
    """Every entity of kind `model` matching `query`, in order, fetched in batches."""
    statement, _where = _statement(session, model, query, order_by)
    result = session.execute(statement.execution_options(yield_per=500)).mappings()
    for rows in result.partitions():
        metric_ids = _metric_ids(session, model, [row["id"] for row in rows])
        yield from (_public(schema, row, metric_ids.get(row["id"], [])) for row in rows)


def get_entity(
    session: Session, *, model: type[EntityColumns], schema: type[S], entity_id: str, label: str
) -> S:
    """The entity `entity_id` of kind `model`; NotFound (naming `label`) when there is none."""
    table = _table(model)
    row = session.execute(select(table).where(table.c.id == entity_id)).mappings().first()
    if row is None:
        raise NotFound(f"There is no {label} {entity_id!r}.")
    return _public(schema, row, _metric_ids(session, model, [entity_id]).get(entity_id, []))
