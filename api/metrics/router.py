"""Metric endpoints: the whole collection, its category views, facets and single metrics."""

from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from sqlmodel import Session

from api.direct import DirectRoute
from api.downloads import add_exports
from api.exports import Chunk, ChunkReader, Format, KeyedReader
from api.metrics import encoding, service
from api.metrics.kind import METRIC as KIND
from api.metrics.schemas import FacetQuery, Facets, MetricPublic, MetricQuery
from api.pagination import Page, encode_cursor, json_page
from api.records import store
from api.records.reads import ReadSessionDep
from api.routing import collection_responses, item_responses, plain_responses, v1_router
from api.schemas import AsOfQuery
from api.vocabulary import Category

router = v1_router(tags=["metrics"])

MetricParams = Annotated[MetricQuery, Query()]
COLLECTION_RESPONSES = collection_responses("MetricPublic", "A page of metrics.")
MetricId = Annotated[
    str, Path(description="The metric's id.", examples=["car-t-dose-manufacturing-cost"])
]


def _collection(
    request: Request, session: Session, query: MetricQuery, category: Category | None
) -> Any:
    rows, total = service.list_metrics(session, query=query, category=category)
    next_params: list[tuple[str, str]] | None = None
    if rows.more:
        next_params = [("limit", str(query.limit))]
        if rows.last is not None:
            next_params.append(("after", encode_cursor([service.sort_tag(query), *rows.last])))
        else:  # ranked by relevance: paged by offset
            next_params.append(("offset", str(query.offset + query.limit)))
    return json_page(
        request, rows.documents, total, query.limit, query.offset, next_params, rows.identity
    )


def _reader(category: Category | None) -> Any:
    """The chunk reader of an export of the metrics `query` selects (api.exports), each
    chunk written in the export's format by the database (api.metrics.encoding)."""

    def reader(query: MetricQuery, fmt: Format) -> ChunkReader | KeyedReader:
        def read(session: Session, after: list[Any] | None, limit: int) -> Chunk:
            return encoding.read_chunk(
                session, query=query, category=category, fmt=fmt, after=after, limit=limit
            )

        def split(session: Session, after: list[Any] | None, limit: int) -> list[Any] | None:
            return encoding.split_chunk(
                session, query=query, category=category, after=after, limit=limit
            )

        return KeyedReader(read, split) if encoding.splits(query, category) else read

    return reader


def _exports(path: str, category: Category | None, name: str, plural: str) -> None:
    """`<path>.csv` and `<path>.ndjson`: the metrics `GET <path>` selects, all of them, read
    in keyset chunks that hold no connection while the client reads."""
    add_exports(
        router, path, page_query=MetricQuery, schema=MetricPublic, chunks=_reader(category),
        name=name, plural=plural,
    )  # fmt: skip


def list_metrics(request: Request, session: ReadSessionDep, query: MetricParams) -> Any:
    """Every metric, filtered, searched, sorted and paged (exported whole: `/v1/metrics.csv`)."""
    return _collection(request, session, query, None)


router.add_api_route(
    "/metrics",
    list_metrics,
    methods=["GET"],
    operation_id="listMetrics",
    summary="List metrics",
    response_model=Page[MetricPublic],
    responses=COLLECTION_RESPONSES,
    route_class_override=DirectRoute,
)

_exports("/metrics", None, "Metrics", "metrics")


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
def get_metric_facets(
    request: Request, session: ReadSessionDep, query: Annotated[FacetQuery, Query()]
) -> Facets:
    """For filter panels: how many of the filtered metrics have each value of each facet, and
    the link to those metrics (every facet is a filter)."""
    path = request.scope.get("root_path", "") + request.url.path.removesuffix("/facets")
    params = request.query_params.multi_items()
    return service.facets(session, query=query, path=path, params=params)


def get_metric(
    metric_id: MetricId, session: ReadSessionDep, query: Annotated[AsOfQuery, Query()]
) -> Response:
    """The metric with this id and its evidence span (how to cite it: `.../citation`)."""
    item, version = service.metric_item(session, metric_id=metric_id)
    etag = store.item_etag(session, KIND, metric_id, version=version) or ""
    return Response(item, media_type="application/json", headers={"ETag": etag})


router.add_api_route(
    "/metrics/{metric_id}",
    get_metric,
    methods=["GET"],
    operation_id="getMetric",
    summary="Get one metric",
    response_model=MetricPublic,
    responses=item_responses("MetricPublic", "metric"),
    route_class_override=DirectRoute,
)


def _category_view(category: Category, path: str, operation_id: str, summary: str) -> None:
    """Register `path` (and its exports) as the metric collection restricted to `category`."""

    def list_category(request: Request, session: ReadSessionDep, query: MetricParams) -> Any:
        return _collection(request, session, query, category)

    list_category.__doc__ = f"Metrics of category `{category}`; the parameters of `/v1/metrics`."
    router.add_api_route(
        path,
        list_category,
        methods=["GET"],
        operation_id=operation_id,
        summary=summary,
        response_model=Page[MetricPublic],
        responses=COLLECTION_RESPONSES,
        route_class_override=DirectRoute,
    )
    name = operation_id.removeprefix("list")
    _exports(path, category, name, summary.removeprefix("List "))


_category_view(Category.market, "/market", "listMarketMetrics", "List market metrics")
_category_view(
    Category.regulatory, "/regulatory", "listRegulatoryMetrics", "List regulatory metrics"
)
_category_view(Category.mna, "/mna", "listMnaMetrics", "List M&A and partnership metrics")
