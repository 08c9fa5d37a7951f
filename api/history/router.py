"""History endpoints: each record's revisions, the change feed and the releases."""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Query, Request, Response
from sqlmodel import Session

from api.downloads import add_exports
from api.exports import Chunk, ChunkReader, Format, written
from api.history import service
from api.history.schemas import ChangesQuery, ReleasePublic, RevisionPublic
from api.pagination import Page, PageQuery, keyed_page, page
from api.records.reads import ReadSessionDep
from api.routing import collection_responses, v1_router

router = v1_router(tags=["history"])


@router.get(
    "/changes",
    operation_id="listChanges",
    summary="List changes across the dataset",
    response_model=Page[RevisionPublic],
    responses=collection_responses("RevisionPublic", "A page of revisions, oldest first."),
)
def list_changes(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    query: Annotated[ChangesQuery, Query()],
) -> Page[RevisionPublic]:
    """Every create, update and delete at or after `since`, oldest first (by dataset version)."""
    after = None if query.after is None else service.feed_position(query.after)
    items, total, more = service.changes(
        session, since=query.since, limit=query.limit, offset=query.offset, as_of=query.as_of,
        after=after, counted=query.count == "exact",
    )  # fmt: skip
    following = None
    if more:
        following = [("limit", str(query.limit)), ("after", service.feed_cursor(items[-1]))]
    return keyed_page(request, response, items, total, query.limit, query.offset, following)


def _changes_reader(query: ChangesQuery, fmt: Format) -> ChunkReader:
    """The chunk reader of an export of the change feed (api.exports): revisions in the feed's
    order, keyed by (dataset version, id), of the dataset versions up to the export's."""

    def read(session: Session, after: list[Any] | None, limit: int) -> Chunk:
        revisions = service.changes_after(
            session, since=query.since, as_of=query.as_of,
            version=session.info["dataset_version"], after=after, limit=limit,
        )  # fmt: skip
        more = len(revisions) > limit
        revisions = revisions[:limit]
        last = [revisions[-1].dataset_version, revisions[-1].id] if more else None
        return Chunk([], last, written(fmt, RevisionPublic, revisions))

    return read


add_exports(
    router, "/changes", page_query=ChangesQuery, schema=RevisionPublic, chunks=_changes_reader,
    name="Changes", plural="changes",
)  # fmt: skip


@router.get(
    "/releases",
    operation_id="listReleases",
    summary="List releases",
    response_model=Page[ReleasePublic],
    responses=collection_responses("ReleasePublic", "A page of releases, newest first."),
)
def list_releases(
    request: Request,
    response: Response,
    session: ReadSessionDep,
    query: Annotated[PageQuery, Query()],
) -> Page[ReleasePublic]:
    """Each seed run or import that changed anything, with what it added, changed and removed."""
    items, total = service.releases(
        session, limit=query.limit, offset=query.offset, as_of=query.as_of
    )
    return page(request, response, items, total, query.limit, query.offset)


def _release_rows(session: Session, query: PageQuery) -> Iterator[ReleasePublic]:
    return service.stream_releases(session, as_of=query.as_of)


add_exports(
    router, "/releases", page_query=PageQuery, schema=ReleasePublic, rows=_release_rows,
    name="Releases", plural="releases",
)  # fmt: skip
