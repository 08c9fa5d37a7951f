"""HTTP routes every kind of record shares: POST, PATCH (JSON merge patch) and DELETE with keys,
preconditions and idempotent retries, and each record's revisions. Generated from the kinds'
declarations: `createMetric` is `POST /v1/metrics`, `updateMetric` `PATCH /v1/metrics/{metric_id}`,
`deleteMetric` `DELETE /v1/metrics/{metric_id}`, `listMetricRevisions` its revisions; likewise for
every kind of `api.records.registry.KINDS`."""

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Annotated, Any, get_args

import orjson
from fastapi import Body, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError, create_model
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, col

from api import strict_json
from api.auth.deps import KeyFirst, KeyRequired
from api.auth.models import IdempotentResponse
from api.caching import matches_if_match, matches_if_none_match
from api.db import writer
from api.errors import (
    MAX_PROBLEM_ERRORS,
    NOT_UTF8,
    Conflict,
    InvalidInput,
    PreconditionFailed,
    PreconditionRequired,
    ProblemError,
    UnsupportedMediaType,
    describe,
    problem_responses,
)
from api.history import service as history_service
from api.history.schemas import RevisionPublic
from api.pagination import Page, PageQuery, page
from api.records import store, versions
from api.records.fields import Strict
from api.records.kinds import Kind
from api.records.reads import ReadSessionDep
from api.records.registry import KINDS
from api.records.store import Change, Stored
from api.records.validation import Check, Problem, check_record, prefetch_references
from api.routing import (
    collection_responses,
    header,
    no_query_parameters,
    v1_router,
)
from api.schemas import EXAMPLES

router = v1_router()


def get_write_session(request: Request) -> Iterator[Session]:
    """A session for one write request, whose transactions take the write lock; the handler
    commits."""
    with Session(writer(request.app.state.engine), info={"write": True}) as session:
        yield session


WriteSessionDep = Annotated[Session, Depends(get_write_session)]
# Serialisation failures and deadlocks are retried this many times before a 503.
ATTEMPTS = 4
TRANSIENT_SQLSTATES = {"40001", "40P01"}

# If-Match is required, but its absence is a 428 (once the key and the id have been checked),
# not the 422 of a parameter FastAPI finds missing: read as optional, declared as required.
IfMatch = Annotated[str | None, Header(include_in_schema=False)]
IF_MATCH_PARAMETER = {
    "name": "if-match",
    "in": "header",
    "required": True,
    "description": "The ETag of the version you are changing (from a GET), or `*`; without "
    "it, 428.",
    "schema": {"type": "string", "examples": ['"r1c284587901c3d053fefd91b55e2f9"']},
}
IfNoneMatch = Annotated[
    str | None,
    Header(
        description="Refuse the change (412) if the record's current ETag is among these, or, "
        "with `*`, if the record exists (RFC 9110 §13.1.2).",
        examples=['"r1c284587901c3d053fefd91b55e2f9"'],
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="Retrying a POST with the same key and body returns the first response and "
        "creates nothing more.",
        examples=["3f1c0c7e-8d0b-4c55-9a51-2a9b6cc0b0a4"],
    ),
]
WRITE_ERRORS = problem_responses(400, 401, 403, 406, 413, 414, 415, 422, 429, 500, 503)


async def json_body(request: Request) -> None:
    """A write's body is JSON (`application/json`, or a `+json` type such as
    `application/merge-patch+json`); a body declared as anything else is a 415, rather than a
    422 about a field. A body with no type at all is a 415 too; no body needs none. An object
    in it naming a member twice is a 422 naming the member."""
    declared = request.headers.get("content-type")
    if declared is None:
        length = request.headers.get("content-length")
        has_body = "transfer-encoding" in request.headers or (length not in (None, "0"))
        if not has_body:
            return
        declared = ""
    media = declared.split(";", 1)[0].strip().lower()
    is_json = media.startswith("application/") and (
        media.endswith("/json") or media.endswith("+json")
    )
    if not is_json:
        raise UnsupportedMediaType(
            f"A body of type {media or '(empty)'} cannot be read: send JSON "
            "(Content-Type: application/json)."
        )
    # JSON is UTF-8 (RFC 8259 8.1): a body declared in another charset would be misread.
    for parameter in declared.split(";")[1:]:
        name, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(
                f"A body in charset {charset or '(empty)'} cannot be read: JSON is UTF-8 "
                "(Content-Type: application/json; charset=utf-8, or no charset)."
            )
    # JSON between systems is UTF-8 (RFC 8259 8.1); Python's reader would also take UTF-16
    # and UTF-32, with or without a byte order mark, which no other reader of the API's
    # answers agrees to. (A UTF-8 byte order mark is ignored, as 8.1 allows.)
    if json.detect_encoding(await request.body()) not in ("utf-8", "utf-8-sig"):
        raise InvalidInput.many([ProblemError(in_="body", name="body", detail=NOT_UTF8)])
    # An object naming a member twice is ambiguous (RFC 8259: parsers differ on which one
    # counts; this one would keep the last), as is a number too long or too small to read:
    # refused, not guessed.
    try:
        _document, ambiguous = strict_json.read(await request.body())
    except (ValueError, RecursionError):
        return  # not JSON: the body's own reading says where
    if ambiguous:
        raise InvalidInput.many(
            [ProblemError(in_="body", name=name, detail=detail) for name, detail in ambiguous]
        )


def refusal(problems: list[Problem]) -> InvalidInput:
    """The 422 naming every problem of a body."""
    return InvalidInput.many(
        [ProblemError(in_="body", name=p.field, detail=p.detail) for p in problems]
    )


def validate(session: Session, kind: Kind, data: dict[str, Any], old: Stored | None) -> None:
    """Refuse (422, every problem at once) a record that does not hold in the dataset."""
    check = Check(session, KINDS, old=old.data if old else None)
    if old is None:
        prefetch_references(kind, [data], check)
    problems = check_record(kind, data, check)
    if problems:
        raise refusal(problems)


def _shape(kind: Kind, data: dict[str, Any]) -> dict[str, Any]:
    """`data` in the kind's record shape (canonical form), or a 422 naming every field."""
    try:
        return store.canonical(kind, data)
    except ValidationError as exc:
        found = exc.errors()
        raise InvalidInput.many(
            [
                describe({**error, "loc": ("body", *error["loc"])})
                for error in found[:MAX_PROBLEM_ERRORS]
            ],
            omitted=max(0, len(found) - MAX_PROBLEM_ERRORS),
        ) from None


def _transient(exc: DBAPIError) -> bool:
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return sqlstate in TRANSIENT_SQLSTATES or (
        isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)
    )


def in_transaction(session: Session, work: Callable[[], Response]) -> Response:
    """Run one write and commit it; retried, whole, after a deadlock or serialisation failure.
    Its response names the dataset version the write made (`Dataset-Version`), or, when it
    changed nothing (a replay, a patch to the same values), the version the data stands at:
    either way one that holds the write, for the writer's next `as_of` or `/v1/changes`."""
    for attempt in range(ATTEMPTS):
        try:
            response = work()
            taken = versions.taken(session)
            version = taken.number if taken is not None else versions.current(session)
            session.commit()
            response.headers["Dataset-Version"] = str(version)
            return response
        except DBAPIError as exc:
            session.rollback()
            if not _transient(exc) or attempt == ATTEMPTS - 1:
                raise
            time.sleep(0.005 * 2**attempt)
    raise AssertionError("unreachable")


def _item_response(
    session: Session, kind: Kind, data: dict[str, Any], version: int, status: int
) -> Response:
    """The written record as a GET of it would answer, built from what was written."""
    record_id = data["id"]
    public = kind.present(data) if kind.present else kind.get(session, record_id)
    headers = {"ETag": store.item_etag(session, kind, record_id, version=version) or ""}
    if status == 201:
        headers["Location"] = f"/v1{kind.path}/{record_id}"
    # orjson, as reads write JSON: a figure's text is the same in both (1e-7, not 1e-07).
    body = orjson.dumps(public.model_dump(mode="json"))
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def _precondition(
    session: Session, kind: Kind, record_id: str, if_match: str | None, if_none_match: str | None
) -> Stored:
    """The stored record, once If-Match names its current representation and If-None-Match,
    if given, does not (RFC 9110 §13.2.2: evaluated after If-Match; false is a 412)."""
    stored = store.require(session, kind, record_id)
    if if_match is None:
        raise PreconditionRequired(
            "Send If-Match with the ETag of the version you are changing (GET it first)."
        )
    current = store.item_etag(session, kind, record_id, version=stored.version)
    if current is None or not matches_if_match(if_match, current):
        raise PreconditionFailed(
            f"The {kind.label} {record_id!r} changed since that ETag; GET it again."
        )
    if if_none_match is not None and matches_if_none_match(if_none_match, current):
        raise PreconditionFailed(
            f"The {kind.label} {record_id!r} matches If-None-Match; nothing was changed."
        )
    return stored


def _nullable(annotation: Any) -> bool:
    return annotation is None or type(None) in get_args(annotation)


def _no_default(schema: dict[str, Any]) -> None:
    # Leaving a member out changes nothing; there is no default to document.
    schema.pop("default", None)


@cache
def patch_model(record: type[BaseModel]) -> type[BaseModel]:
    """The body of a PATCH of `record`: every member optional, nested objects patched member by
    member, and null allowed only where null is a value of the member (RFC 7396 merge patch)."""
    fields: dict[str, Any] = {}
    for name, field in record.model_fields.items():
        annotation: Any = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = patch_model(annotation)
        elif field.metadata:
            annotation = Annotated[annotation, *field.metadata]
        fields[name] = (
            annotation,
            Field(default=None, description=field.description, json_schema_extra=_no_default),
        )
    base = record.__name__.removesuffix("Record").removesuffix("In")
    model: type[BaseModel] = create_model(
        f"{base}Patch",
        __base__=Strict,  # unknown members refused, and past 50 counted, not listed
        __doc__=f"A JSON merge patch (RFC 7396) of a {base}: the members to change.",
        **fields,
    )
    return model


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _request_hash(path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{path}\n{canonical}".encode()).hexdigest()


def _forget_expired(session: Session, retention_hours: float) -> None:
    """Delete the first responses kept longer than the retention (IDEMPOTENCY_RETENTION_HOURS):
    a retry after that creates anew, and the table stays as small as a day's POSTs."""
    cutoff = datetime.now(UTC) - timedelta(hours=retention_hours)
    session.execute(delete(IdempotentResponse).where(col(IdempotentResponse.created_at) < cutoff))


def _replay(session: Session, actor: str, key: str, request_hash: str) -> Response | None:
    """The first response to a POST retried with the same Idempotency-Key, if there was one."""
    earlier = session.execute(
        select(IdempotentResponse).where(
            col(IdempotentResponse.key_name) == actor,
            col(IdempotentResponse.idempotency_key) == key,
        )
    ).scalar_one_or_none()
    if earlier is None:
        return None
    if earlier.request_hash != request_hash:
        # Named as the OpenAPI document and a malformed key's 422 name the parameter.
        raise InvalidInput("header", "idempotency-key", "already used for a different request")
    headers = {"Idempotent-Replayed": "true"}
    if earlier.location:
        headers["Location"] = earlier.location
    if earlier.etag:
        headers["ETag"] = earlier.etag
    return Response(
        earlier.body, status_code=earlier.status, media_type="application/json", headers=headers
    )


def _register(kind: Kind) -> None:
    label = kind.label
    name = "".join(word.capitalize() for word in label.split())
    actor_dep = Depends(KeyRequired(kind.scope))
    record_type: Any = kind.record
    patch_type: Any = patch_model(kind.record)
    item_id_type: Any = Annotated[
        str,
        Path(
            alias=kind.id_param,
            description=f"The {label}'s id.",
            examples=[EXAMPLES[kind.public.__name__]["id"]],
        ),
    ]

    def create(
        request: Request,
        session: WriteSessionDep,
        body: Annotated[record_type, Body()],
        actor: Annotated[str, actor_dep],
        _json: Annotated[None, Depends(json_body)],
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        data = body.model_dump(mode="json")
        request_hash = _request_hash(request.url.path, data)

        def work() -> Response:
            versions.lock(session)
            if idempotency_key is not None:
                _forget_expired(session, request.app.state.settings.idempotency_retention_hours)
                replayed = _replay(session, actor, idempotency_key, request_hash)
                if replayed is not None:
                    return replayed
            if store.read(session, kind, data["id"]) is not None:
                raise Conflict(f"A {label} {data['id']!r} exists already; PATCH it instead.")
            validate(session, kind, data, None)
            revisions = store.apply(session, kind, [Change(data["id"], None, data)], actor=actor)
            response = _item_response(session, kind, data, revisions[0].version, 201)
            if idempotency_key is not None:
                session.execute(
                    insert(IdempotentResponse).values(
                        key_name=actor,
                        idempotency_key=idempotency_key,
                        request_hash=request_hash,
                        status=201,
                        body=bytes(response.body).decode(),
                        location=response.headers.get("location"),
                        etag=response.headers.get("etag"),
                        created_at=datetime.now(UTC),
                    )
                )
            return response

        return in_transaction(session, work)

    def update(
        item_id: item_id_type,
        session: WriteSessionDep,
        body: Annotated[patch_type, Body()],
        actor: Annotated[str, actor_dep],
        _json: Annotated[None, Depends(json_body)],
        if_match: IfMatch = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        patch = body.model_dump(mode="json", exclude_unset=True)

        def work() -> Response:
            versions.lock(session)
            stored = _precondition(session, kind, item_id, if_match, if_none_match)
            merged = merge_patch(stored.data, patch)
            # Every member of a record always exists: a null in the patch sets it to null.
            for field, value in patch.items():
                if value is None and field in kind.record.model_fields:
                    merged[field] = None
            if merged.get("id") != item_id:
                raise InvalidInput("body", "id", "the id of a record cannot change")
            data = _shape(kind, merged)
            validate(session, kind, data, stored)
            revisions = store.apply(session, kind, [Change(item_id, stored, data)], actor=actor)
            version = revisions[0].version if revisions else stored.version
            return _item_response(session, kind, data, version, 200)

        return in_transaction(session, work)

    def remove(
        item_id: item_id_type,
        session: WriteSessionDep,
        actor: Annotated[str, actor_dep],
        if_match: IfMatch = None,
        if_none_match: IfNoneMatch = None,
    ) -> Response:
        def work() -> Response:
            versions.lock(session)
            stored = _precondition(session, kind, item_id, if_match, if_none_match)
            store.remove_checked(session, KINDS.values(), kind, stored, actor=actor)
            return Response(status_code=204)

        return in_transaction(session, work)

    def list_revisions(
        item_id: item_id_type,
        request: Request,
        response: Response,
        session: ReadSessionDep,
        query: Annotated[PageQuery, Query()],
    ) -> Page[RevisionPublic]:
        items, total = history_service.record_revisions(
            session, kind=kind.name, label=label, record_id=item_id,
            limit=query.limit, offset=query.offset, as_of=query.as_of,
        )  # fmt: skip
        return page(request, response, items, total, query.limit, query.offset)

    create.__doc__ = f"Add a {label}; validated like the seed files (evidence must be exact)."
    update.__doc__ = f"Change a {label} with a JSON merge patch (RFC 7396); needs If-Match."
    remove.__doc__ = f"Delete a {label} (its history stays, ending in a tombstone); needs If-Match."
    list_revisions.__doc__ = f"Every revision of one {label}, newest first; deletes included."
    item_path = f"{kind.path}/{{{kind.id_param}}}"
    schema_ref = {"$ref": f"#/components/schemas/{kind.public.__name__}"}
    success = {"content": {"application/json": {"schema": schema_ref}}}
    router.add_api_route(
        kind.path,
        create,
        methods=["POST"],
        route_class_override=KeyFirst,  # the key before anything else
        dependencies=[Depends(no_query_parameters)],
        status_code=201,
        operation_id=f"create{name}",
        summary=f"Create a {label}",
        tags=["writes"],
        responses={
            201: {
                "description": "Created.",
                **success,
                "headers": {
                    name: header(name)
                    for name in ("ETag", "Location", "Idempotent-Replayed", "Dataset-Version")
                },
            },
            **problem_responses(409),
            **WRITE_ERRORS,
        },
    )
    router.add_api_route(
        item_path,
        update,
        methods=["PATCH"],
        route_class_override=KeyFirst,  # the key before anything else
        dependencies=[Depends(no_query_parameters)],
        operation_id=f"update{name}",
        summary=f"Update a {label}",
        tags=["writes"],
        responses={
            200: {
                "description": "Updated.",
                **success,
                "headers": {name: header(name) for name in ("ETag", "Dataset-Version")},
            },
            **problem_responses(404, 409, 412, 428),
            **WRITE_ERRORS,
        },
        openapi_extra={
            "parameters": [IF_MATCH_PARAMETER],
            "requestBody": {
                "required": True,
                "description": "A JSON merge patch (RFC 7396) of the record's fields.",
                "content": {
                    media_type: {"schema": {"$ref": f"#/components/schemas/{patch_type.__name__}"}}
                    for media_type in ("application/merge-patch+json", "application/json")
                },
            },
        },
    )
    router.add_api_route(
        item_path,
        remove,
        methods=["DELETE"],
        route_class_override=KeyFirst,  # the key before anything else
        dependencies=[Depends(no_query_parameters)],
        status_code=204,
        operation_id=f"delete{name}",
        summary=f"Delete a {label}",
        tags=["writes"],
        responses={
            204: {
                "description": "Deleted.",
                "headers": {"Dataset-Version": header("Dataset-Version")},
            },
            **problem_responses(404, 409, 412, 428),
            **WRITE_ERRORS,
        },
        openapi_extra={"parameters": [IF_MATCH_PARAMETER]},
    )
    router.add_api_route(
        f"{item_path}/revisions",
        list_revisions,
        methods=["GET"],
        operation_id=f"list{name}Revisions",
        summary=f"List the revisions of a {label}",
        response_model=Page[RevisionPublic],
        tags=["history"],
        responses=collection_responses("RevisionPublic", "A page of revisions, newest first.", 404),
    )


for _kind in KINDS.values():
    _register(_kind)
