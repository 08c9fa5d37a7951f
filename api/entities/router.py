"""Endpoints of the context entities: `GET /v1/technologies` and `GET /v1/technologies/{item_id}`
(`listTechnologies`, `getTechnology`), and the same pair for each kind of `api.entities.kind`."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from api import citations
from api.citations import ItemQuery
from api.entities import service
from api.entities.kind import ENTITIES
from api.entities.schemas import EntityQuery
from api.exports import Format, choose_format, export, export_etag
from api.pagination import Page, page
from api.records import asof
from api.records.asof import ReadSessionDep
from api.records.kinds import Kind
from api.routing import collection_responses, item_responses
from api.schemas import EXAMPLES

router = APIRouter()


def _register(kind: Kind) -> None:
    """Add `GET path` and `GET path/{item_id}` for `kind` to the router."""
    table = kind.table
    order_by = [table.c.source_id, table.c[kind.order_by]]
    collection_schema: Any = Page[kind.public]  # type: ignore[name-defined]
    item_schema: Any = kind.public
    model: Any = kind.model
    filename = kind.path.strip("/").replace("/", "-")

    def list_items(
        request: Request,
        response: Response,
        session: ReadSessionDep,
        query: Annotated[EntityQuery, Query()],
    ) -> Any:
        arguments: dict[str, Any] = {
            "model": model,
            "schema": kind.public,
            "query": query,
            "order_by": order_by,
        }
        fmt = choose_format(request, query.format)
        if fmt is Format.json:
            items, total = service.list_entities(session, **arguments)
            return page(request, response, items, total, query.limit, query.offset)
        etag = export_etag(asof.answered_at(session), request, fmt)
        rows = service.stream_entities(session, **arguments)
        return export(fmt, kind.public, rows, filename, etag)

    def get_item(
        item_id: Annotated[
            str,
            Path(
                description=f"The {kind.label}'s id.",
                examples=[EXAMPLES[kind.public.__name__]["id"]],
            ),
        ],
        request: Request,
        response: Response,
        session: ReadSessionDep,
        query: Annotated[ItemQuery, Query()],
    ) -> Any:
        item = kind.get(session, item_id)
        return citations.item_or_citation(request, response, session, kind, item, query.cite)

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
        responses=collection_responses(kind.public.__name__, kind.plural),
        tags=[kind.tag],
    )
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
