"""Export operations: `GET /v1/<collection>.csv` and `.ndjson`, the whole filtered, sorted
collection, each an operation of its own with exactly its media type (`exportMetricsCsv`,
`exportMetricsNdjson`, ...)."""

from collections.abc import Callable, Iterable
from enum import Enum
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from sqlmodel import Session

from api.exports import (
    MEDIA_TYPES,
    ChunkReader,
    Format,
    KeyedReader,
    columns,
    export,
    export_chunks,
    export_etag,
)
from api.records import asof
from api.records.reads import ReadSessionDep
from api.routing import export_responses
from api.schemas import QueryBoolean

# The collection's page parameters that an export, always whole, does not take.
PAGING = ("limit", "offset")
BOM_DESCRIPTION = (
    "Start the file with a UTF-8 byte order mark, by which Excel recognises UTF-8 (without "
    "it, an en dash shows as mojibake)."
)


@cache  # one model per collection parameters and format: the category views share theirs
def export_query(page_query: type[BaseModel], fmt: Format) -> type[BaseModel]:
    """The parameters of `page_query` (filters, sort, as_of) without paging; CSV adds `bom`."""
    fields: dict[str, Any] = {
        name: (field.annotation, field)
        for name, field in page_query.model_fields.items()
        if name not in PAGING
    }
    if fmt is Format.csv:
        fields["bom"] = (
            Annotated[bool, QueryBoolean],
            Field(default=False, description=BOM_DESCRIPTION, examples=[True]),
        )
    name = f"{page_query.__name__.removesuffix('Query')}{fmt.value.capitalize()}Query"
    model: type[BaseModel] = create_model(
        name, __config__=ConfigDict(extra="forbid"), __doc__=f"Parameters of a {fmt} export.",
        **fields,
    )  # fmt: skip
    return model


def _selection(page_query: type[BaseModel], query: BaseModel) -> Any:
    """`query` as the collection's own parameters (the first page, which the export ignores)."""
    try:
        return page_query.model_validate(query.model_dump(exclude={"bom"}, exclude_unset=True))
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


def _csv_schema(schema: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "string",
        "description": "RFC 4180 CSV, a header row then one row per item; columns: "
        + ", ".join(columns(schema))
        + ". Nested objects are spread into `<field>_<subfield>` columns, lists joined by `;`.",
    }


def _ndjson_schema(schema: type[BaseModel]) -> dict[str, Any]:
    return {
        "type": "string",
        "description": f"Newline-delimited JSON: one {schema.__name__} object per line.",
    }


def add_exports(
    router: APIRouter,
    path: str,
    *,
    page_query: type[BaseModel],
    schema: type[BaseModel],
    name: str,
    plural: str,
    rows: Callable[[Session, Any], Iterable[BaseModel]] | None = None,
    chunks: Callable[[Any, Format], ChunkReader | KeyedReader] | None = None,
    tags: list[str | Enum] | None = None,
) -> None:
    """Register `GET <path>.csv` and `GET <path>.ndjson` exporting the collection parameters
    (`page_query`) of `GET <path>` select: read whole by `rows`, for a small collection, or in
    keyset chunks by the reader `chunks` makes for them and the format, for a large one
    (api.exports)."""
    filename = path.strip("/").replace("/", "-")
    for fmt, describe in ((Format.csv, _csv_schema), (Format.ndjson, _ndjson_schema)):
        download = _download(fmt, page_query, schema, rows, chunks, filename)
        download.__doc__ = (
            f"All {plural} the filters select, in the collection's order, as one streamed "
            f"{fmt.upper()} file (no paging)."
        )
        router.add_api_route(
            f"{path}.{fmt}",
            download,
            methods=["GET"],
            operation_id=f"export{name}{fmt.value.capitalize()}",
            summary=f"Export {plural} as {fmt.upper()}",
            response_class=StreamingResponse,
            responses=export_responses(
                MEDIA_TYPES[fmt], f"All the selected {plural}.", describe(schema)
            ),
            tags=tags,
        )


def _download(
    fmt: Format,
    page_query: type[BaseModel],
    schema: type[BaseModel],
    rows: Callable[[Session, Any], Iterable[BaseModel]] | None,
    chunks: Callable[[Any, Format], ChunkReader | KeyedReader] | None,
    filename: str,
) -> Callable[..., StreamingResponse]:
    query_model: Any = export_query(page_query, fmt)

    def download(
        request: Request, session: ReadSessionDep, query: Annotated[query_model, Query()]
    ) -> StreamingResponse:
        selection = _selection(page_query, query)
        version = asof.answered_at(session)
        etag = export_etag(version, request, fmt)
        bom = bool(getattr(query, "bom", False))
        if chunks is not None:
            session.close()  # the export reads in chunks of its own: hold no connection
            return export_chunks(
                request, fmt, schema, chunks(selection, fmt), version, filename, etag, bom=bom
            )
        assert rows is not None
        # A small collection, read whole before the first byte is sent: the connection goes
        # back to the pool before the client reads.
        items = list(rows(session, selection))
        session.close()
        return export(fmt, schema, items, filename, etag, bom=bom)

    return download
