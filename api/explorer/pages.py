"""What each explorer page shows, read through the API's own services (so `as_of` reads, search
and facets behave exactly as in the JSON API); the templates only lay it out."""

import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from sqlmodel import Session

from api import citations
from api.entities import service as entities_service
from api.entities.kind import ENTITIES
from api.entities.schemas import EntityPublic, EntityQuery
from api.errors import NotFound
from api.explorer import article, charts, words
from api.explorer.charts import Bar
from api.filters import fold_case, spell
from api.filters import values as filter_values
from api.history import service as history_service
from api.history.schemas import RevisionPublic
from api.metrics import service as metrics_service
from api.metrics.schemas import FACETS, FacetQuery, MetricFilters, MetricPublic, MetricQuery
from api.records import asof
from api.records.kinds import Kind
from api.schemas import figure_text
from api.sources import service as sources_service
from api.sources.schemas import SourcePublic, SourceQuery
from api.vocabulary import Category, Unit

ALL = 500  # the largest page the services serve
PEERS = 12
# A section page lists this many figures at most, and charts at most CHART_ROWS per chart
# (a large dataset's sections link to the figure browser for the rest).
SECTION_FIGURES = 100
CHART_ROWS = 30
PEER_SPREAD = 100
KINDS: dict[str, Kind] = {kind.name: kind for kind in ENTITIES}
FACET_LABELS = {
    "category": "Category",
    "unit": "Unit",
    "measure": "Measure",
    "qualifier": "Qualifier",
    "direction": "Direction",
    "year": "Year",
    "base_year": "Base year",
    "forecast": "Projection",
    "horizon_passed": "Expired projection",
    "geography": "Geography",
    "subject": "Subject",
    "source": "Source",
}
# Facets of yes or no (a chip holds the filter's text, `true`; a facet value, True).
BOOLEAN_FACETS = ("forecast", "horizon_passed")
# The qualifiers in words, as a facet lists them.
QUALIFIER_LABELS = {
    "eq": "exactly",
    "gt": "over",
    "gte": "at least",
    "lt": "under",
    "lte": "up to",
    "approx": "about",
}
# Every filter the figure browser shows as a removable chip, facets and the rest.
FILTER_LABELS = {
    **FACET_LABELS,
    "q": "Search",
    "value_min": "Minimum value",
    "value_max": "Maximum value",
}
# A facet is clickable where the collection takes it as a filter.
FILTERABLE = frozenset(name for name in FACETS if name in MetricFilters.model_fields)


def version(session: Session) -> int:
    """The dataset version the page answers at (live, or the one in force at `as_of`)."""
    return asof.answered_at(session)


def metrics_by_ids(session: Session, ids: Iterable[str]) -> list[MetricPublic]:
    """The metrics `ids`, in that order; ids unknown at this version are skipped."""
    found = []
    for metric_id in ids:
        try:
            found.append(metrics_service.get_metric(session, metric_id=metric_id))
        except NotFound:
            continue
    return found


def category_metrics(session: Session, category: Category | None) -> tuple[list[MetricPublic], int]:
    """The first SECTION_FIGURES metrics of `category` by id, and how many there are."""
    return metrics_service.public_page(
        session, query=MetricQuery(limit=SECTION_FIGURES), category=category
    )


def _entity_page(
    session: Session, name: str, limit: int, q: str | None = None
) -> tuple[list[Any], int]:
    kind = KINDS[name]
    schema: Any = kind.public
    return entities_service.list_entities(
        session,
        model=kind.model,  # type: ignore[arg-type]
        schema=schema,
        query=EntityQuery(limit=limit, q=q),
        order_by=[kind.table.c.source_id, kind.table.c[kind.order_by]],
    )


# The most items of each kind listed beside the figures a search finds.
OTHER_MATCHES = 5


def other_matches(session: Session, q: str) -> list[tuple[Kind, list[Any], int]]:
    """What `q` finds among the context entities (technologies, pricing models, ...): each
    kind that has matches, its first few and how many; the figure browser lists them, so that
    a name the article gives a technology or a contract model is never a dead end."""
    found = []
    for name, kind in KINDS.items():
        items, total = _entity_page(session, name, OTHER_MATCHES, q)
        if total:
            found.append((kind, items, total))
    return found


def entities(session: Session, name: str) -> list[Any]:
    """Every context entity of kind `name`, in the order its source presents them."""
    return _entity_page(session, name, ALL)[0]


def home(
    session: Session, as_of: datetime | None, link: Any, section_of: dict[str, str]
) -> dict[str, Any]:
    """Counts per category, sources, the latest changes and releases; `section_of` names the
    section page of each kind of context entity (its entries are anchors there)."""
    counts = metrics_service.facets(
        session, query=FacetQuery(facet="category"), path="/v1/metrics", params=[]
    )
    sources, _ = sources_service.list_sources(session, query=SourceQuery(limit=ALL))
    _, change_total, _ = history_service.changes(
        session, since=None, limit=0, offset=0, as_of=as_of
    )
    latest = history_service.latest_changes(session, limit=8, as_of=as_of)
    releases, _ = history_service.releases(session, limit=5, offset=0, as_of=as_of)
    changed = {change.record_id for change in latest if change.kind == "metric"}
    present = {metric.id for metric in metrics_by_ids(session, changed)}
    entity_counts = {name: _entity_page(session, name, 1)[1] for name in KINDS}
    return {
        "total": counts.total,
        "categories": {c.value: c.count for c in counts.facets["category"]},
        "sources": sources,
        "changes": [
            (change, _change_link(change, present, link, section_of)) for change in reversed(latest)
        ],
        "change_total": change_total,
        "releases": releases,
        "entity_counts": entity_counts,
    }


def _change_link(
    change: RevisionPublic, present: set[str], link: Any, section_of: dict[str, str]
) -> str | None:
    """Where a change links: a metric's page, or, for a metric deleted since, its page as that
    change left it (as a delete found it): never a page that answers 404; a context entity's
    entry on its section's page as the change left it; a source's page."""
    # A version's changes share one timestamp: a microsecond before it is the version before.
    moment = change.at - timedelta(microseconds=1) if change.action == "delete" else change.at
    at_change = urlencode({"as_of": words.stamp(moment)})
    if change.kind == "source":
        path = f"/explore/sources/{change.record_id}"
        return f"{path}?{at_change}" if change.action == "delete" else str(link(path))
    if change.kind in section_of:
        return f"/explore/{section_of[change.kind]}?{at_change}#{change.record_id}"
    if change.kind != "metric":
        return None
    path = f"/explore/metrics/{change.record_id}"
    if change.record_id in present:
        return str(link(path))
    return f"{path}?{at_change}"


def browse(session: Session, query: MetricQuery) -> dict[str, Any]:
    """One page of the figure table, and the facet counts of the same filters."""
    items, total = metrics_service.public_page(session, query=query)
    filters = query.model_dump(
        include=set(MetricFilters.model_fields) - {"as_of"}, exclude_none=True
    )
    facets = metrics_service.facets(
        session,
        query=FacetQuery(**filters),
        path="/v1/metrics",
        params=[(name, str(value)) for name, value in filters.items()],
    )
    titles = source_titles(session)
    chips = [
        (name, FILTER_LABELS[name], chip_text(name, value, titles))
        for name, value in filters.items()
    ]
    return {
        "items": items,
        "total": total,
        "facets": facets.facets,
        "filters": filters,
        "chips": chips,
        "source_titles": titles,
        "others": other_matches(session, query.q) if query.q else [],
    }


def facet_toggle(current: object, value: object) -> tuple[bool, str | None]:
    """Whether a facet's `value` is among its filter's (`current`, as the query holds it), and
    the filter with `value` toggled: added to the values chosen (any of them matches), or taken
    out (None when no value is left)."""
    chosen = [spell(v) for v in filter_values(str(current))] if current is not None else []
    raw = spell(value)
    if raw.lower() in (c.lower() for c in chosen):
        return True, ",".join(c for c in chosen if c.lower() != raw.lower()) or None
    return False, ",".join([*chosen, raw])


def source_titles(session: Session) -> dict[str, str]:
    """Each source's title by its id: facets and chips name a source by its title."""
    sources, _ = sources_service.list_sources(session, query=SourceQuery(limit=ALL))
    return {source.id: source.title for source in sources}


def value_label(name: str, value: Any, titles: dict[str, str]) -> str:
    """A facet value in words: `over` for the qualifier gt, `growth rate` for growth_rate, a
    source by its title, yes/no, none for the bucket of metrics without a value."""
    if value is True or value is False or (name in BOOLEAN_FACETS and value in ("true", "false")):
        return "yes" if value in (True, "true") else "no"
    if value is None:
        return "none"
    text = str(value)
    if name == "category":
        return words.CATEGORY_LABELS.get(text, text)
    if name == "qualifier":
        return QUALIFIER_LABELS.get(text, text)
    if name == "source":
        return titles.get(text, text)
    if name in ("measure", "direction"):
        return text.replace("_", " ")
    return text


def chip_text(name: str, value: Any, titles: dict[str, str]) -> str:
    """A filter as its chip says it: a list of values each in words (`over, at least`)."""
    if isinstance(value, float):
        return figure_text(value)
    if name not in FACET_LABELS or name in ("year", "base_year"):
        return str(value)
    try:
        return ", ".join(value_label(name, item, titles) for item in filter_values(str(value)))
    except ValueError:
        return str(value)


# A change or growth rate is charted by its size; the arrow says which way it goes (a chart may
# mix increases and decreases).
ARROWS = {"up": "↑ ", "down": "↓ ", "": ""}


def _bar(metric: MetricPublic, role: str, href: str) -> Bar:
    label = ARROWS[words.direction(metric)] + metric.name
    label += f" ({metric.year})" if metric.year and role != "self" else ""
    return Bar(
        label=label,
        low=metric.value_low,
        high=metric.value_high,
        qualifier=metric.qualifier,
        href=href,
        role=role,
        forecast=metric.forecast,
        note=words.in_words(metric),
    )


def _comparable(peer: MetricPublic, metric: MetricPublic) -> bool:
    """Whether `peer` is within two orders of magnitude of `metric`: a $150 billion market
    beside a $45,000 dose would squash the dose to a dot."""
    ends = [abs(v) for v in (peer.value_low, peer.value_high, metric.value_low, metric.value_high)]
    if min(ends) == 0:
        return True
    return max(ends) / min(ends) <= PEER_SPREAD


def context_chart(
    session: Session, metric: MetricPublic, link: Any
) -> tuple[Markup, list[tuple[MetricPublic, str]]]:
    """The figure among its baseline and peers (same unit and measure, sharing a subject or
    the category, of a comparable size), and the rows charted, each with its role."""
    baseline = None
    if metric.baseline_id:
        baseline = next(iter(metrics_by_ids(session, [metric.baseline_id])), None)
    same_unit, _ = metrics_service.public_page(
        session, query=MetricQuery(unit=metric.unit, measure=metric.measure, limit=ALL)
    )
    subjects = {fold_case(s) for s in metric.subjects}
    peers = [
        m
        for m in same_unit
        if m.id not in (metric.id, metric.baseline_id)
        and m.baseline_id != metric.id
        and ({fold_case(s) for s in m.subjects} & subjects or m.category == metric.category)
        and _comparable(m, metric)
    ]
    peers.sort(key=lambda m: (not ({fold_case(s) for s in m.subjects} & subjects), m.id))
    compared = [m for m in same_unit if m.baseline_id == metric.id]
    rows: list[tuple[MetricPublic, str]] = [(metric, "self")]
    if baseline is not None and baseline.unit == metric.unit:
        rows.append((baseline, "baseline"))
    rows += [(m, "compared") for m in compared]
    rows += [(m, "peer") for m in peers[: PEERS - len(rows) + 1]]
    bars = [
        _bar(m, "baseline" if role == "baseline" else role, link(f"/explore/metrics/{m.id}"))
        for m, role in rows
    ]
    chart = charts.interval_chart(
        bars,
        metric.unit,
        f"{metric.name} in context",
        f"{metric.name}: {words.in_words(metric)}, {_beside(rows)} in {metric.unit}.",
    )
    return chart, rows


def _beside(rows: list[tuple[MetricPublic, str]]) -> str:
    """What a figure's chart draws it beside, in words: "drawn beside its baseline and 2
    other figures", "drawn beside 1 other figure", "drawn alone"."""
    roles = [role for _metric, role in rows[1:]]
    others = len(roles) - roles.count("baseline")
    said = ["its baseline"] if "baseline" in roles else []
    if others:
        said.append(f"{others} other figure{'' if others == 1 else 's'}")
    return "drawn beside " + " and ".join(said) if said else "drawn alone"


def unit_charts(metrics: list[MetricPublic], link: Any, title: str) -> list[dict[str, Any]]:
    """One chart per unit and measure that has two figures or more, ordered by year."""
    groups: dict[tuple[Unit, str], list[MetricPublic]] = {}
    for metric in metrics:
        groups.setdefault((metric.unit, metric.measure.value), []).append(metric)
    result = []
    for (unit, measure), group in groups.items():
        if len(group) < 2:
            continue
        group.sort(key=lambda m: (m.year or 0, m.id))
        label = f"{title}: {measure.replace('_', ' ')} in {unit.value}"
        if len(group) > CHART_ROWS:
            label += f" (the first {CHART_ROWS} of {len(group)} by year)"
            group = group[:CHART_ROWS]
        bars = [_bar(m, "peer", link(f"/explore/metrics/{m.id}")) for m in group]
        description = "; ".join(f"{m.name}: {words.in_words(m)}" for m in group)
        result.append(
            {
                "title": label,
                "svg": charts.interval_chart(bars, unit, label, description),
                "metrics": group,
            }
        )
    return result


def figure(session: Session, metric_id: str, as_of: datetime | None, link: Any) -> dict[str, Any]:
    """Everything the page of one figure shows."""
    metric = metrics_service.get_metric(session, metric_id=metric_id)
    source = sources_service.get_source(session, source_id=metric.source_id)
    text = sources_service.get_source_text(session, source_id=metric.source_id)
    line, line_start = article.paragraph_of(text, metric.evidence.start, metric.evidence.end)
    span = article.Span(
        metric.evidence.start, metric.evidence.end, '<mark id="evidence">', "</mark>"
    )
    chart, rows = context_chart(session, metric, link)
    key = citations.record_key(source.id, "metric", metric.id)
    revisions, revision_total = history_service.record_revisions(
        session,
        kind="metric",
        label="metric",
        record_id=metric_id,
        limit=50,
        offset=0,
        as_of=as_of,
    )
    return {
        "metric": metric,
        "source": source,
        "paragraph": article.marked(line, line_start, [span]),
        "chart": chart,
        "rows": rows,
        "citations": {
            "APA": citations.styled(citations.CitationStyle.apa, source, metric.evidence, key),
            "Vancouver": citations.styled(
                citations.CitationStyle.vancouver, source, metric.evidence, key
            ),
            "RIS": citations.ris(source, metric.evidence, key),
            "BibTeX": citations.bibtex(source, metric.evidence, key),
            "CSL-JSON": citations.csl_json(source, metric.evidence, key),
        },
        "revisions": list(zip(revisions, what_changed(revisions), strict=True)),
        "revision_total": revision_total,
        "context": _entities_of(session, metric.id),
    }


def what_changed(revisions: list[RevisionPublic]) -> list[list[tuple[str, str, str]]]:
    """For each revision (newest first), each field it changed: (its label, the value before,
    the value after); the value before is a dash for a create or where the revision before
    is not on the page."""
    rows = []
    for position, revision in enumerate(revisions):
        before = revisions[position + 1].data if position + 1 < len(revisions) else None
        after = revision.data or {}
        rows.append(
            [
                (
                    words.FIELD_LABELS.get(field, field.replace("_", " ").capitalize()),
                    words.field_value((before or {}).get(field)),
                    words.field_value(after.get(field)),
                )
                for field in revision.changes
                if revision.action == "update"
            ]
        )
    return rows


def deleted(
    session: Session, kind: str, record_id: str, as_of: datetime | None
) -> tuple[RevisionPublic, RevisionPublic] | None:
    """(the deletion, the revision before it) when the record was deleted by `as_of` (or
    now); None when it never was, or was not yet, deleted."""
    try:
        revisions, _total = history_service.record_revisions(
            session, kind=kind, label=kind, record_id=record_id, limit=2, offset=0, as_of=as_of
        )
    except NotFound:
        return None
    if len(revisions) < 2 or revisions[0].action != "delete":
        return None
    return revisions[0], revisions[1]


def _entities_of(session: Session, metric_id: str) -> list[tuple[Kind, EntityPublic]]:
    """The context entities this figure quantifies."""
    return [
        (KINDS[name], entity)
        for name in KINDS
        for entity in entities(session, name)
        if metric_id in entity.metric_ids
    ]


def source(session: Session, source_id: str, link: Any) -> dict[str, Any]:
    """A source's text in blocks, each figure's sentence marked and linked."""
    found: SourcePublic = sources_service.get_source(session, source_id=source_id)
    text = sources_service.get_source_text(session, source_id=source_id)
    metrics, _ = metrics_service.public_page(
        session, query=MetricQuery(source=source_id, limit=ALL)
    )
    by_span: dict[tuple[int, int], list[MetricPublic]] = {}
    for metric in metrics:
        by_span.setdefault((metric.evidence.start, metric.evidence.end), []).append(metric)
    spans = []
    for (start, end), group in by_span.items():
        # The accessible name starts with the visible text (WCAG 2.5.3), then names the figure.
        refs = "".join(
            f' <a class="figref" id="m-{m.id}" href="{link(f"/explore/metrics/{m.id}")}" '
            f'aria-label="{Markup.escape(words.in_words(m))}: {Markup.escape(m.name)}">'
            f"{Markup.escape(words.in_words(m))}</a>"
            for m in group
        )
        spans.append(
            article.Span(
                start,
                end,
                '<mark class="figure">',
                "</mark>",
                inner=functools.partial(str.format, '<span class="figrefs">{}</span>', refs),
            )
        )
    entity_count = 0
    for name, kind in KINDS.items():
        for entity in entities(session, name):
            if entity.source_id != source_id:
                continue
            entity_count += 1
            label = Markup.escape(f"{kind.label.capitalize()}: {entity.name}")
            spans.append(
                article.Span(
                    entity.evidence.start,
                    entity.evidence.end,
                    f'<span class="entity" id="e-{name}-{entity.id}" title="{label}">',
                    "</span>",
                )
            )
    return {
        "source": found,
        "blocks": article.blocks(text, spans),
        "metric_count": len(metrics),
        "entity_count": entity_count,
        "citation": citations.styled(citations.CitationStyle.apa, found),
    }
