"""The collection envelope, its paging parameters, and the `next` link."""

import base64
import binascii
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlencode

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from starlette.requests import Request
from starlette.responses import Response

from api.caching import identity_etag
from api.schemas import AS_OF_DESCRIPTION, IntegerSpelling, Timestamp

T = TypeVar("T")

MAX_LIMIT = 500
# Far beyond any real dataset, far below the 2**63 where SQLite integers overflow.
MAX_OFFSET = 1_000_000_000

Limit = Annotated[
    int,
    Field(ge=1, le=MAX_LIMIT, description="Items per page (1-500).", examples=[50]),
    IntegerSpelling,
]
Offset = Annotated[
    int,
    Field(ge=0, le=MAX_OFFSET, description="Items to skip before the page.", examples=[0]),
    IntegerSpelling,
]


class PageQuery(BaseModel):
    """Paging parameters shared by every collection; unknown parameters are rejected."""

    model_config = ConfigDict(extra="forbid")

    limit: Limit = 50
    offset: Offset = 0
    as_of: Timestamp | None = Field(
        default=None, description=AS_OF_DESCRIPTION, examples=["2026-11-26T00:00:00Z"]
    )


class Page(BaseModel, Generic[T]):
    """One page of a collection."""

    items: list[T]
    total: int | None = Field(
        description="Items matching the request across all pages; null when the request said "
        "`count=none`.",
        examples=[42],
    )
    limit: int = Field(examples=[50])
    offset: int = Field(examples=[0])
    next: str | None = Field(
        description="Relative URL of the next page, or null on the last page.",
        examples=["/v1/metrics?limit=50&after=WyJpZCIsImFpLWNlbGwtdmlhYmlsaXR5LWltcHJvdmVtZW50Il0"],
    )


def page(
    request: Request, response: Response, items: list[T], total: int, limit: int, offset: int
) -> Page[T]:
    """The envelope for `items` paged by offset, with `next` in the body and in an RFC 8288
    `Link` header."""
    more = offset + limit < total
    next_params = [("limit", str(limit)), ("offset", str(offset + limit))] if more else None
    return keyed_page(request, response, items, total, limit, offset, next_params)


def keyed_page(
    request: Request,
    response: Response,
    items: list[T],
    total: int | None,
    limit: int,
    offset: int,
    next_params: list[tuple[str, str]] | None,
) -> Page[T]:
    """The envelope for `items`, whose next page has the paging parameters `next_params`
    (None on the last page), with `next` in the body and in an RFC 8288 `Link` header."""
    next_url = None
    if next_params is not None:
        next_url = next_link(request, next_params)
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return Page[T](items=items, total=total, limit=limit, offset=offset, next=next_url)


def next_link(request: Request, next_params: list[tuple[str, str]]) -> str:
    """The relative URL of the next page: the request's own parameters, its paging ones
    (`offset`, `after`, and those of `next_params`) replaced by `next_params`."""
    replaced = {name for name, _ in next_params} | {"offset", "after"}
    params = [
        (key, value) for key, value in request.query_params.multi_items() if key not in replaced
    ]
    path = request.scope.get("root_path", "") + request.url.path
    return f"{path}?{urlencode([*params, *next_params], safe=',')}"


# Keyset paging (metric collections, the change feed): `next` carries `after=`, the sort order
# and the sort values of the page's last item, so a deep page is found by the index as fast as
# the first, and stays put when items are added before it.


def encode_cursor(values: list[Any]) -> str:
    """An opaque `after=` token for the sort values of an item (base64url of a JSON array)."""
    return base64.urlsafe_b64encode(orjson.dumps(values)).rstrip(b"=").decode()


def _decode_cursor(token: str) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise ValueError("not a cursor this API gave (use the `next` link as is)") from None
    if not isinstance(values, list) or not values:
        raise ValueError("not a cursor this API gave (use the `next` link as is)")
    if not all(v is None or isinstance(v, str | int | float | bool) for v in values):
        raise ValueError("not a cursor this API gave (use the `next` link as is)")
    return values


Cursor = Annotated[
    str,
    StringConstraints(max_length=2000, pattern=r"^[A-Za-z0-9_-]+$"),
    AfterValidator(lambda token: (_decode_cursor(token), token)[1]),
]
AFTER_DESCRIPTION = (
    "Keyset paging: the page after the item this token names. Take it from `next`, which "
    "carries it; deep pages are then as fast as the first. Offset, if given too, counts from there."
)


# An enum, not a Literal: one component of the document, so that a generated client has one
# type for it on every collection (a Literal was written out in each).
class Count(StrEnum):
    """Whether a page counts its matches: `exact` gives `total`; `none` leaves it null, and
    the count is not run."""

    exact = "exact"
    none = "none"


COUNT_DESCRIPTION = (
    "`exact` (default): `total` counts every match; `none`: `total` is null, and the count "
    "query is not run (as PostgREST's `Prefer: count`)."
)
# The parameters that choose a page of a collection rather than which items it holds. An
# export is always the whole collection: it takes none of them (they are unknown to it).
PAGE_PARAMETERS = frozenset({"limit", "offset", "after", "count"})


def cursor_values(token: str) -> list[Any]:
    """The sort values an `after=` token (validated by `Cursor`) carries."""
    return _decode_cursor(token)


def json_page(
    request: Request,
    items: list[bytes],
    total: int | None,
    limit: int,
    offset: int,
    next_params: list[tuple[str, str]] | None,
    identity: bytes | None = None,
) -> Response:
    """A page envelope as JSON bytes around `items`, each already a JSON object (UTF-8; no
    model per item), with `next` in the body and in a `Link` header. `next_params` are the
    paging parameters of the next page, or None. With the `identity` of the items (what
    determines their bytes), the page's ETag is made from it and the envelope, not from the
    whole body (api.caching tags the others)."""
    headers = {}
    next_url = None
    if next_params is not None:
        next_url = next_link(request, next_params)
        headers["Link"] = f'<{next_url}>; rel="next"'
    rest = orjson.dumps({"total": total, "limit": limit, "offset": offset, "next": next_url})
    body = b'{"items":[' + b",".join(items) + b"]," + rest[1:]
    if identity is not None:
        headers["ETag"] = identity_etag(identity + b"\x1d" + rest)
    return Response(body, media_type="application/json", headers=headers)
