"""The dependencies that admit a write: a valid, unrevoked key of enough scope, within its rate."""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from api.auth import service
from api.db import writer
from api.errors import Forbidden, TooManyRequests, Unauthorized

bearer = HTTPBearer(
    auto_error=False,
    description="An API key made with `cdmo-metrics keys create`; reads need none.",
)
SCOPE_RANK = {"write": 1, "admin": 2}


def requires(scope: str) -> Callable[..., str]:
    """A dependency admitting keys of `scope` (admin covers write); it yields the key's name."""

    def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> str:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("This operation needs an API key: Authorization: Bearer <key>.")
        engine = writer(request.app.state.engine)
        settings = request.app.state.settings
        window = settings.write_rate_window
        redis = service.redis_client(settings.redis_url) if settings.redis_url else None
        with Session(engine) as session, session.begin():
            key = service.authenticate(session, credentials.credentials)
            if key is None:
                raise Unauthorized("The API key is not valid.")
            if key.revoked_at is not None:
                raise Unauthorized(f"The API key {key.name!r} has been revoked.")
            if SCOPE_RANK[key.scope] < SCOPE_RANK[scope]:
                raise Forbidden(
                    f"The key {key.name!r} has scope {key.scope!r}; this needs {scope!r}."
                )
            name = key.name
            if redis is None:
                used, reset = service.count_write(session, key_name=name, window_seconds=window)
        if redis is not None:  # after the transaction: a slow Redis holds no database connection
            used, reset = service.count_write_in_redis(redis, key_name=name, window_seconds=window)
        if used > settings.write_rate_limit:
            raise TooManyRequests(
                f"The key {name!r} made more than {settings.write_rate_limit} writes in "
                f"{window} s; retry in {reset} s.",
                retry_after=reset,
            )
        request.state.key_name = name  # for the access log; the key itself is never logged
        return name

    return dependency
