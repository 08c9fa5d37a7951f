"""Pieces every router shares: parameter checks, the documented responses of operations, and
routes built when first used."""

import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.routing import compile_path, get_name

from api.errors import InvalidInput, ProblemError, problem_responses
from api.negotiation import negotiate

if TYPE_CHECKING:
    from fastapi import APIRouter

Responses = dict[int | str, dict[str, Any]]


def header(name: str) -> dict[str, str]:
    """A reference to the header `name` of the document's `components.headers`."""
    return {"$ref": f"#/components/headers/{name}"}


# The headers the OpenAPI document declares once (`components.headers`), by name.
HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": "Strong validator of this exact representation; send it in "
        "If-None-Match (a 304 if unchanged) or, to change a record, in If-Match.",
        "schema": {"type": "string", "pattern": '^"[^"]+"$'},
        "example": '"r1c284587901c3d053fefd91b55e2f9"',
    },
    "Cache-Control": {
        "description": "How long a cache may reuse the answer: a minute, or, for an answer "
        "that may still change (a change-feed page, `as_of` a moment not yet past), `no-cache`: "
        "ask again (If-None-Match) before each use.",
        "schema": {"type": "string"},
        "example": "public, max-age=60",
    },
    "Dataset-Version": {
        "description": "The dataset version the answer is at (one per committed write): a "
        "read's; a write's own, or the current one if it changed nothing.",
        "schema": {"type": "integer", "minimum": 0},
        "example": 3,
    },
    "Link": {
        "description": 'RFC 8288 link to the next page, `<url>; rel="next"`; absent on the last.',
        "schema": {"type": "string"},
        "example": "</v1/metrics?limit=50&after=WyJpZCIsImFzaWEtcGFjaWZpYy1jZG1vLWNhcGFjaXR5"
        'LWNhZ3IiXQ>; rel="next"',
    },
    "Content-Disposition": {
        "description": "A download, and the file name to save it under.",
        "schema": {"type": "string"},
        "example": 'attachment; filename="metrics.csv"',
    },
    "Location": {
        "description": "The created record's URL.",
        "schema": {"type": "string"},
        "example": "/v1/metrics/car-t-dose-manufacturing-cost",
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the "
        "same Idempotency-Key (nothing was written again); absent otherwise.",
        "schema": {"type": "string", "enum": ["true"]},
        "example": "true",
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
        "example": 5,
    },
    "X-Request-ID": {
        "description": "This request's id, as it appears in the server's log: the request's own "
        "X-Request-ID if it sent one (1-128 characters from letters, digits and `-_.:`), else "
        "one made for it. Quote it when reporting a problem.",
        "schema": {"type": "string"},
        "example": "5e8e03b493d40d5b8aa37f63c2f798e1",
    },
    "WWW-Authenticate": {
        "description": "The authentication scheme a write needs: an API key as a bearer token.",
        "schema": {"type": "string"},
        "example": 'Bearer realm="cdmo-metrics"',
    },
}

# The request header of a conditional GET, which every read takes: tags, as ETag gives them
# (`*`, which names whatever is there, is taken too; If-Match as well, for a 412, as RFC 9110
# says: neither is declared, since a generated client has no use for them on a read).
CONDITIONAL_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "Tags (`ETag`) of representations the client holds, comma-separated: "
        "304 Not Modified, with no body, when one is current.",
        "schema": {"type": "string", "examples": ['"a-tag-from-an-earlier-answer"']},
    },
]
SUCCESS_HEADERS = {name: header(name) for name in ("ETag", "Cache-Control", "Dataset-Version")}
# Every /v1 read can answer these (412: an If-Match naming no current tag).
_ERRORS = (406, 412, 414, 422, 500, 503)


def not_modified() -> Responses:
    """The 304 a conditional GET gets when its If-None-Match tag is current."""
    return {
        304: {
            "description": "Not Modified: the If-None-Match tag is current.",
            "headers": SUCCESS_HEADERS,
        }
    }


def read_errors(*errors: int) -> Responses:
    """Problem responses for `errors` and those every read can answer."""
    return problem_responses(*sorted({*errors, *_ERRORS}))


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}


def collection_responses(item_schema: str, description: str, *errors: int) -> Responses:
    """200 (a JSON page of `item_schema`, described so, its next page linked in `Link`), 304
    and the errors of a collection operation (records, their revisions, the releases)."""
    return {
        200: {
            "description": description,
            "content": _json(f"Page_{item_schema}_"),
            "headers": {**SUCCESS_HEADERS, "Link": header("Link")},
        },
        **not_modified(),
        **read_errors(*errors),
    }


def item_responses(schema: str, singular: str) -> Responses:
    """200 (the item), 304 and the errors of an item operation."""
    return plain_responses(f"The {singular}.", _json(schema), 404)


def export_responses(
    media_type: str, description: str, schema: dict[str, Any], *errors: int
) -> Responses:
    """200 (a download of `media_type`), 304, the given errors and those every read can
    answer, for an export operation."""
    return {
        200: {
            "description": description,
            "content": {media_type: {"schema": schema}},
            "headers": {**SUCCESS_HEADERS, "Content-Disposition": header("Content-Disposition")},
        },
        **not_modified(),
        **read_errors(*errors),
    }


def plain_responses(description: str, content: dict[str, Any], *errors: int) -> Responses:
    """200 with `content`, 304 and the given errors plus those every read can answer."""
    return {
        200: {"description": description, "content": content, "headers": SUCCESS_HEADERS},
        **not_modified(),
        **read_errors(*errors),
    }


# A `%` that does not begin an escape (two hexadecimal digits).
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _misencoded(query: bytes) -> list[ProblemError]:
    """The parameters of a query string whose name or value is not UTF-8 percent-encoded
    (RFC 3986 2.1, as URLs of the WHATWG standard and every HTTP client encode them): a `%`
    that begins no escape, or bytes that are not UTF-8 once decoded. Decoded leniently, as
    parsers do, `%ZZ` would be searched for as itself and a Latin-1 `%E9` as U+FFFD: a query
    that finds nothing, when it was never the client's query."""
    errors: list[ProblemError] = []
    if b"%" not in query and query.isascii():
        return errors  # nothing decodes: the query of nearly every request
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        for part in (name, value):
            if _BAD_ESCAPE.search(part):
                why = "A `%` that begins no escape: percent-encode it as %25."
            else:
                try:
                    unquote_to_bytes(part.replace(b"+", b" ")).decode("utf-8")
                    continue
                except UnicodeDecodeError:
                    why = "Not UTF-8 once percent-decoded: encode the text as UTF-8."
            shown = unquote_to_bytes(name.replace(b"+", b" ")).decode("utf-8", "replace")
            errors.append(ProblemError(in_="query", name=shown, detail=why))
            break
    return errors


async def percent_encoded_parameters(request: Request) -> None:
    """The explorer's check of `_misencoded`: its pages take a repeated parameter (the last
    counts, as a browser's form may send one twice), but not one it would misread; a browser
    is shown which (api.explorer.router.invalid_address). `async` for the reason below."""
    if errors := _misencoded(request.scope["query_string"]):
        raise RequestValidationError(
            [
                {"type": "value_error", "loc": ("query", e.name), "msg": e.detail, "input": None}
                for e in errors
            ]
        )


async def single_valued_parameters(request: Request) -> None:
    """Every parameter takes one value; `?limit=1&limit=2` is ambiguous, so it is refused. A
    name or value that is not UTF-8 percent-encoded is refused too (`_misencoded`).

    `async` only so that it runs on the event loop, not in a thread of its own. (Behind
    httptools a target with raw bytes outside ASCII is refused before the app, by
    api.http_protocol; other servers pass them on.)"""
    if errors := _misencoded(request.scope["query_string"]):
        raise InvalidInput.many(errors)
    seen: set[str] = set()
    for name, _value in request.query_params.multi_items():
        if name in seen:
            raise InvalidInput("query", name, "Given more than once; pass a single value.")
        seen.add(name)


async def no_query_parameters(request: Request) -> None:
    """For operations that take no query parameters (writes, probes, the OpenAPI document):
    one given is refused, never ignored (a `?dry_run=true` that wrote anyway would be the
    worst surprise). `async` for the reason above."""
    names = list(dict.fromkeys(name for name, _value in request.query_params.multi_items()))
    if names:
        raise InvalidInput.many(
            [ProblemError(in_="query", name=name, detail="Unknown parameter.") for name in names]
        )


async def retired_parameters(request: Request) -> None:
    """`format` and `cite` are gone (each representation has its own URL); name where to go.

    Checked before the parameters themselves, so the answer points at the new URL instead of
    calling the parameter unknown. `async` for the reason above."""
    params = request.query_params
    if "format" not in params and "cite" not in params:
        return  # every request asks this: no URL built for it
    path = request.url.path
    if "format" in params:
        fmt = params["format"]
        own = path.removeprefix(request.scope.get("root_path", ""))
        where = (
            f"GET {path}.{fmt} exports the whole collection with the same filters"
            if fmt in ("csv", "ndjson") and f"{own}.{fmt}" in request.app.openapi()["paths"]
            else "this URL answers JSON only; exports are at /v1/<collection>.csv and .ndjson"
        )
        raise InvalidInput("query", "format", f"Retired: {where}.")
    if "cite" in params:
        file = {"bibtex": ".bib", "ris": ".ris", "csl-json": ".json"}.get(params["cite"])
        where = f"{path}/citation{file}" if file else f"{path}/citation?style={params['cite']}"
        raise InvalidInput("query", "cite", f"Retired: citations are at GET {where}.")


class DeferredRoute(APIRoute):
    """An APIRoute that builds its parameter fields, response fields and request handler
    (FastAPI's `APIRoute.__init__`: pydantic fields for every parameter, a third of start-up)
    when something first asks for them: a request it answers, or the OpenAPI document. Until
    then it has what matching a request and routing tables need (path, its pattern, methods,
    name, endpoint). A mistake in a declaration shows when the document is built (the OpenAPI
    test builds every route)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        self._declared = (path, endpoint, options)
        self.path = path
        self.endpoint = endpoint
        self.name = options.get("name") or get_name(endpoint)
        self.methods = {method.upper() for method in options.get("methods") or ["GET"]}
        self.path_regex, self.path_format, self.param_convertors = compile_path(path)
        self.include_in_schema = options.get("include_in_schema", True)

    def __getattr__(self, name: str) -> Any:
        # Called only for attributes not set: those APIRoute.__init__ sets, the first time.
        if name not in _BUILT or "_declared" not in self.__dict__:
            raise AttributeError(name)
        with _BUILDING:
            declared = self.__dict__.pop("_declared", None)
            if declared is not None:  # else another thread built it meanwhile
                path, endpoint, options = declared
                super().__init__(path, endpoint, **options)
        return object.__getattribute__(self, name)


# What APIRoute.__init__ sets besides what DeferredRoute sets at once.
_BUILT = frozenset({*APIRoute.__annotations__, "app", "form_limits"})
_BUILDING = threading.RLock()


# The checks of an operation outside `/v1` that takes no parameters (the probes, the OpenAPI
# document), made as every `/v1` operation makes them: Accept (406), then parameters (422).
SERVICE_CHECKS = [Depends(negotiate), Depends(no_query_parameters)]


def v1_router(**options: Any) -> "APIRouter":
    """A router of the versioned API: its routes are made under `/v1`, each with the checks
    every `/v1` operation runs first (retired parameters, Accept, repeated parameters).

    The routes are complete as declared, so the app takes them as they are
    (`api.main`): FastAPI builds each route's parameter fields once, where including one
    router in another built them again for the including router (a third of start-up)."""
    from fastapi import APIRouter

    checks = [
        Depends(retired_parameters),
        Depends(negotiate),
        Depends(single_valued_parameters),
    ]
    return APIRouter(prefix="/v1", dependencies=checks, route_class=DeferredRoute, **options)
