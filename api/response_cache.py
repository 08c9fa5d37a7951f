"""One cache of finished GET responses, invalidated by the dataset revision.

Reads outnumber writes by orders of magnitude, so a response is computed once per dataset
revision and representation, then served from memory without entering the framework. Every
write (API, seed or import, from any process or instance) raises `dataset_state.version` in its
own transaction; each request reads that one row, and a new revision empties the cache. That
is the only invalidation path, and it is exact across instances sharing the database.
"""

import asyncio
import contextlib
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.caching import _accepts_gzip, _matches
from api.metrics import service as metrics_service
from api.middleware import route_template

MAX_ENTRIES = 4096
MAX_ENTRY_BYTES = 8 * 1024 * 1024
MAX_TOTAL_BYTES = 48 * 1024 * 1024
# The API and the explorer's pages (its start page is "/").
CACHED_PREFIXES = ("/v1", "/explore/")
NOT_MODIFIED_HEADERS = (b"etag", b"cache-control", b"vary", b"dataset-version")


@dataclass
class _Entry:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: str | None
    route: str = "unmatched"


@dataclass
class _Store:
    revision: object = None
    entries: OrderedDict[tuple[Any, ...], _Entry] = field(default_factory=OrderedDict)
    size: int = 0


def _key(scope: Scope, request: Headers) -> tuple[Any, ...]:
    """What selects a cached response, in a bounded size whatever the client sends: the path,
    query and Accept header (normalised: case and spaces do not count) as one 16-byte digest."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (
        scope["path"].encode(),
        scope["query_string"],
        request.get("accept", "").replace(" ", "").lower().encode(),
    ):
        digest.update(len(part).to_bytes(8, "big") + part)
    return (
        digest.digest(),
        _accepts_gzip(request.get("accept-encoding")),
        metrics_service.current_year(),  # horizon_passed moves with the calendar
    )


class RevisionProbe:
    """Knows the dataset revision: reads the one row over a dedicated connection.

    On PostgreSQL a listener thread also LISTENs for the NOTIFY every write sends at commit, so
    plain reads can trust the last known revision until told otherwise; revalidating requests
    (If-None-Match) and the first read after a write through this process always read the row.
    """

    CHANNEL = "cdmo_revision"

    def __init__(self, engine: Engine, *, listen: bool = True) -> None:
        self._engine = engine
        self._connection: Any = None
        self._lock = threading.Lock()
        self._known: object = None
        self._dirty = True
        self._listening = False
        self._stopped = threading.Event()
        self._local = engine.dialect.name == "sqlite"
        self._batch: asyncio.Future[object] | None = None
        self._reading = False
        self._listener: threading.Thread | None = None
        if not self._local and listen:
            self._listener = threading.Thread(
                target=self._listen, name="revision-listener", daemon=True
            )

    def start(self) -> None:
        """Start listening (the application's lifespan starts and stops it)."""
        if self._listener is not None and not self._listener.is_alive():
            self._stopped.clear()
            self._listener.start()

    async def revision(self, *, exact: bool = False) -> object:
        """`current`, for the event loop: a read of the row over the network is made in a
        thread, and requests that need one while it is under way share the next one."""
        if self._local:  # a read of a local file: cheaper than any hand-off
            return self.current(exact=exact)
        if not exact and self._trusted():
            return self._known
        # Every request gets a value read after it arrived: it joins the batch that has not
        # started yet, or starts one. Sixteen revalidations at once cost one round trip, not 16.
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
            if not self._reading:
                self._reading = True
                asyncio.get_running_loop().create_task(self._read_batches())
        return await asyncio.shield(self._batch)

    def _trusted(self) -> bool:
        """Whether the last known revision stands: the listener is up and has had no news."""
        return self._listening and not self._dirty and self._known is not None

    async def _read_batches(self) -> None:
        try:
            while self._batch is not None:
                batch, self._batch = self._batch, None
                batch.set_result(await asyncio.to_thread(self.current, exact=True))
        finally:
            self._reading = False

    def current(self, *, exact: bool = False) -> object:
        """The revision and change time, or None when the database cannot say."""
        if not exact and self._trusted():
            return self._known
        with self._lock:
            self._dirty = False
            try:
                if self._connection is None:
                    self._connection = self._engine.raw_connection()
                cursor = self._connection.cursor()
                cursor.execute("SELECT version, changed_at FROM dataset_state WHERE id = 1")
                row = cursor.fetchone()
                cursor.close()
                self._connection.commit()  # end the read: the next one sees newer commits
                self._known = tuple(row) if row else None
            except Exception:  # any failure just means "do not use the cache"
                self._reset()
                self._known = None
            return self._known

    def changed_here(self) -> None:
        """A write went through this process: read the row again before trusting it."""
        self._dirty = True

    def stop(self) -> None:
        """Stop listening and close the probe's connection."""
        self._stopped.set()
        if self._listener is not None and self._listener.is_alive():
            self._listener.join(timeout=3)
        with self._lock:
            if self._connection is not None:
                with contextlib.suppress(Exception):  # already broken: nothing to release
                    self._connection.close()
                self._connection = None

    def _listen(self) -> None:
        import psycopg

        url = self._engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stopped.is_set():
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {self.CHANNEL}")
                    self._dirty, self._listening = True, True
                    while not self._stopped.is_set():
                        for _ in connection.notifies(timeout=1.0, stop_after=1):
                            self._dirty = True
            except Exception:  # reconnect; meanwhile every read checks the row
                self._listening, self._dirty = False, True
                self._stopped.wait(1.0)
        self._listening = False

    def _reset(self) -> None:
        try:
            if self._connection is not None:
                self._connection.invalidate()
        except Exception:  # already broken: nothing to release
            pass
        self._connection = None


class ResponseCache:
    """Serve repeated GETs of /v1 from memory while the dataset revision stands still."""

    def __init__(
        self,
        app: ASGIApp,
        probe: "RevisionProbe",
        state: Any = None,
        max_bytes: int = MAX_TOTAL_BYTES,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        if state is not None:
            state.response_cache = self  # read by api.observability
        self.probe = probe
        self.store = _Store()
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        # Single flight: while one request computes a response, the same requests wait for it
        # instead of computing it again (16 cold exports at once would each take 16 times longer).
        self.inflight: dict[tuple[Any, ...], asyncio.Event] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] != "GET":
            try:
                await self.app(scope, receive, send)
            finally:
                self.probe.changed_here()
            return
        path = scope["path"]
        if not (path == "/" or path.startswith(CACHED_PREFIXES)) or self.max_bytes == 0:
            await self.app(scope, receive, send)
            return
        request = Headers(scope=scope)
        revision = await self.probe.revision(exact="if-none-match" in request)
        if revision is None:
            await self.app(scope, receive, send)
            return
        key = _key(scope, request)
        with self.lock:
            if self.store.revision != revision:
                self.store = _Store(revision=revision)
            entry = self.store.entries.get(key)
            if entry is not None:
                self.store.entries.move_to_end(key)
        if entry is None and (key, revision) in self.inflight:
            await self.inflight[(key, revision)].wait()
            with self.lock:
                entry = self.store.entries.get(key) if self.store.revision == revision else None
        if entry is not None:
            self.hits += 1
            scope.setdefault("state", {})["route"] = entry.route  # for the request metrics
            await self._replay(entry, request.get("if-none-match"), send)
            return
        self.misses += 1
        done = self.inflight.setdefault((key, revision), asyncio.Event())
        try:
            if_none_match = request.get("if-none-match")
            if if_none_match is None:
                await self.app(scope, receive, self._recording(send, key, revision, scope))
            else:
                await self._revalidate_miss(scope, receive, send, key, revision, if_none_match)
        finally:
            done.set()
            if self.inflight.get((key, revision)) is done:
                del self.inflight[(key, revision)]

    async def _revalidate_miss(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        key: tuple[Any, ...],
        revision: object,
        if_none_match: str,
    ) -> None:
        """A revalidation nothing is cached for: compute the whole response (a 304 is not worth
        keeping), keep it, and answer from it; clients that only ever revalidate then hit."""
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        plain = {**scope, "headers": [(n, v) for n, v in scope["headers"] if n != b"if-none-match"]}
        await self.app(plain, receive, self._recording(hold, key, revision, plain))
        scope.setdefault("state", {})["route"] = route_template(plain)
        with self.lock:
            entry = self.store.entries.get(key) if self.store.revision == revision else None
        if entry is not None:
            await self._replay(entry, if_none_match, send)
            return
        for message in held:  # not kept (an error, too large, or a write meanwhile): as is
            await send(message)

    async def _replay(self, entry: _Entry, if_none_match: str | None, send: Send) -> None:
        if entry.etag is not None and _matches(if_none_match, entry.etag):
            kept = [(n, v) for n, v in entry.headers if n in NOT_MODIFIED_HEADERS]
            await send({"type": "http.response.start", "status": 304, "headers": kept})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {"type": "http.response.start", "status": entry.status, "headers": entry.headers}
        )
        await send({"type": "http.response.body", "body": entry.body})

    def _recording(self, send: Send, key: tuple[Any, ...], revision: object, scope: Scope) -> Send:
        start: dict[str, Any] = {}
        chunks: list[bytes] = []
        size = 0

        async def recording_send(message: Message) -> None:
            nonlocal size
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body" and start.get("status") == 200:
                body = message.get("body", b"")
                size += len(body)
                largest = min(MAX_ENTRY_BYTES, self.max_bytes)
                if size <= largest:
                    chunks.append(body)
                if not message.get("more_body", False) and size <= largest:
                    route = route_template(scope)
                    self._keep(key, revision, start, b"".join(chunks), route)
            await send(message)

        return recording_send

    def _keep(
        self,
        key: tuple[Any, ...],
        revision: object,
        start: dict[str, Any],
        body: bytes,
        route: str,
    ) -> None:
        headers = [(bytes(n), bytes(v)) for n, v in start.get("headers", [])]
        etag = MutableHeaders(raw=list(headers)).get("etag")
        with self.lock:
            if self.store.revision != revision:
                return  # a write landed while this response was computed
            old = self.store.entries.pop(key, None)
            self.store.size -= len(old.body) if old else 0
            self.store.entries[key] = _Entry(200, headers, body, etag, route)
            self.store.size += len(body)
            while self.store.entries and (
                len(self.store.entries) > MAX_ENTRIES or self.store.size > self.max_bytes
            ):
                _, evicted = self.store.entries.popitem(last=False)
                self.store.size -= len(evicted.body)
