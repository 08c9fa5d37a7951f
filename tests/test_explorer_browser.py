"""The explorer in a real browser: Debian's Chromium, headless, driven by Playwright.

Each page loads with no console error and no request to another origin; searching and facets
narrow the table; the figure page and the article show and link what they promise; axe-core
(tests/browser/node_modules, installed by `make test`) finds no serious or critical violation.
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Page, Playwright, Request, sync_playwright

from api import PROJECT_ROOT
from tests.browser.pages import CHROMIUM_PATH, FIGURE, PAGES, SOURCE, launch

AXE = Path(__file__).parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM_PATH), reason="Chromium is not installed (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


class Visit:
    """A page and what it did: console errors, page errors, requests to other origins."""

    def __init__(self, page: Page, origin: str) -> None:
        self.page = page
        self.errors: list[str] = []
        self.foreign: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", self._request)
        self.origin = origin

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"{message.type}: {message.text}")

    def _request(self, request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme in ("data", "about", "blob"):
            return
        if f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(request.url)

    def go(self, path: str) -> None:
        response = self.page.goto(self.origin + path, wait_until="load")
        assert response is not None and response.status == 200, path


@pytest.fixture
def visit(playwright: Playwright, server_url: str) -> Iterator[Visit]:
    browser = launch(playwright)
    try:
        yield Visit(browser.new_page(), server_url)
    finally:
        browser.close()


@pytest.mark.parametrize("name", list(PAGES))
def test_page_loads_with_no_console_error_and_nothing_from_elsewhere(
    visit: Visit, name: str
) -> None:
    visit.go(PAGES[name])
    visit.page.wait_for_load_state("networkidle")
    assert visit.page.locator("html").get_attribute("lang") == "en"
    assert visit.page.title().endswith("· CDMO Metrics")
    assert visit.page.locator("main h1").count() == 1
    assert visit.errors == []
    assert visit.foreign == []


# axe-core's default rules, and WCAG 2.2 AA's (such as target-size), which it leaves off unless
# asked for.
AXE_RUN = """async () => {
    const wcag22 = Object.fromEntries(
        axe.getRules(['wcag22aa']).map(rule => [rule.ruleId, {enabled: true}]));
    return JSON.stringify(await axe.run(document, {rules: wcag22}));
}"""


@pytest.mark.parametrize("name", list(PAGES))
def test_axe_finds_no_serious_or_critical_violation(visit: Visit, name: str) -> None:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `make test` (npm ci --prefix tests/browser)")
    visit.go(PAGES[name])
    # Run by the browser's debugging protocol, which the page's policy (no inline script) does
    # not govern, as a script tag would be.
    visit.page.evaluate(AXE.read_text(encoding="utf-8"))
    results = visit.page.evaluate(AXE_RUN)
    violations = [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in json.loads(results)["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert violations == []


# The rendered size of a chart's label text: its font size scaled as its SVG is.
CHART_TEXT_PX = """() => [...document.querySelectorAll('svg.chart')].map(svg => {
    const label = svg.querySelector('text.label');
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    return parseFloat(getComputedStyle(label).fontSize) * scale;
})"""


@pytest.mark.parametrize("name", list(PAGES))
def test_a_phone_screen_needs_no_sideways_scrolling_and_charts_stay_readable(
    playwright: Playwright, server_url: str, name: str
) -> None:
    browser = launch(playwright)
    try:
        page = browser.new_page(viewport={"width": 360, "height": 740})
        page.goto(server_url + PAGES[name], wait_until="load")
        # Wide tables and charts scroll in their own frames; the page itself does not.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        assert all(size >= 11 for size in page.evaluate(CHART_TEXT_PX))
    finally:
        browser.close()


def test_a_search_on_a_phone_shows_its_results_on_the_first_screen(
    playwright: Playwright, server_url: str
) -> None:
    """The table comes before the facets: on a phone the count and the first rows are on the
    first screen (the facets below, a link away), and a keyboard reaches the first result
    before any facet; on a wide screen the facets stand to the table's left."""
    browser = launch(playwright)
    try:
        page = browser.new_page(viewport={"width": 375, "height": 812})
        page.goto(server_url + "/explore/metrics?q=cost", wait_until="load")
        count = page.locator("#result-count").bounding_box()
        first_row = page.locator("table tbody tr").first.bounding_box()
        assert count is not None and first_row is not None
        assert first_row["y"] + first_row["height"] <= 812
        assert page.locator(".to-facets").is_visible()
        facets = page.locator("#facets-h").bounding_box()
        assert facets is not None and facets["y"] > first_row["y"]
        page.set_viewport_size({"width": 1280, "height": 800})
        facets = page.locator("#facets-h").bounding_box()
        count = page.locator("#result-count").bounding_box()
        assert facets is not None and count is not None and facets["x"] < count["x"]
        assert not page.locator(".to-facets").is_visible()
        # Keyboard: from the search button, the first stops are the table's, not the facets'.
        page.locator("form.search button").focus()
        for _ in range(8):
            page.keyboard.press("Tab")
            inside = page.evaluate("document.activeElement.closest('.results, .facets').className")
            assert inside == "results"
            if page.evaluate("!!document.activeElement.closest('tbody')"):
                break
        else:
            pytest.fail("eight tabs did not reach the first result")
    finally:
        browser.close()


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_documentation_every_footer_links_needs_no_other_origin(
    visit: Visit, path: str
) -> None:
    visit.go(path)
    visit.page.wait_for_load_state("networkidle")
    visit.page.locator(".opblock, .menu-content").first.wait_for()  # the document is shown
    visit.page.wait_for_load_state("networkidle")
    assert visit.foreign == []
    assert visit.errors == []


def _rows(page: Page) -> list[str]:
    return page.locator("main table tbody tr td:first-child").all_inner_texts()


def test_searching_and_clicking_facets_narrow_the_table(visit: Visit) -> None:
    visit.go("/explore/metrics")
    assert visit.page.locator("#result-count").inner_text().startswith("42 figures")
    visit.page.get_by_label("Search", exact=True).fill("cost")
    visit.page.get_by_role("button", name="Search").click()
    visit.page.wait_for_url("**/explore/metrics?q=cost")
    searched = _rows(visit.page)
    assert "CAR-T dose manufacturing cost via a CDMO" in searched
    assert len(searched) == 8
    assert visit.page.locator("#result-count").inner_text().startswith("8 figures")

    # A facet narrows the searched figures further, and its count said by how much.
    facet = visit.page.locator("#facet-category + ul li", has_text="Market")
    count = int(facet.locator(".count").inner_text())
    facet.get_by_role("link").click()
    visit.page.wait_for_url("**/explore/metrics?q=cost&category=market")
    narrowed = _rows(visit.page)
    assert count == 2
    assert sorted(narrowed) == [
        "CAR-T dose manufacturing cost via a CDMO",
        "Monoclonal antibody batch cost per patient equivalent",
    ]

    # Facets combine: a second one narrows again, and the selected one can be removed.
    visit.page.locator("#facet-forecast + ul li", has_text="no").get_by_role("link").click()
    assert "forecast=false" in visit.page.url and "category=market" in visit.page.url
    assert set(_rows(visit.page)) <= set(narrowed)
    visit.page.get_by_role("link", name="Remove filter Category: Market").click()
    assert "category=" not in visit.page.url and "forecast=false" in visit.page.url

    # The query as a link to share, and as data.
    assert visit.page.locator("#share-url").input_value() == visit.page.url
    csv = visit.page.get_by_role("link", name="CSV", exact=True).get_attribute("href")
    assert csv == "/v1/metrics.csv?forecast=false&q=cost"
    assert visit.errors == [] and visit.foreign == []


def test_clearing_the_search_box_shows_every_figure_of_the_other_filters(visit: Visit) -> None:
    visit.go("/explore/metrics?q=cost&category=market")
    box = visit.page.get_by_label("Search", exact=True)
    box.fill("")
    box.press("Enter")
    visit.page.wait_for_url("**/explore/metrics?category=market")
    assert visit.page.locator("#result-count").inner_text().startswith("10 figures")
    visit.go("/")
    visit.page.get_by_role("button", name="Search").click()
    visit.page.wait_for_url("**/explore/metrics")
    assert visit.page.locator("#result-count").inner_text().startswith("42 figures")
    assert visit.errors == []


def test_sorting_and_paging_the_table(visit: Visit) -> None:
    visit.go("/explore/metrics?limit=10")
    visit.page.get_by_role("link", name="Year").click()
    first = _rows(visit.page)
    assert len(first) == 10 and "sort=year" in visit.page.url
    assert visit.page.locator("th[aria-sort=ascending]").inner_text().startswith("Year")
    visit.page.get_by_role("link", name="Next 10").click()
    assert "offset=10" in visit.page.url and "sort=year" in visit.page.url
    second = _rows(visit.page)
    assert len(second) == 10 and not set(first) & set(second)


def test_the_figure_page_states_the_range_highlights_its_sentence_and_draws_its_chart(
    visit: Visit,
) -> None:
    visit.go(f"/explore/metrics/{FIGURE}")
    page = visit.page
    assert page.locator("h1").inner_text() == "CAR-T dose manufacturing cost via a CDMO"
    assert page.locator("#value-in-words").inner_text() == "$45,000–$65,000, 2026"
    assert page.locator("blockquote mark#evidence").inner_text() == (
        "The average cost of manufacturing a single CAR-T dose via a CDMO is currently "
        "$45,000–$65,000, compared to $15,000 for a monoclonal antibody batch (per patient "
        "equivalent)."
    )
    chart = page.locator("#context-chart svg")
    assert chart.is_visible()
    assert chart.locator("title").first.text_content() == (
        "CAR-T dose manufacturing cost via a CDMO in context"
    )
    # The range is a bar; its baseline (a point figure, $15,000) is a dot.
    assert chart.locator("rect.bar.self").count() == 1
    assert chart.locator("circle.bar.baseline").count() == 1
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 60
    # The article view, at the figure's own link.
    page.get_by_role("link", name="Future of CDMOs in Personalized Cancer Medicine Manufacturing")
    page.locator(f'a[href="/explore/sources/{SOURCE}#m-{FIGURE}"]').click()
    assert page.locator(f"#m-{FIGURE}").is_visible()
    assert visit.errors == []


def test_the_article_links_all_42_figures_from_their_highlighted_sentences(visit: Visit) -> None:
    visit.go(f"/explore/sources/{SOURCE}")
    linked = visit.page.eval_on_selector_all(
        "article mark.figure a[href^='/explore/metrics/']",
        "links => links.map(a => a.getAttribute('href').split('/').pop())",
    )
    assert len(linked) == len(set(linked)) == 42
    figure = visit.page.locator(f"article mark.figure:has(#m-{FIGURE})")
    assert figure.inner_text().startswith(
        "The average cost of manufacturing a single CAR-T dose via a CDMO"
    )
    visit.page.locator(f"#m-{FIGURE}").click()
    visit.page.wait_for_url(f"**/explore/metrics/{FIGURE}")
    assert visit.page.locator("#value-in-words").inner_text() == "$45,000–$65,000, 2026"


def test_the_explorer_benchmark_runs(tmp_path: Path) -> None:
    """bench/explorer.py (one round, SQLite) runs and reports every page; no timing asserted."""
    result = subprocess.run(
        [sys.executable, "bench/explorer.py", "--databases", "sqlite", "--repeat", "1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("| sqlite |") == 12
    assert f"| `/explore/metrics/{FIGURE}` | sqlite |" in result.stdout
