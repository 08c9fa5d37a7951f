"""CSV and NDJSON exports of every collection."""

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient

COLLECTIONS = [
    ("/v1/metrics", "metrics", 42),
    ("/v1/market", "market", 10),
    ("/v1/regulatory", "regulatory", 8),
    ("/v1/mna", "mna", 6),
    ("/v1/technologies", "technologies", 4),
    ("/v1/pricing-models", "pricing-models", 8),
    ("/v1/regulatory/outlook", "regulatory-outlook", 3),
    ("/v1/bottlenecks", "bottlenecks", 4),
    ("/v1/faq", "faq", 5),
    ("/v1/sources", "sources", 1),
]


def rows(response_text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response_text, newline="")))


@pytest.mark.parametrize(("path", "name", "total"), COLLECTIONS)
def test_csv_export_is_the_whole_collection_in_its_order(
    client: TestClient, path: str, name: str, total: int
) -> None:
    response = client.get(f"{path}.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="{name}.csv"'
    assert not response.text.startswith("\ufeff")
    assert len(rows(response.text)) == total
    json_ids = [item["id"] for item in client.get(path, params={"limit": 500}).json()["items"]]
    assert [row["id"] for row in rows(response.text)] == json_ids


@pytest.mark.parametrize(("path", "name", "total"), COLLECTIONS)
def test_ndjson_lines_equal_the_json_items(
    client: TestClient, path: str, name: str, total: int
) -> None:
    response = client.get(f"{path}.ndjson")
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["content-disposition"] == f'attachment; filename="{name}.ndjson"'
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines == client.get(path, params={"limit": 500}).json()["items"]
    assert len(lines) == total


def test_bom_makes_the_csv_spreadsheet_friendly(client: TestClient) -> None:
    plain = client.get("/v1/metrics.csv", params={"unit": "USD"})
    marked = client.get("/v1/metrics.csv", params={"unit": "USD", "bom": "true"})
    assert marked.content == b"\xef\xbb\xbf" + plain.content
    assert marked.headers["etag"] != plain.headers["etag"]
    assert "$45,000–$65,000".encode() in marked.content  # the en dash, as UTF-8
    assert client.get("/v1/metrics.csv", params={"bom": "false"}).content[:2] == b"id"
    assert client.get("/v1/metrics.ndjson", params={"bom": "true"}).status_code == 422
    # A boolean as JSON writes one: Python's readings of 1, yes, on, TRUE are refused.
    for text in ("1", "0", "TRUE", "yes", "on", "t", " true"):
        refused = client.get("/v1/metrics.csv", params={"bom": text})
        assert refused.status_code == 422, text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["errors"] == [
            {
                "in": "query",
                "name": "bom",
                "detail": "must be true or false",
            }
        ]


def test_csv_flattens_nested_fields_and_survives_commas_quotes_and_newlines(
    client: TestClient,
) -> None:
    text = client.get("/v1/metrics.csv", params={"sort": "id"}).text
    table = rows(text)
    assert list(table[0]) == [
        "id", "category", "name", "description", "value", "value_low", "value_high",
        "qualifier", "unit", "measure", "direction", "year", "forecast", "horizon_passed",
        "base_year", "geography", "subjects", "cited_as", "baseline_id", "source_id",
        "evidence_quote", "evidence_start", "evidence_end",
    ]  # fmt: skip
    car_t = next(row for row in table if row["id"] == "car-t-dose-manufacturing-cost")
    assert car_t["value"] == ""
    assert (car_t["value_low"], car_t["value_high"]) == ("45000", "65000")
    assert car_t["subjects"] == "CAR-T;manufacturing cost"
    assert car_t["evidence_quote"].startswith("The average cost of manufacturing a single CAR-T")
    assert "$45,000–$65,000, compared" in car_t["evidence_quote"]  # comma inside a field
    faq = rows(client.get("/v1/faq.csv").text)
    assert faq[0]["metric_ids"] == "personalized-production-turnaround-time"
    pricing = rows(client.get("/v1/pricing-models.csv").text)
    quoted = next(row for row in pricing if row["id"] == "value-based-pricing")
    assert '"pay-for-performance"' in quoted["evidence_quote"]  # quotes survive
    market = rows(client.get("/v1/metrics.csv", params={"unit": "USD"}).text)
    size = next(row for row in market if row["id"].startswith("personalized-cancer-medicine"))
    assert size["value"] == "150000000000"


def test_csv_round_trips_newlines_commas_and_quotes() -> None:
    from api.exports import Format, export
    from api.schemas import Evidence

    tricky = 'Line one, with a comma\nline "two"\r\nline three'
    item = Evidence(quote=tricky, start=0, end=len(tricky))
    response = export(Format.csv, Evidence, [item], "x", '"tag"')

    async def collect() -> str:
        return "".join([chunk.decode() async for chunk in response.body_iterator])  # type: ignore[union-attr]

    import asyncio

    assert rows(asyncio.run(collect())) == [
        {"quote": tricky, "start": "0", "end": str(len(tricky))}
    ]


def test_exports_honour_filters_and_sort(client: TestClient) -> None:
    text = client.get("/v1/metrics.csv", params={"unit": "USD", "sort": "-value_high"}).text
    assert [row["id"] for row in rows(text)] == [
        "personalized-cancer-medicine-market-size-2028",
        "oncology-cdmo-mna-value-2023",
        "car-t-dose-manufacturing-cost",
        "monoclonal-antibody-batch-manufacturing-cost",
    ]
    empty = client.get("/v1/metrics.csv", params={"source": "none"}).text
    assert empty.splitlines()[0].startswith("id,category,name") and len(empty.splitlines()) == 1


def test_json_operations_answer_json_only(client: TestClient) -> None:
    assert client.get("/v1/faq", headers={"Accept": "*/*"}).headers["content-type"] == (
        "application/json"
    )
    refused = client.get("/v1/faq", headers={"Accept": "text/csv"})
    assert refused.status_code == 406
    assert refused.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/faq.csv", headers={"Accept": "application/json"}).status_code == 406


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        (
            "/v1/metrics?format=csv&unit=USD",
            "Retired: GET /v1/metrics.csv exports the whole collection with the same filters.",
        ),
        (
            "/v1/regulatory/outlook?format=ndjson",
            "Retired: GET /v1/regulatory/outlook.ndjson exports the whole collection with the "
            "same filters.",
        ),
        (
            "/v1/changes?format=csv",
            "Retired: GET /v1/changes.csv exports the whole collection with the same filters.",
        ),
        (
            "/v1/metrics/facets?format=csv",
            "Retired: this URL answers JSON only; exports are at /v1/<collection>.csv and .ndjson.",
        ),
        (
            "/v1/metrics?format=json",
            "Retired: this URL answers JSON only; exports are at /v1/<collection>.csv and .ndjson.",
        ),
        (
            "/v1/metrics/vein-to-vein-time-reduction?cite=bibtex",
            "Retired: citations are at GET /v1/metrics/vein-to-vein-time-reduction/citation.bib.",
        ),
        (
            "/v1/faq/scaling-bottlenecks?cite=apa",
            "Retired: citations are at GET /v1/faq/scaling-bottlenecks/citation?style=apa.",
        ),
    ],
)
def test_retired_parameters_point_to_the_new_url(client: TestClient, url: str, detail: str) -> None:
    response = client.get(url)
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"in": "query", "name": "format" if "format" in url else "cite", "detail": detail}
    ]


EXPORTS = [f"{path}.{fmt}" for path, _name, _total in COLLECTIONS for fmt in ("csv", "ndjson")]
EXPORTS += ["/v1/changes.csv", "/v1/changes.ndjson", "/v1/releases.csv", "/v1/releases.ndjson"]
# A valid value of each paging parameter of a collection (`after`: a token `next` gave).
PAGING = {"limit": "1", "offset": "1", "after": "WyJpZCIsImEiXQ", "count": "none"}


@pytest.mark.parametrize("export", EXPORTS)
@pytest.mark.parametrize("name", list(PAGING))
def test_exports_refuse_every_paging_parameter(client: TestClient, export: str, name: str) -> None:
    """An export is always whole: a page it cannot give is refused, never silently widened."""
    response = client.get(export, params={name: PAGING[name]})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {"in": "query", "name": name, "detail": "Unknown parameter."}
    ]


def test_the_exports_document_no_paging_parameter(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for export in EXPORTS:
        names = {parameter["name"] for parameter in paths[export]["get"]["parameters"]}
        assert not names & set(PAGING), export


def test_the_history_exports_too(client: TestClient) -> None:
    feed = client.get("/v1/changes", params={"limit": 500}).json()
    table = rows(client.get("/v1/changes.csv").text)
    assert len(table) == feed["total"] == 67
    first = feed["items"][0]
    assert table[0]["id"] == str(first["id"])
    assert table[0]["changes"] == ";".join(first["changes"])
    assert json.loads(table[0]["data"]) == first["data"]  # the record, one JSON cell
    lines = client.get("/v1/changes.ndjson", params={"since": first["at"]}).text.splitlines()
    assert [json.loads(line) for line in lines] == feed["items"]
    releases = rows(client.get("/v1/releases.csv").text)
    assert [(r["label"], r["added"]) for r in releases] == [
        (item["label"], str(item["added"])) for item in client.get("/v1/releases").json()["items"]
    ]
