"""The collection envelope, its paging parameters, and the `next` link."""

from typing import Annotated, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.schemas import AS_OF_DESCRIPTION, Timestamp

T = TypeVar("T")

MAX_LIMIT = 500
# Far beyond any real dataset, far below the 2**63 where SQLite integers overflow.
MAX_OFFSET = 1_000_000_000

Limit = Annotated[
    int, Field(ge=1, le=MAX_LIMIT, description="Items per page (1-500).", examples=[50])
]
Offset = Annotated[
    int, Field(ge=0, le=MAX_OFFSET, description="Items to skip before the page.", examples=[0])
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
    total: int = Field(description="Items matching the request across all pages.", examples=[42])
    limit: int = Field(examples=[50])
    offset: int = Field(examples=[0])
    next: str | None = Field(
        description="Relative URL of the next page, or null on the last page.",
        examples=["/v1/metrics?limit=50&offset=50"],
    )


def page(
    request: Request, response: Response, items: list[T], total: int, limit: int, offset: int
) -> Page[T]:
    """The envelope for `items`, with `next` in the body and in an RFC 8288 `Link` header."""
    next_url = None
    if offset + limit < total:
        params = [
            (key, value)
            for key, value in request.query_params.multi_items()
            if key not in ("limit", "offset")
        ]
        params += [("limit", str(limit)), ("offset", str(offset + limit))]
        path = request.scope.get("root_path", "") + request.url.path
        next_url = f"{path}?{urlencode(params, safe=',')}"
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return Page[T](items=items, total=total, limit=limit, offset=offset, next=next_url)
