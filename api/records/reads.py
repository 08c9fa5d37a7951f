"""The session a read request gets: on the live data, or at the version of its `as_of`."""

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import ValidationError
from sqlmodel import Session

from api.records.asof import TIMESTAMP


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    """A session on the live data, or with `?as_of=` at the version in force at that moment.

    A malformed `as_of` is left to the route's parameter validation, which answers 422. The
    dependency is `async` so that a plain read costs no hand-off to a thread: the session
    connects, and finds its version, when the handler (in its thread) first queries.
    """
    with read_session(request) as session:
        yield session


def read_session(request: Request) -> Session:
    """The read session of `request` (see `get_read_session`), to be closed by the caller."""
    info: dict[str, Any] = {"request": request}
    raw = request.query_params.get("as_of")
    if raw is not None:
        with contextlib.suppress(ValidationError):
            info["as_of"] = TIMESTAMP.validate_python(raw)
    return Session(request.app.state.read_engine, info=info)


ReadSessionDep = Annotated[Session, Depends(get_read_session)]
