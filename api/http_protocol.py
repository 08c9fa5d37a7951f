"""The HTTP/1.1 protocol `serve` runs: uvicorn's httptools one, answering a request it cannot
parse (an unknown method such as `BREW`, raw bytes outside ASCII in the target, a malformed
header) with problem details (RFC 9457) like every other error of the API, instead of uvicorn's
plain-text "Invalid HTTP request received.". It also bounds a request's head (request line and
headers), which uvicorn does not, in time and in size, and its body in time (the body's size is
bounded by api.middleware.BodyLimit)."""

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api.errors import PROBLEM_MEDIA_TYPE, Problem

# Nothing of the request can be trusted, not even its path: the problem names no instance.
UNPARSABLE = (
    Problem(
        title="Bad Request",
        status=400,
        detail="The request is not valid HTTP/1.1: its request line (method, target, version) "
        "or a header could not be parsed.",
    )
    .model_dump_json(by_alias=True, exclude_none=True)
    .encode()
)
# httptools reads no request target longer than this (its URL parser counts in 16 bits): a
# longer one is too long, not malformed. (Shorter ones reach the app, whose own limit on the
# query, MAX_QUERY_BYTES, answers 414 too: api.guards.)
LONGEST_TARGET = 65_535
TOO_LONG = (
    Problem(
        title="Request-URI Too Long",  # as every other 414 of the API (Python's name)
        status=414,
        detail=f"The request target (path and query) is longer than the {LONGEST_TARGET:,} "
        "bytes this server reads.",
    )
    .model_dump_json(by_alias=True, exclude_none=True)
    .encode()
)


# A request's head must arrive whole within REQUEST_HEAD_TIMEOUT, and be no larger than this,
# or the connection is answered and closed: a client sending its headers a byte at a time, or
# without end, would hold a connection (and the parser's memory) that other clients need. The
# size is the longest target the parser reads and 64 KiB of headers (nginx: 32 KiB in all).
LONGEST_HEAD = LONGEST_TARGET + 65_536
HEAD_TOO_LARGE = (
    Problem(
        title="Request Header Fields Too Large",
        status=431,
        detail=f"The request's head (request line and headers) is longer than the "
        f"{LONGEST_HEAD:,} bytes this server reads.",
    )
    .model_dump_json(by_alias=True, exclude_none=True)
    .encode()
)


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; its one answer before the app, a 400 (or, for a target
    too long to read, a 414), as problem details; a head that takes too long (408) or grows too
    large (431) is answered so too."""

    head_pending = False  # between a message's first byte (or the connection's) and its headers
    head_since = 0.0  # the loop's time when the head began
    head_bytes = 0
    body_pending = False  # between a message's headers and its end (a bodiless one: no time)
    body_since = 0.0
    # The loop whose connections a sweep checks once a second (a timer per request would cost
    # a cache hit a tenth of its time), and the seconds a head, and then a body, may take.
    swept: asyncio.AbstractEventLoop | None = None
    head_seconds = 10.0
    body_seconds = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_pending, self.head_since = True, self.loop.time()
        if ProblemHttpToolsProtocol.swept is not self.loop:
            from api.config import get_settings

            ProblemHttpToolsProtocol.swept = self.loop
            settings = get_settings()
            ProblemHttpToolsProtocol.head_seconds = settings.request_head_timeout
            ProblemHttpToolsProtocol.body_seconds = settings.request_body_timeout
            _sweep(self.loop, self.connections)

    def data_received(self, data: bytes) -> None:
        pending = self.head_pending
        super().data_received(data)
        # Counted after the parser has read it: a part that completes the head is not counted,
        # whatever body follows it in the same read.
        if pending and self.head_pending and not self.transport.is_closing():
            self.head_bytes += len(data)
            if self.head_bytes > LONGEST_HEAD:
                self._answer(431, HEAD_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_bytes = 0
        if not self.head_pending:  # the next request on a kept-alive connection
            self.head_pending, self.head_since = True, self.loop.time()

    def on_headers_complete(self) -> None:
        self.head_pending = False
        # Until the message's end, which the parser reports at once for a message without a
        # body (in the same read).
        self.body_pending, self.body_since = True, self.loop.time()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.body_pending = False
        super().on_message_complete()

    def head_too_slow(self) -> None:
        """Its head has taken longer than REQUEST_HEAD_TIMEOUT: answered 408 and closed (once
        the response under way, if any, is sent)."""
        self.head_pending = False
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        else:
            detail = (
                f"The request's line and headers did not arrive within {self.head_seconds:g} s."
            )
            slow = Problem(title="Request Timeout", status=408, detail=detail)
            self._answer(408, slow.model_dump_json(by_alias=True, exclude_none=True).encode())

    def body_too_slow(self) -> None:
        """Its body has taken longer than REQUEST_BODY_TIMEOUT since its headers: answered 408
        and closed if the app has not answered yet (the app, waiting for the body, is told the
        client left), closed if it has (a 401 sent before the body was read: uvicorn would
        read and drop the rest for as long as it came), and closed after the answer under way
        otherwise."""
        self.body_pending = False
        cycle = self.cycle
        if self.transport.is_closing():
            return
        if cycle is None or cycle.response_complete:
            self.transport.close()
        elif not cycle.response_started:
            cycle.disconnected = True
            cycle.message_event.set()
            detail = f"The request's body did not arrive whole within {self.body_seconds:g} s."
            slow = Problem(title="Request Timeout", status=408, detail=detail)
            self._answer(408, slow.model_dump_json(by_alias=True, exclude_none=True).encode())
        else:
            cycle.keep_alive = False

    def send_400_response(self, msg: str) -> None:
        # As uvicorn writes it (its default headers: date, server), with another body; the
        # connection closes, since the parser cannot tell where the next request would start.
        status, body = (414, TOO_LONG) if len(self.url) > LONGEST_TARGET else (400, UNPARSABLE)
        self._answer(status, body)

    def _answer(self, status: int, body: bytes) -> None:
        self.head_pending = False
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n",
                b"content-length: " + str(len(body)).encode() + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()


def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    """Once a second, for as long as the loop runs: answer each connection whose head or body
    is late."""
    now = loop.time()
    head_late = now - ProblemHttpToolsProtocol.head_seconds
    body_late = now - ProblemHttpToolsProtocol.body_seconds
    for connection in list(connections):
        if not isinstance(connection, ProblemHttpToolsProtocol):
            continue
        if connection.head_pending and connection.head_since < head_late:
            connection.head_too_slow()
        elif connection.body_pending and connection.body_since < body_late:
            connection.body_too_slow()
    loop.call_later(1.0, _sweep, loop, connections)
