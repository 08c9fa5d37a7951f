"""The application factory: routers, error handlers, middleware, documentation, probes."""

import base64
import functools
import gc
import hashlib
import logging
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import Engine
from starlette.types import Receive, Scope, Send

from api.assets import Assets
from api.auth.deps import FailureThrottle
from api.bulk import router as bulk_router
from api.caching import HttpCaching
from api.citations import CSL_COMPONENTS
from api.citations import router as citations_router
from api.config import Settings, get_settings
from api.db import make_engine
from api.entities.router import router as entities_router
from api.errors import PROBLEM_MEDIA_TYPE, Problem
from api.explorer import router as explorer
from api.guards import RequestGuards
from api.health import router as health_router
from api.history.router import router as history_router
from api.index import router as index_router
from api.metrics.router import router as metrics_router
from api.middleware import BodyLimit, CrossOrigin, HeadAsGet, RequestLog
from api.observability import Instruments, JsonFormatter
from api.observability import router as observability_router
from api.problems import install_error_handlers
from api.records import asof, reads
from api.records.routes import router as records_router
from api.response_cache import ResponseCache, RevisionProbe
from api.routing import CONDITIONAL_PARAMETERS, HEADERS, SERVICE_CHECKS, header
from api.schemas import EXAMPLES
from api.sources.router import router as sources_router

DESCRIPTION = """
Structured, sourced industry metrics on contract development and manufacturing organisations
(CDMOs) for personalised cancer medicine. Every figure carries the exact span of the source
sentence that states it (`evidence`), and every source's verbatim text is served at
`/v1/sources/{id}/text`.

Collections are paged with `limit`/`offset` and link the next page in the body (`next`) and in
a `Link` header; `/v1/<collection>.csv` and `/v1/<collection>.ndjson` export the whole filtered
collection, and `/v1/<collection>/{id}/citation` (`.bib`, `.ris`, `.json`) cites an item. Each
operation answers one media type. Successful GETs carry a strong `ETag` (send `If-None-Match`
for a 304) and `Cache-Control: public, max-age=60` (`no-cache` for an answer that may still
change: a change-feed page, `as_of` a moment not yet past). Errors are RFC 9457
`application/problem+json`.
"""
# The operations' tags, in the order the documentation lists them, each said in a line.
TAGS = [
    {"name": "index", "description": "Where everything is: the collections and their links."},
    {"name": "metrics", "description": "The figures, each with the exact span of its source "
     "sentence: pages, filters, search, facets and exports."},
    {"name": "sources", "description": "The articles the figures come from, with their "
     "verbatim text."},
    {"name": "technologies", "description": "Technology innovations and the metrics that "
     "quantify them."},
    {"name": "pricing", "description": "Pricing models of CDMO contracts."},
    {"name": "regulatory", "description": "Regulatory changes and their effects."},
    {"name": "bottlenecks", "description": "Industry bottlenecks, ranked."},
    {"name": "faq", "description": "Questions the article answers."},
    {"name": "citations", "description": "Any item cited in a CSL style, BibTeX, RIS or "
     "CSL-JSON, with its quote."},
    {"name": "dataset", "description": "The whole dataset as one download."},
    {"name": "history", "description": "Every change as a revision, the change feed and the "
     "releases; any read at a past moment with `as_of`."},
    {"name": "writes", "description": "Creates, updates and deletes, with an API key (bearer "
     "token), If-Match and Idempotency-Key."},
    {"name": "service", "description": "Liveness and readiness probes."},
]  # fmt: skip
DOCS_ASSETS_PATH = "/docs-assets"
# Swagger UI 5 and ReDoc, as packaged by fastapi-offline.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


class _App(FastAPI):
    """FastAPI, with cache hits answered before any of its layers (api.response_cache)."""

    edge: ResponseCache | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.middleware_stack is None:  # builds the response cache too
            self.middleware_stack = self.build_middleware_stack()
            self.edge = getattr(self.state, "response_cache", None)
        if scope["type"] == "http" and self.edge is not None:
            scope["app"] = self
            if await self.edge.answer_at_edge(scope, send):
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    read_engine: Engine | None = None,
) -> FastAPI:
    """A ready-to-serve application bound to `engine` (by default, from `settings`); reads
    are served from `read_engine` (by default DATABASE_READ_URL's replica, else `engine`)."""
    settings = settings or get_settings()
    _configure_logging(settings)
    app = _App(
        title="CDMO Metrics API",
        version="1.0.0",
        description=DESCRIPTION,
        license_info={"name": "Data: see each source's citation"},
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served by _add_docs, with the checks of every operation
        lifespan=_lifespan,
        # FastAPI's own OpenTelemetry hooks looked the global providers up on every request
        # (3-4% of a cold page's CPU, reading the environment each time) to find none; this
        # API reports through /metrics and its JSON log lines instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.router.redirect_slashes = False  # api.guards redirects, relative to the request's host
    # Engines made here are the app's to close; engines passed in belong to the caller.
    app.state.own_engines = [] if engine else [make_engine(settings.database_url, settings)]
    app.state.engine = engine or app.state.own_engines[0]
    if read_engine is None and engine is None and settings.database_read_url:
        read_engine = make_engine(settings.database_read_url, settings)
        app.state.own_engines.append(read_engine)
    app.state.read_engine = read_engine or app.state.engine
    # SQLite: the direct routes that go straight to a thread for now, and for how many reads
    # (api.direct `_OnTheLoop`); PostgreSQL's reads always take one.
    app.state.reads_off_the_loop = {} if app.state.read_engine.dialect.name == "sqlite" else None
    app.state.reads_interrupted = {}  # route template -> reads interrupted there (/metrics)
    app.state.auth_throttle = FailureThrottle(
        settings.auth_failure_limit, settings.auth_failure_window
    )
    asof.install(app.state.read_engine)
    install_error_handlers(app)

    # The routers' routes are complete as declared (`/v1` ones by api.routing.v1_router): taken
    # as they are, not included (which would build every route's fields again).
    for router in (
        metrics_router, entities_router, sources_router, citations_router, records_router,
        history_router, bulk_router, index_router, health_router, observability_router,
    ):  # fmt: skip
        app.router.routes.extend(router.routes)
    explorer.install(app)
    app.state.instruments = Instruments(app)
    _add_docs(app)

    # Outermost last: HEAD becomes GET before CORS and caching see it; cached responses are
    # the finished ones (tagged, compressed), served without entering the framework.
    app.add_middleware(HttpCaching)
    # A standby cannot LISTEN, and the primary's NOTIFY can overtake replication: on a
    # replica the version is read (shared by concurrent requests) for every request.
    app.state.probe = RevisionProbe(
        app.state.read_engine, listen=app.state.read_engine is app.state.engine
    )
    app.add_middleware(
        ResponseCache,
        probe=app.state.probe,
        state=app.state,
        max_bytes=settings.response_cache_bytes,
    )
    app.add_middleware(
        RequestGuards,
        max_query_bytes=settings.max_query_bytes,
        max_query_parameters=settings.max_query_parameters,
    )
    # Inside CORS, so that a browser can read the 413 too.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        CrossOrigin,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"],
        # What the contract has a client send: its key, preconditions, a retry's key, the
        # request id it wants echoed (the safelisted ones need no grant; Content-Type does
        # for JSON).
        allow_headers=[
            "Authorization",
            "Content-Type",
            "If-Match",
            "If-None-Match",
            "Idempotency-Key",
            "X-Request-ID",
        ],
        # What a page's script may read beyond the safelisted headers (Cache-Control,
        # Content-Type, ...): every header the API answers with a meaning for its client.
        expose_headers=[
            "Allow",
            "Content-Disposition",
            "Dataset-Version",
            "ETag",
            "Idempotent-Replayed",
            "Link",
            "Location",
            "Retry-After",
            "WWW-Authenticate",
            "X-Request-ID",
        ],
        max_age=600,
    )
    app.add_middleware(HeadAsGet)
    app.add_middleware(RequestLog)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The app owns its listener thread, the probe's connection and the pools it made: started
    here, and stopped and closed when the server stops."""
    app.state.probe.start()
    # What start-up made (routes, models, schemas: most of the heap) lives as long as the
    # process: kept out of the collector's full passes, which then pause serving less. `serve`
    # starts with the collector paused (api.cli): it runs from here on.
    gc.freeze()
    gc.enable()
    reads.keep_reads(app)
    try:
        yield
    finally:
        gc.unfreeze()  # collectable again (a test process runs many apps)
        reads.release_kept_reads(app)
        app.state.probe.stop()
        for owned in app.state.own_engines:
            owned.dispose()


def _configure_logging(settings: Settings) -> None:
    """The API's own log lines (one JSON object per line) go to standard output."""
    logger = logging.getLogger("api")
    logger.setLevel(settings.log_level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)


# ReDoc's bundle shows Redocly's logo from Redocly's CDN, whatever its options say (Redocly/redoc
# issue 2108): served with an empty image in its place, /redoc asks nothing of another origin.
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
EMPTY_IMAGE = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


@functools.cache
def _offline_redoc() -> bytes:
    """ReDoc's bundle, read once, its one reference to another origin's image replaced."""
    bundle = (DOCS_ASSETS / "redoc.standalone.js").read_bytes()
    return bundle.replace(REDOC_LOGO, EMPTY_IMAGE)


# The documentation pages may run the app's own scripts and their one inline script (its hash,
# taken from the page as written, so that a root path changes nothing), fetch and frame
# nothing from another origin, and are never framed by another site. Swagger UI and ReDoc set
# styles from script (ReDoc adds <style> elements), so inline styles are allowed; ReDoc's
# search runs in a worker made from a blob: URL.
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    """The documentation `page` in English (FastAPI's pages name no language, which a screen
    reader needs), under its policy."""
    html = bytes(page.body).decode().replace("<html>", '<html lang="en">', 1)
    scripts = ["'self'"] + [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in INLINE_SCRIPT.findall(html)
    ]
    policy = (
        f"default-src 'none'; script-src {' '.join(scripts)}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "worker-src 'self' blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    headers = {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }
    return HTMLResponse(html, headers=headers)


def _add_docs(app: FastAPI) -> None:
    """The OpenAPI document; Swagger UI and ReDoc from assets the app serves itself: no CDN,
    no internet needed."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=SERVICE_CHECKS)
    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(f"{DOCS_ASSETS_PATH}/redoc.offline.js", include_in_schema=False)
    def redoc_bundle() -> Response:  # routed before the assets' mount, which would answer 404
        return Response(_offline_redoc(), media_type="text/javascript; charset=utf-8")

    app.mount(DOCS_ASSETS_PATH, Assets(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
        )
        return _with_policy(page)

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS_PATH}/redoc.offline.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
        return _with_policy(page)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, generated once; error responses list only problem+json, headers
    are declared once, and operations that need no key say so (`security: []`)."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            license_info=app.license_info,
            servers=[{"url": "/", "description": "The server this document is served from."}],
        )
        document["tags"] = TAGS
        document["components"]["headers"] = HEADERS
        _add_problem_schemas(document["components"]["schemas"])
        document["components"]["schemas"].update(CSL_COMPONENTS)
        # Relative, as OpenAPI 3.1 allows (FastAPI's model wants an absolute URL).
        document["info"]["license"]["url"] = "/v1/sources"
        _add_examples(document)
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                operation.setdefault("security", [])
                for status, response in operation["responses"].items():
                    content = response.get("content", {})
                    if int(status) >= 400 and PROBLEM_MEDIA_TYPE in content:
                        response["content"] = {PROBLEM_MEDIA_TYPE: content[PROBLEM_MEDIA_TYPE]}
                _declare_http(path, method, operation)
        app.openapi_schema = document
    return app.openapi_schema


def _declare_http(path: str, method: str, operation: dict[str, Any]) -> None:
    """What HTTP carries around an operation, as a generated client needs it declared: a query
    parameter is a string or absent, never null; a read takes If-None-Match and If-Match; and
    the headers sent with every status (the request id; Dataset-Version on an item's 404, as a
    read at a version found nothing there; the scheme a 401 wants; the probes' no-store)."""
    for parameter in operation.get("parameters", []):
        schema = parameter["schema"]
        branches = [branch for branch in schema.get("anyOf", []) if branch != {"type": "null"}]
        if parameter["in"] == "query" and len(branches) == 1:
            del schema["anyOf"]
            schema.update(branches[0])
    if "304" in operation["responses"]:
        operation.setdefault("parameters", []).extend(CONDITIONAL_PARAMETERS)
    for status, response in operation["responses"].items():
        headers = response.setdefault("headers", {})
        headers["X-Request-ID"] = header("X-Request-ID")
        if status == "404" and method == "get" and "{" in path:
            headers["Dataset-Version"] = header("Dataset-Version")
        elif status == "401":
            headers["WWW-Authenticate"] = header("WWW-Authenticate")
        if path in ("/healthz", "/readyz"):
            headers["Cache-Control"] = {
                "description": "`no-store`: the answer describes this instant.",
                "schema": {"type": "string", "enum": ["no-store"]},
            }


def _add_problem_schemas(schemas: dict[str, Any]) -> None:
    """`Problem` and `ProblemError`, which every error response refers to by name: declared
    once here rather than as the model of ~700 responses (FastAPI built a validator for each,
    a quarter of start-up). As FastAPI writes schemas: no `default: null`."""
    problem = Problem.model_json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    for schema in [problem, *problem.get("$defs", {}).values()]:
        for field in schema["properties"].values():
            if "default" in field and field["default"] is None:
                del field["default"]
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem


def _add_examples(document: dict[str, Any]) -> None:
    """The example records, nulls included (FastAPI drops every null from the document, which
    left the examples missing required members): on their schemas and on each page's 200."""
    schemas = document["components"]["schemas"]
    for name, example in EXAMPLES.items():
        schemas[name]["examples"] = [example]
    for operations in document["paths"].values():
        for operation in operations.values():
            content = operation["responses"].get("200", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
            item = ref.removeprefix("#/components/schemas/Page_").removesuffix("_")
            if ref.startswith("#/components/schemas/Page_") and item in EXAMPLES:
                content["application/json"]["example"] = {
                    "items": [EXAMPLES[item]], "total": 1, "limit": 50, "offset": 0, "next": None,
                }  # fmt: skip
