"""`GET /v1/dataset.zip`: the whole dataset as one Frictionless Data Package.

The archive holds `datapackage.json` (a Table Schema per resource: field types, enums,
descriptions, primary and foreign keys; the sources and how to cite them; the license
situation), one CSV per collection, and each source's verbatim text under `sources/`. With
`as_of`, everything is the data as it stood at that moment.
"""

import csv
import io
import json
import types
import typing
import zipfile
from collections.abc import Iterable
from datetime import date, datetime
from enum import Enum
from typing import Annotated, Any

from fastapi import Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api import citations
from api.cells import FORMULA_STARTS
from api.entities import service as entity_service
from api.entities.kind import ENTITIES
from api.entities.schemas import EntityQuery
from api.metrics import service as metric_service
from api.metrics.schemas import MetricPublic, MetricQuery
from api.records import asof
from api.records.reads import ReadSessionDep
from api.routing import export_responses, v1_router
from api.schemas import AS_OF_DESCRIPTION, Evidence, Timestamp, figure_text
from api.sources import service as source_service
from api.sources.schemas import SourcePublic, SourceQuery

router = v1_router(tags=["dataset"])

PACKAGE_NAME = "cdmo-metrics"
_EVIDENCE = [
    ("evidence_quote", "string", "The sentence or clause that states it, verbatim."),
    ("evidence_start", "integer", "Offset of its first character in the source text "
     "(Unicode code points)."),
    ("evidence_end", "integer", "Offset just past its last character."),
]  # fmt: skip
_DESCRIPTIONS = {
    "value": "The point figure, in the unit of `unit`; empty when only a range is given.",
    "value_low": "Low end of the figure, in the unit of `unit`.",
    "value_high": "High end of the figure, in the unit of `unit`.",
    "text_path": "The source's verbatim text in this package; evidence offsets index into it.",
}


class DatasetQuery(BaseModel):
    """Parameters of the bulk download."""

    model_config = ConfigDict(extra="forbid")

    as_of: Timestamp | None = Field(
        default=None, description=AS_OF_DESCRIPTION, examples=["2026-11-26T00:00:00Z"]
    )


def _field_type(annotation: Any) -> tuple[str, list[str] | None, bool]:
    """(Table Schema type, enum values or None, required) of a pydantic annotation."""
    required = True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        required = len(options) == len(typing.get_args(annotation))
        annotation = options[0]
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is list:
        return "array", None, required
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "string", [str(member.value) for member in annotation], required
    names = {bool: "boolean", int: "integer", float: "number", date: "date", datetime: "datetime"}
    return names.get(annotation, "string"), None, required


def _schema(model: type[BaseModel], *, drop: Iterable[str] = ()) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = []
    for name, info in model.model_fields.items():
        if name in drop:
            continue
        if info.annotation is Evidence:
            for column, kind, text in _EVIDENCE:
                fields.append(
                    {"name": column, "type": kind, "description": text,
                     "constraints": {"required": True}}
                )  # fmt: skip
            continue
        kind, enum, required = _field_type(info.annotation)
        field: dict[str, Any] = {"name": name, "type": kind}
        description = _DESCRIPTIONS.get(name) or info.description
        if kind == "array":
            description = (description or "") + " A JSON array."
        if description:
            field["description"] = description.strip()
        constraints: dict[str, Any] = {"required": required}
        if enum:
            constraints["enum"] = enum
        if name == "id":
            constraints["unique"] = True
        field["constraints"] = constraints
        fields.append(field)
    return fields


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return figure_text(value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, list):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, date | datetime):
        return value.isoformat()
    elif isinstance(value, int):
        return str(value)
    else:
        text = str(value)
    # As the /v1 CSV exports write it: text a spreadsheet would run as a formula is prefixed.
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv(fields: list[dict[str, Any]], rows: Iterable[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    names = [field["name"] for field in fields]
    writer.writerow(names)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in names])
    return out.getvalue().encode("utf-8")


def _flat(item: BaseModel) -> dict[str, Any]:
    row = dict(item)
    evidence = row.pop("evidence", None)
    if isinstance(evidence, Evidence):
        row |= {"evidence_quote": evidence.quote, "evidence_start": evidence.start,
                "evidence_end": evidence.end}  # fmt: skip
    return row


def _resource(
    name: str, title: str, description: str, fields: list[dict[str, Any]],
    foreign_keys: list[dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    return {
        "name": name,
        "title": title,
        "description": description,
        "path": f"{name}.csv",
        "profile": "tabular-data-resource",
        "format": "csv",
        "mediatype": "text/csv",
        "encoding": "utf-8",
        "schema": {"fields": fields, "primaryKey": ["id"], "foreignKeys": foreign_keys},
    }


def _to_sources(field: str) -> dict[str, Any]:
    return {"fields": [field], "reference": {"resource": "sources", "fields": ["id"]}}


def build(session: Session) -> bytes:
    """The package as a ZIP archive, at the version the session reads."""
    sources = list(source_service.stream_sources(session, SourceQuery()))
    texts = {s.id: source_service.get_source_text(session, source_id=s.id) for s in sources}
    metrics = list(metric_service.stream_metrics(session, query=MetricQuery()))
    files: dict[str, bytes] = {}
    resources: list[dict[str, Any]] = []

    source_fields = _schema(SourcePublic, drop=("text_url",))
    source_fields.append(
        {"name": "text_path", "type": "string", "description": _DESCRIPTIONS["text_path"],
         "constraints": {"required": True}}
    )  # fmt: skip
    files["sources.csv"] = _csv(
        source_fields,
        (_flat(s) | {"text_path": f"sources/{s.id}.txt"} for s in sources),
    )
    resources.append(
        _resource("sources", "Sources", "The documents the figures come from.", source_fields, [])
    )
    for source_id, text in texts.items():
        files[f"sources/{source_id}.txt"] = text.encode("utf-8")
    text_resources = [
        {"name": f"text-{source_id}", "title": f"Text of {source_id}",
         "description": "The source exactly as stored; evidence offsets index into it "
         "(Unicode code points).",
         "path": f"sources/{source_id}.txt", "type": "text", "format": "txt",
         "mediatype": "text/plain", "encoding": "utf-8"}
        for source_id in texts
    ]  # fmt: skip

    metric_fields = _schema(MetricPublic)
    files["metrics.csv"] = _csv(metric_fields, map(_flat, metrics))
    resources.append(
        _resource(
            "metrics", "Metrics",
            "One quantitative statement of a source each, with the span that states it.",
            metric_fields,
            [_to_sources("source_id"),
             {"fields": ["baseline_id"], "reference": {"resource": "", "fields": ["id"]}}],
        )
    )  # fmt: skip

    for kind in ENTITIES:
        name = kind.section
        model: Any = kind.model
        public: Any = kind.public
        order_by: list[Any] = [kind.table.c.source_id, kind.table.c[kind.order_by]]
        items = list(
            entity_service.stream_entities(
                session, model=model, schema=public, query=EntityQuery(), order_by=order_by
            )
        )
        fields = _schema(kind.public)
        files[f"{name}.csv"] = _csv(fields, map(_flat, items))
        title = kind.plural[0].upper() + kind.plural[1:]
        description = (kind.public.__doc__ or title).strip()
        resources.append(_resource(name, title, description, fields, [_to_sources("source_id")]))
    resources.extend(text_resources)

    package = {
        "name": PACKAGE_NAME,
        "title": "CDMO Metrics",
        "description": "Sourced industry metrics on CDMOs for personalised cancer medicine; "
        "every figure carries the verbatim span of its source that states it. In the CSV "
        "files, a text cell that begins with =, +, -, @, a tab or a carriage return has a "
        "leading ' added, so that a spreadsheet does not run it as a formula: drop it to get "
        "the exact text (the texts under sources/ are never altered).",
        "dataset_version": asof.answered_at(session),
        "licenses": [
            {
                "name": "other-closed",
                "title": "No license is stated by the source: the quotes and the texts under "
                "sources/ are the publishers' own, reproduced as quotations with attribution; "
                "cite the source (see `citation`).",
            }
        ],
        "sources": [{"title": s.title, **({"path": s.url} if s.url else {})} for s in sources],
        "citation": [citations.styled(citations.CitationStyle.apa, s).strip() for s in sources],
        "resources": resources,
    }
    files = {"datapackage.json": json.dumps(package, indent=2, ensure_ascii=False).encode()} | files
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path, content in files.items():
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zipped.writestr(info, content)
    return archive.getvalue()


@router.get(
    "/dataset.zip",
    operation_id="getDatasetPackage",
    summary="Download the whole dataset",
    response_class=Response,
    responses=export_responses(
        "application/zip",
        "A ZIP archive: a Frictionless Data Package (datapackage.json, one CSV per "
        "collection, the source texts).",
        {"type": "string", "format": "binary"},
    ),
)
def get_dataset(session: ReadSessionDep, query: Annotated[DatasetQuery, Query()]) -> Response:
    """Every collection as CSV with its Table Schema, and the source texts, in one archive."""
    return Response(
        build(session),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{PACKAGE_NAME}.zip"'},
    )
