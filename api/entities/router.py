"""Endpoints of the context entities: one collection and one item route per kind."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from api import citations, records, revision
from api.asof import ReadSessionDep as SessionDep
from api.citations import ItemQuery
from api.entities import service
from api.entities.models import (
    Bottleneck,
    EntityColumns,
    Faq,
    PricingModel,
    RegulatoryChange,
    Technology,
)
from api.entities.schemas import (
    BottleneckPublic,
    EntityPublic,
    EntityQuery,
    FaqPublic,
    PricingModelPublic,
    RegulatoryChangePublic,
    TechnologyPublic,
)
from api.exports import Format, choose_format, export, export_etag
from api.pagination import Page, page
from api.routing import collection_responses, item_responses
from api.schemas import EXAMPLES

router = APIRouter()


@dataclass(frozen=True)
class Kind:
    """How one kind of entity is exposed."""

    model: type[EntityColumns]
    schema: type[EntityPublic]
    path: str
    singular: str
    plural: str
    tag: str
    order_by: str = "evidence_start"

    def register(self, router: APIRouter) -> None:
        """Add `GET path` and `GET path/{id}` for this kind to `router`."""
        table: Any = self.model.__table__  # type: ignore[attr-defined]
        order_by = [table.c.source_id, table.c[self.order_by]]
        collection_schema: Any = Page[self.schema]  # type: ignore[name-defined]
        item_schema: Any = self.schema
        kind = self

        filename = self.path.strip("/").replace("/", "-")

        def list_items(
            request: Request,
            response: Response,
            session: SessionDep,
            query: Annotated[EntityQuery, Query()],
        ) -> Any:
            arguments: dict[str, Any] = {
                "model": kind.model,
                "schema": kind.schema,
                "query": query,
                "order_by": order_by,
            }
            fmt = choose_format(request, query.format)
            if fmt is Format.json:
                items, total = service.list_entities(session, **arguments)
                return page(request, response, items, total, query.limit, query.offset)
            etag = export_etag(revision.current(session), request, fmt)
            rows = service.stream_entities(session, **arguments)
            return export(fmt, kind.schema, rows, filename, etag)

        def get_item(
            item_id: Annotated[
                str,
                Path(
                    description=f"The {kind.singular}'s id.",
                    examples=[EXAMPLES[kind.schema.__name__]["id"]],
                ),
            ],
            request: Request,
            response: Response,
            session: SessionDep,
            query: Annotated[ItemQuery, Query()],
        ) -> Any:
            item = service.get_entity(
                session,
                model=kind.model,
                schema=kind.schema,
                entity_id=item_id,
                label=kind.singular,
            )
            record_kind = records.kind_of(kind.model)
            return citations.item_or_citation(
                request, response, session, record_kind, item, query.cite
            )

        name = "".join(word.capitalize() for word in self.singular.split())
        plural = "".join(word.capitalize() for word in self.plural.split())
        list_items.__doc__ = f"Every {self.singular}, in the order its source presents them."
        get_item.__doc__ = f"One {self.singular}, with its evidence span and metric ids."
        router.add_api_route(
            self.path,
            list_items,
            methods=["GET"],
            operation_id=f"list{plural}",
            summary=f"List {self.plural}",
            response_model=collection_schema,
            responses=collection_responses(self.schema.__name__, self.plural),
            tags=[self.tag],
        )
        router.add_api_route(
            f"{self.path}/{{item_id}}",
            get_item,
            methods=["GET"],
            operation_id=f"get{name}",
            summary=f"Get one {self.singular}",
            response_model=item_schema,
            responses=item_responses(self.schema.__name__, self.singular),
            tags=[self.tag],
        )


KINDS = (
    Kind(
        Technology, TechnologyPublic, "/technologies", "technology", "technologies", "technologies"
    ),
    Kind(
        PricingModel,
        PricingModelPublic,
        "/pricing-models",
        "pricing model",
        "pricing models",
        "pricing",
    ),
    Kind(
        RegulatoryChange,
        RegulatoryChangePublic,
        "/regulatory/outlook",
        "regulatory change",
        "regulatory changes",
        "regulatory",
    ),
    Kind(
        Bottleneck,
        BottleneckPublic,
        "/bottlenecks",
        "bottleneck",
        "bottlenecks",
        "bottlenecks",
        "rank",
    ),
    Kind(Faq, FaqPublic, "/faq", "faq", "faqs", "faq"),
)
for _kind in KINDS:
    _kind.register(router)
