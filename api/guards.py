"""Request guards in front of the framework: bounded query strings, a route table that answers
405 with `Allow` for every path, relative trailing-slash redirects, and paths no record can have.

They run before routing and the response cache, so a hostile request costs a few string checks
and never reaches a dependency, a cache key or a database."""

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import instance_of, title_of

# Methods the API answers somewhere; anything else is one value in metrics and logs.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """`method`, or "other" for a token no route answers (a bounded metrics label)."""
    return method if method in KNOWN_METHODS else "other"


@dataclass(frozen=True)
class _Route:
    template: str
    pattern: re.Pattern[str]
    methods: frozenset[str]
    params: int


class RouteTable:
    """Every route of an application (included routers and mounts too) by path template."""

    def __init__(self, app: Any) -> None:
        grouped: dict[str, tuple[re.Pattern[str], set[str]]] = {}
        for route in _flatten(app.routes):
            if isinstance(route, Mount):
                template = route.path + "/{path:path}"
                pattern, methods = re.compile(re.escape(route.path) + "/.*"), {"GET", "HEAD"}
            else:
                template = route.path
                pattern, methods = route.path_regex, set(route.methods or ())
            grouped.setdefault(template, (pattern, set()))[1].update(methods)
        self.routes = [
            _Route(template, pattern, frozenset(methods), template.count("{"))
            for template, (pattern, methods) in grouped.items()
        ]
        self._matched = lru_cache(maxsize=2048)(self._match)

    def match(self, path: str) -> _Route | None:
        """The route of `path`; as in OpenAPI, a concrete path outranks a template
        (/v1/metrics/facets is not /v1/metrics/{metric_id})."""
        # Remembered for paths of ordinary length only: the memory stays bounded.
        return self._matched(path) if len(path) <= 256 else self._match(path)

    def _match(self, path: str) -> _Route | None:
        found = [route for route in self.routes if route.pattern.fullmatch(path)]
        return min(found, key=lambda route: route.params) if found else None

    def allow(self, path: str) -> str:
        """The `Allow` value of `path`: its methods, HEAD wherever GET is (RFC 9110 §9.3.2:
        HEAD is served wherever GET is, and Allow lists what is served, §10.2.1)."""
        route = self.match(path)
        methods = route.methods | ({"HEAD"} if "GET" in route.methods else set()) if route else ()
        return ", ".join(sorted(methods))


def _flatten(routes: Any) -> Any:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from contexts()
        elif isinstance(route, Mount) or hasattr(route, "methods"):
            yield route


def route_table(app: Any) -> RouteTable:
    """The application's route table, built once its routes are all in place."""
    table: RouteTable | None = getattr(app.state, "route_table", None)
    if table is None:
        table = app.state.route_table = RouteTable(app)
    return table


# Bodies are read as sent: a write whose body is in a content coding (gzip, br, ...) is
# refused, not read as if it were plain JSON (RFC 9110 15.5.16: 415, with Accept-Encoding).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _content_coding(scope: Scope) -> str | None:
    """The first content coding other than identity a request's body declares, if any."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"content-encoding":
            for coding in value.decode("latin-1").split(","):
                coding = coding.strip()
                if coding and coding.lower() != "identity":
                    return coding[:100]
    return None


class RequestGuards:
    """Refuse what no route can answer, cheaply, before anything else looks at the request."""

    def __init__(self, app: ASGIApp, max_query_bytes: int, max_query_parameters: int) -> None:
        self.app = app
        self.max_query_bytes = max_query_bytes
        self.max_query_parameters = max_query_parameters

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope["query_string"]
        path: str = scope["path"]
        if len(query) > self.max_query_bytes:
            detail = f"Query strings are limited to {self.max_query_bytes} bytes."
            await send_problem(scope, send, 414, detail)
            return
        if query.count(b"&") + 1 > self.max_query_parameters:
            detail = f"A request takes at most {self.max_query_parameters} query parameters."
            await send_problem(scope, send, 414, detail)
            return
        if "\x00" in path:  # no record has a NUL in its id (PostgreSQL cannot even store one)
            await send_problem(scope, send, 404, f"No resource at {path}.")
            return
        table = route_table(scope["app"])
        route = table.match(path)
        if route is None and path.endswith("/") and path != "/":
            trimmed = path.rstrip("/")
            if trimmed and table.match(trimmed) is not None:
                await self._redirect(scope, send, trimmed)
                return
        if route is not None:
            scope.setdefault("state", {})["route"] = route.template  # bounded metrics labels
            method = scope["method"]
            if method not in route.methods:
                detail = f"{method} is not allowed on {path}."
                allow = table.allow(path)
                await send_problem(scope, send, 405, detail, {"allow": allow})
                return
            coding = _content_coding(scope) if method in _BODY_METHODS else None
            if coding is not None:
                detail = (
                    f"A body in content coding {coding!r} cannot be read: send it uncompressed "
                    "(no Content-Encoding, or identity)."
                )
                await send_problem(scope, send, 415, detail, {"accept-encoding": "identity"})
                return
        await self.app(scope, receive, send)

    async def _redirect(self, scope: Scope, send: Send, path: str) -> None:
        # Relative (path-absolute), so the Host header a client sends never becomes the target;
        # percent-encoded again, so a CR or LF the client encoded never reaches a header.
        location = quote(scope.get("root_path", "") + path).encode()
        if scope["query_string"]:
            location += b"?" + scope["query_string"]
        await send(
            {
                "type": "http.response.start",
                "status": 307,
                "headers": [(b"location", location), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


async def send_problem(
    scope: Scope, send: Send, status: int, detail: str, headers: dict[str, str] | None = None
) -> None:
    """An RFC 9457 problem response, from middleware (outside the framework's handlers)."""
    body = json.dumps(
        {
            "type": "about:blank",
            "title": title_of(status),
            "status": status,
            "detail": detail,
            "instance": instance_of(scope),
        },
        separators=(",", ":"),
    ).encode()
    raw = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
        *((name.encode(), value.encode()) for name, value in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
