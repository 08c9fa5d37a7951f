"""Source endpoints: the documents, their verbatim text and their citations."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse

from api import citations
from api.citations import CitationQuery, ItemQuery, TextQuery
from api.exports import Format, choose_format, export, export_etag
from api.pagination import Page, page
from api.records import asof
from api.records.asof import ReadSessionDep
from api.routing import (
    collection_responses,
    item_responses,
    plain_responses,
)
from api.sources import service
from api.sources.kind import SOURCE as KIND
from api.sources.schemas import SourcePublic, SourceQuery

router = APIRouter(tags=["sources"])
SourceId = Annotated[
    str, Path(description="The source's id.", examples=["coreychem-future-of-cdmos-2026"])
]


@router.get(
    "/sources",
    operation_id="listSources",
    summary="List sources",
    response_model=Page[SourcePublic],
    responses=collection_responses("SourcePublic", "sources"),
)
def list_sources(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    query: Annotated[SourceQuery, Query()],
) -> Any:
    """The documents the dataset's figures come from."""
    fmt = choose_format(request, query.format)
    if fmt is Format.json:
        items, total = service.list_sources(session, query=query)
        return page(request, response, items, total, query.limit, query.offset)
    etag = export_etag(asof.answered_at(session), request, fmt)
    return export(fmt, SourcePublic, service.stream_sources(session, query), "sources", etag)


@router.get(
    "/sources/{source_id}",
    operation_id="getSource",
    summary="Get one source",
    response_model=SourcePublic,
    responses=item_responses("SourcePublic", "source"),
)
def get_source(
    source_id: SourceId,
    request: Request,
    response: Response,
    session: ReadSessionDep,
    query: Annotated[ItemQuery, Query()],
) -> Any:
    """The citation data of one source and how many metrics come from it."""
    source = service.get_source(session, source_id=source_id)
    return citations.item_or_citation(request, response, session, KIND, source, query.cite)


@router.get(
    "/sources/{source_id}/citation",
    operation_id="getSourceCitation",
    summary="Cite a source",
    response_class=PlainTextResponse,
    responses=plain_responses("The citation.", citations.citation_content(), 404),
)
def get_source_citation(
    source_id: SourceId,
    request: Request,
    session: ReadSessionDep,
    query: Annotated[CitationQuery, Query()],
) -> Response:
    """The source's citation in APA (text), BibTeX or CSL-JSON."""
    source = service.get_source(session, source_id=source_id)
    return citations.respond(request, query.style, source)


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
    source_id: SourceId, session: ReadSessionDep, query: Annotated[TextQuery, Query()]
) -> PlainTextResponse:
    """The source exactly as stored; every evidence span indexes into this text (code points)."""
    text = service.get_source_text(session, source_id=source_id)
    return PlainTextResponse(text, media_type="text/plain; charset=utf-8")
