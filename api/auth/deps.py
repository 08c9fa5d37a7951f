"""What admits a write: a valid, unrevoked key of enough scope, within its rate, checked before
anything else of the request."""

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.auth import service
from api.db import writer
from api.errors import Forbidden, TooManyRequests, Unauthorized
from api.routing import DeferredRoute

bearer = HTTPBearer(
    auto_error=False,
    description="An API key made with `cdmo-metrics keys create`; reads need none.",
)
SCOPE_RANK = {"write": 1, "admin": 2}


class FailureThrottle:
    """Failed authentications per client address in fixed windows, in this process's memory:
    past the limit an address is answered 429 without a look at the database. At most
    MAX_ADDRESSES are tracked (a flood of addresses evicts the oldest), so memory stays small."""

    MAX_ADDRESSES = 10_000

    def __init__(self, limit: int, window_seconds: int) -> None:
        self.limit = limit
        self.window = window_seconds
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, tuple[int, int]] = OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """Seconds `address` must wait, or None if it may try."""
        now = time.time()
        window = int(now // self.window)
        with self._lock:
            started, count = self._failures.get(address, (window, 0))
        if started == window and count >= self.limit:
            return max(1, math.ceil((window + 1) * self.window - now))
        return None

    def failed(self, address: str) -> None:
        """Count one failed attempt of `address`."""
        window = int(time.time() // self.window)
        with self._lock:
            started, count = self._failures.pop(address, (window, 0))
            self._failures[address] = (window, count + 1 if started == window else 1)
            while len(self._failures) > self.MAX_ADDRESSES:
                self._failures.popitem(last=False)


class KeyRequired:
    """The dependency admitting keys of `scope` (admin covers write); it yields the key's name.
    A request is admitted once: asked again (`KeyFirst` asks before the framework does), it
    answers the name it admitted."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def __call__(
        self,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        admitted: str | None = getattr(request.state, "key_name", None)
        if admitted is not None:
            return admitted
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("This operation needs an API key: Authorization: Bearer <key>.")
        throttle: FailureThrottle = request.app.state.auth_throttle
        address = request.client.host if request.client else "unknown"
        wait = throttle.retry_after(address)
        if wait is not None:
            raise TooManyRequests(
                f"Too many failed authentications from {address}; retry in {wait} s.",
                retry_after=wait,
            )
        # A plain read: a wrong key costs one indexed lookup, never the write lock.
        with Session(request.app.state.engine) as session:
            key = service.authenticate(session, credentials.credentials)
        if key is None or key.revoked_at is not None:
            throttle.failed(address)
        if key is None:
            raise Unauthorized("The API key is not valid.")
        if key.revoked_at is not None:
            raise Unauthorized(f"The API key {key.name!r} has been revoked.")
        if SCOPE_RANK[key.scope] < SCOPE_RANK[self.scope]:
            raise Forbidden(
                f"The key {key.name!r} has scope {key.scope!r}; this needs {self.scope!r}."
            )
        name = key.name
        settings = request.app.state.settings
        window = settings.write_rate_window
        if settings.redis_url:  # no database connection held while Redis answers
            from api.auth import redis_rates  # the client library only when configured

            redis = redis_rates.redis_client(settings.redis_url)
            used, reset = redis_rates.count_write_in_redis(
                redis, key_name=name, window_seconds=window
            )
        else:
            with Session(writer(request.app.state.engine)) as session, session.begin():
                used, reset = service.count_write(session, key_name=name, window_seconds=window)
        if used > settings.write_rate_limit:
            raise TooManyRequests(
                f"The key {name!r} made more than {settings.write_rate_limit} writes in "
                f"{window} s; retry in {reset} s.",
                retry_after=reset,
            )
        request.state.key_name = name  # for the access log; the key itself is never logged
        return name


class KeyFirst(DeferredRoute):
    """A write route that admits the caller's key (`KeyRequired`) before the framework reads
    anything else of the request: without a valid key of the scope, the answer is 401 (403,
    429) whatever the body, parameters or Accept, so an anonymous client learns nothing of how
    they would have been read. A client it admits then gets the 415, 422 or 406 they earn."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        admissions = [
            needed.call
            for needed in self.dependant.dependencies
            if isinstance(needed.call, KeyRequired)
        ]

        async def admitted_first(request: Request) -> Response:
            credentials = await bearer(request)
            for admit in admissions:
                await run_in_threadpool(admit, request, credentials)
            return await handler(request)

        return admitted_first
