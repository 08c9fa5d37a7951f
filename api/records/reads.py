"""The session a read request gets: on the live data, or at the version of its `as_of`."""

import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pydantic import ValidationError
from sqlalchemy import Connection
from sqlmodel import Session

from api.records.asof import SETTLE, TIMESTAMP

# The change feed and its exports: pollers go on from its pages by time (`since`), so a read
# of it first waits out any write's commit window (api.records.versions.settle).
SETTLED_PATHS = ("/v1/changes",)


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    """A session on the live data, or with `?as_of=` at the version in force at that moment.

    A malformed `as_of` is left to the route's parameter validation, which answers 422. The
    dependency is `async` so that a plain read costs no hand-off to a thread: the session
    connects, and finds its version, when the handler (in its thread) first queries.
    """
    with read_session(request) as session:
        yield session


def _info(request: Request) -> dict[str, Any]:
    """What a read session of `request` carries: the request, and whether it must settle."""
    if request.scope["path"].startswith(SETTLED_PATHS):
        return {"request": request, SETTLE: True}
    return {"request": request}


def read_session(request: Request) -> Session:
    """The read session of `request` (see `get_read_session`), to be closed by the caller."""
    info = _info(request)
    raw = request.query_params.get("as_of")
    if raw is not None:
        with contextlib.suppress(ValidationError):
            info["as_of"] = TIMESTAMP.validate_python(raw)
    return Session(request.app.state.read_engine, info=info)


ReadSessionDep = Annotated[Session, Depends(get_read_session)]


class _Kept(threading.local):
    """A thread's kept read session: the app it serves (weakly: a thread outlives the apps of a
    test process), and the session on its own connection."""

    app: "weakref.ref[FastAPI] | None" = None
    session: Session | None = None


_KEPT = _Kept()
_KEEPING = threading.Lock()


@contextlib.contextmanager
def kept_read_session(request: Request) -> Iterator[Session]:
    """`read_session(request)` for a live read on SQLite, made cheaper: each thread that reads
    keeps one session on a connection of its own between requests, instead of a new session
    checking a connection out of the pool and back in every time (about 70 µs of a cold page's
    500 of CPU; docs/benchmarks.md). Each read is still its own transaction, begun at its first
    query and rolled back when it ends, so it sees every commit made before it began.

    Only while the app's lifespan runs (it closes the kept connections when it ends); only
    live reads (a read `as_of` a moment sets that moment on its connection, which must not
    outlive the read) and only SQLite (PostgreSQL's reads wait on the network, and a kept
    connection would need the pool's checks that it still works): otherwise the read's session
    is made as `read_session` makes it."""
    app = request.app
    kept: list[Connection] | None = getattr(app.state, "kept_reads", None)
    if kept is None or "as_of" in request.query_params:
        with read_session(request) as made:
            yield made
        return
    session = _KEPT.session
    bound = session.bind if session is not None else None
    if (
        session is None
        or _KEPT.app is None
        or _KEPT.app() is not app
        or not isinstance(bound, Connection)
        or bound.closed
        or bound.invalidated
    ):
        connection = app.state.read_engine.connect()
        with _KEEPING:
            kept.append(connection)
        session = _KEPT.session = Session(connection)
        _KEPT.app = weakref.ref(app)
    session.info.update(_info(request))
    try:
        yield session
    finally:
        _end(session, kept)


def _end(session: Session, kept: list[Connection]) -> None:
    """End the read (its transaction rolled back), ready for the thread's next one, whatever
    the read raised; if even that fails, the connection is let go and the next read opens
    another."""
    try:
        session.close()
        session.info.clear()
    except Exception:
        _KEPT.app = _KEPT.session = None
        connection = session.bind
        if isinstance(connection, Connection):
            with _KEEPING, contextlib.suppress(ValueError):
                kept.remove(connection)
            with contextlib.suppress(Exception):  # already broken: nothing to release
                connection.invalidate()
                connection.close()


def keep_reads(app: FastAPI) -> None:
    """From now on (the app's lifespan has begun) threads may keep their read sessions."""
    if app.state.read_engine.dialect.name == "sqlite":
        app.state.kept_reads = []


def release_kept_reads(app: FastAPI) -> None:
    """Close the connections the threads kept for `app` (its lifespan is ending, its reads
    done); a thread that reads for the app again opens another."""
    kept: list[Connection] = getattr(app.state, "kept_reads", None) or []
    app.state.kept_reads = None
    with _KEEPING:
        connections, kept[:] = list(kept), []
    for connection in connections:
        with contextlib.suppress(Exception):  # closed with its thread's read: nothing left
            connection.close()
