"""Pure ASGI middleware."""

import json
import logging
import random
import re
import time

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PROBLEM_MEDIA_TYPE, Problem, instance_of
from api.guards import method_label


class HeadAsGet:
    """Answer HEAD like GET without the body (RFC 9110 §9.3.2), so every GET route takes HEAD."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_without_body)


class CrossOrigin(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered as problem details (RFC 9457) that
    name what was refused and what is allowed, instead of Starlette's plain-text 400."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                response = self.preflight_response(request_headers=headers)
                if response.status_code == 400:
                    response = self._refused(instance_of(scope), headers, response)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _refused(self, instance: str, asked: Headers, plain: Response) -> Response:
        # Starlette's text is "Disallowed CORS " and the refused parts ("origin", "method",
        # "headers", "private-network"), comma separated.
        text = bytes(plain.body).decode()
        parts = text.removeprefix("Disallowed CORS ").split(", ") if text.startswith(
            "Disallowed CORS "
        ) else []  # fmt: skip
        named = {
            "origin": f"the origin {asked['origin']!r}",
            "method": f"the method {asked['access-control-request-method']!r}",
            "headers": f"the headers {asked.get('access-control-request-headers', '')!r}",
            "private-network": "access from a private network",
        }
        refused = " and ".join(named.get(part, part) for part in parts) or "this request"
        allowed = (
            f"Methods allowed: {', '.join(sorted(self.allow_methods))}; request headers "
            f"allowed: {', '.join(sorted(self.allow_headers))}."
        )
        problem = Problem(
            title="Bad Request",
            status=400,
            detail=f"The cross-origin (CORS) preflight is refused: {refused}. {allowed}",
            instance=instance,
        )
        body = problem.model_dump_json(by_alias=True, exclude_none=True).encode()
        kept = {
            name: value
            for name, value in plain.headers.items()
            if name not in ("content-length", "content-type")
        }
        return Response(body, status_code=400, headers=kept, media_type=PROBLEM_MEDIA_TYPE)


class _TooLarge(HTTPException):
    # An HTTPException, so that the framework's body parsing lets it through.
    def __init__(self) -> None:
        super().__init__(status_code=413, detail="Content Too Large")


class BodyLimit:
    """Refuse request bodies over `max_bytes` with 413 problem details, before reading them
    whole: a declared Content-Length is checked first, and chunked bodies are counted."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body = json.dumps(
            {
                "type": "about:blank",
                "title": "Content Too Large",
                "status": 413,
                "detail": f"Request bodies are limited to {self.max_bytes} bytes.",
                "instance": instance_of(scope),
            },
            separators=(",", ":"),
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


# On every answer: a browser takes each body as the type it is sent as (a CSV or a JSON error
# is never run as a script or a page, whatever it holds).
NOSNIFF = (b"x-content-type-options", b"nosniff")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _new_request_id() -> str:
    """128 random bits as 32 hex digits, from the seeded generator rather than uuid4's
    os.urandom: a system call per request costs more than the rest of a cached answer."""
    return f"{random.getrandbits(128):032x}"


access_log = logging.getLogger("api.access")


class RequestLog:
    """One JSON log line per request (method, path, status, duration, request id, and for writes
    the key's name; never a key or a body), and `X-Request-ID` accepted or made, then echoed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(dict(scope["headers"]).get(b"x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (b"x-request-id", request_id.encode()),
                        NOSNIFF,
                    ],
                }
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            finished(scope, status, started, request_id, route_template(scope))


def request_id_of(given: bytes | None) -> str:
    """The client's `X-Request-ID` when it is safe to echo, else a new one."""
    text = given.decode("latin-1") if given else ""
    return text if _REQUEST_ID.match(text) else _new_request_id()


def finished(scope: Scope, status: int, started: float, request_id: str, route: str) -> None:
    """The request's log line (formatted only when it is written) and its metrics."""
    seconds = time.perf_counter() - started
    if access_log.isEnabledFor(logging.INFO):
        entry = {
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "request_id": request_id,
        }
        key_name = scope.get("state", {}).get("key_name")
        if key_name:
            entry["key"] = key_name
        access_log.info(json.dumps(entry))
    state = getattr(scope.get("app"), "state", None)
    instruments = getattr(state, "instruments", None) if state is not None else None
    if instruments is not None:
        instruments.observe(method_label(scope["method"]), route, status, seconds)


def route_template(scope: Scope) -> str:
    """The route template that answered (bounded label values), else "unmatched"."""
    route = scope.get("route") or scope.get("state", {}).get("route")
    template = str(getattr(route, "path", None) or route or "unmatched")
    # Routes included under /v1 carry their path without the prefix.
    if (
        scope["path"].startswith("/v1/")
        and template.startswith("/")
        and not template.startswith("/v1")
    ):
        template = "/v1" + template
    return template
