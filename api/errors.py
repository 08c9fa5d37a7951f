"""Domain errors and their one translation into RFC 9457 `application/problem+json` responses."""

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException

from api.guards import route_table
from api.schemas import with_example

logger = logging.getLogger("api.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
# A problem lists this many input errors and counts the rest: a body of 300,000 bad entries
# is answered in a few kilobytes.
MAX_PROBLEM_ERRORS = 50
RETRY_AFTER_SECONDS = 5


class ProblemError(BaseModel):
    """One bad input: where it is, which parameter or field, and what is wrong with it."""

    model_config = ConfigDict(populate_by_name=True)

    in_: str = Field(alias="in", description="query, path, header or body", examples=["query"])
    name: str = Field(description="Parameter name or dotted field path.", examples=["limit"])
    detail: str = Field(examples=["Input should be less than or equal to 500"])


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = with_example("Problem")

    type: str = Field(default="about:blank", description="Problem type URI.")
    title: str = Field(description="Short summary of the problem type.", examples=["Not Found"])
    status: int = Field(description="The HTTP status code.", examples=[404])
    detail: str = Field(description="What went wrong in this occurrence.")
    instance: str | None = Field(default=None, description="The request path.")
    errors: list[ProblemError] | None = Field(
        default=None,
        description=f"For input errors: each bad parameter or field (the first "
        f"{MAX_PROBLEM_ERRORS}).",
    )
    more_errors: int | None = Field(
        default=None, description="How many further input errors `errors` leaves out."
    )


class DomainError(Exception):
    """An error a client can cause; `status` is the only HTTP knowledge a service needs."""

    status: HTTPStatus = HTTPStatus.BAD_REQUEST

    def __init__(self, detail: str, errors: list[ProblemError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.omitted = 0  # further errors, counted but not listed


class NotFound(DomainError):
    status = HTTPStatus.NOT_FOUND


class NotAcceptable(DomainError):
    status = HTTPStatus.NOT_ACCEPTABLE


class InvalidInput(DomainError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY

    def __init__(self, location: str, name: str, detail: str) -> None:
        super().__init__(
            f"Invalid {location} parameter {name!r}: {detail}",
            [ProblemError(in_=location, name=name, detail=detail)],
        )

    @classmethod
    def many(cls, errors: list[ProblemError], omitted: int = 0) -> "InvalidInput":
        """One 422 naming several bad fields (and counting `omitted` more)."""
        first = errors[0]
        exc = cls(first.in_, first.name, first.detail)
        exc.detail, exc.errors = f"Invalid input: {named(errors, omitted)}.", errors
        exc.omitted = omitted
        return exc


class Conflict(DomainError):
    status = HTTPStatus.CONFLICT


class PreconditionFailed(DomainError):
    status = HTTPStatus.PRECONDITION_FAILED


class PreconditionRequired(DomainError):
    status = HTTPStatus.PRECONDITION_REQUIRED


class Unauthorized(DomainError):
    status = HTTPStatus.UNAUTHORIZED


class Forbidden(DomainError):
    status = HTTPStatus.FORBIDDEN


class TooManyRequests(DomainError):
    status = HTTPStatus.TOO_MANY_REQUESTS

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class Unavailable(DomainError):
    status = HTTPStatus.SERVICE_UNAVAILABLE


def named(errors: list[ProblemError], omitted: int = 0) -> str:
    """The distinct places of `errors`, in order, for a problem's detail (the first
    MAX_PROBLEM_ERRORS, then how many more)."""
    names = list(dict.fromkeys(f"{e.in_} {e.name!r}" for e in errors[:MAX_PROBLEM_ERRORS]))
    rest = max(0, len(errors) - MAX_PROBLEM_ERRORS) + omitted
    return ", ".join(names) + (f" and {rest} more" if rest > 0 else "")


def problem_response(
    request: Request,
    status: int,
    detail: str,
    errors: list[ProblemError] | None = None,
    headers: dict[str, str] | None = None,
    *,
    omitted: int = 0,
) -> JSONResponse:
    """The problem+json response for `status`; `title` is the standard reason phrase. Past
    MAX_PROBLEM_ERRORS, `errors` are counted (with `omitted` more the caller did not list)."""
    more = max(0, len(errors or ()) - MAX_PROBLEM_ERRORS) + omitted
    body = Problem(
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=errors[:MAX_PROBLEM_ERRORS] if errors else errors,
        more_errors=more if more > 0 else None,
    )
    return JSONResponse(
        body.model_dump(mode="json", by_alias=True, exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def describe(error: Any) -> ProblemError:
    """One pydantic error as a problem entry; its location starts with query, path, header or
    body."""
    location, *path = error.get("loc") or ("body",)
    name = ".".join(str(part) for part in path) or str(location)
    if error.get("type") == "extra_forbidden":
        what = "Unknown or server-owned field." if location == "body" else "Unknown parameter."
        return ProblemError(in_=str(location), name=name, detail=what)
    detail = str(error.get("msg", "Invalid.")).removeprefix("Value error, ")
    return ProblemError(in_=str(location), name=name, detail=detail)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    found = exc.errors()
    errors = [describe(error) for error in found[:MAX_PROBLEM_ERRORS]]
    names = ", ".join(sorted({f"{e.in_} {e.name!r}" for e in errors}))
    rest = len(found) - len(errors)  # counted, not described
    if rest:
        names += f" and {rest} more"
    return problem_response(request, 422, f"Invalid input: {names}.", errors, omitted=rest)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"No resource at {request.url.path}."
    elif exc.status_code == 413:
        detail = "The request body is too large."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}."
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405:
        headers = {"Allow": _allowed_methods(request)}
    return problem_response(request, exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> str:
    """The methods of the route at this path (api.guards.RouteTable: a concrete path outranks a
    template, HEAD is implied by GET)."""
    return route_table(request.app).allow(request.url.path)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = None
    if exc.status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    elif isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    elif exc.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="cdmo-metrics"'}
    return problem_response(
        request, exc.status, exc.detail, exc.errors, headers, omitted=exc.omitted
    )


# Deadlocks and serialisation failures: the database is there, the write met another one.
WRITE_CONFLICT_SQLSTATES = {"40001", "40P01", "55P03"}


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if sqlstate in WRITE_CONFLICT_SQLSTATES or "database is locked" in str(exc):
        logger.warning("write conflict after retries: %s", sqlstate or "locked")
        return problem_response(
            request,
            503,
            "The write kept meeting concurrent writes; try again shortly.",
            headers={"Retry-After": "1"},
        )
    logger.warning("database unavailable: %s", exc.__class__.__name__)
    return problem_response(
        request,
        503,
        "The database is unreachable; try again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    # Writes are serialised and checked first, so this is a last line of defence: a constraint
    # the checks did not foresee held, and nothing was written.
    logger.warning("constraint refused a write: %s", getattr(exc, "orig", exc).__class__.__name__)
    return problem_response(
        request, 409, "The change conflicts with the data as it stands; nothing was written."
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    """Route every error, ours and the framework's, to a problem+json response."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(PoolTimeoutError, _database_unavailable)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(DBAPIError, _unexpected)
    app.add_exception_handler(Exception, _unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring problem+json bodies for `statuses` (429 and 503
    say when to try again)."""
    retry = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    return {
        status: {
            "model": Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
            **({"headers": retry} if status in (429, 503) else {}),
        }
        for status in statuses
    }
