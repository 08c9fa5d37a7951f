"""Citing a source, and quoting a record correctly: CSL styles, BibTeX, RIS, CSL-JSON."""

import json
from datetime import UTC, datetime
from urllib.parse import quote_plus

import bibtexparser
import pytest
from bibtexparser.middlewares import LatexDecodingMiddleware
from fastapi.testclient import TestClient

from tests.helpers import Writable

SOURCE = "/v1/sources/coreychem-future-of-cdmos-2026"
METRIC = "/v1/metrics/car-t-dose-manufacturing-cost"
QUOTE = (
    '"The average cost of manufacturing a single CAR-T dose via a CDMO is currently '
    "$45,000–$65,000, compared to $15,000 for a monoclonal antibody batch (per patient "
    'equivalent)."'
)
# The quote before a parenthetical citation, which the sentence's period follows.
UNENDED = QUOTE.removesuffix('."') + '"'
TITLE = "Future of CDMOs in Personalized Cancer Medicine Manufacturing"
STYLES = {
    "apa": (
        f"{UNENDED} (CoreyChem Editorial Team, 2026).",
        f"CoreyChem Editorial Team. (2026, June 1). {TITLE}. CoreyChem.",
    ),
    "vancouver": (f"{UNENDED} (1).", f"1. CoreyChem Editorial Team. {TITLE}. CoreyChem; 2026."),
    "ama": (f"{QUOTE} 1", f"1. CoreyChem Editorial Team. {TITLE}. CoreyChem. June 1, 2026."),
    "chicago": (
        f"{UNENDED} (CoreyChem Editorial Team 2026).",
        f"CoreyChem Editorial Team. 2026. “{TITLE}.” CoreyChem, June 1.",
    ),
}
ITEMS = [
    SOURCE,
    METRIC,
    "/v1/technologies/closed-system-automation",
    "/v1/pricing-models/value-based-pricing",
    "/v1/regulatory/outlook/fda-platform-technology-designation",
    "/v1/bottlenecks/viral-vector-capacity",
    "/v1/faq/scaling-bottlenecks",
]


def test_apa_is_the_default_style(client: TestClient) -> None:
    response = client.get(f"{SOURCE}/citation")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == STYLES["apa"][1] + "\n"


@pytest.mark.parametrize("style", STYLES)
def test_a_metric_in_each_style_quotes_its_sentence(client: TestClient, style: str) -> None:
    quoted, reference = STYLES[style]
    response = client.get(f"{METRIC}/citation", params={"style": style})
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == f"{quoted}\n\n{reference}\n"
    source = client.get(f"{SOURCE}/citation", params={"style": style})
    assert source.text == reference + "\n"


def test_a_quote_without_a_period_is_still_followed_by_one(client: TestClient) -> None:
    response = client.get("/v1/bottlenecks/viral-vector-capacity/citation")
    assert response.text.split("\n")[0] == (
        '"(1) viral vector production capacity, which remains constrained globally with lead '
        'times of 12-18 months" (CoreyChem Editorial Team, 2026).'
    )


def test_bibtex(client: TestClient) -> None:
    response = client.get(f"{SOURCE}/citation.bib")
    assert response.headers["content-type"] == "application/x-bibtex; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="coreychem-future-of-cdmos-2026.bib"'
    )
    assert response.text == (
        "@misc{coreychem-future-of-cdmos-2026,\n"
        "  author = {{CoreyChem Editorial Team}},\n"
        f"  title = {{{TITLE}}},\n"
        "  publisher = {CoreyChem},\n"
        "  year = {2026},\n"
        "  month = {6},\n"
        "  date = {2026-06-01}\n"
        "}\n"
    )
    quoted = client.get(f"{METRIC}/citation.bib").text
    assert (
        "  note = {Quoted: ``The average cost of manufacturing a single CAR-T dose via a CDMO is "
        "currently \\$45,000–\\$65,000, compared to \\$15,000" in quoted
    )


def test_ris(client: TestClient) -> None:
    response = client.get(f"{METRIC}/citation.ris")
    assert response.headers["content-type"] == "application/x-research-info-systems; charset=utf-8"
    assert response.headers["content-disposition"] == (
        'attachment; filename="car-t-dose-manufacturing-cost.ris"'
    )
    assert response.text == (
        "TY  - ELEC\r\n"
        "ID  - coreychem-future-of-cdmos-2026:metric:car-t-dose-manufacturing-cost\r\n"
        "AU  - CoreyChem Editorial Team\r\n"
        f"TI  - {TITLE}\r\n"
        "PB  - CoreyChem\r\n"
        "PY  - 2026\r\n"
        "DA  - 2026/06/01/\r\n"
        f"N1  - Quoted: {QUOTE}\r\n"
        "ER  -\r\n"
    )


def test_two_figures_of_one_source_are_two_entries(client: TestClient) -> None:
    """Cited side by side (one .bib file, one reference manager), two records of one source
    are two entries: each keyed by its source's id and its own; a source by its own id."""
    other = "/v1/metrics/viral-vector-lead-time"
    keys = {
        path: (
            client.get(f"{path}/citation.bib").text.split(",", 1)[0],
            client.get(f"{path}/citation.ris").text.split("\r\n")[1],
            json.loads(client.get(f"{path}/citation.json").text)[0]["id"],
        )
        for path in (METRIC, other, SOURCE, "/v1/faq/scaling-bottlenecks")
    }
    key = "coreychem-future-of-cdmos-2026:metric:car-t-dose-manufacturing-cost"
    assert keys[METRIC] == (f"@misc{{{key}", f"ID  - {key}", key)
    assert keys[other][2] == "coreychem-future-of-cdmos-2026:metric:viral-vector-lead-time"
    assert keys[SOURCE][2] == "coreychem-future-of-cdmos-2026"
    assert keys["/v1/faq/scaling-bottlenecks"][2] == (
        "coreychem-future-of-cdmos-2026:faq:scaling-bottlenecks"
    )
    assert client.get(f"{other}/citation").status_code == 200  # styled with the same key


def test_csl_json(client: TestClient) -> None:
    response = client.get(f"{SOURCE}/citation.json")
    assert (
        response.headers["content-type"] == "application/vnd.citationstyles.csl+json; charset=utf-8"
    )
    assert json.loads(response.text) == [
        {
            "id": "coreychem-future-of-cdmos-2026",
            "type": "webpage",
            "title": TITLE,
            "author": [{"literal": "CoreyChem Editorial Team"}],
            "publisher": "CoreyChem",
            "issued": {"date-parts": [[2026, 6, 1]]},
            "container-title": "CoreyChem",
        }
    ]


@pytest.mark.parametrize("path", ITEMS)
def test_every_item_has_its_four_citations(client: TestClient, path: str) -> None:
    item = client.get(path).json()
    cited = json.loads(client.get(f"{path}/citation.json").text)
    if path == SOURCE:
        assert "note" not in cited[0]
    else:
        assert cited[0]["note"] == f'"{item["evidence"]["quote"]}"'
    for suffix in ("", ".bib", ".ris"):
        assert client.get(f"{path}/citation{suffix}").status_code == 200


def test_a_ris_record_keeps_each_field_on_its_tag_line(writable: Writable) -> None:
    # RIS is a tag per line: a title, author or publisher holding a line break (text fields
    # allow one) ended its line early, and a line after it reading "ER  -" closed the record,
    # "TY  - ..." began another. Each field's line breaks are spaces in RIS.
    w = writable
    title = "Line one\nER  -\nTY  - JOUR\nTI  - Injected"
    patched = w.client.patch(
        SOURCE,
        json={"title": title, "publisher": "Corey\nChem", "author": "Editorial \u2028\n Team"},
        headers={**w.auth("root"), "If-Match": w.etag(SOURCE)},
    )
    assert patched.status_code == 200, patched.text
    for path in (SOURCE, METRIC):
        text = w.client.get(f"{path}/citation.ris").text
        lines = text.split("\r\n")
        assert lines[-1] == "" and "\n" not in "".join(lines), text
        assert [line[:6] for line in lines[:-1]] == [
            "TY  - ", "ID  - ", "AU  - ", "TI  - ", "PB  - ", "PY  - ", "DA  - ",
            *(["N1  - "] if path == METRIC else []), "ER  -",
        ]  # fmt: skip
        assert "TI  - Line one ER  - TY  - JOUR TI  - Injected\r\n" in text
        assert "PB  - Corey Chem\r\n" in text and "AU  - Editorial Team\r\n" in text


def test_a_ris_date_has_four_digit_years(writable: Writable) -> None:
    """RIS writes YYYY/MM/DD/: a year before 1000 keeps its zeros (strftime dropped them on
    this platform: "1/01/01/")."""
    w = writable
    patched = w.client.patch(
        SOURCE,
        json={"published_on": "0999-03-04"},
        headers={**w.auth("root"), "If-Match": w.etag(SOURCE)},
    )
    assert patched.status_code == 200, patched.text
    text = w.client.get(f"{SOURCE}/citation.ris").text
    assert "PY  - 0999\r\nDA  - 0999/03/04/\r\n" in text


def test_bibtex_escapes_latex_and_round_trips_through_a_parser(writable: Writable) -> None:
    w = writable
    # (^ too is escaped, as \textasciicircum{}; pylatexenc reads that back as U+02C6.)
    title = r"Costs of $45,000–$65,000 & 100% of #1_{x} ~ \ done"
    url = "https://example.com/a_b?x=1&y=50%#top"
    patched = w.client.patch(
        SOURCE,
        json={"title": title, "url": url},
        headers={**w.auth("root"), "If-Match": w.etag(SOURCE)},
    )
    assert patched.status_code == 200, patched.text
    text = w.client.get(f"{METRIC}/citation.bib").text
    assert (
        r"title = {Costs of \$45,000–\$65,000 \& 100\% of \#1\_\{x\} "
        r"\textasciitilde{} \textbackslash{} done}"
    ) in text
    library = bibtexparser.parse_string(text, append_middleware=[LatexDecodingMiddleware()])
    assert not library.failed_blocks
    (entry,) = library.entries
    fields = {field.key: field.value for field in entry.fields}
    assert fields["title"] == title
    assert f"url = {{{url}}}" in text  # verbatim, as biblatex reads a url: no backslashes
    raw = bibtexparser.parse_string(text)
    assert {field.key: field.value for field in raw.entries[0].fields}["url"] == url
    assert fields["author"] == "CoreyChem Editorial Team"
    assert fields["note"].startswith("Quoted: “The average cost of manufacturing")
    assert "$45,000–$65,000" in fields["note"]


def test_a_citation_tag_changes_when_its_source_does(writable: Writable) -> None:
    w = writable
    before = {suffix: w.client.get(f"{METRIC}/citation{suffix}") for suffix in ("", ".bib")}
    patched = w.client.patch(
        SOURCE,
        json={"title": "A new title"},
        headers={**w.auth("root"), "If-Match": w.etag(SOURCE)},
    )
    assert patched.status_code == 200
    for suffix, old in before.items():
        new = w.client.get(f"{METRIC}/citation{suffix}")
        assert "A new title" in new.text
        assert new.headers["etag"] != old.headers["etag"]
        unchanged = w.client.get(
            f"{METRIC}/citation{suffix}", headers={"If-None-Match": new.headers["etag"]}
        )
        assert unchanged.status_code == 304
        stale = w.client.get(
            f"{METRIC}/citation{suffix}", headers={"If-None-Match": old.headers["etag"]}
        )
        assert stale.status_code == 200


@pytest.mark.parametrize(
    ("title", "style", "reference"),
    [
        # A title's own question mark ends it: no period after it, inside or outside quotes.
        ("Will CDMOs Scale?", "apa", "CoreyChem Editorial Team. (2026, June 1). Will CDMOs Scale? CoreyChem."),
        ("Will CDMOs Scale?", "chicago", "CoreyChem Editorial Team. 2026. “Will CDMOs Scale?” CoreyChem, June 1."),
        ("Will CDMOs Scale?", "ama", "1. CoreyChem Editorial Team. Will CDMOs Scale? CoreyChem. June 1, 2026."),
        ("CDMOs, Inc.", "chicago", "CoreyChem Editorial Team. 2026. “CDMOs, Inc.” CoreyChem, June 1."),
    ],
)  # fmt: skip
def test_a_title_ending_in_punctuation_gets_no_second_mark(
    writable: Writable, title: str, style: str, reference: str
) -> None:
    w = writable
    patched = w.client.patch(
        SOURCE, json={"title": title}, headers={**w.auth("root"), "If-Match": w.etag(SOURCE)}
    )
    assert patched.status_code == 200, patched.text
    assert w.client.get(f"{SOURCE}/citation", params={"style": style}).text == reference + "\n"


def test_a_report_in_each_style(writable: Writable) -> None:
    """A report names its publisher, not a site; Citing Medicine dates it "2026 Sep"."""
    w = writable
    patched = w.client.patch(
        SOURCE,
        json={"kind": "report", "published_on": "2026-09-15"},
        headers={**w.auth("root"), "If-Match": w.etag(SOURCE)},
    )
    assert patched.status_code == 200, patched.text
    assert "container-title" not in json.loads(w.client.get(f"{SOURCE}/citation.json").text)[0]
    references = {
        "apa": f"CoreyChem Editorial Team. (2026). {TITLE}. CoreyChem.",
        "vancouver": f"1. CoreyChem Editorial Team. {TITLE}. CoreyChem; 2026 Sep.",
        "ama": f"1. CoreyChem Editorial Team. {TITLE}. CoreyChem; 2026.",
        "chicago": f"CoreyChem Editorial Team. 2026. {TITLE}. CoreyChem.",
    }
    for style, reference in references.items():
        cited = w.client.get(f"{SOURCE}/citation", params={"style": style})
        assert cited.text == reference + "\n", style


@pytest.mark.parametrize(("kind", "csl_type"), [("dataset", "dataset"), ("filing", "document")])
def test_ama_names_the_publisher_of_a_dataset_and_a_filing(
    writable: Writable, kind: str, csl_type: str
) -> None:
    """AMA's CSL file reads a data set or a document as a journal article (no journal, so no
    publisher, and "Published online"); cited as a report, it names the publisher and the year.
    The other styles, and the CSL-JSON's type, are as they were."""
    w = writable
    patched = w.client.patch(
        SOURCE,
        json={"kind": kind, "published_on": "2026-09-15"},
        headers={**w.auth("root"), "If-Match": w.etag(SOURCE)},
    )
    assert patched.status_code == 200, patched.text
    assert json.loads(w.client.get(f"{SOURCE}/citation.json").text)[0]["type"] == csl_type
    references = {
        "apa": f"CoreyChem Editorial Team. (2026). {TITLE} [Dataset]. CoreyChem."
        if kind == "dataset"
        else f"CoreyChem Editorial Team. (2026, September 15). {TITLE}. CoreyChem.",
        "vancouver": f"1. CoreyChem Editorial Team. {TITLE}. CoreyChem; 2026.",
        "ama": f"1. CoreyChem Editorial Team. {TITLE}. CoreyChem; 2026.",
        "chicago": f"CoreyChem Editorial Team. 2026. “{TITLE}.” CoreyChem, September 15.",
    }
    for style, reference in references.items():
        cited = w.client.get(f"{SOURCE}/citation", params={"style": style})
        assert cited.text == reference + "\n", style
    quoted = w.client.get(f"{METRIC}/citation", params={"style": "ama"}).text
    assert quoted == f"{STYLES['ama'][0]}\n\n{references['ama']}\n"


def test_a_date_run_together_by_citeproc_is_spaced() -> None:
    from api.citations import _spaced_dates

    assert _spaced_dates("CoreyChem; 2026Sep15 [cited 2026Nov2]. 2026Jun.") == (
        "CoreyChem; 2026 Sep 15 [cited 2026 Nov 2]. 2026 Jun."
    )
    assert _spaced_dates("FY2026Q1; 12026Sep; 2026September") == "FY2026Q1; 12026Sep; 2026September"


def test_citation_errors(client: TestClient) -> None:
    missing = client.get("/v1/sources/nope/citation.ris")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "There is no source 'nope'."
    assert client.get("/v1/metrics/nope/citation").status_code == 404
    bad_style = client.get(f"{SOURCE}/citation", params={"style": "mla"})
    assert bad_style.status_code == 422
    assert bad_style.json()["errors"][0]["name"] == "style"
    refused = client.get(f"{SOURCE}/citation.bib", headers={"Accept": "application/json"})
    assert refused.status_code == 406


def test_latex_escapes_every_special_character() -> None:
    from api.citations import latex

    assert latex("\\{}$&%#_^~") == (
        r"\textbackslash{}\{\}\$\&\%\#\_\textasciicircum{}\textasciitilde{}"
    )


def test_every_kind_of_source_has_a_citation_type() -> None:
    """A source of any kind can be cited (the fuzzer found a filing answered 500)."""
    from api.citations import CSL_TYPES, RIS_TYPES
    from api.vocabulary import SourceKind

    assert set(CSL_TYPES) == set(RIS_TYPES) == {kind.value for kind in SourceKind}


@pytest.mark.parametrize(
    ("style", "operation"),
    [("bibtex", "citation.bib"), ("ris", "citation.ris"), ("csl-json", "citation.json")],
)
def test_a_style_with_an_operation_of_its_own_is_redirected_there(
    client: TestClient, style: str, operation: str
) -> None:
    """DESIGN names BibTeX, RIS and CSL-JSON among the styles of `citation?style=`; each is an
    operation of its own (one media type per operation), so `?style=` sends the client there,
    with its other parameters, by a relative URL."""
    as_of = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # the seed is older
    moved = client.get(
        f"{METRIC}/citation", params={"style": style, "as_of": as_of}, follow_redirects=False
    )
    assert moved.status_code == 308, moved.text
    assert moved.headers["location"] == f"{operation}?as_of={quote_plus(as_of)}"
    followed = client.get(f"{METRIC}/citation", params={"style": style, "as_of": as_of})
    direct = client.get(f"{METRIC}/{operation}", params={"as_of": as_of})
    assert followed.status_code == direct.status_code == 200
    assert (
        followed.content == direct.content
        and followed.headers["content-type"] == (direct.headers["content-type"])
    )
    bare = client.get(f"{METRIC}/citation", params={"style": style}, follow_redirects=False)
    assert bare.headers["location"] == operation
