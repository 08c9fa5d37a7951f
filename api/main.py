"""The application factory: routers, error handlers, probes."""

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy import Engine

from api import migrate
from api.config import Settings, get_settings
from api.db import make_engine
from api.entities.router import router as entities_router
from api.errors import install_error_handlers
from api.health import router as health_router
from api.metrics.router import router as metrics_router
from api.middleware import HeadAsGet
from api.negotiation import negotiate
from api.routing import single_valued_parameters
from api.sources.router import router as sources_router

DESCRIPTION = """
Structured, sourced industry metrics on contract development and manufacturing organisations
(CDMOs) for personalised cancer medicine. Every figure carries the exact span of the source
sentence that states it (`evidence`), and every source's verbatim text is served at
`/v1/sources/{id}/text`.

Errors are RFC 9457 `application/problem+json`. Collections are paged with `limit`/`offset`
and link the next page in the body (`next`) and in a `Link` header.
"""


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """A ready-to-serve application bound to `engine` (by default, from `settings`)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="CDMO Metrics API",
        version="1.0.0",
        description=DESCRIPTION,
        license_info={"name": "Data: see each source's citation"},
    )
    app.state.engine = engine or make_engine(settings.database_url, settings)
    app.state.head_revision = migrate.head_revision()
    install_error_handlers(app)

    v1 = APIRouter(
        prefix="/v1", dependencies=[Depends(negotiate), Depends(single_valued_parameters)]
    )
    v1.include_router(metrics_router)
    v1.include_router(entities_router)
    v1.include_router(sources_router)
    app.include_router(v1)
    app.include_router(health_router)
    app.add_middleware(HeadAsGet)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, generated once; error responses list only problem+json."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            license_info=app.license_info,
        )
        for operations in document["paths"].values():
            for operation in operations.values():
                for status, response in operation["responses"].items():
                    if int(status) >= 400:
                        response.get("content", {}).pop("application/json", None)
        app.openapi_schema = document
    return app.openapi_schema
