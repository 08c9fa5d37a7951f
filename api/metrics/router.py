"""Metric endpoints: the whole collection, its category views, and single metrics."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from api.db import SessionDep
from api.errors import InvalidInput
from api.metrics import service
from api.metrics.schemas import MetricPublic, MetricQuery
from api.pagination import Page, page
from api.routing import COMMON_ERRORS, ITEM_ERRORS, no_query_parameters
from api.vocabulary import Category

router = APIRouter(tags=["metrics"])

MetricParams = Annotated[MetricQuery, Query()]


@router.get(
    "/metrics",
    operation_id="listMetrics",
    summary="List metrics",
    response_model=Page[MetricPublic],
    responses=COMMON_ERRORS,
)
def list_metrics(
    request: Request, response: Response, session: SessionDep, query: MetricParams
) -> Page[MetricPublic]:
    """Every metric, filtered, searched, sorted and paged."""
    items, total = service.list_metrics(session, query=query)
    return page(request, response, items, total, query.limit, query.offset)


@router.get(
    "/metrics/{metric_id}",
    operation_id="getMetric",
    summary="Get one metric",
    response_model=MetricPublic,
    responses=ITEM_ERRORS,
    dependencies=[Depends(no_query_parameters)],
)
def get_metric(metric_id: str, session: SessionDep) -> MetricPublic:
    """The metric with this id, with its evidence span."""
    return service.get_metric(session, metric_id=metric_id)


def _category_view(category: Category, path: str, operation_id: str, summary: str) -> None:
    """Register `path` as the metric collection restricted to `category`."""

    def list_category(
        request: Request, response: Response, session: SessionDep, query: MetricParams
    ) -> Page[MetricPublic]:
        if query.category not in (None, category):
            raise InvalidInput("query", "category", f"this collection only holds {category}")
        items, total = service.list_metrics(session, query=query, category=category)
        return page(request, response, items, total, query.limit, query.offset)

    list_category.__doc__ = (
        f"Metrics of category `{category}`; the same parameters as `/v1/metrics`."
    )
    router.add_api_route(
        path,
        list_category,
        methods=["GET"],
        operation_id=operation_id,
        summary=summary,
        response_model=Page[MetricPublic],
        responses=COMMON_ERRORS,
    )


_category_view(Category.market, "/market", "listMarketMetrics", "List market metrics")
_category_view(
    Category.regulatory, "/regulatory", "listRegulatoryMetrics", "List regulatory metrics"
)
_category_view(Category.mna, "/mna", "listMnaMetrics", "List M&A and partnership metrics")
