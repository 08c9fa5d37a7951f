"""Whole-collection exports as CSV or NDJSON, streamed row by row.

The export engine (`export_chunks`) never holds a pooled connection while it waits on a
client: it reads the collection in bounded keyset chunks, each a short read of its own at the
one dataset version the export answers at, and sends each chunk while it reads the next (one
read ahead: two chunks in memory). A reader that can tell cheaply where a read will end
(`KeyedReader`: the whole metric collection in id order) has `READS_AHEAD` reads under way
at once, each on a connection of its own, so that the database writes several chunks while
the client takes one. A client that stops reading for longer than
`EXPORT_SEND_TIMEOUT` is dropped, and each client address may run at most
`EXPORTS_PER_CLIENT` exports at once (429 beyond). Large collections' readers may give their
rows already written in the export's format (api.metrics.encoding: by the database).
"""

import asyncio
import collections
import contextlib
import csv
import hashlib
import io
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import anyio
import orjson
from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import Engine, select
from sqlmodel import Session
from starlette.types import Message, Send

from api.cells import FORMULA_STARTS
from api.errors import TooManyRequests
from api.schemas import figure_text

logger = logging.getLogger("api.exports")


class Format(StrEnum):
    json = "json"
    csv = "csv"
    ndjson = "ndjson"


MEDIA_TYPES = {
    Format.json: "application/json",
    Format.csv: "text/csv",
    Format.ndjson: "application/x-ndjson",
}


def columns(schema: type[BaseModel]) -> list[str]:
    """Flat column names of `schema`: nested models become `<field>_<subfield>`."""
    names = []
    for name, field in schema.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += [f"{name}_{sub}" for sub in annotation.model_fields]
        else:
            names.append(name)
    return names


def _cell(value: Any) -> str:
    """One CSV cell; text that a spreadsheet would run as a formula is prefixed with `'`
    (numbers, negative ones included, are written as they are)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return figure_text(value)
    if isinstance(value, dict):  # a free-form object (a revision's record): one JSON cell
        text = orjson.dumps(value).decode()
    elif isinstance(value, list):
        text = ";".join(
            orjson.dumps(item).decode() if isinstance(item, dict) else str(item) for item in value
        )
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def flatten(item: BaseModel) -> dict[str, str]:
    """One CSV row: nested models spread into prefixed columns, lists joined with `;`."""
    row: dict[str, str] = {}
    fields = type(item).model_fields
    for name, value in item.model_dump(mode="json").items():
        annotation = fields[name].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            row.update({f"{name}_{sub}": _cell(inner) for sub, inner in value.items()})
        else:
            row[name] = _cell(value)
    return row


def _csv_lines(
    schema: type[BaseModel], items: Iterable[BaseModel], *, header: bool = True
) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(schema), lineterminator="\r\n")
    if header:
        writer.writeheader()
    for item in items:
        writer.writerow(flatten(item))
        if buffer.tell() > 16384:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _ndjson_lines(items: Iterable[BaseModel]) -> Iterator[str]:
    for item in items:
        yield orjson.dumps(item.model_dump(mode="json")).decode() + "\n"


def written(fmt: Format, schema: type[BaseModel], items: Iterable[BaseModel]) -> bytes:
    """`items` as `export` writes them, without the CSV header: a chunk's `written` rows."""
    lines = _csv_lines(schema, items, header=False) if fmt is Format.csv else _ndjson_lines(items)
    return "".join(lines).encode()


def export(
    fmt: Format,
    schema: type[BaseModel],
    items: Iterable[BaseModel],
    filename: str,
    etag: str,
    *,
    bom: bool = False,
) -> StreamingResponse:
    """Stream `items` as CSV or NDJSON, as a download named `<filename>.<format>`; `bom`
    starts a CSV with U+FEFF, by which Excel knows it is UTF-8."""
    body = _csv_lines(schema, items) if fmt is Format.csv else _ndjson_lines(items)
    if bom and fmt is Format.csv:
        body = itertools.chain(["\ufeff"], body)
    media_type = MEDIA_TYPES[fmt] + ("; charset=utf-8" if fmt is Format.csv else "")
    return StreamingResponse(
        (chunk.encode("utf-8") for chunk in body),
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}.{fmt}"',
            "ETag": etag,
        },
    )


def export_etag(revision: int, request: Request, fmt: Format) -> str:
    """A strong tag for an export: the dataset revision and the normalised request.

    A streamed body cannot be hashed before it is sent, so the tag changes whenever the
    dataset does; an unchanged dataset always yields the same bytes for the same request.
    """
    params = sorted(request.query_params.multi_items())
    key = f"{revision}|{fmt}|{request.url.path}|{params}"
    return f'"x{hashlib.sha256(key.encode()).hexdigest()[:31]}"'


# The export engine.

BOM = "\ufeff".encode()

# Rows per read: bounds what one export holds in memory (about 1.5 MB of metrics) while it
# waits on its client.
CHUNK_ROWS = 2000
# Bytes per send at most: a read written by the database may hold several megabytes, and a
# client must take each send within the send timeout, as it took a read of CHUNK_ROWS before.
SEND_BYTES = 1 << 20


@dataclass
class Chunk:
    """One read of an export: its rows, and where the next read starts. The rows are either
    `written` already in the export's format (by the database, or by the reader), or `items`,
    JSON-ready dicts that the engine writes."""

    items: list[dict[str, Any]]
    after: list[Any] | None  # the sort values of the last row; None when the export is done
    written: bytes | None = None


# reads up to `limit` rows after the row `after` names (None: from the start)
ChunkReader = Callable[[Session, list[Any] | None, int], Chunk]


@dataclass(frozen=True)
class KeyedReader:
    """A chunk reader whose next reads can start before its current one ends: `split`, a
    cheap read (an index's keys alone), gives the sort values of the last row that `read`
    would return after `after` given `limit`, or None when that read would hold the last
    rows. A read that ends elsewhere (its reader wrote fewer rows than it said) costs only
    the reads started after it, which are dropped and started again from where it ended."""

    read: ChunkReader
    split: Callable[[Session, list[Any] | None, int], list[Any] | None]


# Reads of a KeyedReader under way at once, the chunk being sent apart: the database writing a
# chunk is most of an export's time (PostgreSQL, 1,000,000 metrics: two exports at once each
# ran as fast as one alone), and each read in memory is a few megabytes.
READS_AHEAD = 2


class ExportGate:
    """At most `per_client` exports at once per client address."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self.running: dict[str, int] = {}
        self.lock = threading.Lock()

    def enter(self, client: str) -> None:
        with self.lock:
            if self.running.get(client, 0) >= self.per_client:
                raise TooManyRequests(
                    f"At most {self.per_client} exports may run at once per client; "
                    "retry when one has finished.",
                    retry_after=5,
                )
            self.running[client] = self.running.get(client, 0) + 1

    def leave(self, client: str) -> None:
        with self.lock:
            left = self.running.get(client, 1) - 1
            if left:
                self.running[client] = left
            else:
                self.running.pop(client, None)


class SlowReader(Exception):
    """The client stopped reading an export for longer than the send timeout."""


class _ExportResponse(StreamingResponse):
    """A streamed export that releases its client's slot when done, and gives up on a client
    that does not take a chunk within `send_timeout` seconds (the connection is closed)."""

    def __init__(
        self, content: AsyncIterator[bytes], *, send_timeout: float, release: Callable[[], None],
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(content, **kwargs)
        self.send_timeout = send_timeout
        self.release = release

    async def __call__(self, scope: Any, receive: Any, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SlowReader as reader:
            # An outcome a client chooses, not a fault of the server: one line, no traceback.
            # The response stays unfinished, so the server closes the connection.
            logger.warning("export to %s given up: %s", scope.get("path"), reader)
        finally:
            self.release()

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        async for chunk in self.body_iterator:
            await self._send(send, {"type": "http.response.body", "body": chunk, "more_body": True})
        await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})

    async def _send(self, send: Send, message: Message) -> None:
        # The server's send waits while the client's socket is full.
        try:
            await asyncio.wait_for(send(message), self.send_timeout)
        except TimeoutError:
            raise SlowReader(f"no chunk taken in {self.send_timeout} s") from None


def _read_chunk(
    engine: Engine,
    version: int,
    read: Callable[[Session, list[Any] | None, int], Any],
    after: list[Any] | None,
    limit: int,
) -> Any:
    """One short read (a chunk, or a split) at dataset `version`: the live tables while they
    are still at it, else their history at it (api.records.asof); the connection goes back to
    the pool at once. The reader finds the version in `session.info["dataset_version"]`, as
    in a request's session."""
    from api.records import asof, versions

    with Session(engine, info={"dataset_version": version}) as session:
        connection = session.connection()
        if connection.dialect.name == "postgresql":  # the version and the rows: one snapshot
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        current = connection.execute(
            select(versions.DatasetState.version).where(versions.DatasetState.id == 1)  # type: ignore[call-overload]
        ).scalar_one()
        if current != version:
            connection.execution_options(**{asof.OPTION: version})
        return read(session, after, limit)


def _csv_header(names: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(names)
    return buffer.getvalue().encode()


def _csv_chunk(items: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for item in items:
        row: list[str] = []
        for value in item.values():
            if isinstance(value, dict):
                row += [_cell(inner) for inner in value.values()]
            else:
                row.append(_cell(value))
        writer.writerow(row)
    return buffer.getvalue().encode()


def _ndjson_chunk(items: list[dict[str, Any]]) -> bytes:
    dumps = orjson.dumps
    return b"".join([dumps(item) + b"\n" for item in items])


def _readers(app_state: Any, engine: Engine) -> anyio.Semaphore:
    """Chunk reads under way at once, all exports together: at most half the pool, so that
    however many exports run, plain reads always find a connection."""
    readers: anyio.Semaphore | None = getattr(app_state, "export_readers", None)
    if readers is None:
        pool = engine.pool
        capacity = int(getattr(pool, "size", lambda: 2)()) + max(
            0, int(getattr(pool, "_max_overflow", 0))
        )
        readers = app_state.export_readers = anyio.Semaphore(max(1, capacity // 2))
    return readers


def export_chunks(
    request: Request,
    fmt: Format,
    schema: type[BaseModel],
    reader: ChunkReader | KeyedReader,
    version: int,
    filename: str,
    etag: str,
    *,
    bom: bool = False,
) -> StreamingResponse:
    """Stream the collection `read` gives, chunk by chunk at dataset `version`, as CSV or
    NDJSON (a download named `<filename>.<format>`; `bom` starts a CSV with U+FEFF). The
    caller must hold no transaction open: nothing here keeps a connection while the client
    reads."""
    app_state = request.app.state
    settings = app_state.settings
    gate: ExportGate = getattr(app_state, "export_gate", None) or ExportGate(
        settings.exports_per_client
    )
    app_state.export_gate = gate
    client = request.client.host if request.client else "unknown"
    gate.enter(client)
    engine = app_state.read_engine
    names = columns(schema)

    async def body() -> AsyncIterator[bytes]:
        readers = _readers(app_state, engine)  # made on the event loop, where it is used

        async def at_version(read: Callable[..., Any], after: list[Any] | None) -> Any:
            async with readers:
                return await anyio.to_thread.run_sync(
                    _read_chunk, engine, version, read, after, CHUNK_ROWS
                )

        def written(chunk: Chunk, first: bool) -> bytes:
            if chunk.written is not None:
                data = chunk.written
            elif fmt is Format.csv:
                data = _csv_chunk(chunk.items)
            else:
                data = _ndjson_chunk(chunk.items)
            if first and fmt is Format.csv:
                data = (BOM if bom else b"") + _csv_header(names) + data
            return data

        keyed = reader if isinstance(reader, KeyedReader) else None
        read = reader.read if isinstance(reader, KeyedReader) else reader
        depth = READS_AHEAD if keyed else 1
        # Reads under way, each with the sort values its last row should have (`split`'s
        # answer; a plain reader's next read starts where the chunk before it ended).
        pending: collections.deque[tuple[asyncio.Task[Chunk], list[Any] | None]]
        pending = collections.deque()
        start: list[Any] | None = None  # where the next read to start begins
        started_last = False  # the read of the collection's last rows is under way

        async def start_reads() -> None:
            nonlocal start, started_last
            while len(pending) < depth and not started_last:
                end = await at_version(keyed.split, start) if keyed else None
                pending.append((asyncio.ensure_future(at_version(read, start)), end))
                start, started_last = end, keyed is None or end is None

        async def drop_reads() -> None:
            while pending:
                task, _end = pending.popleft()
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

        try:
            first = True
            await start_reads()
            while pending:
                task, end = pending.popleft()
                chunk = await task
                if chunk.after is None:  # the collection's last rows
                    await drop_reads()
                    started_last = True
                elif not keyed or chunk.after != end:
                    # A plain reader's next read starts here; so do a keyed reader's reads
                    # after one that ended elsewhere than `split` said.
                    await drop_reads()
                    start, started_last = chunk.after, False
                # The next reads run while this chunk is sent, so that the database works
                # while the client reads; each is a short read of its own all the same,
                # done (and its connection returned) whether or not the client reads on.
                await start_reads()
                data = written(chunk, first)
                first = False
                for offset in range(0, len(data), SEND_BYTES):
                    yield data[offset : offset + SEND_BYTES]
        finally:  # the client went away, or was dropped: the reads under way end
            await drop_reads()

    media_type = MEDIA_TYPES[fmt] + ("; charset=utf-8" if fmt is Format.csv else "")
    return _ExportResponse(
        body(),
        send_timeout=settings.export_send_timeout,
        release=lambda: gate.leave(client),
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}.{fmt}"',
            "ETag": etag,
        },
    )
