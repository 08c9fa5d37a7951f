"""HTTP caching and compression for successful GETs: ETag, 304, 412, Cache-Control, Vary, gzip.

One pure ASGI middleware, because the four interact: a strong ETag names one exact byte
representation, so the tag of a gzip-compressed body differs from the identity body's
(`"<hash>-gzip"`), and compression must be deterministic (gzip header mtime 0) so that the same
data always yields the same tag. Starlette's GZipMiddleware stamps the current time into every
body, which would make strong tags meaningless.
"""

import functools
import gzip
import hashlib
import json
import zlib
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import instance_of

GZIP_MINIMUM_SIZE = 1024
CACHE_CONTROL = "public, max-age=60"
# An answer that may still change (a change-feed page, a read `as_of` a moment not yet past:
# api.records.versions.settle) may be stored, but not used without asking again (RFC 9111
# 5.2.2.4): a poller revalidates, and is answered 304 until the answer changes.
UNSETTLED_CACHE_CONTROL = "no-cache"
NOT_CACHED_PATHS = ("/healthz", "/readyz")
VARY = ("Accept", "Accept-Encoding")
_GZIP_SUFFIX = "-gzip"


def body_etag(body: bytes) -> str:
    """A strong ETag for a byte string."""
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def identity_etag(identity: bytes) -> str:
    """A strong ETag for a representation known by what determines its bytes (`identity`),
    rather than by the bytes themselves; marked apart from `body_etag`'s."""
    return f'"p{hashlib.sha256(identity).hexdigest()[:31]}"'


def _gzip_tag(tag: str) -> str:
    """The tag of the gzip-coded variant of the representation tagged `tag`."""
    return tag[:-1] + f'{_GZIP_SUFFIX}"'


def _opaque(tag: str) -> str:
    tag = tag.strip().removeprefix("W/")
    if tag.endswith(f'{_GZIP_SUFFIX}"'):
        tag = tag[: -len(_GZIP_SUFFIX) - 1] + '"'
    return tag


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 weak comparison, as If-None-Match requires; either coding's tag matches."""
    if not if_none_match:
        return False
    if if_none_match == etag:  # the tag as given: nothing to parse
        return True
    if if_none_match.strip() == "*":
        return True
    return _opaque(etag) in {_opaque(tag) for tag in if_none_match.split(",")}


def matches_if_none_match(if_none_match: str, etag: str) -> bool:
    """If-None-Match (RFC 9110 §13.1.2) names `etag`: `*`, or a tag equal to it by weak
    comparison (either coding)."""
    return _matches(if_none_match, etag)


def matches_if_match(if_match: str, etag: str) -> bool:
    """If-Match (RFC 9110 §13.1.1): `*`, or a strong tag equal to `etag` (either coding)."""
    if if_match.strip() == "*":
        return True
    tags = [tag.strip() for tag in if_match.split(",")]
    return any(not tag.startswith("W/") and _opaque(tag) == _opaque(etag) for tag in tags)


def precondition(if_match: str | None, if_none_match: str | None, etag: str | None) -> int:
    """What a GET of the representation tagged `etag` (None: it has no tag) answers, by RFC
    9110 §13.2.2: 412 when If-Match names none of its tags, else 304 when If-None-Match names
    one, else 200. Only a 200 is evaluated so (§13.2.1: a 404 stays a 404)."""
    if if_match is not None and not (
        matches_if_match(if_match, etag) if etag else if_match.strip() == "*"
    ):
        return 412
    if etag is not None and _matches(if_none_match, etag):
        return 304
    return 200


def precondition_failed(instance: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The headers and problem body of the 412 a GET (its `instance`) gets for its If-Match."""
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "Precondition Failed",
            "status": 412,
            "detail": "If-Match names none of the current ETags of this resource: it has "
            "changed since, or never had that tag. GET it without If-Match for the current one.",
            "instance": instance,
        },
        separators=(",", ":"),
    ).encode()
    headers = [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return headers, body


@functools.lru_cache(maxsize=256)
def _accepts_gzip(accept_encoding: str | None) -> bool:
    for part in (accept_encoding or "").split(","):
        coding, *params = (piece.strip().lower() for piece in part.split(";"))
        if coding not in ("gzip", "x-gzip", "*"):
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def _merge_vary(headers: MutableHeaders, names: Iterable[str]) -> None:
    present = [v.strip() for v in headers.get("vary", "").split(",") if v.strip()]
    lowered = {v.lower() for v in present}
    headers["Vary"] = ", ".join(present + [n for n in names if n.lower() not in lowered])


def _decorate(headers: MutableHeaders, state: dict[str, object]) -> None:
    headers["Cache-Control"] = (
        UNSETTLED_CACHE_CONTROL if state.get("unsettled", False) else CACHE_CONTROL
    )
    _merge_vary(headers, VARY)


def _failed(instance: str) -> list[Message]:
    headers, body = precondition_failed(instance)
    return [
        {"type": "http.response.start", "status": 412, "headers": headers},
        {"type": "http.response.body", "body": body, "more_body": False},
    ]


def _not_modified(headers: MutableHeaders) -> list[Message]:
    kept = {
        name: headers[name]
        for name in ("etag", "cache-control", "vary", "dataset-version")
        if name in headers
    }
    return [
        {"type": "http.response.start", "status": 304, "headers": MutableHeaders(kept).raw},
        {"type": "http.response.body", "body": b"", "more_body": False},
    ]


class _Exchange:
    """The state of one GET: buffers a plain response, or streams a pre-tagged one."""

    def __init__(self, scope: Scope, send: Send) -> None:
        request = Headers(scope=scope)
        self.instance = instance_of(scope)
        self.if_match = request.get("if-match")
        self.if_none_match = request.get("if-none-match")
        self.gzip_ok = _accepts_gzip(request.get("accept-encoding"))
        self.send = send
        self.start: Message = {}
        self.chunks: list[bytes] = []
        self.compressor: zlib._Compress | None = None
        self.mode = "buffer"  # buffer: tag the whole body | stream: already tagged | done
        self.state = scope.setdefault("state", {})

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._on_start(message)
        elif message["type"] == "http.response.body":
            if self.mode != "done":  # done: a 304 has been sent in its place
                await self._on_body(message.get("body", b""), message.get("more_body", False))
        else:
            await self.send(message)

    async def _on_start(self, start: Message) -> None:
        self.start = start
        headers = MutableHeaders(raw=start["headers"])
        # The dataset version the read answered at (api.records.asof), on every read.
        version = self.state.get("dataset_version")
        if version is not None:
            headers["Dataset-Version"] = str(version)
        if start["status"] != 200 or "etag" not in headers:
            return  # buffered until the body is complete
        # A streamed response (an export, a static file) brings its own tag.
        self.mode = "stream"
        length = int(headers.get("content-length", GZIP_MINIMUM_SIZE + 1))
        if self.gzip_ok and length > GZIP_MINIMUM_SIZE and "content-encoding" not in headers:
            self.compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # gzip, header mtime 0
            del headers["content-length"]
            headers["Content-Encoding"] = "gzip"
            headers["ETag"] = _gzip_tag(headers["etag"])
        _decorate(headers, self.state)
        status = precondition(self.if_match, self.if_none_match, headers["etag"])
        if status != 200:
            self.mode = "done"
            for message in _failed(self.instance) if status == 412 else _not_modified(headers):
                await self.send(message)
            return
        if self.compressor is None:
            await self.send(start)
        # Compressed, the start waits for the first part of the body: if that is the whole
        # body (a page, an item), its compressed length is sent with it.

    async def _on_body(self, body: bytes, more: bool) -> None:
        if self.mode == "stream":
            if self.compressor is not None:
                body = self.compressor.compress(body) + (b"" if more else self.compressor.flush())
                if self.start:
                    if not more:
                        headers = MutableHeaders(raw=self.start["headers"])
                        headers["Content-Length"] = str(len(body))
                    await self.send(self.start)
                    self.start = {}
            await self.send({"type": "http.response.body", "body": body, "more_body": more})
            return
        self.chunks.append(body)
        if not more:
            for message in self._finish(b"".join(self.chunks)):
                await self.send(message)

    def _finish(self, body: bytes) -> list[Message]:
        headers = MutableHeaders(raw=self.start["headers"])
        compress = (
            self.gzip_ok and len(body) > GZIP_MINIMUM_SIZE and "content-encoding" not in headers
        )
        if self.start["status"] == 200:
            tag = body_etag(body)
            headers["ETag"] = _gzip_tag(tag) if compress else tag
            _decorate(headers, self.state)
            status = precondition(self.if_match, self.if_none_match, headers["etag"])
            if status == 412:
                return _failed(self.instance)
            if status == 304:
                return _not_modified(headers)
        if compress:
            body = gzip.compress(body, compresslevel=6, mtime=0)
            headers["Content-Encoding"] = "gzip"
            headers["Content-Length"] = str(len(body))
            _merge_vary(headers, ["Accept-Encoding"])
        return [self.start, {"type": "http.response.body", "body": body, "more_body": False}]


class HttpCaching:
    """Validators, freshness and compression for GET responses; other methods pass through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
        elif scope["path"].startswith(NOT_CACHED_PATHS):
            await self.app(scope, receive, _no_store(scope, send))
        else:
            await self.app(scope, receive, _Exchange(scope, send))


def _no_store(scope: Scope, send: Send) -> Send:
    """Probes describe this instant: never cached, never revalidated, never tagged (so an
    If-Match other than `*` names none of their tags)."""
    if_match = Headers(scope=scope).get("if-match")
    failed = False

    async def wrapped(message: Message) -> None:
        nonlocal failed
        if message["type"] == "http.response.start":
            if message["status"] == 200 and precondition(if_match, None, None) == 412:
                failed = True
                for reply in _failed(instance_of(scope)):
                    await send(reply)
                return
            MutableHeaders(raw=message["headers"])["Cache-Control"] = "no-store"
        elif failed and message["type"] == "http.response.body":
            return
        await send(message)

    return wrapped
