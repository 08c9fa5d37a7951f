"""The explorer's pages: HTML for people, server-rendered from the API's own services.

Every page takes `as_of` (read through the same `ReadSessionDep`) and says so in a banner; its
links keep it. Responses are cached and tagged like the API's (`api.caching`,
`api.response_cache`): a page is computed once per dataset version.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import field_validator
from sqlmodel import Session
from starlette.convertors import PathConvertor, register_url_convertor

from api import filters
from api.assets import Assets
from api.errors import PROBLEM_MEDIA_TYPE, NotFound, ProblemError
from api.explorer import charts, pages, words
from api.guards import KNOWN_METHODS
from api.metrics.schemas import SORTABLE_FIELDS, MetricQuery
from api.negotiation import quality
from api.pagination import PAGE_PARAMETERS
from api.records.reads import ReadSessionDep, read_session
from api.routing import DeferredRoute, percent_encoded_parameters
from api.schemas import AS_OF_DESCRIPTION, QUERY_TEXT_LONGEST, Timestamp, figure_text
from api.vocabulary import Category

if TYPE_CHECKING:
    from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
STATIC_PATH = "/explore/static"
router = APIRouter(
    include_in_schema=False,
    route_class=DeferredRoute,
    dependencies=[Depends(percent_encoded_parameters)],
)
# The most values shown per facet: the commonest first, in a list that scrolls (a page stays
# small however many subjects a large dataset has).
FACET_VALUES = 100
AsOf = Annotated[Timestamp | None, Query(description=AS_OF_DESCRIPTION)]


@dataclass(frozen=True)
class Section:
    """A page for one area of the article: its figures (by category), its context entities."""

    slug: str
    title: str
    intro: str
    category: Category | None = None
    kind: str | None = None


SECTIONS = (
    Section(
        "market",
        "Market",
        "Market size, growth, capacity and costs: the demand for personalised oncology "
        "manufacturing. Projections are outlined; the rest are observations.",
        category=Category.market,
    ),
    Section(
        "technologies",
        "Technologies",
        "The manufacturing innovations the article describes, and the figures it gives for them.",
        category=Category.technology,
        kind="technology",
    ),
    Section(
        "regulatory",
        "Regulatory outlook",
        "The regulatory shifts the article anticipates, with their agencies and expected impact, "
        "and its figures on compliance.",
        category=Category.regulatory,
        kind="regulatory_change",
    ),
    Section(
        "pricing",
        "Pricing models",
        "How CDMOs price and contract personalised oncology work, and what it costs.",
        category=Category.pricing,
        kind="pricing_model",
    ),
    Section(
        "mna",
        "M&A and partnerships",
        "Strategic partnerships and consolidation among CDMOs.",
        category=Category.mna,
    ),
    Section(
        "bottlenecks",
        "Bottlenecks, ranked",
        "The bottlenecks in scaling manufacturing, in the order the article ranks them.",
        kind="bottleneck",
    ),
    Section(
        "faq",
        "Frequently asked questions",
        "The article's questions, each with a summary of its answer and the figures behind it.",
        kind="faq",
    ),
)

# The section page of each kind of context entity (its entries are anchors there).
SECTION_OF = {section.kind: section.slug for section in SECTIONS if section.kind}


@cache
def _templates() -> "Jinja2Templates":
    """The pages' templates, made at the first page (Jinja2 is not imported before)."""
    from fastapi.templating import Jinja2Templates

    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters.update(stamp=words.stamp, figure_number=words.number)
    templates.env.globals.update(
        in_words=words.in_words,
        figure_words=words.figure,
        category_label=words.CATEGORY_LABELS,
        facet_label=pages.FACET_LABELS,
        value_label=pages.value_label,
        # A facet value as its link's filter writes it: quoted if it holds a comma or is the
        # word null, `null` for the no-value bucket (as the API's own bucket links).
        spell=filters.spell,
        static=STATIC_PATH,
        chart_defs=charts.DEFS,
        qualifier_words=words.QUALIFIER_WORDS,
        query_longest=QUERY_TEXT_LONGEST,  # the search box takes no more than `q` may hold
    )
    return templates


def _render(
    request: Request,
    session: Session,
    name: str,
    title: str,
    context: dict[str, Any],
    status_code: int = 200,
    *,
    dated: bool = True,
) -> HTMLResponse:
    """The page `name`; not `dated`, its links leave out the request's `as_of` (which may be
    the parameter the page refused)."""
    as_of = request.query_params.get("as_of") if dated else None
    return _templates().TemplateResponse(
        request,
        name,
        {
            "title": title,
            "as_of": as_of,
            "version": pages.version(session),
            "link": linker(as_of),
            "sections": SECTIONS,
            "section_of": SECTION_OF,
            "path": request.url.path,
            "live": _without(request, "as_of"),  # on the live data
            **context,
        },
        status_code=status_code,
        headers=PAGE_HEADERS,
    )


# An explorer page runs its own script and style only (no inline code, no other origin), is
# never framed by another site, and tells no other site which page a reader came from.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _without(request: Request, name: str) -> str:
    """This page's address (path and query) without the parameter `name`."""
    url = request.url.remove_query_params(name)
    return f"{url.path}?{url.query}" if url.query else url.path


def linker(as_of: str | None) -> Callable[..., str]:
    """A function building links to explorer pages that keep the page's `as_of`."""

    def link(path: str, **params: Any) -> str:
        kept = {name: value for name, value in params.items() if value not in (None, "")}
        if as_of:
            kept["as_of"] = as_of
        return path + ("?" + urlencode(kept) if kept else "")

    return link


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: ReadSessionDep, as_of: AsOf = None) -> HTMLResponse:
    """What the dataset is, counts per category, search, the latest changes and releases."""
    link = linker(request.query_params.get("as_of"))
    context = pages.home(session, as_of, link, SECTION_OF)
    return _render(request, session, "home.html", "CDMO Metrics explorer", context)


class BrowseQuery(MetricQuery):
    """The figure browser's query: a search box left empty sends `q=`, which means no search
    (the JSON API refuses an empty `q`; a person clearing the box wants every figure)."""

    @field_validator("q", mode="before")
    @classmethod
    def _blank_is_no_search(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


@router.get("/explore/metrics", response_class=HTMLResponse)
def browse(
    request: Request, session: ReadSessionDep, query: Annotated[BrowseQuery, Query()]
) -> Response:
    """The figure browser: search, facets, a sortable, paged table, and the same query as data."""
    if "q" in request.query_params and query.q is None:
        # Shown at the address without the empty search, whose links and exports all work.
        return RedirectResponse(_without(request, "q"), status_code=303)
    context = pages.browse(session, query)
    state = {
        name: _as_param(value)
        for name, value in query.model_dump(
            mode="json", exclude_defaults=True, exclude={"format", "as_of"}
        ).items()
    }
    link = linker(request.query_params.get("as_of"))

    def here(changes: dict[str, Any]) -> str:
        """This query with `changes` (None removes a parameter); back to the first page
        unless the change is the page."""
        params = {**state, **changes}
        if "offset" not in changes:
            params.pop("offset", None)
        return link("/explore/metrics", **params)

    context.update(
        query=query,
        state=state,
        here=here,
        sort_link=lambda field: here({"sort": field}),
        sortable=SORTABLE_FIELDS,
        filterable=pages.FILTERABLE,
        facet_toggle=pages.facet_toggle,
        facet_limit=FACET_VALUES,
        exports=_exports(request),
    )
    return _render(request, session, "metrics.html", _browse_title(context), context)


def _as_param(value: Any) -> Any:
    """A query value as the page's links write it: true/false, 20 (not 20.0), text as is."""
    if isinstance(value, bool):
        return str(value).lower()
    return figure_text(value) if isinstance(value, float) else value


def _browse_title(context: dict[str, Any]) -> str:
    narrowed = ", ".join(f"{label}: {shown}" for _, label, shown in context["chips"])
    return f"Figures{' — ' + narrowed if narrowed else ''} ({context['total']})"


def _exports(request: Request) -> dict[str, str]:
    """The same query on the JSON API, as JSON, CSV and NDJSON."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "format"]
    whole = urlencode([(k, v) for k, v in params if k not in PAGE_PARAMETERS])
    json_query = urlencode(params)
    return {
        "JSON": "/v1/metrics" + (f"?{json_query}" if json_query else ""),
        "CSV": "/v1/metrics.csv" + (f"?{whole}" if whole else ""),
        "NDJSON": "/v1/metrics.ndjson" + (f"?{whole}" if whole else ""),
    }


@router.get("/explore/metrics/{metric_id}", response_class=HTMLResponse)
def figure(
    metric_id: str, request: Request, session: ReadSessionDep, as_of: AsOf = None
) -> HTMLResponse:
    """One figure in words, in context, in its sentence, with its citations and history."""
    try:
        context = pages.figure(session, metric_id, as_of, linker(request.query_params.get("as_of")))
    except NotFound as error:
        gone = pages.deleted(session, "metric", metric_id, as_of)
        return _not_found(request, session, str(error), gone)
    title = f"{context['metric'].name}: {words.in_words(context['metric'])}"
    return _render(request, session, "metric.html", title, context)


@router.get("/explore/sources/{source_id}", response_class=HTMLResponse)
def source(
    source_id: str, request: Request, session: ReadSessionDep, as_of: AsOf = None
) -> HTMLResponse:
    """A source verbatim, each figure's sentence marked and linked to its page."""
    try:
        context = pages.source(session, source_id, linker(request.query_params.get("as_of")))
    except NotFound as error:
        return _not_found(request, session, str(error))
    return _render(request, session, "source.html", context["source"].title, context)


def _section_route(section: Section) -> None:
    def show(request: Request, session: ReadSessionDep, as_of: AsOf = None) -> HTMLResponse:
        link = linker(request.query_params.get("as_of"))
        metrics, total = (
            pages.category_metrics(session, section.category) if section.category else ([], 0)
        )
        items = pages.entities(session, section.kind) if section.kind else []
        context = {
            "section": section,
            "metrics": metrics,
            "total": total,
            "charts": pages.unit_charts(metrics, link, section.title),
            "entities": items,
            "entity_metrics": {
                item.id: pages.metrics_by_ids(session, item.metric_ids) for item in items
            },
            "kind": pages.KINDS[section.kind] if section.kind else None,
        }
        return _render(request, session, "section.html", section.title, context)

    show.__doc__ = f"The {section.title} section of the dataset."
    router.add_api_route(
        f"/explore/{section.slug}", show, methods=["GET"], response_class=HTMLResponse
    )


for _section in SECTIONS:
    _section_route(_section)


def _not_found(request: Request, session: Session, detail: str, gone: Any = None) -> HTMLResponse:
    """The page of an address that shows nothing; `gone`: the deletion of the record it
    showed (pages.deleted), told with a link to its last version."""
    context = {"detail": detail, "gone": gone}
    return _render(request, session, "not_found.html", "Not found", context, 404)


class _PagePath(PathConvertor):
    """A path that does not end in a slash: one that does is left to api.guards, which
    redirects it to the same path trimmed (`/explore/metrics/` to `/explore/metrics`)."""

    regex = ".*[^/]"


register_url_convertor("page", _PagePath())
# Addresses under /explore that name no page; routed after every page and the static files.
unknown_pages = APIRouter(include_in_schema=False, route_class=DeferredRoute)


@unknown_pages.api_route("/explore", methods=sorted(KNOWN_METHODS))
@unknown_pages.api_route("/explore/{rest:page}", methods=sorted(KNOWN_METHODS))
def unknown_page(request: Request, session: ReadSessionDep) -> HTMLResponse:
    """A mistyped explorer address: the not-found page for a browser, and for any other
    client the problem any unknown address answers."""
    detail = f"No resource at {request.url.path}."
    accept = request.headers.get("accept")
    if request.method == "GET" and quality(accept, "text/html") > quality(
        accept, PROBLEM_MEDIA_TYPE
    ):
        return _not_found(request, session, detail)
    raise NotFound(detail)


def invalid_address(request: Request, errors: list[ProblemError]) -> HTMLResponse | None:
    """For a browser that asked for an explorer page with parameters the page refuses
    (`/explore/metrics?year=soon`), a page saying which and why, with a link to the page
    without them; None for any other request, which gets the problem every API answers."""
    path = request.url.path
    accept = request.headers.get("accept")
    if (
        request.method not in ("GET", "HEAD")
        or not (path == "/" or path.startswith("/explore"))
        or quality(accept, "text/html") <= quality(accept, PROBLEM_MEDIA_TYPE)
    ):
        return None
    # The same address without what was refused: the other parameters kept, as_of too if valid.
    refused = [error.name for error in errors if error.in_ == "query"]
    without = request.url.remove_query_params(refused)
    kept = f"{without.path}?{without.query}" if without.query else without.path
    context = {"errors": errors, "page": path, "without": kept}
    with read_session(request) as session:  # a malformed as_of is left out: the live data
        return _render(request, session, "invalid.html", "Invalid address", context, 422,
                       dated=False)  # fmt: skip


def install(app: FastAPI) -> None:
    """Serve the explorer's pages and its static files (styles, a little script) from `app`."""
    # Taken as declared, as api.main takes the API's routers: including would make each route
    # again for the app (and build them all at the first request, for the route table).
    app.router.routes.extend(router.routes)
    app.mount(STATIC_PATH, Assets(directory=HERE / "static"), name="explorer-static")
    app.router.routes.extend(unknown_pages.routes)
