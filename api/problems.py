"""The one translation of every error, ours and the framework's, into an RFC 9457
`application/problem+json` response (the errors themselves: api.errors)."""

import logging
from http import HTTPStatus
from typing import Any

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from api import migrate, strict_json
from api.errors import (
    MAX_PROBLEM_ERRORS,
    NOT_UTF8,
    PROBLEM_MEDIA_TYPE,
    DomainError,
    Problem,
    ProblemError,
    TooManyRequests,
    describe,
    instance_of,
    invalid,
    title_of,
)
from api.guards import route_table

logger = logging.getLogger("api.errors")

RETRY_AFTER_SECONDS = 5


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
        title=title_of(status),
        status=status,
        detail=detail,
        instance=instance_of(request.scope),
        errors=errors[:MAX_PROBLEM_ERRORS] if errors else errors,
        more_errors=more if more > 0 else None,
    )
    return JSONResponse(
        body.model_dump(mode="json", by_alias=True, exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    found = exc.errors()
    errors = [describe(error) for error in found[:MAX_PROBLEM_ERRORS]]
    rest = len(found) - len(errors)  # counted, not described
    from api.explorer.router import invalid_address  # imported by the app already

    page = invalid_address(request, errors)  # a browser's explorer page: its own answer
    if page is not None:
        return page
    return problem_response(request, 422, invalid(errors, rest), errors, omitted=rest)


# Why FastAPI could not read a body as JSON, where `json.loads` raised other than a decode
# error (which FastAPI answers as a validation error, located at its character).
_UNREADABLE_BODY = {
    UnicodeDecodeError: NOT_UTF8,
    RecursionError: "not valid JSON: nested too deeply to read",
}


# Logged for a request whose client left before its body ended (nginx's "client closed
# request"): nobody is there to answer, and nothing of the request was read whole.
CLIENT_CLOSED = 499


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc.__cause__, ClientDisconnect):  # FastAPI calls it a 400, "error parsing"
        return Response(status_code=CLIENT_CLOSED)
    unreadable = _UNREADABLE_BODY.get(type(exc.__cause__))
    if exc.status_code == 400 and unreadable is not None:  # malformed JSON, as a 422 says it
        error = ProblemError(in_="body", name="body", detail=unreadable)
        return problem_response(request, 422, invalid([error]), [error])
    if exc.status_code == 400 and type(exc.__cause__) is ValueError:  # an integer too long
        try:
            _document, ambiguous = strict_json.read(await request.body())
        except (ValueError, RecursionError):
            ambiguous = []
        if ambiguous:
            errors = [ProblemError(in_="body", name=name, detail=what) for name, what in ambiguous]
            return problem_response(request, 422, invalid(errors), errors)
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
# What a statement meets in a database not at this code's migration: no such table, column or
# function (PostgreSQL's codes; SQLite says it in words).
SCHEMA_SQLSTATES = {"42P01", "42703", "42883"}
SCHEMA_MESSAGES = ("no such table", "no such column", "no such function")
QUERY_CANCELED = "57014"
# Storage the database cannot read: SQLite's "file is not a database" and "database disk image
# is malformed", PostgreSQL's data_corrupted and index_corrupted.
DAMAGED_SQLITE = {"SQLITE_NOTADB", "SQLITE_CORRUPT"}
DAMAGED_SQLSTATES = {"XX001", "XX002"}


def damaged(exc: BaseException) -> bool:
    """Whether `exc` (the driver's error, or SQLAlchemy's around it) says the database's
    storage is damaged: no retry will help; its operator must restore it."""
    error = getattr(exc, "orig", None) or exc
    return (
        getattr(error, "sqlite_errorname", None) in DAMAGED_SQLITE
        or getattr(error, "sqlstate", None) in DAMAGED_SQLSTATES
    )


def _first_line(error: BaseException) -> str:
    """What the driver said, its first line: which failure it was is the operator's first
    question (a refused connection, a read-only file, a database dropped, a damaged file)."""
    said = str(error).strip()
    return said.splitlines()[0] if said else ""


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A database error, the driver's own or SQLAlchemy's: 503 when the database is busy with
    other writes, is not at this code's migration or cannot be reached; else a 500."""
    error = getattr(exc, "orig", None) or exc
    sqlstate = getattr(error, "sqlstate", None)
    retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if sqlstate in WRITE_CONFLICT_SQLSTATES or "database is locked" in str(error):
        logger.warning("write conflict after retries: %s", sqlstate or "locked")
        return problem_response(
            request,
            503,
            "The write kept meeting concurrent writes; try again shortly.",
            headers={"Retry-After": "1"},
        )
    if sqlstate in SCHEMA_SQLSTATES or str(error).startswith(SCHEMA_MESSAGES):
        # Served from a database never migrated, or migrated by an older or newer release:
        # the reason is told, as /readyz tells it, not a 500.
        mismatch = await anyio.to_thread.run_sync(_mismatch, request.app.state)
        if mismatch is not None:
            logger.error("%s Run `cdmo-metrics migrate`.", mismatch)
            return problem_response(request, 503, mismatch, headers=retry)
    if damaged(error):
        logger.error("database damaged: %s: %s", type(error).__name__, _first_line(error))
        return problem_response(
            request,
            503,
            "The database cannot be read: its storage is damaged, and must be restored by "
            "its operator.",
        )
    if sqlstate == QUERY_CANCELED:  # DB_STATEMENT_TIMEOUT_MS: slow, or waiting for a lock
        logger.warning("statement timeout")
        return problem_response(
            request,
            503,
            "The database did not answer within its statement timeout (a slow read, or one "
            "waiting for a write's lock); try again shortly.",
            headers=retry,
        )
    # PEP 249's OperationalError, the driver's own or SQLAlchemy's: the database went away.
    if not any(kind.__name__ == "OperationalError" for kind in type(exc).__mro__) and not (
        isinstance(exc, PoolTimeoutError)
    ):
        return await _unexpected(request, exc)
    logger.warning("database unavailable: %s: %s", type(error).__name__, _first_line(error))
    return problem_response(
        request, 503, "The database is unreachable; try again shortly.", headers=retry
    )


async def _integrity(request: Request, exc: Exception) -> JSONResponse:
    # Writes are serialised and checked first, so this is a last line of defence: a constraint
    # the checks did not foresee held, and nothing was written.
    logger.warning("constraint refused a write: %s", getattr(exc, "orig", exc).__class__.__name__)
    return problem_response(
        request, 409, "The change conflicts with the data as it stands; nothing was written."
    )


def _mismatch(state: Any) -> str | None:
    """The first of the app's databases not at this code's migration, said as /readyz says it;
    None when all are (or one cannot be asked: the error stands as it is)."""
    try:
        for name, engine in migrate.databases(state).items():
            mismatch = migrate.mismatch(engine, name)
            if mismatch is not None:
                return mismatch
    except Exception:  # the error being answered is the one to report
        return None
    return None


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(request, 500, "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    """Route every error, ours and the framework's, to a problem+json response."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(PoolTimeoutError, _database_error)
    app.add_exception_handler(IntegrityError, _integrity)
    # The driver's own errors too: the API's hooks run statements on its cursors (api.records.asof).
    engines = migrate.databases(app.state).values() if hasattr(app.state, "engine") else ()
    drivers = {engine.dialect.loaded_dbapi.Error for engine in engines}
    for error in (DBAPIError, *drivers):
        app.add_exception_handler(error, _database_error)
    app.add_exception_handler(Exception, _unexpected)
