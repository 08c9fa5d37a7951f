"""Write endpoints of every kind: POST, PATCH (JSON merge patch) and DELETE, with keys,
preconditions, idempotent retries and history."""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlmodel import Session, col

from api import records
from api.auth.deps import requires
from api.auth.models import IdempotentResponse
from api.caching import matches_if_match
from api.db import WriteSessionDep
from api.entities import service as entities_service
from api.entities.router import KINDS as ENTITY_KINDS
from api.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    ProblemError,
    problem_responses,
)
from api.metrics import service as metrics_service
from api.metrics.schemas import MetricPublic
from api.schemas import EXAMPLES
from api.sources import service as sources_service
from api.sources.schemas import SourcePublic

router = APIRouter()

IfMatch = Annotated[
    str | None,
    Header(
        description="The ETag of the version you are changing (from a GET); required.",
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


@dataclass(frozen=True)
class Writable:
    """How one kind of record is written over HTTP."""

    kind: records.Kind
    path: str
    scope: str
    public: Callable[[Session, str], BaseModel]
    schema: type[BaseModel]
    id_param: str = "item_id"

    def id_type(self) -> Any:
        """The path parameter naming a record, spelt as the item's GET route spells it."""
        return Annotated[
            str,
            Path(
                alias=self.id_param,
                description=f"The {self.kind.label}'s id.",
                examples=[EXAMPLES[self.schema.__name__]["id"]],
            ),
        ]


def _metric(session: Session, record_id: str) -> BaseModel:
    return metrics_service.get_metric(session, metric_id=record_id)


def _source(session: Session, record_id: str) -> BaseModel:
    return sources_service.get_source(session, source_id=record_id)


def _entity_getter(model: Any, schema: Any, label: str) -> Callable[[Session, str], BaseModel]:
    def get(session: Session, record_id: str) -> BaseModel:
        item: BaseModel = entities_service.get_entity(
            session, model=model, schema=schema, entity_id=record_id, label=label
        )
        return item

    return get


WRITABLE = [
    Writable(records.KINDS["metric"], "/metrics", "write", _metric, MetricPublic, "metric_id"),
    *(
        Writable(
            next(k for k in records.KINDS.values() if k.model is kind.model),
            kind.path,
            "write",
            _entity_getter(kind.model, kind.schema, kind.singular),
            kind.schema,
        )
        for kind in ENTITY_KINDS
    ),
    Writable(records.KINDS["source"], "/sources", "admin", _source, SourcePublic, "source_id"),
]
WRITE_ERRORS = problem_responses(400, 401, 403, 406, 413, 422, 429, 500, 503)


def _item_response(
    session: Session, spec: Writable, record_id: str, status: int, location: bool = False
) -> JSONResponse:
    body = spec.public(session, record_id).model_dump(mode="json")
    headers = {"ETag": records.item_etag(session, spec.kind, record_id) or ""}
    if location:
        headers["Location"] = f"/v1{spec.path}/{record_id}"
    return JSONResponse(body, status_code=status, headers=headers)


def _validated(spec: Writable, data: dict[str, Any]) -> dict[str, Any]:
    try:
        record = spec.kind.record.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput.many(
            [
                ProblemError(
                    in_="body",
                    name=".".join(str(part) for part in error["loc"]) or "(body)",
                    detail="Unknown or server-owned field."
                    if error["type"] == "extra_forbidden"
                    else error["msg"].removeprefix("Value error, "),
                )
                for error in exc.errors()
            ]
        ) from None
    return records.normalise(spec.kind, record)


def _precondition(session: Session, spec: Writable, record_id: str, if_match: str | None) -> int:
    """The stored version, once If-Match names the current representation."""
    stored = records.read(session, spec.kind, record_id)
    if stored is None:
        raise NotFound(f"There is no {spec.kind.label} {record_id!r}.")
    if if_match is None:
        raise PreconditionRequired(
            "Send If-Match with the ETag of the version you are changing (GET it first)."
        )
    current = records.item_etag(session, spec.kind, record_id)
    if current is None or not matches_if_match(if_match, current):
        raise PreconditionFailed(
            f"The {spec.kind.label} {record_id!r} changed since that ETag; GET it again."
        )
    return stored.version


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


def _register(spec: Writable) -> None:
    kind, label = spec.kind, spec.kind.label
    name = "".join(word.capitalize() for word in label.split())
    actor_dep = Depends(requires(spec.scope))
    record_type: Any = kind.record
    item_id_type: Any = spec.id_type()

    def create(
        request: Request,
        session: WriteSessionDep,
        body: Annotated[record_type, Body()],
        actor: Annotated[str, actor_dep],
        idempotency_key: IdempotencyKey = None,
    ) -> Response:
        request_hash = _request_hash(request.url.path, body.model_dump(mode="json"))
        if idempotency_key is not None:
            earlier = session.execute(
                select(IdempotentResponse).where(
                    col(IdempotentResponse.key_name) == actor,
                    col(IdempotentResponse.idempotency_key) == idempotency_key,
                )
            ).scalar_one_or_none()
            if earlier is not None:
                if earlier.request_hash != request_hash:
                    raise InvalidInput(
                        "header", "Idempotency-Key", "already used for a different request"
                    )
                headers = {"Idempotent-Replayed": "true"}
                if earlier.location:
                    headers["Location"] = earlier.location
                if earlier.etag:
                    headers["ETag"] = earlier.etag
                return Response(
                    earlier.body, status_code=earlier.status, media_type="application/json",
                    headers=headers,
                )  # fmt: skip
        data = records.normalise(kind, body)
        if records.read(session, kind, data["id"]) is not None:
            raise Conflict(f"A {label} {data['id']!r} exists already; PATCH it instead.")
        records.check(session, kind, data)
        records.write(session, kind, data, actor=actor)
        response = _item_response(session, spec, data["id"], 201, location=True)
        if idempotency_key is not None:
            session.add(
                IdempotentResponse(
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
        session.commit()
        return response

    def update(
        item_id: item_id_type,
        session: WriteSessionDep,
        patch: Annotated[dict[str, Any], Body()],
        actor: Annotated[str, actor_dep],
        if_match: IfMatch = None,
    ) -> Response:
        version = _precondition(session, spec, item_id, if_match)
        stored = records.read(session, kind, item_id)
        assert stored is not None
        merged = merge_patch(stored.data, patch)
        # Every member of a record always exists: a null in the patch sets the field to null.
        for field, value in patch.items():
            if value is None and field in kind.record.model_fields:
                merged[field] = None
        if merged.get("id") != item_id:
            raise InvalidInput("body", "id", "the id of a record cannot change")
        data = _validated(spec, merged)
        records.check(session, kind, data)
        records.write(session, kind, data, actor=actor, expected_version=version)
        response = _item_response(session, spec, item_id, 200)
        session.commit()
        return response

    def remove(
        item_id: item_id_type,
        session: WriteSessionDep,
        actor: Annotated[str, actor_dep],
        if_match: IfMatch = None,
    ) -> Response:
        version = _precondition(session, spec, item_id, if_match)
        records.remove(session, kind, item_id, actor=actor, expected_version=version)
        session.commit()
        return Response(status_code=204)

    create.__doc__ = f"Add a {label}; validated like the seed files (evidence must be exact)."
    update.__doc__ = f"Change a {label} with a JSON merge patch (RFC 7396); needs If-Match."
    remove.__doc__ = f"Delete a {label} (its history stays, ending in a tombstone); needs If-Match."
    schema_ref = {"$ref": f"#/components/schemas/{spec.schema.__name__}"}
    success = {"content": {"application/json": {"schema": schema_ref}}}
    router.add_api_route(
        spec.path,
        create,
        methods=["POST"],
        status_code=201,
        operation_id=f"create{name}",
        summary=f"Create a {label}",
        tags=["writes"],
        responses={
            201: {"description": "Created.", **success},
            **problem_responses(409),
            **WRITE_ERRORS,
        },
    )
    router.add_api_route(
        f"{spec.path}/{{{spec.id_param}}}",
        update,
        methods=["PATCH"],
        operation_id=f"update{name}",
        summary=f"Update a {label}",
        tags=["writes"],
        responses={
            200: {"description": "Updated.", **success},
            **problem_responses(404, 412, 428),
            **WRITE_ERRORS,
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "A JSON merge patch (RFC 7396) of the record's fields.",
                "content": {
                    "application/merge-patch+json": {"schema": {"type": "object"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            }
        },
    )
    router.add_api_route(
        f"{spec.path}/{{{spec.id_param}}}",
        remove,
        methods=["DELETE"],
        status_code=204,
        operation_id=f"delete{name}",
        summary=f"Delete a {label}",
        tags=["writes"],
        responses={
            204: {"description": "Deleted."},
            **problem_responses(404, 409, 412, 428),
            **WRITE_ERRORS,
        },
    )


for _spec in WRITABLE:
    _register(_spec)
