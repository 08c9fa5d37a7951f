"""History endpoints: each record's revisions, the change feed and the releases."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.db import SessionDep
from api.history import service
from api.history.schemas import ChangesQuery, ReleasePublic, RevisionPublic
from api.pagination import Page, PageQuery, page
from api.routing import plain_responses
from api.writes import WRITABLE, Writable

router = APIRouter(tags=["history"])


def _page_responses(schema: str, what: str, *errors: int) -> Any:
    ref = {"$ref": f"#/components/schemas/Page_{schema}_"}
    return plain_responses(what, {"application/json": {"schema": ref}}, *errors)


@router.get(
    "/changes",
    operation_id="listChanges",
    summary="List changes across the dataset",
    response_model=Page[RevisionPublic],
    responses=_page_responses("RevisionPublic", "A page of revisions, oldest first."),
)
def list_changes(
    request: Request,
    response: Response,
    session: SessionDep,
    query: Annotated[ChangesQuery, Query()],
) -> Page[RevisionPublic]:
    """Every create, update and delete at or after `since`, oldest first."""
    items, total = service.changes(
        session, since=query.since, limit=query.limit, offset=query.offset, as_of=query.as_of
    )
    return page(request, response, items, total, query.limit, query.offset)


@router.get(
    "/releases",
    operation_id="listReleases",
    summary="List releases",
    response_model=Page[ReleasePublic],
    responses=_page_responses("ReleasePublic", "A page of releases, newest first."),
)
def list_releases(
    request: Request, response: Response, session: SessionDep, query: Annotated[PageQuery, Query()]
) -> Page[ReleasePublic]:
    """Each seed run or import that changed anything, with what it added, changed and removed."""
    items, total = service.releases(
        session, limit=query.limit, offset=query.offset, as_of=query.as_of
    )
    return page(request, response, items, total, query.limit, query.offset)


def _register(spec: Writable) -> None:
    path, kind, label = spec.path, spec.kind.name, spec.kind.label
    item_id_type: Any = spec.id_type()

    def list_revisions(
        item_id: item_id_type,
        request: Request,
        response: Response,
        session: SessionDep,
        query: Annotated[PageQuery, Query()],
    ) -> Page[RevisionPublic]:
        items, total = service.record_revisions(
            session, kind=kind, label=label, record_id=item_id,
            limit=query.limit, offset=query.offset, as_of=query.as_of,
        )  # fmt: skip
        return page(request, response, items, total, query.limit, query.offset)

    list_revisions.__doc__ = f"Every revision of one {label}, newest first; deletes included."
    name = "".join(word.capitalize() for word in label.split())
    router.add_api_route(
        f"{path}/{{{spec.id_param}}}/revisions",
        list_revisions,
        methods=["GET"],
        operation_id=f"list{name}Revisions",
        summary=f"List the revisions of a {label}",
        response_model=Page[RevisionPublic],
        responses=_page_responses("RevisionPublic", "A page of revisions, newest first.", 404),
    )


for _spec in WRITABLE:
    _register(_spec)
