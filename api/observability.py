"""Prometheus metrics at /metrics: requests by route and status, latency, cache, pool, revision."""

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

router = APIRouter(include_in_schema=False)


class Instruments:
    """The metrics of one application instance, in a registry of its own."""

    def __init__(self, app: Any) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cdmo_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cdmo_http_request_duration_seconds",
            "Time to answer, by method and route template.",
            ["method", "route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.registry.register(_StateCollector(app))
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:  # a label lookup takes a lock; the children are kept
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class _StateCollector(Collector):
    """Cache hits and misses, database pool use and the dataset revision, read when scraped."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def collect(self) -> Iterator[Any]:
        cache = getattr(self.app.state, "response_cache", None)
        if cache is not None:
            hits = CounterMetricFamily("cdmo_cache_hits", "Responses served from the cache.")
            hits.add_metric([], cache.hits)
            yield hits
            misses = CounterMetricFamily("cdmo_cache_misses", "Responses computed.")
            misses.add_metric([], cache.misses)
            yield misses
            revision = cache.probe.current(exact=False)
            gauge = GaugeMetricFamily("cdmo_dataset_version", "The dataset version.")
            if revision is not None:
                gauge.add_metric([], float(revision[0]))
            yield gauge
        pool = self.app.state.engine.pool
        in_use = GaugeMetricFamily("cdmo_db_connections_in_use", "Pooled connections checked out.")
        in_use.add_metric([], float(getattr(pool, "checkedout", lambda: 0)()))
        yield in_use
        size = GaugeMetricFamily("cdmo_db_pool_size", "Connections the pool keeps.")
        size.add_metric([], float(getattr(pool, "size", lambda: 0)()))
        yield size


@router.get("/metrics")
def metrics(request: Request) -> Response:
    """The Prometheus text exposition of this instance's metrics."""
    registry = request.app.state.instruments.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
