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
import logging
import mmap
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.caching import (
    _accepts_gzip,
    matches_if_none_match,
    precondition,
    precondition_failed,
)
from api.errors import instance_of
from api.metrics import service as metrics_service
from api.middleware import NOSNIFF, finished, request_id_of, route_template

logger = logging.getLogger(__name__)

MAX_ENTRIES = 4096
MAX_ENTRY_BYTES = 8 * 1024 * 1024
MAX_TOTAL_BYTES = 48 * 1024 * 1024
# The API and the explorer's pages (its start page is "/").
CACHED_PREFIXES = ("/v1", "/explore/")
NOT_MODIFIED_HEADERS = (b"etag", b"cache-control", b"vary", b"dataset-version")
REVISION_KEY = "cdmo.revision"
REVISION_SQL = "SELECT version, changed_at FROM dataset_state WHERE id = 1"
FENCE = "cdmo_revision_fence"  # REVISION_SQL, prepared on the revalidations' connection


@dataclass
class _Entry:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: str | None
    route: str = "unmatched"
    # The headers as the outer layers finish them for a request without `Origin` (CORS adds
    # `Vary: Origin`): made once, on the first hit answered at the edge.
    edge: list[tuple[bytes, bytes]] | None = None
    edge_304: list[tuple[bytes, bytes]] | None = None


def _text(header: bytes | None) -> str | None:
    return header.decode("latin-1") if header is not None else None


def _vary_origin(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` as CORS finishes them for a request without `Origin`: `Origin` in `Vary`."""
    varies = [value for name, value in headers if name == b"vary"]
    kept = [(name, value) for name, value in headers if name != b"vary"]
    return [*kept, (b"vary", b", ".join([*varies, b"Origin"]))]


@dataclass
class _Store:
    revision: object = None
    entries: OrderedDict[tuple[Any, ...], _Entry] = field(default_factory=OrderedDict)
    size: int = 0


def _key(scope: Scope, request: Headers) -> tuple[Any, ...]:
    """What selects a cached response (see `_key_of`)."""
    return _key_of(
        scope["path"],
        scope["query_string"],
        request.get("accept", ""),
        _accepts_gzip(request.get("accept-encoding")),
    )


def _key_of(path: str, query: bytes, accept: str, gzip: bool) -> tuple[Any, ...]:
    """What selects a cached response, in a bounded size whatever the client sends: the path,
    query and Accept header (normalised: case and spaces do not count) as one 16-byte digest."""
    asked = (path, query, accept)
    digest = _DIGESTS.get(asked)
    if digest is None:
        made = hashlib.blake2b(digest_size=16)
        for part in (path.encode(), query, accept.replace(" ", "").lower().encode()):
            made.update(len(part).to_bytes(8, "big") + part)
        if len(_DIGESTS) >= _DIGESTS_KEPT:
            _DIGESTS.clear()
        digest = _DIGESTS[asked] = made.digest()
    return (digest, gzip, metrics_service.current_year())  # horizon_passed moves with the year


# The digests of the requests asked for most recently (a hit then hashes nothing): bounded,
# as the query strings they are keyed by are (api.guards: 8 KiB each).
_DIGESTS: dict[tuple[str, bytes, str], bytes] = {}
_DIGESTS_KEPT = 4096


# The WAL index begins with two copies of its 48-byte header (sqlite.org/walformat.html).
_WAL_HEADER = 48
_WAL_HEADERS = 2 * _WAL_HEADER


# The WAL index files mapped by this process, by (device, inode), with the file each was
# opened by: never closed while the file exists. Closing any descriptor of a file drops every
# POSIX lock the process holds on it, SQLite's own included (and an mmap holds a descriptor
# of its own): another process would then find the WAL index unused, rebuild it under this
# one's connections, and they would die of SIGBUS ("How To Corrupt An SQLite Database File",
# 2.2.1). SQLite keeps such descriptors open for the same reason.
_MAPPED: dict[tuple[int, int], tuple[Any, mmap.mmap]] = {}
_MAPPING = threading.Lock()
_UNMAPPED: list[Any] = []


def _mapped(path: str) -> mmap.mmap:
    """The first `_WAL_HEADERS` bytes of the WAL index at `path`, mapped read-only."""
    with _MAPPING:
        for key, (file, _view) in list(_MAPPED.items()):
            if os.fstat(file.fileno()).st_nlink == 0:  # deleted: no process can share it
                _view.close()
                file.close()
                del _MAPPED[key]
        status = os.stat(path)
        key = (status.st_dev, status.st_ino)
        if key not in _MAPPED:
            file = open(path, "rb")  # noqa: SIM115 (kept open: see _MAPPED)
            try:
                _MAPPED[key] = (
                    file,
                    mmap.mmap(file.fileno(), _WAL_HEADERS, access=mmap.ACCESS_READ),
                )
            except BaseException:
                _UNMAPPED.append(file)  # not closed either: its close would drop the locks
                raise
        return _MAPPED[key][1]


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
        self._stamp: object = None  # SQLite's data_version at the last read of the row
        self._pragma: Any = None
        # The WAL index's header, mapped (False: the database has none to map).
        self._shm: mmap.mmap | Literal[False] | None = None
        self._writes = 0  # writes through this process under way
        self._async: Any = None  # PostgreSQL: the revalidations' connection, on the loop
        self._async_loop: Any = None
        self._batch: list[asyncio.Future[object]] | None = None  # its requests' futures
        self._reading = False
        self._reader: asyncio.Task[None] | None = None  # the batches' reading task
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
        """`current`, for the event loop: a read of the row over the network is made on the
        loop (an async connection), and requests that need one while it is under way share the
        next one."""
        if self._local:  # a read of a local file: cheaper than any hand-off
            return self.current(exact=exact)
        if not exact and self._trusted():
            return self._known
        # Every request gets a value read after it arrived: it joins the batch that has not
        # started yet, or starts one. Sixteen revalidations at once cost one round trip, not 16.
        loop = asyncio.get_running_loop()
        if self._batch is None:
            self._batch = []
            if not self._reading:
                self._reading = True
                # Kept: the loop holds only a weak reference to a task.
                self._reader = loop.create_task(self._read_batches())
        # A future of its own: a request cancelled meanwhile cancels only that, not the batch.
        waiter: asyncio.Future[object] = loop.create_future()
        self._batch.append(waiter)
        return await waiter

    def _trusted(self) -> bool:
        """Whether the last known revision stands: the listener is up and has had no news, and
        no write through this process is under way (its answer may reach the client, and the
        client's next read arrive, before the write's request has finished here)."""
        return self._listening and not self._dirty and not self._writes and self._known is not None

    async def _read_batches(self) -> None:
        try:
            while self._batch is not None:
                # One turn of the loop before the read: the requests whose bytes arrived with
                # this one's join its batch. A fence then serves 12-13 revalidations at 16
                # connections instead of 5-6, and a 304 costs less (PostgreSQL, `wrk -c16`:
                # 15.3k -> 17.0k req/s, mean of five runs each, alternately).
                await asyncio.sleep(0)
                batch, self._batch = self._batch, None
                known = await self._read_on_loop()
                for waiter in batch:
                    if not waiter.done():  # not cancelled
                        waiter.set_result(known)
        finally:
            self._reading = False

    async def _read_on_loop(self) -> object:
        """The row, read on the event loop over a connection of the probe's own: the fence a
        revalidation needs costs one round trip and no thread hand-off. The statement is
        prepared once and run on libpq directly, the loop waking when its answer arrives: about
        25 µs of CPU a read, against 70-80 µs through psycopg's cursor."""
        loop = asyncio.get_running_loop()
        try:
            if self._async is None or self._async_loop is not loop or self._async.closed:
                self._drop_async()
                self._async = await self._connect_fence()
                self._async_loop = loop
            self._dirty = False
            self._known = await self._fence(self._async.pgconn, loop)
        except Exception:  # any failure just means "do not use the cache"
            self._drop_async()
            self._known = None
        return self._known

    async def _connect_fence(self) -> Any:
        """The revalidations' connection (autocommit), with REVISION_SQL prepared on it."""
        import psycopg

        url = self._engine.url.set(drivername="postgresql")
        connection = await psycopg.AsyncConnection.connect(
            url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        )
        try:
            # Times in the one text form `_fence` parses, whatever the server's defaults.
            await connection.execute("SET datestyle = 'ISO'; SET timezone = 'UTC'")
            await connection.execute(f"PREPARE {FENCE} AS {REVISION_SQL}")
        except BaseException:  # a database not migrated has no row to prepare a read of
            await connection.close()
            raise
        connection.pgconn.nonblocking = 1
        return connection

    @staticmethod
    async def _fence(pgconn: Any, loop: asyncio.AbstractEventLoop) -> object:
        """(version, changed_at) by the prepared statement, as the driver would read them."""
        from psycopg import pq

        pgconn.send_query_prepared(FENCE.encode(), None)
        while pgconn.flush():
            await asyncio.sleep(0)
        answered: asyncio.Future[None] = loop.create_future()
        socket = pgconn.socket

        def readable() -> None:
            try:
                pgconn.consume_input()
                if pgconn.is_busy():
                    return
                answered.set_result(None)
            except Exception as error:  # the connection broke
                answered.set_exception(error)
            loop.remove_reader(socket)

        loop.add_reader(socket, readable)
        try:
            await answered
        finally:
            loop.remove_reader(socket)
        row: object = None
        while (result := pgconn.get_result()) is not None:
            if result.status != pq.ExecStatus.TUPLES_OK:
                raise RuntimeError(f"the revision read failed: {result.error_message!r}")
            if result.ntuples:
                version, changed_at = result.get_value(0, 0), result.get_value(0, 1)
                row = (int(version), datetime.fromisoformat(changed_at.decode()))
        return row

    def _drop_async(self) -> None:
        if self._async is not None:
            with contextlib.suppress(Exception):  # closed at once, from any thread or loop
                self._async.pgconn.finish()
        self._async = self._async_loop = None

    def current(self, *, exact: bool = False) -> object:
        """The revision and change time, or None when the database cannot say."""
        if not exact and self._trusted():
            return self._known
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._engine.raw_connection()
                if self._local and self._unchanged_file():
                    return self._known
                self._dirty = False
                cursor = self._connection.cursor()
                cursor.execute(REVISION_SQL)
                row = cursor.fetchone()
                cursor.close()
                self._connection.commit()  # end the read: the next one sees newer commits
                self._known = tuple(row) if row else None
            except Exception:  # any failure just means "do not use the cache"
                self._reset()
                self._known = None
            return self._known

    def _unchanged_file(self) -> bool:
        """SQLite: whether no connection has committed to the file since the last look.

        In WAL mode, the header of the WAL index (the `-shm` file, which every connection to
        the database maps) changes with every commit, in this process or another: its
        `iChange` counts transactions ("WAL-mode File Format", sqlite.org/walformat.html). It
        is read from memory, as SQLite's readers read it: two copies, taken only when they
        agree. Otherwise (another journal mode, or a header being written), `PRAGMA
        data_version` on this dedicated connection, which changes whenever any other
        connection commits; it costs a transaction's locks, and gives the interpreter's lock
        to other threads while it runs (25-30 µs a cache hit under load, against 4 µs alone).
        """
        stamp = self._wal_header()
        if stamp is None:
            if self._pragma is None:  # the driver's own cursor, kept
                self._pragma = self._connection.driver_connection.cursor()
            stamp = self._pragma.execute("PRAGMA data_version").fetchone()[0]
        unchanged = stamp == self._stamp and not self._dirty and self._known is not None
        self._stamp = stamp
        return unchanged

    def _wal_header(self) -> bytes | None:
        """The WAL index's header (48 bytes) when both copies agree; None when the database
        is not in WAL mode or a writer is between the two copies."""
        if self._shm is None:
            self._shm = False
            cursor = self._connection.driver_connection.cursor()
            try:
                mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
                path = cursor.execute("PRAGMA database_list").fetchone()[2]
            finally:
                cursor.close()
            if mode == "wal" and path:
                # While this connection is open, the file stays: SQLite removes it with the
                # last connection, and leaves WAL mode only when no other connection is open.
                with contextlib.suppress(OSError, ValueError):
                    self._shm = _mapped(f"{path}-shm")
        if self._shm is False:
            return None
        first, second = self._shm[:_WAL_HEADER], self._shm[_WAL_HEADER:_WAL_HEADERS]
        return first if first == second else None

    def writing(self) -> None:
        """A write through this process begins: until it has finished, reads read the row."""
        self._writes += 1
        self._dirty = True

    def changed_here(self) -> None:
        """A write went through this process: read the row again before trusting it."""
        self._writes = max(0, self._writes - 1)
        self._dirty = True

    def stop(self) -> None:
        """Stop listening and close the probe's connection."""
        self._stopped.set()
        if self._listener is not None and self._listener.is_alive():
            self._listener.join(timeout=3)
        self._drop_async()
        with self._lock:
            if self._connection is not None:
                with contextlib.suppress(Exception):  # already broken: nothing to release
                    if self._pragma is not None:
                        self._pragma.close()
                    self._connection.close()
                self._connection = self._pragma = None
                self._close_shm()

    def _close_shm(self) -> None:
        self._shm = None  # the mapping stays open: see `_mapped`

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
        self._stamp = self._pragma = None
        self._close_shm()
        try:
            if self._connection is not None:
                self._connection.invalidate()
        except Exception:  # already broken: nothing to release
            pass
        self._connection = None


# How long a request waits for the same response that another is computing before it computes
# its own: longer than a page or a small export takes, far shorter than a client that does not
# read an export would hold the others (EXPORT_SEND_TIMEOUT, 30 s).
SINGLE_FLIGHT_WAIT = 1.0


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
        # instead of computing it again (16 cold exports at once would each take 16 times longer),
        # for at most SINGLE_FLIGHT_WAIT: then each computes its own.
        self.inflight: dict[tuple[Any, ...], asyncio.Event] = {}

    async def answer_at_edge(self, scope: Scope, send: Send) -> bool:
        """Answer a GET or HEAD from the cache before any other layer runs, and say whether it
        did: a hit costs the revision check, one lookup and one send, plus what the outer layers
        would add (`X-Request-ID`, `Vary: Origin`, the log line and the request metrics).
        Requests with `Origin` (CORS) or `Range`, and misses, go the whole way."""
        method = scope["method"]
        if (
            (method != "GET" and method != "HEAD")
            or self.max_bytes == 0
            or not (scope["path"] == "/" or scope["path"].startswith(CACHED_PREFIXES))
        ):
            return False
        started = time.perf_counter()
        accept = b""
        encoding = if_match = if_none_match = given_id = None
        for name, value in scope["headers"]:
            if name == b"accept":
                accept = value
            elif name == b"accept-encoding":
                encoding = value
            elif name == b"if-none-match":
                if_none_match = value
            elif name == b"if-match":
                if_match = value
            elif name == b"x-request-id":
                given_id = value
            elif name == b"origin" or name == b"range":
                return False
        conditional = if_match is not None or if_none_match is not None
        revision = await self.probe.revision(exact=conditional)
        scope[REVISION_KEY] = revision  # the inner cache need not ask again on a miss
        if revision is None:
            return False
        # The edge is a shortcut: should it fail before it has sent anything, the request takes
        # the whole way, where every error is answered as problem details (outside the app,
        # uvicorn would answer a plain-text 500).
        try:
            key = _key_of(
                scope["path"],
                scope["query_string"],
                accept.decode("latin-1"),
                _accepts_gzip(encoding.decode("latin-1") if encoding is not None else None),
            )
            with self.lock:
                entry = self.store.entries.get(key) if self.store.revision == revision else None
                if entry is None:
                    return False
                self.store.entries.move_to_end(key)
            request_id = request_id_of(given_id)
            if entry.edge is None or entry.edge_304 is None:
                entry.edge = _vary_origin(entry.headers)
                entry.edge_304 = _vary_origin(
                    [(n, v) for n, v in entry.headers if n in NOT_MODIFIED_HEADERS]
                )
            tagged = (b"x-request-id", request_id.encode())
            status = (
                precondition(_text(if_match), _text(if_none_match), entry.etag)
                if conditional
                else entry.status
            )
            if status == 412:
                headers, body = precondition_failed(instance_of(scope))
            elif status == 304:
                headers, body = entry.edge_304, b""
            else:
                status, headers, body = entry.status, entry.edge, entry.body
        except Exception:
            logger.exception("the cache's edge failed on %s; answered the whole way", scope["path"])
            return False
        self.hits += 1
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, tagged, NOSNIFF],
            }
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        finished(scope, status, started, request_id, entry.route)
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] != "GET":
            self.probe.writing()
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
        if "range" in request:  # a part of a file is not the whole the cache keeps
            await self.app(scope, receive, send)
            return
        if REVISION_KEY in scope:  # asked at the edge, for this very request
            revision = scope[REVISION_KEY]
        else:
            conditional = "if-none-match" in request or "if-match" in request
            revision = await self.probe.revision(exact=conditional)
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
            # Bounded: a response sent at its client's pace (an export to a client that reads
            # slowly, or not at all) would otherwise hold every request for it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.inflight[(key, revision)].wait(), SINGLE_FLIGHT_WAIT)
            with self.lock:
                entry = self.store.entries.get(key) if self.store.revision == revision else None
        if entry is not None:
            self.hits += 1
            scope.setdefault("state", {})["route"] = entry.route  # for the request metrics
            await self._replay(entry, request, scope, send)
            return
        self.misses += 1
        done = self.inflight.setdefault((key, revision), asyncio.Event())
        try:
            if "if-none-match" not in request:
                # An If-Match is evaluated by api.caching: a 412 is not kept, a 200 is.
                await self.app(scope, receive, self._recording(send, key, revision, scope, done))
            else:
                await self._revalidate_miss(scope, receive, send, key, revision, request, done)
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
        request: Headers,
        done: asyncio.Event,
    ) -> None:
        """A revalidation nothing is cached for: the whole response is computed, so that it can
        be kept (clients that only ever revalidate then hit), and the client is answered as
        the response begins: 304 if its If-None-Match names the response's tag, else the
        response itself, streamed as it comes. Whether it is kept or not (too large, an answer
        that may still change) changes neither; nothing is held back but what the cache keeps.
        (An If-Match is left for api.caching to evaluate: a 412 is not kept.)"""
        if_none_match = request["if-none-match"]
        not_modified = False
        computed = 0  # bytes of the body computed for the cache alone, after a 304
        beyond = asyncio.Event()  # set once they are more than the cache would keep

        async def answer(message: Message) -> None:
            nonlocal not_modified, computed
            if message["type"] == "http.response.start" and message["status"] == 200:
                etag = next((v for n, v in message["headers"] if n == b"etag"), None)
                if etag and matches_if_none_match(if_none_match, etag.decode("latin-1")):
                    not_modified = True
                    kept = [(n, v) for n, v in message["headers"] if n in NOT_MODIFIED_HEADERS]
                    await send({"type": "http.response.start", "status": 304, "headers": kept})
                    await send({"type": "http.response.body", "body": b""})
                    return
            if not_modified and message["type"] == "http.response.body":
                computed += len(message.get("body", b""))
                if computed > min(MAX_ENTRY_BYTES, self.max_bytes):
                    beyond.set()
                return  # the body the client has: computed for the cache alone
            await send(message)

        async def receive_while_kept() -> Message:
            # Once the 304 is sent the server calls the response done, and a streamed body
            # (an export) would be stopped as if its client had left: it goes on while the
            # cache may keep it, and stops once it cannot.
            message = await receive()
            if message["type"] == "http.disconnect" and not_modified:
                await beyond.wait()
            return message

        plain = {**scope, "headers": [(n, v) for n, v in scope["headers"] if n != b"if-none-match"]}
        recording = self._recording(answer, key, revision, plain, done)
        await self.app(plain, receive_while_kept, recording)
        scope.setdefault("state", {})["route"] = route_template(plain)

    async def _replay(self, entry: _Entry, request: Headers, scope: Scope, send: Send) -> None:
        status = precondition(request.get("if-match"), request.get("if-none-match"), entry.etag)
        if status == 412:
            headers, body = precondition_failed(instance_of(scope))
            await send({"type": "http.response.start", "status": 412, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if status == 304:
            kept = [(n, v) for n, v in entry.headers if n in NOT_MODIFIED_HEADERS]
            await send({"type": "http.response.start", "status": 304, "headers": kept})
            await send({"type": "http.response.body", "body": b""})
            return
        await send(
            {"type": "http.response.start", "status": entry.status, "headers": entry.headers}
        )
        await send({"type": "http.response.body", "body": entry.body})

    def _recording(
        self, send: Send, key: tuple[Any, ...], revision: object, scope: Scope, done: asyncio.Event
    ) -> Send:
        """`send`, keeping the response it sends; the requests waiting for it (`done`) go on
        once it is kept, before it is sent."""
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
                # Not an answer that may yet change (api.records.versions.settle: a feed page,
                # or `as_of` a moment not yet past).
                unsettled = scope.get("state", {}).get("unsettled", False)
                if not message.get("more_body", False) and size <= largest and not unsettled:
                    route = route_template(scope)
                    self._keep(key, revision, start, b"".join(chunks), route)
                    done.set()
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
