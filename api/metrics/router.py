"""Metric endpoints: the whole collection, its category views, facets and single metrics."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from sqlmodel import Session

from api import citations
from api.citations import ItemQuery
from api.exports import Chunk, Format, choose_format, export_chunks, export_etag
from api.metrics import service
from api.metrics.kind import METRIC as KIND
from api.metrics.schemas import FacetQuery, Facets, MetricPublic, MetricQuery
from api.pagination import Page, encode_cursor, json_page
from api.records import asof
from api.records.asof import ReadSessionDep
from api.routing import collection_responses, item_responses, plain_responses
from api.vocabulary import Category

router = APIRouter(tags=["metrics"])

MetricParams = Annotated[MetricQuery, Query()]
COLLECTION_RESPONSES = collection_responses("MetricPublic", "metrics")
MetricId = Annotated[
    str, Path(description="The metric's id.", examples=["car-t-dose-manufacturing-cost"])
]


def _collection(
    request: Request,
    session: Session,
    query: MetricQuery,
    category: Category | None,
    filename: str,
) -> Any:
    fmt = choose_format(request, query.format)
    if fmt is Format.json:
        rows, total = service.list_metrics(session, query=query, category=category)
        next_params: list[tuple[str, str]] | None = None
        if rows.more:
            next_params = [("limit", str(query.limit))]
            if rows.last is not None:
                next_params.append(("after", encode_cursor(rows.last)))
            else:  # ranked by relevance: paged by offset
                next_params.append(("offset", str(query.offset + query.limit)))
        return json_page(request, rows.items, total, query.limit, query.offset, next_params)
    version = asof.answered_at(session)
    session.close()  # the export reads in chunks of its own: hold no connection meanwhile
    etag = export_etag(version, request, fmt)

    ranked = query.q is not None and not query.sort_keys()  # by relevance: not keyed

    def read(chunk_session: Session, after: list[Any] | None, limit: int) -> Chunk:
        if ranked:  # `after` is the count of rows sent (one version: the same rows)
            skip = after[0] if after else 0
            rows = service.read_page(chunk_session, query, category, after=None, limit=limit,
                                     offset=skip)  # fmt: skip
            return Chunk(rows.items, [skip + len(rows.items)] if rows.more else None)
        rows = service.read_page(chunk_session, query, category, after=after, limit=limit)
        return Chunk(rows.items, rows.last if rows.more else None)

    return export_chunks(request, fmt, MetricPublic, read, version, filename, etag)


@router.get(
    "/metrics",
    operation_id="listMetrics",
    summary="List metrics",
    response_model=Page[MetricPublic],
    responses=COLLECTION_RESPONSES,
)
def list_metrics(request: Request, session: ReadSessionDep, query: MetricParams) -> Any:
    """Every metric, filtered, searched, sorted and paged; or exported whole as CSV or NDJSON."""
    return _collection(request, session, query, None, "metrics")


@router.get(
    "/metrics/facets",
    operation_id="getMetricFacets",
    summary="Count metrics per facet value",
    response_model=Facets,
    responses=plain_responses(
        "Counts per value.",
        {"application/json": {"schema": {"$ref": "#/components/schemas/Facets"}}},
    ),
)
def get_metric_facets(session: ReadSessionDep, query: Annotated[FacetQuery, Query()]) -> Facets:
    """For filter panels: how many of the filtered metrics have each value of each facet."""
    return service.facets(session, query=query)


@router.get(
    "/metrics/{metric_id}",
    operation_id="getMetric",
    summary="Get one metric",
    response_model=MetricPublic,
    responses=item_responses("MetricPublic", "metric"),
)
def get_metric(
    metric_id: MetricId,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    query: Annotated[ItemQuery, Query()],
) -> Any:
    """The metric with this id and its evidence span; `?cite=` answers how to quote it."""
    metric = service.get_metric(session, metric_id=metric_id)
    return citations.item_or_citation(request, response, session, KIND, metric, query.cite)


def _category_view(category: Category, path: str, operation_id: str, summary: str) -> None:
    """Register `path` as the metric collection restricted to `category`."""
    filename = path.strip("/").replace("/", "-")

    def list_category(request: Request, session: ReadSessionDep, query: MetricParams) -> Any:
        return _collection(request, session, query, category, filename)

    list_category.__doc__ = f"Metrics of category `{category}`; the parameters of `/v1/metrics`."
    router.add_api_route(
        path,
        list_category,
        methods=["GET"],
        operation_id=operation_id,
        summary=summary,
        response_model=Page[MetricPublic],
        responses=COLLECTION_RESPONSES,
    )


_category_view(Category.market, "/market", "listMarketMetrics", "List market metrics")
_category_view(
    Category.regulatory, "/regulatory", "listRegulatoryMetrics", "List regulatory metrics"
)
_category_view(Category.mna, "/mna", "listMnaMetrics", "List M&A and partnership metrics")
