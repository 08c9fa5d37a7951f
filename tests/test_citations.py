"""Citing a source, and quoting a figure correctly."""

import json

import pytest
from fastapi.testclient import TestClient

SOURCE = "/v1/sources/coreychem-future-of-cdmos-2026"
APA = (
    "CoreyChem Editorial Team. (2026, June 1). Future of CDMOs in Personalized Cancer "
    "Medicine Manufacturing. CoreyChem.\n"
)


def test_apa_is_the_default_style(client: TestClient) -> None:
    response = client.get(f"{SOURCE}/citation")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == APA


def test_bibtex(client: TestClient) -> None:
    response = client.get(f"{SOURCE}/citation", params={"style": "bibtex"})
    assert response.headers["content-type"] == "application/x-bibtex; charset=utf-8"
    assert response.text == (
        "@misc{coreychem-future-of-cdmos-2026,\n"
        "  author = {{CoreyChem Editorial Team}},\n"
        "  title = {Future of CDMOs in Personalized Cancer Medicine Manufacturing},\n"
        "  publisher = {CoreyChem},\n"
        "  year = {2026},\n"
        "  month = {6},\n"
        "  date = {2026-06-01}\n"
        "}\n"
    )


def test_csl_json(client: TestClient) -> None:
    response = client.get(f"{SOURCE}/citation", params={"style": "csl-json"})
    assert (
        response.headers["content-type"] == "application/vnd.citationstyles.csl+json; charset=utf-8"
    )
    assert json.loads(response.text) == [
        {
            "id": "coreychem-future-of-cdmos-2026",
            "type": "article",
            "title": "Future of CDMOs in Personalized Cancer Medicine Manufacturing",
            "author": [{"literal": "CoreyChem Editorial Team"}],
            "publisher": "CoreyChem",
            "issued": {"date-parts": [[2026, 6, 1]]},
        }
    ]


def test_cite_a_metric_quotes_its_sentence(client: TestClient) -> None:
    response = client.get("/v1/metrics/vein-to-vein-time-reduction", params={"cite": "apa"})
    assert response.text == (
        '"Time from vein-to-vein (leukapheresis to infusion) has been reduced by 25% in '
        'best-in-class CDMO networks since 2021." (CoreyChem Editorial Team, 2026)\n\n' + APA
    )
    bibtex = client.get("/v1/metrics/vein-to-vein-time-reduction", params={"cite": "bibtex"})
    assert "  note = {Quoted: ``Time from vein-to-vein" in bibtex.text


@pytest.mark.parametrize(
    "path",
    [
        "/v1/technologies/closed-system-automation",
        "/v1/pricing-models/value-based-pricing",
        "/v1/regulatory/outlook/fda-platform-technology-designation",
        "/v1/bottlenecks/viral-vector-capacity",
        "/v1/faq/scaling-bottlenecks",
    ],
)
def test_cite_any_item(client: TestClient, path: str) -> None:
    item = client.get(path).json()
    cited = json.loads(client.get(path, params={"cite": "csl-json"}).text)
    assert cited[0]["note"] == f'"{item["evidence"]["quote"]}"'


def test_cite_a_source_item_without_quote(client: TestClient) -> None:
    assert client.get(SOURCE, params={"cite": "apa"}).text == APA


def test_citation_errors(client: TestClient) -> None:
    assert client.get("/v1/sources/nope/citation").status_code == 404
    bad_style = client.get(f"{SOURCE}/citation", params={"style": "mla"})
    assert bad_style.status_code == 422
    assert bad_style.json()["errors"][0]["name"] == "style"
    refused = client.get(f"{SOURCE}/citation", headers={"Accept": "application/json"})
    assert refused.status_code == 406
