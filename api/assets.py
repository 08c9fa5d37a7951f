"""Static assets (the documentation's and the explorer's), served by Starlette's `StaticFiles`,
with a Range in a unit other than bytes ignored, and the Range refusals it writes as plain
text answered as problem details instead."""

from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from api.errors import PROBLEM_MEDIA_TYPE, Problem, instance_of

# Starlette's own refusals of a Range header: 400 (malformed, its reason as the text) and 416
# (past the end of the file, with `Content-Range: bytes */size` and no text).
_RANGE_REFUSALS = {400: "Bad Request", 416: "Range Not Satisfiable"}


class Assets(StaticFiles):
    """`StaticFiles` whose refused ranges are problem details (RFC 9457), as every other
    error of the API is; the 416 keeps its `Content-Range`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _in_bytes(scope):
            # RFC 9110 §14.2: a Range in a unit the server does not know MUST be ignored (the
            # whole file, 200), where StaticFiles refuses it (400).
            scope = {**scope, "headers": [(n, v) for n, v in scope["headers"] if n != b"range"]}
        refusal: Message | None = None

        async def send_problem(message: Message) -> None:
            nonlocal refusal
            if message["type"] == "http.response.start" and message["status"] in _RANGE_REFUSALS:
                refusal = message  # answered once its text is known
                return
            if refusal is None or message["type"] != "http.response.body":
                await send(message)
                return
            await _send_refusal(scope, refusal, bytes(message.get("body", b"")), send)

        await super().__call__(scope, receive, send_problem)


def _in_bytes(scope: Scope) -> bool:
    """Whether the request has no Range, or one in bytes (the only unit files are served in)."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == b"range":
            return value.partition(b"=")[0].strip().lower() == b"bytes"
    return True


async def _send_refusal(scope: Scope, start: Message, text: bytes, send: Send) -> None:
    status = start["status"]
    headers = [
        (name, value)
        for name, value in start["headers"]
        if name.lower() not in (b"content-type", b"content-length")
    ]
    if status == 416:
        size = dict(headers).get(b"content-range", b"").decode().rpartition("/")[2]
        detail = f"The range asked for (Range) starts past the end of the file ({size} bytes)."
    else:
        reason = text.decode(errors="replace").strip().rstrip(".") or "malformed"
        detail = f"The Range header cannot be served: {reason}."
    body = (
        Problem(
            title=_RANGE_REFUSALS[status], status=status, detail=detail, instance=instance_of(scope)
        )
        .model_dump_json(by_alias=True, exclude_none=True)
        .encode()
    )
    headers += [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
