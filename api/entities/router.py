"""Endpoints of the context entities: `GET /v1/technologies` and `GET /v1/technologies/{item_id}`
(`listTechnologies`, `getTechnology`), and the same pair for each kind of `api.entities.kind`."""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from sqlmodel import Session

from api.downloads import add_exports
from api.entities import service
from api.entities.kind import ENTITIES
from api.entities.schemas import EntityQuery
from api.pagination import Page, page
from api.records import store
from api.records.kinds import Kind
from api.records.reads import ReadSessionDep
from api.routing import collection_responses, item_responses, v1_router
from api.schemas import EXAMPLES, AsOfQuery

router = v1_router()


def _register(kind: Kind) -> None:
    """Add `GET path` and `GET path/{item_id}` for `kind` to the router."""
    table = kind.table
    order_by = [table.c.source_id, table.c[kind.order_by]]
    collection_schema: Any = Page[kind.public]  # type: ignore[name-defined]
    item_schema: Any = kind.public
    model: Any = kind.model

    def arguments(query: EntityQuery) -> dict[str, Any]:
        return {"model": model, "schema": kind.public, "query": query, "order_by": order_by}

    def list_items(
        request: Request,
        response: Response,
        session: ReadSessionDep,
        query: Annotated[EntityQuery, Query()],
    ) -> Any:
        items, total = service.list_entities(session, **arguments(query))
        return page(request, response, items, total, query.limit, query.offset)

    def rows(session: Session, query: EntityQuery) -> Iterator[Any]:
        return service.stream_entities(session, **arguments(query))

    def get_item(
        item_id: Annotated[
            str,
            Path(
                description=f"The {kind.label}'s id.",
                examples=[EXAMPLES[kind.public.__name__]["id"]],
            ),
        ],
        response: Response,
        session: ReadSessionDep,
        query: Annotated[AsOfQuery, Query()],
    ) -> Any:
        item = kind.get(session, item_id)
        response.headers["ETag"] = store.item_etag(session, kind, item_id) or ""
        return item

    name = "".join(word.capitalize() for word in kind.label.split())
    plural = "".join(word.capitalize() for word in kind.plural.split())
    list_items.__doc__ = f"Every {kind.label}, in the order its source presents them."
    get_item.__doc__ = f"One {kind.label}, with its evidence span and metric ids."
    router.add_api_route(
        kind.path,
        list_items,
        methods=["GET"],
        operation_id=f"list{plural}",
        summary=f"List {kind.plural}",
        response_model=collection_schema,
        responses=collection_responses(kind.public.__name__, f"A page of {kind.plural}."),
        tags=[kind.tag],
    )
    add_exports(
        router, kind.path, page_query=EntityQuery, schema=kind.public, rows=rows, name=plural,
        plural=kind.plural, tags=[kind.tag],
    )  # fmt: skip
    router.add_api_route(
        f"{kind.path}/{{item_id}}",
        get_item,
        methods=["GET"],
        operation_id=f"get{name}",
        summary=f"Get one {kind.label}",
        response_model=item_schema,
        responses=item_responses(kind.public.__name__, kind.label),
        tags=[kind.tag],
    )


for _kind in ENTITIES:
    _register(_kind)
