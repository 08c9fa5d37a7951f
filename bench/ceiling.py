"""The ceiling: a bare ASGI app answering each benchmarked URL with the API's own bytes.

It reads `CEILING_RESPONSES` (a JSON file written by bench/run.py) mapping a path with its
query string to the status, headers and body the API returned, and serves them as fast as the
ASGI server allows. Whatever the API does beyond that is its own cost.
"""

import base64
import json
import os
from typing import Any

_RESPONSES: dict[str, tuple[int, list[tuple[bytes, bytes]], bytes]] = {}
for key, item in json.loads(open(os.environ["CEILING_RESPONSES"]).read()).items():  # noqa: SIM115
    headers = [(name.encode(), value.encode()) for name, value in item["headers"]]
    _RESPONSES[key] = (item["status"], headers, base64.b64decode(item["body"]))
_MISSING = (404, [(b"content-type", b"text/plain")], b"not benchmarked")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    query = scope["query_string"].decode()
    key = scope["path"] + ("?" + query if query else "")
    if_none_match = dict(scope["headers"]).get(b"if-none-match")
    status, headers, body = _RESPONSES.get(key, _MISSING)
    if if_none_match is not None and (b"etag", if_none_match) in headers:
        status, body = 304, b""
        headers = [(n, v) for n, v in headers if n in (b"etag", b"cache-control", b"vary")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
