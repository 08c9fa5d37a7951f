"""Liveness and readiness probes, outside /v1."""

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from api import migrate
from api.errors import problem_responses
from api.problems import RETRY_AFTER_SECONDS, damaged, problem_response
from api.routing import SERVICE_CHECKS, DeferredRoute

router = APIRouter(tags=["service"], route_class=DeferredRoute, dependencies=SERVICE_CHECKS)


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    revision: str


@router.get(
    "/healthz",
    operation_id="getHealth",
    summary="Is the process up?",
    responses=problem_responses(406, 412, 414, 422),
)
def healthz() -> Health:
    """Answers as long as the process serves requests; never touches the database."""
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="getReadiness",
    summary="Is the database reachable and migrated?",
    response_model=Readiness,
    responses=problem_responses(406, 412, 414, 422, 503),
)
def readyz(request: Request) -> Readiness | JSONResponse:
    """Ready when the database (and the read replica, if any) answers and stands at the
    newest migration."""
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    for name, engine in migrate.databases(request.app.state).items():
        try:
            detail = migrate.mismatch(engine, name)
        except SQLAlchemyError as error:
            if damaged(error):
                return problem_response(request, 503, f"The {name}'s storage is damaged.")
            return problem_response(request, 503, f"The {name} is unreachable.", headers=retry)
        if detail is not None:
            return problem_response(request, 503, detail, headers=retry)
    return Readiness(status="ready", revision=migrate.head_revision())
