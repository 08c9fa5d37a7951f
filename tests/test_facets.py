"""Facet counts for filter panels, and expired projections (horizon_passed)."""

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient


def test_facets_count_every_value_over_the_filtered_metrics(client: TestClient) -> None:
    body = client.get("/v1/metrics/facets", params={"facet": "category,unit"}).json()
    assert body == {
        "total": 42,
        "facets": {
            "category": [
                {"value": "technology", "count": 11},
                {"value": "market", "count": 10},
                {"value": "regulatory", "count": 8},
                {"value": "pricing", "count": 7},
                {"value": "mna", "count": 6},
            ],
            "unit": [
                {"value": "percent", "count": 30},
                {"value": "USD", "count": 4},
                {"value": "months", "count": 3},
                {"value": "hours", "count": 2},
                {"value": "count", "count": 1},
                {"value": "days", "count": 1},
                {"value": "ratio", "count": 1},
            ],
        },
    }


def test_facets_take_the_collection_filters(client: TestClient) -> None:
    body = client.get(
        "/v1/metrics/facets", params={"facet": "year,forecast", "category": "market"}
    ).json()
    assert body["total"] == 10
    assert sum(v["count"] for v in body["facets"]["year"]) == 10
    assert {"value": None, "count": 2} in body["facets"]["year"]
    assert body["facets"]["forecast"] == [
        {"value": False, "count": 6},
        {"value": True, "count": 4},
    ]
    searched = client.get("/v1/metrics/facets", params={"facet": "subject", "q": "outsourcing"})
    assert searched.json()["total"] == 1
    assert {"value": "outsourcing", "count": 1} in searched.json()["facets"]["subject"]


def test_every_facet_is_available_by_default(client: TestClient) -> None:
    facets = client.get("/v1/metrics/facets").json()["facets"]
    assert list(facets) == [
        "category", "unit", "measure", "qualifier", "direction", "year", "base_year",
        "forecast", "horizon_passed", "geography", "subject", "source",
    ]  # fmt: skip
    assert facets["source"] == [{"value": "coreychem-future-of-cdmos-2026", "count": 42}]
    assert {"value": "Asia-Pacific", "count": 1} in facets["geography"]
    assert {"value": None, "count": 36} in facets["geography"]


def test_unknown_facet_is_422(client: TestClient) -> None:
    response = client.get("/v1/metrics/facets", params={"facet": "category,colour"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["name"] == "facet"
    assert "unknown 'colour'" in response.json()["errors"][0]["detail"]


def test_horizon_passed_flags_expired_projections(client: TestClient) -> None:
    year = datetime.now(UTC).year
    metrics = client.get("/v1/metrics", params={"limit": 500}).json()["items"]
    for metric in metrics:
        expected = metric["forecast"] and metric["year"] is not None and metric["year"] < year
        assert metric["horizon_passed"] is expected, metric["id"]
    passed = client.get("/v1/metrics", params={"horizon_passed": "true"}).json()
    if year == 2026:
        assert [m["id"] for m in passed["items"]] == [
            "cell-therapy-regional-node-count-2025",
            "distributed-cell-therapy-capacity-share-2025",
        ]
    rest = client.get("/v1/metrics", params={"horizon_passed": "false"}).json()
    assert passed["total"] + rest["total"] == 42


@pytest.mark.parametrize("year", [2027, 2029])
def test_horizon_moves_with_the_clock(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, year: int
) -> None:
    from api.metrics import service

    monkeypatch.setattr(service, "current_year", lambda: year)
    passed = {m["id"] for m in client.get("/v1/metrics?horizon_passed=true").json()["items"]}
    assert ("cell-gene-therapy-cdmo-capacity-growth-2026" in passed) is True
    assert ("personalized-cancer-medicine-market-size-2028" in passed) is (year > 2028)


def test_subject_filter_with_subject_facet(client: TestClient) -> None:
    # Found by contract fuzzing: the filter's EXISTS and the facet's join once collided.
    body = client.get("/v1/metrics/facets", params={"subject": "CAR-T", "facet": "subject"}).json()
    assert body == {
        "total": 1,
        "facets": {
            "subject": [{"value": "CAR-T", "count": 1}, {"value": "manufacturing cost", "count": 1}]
        },
    }
