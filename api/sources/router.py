"""Source endpoints: the documents and their verbatim text (citations: api.citations)."""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from sqlmodel import Session

from api.downloads import add_exports
from api.pagination import Page, page
from api.records import store
from api.records.reads import ReadSessionDep
from api.routing import collection_responses, item_responses, plain_responses, v1_router
from api.schemas import AsOfQuery
from api.sources import service
from api.sources.kind import SOURCE as KIND
from api.sources.schemas import SourcePublic, SourceQuery

router = v1_router(tags=["sources"])
SourceId = Annotated[
    str, Path(description="The source's id.", examples=["coreychem-future-of-cdmos-2026"])
]


@router.get(
    "/sources",
    operation_id="listSources",
    summary="List sources",
    response_model=Page[SourcePublic],
    responses=collection_responses("SourcePublic", "A page of sources."),
)
def list_sources(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    query: Annotated[SourceQuery, Query()],
) -> Any:
    """The documents the dataset's figures come from (exports: `/v1/sources.csv`, `.ndjson`)."""
    items, total = service.list_sources(session, query=query)
    return page(request, response, items, total, query.limit, query.offset)


def _all_sources(session: Session, query: SourceQuery) -> Iterator[SourcePublic]:
    return service.stream_sources(session, query)


add_exports(
    router, "/sources", page_query=SourceQuery, schema=SourcePublic, rows=_all_sources,
    name="Sources", plural="sources",
)  # fmt: skip


@router.get(
    "/sources/{source_id}",
    operation_id="getSource",
    summary="Get one source",
    response_model=SourcePublic,
    responses=item_responses("SourcePublic", "source"),
)
def get_source(
    source_id: SourceId,
    response: Response,
    session: ReadSessionDep,
    query: Annotated[AsOfQuery, Query()],
) -> SourcePublic:
    """The citation data of one source and how many metrics come from it."""
    source = service.get_source(session, source_id=source_id)
    response.headers["ETag"] = store.item_etag(session, KIND, source_id) or ""
    return source


@router.get(
    "/sources/{source_id}/text",
    operation_id="getSourceText",
    summary="Get the verbatim text of a source",
    response_class=PlainTextResponse,
    responses=plain_responses(
        "The text, UTF-8.", {"text/plain": {"schema": {"type": "string"}}}, 404
    ),
)
def get_source_text(
    source_id: SourceId, session: ReadSessionDep, query: Annotated[AsOfQuery, Query()]
) -> PlainTextResponse:
    """The source exactly as stored; every evidence span indexes into this text (code points)."""
    text = service.get_source_text(session, source_id=source_id)
    return PlainTextResponse(text, media_type="text/plain; charset=utf-8")
