"""The HTTP/1.1 protocol `serve` runs: uvicorn's httptools one, answering a request it cannot
parse (an unknown method such as `BREW`, raw bytes outside ASCII in the target, a malformed
header) with problem details (RFC 9457) like every other error of the API, instead of uvicorn's
plain-text "Invalid HTTP request received."."""

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


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol; its one answer before the app, a 400 (or, for a target
    too long to read, a 414), as problem details."""

    def send_400_response(self, msg: str) -> None:
        # As uvicorn writes it (its default headers: date, server), with another body; the
        # connection closes, since the parser cannot tell where the next request would start.
        status, body = (414, TOO_LONG) if len(self.url) > LONGEST_TARGET else (400, UNPARSABLE)
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
