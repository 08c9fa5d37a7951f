"""Citing a source, or a figure with its quote, in APA, BibTeX or CSL-JSON."""

import json
from enum import StrEnum
from typing import Any

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api import negotiation
from api.records import store
from api.records.kinds import Kind
from api.schemas import AS_OF_DESCRIPTION, Evidence, Timestamp
from api.sources import service as sources_service
from api.sources.schemas import SourcePublic


class CitationStyle(StrEnum):
    apa = "apa"
    bibtex = "bibtex"
    csl_json = "csl-json"


MEDIA_TYPES = {
    CitationStyle.apa: "text/plain",
    CitationStyle.bibtex: "application/x-bibtex",
    CitationStyle.csl_json: "application/vnd.citationstyles.csl+json",
}
CSL_TYPES = {"article": "article", "report": "report", "dataset": "dataset"}
STYLE_DESCRIPTION = "Citation style: apa (text), bibtex, or csl-json."


class ItemQuery(BaseModel):
    """Parameters of a single item."""

    model_config = ConfigDict(extra="forbid")

    cite: CitationStyle | None = Field(
        default=None,
        description=STYLE_DESCRIPTION + " Answers the citation of the item's source with its "
        "evidence quote instead of the item.",
        examples=["apa"],
    )
    as_of: Timestamp | None = Field(
        default=None, description=AS_OF_DESCRIPTION, examples=["2026-11-26T00:00:00Z"]
    )


class TextQuery(BaseModel):
    """Parameters of a source's text."""

    model_config = ConfigDict(extra="forbid")

    as_of: Timestamp | None = Field(
        default=None, description=AS_OF_DESCRIPTION, examples=["2026-11-26T00:00:00Z"]
    )


class CitationQuery(BaseModel):
    """Parameters of a source's citation."""

    model_config = ConfigDict(extra="forbid")

    style: CitationStyle = Field(
        default=CitationStyle.apa, description=STYLE_DESCRIPTION, examples=["bibtex"]
    )
    as_of: Timestamp | None = Field(
        default=None, description=AS_OF_DESCRIPTION, examples=["2026-11-26T00:00:00Z"]
    )


def _author(source: SourcePublic) -> str:
    return source.author or source.publisher


def apa(source: SourcePublic, evidence: Evidence | None = None) -> str:
    """APA 7 reference; with `evidence`, the quote and its in-text citation come first."""
    day = source.published_on
    reference = (
        f"{_author(source)}. ({day.year}, {day:%B} {day.day}). {source.title}. {source.publisher}."
    )
    if source.url:
        reference += f" {source.url}"
    if evidence is None:
        return reference + "\n"
    return f'"{evidence.quote}" ({_author(source)}, {day.year})\n\n{reference}\n'


def _bibtex_escape(text: str) -> str:
    for char in "\\{}":
        text = text.replace(char, "\\" + char)
    return text.replace("%", "\\%").replace("&", "\\&").replace("#", "\\#")


def bibtex(source: SourcePublic, evidence: Evidence | None = None) -> str:
    """A BibTeX @misc entry (biblatex `date` included); the quote goes in `note`."""
    day = source.published_on
    fields = [
        ("author", "{" + _bibtex_escape(_author(source)) + "}"),
        ("title", _bibtex_escape(source.title)),
        ("publisher", _bibtex_escape(source.publisher)),
        ("year", str(day.year)),
        ("month", str(day.month)),
        ("date", day.isoformat()),
    ]
    if source.url:
        fields.append(("url", source.url))
    if evidence is not None:
        fields.append(("note", f"Quoted: ``{_bibtex_escape(evidence.quote)}''"))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@misc{{{source.id},\n{body}\n}}\n"


def csl_json(source: SourcePublic, evidence: Evidence | None = None) -> str:
    """A CSL-JSON array with one item; the quote goes in `note`."""
    day = source.published_on
    item: dict[str, object] = {
        "id": source.id,
        "type": CSL_TYPES.get(source.kind, "document"),
        "title": source.title,
        "author": [{"literal": _author(source)}],
        "publisher": source.publisher,
        "issued": {"date-parts": [[day.year, day.month, day.day]]},
    }
    if source.url:
        item["URL"] = source.url
    if evidence is not None:
        item["note"] = f'"{evidence.quote}"'
    return json.dumps([item], ensure_ascii=False, indent=2) + "\n"


RENDERERS = {CitationStyle.apa: apa, CitationStyle.bibtex: bibtex, CitationStyle.csl_json: csl_json}


CSL_SCHEMA = {
    "type": "array",
    "description": "CSL-JSON items (https://citeproc-js.readthedocs.io/en/latest/csl-json/).",
    "items": {
        "type": "object",
        "required": ["id", "type", "title"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "title": {"type": "string"},
            "author": {"type": "array", "items": {"type": "object"}},
            "publisher": {"type": "string"},
            "issued": {"type": "object"},
            "URL": {"type": "string"},
            "note": {"type": "string", "description": "The quoted evidence, for an item."},
        },
    },
}


def citation_content() -> dict[str, dict[str, object]]:
    """The OpenAPI `content` entries of a citation response."""
    return {
        MEDIA_TYPES[CitationStyle.apa]: {"schema": {"type": "string"}},
        MEDIA_TYPES[CitationStyle.bibtex]: {"schema": {"type": "string"}},
        MEDIA_TYPES[CitationStyle.csl_json]: {"schema": CSL_SCHEMA},
    }


def respond(
    request: Request,
    style: CitationStyle,
    source: SourcePublic,
    evidence: Evidence | None = None,
) -> Response:
    """The citation in `style`, as that style's media type (406 if the client refuses it)."""
    media_type = MEDIA_TYPES[style]
    negotiation.require(request, media_type)
    return Response(RENDERERS[style](source, evidence), media_type=f"{media_type}; charset=utf-8")


def item_or_citation(
    request: Request,
    response: Response,
    session: Session,
    kind: Kind,
    item: Any,
    cite: CitationStyle | None,
) -> Any:
    """An item with its version tag, or (with `cite`) its source's citation with its quote."""
    if cite is None:
        response.headers["ETag"] = store.item_etag(session, kind, item.id) or ""
        return item
    if isinstance(item, SourcePublic):
        cited = respond(request, cite, item)
    else:
        source = sources_service.get_source(session, source_id=item.source_id)
        cited = respond(request, cite, source, item.evidence)
    cited.headers["ETag"] = store.item_etag(session, kind, item.id, f"cite:{cite}") or ""
    return cited
