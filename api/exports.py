"""Whole-collection exports as CSV or NDJSON, streamed row by row."""

import csv
import hashlib
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel


class Format(StrEnum):
    json = "json"
    csv = "csv"
    ndjson = "ndjson"


MEDIA_TYPES = {
    Format.json: "application/json",
    Format.csv: "text/csv",
    Format.ndjson: "application/x-ndjson",
}


def columns(schema: type[BaseModel]) -> list[str]:
    """Flat column names of `schema`: nested models become `<field>_<subfield>`."""
    names = []
    for name, field in schema.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += [f"{name}_{sub}" for sub in annotation.model_fields]
        else:
            names.append(name)
    return names


# A spreadsheet runs a cell that begins with one of these as a formula (OWASP: CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """One CSV cell; text that a spreadsheet would run as a formula is prefixed with `'`
    (numbers, negative ones included, are written as they are)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):  # a free-form object (a revision's record): one JSON cell
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    elif isinstance(value, list):
        text = ";".join(
            json.dumps(item, ensure_ascii=False, separators=(",", ":"))
            if isinstance(item, dict)
            else str(item)
            for item in value
        )
    else:
        text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def flatten(item: BaseModel) -> dict[str, str]:
    """One CSV row: nested models spread into prefixed columns, lists joined with `;`."""
    row: dict[str, str] = {}
    fields = type(item).model_fields
    for name, value in item.model_dump(mode="json").items():
        annotation = fields[name].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            row.update({f"{name}_{sub}": _cell(inner) for sub, inner in value.items()})
        else:
            row[name] = _cell(value)
    return row


def _csv_lines(schema: type[BaseModel], items: Iterable[BaseModel]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns(schema), lineterminator="\r\n")
    writer.writeheader()
    for item in items:
        writer.writerow(flatten(item))
        if buffer.tell() > 16384:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _ndjson_lines(items: Iterable[BaseModel]) -> Iterator[str]:
    for item in items:
        yield (
            json.dumps(item.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))
            + "\n"
        )


def export(
    fmt: Format,
    schema: type[BaseModel],
    items: Iterable[BaseModel],
    filename: str,
    etag: str,
    *,
    bom: bool = False,
) -> StreamingResponse:
    """Stream `items` as CSV or NDJSON, as a download named `<filename>.<format>`; `bom`
    starts a CSV with U+FEFF, by which Excel knows it is UTF-8."""
    body = _csv_lines(schema, items) if fmt is Format.csv else _ndjson_lines(items)
    if bom and fmt is Format.csv:
        body = itertools.chain(["\ufeff"], body)
    media_type = MEDIA_TYPES[fmt] + ("; charset=utf-8" if fmt is Format.csv else "")
    return StreamingResponse(
        (chunk.encode("utf-8") for chunk in body),
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}.{fmt}"',
            "ETag": etag,
        },
    )


def export_etag(revision: int, request: Request, fmt: Format) -> str:
    """A strong tag for an export: the dataset revision and the normalised request.

    A streamed body cannot be hashed before it is sent, so the tag changes whenever the
    dataset does; an unchanged dataset always yields the same bytes for the same request.
    """
    params = sorted(request.query_params.multi_items())
    key = f"{revision}|{fmt}|{request.url.path}|{params}"
    return f'"x{hashlib.sha256(key.encode()).hexdigest()[:31]}"'
