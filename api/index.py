"""`GET /v1`: the API's front page for programs, an index of its collections."""

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from api.entities.kind import ENTITIES
from api.negotiation import negotiate
from api.records.reads import ReadSessionDep
from api.routing import DeferredRoute, plain_responses, single_valued_parameters
from api.schemas import AsOfQuery

# Outside the /v1 router only because a router's own path cannot be empty; the same checks.
router = APIRouter(
    tags=["index"],
    dependencies=[Depends(negotiate), Depends(single_valued_parameters)],
    route_class=DeferredRoute,
)


class Collection(BaseModel):
    name: str = Field(examples=["metrics"])
    href: str = Field(examples=["/v1/metrics"])
    description: str


class ApiIndex(BaseModel):
    """Where everything is: each collection, the documentation and the explorer."""

    title: str
    collections: list[Collection]
    docs: str = Field(description="Interactive documentation (Swagger UI).")
    openapi: str = Field(description="The OpenAPI document.")
    explorer: str = Field(description="The HTML explorer, for people.")


_METRIC_VIEWS = [
    Collection(name="metrics", href="/v1/metrics", description="Every figure."),
    Collection(name="market", href="/v1/market", description="Figures of category market."),
    Collection(
        name="regulatory", href="/v1/regulatory", description="Figures of category regulatory."
    ),
    Collection(name="mna", href="/v1/mna", description="M&A and partnership figures."),
    Collection(
        name="metric facets",
        href="/v1/metrics/facets",
        description="Counts per facet value, for filter panels.",
    ),
]
INDEX = ApiIndex(
    title="CDMO Metrics API",
    collections=[
        *_METRIC_VIEWS,
        *(
            Collection(name=kind.plural, href=f"/v1{kind.path}", description=f"Every {kind.label}.")
            for kind in ENTITIES
        ),
        Collection(name="sources", href="/v1/sources", description="The source documents."),
        Collection(name="changes", href="/v1/changes", description="The change feed."),
        Collection(name="releases", href="/v1/releases", description="Seed runs and imports."),
    ],
    docs="/docs",
    openapi="/openapi.json",
    explorer="/",
)


@router.get(
    "/v1",
    operation_id="getIndex",
    summary="Index of the API's collections",
    response_model=ApiIndex,
    responses=plain_responses(
        "The collections.",
        {"application/json": {"schema": {"$ref": "#/components/schemas/ApiIndex"}}},
    ),
)
def get_index(
    request: Request, session: ReadSessionDep, query: Annotated[AsOfQuery, Query()]
) -> ApiIndex:
    """Every collection of the API, with its address; the documentation; the explorer. Asked
    `as_of` a moment, the addresses of the collections and the explorer keep it, as every
    link of a read at a moment does."""
    # As every read: the dataset version it answers at (at `as_of`, if given) in its
    # `Dataset-Version` header, and any other parameter refused.
    session.connection()
    if query.as_of is None:
        return INDEX
    kept = "?" + urlencode({"as_of": request.query_params["as_of"]})
    collections = [c.model_copy(update={"href": c.href + kept}) for c in INDEX.collections]
    return INDEX.model_copy(update={"collections": collections, "explorer": "/" + kept})
