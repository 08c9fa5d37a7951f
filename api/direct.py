"""Reads handled without FastAPI's per-request dependency machinery.

A cold read of a collection spent most of its CPU in FastAPI's handling of the request (about
1.3 ms of 3.3 ms: it inspects every field annotation of the query-parameter model on every
request, then resolves the dependency tree), not in the query. A `DirectRoute` is declared
exactly as any route (its parameters, models and responses are in the OpenAPI document as
before), but its request handler is built once from the endpoint's signature: the router's
request checks are awaited, the query string is validated by the parameter model in one
`model_validate` call (errors are the same `RequestValidationError`, located in `query`), and
the endpoint runs in a thread of the reads' own pool (on SQLite, first on the event loop under
a deadline: `_OnTheLoop`), with the read session `get_read_session` would give (on SQLite, the
one that thread keeps: api.records.reads.kept_read_session), ended when the endpoint returns.
(Opened and closed on the event loop through an async exit stack, and handed to anyio's thread
pool, a cold item served 2,300-2,500 req/s against 3,400 now, a cold page 1,270-1,360 against
1,350-1,490: `make bench`'s server, wrk at 16 connections, 2026-12-01.) Only the parameter
kinds below are handled; a route with any other kind of parameter or dependency is refused
when it is declared, so nothing can silently skip a check. FastAPI's own fields of the route,
which only the OpenAPI document reads, are built when first asked for
(api.routing.DeferredRoute).
"""

import asyncio
import concurrent.futures
import contextlib
import contextvars
import inspect
import time
import typing
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response, routing
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends, Path, Query
from fastapi.routing import request_response
from pydantic import BaseModel, ValidationError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api import db
from api.db import READ_THREADS
from api.records.reads import get_read_session, kept_read_session
from api.routing import DeferredRoute

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Provide = Callable[[Request, contextlib.AsyncExitStack | None], Awaitable[Any]]


class DirectRoute(DeferredRoute):
    """A GET route whose endpoint takes only a `Request`, the read session, path strings and
    one query-parameter model, and returns a `Response`."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        super().__init__(path, endpoint, **options)
        # What answering needs: the checks, the handler, and what `negotiate` reads.
        self.dependencies = list(options.get("dependencies") or [])
        self.responses = options.get("responses") or {}
        self.response_class = options["response_class"]  # add_api_route always passes it
        self.app = request_response(self.get_route_handler())

    def get_route_handler(self) -> Handler:
        # Built once per inclusion too: FastAPI then names the route as included (with the
        # including routers' dependencies) in its context variable, as its own handler reads.
        context = routing._effective_route_context_var.get()
        route: Any = context if context is not None and context.original_route is self else self
        checks = [_check_of(dependency) for dependency in route.dependencies]
        providers = _providers(self.endpoint)
        endpoint = self.endpoint
        on_loop = _OnTheLoop(self.path)
        # The read session's parameter: opened and closed where the endpoint runs.
        session = next((name for name, provide in providers if provide is _read_session), None)
        others = [(name, provide) for name, provide in providers if name != session]

        async def handle(request: Request) -> Response:
            for check in checks:
                await check(request)
            if session is not None and get_read_session not in request.app.dependency_overrides:
                arguments = {name: await provide(request, None) for name, provide in others}
                work = (_with_session, request, endpoint, session, arguments)
                response = on_loop.run(request, *work) if on_loop.worth_trying(request) else None
                if response is None:
                    response = await _in_thread(*work)
            else:
                async with contextlib.AsyncExitStack() as stack:
                    arguments = {name: await provide(request, stack) for name, provide in providers}
                    response = await run_in_threadpool(endpoint, **arguments)
            if not isinstance(response, Response):
                raise TypeError(f"{endpoint.__name__} must return a Response")
            return response

        return handle


def _with_session(
    request: Request, endpoint: Callable[..., Any], name: str, arguments: dict[str, Any]
) -> Any:
    """`endpoint` called with the request's read session as `name`, closed when it returns."""
    with kept_read_session(request) as session:
        return endpoint(**arguments, **{name: session})


# Reads run in threads of their own, beside anyio's; SQLite's pool has a connection for each
# (api.db). The interpreter runs one thread at a time: more would only wait for it.
_READS = concurrent.futures.ThreadPoolExecutor(READ_THREADS, thread_name_prefix="read")


async def _in_thread(function: Callable[..., Any], *arguments: Any) -> Any:
    """`function(*arguments)` in a read thread, in the caller's context. Cheaper than anyio's
    hand-off (which run_in_threadpool takes); a request cancelled meanwhile leaves the thread
    to finish, and close its session, on its own."""
    context = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_READS, context.run, function, *arguments)


class _OnTheLoop:
    """SQLite reads of one route, tried on the event loop first.

    A read handed to a thread costs the hand-off and the interpreter lock passed back and forth
    (a cold page of 50 on SQLite: about a fifth of its CPU, `docs/benchmarks.md`), while
    SQLite's own work in it takes a fraction of a millisecond. So a read is first run on the
    loop, with a deadline (`BUDGET`) that SQLite's progress handler enforces (api.db): a
    statement still running then is interrupted, the attempt dropped (a read changes nothing),
    and the read is made again in a thread, as every read was before. The loop never does much
    more than a budget's work for a read, whatever the dataset's size. After an interrupted
    attempt the route's next `PATIENCE` reads go straight to a thread, so a route that is slow
    at this dataset's size wastes a budget once per `PATIENCE` reads at most. PostgreSQL's
    reads wait on the network and always take a thread."""

    BUDGET = 0.002  # seconds of the loop thread's CPU time
    PATIENCE = 64

    def __init__(self, route: str) -> None:
        self.route = route  # its template, as /metrics counts the interruptions by

    def worth_trying(self, request: Request) -> bool:
        skipping: dict[_OnTheLoop, int] | None = request.app.state.reads_off_the_loop
        if skipping is None:  # PostgreSQL
            return False
        left = skipping.pop(self, 0)
        if left:
            if left > 1:
                skipping[self] = left - 1
            return False
        return True

    def run(self, request: Request, function: Callable[..., Any], *arguments: Any) -> Any:
        """`function(*arguments)` on the loop, or None if SQLite was interrupted."""
        bounded = db.BOUNDED
        bounded.deadline, bounded.interrupted = time.thread_time() + self.BUDGET, False
        try:
            response = function(*arguments)
        except Exception:
            if not bounded.interrupted:
                raise
        finally:
            bounded.deadline = None
        if bounded.interrupted:  # whatever the endpoint made of the error, it is not an answer
            state = request.app.state
            state.reads_off_the_loop[self] = self.PATIENCE
            state.reads_interrupted[self.route] = state.reads_interrupted.get(self.route, 0) + 1
            return None
        return response


def _check_of(dependency: Depends) -> Callable[[Request], Awaitable[None]]:
    """A router-level check: an `async` function of the request alone."""
    check = dependency.dependency
    parameters = list(inspect.signature(check).parameters.values()) if check else []
    if (
        check is None
        or not inspect.iscoroutinefunction(check)
        or [p.annotation for p in parameters] != [Request]
    ):
        raise TypeError(f"DirectRoute cannot run the dependency {check!r}")
    return check


def _providers(endpoint: Callable[..., Any]) -> list[tuple[str, Provide]]:
    hints = typing.get_type_hints(endpoint, include_extras=True)
    hints.pop("return", None)
    return [(name, _provider(name, hint)) for name, hint in hints.items()]


def _provider(name: str, hint: Any) -> Provide:
    """How the argument `name` (annotated `hint`) is made from a request."""
    base, *extras = typing.get_args(hint) if typing.get_origin(hint) is typing.Annotated else (
        hint,
    )  # fmt: skip
    marker = extras[0] if extras else None
    if base is Request:
        return _request
    if isinstance(marker, Depends) and marker.dependency is get_read_session and base is Session:
        return _read_session
    if isinstance(marker, Query) and isinstance(base, type) and issubclass(base, BaseModel):
        return _query_model(base)
    if isinstance(marker, Path) and base is str and not marker.metadata:
        return _path_string(name)
    raise TypeError(f"DirectRoute cannot provide the parameter {name}: {hint!r}")


async def _request(request: Request, _stack: contextlib.AsyncExitStack | None) -> Request:
    return request


async def _read_session(request: Request, stack: contextlib.AsyncExitStack | None) -> Any:
    """What `app.dependency_overrides` puts in the read session's place (without one, the
    endpoint's thread opens the session: `_with_session`)."""
    if stack is None:
        raise TypeError("an overridden read session is provided within an exit stack")
    provide: Any = request.app.dependency_overrides.get(get_read_session, get_read_session)
    if inspect.isasyncgenfunction(provide):
        return await stack.enter_async_context(contextlib.asynccontextmanager(provide)(request))
    if inspect.isgeneratorfunction(provide):
        return stack.enter_context(contextlib.contextmanager(provide)())
    made = provide()
    return await made if inspect.isawaitable(made) else made


def _query_model(model: type[BaseModel]) -> Provide:
    async def provide(request: Request, _stack: contextlib.AsyncExitStack | None) -> BaseModel:
        try:  # single values: `single_valued_parameters` has refused repeated names
            return model.model_validate(dict(request.query_params))
        except ValidationError as error:
            raise RequestValidationError(
                [{**e, "loc": ("query", *e["loc"])} for e in error.errors(include_url=False)]
            ) from None

    return provide


def _path_string(name: str) -> Provide:
    async def provide(request: Request, _stack: contextlib.AsyncExitStack | None) -> str:
        return str(request.path_params[name])

    return provide
