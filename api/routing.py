"""Pieces every router shares: parameter checks and the documented responses of operations."""

from typing import Any

from fastapi import Request

from api.citations import citation_content
from api.errors import InvalidInput, problem_responses
from api.exports import collection_content
from api.schemas import EXAMPLES

Responses = dict[int | str, dict[str, Any]]

_SUCCESS_HEADERS = {
    "ETag": {
        "description": "Strong validator of this representation; send it in If-None-Match.",
        "schema": {"type": "string"},
    },
    "Cache-Control": {"description": "public, max-age=60", "schema": {"type": "string"}},
}
_NOT_MODIFIED: Responses = {
    304: {
        "description": "Not Modified: the If-None-Match tag is current.",
        "headers": _SUCCESS_HEADERS,
    }
}
# Every /v1 operation can answer these.
_ERRORS = (406, 414, 422, 500, 503)


def _ref(schema: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{schema}"}


def collection_responses(item_schema: str, plural: str) -> Responses:
    """200 (JSON page, CSV, NDJSON), 304 and the errors of a collection operation."""
    example = {"items": [EXAMPLES[item_schema]], "total": 1, "limit": 50, "offset": 0, "next": None}
    headers = {
        **_SUCCESS_HEADERS,
        "Link": {"description": 'RFC 8288 rel="next" link to the next page.'},
        "Content-Disposition": {"description": "For CSV and NDJSON: the download's file name."},
    }
    return {
        200: {
            "description": f"A page of {plural} (JSON), or all of them (CSV, NDJSON).",
            "content": collection_content(f"#/components/schemas/Page_{item_schema}_", example),
            "headers": headers,
        },
        **_NOT_MODIFIED,
        **problem_responses(*_ERRORS),
    }


def item_responses(schema: str, singular: str, *, citable: bool = True) -> Responses:
    """200 (the item, or with `cite` its citation), 304 and the errors of an item operation."""
    content: dict[str, Any] = {"application/json": {"schema": _ref(schema)}}
    if citable:
        content.update(citation_content())
    return {
        200: {
            "description": f"The {singular}"
            + (", or with `cite` its citation." if citable else "."),
            "content": content,
            "headers": _SUCCESS_HEADERS,
        },
        **_NOT_MODIFIED,
        **problem_responses(404, *_ERRORS),
    }


def plain_responses(description: str, content: dict[str, Any], *errors: int) -> Responses:
    """200 with `content`, 304 and the given errors plus those every operation can answer."""
    return {
        200: {"description": description, "content": content, "headers": _SUCCESS_HEADERS},
        **_NOT_MODIFIED,
        **problem_responses(*sorted({*errors, *_ERRORS})),
    }


async def single_valued_parameters(request: Request) -> None:
    """Every parameter takes one value; `?limit=1&limit=2` is ambiguous, so it is refused.

    `async` only so that it runs on the event loop, not in a thread of its own."""
    seen: set[str] = set()
    for name, _value in request.query_params.multi_items():
        if name in seen:
            raise InvalidInput("query", name, "Given more than once; pass a single value.")
        seen.add(name)
