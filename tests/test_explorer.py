"""The explorer's HTML pages over the seed dataset, on each database: what they say, link and
mark, how they take `as_of`, and that they are tagged and cached like the API.

What a browser does with them (scripts, clicks, axe-core) is in test_explorer_browser.py.
"""

import re
from html import unescape

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.explorer import charts, words
from api.metrics.schemas import MetricPublic
from api.vocabulary import Qualifier, Unit
from tests.browser.pages import FIGURE, PAGES, SOURCE
from tests.conftest import serving
from tests.helpers import Writable, new_metric

FIGURE_PAGE = f"/explore/metrics/{FIGURE}"
LIMIT = 150 * 1024


def _text(html: str) -> str:
    """The page's text, tags removed and whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_is_html_tagged_and_small(client: TestClient, name: str) -> None:
    page = client.get(PAGES[name], headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["dataset-version"] == "1"
    assert page.headers["cache-control"] == "public, max-age=60"
    if name != "source":  # the article page is exempt
        assert int(page.headers["content-length"]) < LIMIT
        assert len(page.content) < LIMIT
    assert '<html lang="en">' in page.text
    again = client.get(PAGES[name], headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304


def test_every_id_on_a_page_is_unique(client: TestClient) -> None:
    for path in PAGES.values():
        ids = re.findall(r'\sid="([^"]+)"', client.get(path).text)
        assert len(ids) == len(set(ids)), path


def test_servers_on_one_database_answer_the_same_pages(seeded_engine: Engine) -> None:
    """Two processes (each with its own string hashing) give the same bytes and ETags."""
    paths = [FIGURE_PAGE, "/explore/market"]
    answers = []
    for hash_seed in ("1", "2"):
        with serving(seeded_engine, PYTHONHASHSEED=hash_seed) as (_server, url):
            answers.append([httpx.get(url + path) for path in paths])
    for path, first, second in zip(paths, *answers, strict=True):
        assert first.status_code == second.status_code == 200
        assert first.headers["etag"] == second.headers["etag"], path
        assert first.text == second.text


def test_pages_reference_only_their_own_origin(client: TestClient) -> None:
    for path in PAGES.values():
        html = client.get(path).text
        for url in re.findall(r'(?:src|href)="([^"]+)"', html):
            assert url.startswith(("/", "#", "data:")), f"{path} refers to {url}"


# Links to what has no past: the documentation, the page's own assets, the empty favicon.
TIMELESS = ("/docs", "/redoc", "/openapi.json", "/explore/static/", "#", "data:")


def test_every_link_of_a_page_as_of_a_moment_keeps_it(client: TestClient) -> None:
    moment = client.get("/v1/releases").json()["items"][0]["created_at"]
    for path in PAGES.values():
        html = client.get(path, params={"as_of": moment}).text
        # All but the banner's way back to the live data.
        html = re.sub(r'<div class="banner".*?</div>', "", html, flags=re.S)
        for href in re.findall(r'href="([^"]+)"', html):
            if not href.startswith(TIMELESS):
                assert "as_of=" in href, f"{path} links {href}"
    # What the start page links as data, at that moment.
    html = client.get("/", params={"as_of": moment}).text
    for data in ["/v1/changes", "/v1/releases", "/v1/dataset.zip", "/v1/metrics.csv"]:
        assert re.search(rf'href="{data}\?as_of=[^"]+"', html), data


def test_a_page_is_computed_once_per_dataset_version(client: TestClient) -> None:
    cache = client.app.state.response_cache  # type: ignore[attr-defined]
    client.get("/explore/mna?limit_hint=1")
    hits = cache.hits
    assert client.get("/explore/mna?limit_hint=1").status_code == 200
    assert cache.hits == hits + 1


def test_the_start_page_says_what_the_dataset_is_and_links_every_section(
    client: TestClient,
) -> None:
    html = client.get("/").text
    text = _text(html)
    assert "42 figures on contract development and manufacturing organisations" in text
    for label, count in [
        ("Market", "10 figures"),
        ("Technologies", "11 figures · 4 items"),
        ("Regulatory outlook", "8 figures · 3 items"),
        ("Pricing models", "7 figures · 8 items"),
        ("M&A and partnerships", "6 figures"),
        ("Bottlenecks, ranked", "4 items"),
    ]:
        assert f"{label} {count}" in text
    assert 'action="/explore/metrics"' in html and 'name="q"' in html
    for href in ["/docs", "/redoc", "/openapi.json", "/v1", "/v1/dataset.zip", "/v1/metrics.csv"]:
        assert f'href="{href}"' in html
    for path in PAGES.values():
        assert f'href="{path}"' in html or path == "/" or "/metrics/" in path
    assert "67 changes in all" in text
    assert re.search(r"seed \S+ \(\d{4}-\d\d-\d\d, version 1\): 67 added, 0 changed", text)


def test_v1_answers_an_index_of_the_collections(client: TestClient) -> None:
    index = client.get("/v1")
    assert index.status_code == 200
    body = index.json()
    hrefs = [c["href"] for c in body["collections"]]
    for href in ["/v1/metrics", "/v1/market", "/v1/technologies", "/v1/regulatory/outlook",
                 "/v1/pricing-models", "/v1/mna", "/v1/bottlenecks", "/v1/faq", "/v1/sources",
                 "/v1/changes", "/v1/releases"]:  # fmt: skip
        assert href in hrefs
    for href in hrefs:
        assert client.get(href).status_code == 200, href
    assert body["docs"] == "/docs" and body["explorer"] == "/"
    # A read as every other: its dataset version, `as_of`, and no parameter it does not know.
    assert index.headers["Dataset-Version"] == "1"
    past = client.get("/v1", params={"as_of": "2001-01-01T00:00:00Z"})
    assert past.status_code == 200 and past.headers["Dataset-Version"] == "0"
    # Its addresses keep the moment: each answers at the version the index did.
    kept = "?as_of=2001-01-01T00%3A00%3A00Z"
    assert past.json() == {
        **body,
        "collections": [{**c, "href": c["href"] + kept} for c in body["collections"]],
        "explorer": "/" + kept,
    }
    for collection in past.json()["collections"]:
        answer = client.get(collection["href"])
        assert answer.status_code == 200 and answer.headers["dataset-version"] == "0"
    refused = client.get("/v1?x=1")
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"] == [
        {"in": "query", "name": "x", "detail": "Unknown parameter."}
    ]


def test_the_figure_page_states_the_range_its_sentence_chart_and_citations(
    client: TestClient,
) -> None:
    html = client.get(FIGURE_PAGE).text
    assert '<p class="headline" id="value-in-words">$45,000–$65,000, 2026</p>' in html
    assert (
        '<mark id="evidence">The average cost of manufacturing a single CAR-T dose via a CDMO is '
        "currently $45,000–$65,000, compared to $15,000 for a monoclonal antibody batch (per "
        "patient equivalent).</mark>"
    ) in html
    assert f'href="/explore/sources/{SOURCE}#m-{FIGURE}"' in html
    chart = re.search(r'<svg class="chart".*?</svg>', html, re.S)
    assert chart is not None
    assert "<title" in chart[0] and 'class="bar self"' in chart[0]
    assert 'class="bar baseline"' in chart[0]  # its baseline, the $15,000 antibody batch
    text = _text(html)
    assert (
        "Monoclonal antibody batch cost per patient equivalent its baseline $15,000, 2026" in text
    )
    assert "@misc{coreychem-future-of-cdmos-2026:metric:car-t-dose-manufacturing-cost," in html
    assert "CoreyChem Editorial Team. (2026, June 1)." in text
    assert "1 revision, newest first" in text
    assert "view as of this version" in text
    assert "Secondary attribution" not in text
    assert "Expired projection" not in text


def test_a_figure_cited_from_elsewhere_says_so(client: TestClient) -> None:
    text = _text(client.get("/explore/metrics/oncology-pipeline-personalized-share").text)
    assert "Secondary attribution: the source attributes this figure to IQVIA, 2024" in text


def test_an_expired_projection_is_marked(client: TestClient) -> None:
    expired = client.get("/v1/metrics", params={"horizon_passed": "true"}).json()["items"]
    assert expired, "the seed has projections for years now past"
    text = _text(client.get(f"/explore/metrics/{expired[0]['id']}").text)
    assert f"Expired projection. This was projected for {expired[0]['year']}" in text


def test_an_unknown_figure_or_source_is_an_html_404(client: TestClient) -> None:
    for path in ["/explore/metrics/no-such-figure", "/explore/sources/no-such-source"]:
        page = client.get(path)
        assert page.status_code == 404
        assert page.headers["content-type"].startswith("text/html")
        assert "no-such" in page.text


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def test_a_mistyped_explorer_address_is_the_not_found_page_for_a_browser(
    client: TestClient,
) -> None:
    for path in ["/explore", "/explore/", "/explore/nope", "/explore/metrics/a/b"]:
        page = client.get(path, headers={"Accept": BROWSER_ACCEPT})
        assert page.status_code == 404, path
        assert page.headers["content-type"] == "text/html; charset=utf-8", path
        assert "<h1>Not found</h1>" in page.text
        # An API client gets the problem any unknown address answers, by any method.
        for method in ["GET", "POST", "DELETE"]:
            answer = client.request(method, path, headers={"Accept": "application/json"})
            assert answer.status_code == 404, (method, path)
            assert answer.headers["content-type"] == "application/problem+json"
    # A page's address with a trailing slash is still that page.
    assert client.get("/explore/metrics/", headers={"Accept": BROWSER_ACCEPT}).status_code == 200
    assert client.get("/explore/static/explorer.css").status_code == 200


def test_a_malformed_as_of_is_a_problem(client: TestClient) -> None:
    answer = client.get("/", params={"as_of": "yesterday"})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"


def test_a_page_address_with_refused_parameters_is_explained_to_a_browser(
    client: TestClient,
) -> None:
    """A person who edits a page's address gets a page that says what is wrong and links to
    the page without it, not the problem+json an API client gets."""
    path = f"/explore/metrics/{FIGURE}"
    page = client.get(
        "/explore/metrics", params={"year": "soon", "colour": "red", "q": "cost"},
        headers={"Accept": BROWSER_ACCEPT},
    )  # fmt: skip
    assert page.status_code == 422
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "<code>year</code>: has &#39;soon&#39;" in page.text
    assert "<code>colour</code>: Unknown parameter." in page.text
    # The link leaves out what was refused, and only that: the search is kept.
    assert '<a href="/explore/metrics?q=cost">Open the page without them</a>' in page.text
    # A malformed as_of is not carried into the page's links.
    dated = client.get(path, params={"as_of": "yesterday"}, headers={"Accept": BROWSER_ACCEPT})
    assert dated.status_code == 422 and "yesterday" not in dated.text.split("<main")[1]
    assert f'<a href="{path}">Open the page without it</a>' in dated.text
    for accept in ["application/json", "application/problem+json", None]:
        answer = client.get(path, params={"as_of": "yesterday"}, headers={"Accept": accept or ""})
        assert answer.status_code == 422, accept
        assert answer.headers["content-type"] == "application/problem+json", accept


def test_a_page_address_not_utf8_percent_encoded_is_explained(client: TestClient) -> None:
    """`q=%ZZ` is not searched for as `%ZZ` (whose exports would then ask the API for it):
    a browser is shown which parameter and why, with the page without it."""
    page = client.get("/explore/metrics?q=%ZZ&category=market", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 422
    assert "<code>q</code>: A `%` that begins no escape: percent-encode it as %25." in page.text
    assert '<a href="/explore/metrics?category=market">Open the page without it</a>' in page.text
    latin1 = client.get("/explore/metrics?geography=%E9")
    assert latin1.status_code == 422


def test_a_page_past_the_last_says_so_and_links_the_first(client: TestClient) -> None:
    html = client.get("/explore/metrics", params={"q": "cost", "offset": "400"}).text
    total = client.get("/v1/metrics", params={"q": "cost"}).json()["total"]
    assert f"This page is past the last of the {total} figures." in _text(html)
    assert '<a href="/explore/metrics?q=cost">Go to the first page</a>' in html
    assert "No figure matches" not in html


def test_the_article_marks_every_figure_and_entity_verbatim(client: TestClient) -> None:
    html = client.get(f"/explore/sources/{SOURCE}").text
    linked = re.findall(r'<a class="figref" id="m-([a-z0-9-]+)" href="/explore/metrics/\1"', html)
    assert len(linked) == len(set(linked)) == 42
    text = client.get(f"/v1/sources/{SOURCE}/text").text
    article = re.search(r'<article class="source-text" lang="en">(.*)</article>', html, re.S)
    assert article is not None
    assert article[1].count('<mark class="figure">') == 32  # sentences; some state two figures
    assert article[1].count('<span class="entity"') == 24
    without_links = re.sub(r'<span class="figrefs">.*?</span>', "", article[1])
    blocks = re.sub(r"</?(?:p|li|h2|h3|ul)>", " ", without_links)
    shown = " ".join(unescape(re.sub(r"<[^>]+>", "", blocks)).split())
    # Every word in order, unchanged; bullet signs become the list's own markers.
    assert shown == " ".join(re.sub(r"(?m)^\s*•\s+", "", text).split())


def test_facets_are_links_that_combine_and_exports_keep_the_query(client: TestClient) -> None:
    html = client.get("/explore/metrics", params={"q": "cost", "category": "market"}).text
    assert "2 figures matching" in _text(html)
    assert 'href="/explore/metrics?category=market&amp;q=cost&amp;forecast=false"' in html
    assert 'href="/explore/metrics?q=cost" aria-label="Remove filter Category: Market"' in html
    assert 'href="/v1/metrics.csv?q=cost&amp;category=market"' in html
    assert 'href="/v1/metrics.ndjson?q=cost&amp;category=market"' in html
    assert 'href="/v1/metrics?q=cost&amp;category=market"' in html


def test_the_exports_of_a_page_leave_its_paging_out(client: TestClient) -> None:
    """A later page's exports are still the whole selection (an export refuses paging)."""
    params = {"unit": "USD", "limit": 2, "offset": 2, "count": "none"}
    html = client.get("/explore/metrics", params=params).text
    assert 'href="/v1/metrics.csv?unit=USD"' in html
    assert client.get("/v1/metrics.csv?unit=USD").status_code == 200


def test_an_empty_search_box_is_no_search(client: TestClient) -> None:
    # The start page's form, submitted empty, and the browser's form with its box cleared.
    for sent, landed, total in [
        ("/explore/metrics?q=", "/explore/metrics", "42 figures"),
        ("/explore/metrics?q=&category=market", "/explore/metrics?category=market", "10 figures"),
        ("/explore/metrics?q=+&as_of=2030-01-01T00%3A00%3A00Z", "/explore/metrics?as_of=2030-01-01T00%3A00%3A00Z", "42 figures"),
    ]:  # fmt: skip
        page = client.get(sent)
        assert page.status_code == 200, sent
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert str(page.url).removeprefix("http://testserver") == landed
        assert _text(page.text).count(total) >= 1, sent
        assert "q=&" not in page.text and 'q="' not in page.text  # no link carries it on
    # The JSON API still refuses it.
    assert client.get("/v1/metrics?q=").status_code == 422


def test_every_facet_value_is_a_link_showing_as_many_figures_as_it_counts(
    writable: Writable,
) -> None:
    w = writable
    # Values a list filter must quote: one with a comma, and the word null itself.
    odd = new_metric(subjects=["cell, gene therapy", "null"])
    assert w.client.post("/v1/metrics", json=odd, headers=w.auth()).status_code == 201
    html = w.client.get("/explore/metrics", params={"category": "regulatory"}).text
    assert "<li><span>" not in html  # no value is plain text, the no-value buckets included
    buckets = re.findall(
        r'<li><a href="([^"]+)">([^<]+)</a> <span class="count">(\d+)</span></li>', html
    )
    shown = {(unescape(label), int(count)) for _, label, count in buckets}
    assert {("cell, gene therapy", 1), ("null", 1)} <= shown
    assert any(label == "none" for label, _ in shown)  # e.g. Geography: not stated
    for href, label, count in buckets:
        page = w.client.get(unescape(href)).text
        found = re.search(r'id="result-count">(\d+) figure', page)
        assert found is not None and found[1] == count, (label, href)


def test_range_filters_are_named_and_written_as_the_api_writes_figures(
    client: TestClient,
) -> None:
    params = {"value_min": "20", "value_max": "50.5", "q": "cost"}
    total = client.get("/v1/metrics", params=params).json()["total"]
    html = client.get("/explore/metrics", params=params).text
    title = f"Figures — Minimum value: 20, Maximum value: 50.5, Search: cost ({total})"
    assert f"<title>{title} · CDMO Metrics</title>" in html
    text = _text(html)
    for chip in ["Minimum value: 20 ✕", "Maximum value: 50.5 ✕", "Search: cost ✕"]:
        assert chip in text
    assert "20.0" not in html and "search: 20" not in text
    assert 'aria-label="Remove Minimum value 20"' in html


SOURCE_TITLE = "Future of CDMOs in Personalized Cancer Medicine Manufacturing"


def test_facet_values_and_chips_are_in_words(client: TestClient) -> None:
    """A qualifier is `over`, not `gt`; a source its title, not its id; a measure `growth
    rate`; the filter's link still writes the value as the API takes it."""
    html = client.get("/explore/metrics", params={"qualifier": "gt,gte", "source": SOURCE}).text
    text = _text(html)
    assert "Qualifier: over, at least ✕" in text
    assert f"Source: {SOURCE_TITLE} ✕" in text
    facets = _text(client.get("/explore/metrics").text)
    for shown in ("exactly", "about", "growth rate", SOURCE_TITLE):
        assert shown in facets, shown
    projected = _text(client.get("/explore/metrics", params={"forecast": "true"}).text)
    assert "Projection: yes ✕" in projected
    assert re.search(
        r'href="/explore/metrics\?qualifier=gt">over</a>', client.get("/explore/metrics").text
    )


def test_a_search_lists_what_it_finds_in_the_other_sections(client: TestClient) -> None:
    """A name the article gives a contract model or a platform is no dead end: the figure
    browser lists the entries of the other sections the search finds, each linked to its
    place on its section's page."""
    html = client.get("/explore/metrics", params={"q": "fee-for-service"}).text
    found = re.findall(r'<a href="(/explore/(\w+)#([\w-]+))">([^<]+)</a>', html)
    assert ("pricing", "fee-for-service-cost-plus") in {(s, i) for _, s, i, _ in found}
    for href, _section, anchor, _name in found:
        page = client.get(href.split("#")[0]).text
        assert f'id="{anchor}"' in page, href
    api = client.get("/v1/pricing-models", params={"q": "fee-for-service"}).json()["total"]
    assert f"Pricing models ({api}):" in _text(html)
    none = client.get("/explore/metrics", params={"q": "zzzznothing"}).text
    assert "elsewhere in the dataset" not in none and "Every word must match" in _text(none)


def test_bad_filters_are_a_problem_not_a_page(client: TestClient) -> None:
    answer = client.get("/explore/metrics", params={"category": "weather"})
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (150000000000.0, "150,000,000,000"),
        (45000, "45,000"),
        (2026, "2026"),
        (0.5, "0.5"),
        (None, "—"),
        ([], "—"),
        (True, "yes"),
        (["cell therapy", "CAR-T"], "cell therapy, CAR-T"),
        ({"quote": "a" * 100, "start": 0, "end": 100}, "a" * 79 + "…"),
    ],
)
def test_the_history_shows_a_field_s_value_as_a_reader_reads_it(value: object, shown: str) -> None:
    assert words.field_value(value) == shown


def test_bottlenecks_are_listed_in_rank_order(client: TestClient) -> None:
    ranks = re.findall(r'<span class="rank">#(\d+)</span>', client.get("/explore/bottlenecks").text)
    assert ranks == ["1", "2", "3", "4"]


def test_the_market_page_charts_its_figures(client: TestClient) -> None:
    html = client.get("/explore/market").text
    assert html.count('<svg class="chart"') >= 1
    assert "projected" in html  # forecasts are told apart


def test_as_of_shows_the_data_then_and_says_so(writable: Writable) -> None:
    w = writable
    path = f"/v1/metrics/{FIGURE}"
    renamed = w.client.patch(
        path, json={"name": "Renamed dose cost"}, headers={**w.auth(), "If-Match": w.etag(path)}
    )
    assert renamed.status_code == 200
    now = _text(w.client.get(FIGURE_PAGE).text)
    assert "Renamed dose cost" in now and "2 revisions, newest first" in now
    assert "update metric car-t-dose-manufacturing-cost (name) by alice" in _text(
        w.client.get("/").text
    )
    # What the patch changed, before and after, as a reader names it.
    assert (
        "<li>Name: <del>CAR-T dose manufacturing cost via a CDMO</del> → "
        "<ins>Renamed dose cost</ins></li>" in w.client.get(FIGURE_PAGE).text
    )
    html = w.client.get(FIGURE_PAGE).text
    links = re.findall(r'href="(/explore/metrics/[^"?]+\?as_of=[^"]+)">view as of', html)
    assert len(links) == 2
    earlier = w.client.get(unescape(links[-1]))  # the first revision
    assert earlier.status_code == 200
    text = _text(earlier.text)
    assert "You are viewing the dataset as of" in text and "(dataset version 1)" in text
    assert "CAR-T dose manufacturing cost via a CDMO" in text
    assert "Renamed dose cost" not in text
    assert "1 revision, newest first" in text
    assert f'<a href="{FIGURE_PAGE}">View the current data</a>' in earlier.text
    # Its links keep the moment.
    assert re.search(r'href="/explore/metrics\?as_of=[^"]+"', earlier.text)


def test_latest_changes_link_no_page_that_is_gone(writable: Writable) -> None:
    w = writable
    created = w.client.post("/v1/metrics", json=new_metric(), headers=w.auth())
    assert created.status_code == 201
    path = created.headers["location"]
    deleted = w.client.delete(path, headers={**w.auth(), "If-Match": w.etag(path)})
    assert deleted.status_code == 204
    html = w.client.get("/").text
    changes = re.search(r'<ul class="changes".*?</ul>', html, re.S)
    assert changes is not None
    links = re.findall(r'href="([^"]+)"', changes[0])
    assert len(re.findall(r"<li", changes[0])) == 8  # the eight newest changes
    # Newest first: the deletion, then the creation (each links the figure as it stood).
    assert "quality-failure-cost-multiple-copy" in links[0] and links[0] > links[1]
    assert len(links) == 8 and "<code>" not in changes[0]  # every change is a link
    for href in links:
        page = w.client.get(unescape(href))
        assert page.status_code == 200, href
        anchor = unescape(href).partition("#")[2]  # an entry on its section's page
        assert not anchor or f'id="{anchor}"' in page.text, href
    # The deleted figure's entries show it as it stood: its name, under an as_of banner.
    gone = [unescape(href) for href in links if "quality-failure-cost-multiple-copy" in href]
    assert len(gone) == 2  # its creation and its deletion
    for href in gone:
        text = _text(w.client.get(href).text)
        assert "Quality failure cost multiple (copy)" in text
        assert "You are viewing the dataset as of" in text


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (150000000000, Unit.usd, "$150 billion"),
        (1500000000, Unit.usd, "$1.5 billion"),
        (45000, Unit.usd, "$45,000"),
        (123456789, Unit.usd, "$123,456,789"),
        (11.2, Unit.percent, "11.2%"),
        (3.5, Unit.ratio, "3.5×"),
        (14, Unit.months, "14 months"),
    ],
)
def test_amounts_in_words_are_exact(value: float, unit: Unit, expected: str) -> None:
    assert words.amount(value, unit) == expected


def test_figures_in_words_say_the_qualifier_direction_and_period(client: TestClient) -> None:
    def said(metric_id: str) -> str:
        data = client.get(f"/v1/metrics/{metric_id}").json()
        return words.in_words(MetricPublic.model_validate(data))

    assert said("personalized-cancer-medicine-market-size-2028") == (
        "over $150 billion, 2028 (projected)"
    )
    assert said("personalized-cancer-medicine-market-cagr") == (
        "up 11.2% a year, 2023–2028 (projected)"
    )
    assert said("ultra-personalized-annual-cost-reduction") == "down 8–10% a year"
    # Projected for a year now past: said so wherever the figure is said (the tables and the
    # figure's notice said "expired projection" beside "(projected)").
    assert said("distributed-cell-therapy-capacity-share-2025") == (
        "about 35%, 2025 (an expired projection)"
    )
    assert said(FIGURE) == "$45,000–$65,000, 2026"


def test_a_falling_growth_rate_reads_as_a_fall_wherever_it_is_shown(client: TestClient) -> None:
    falling = "ultra-personalized-annual-cost-reduction"
    page = client.get(f"/explore/metrics/{falling}").text
    assert '<p class="headline" id="value-in-words">down 8–10% a year</p>' in page
    table = client.get("/explore/metrics", params={"measure": "growth_rate"}).text
    assert re.findall(r'<td class="value">([^<]*)</td>', table) == [
        "up 28% a year", "up 11.2% a year", "down 8–10% a year",
    ]  # fmt: skip
    assert "Annual cost reduction for ultra-personalized products</a>: down 8–10% a year" in (
        client.get("/explore/pricing").text
    )
    article = client.get(f"/explore/sources/{SOURCE}").text
    assert f'id="m-{falling}" href="/explore/metrics/{falling}" aria-label="down 8–10% a year:' in (
        article
    )
    # A chart of changes both ways marks each bar's direction.
    labels = re.findall(
        r'<text class="label"[^>]*>([^<]*)</text>', client.get("/explore/pricing").text
    )
    assert "↑ Client retention increase with pay-…" in labels
    assert "↓ Sponsor upfront capital reduction w…" in labels


def test_a_chart_axis_reaches_past_its_highest_figure() -> None:
    bars = [
        charts.Bar("Shelf life", 48, 72, Qualifier.eq, "/x"),
        charts.Bar("Viability", 18, 72, Qualifier.eq, "/y"),
    ]
    svg = charts.interval_chart(bars, Unit.hours, "Durations", "Two ranges in hours.")
    for x, width in re.findall(
        r'<rect class="bar[^"]*" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', svg
    ):
        assert float(x) + float(width) <= charts.PLOT_RIGHT + 0.1
    assert ">80 hours</text>" in svg  # the axis ends on the tick after 72


def test_a_range_in_other_units_names_its_unit_once(client: TestClient) -> None:
    data = client.get("/v1/metrics/viral-vector-lead-time").json()
    assert words.figure(MetricPublic.model_validate(data)) == "12–18 months"


def test_a_figure_page_links_the_entries_it_quantifies(client: TestClient) -> None:
    html = client.get("/explore/metrics/closed-system-operator-variability-reduction").text
    assert (
        '<a href="/explore/technologies#closed-system-automation">'
        "technology: Automated closed-system bioreactors</a>"
    ) in html
    assert 'id="closed-system-automation"' in client.get("/explore/technologies").text


def test_pages_run_only_their_own_code_and_are_never_framed(client: TestClient) -> None:
    """The explorer's pages hold no inline script or style and load nothing from another
    origin, so a policy says as much: an injected script would not run, and no other site may
    frame a page (clickjacking). Every answer of the service, JSON and CSV included, forbids
    sniffing its type."""
    for path in ("/", "/explore/metrics?q=cell", "/explore/nowhere", "/explore/metrics?limit=x"):
        page = client.get(path, headers={"Accept": "text/html"})
        assert page.headers["content-type"].startswith("text/html"), path
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy, path
        assert "'unsafe-inline'" not in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in page.text and " style=" not in page.text
    for path in ("/v1/metrics", "/v1/metrics.csv", "/v1/nowhere", "/healthz"):
        for _ in range(2):  # computed, then (where it is kept) from the cache's edge
            assert client.get(path).headers["x-content-type-options"] == "nosniff", path


def test_a_figure_s_details_and_chart_say_what_it_is(client: TestClient) -> None:
    """The details keep the source's bound ("over $150 billion") and a point figure's one
    value; the chart's description names only what it draws."""
    over = _text(client.get("/explore/metrics/personalized-cancer-medicine-market-size-2028").text)
    assert "Value 150,000,000,000" in over
    assert "Bound over (as the source bounds it)" in over
    assert "Projection yes" in over
    ranged = client.get(FIGURE_PAGE).text
    assert "<dt>Range</dt><dd>45,000 – 65,000</dd>" in ranged and "<dt>Bound</dt>" not in ranged
    desc = re.search(r"<desc[^>]*>(.*?)</desc>", ranged, flags=re.DOTALL)
    assert desc is not None
    assert desc.group(1).endswith(", drawn beside its baseline in USD.")


def test_a_deleted_figure_s_page_says_so_and_links_its_last_version(writable: Writable) -> None:
    w = writable
    path = f"/v1/metrics/{FIGURE}"
    gone = w.client.delete(path, headers={**w.auth(), "If-Match": w.etag(path)})
    assert gone.status_code == 204
    page = w.client.get(FIGURE_PAGE)
    assert page.status_code == 404
    assert "It was deleted on" in page.text and "by alice" in page.text
    last = re.search(r'href="([^"]+)">See its last version', page.text)
    assert last is not None
    before = w.client.get(unescape(last.group(1)))
    assert before.status_code == 200
    assert "CAR-T dose manufacturing cost via a CDMO" in _text(before.text)
    never = w.client.get("/explore/metrics/never-was")
    assert never.status_code == 404 and "It was deleted" not in never.text


def test_a_moment_before_any_figure_says_so(client: TestClient) -> None:
    page = client.get("/explore/metrics", params={"as_of": "1999-01-01T00:00:00Z"})
    assert page.status_code == 200
    text = _text(page.text)
    assert "The dataset held no figure at this moment." in text
    assert "Clear every filter" not in text
    assert '<a href="/explore/metrics">View the current data</a>' in page.text


def test_facet_values_combine(client: TestClient) -> None:
    """A facet with a value chosen offers its other values as additions (any of them matches,
    as the API's lists do), and each chosen one as a removal of itself alone."""
    one = client.get("/explore/metrics", params={"category": "market"}).text
    assert 'href="/explore/metrics?category=market%2Cmna"' in one
    two = client.get("/explore/metrics", params={"category": "market,mna"})
    assert two.status_code == 200
    removals = re.findall(r'<li class="selected"><a href="([^"]+)"', two.text)
    assert sorted(unescape(href) for href in removals) == [
        "/explore/metrics?category=market",
        "/explore/metrics?category=mna",
    ]
    api_total = client.get("/v1/metrics", params={"category": "market,mna"}).json()["total"]
    assert f"{api_total} figures matching" in _text(two.text)
