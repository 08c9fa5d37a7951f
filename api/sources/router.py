"""Source endpoints: the documents, and each one's verbatim text."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse

from api.db import SessionDep
from api.pagination import Page, PageQuery, page
from api.routing import COMMON_ERRORS, ITEM_ERRORS, no_query_parameters
from api.sources import service
from api.sources.schemas import SourcePublic

router = APIRouter(tags=["sources"])


@router.get(
    "/sources",
    operation_id="listSources",
    summary="List sources",
    response_model=Page[SourcePublic],
    responses=COMMON_ERRORS,
)
def list_sources(
    request: Request, response: Response, session: SessionDep, query: Annotated[PageQuery, Query()]
) -> Page[SourcePublic]:
    """The documents the dataset's figures come from."""
    items, total = service.list_sources(session, query=query)
    return page(request, response, items, total, query.limit, query.offset)


@router.get(
    "/sources/{source_id}",
    operation_id="getSource",
    summary="Get one source",
    response_model=SourcePublic,
    responses=ITEM_ERRORS,
    dependencies=[Depends(no_query_parameters)],
)
def get_source(source_id: str, session: SessionDep) -> SourcePublic:
    """The citation data of one source and how many metrics come from it."""
    return service.get_source(session, source_id=source_id)


@router.get(
    "/sources/{source_id}/text",
    operation_id="getSourceText",
    summary="Get the verbatim text of a source",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **ITEM_ERRORS,
    },
    dependencies=[Depends(no_query_parameters)],
)
def get_source_text(source_id: str, session: SessionDep) -> PlainTextResponse:
    """The source exactly as stored; every evidence span indexes into this text (code points)."""
    text = service.get_source_text(session, source_id=source_id)
    return PlainTextResponse(text, media_type="text/plain; charset=utf-8")
