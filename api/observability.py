"""Prometheus metrics at /metrics (requests by route and status, latency, cache, pool,
revision) and the one log format: a JSON object per line.

prometheus_client is imported by the first scrape, not at start-up: until then requests are
counted in plain dicts."""

import json
import logging
from bisect import bisect_left
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response

from api.routing import DeferredRoute

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

router = APIRouter(include_in_schema=False, route_class=DeferredRoute)


class JsonFormatter(logging.Formatter):
    """Every log line one JSON object: control characters a client put in a path or header are
    escaped, never written raw to a terminal. The access log's messages are JSON already."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == "api.access" and message.startswith("{"):
            return message
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, with its lines (errors included) in the JSON format."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"default": handler},
        "loggers": {
            name: {"handlers": ["default"], "level": level.upper(), "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def _go_float(value: float) -> str:
    """A bucket bound as Prometheus writes it ("0.005", "+Inf")."""
    from prometheus_client.utils import floatToGoString

    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Instruments:
    """The metrics of one application instance, in a registry of its own.

    Requests are counted in plain dicts (the event loop's thread writes them; a scrape reads
    them), not in prometheus_client's locked children: a cached answer costs a few microseconds,
    and the count must not cost more than the answer."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: dict[tuple[str, str, int], int] = {}
        # per (method, route): a count per bucket (the last for +Inf), then the sum of seconds
        self.latencies: dict[tuple[str, str], list[float]] = {}

    @cached_property
    def registry(self) -> "CollectorRegistry":
        """The registry a scrape reads, made at the first."""
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry()
        registry.register(_RequestCollector(self))
        registry.register(_StateCollector(self.app))
        return registry

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        series = self.latencies.get((method, route))
        if series is None:
            series = self.latencies[(method, route)] = [0.0] * (len(BUCKETS) + 2)
        series[bisect_left(BUCKETS, seconds)] += 1
        series[-1] += seconds


class _RequestCollector:
    """The request counts and latency histogram, as Prometheus counter and histogram."""

    def __init__(self, instruments: Instruments) -> None:
        self.instruments = instruments

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        requests = CounterMetricFamily(
            "cdmo_http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in list(self.instruments.counts.items()):
            requests.add_metric([method, route, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "cdmo_http_request_duration_seconds",
            "Time to answer, by method and route template.",
            labels=["method", "route"],
        )
        for (method, route), series in list(self.instruments.latencies.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            bounds: list[float] = [*BUCKETS, float("inf")]
            for bound, observed in zip(bounds, series[:-1], strict=True):
                cumulative += observed
                buckets.append((_go_float(bound), cumulative))
            latency.add_metric([method, route], buckets, sum_value=series[-1])
        yield latency


class _StateCollector:
    """Cache hits and misses, reads interrupted on the loop, database pool use and the dataset
    revision, read when scraped."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

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
        interrupted = CounterMetricFamily(
            "cdmo_reads_interrupted",
            "SQLite reads interrupted on the event loop for outrunning their budget (each then "
            "made again in a thread), by route template.",
            labels=["route"],
        )
        for route, count in list(self.app.state.reads_interrupted.items()):
            interrupted.add_metric([route], count)
        yield interrupted
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
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = request.app.state.instruments.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
