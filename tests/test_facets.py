"""Facet counts for filter panels, and expired projections (horizon_passed)."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.metrics.schemas import FACETS
from tests.helpers import Writable, new_metric


def _counts(facets: dict[str, list[dict[str, object]]]) -> dict[str, list[dict[str, object]]]:
    """The facets without their links."""
    return {
        name: [{"value": v["value"], "count": v["count"]} for v in values]
        for name, values in facets.items()
    }


def test_facets_count_every_value_over_the_filtered_metrics(client: TestClient) -> None:
    body = client.get("/v1/metrics/facets", params={"facet": "category,unit"}).json()
    assert {"total": body["total"], "facets": _counts(body["facets"])} == {
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
    assert {"value": None, "count": 2} in _counts(body["facets"])["year"]
    assert _counts(body["facets"])["forecast"] == [
        {"value": False, "count": 6},
        {"value": True, "count": 4},
    ]
    searched = client.get("/v1/metrics/facets", params={"facet": "subject", "q": "outsourcing"})
    assert searched.json()["total"] == 1
    assert {"value": "outsourcing", "count": 1} in _counts(searched.json()["facets"])["subject"]


def test_every_facet_is_available_by_default(client: TestClient) -> None:
    facets = _counts(client.get("/v1/metrics/facets").json()["facets"])
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
    assert body["total"] == 1
    car_t = next(v for v in body["facets"]["subject"] if v["value"] == "CAR-T")
    assert car_t == {"value": "CAR-T", "count": 1, "href": "/v1/metrics?subject=CAR-T"}


def test_a_facet_counts_over_the_other_filters(client: TestClient) -> None:
    # category=market: the category facet still offers every category (its own filter is
    # left out), the unit facet counts the market metrics only.
    body = client.get(
        "/v1/metrics/facets", params={"category": "market", "facet": "category,unit"}
    ).json()
    assert body["total"] == 10
    assert sum(v["count"] for v in body["facets"]["category"]) == 42
    assert sum(v["count"] for v in body["facets"]["unit"]) == 10


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"category": "market,mna"},
        {"year": "2023..2028", "q": "cell OR therapy"},
        {"geography": "null", "forecast": "true"},
        {"subject": "cell therapy,CAR-T", "value_min": "20"},
        {"direction": "null,decrease", "base_year": "..2023,null"},
    ],
)
def test_every_facet_bucket_links_to_its_metrics(
    client: TestClient, filters: dict[str, str]
) -> None:
    body = client.get("/v1/metrics/facets", params=filters).json()
    assert body["total"] == client.get("/v1/metrics", params=filters).json()["total"]
    for name, buckets in body["facets"].items():
        for bucket in buckets:
            assert bucket["href"].startswith("/v1/metrics?")
            linked = client.get(bucket["href"])
            assert linked.status_code == 200, bucket
            assert linked.json()["total"] == bucket["count"], (name, bucket)


def test_facet_links_keep_the_other_filters(client: TestClient) -> None:
    body = client.get(
        "/v1/metrics/facets", params={"facet": "geography,subject", "category": "market,mna"}
    ).json()
    assert {
        "value": None,
        "count": 11,
        "href": "/v1/metrics?category=market,mna&geography=null",
    } in (body["facets"]["geography"])
    cell = next(v for v in body["facets"]["subject"] if v["value"] == "cell therapy")
    assert cell["href"] == "/v1/metrics?category=market,mna&subject=cell%20therapy"


LISTS = [
    ({"category": "market,mna"}, 16),
    ({"category": "market"}, 10),
    ({"qualifier": "gt,gte"}, 3),
    ({"direction": "null"}, 21),
    ({"geography": "null"}, 36),
    ({"geography": "GLOBAL,Asia-Pacific"}, 6),
    ({"subject": "cell therapy,CAR-T"}, 18),
    ({"year": "2023..2028"}, 17),
    ({"year": "2025.."}, 14),
    ({"year": "..2025"}, 5),
    ({"year": "..2025,null"}, 30),
    ({"year": "2023,2028"}, 4),
    ({"year": "2028..2023"}, 0),
    ({"base_year": "null"}, 38),
    ({"forecast": "true,false"}, 42),
    ({"horizon_passed": "true,false"}, 42),
    ({"value_min": "20", "value_max": "30"}, 11),
    ({"value_min": "1000000000"}, 2),
    ({"unit": "USD", "value_max": "20000"}, 1),
]


@pytest.mark.parametrize(("filters", "total"), LISTS)
def test_lists_ranges_and_the_no_value_bucket(
    client: TestClient, filters: dict[str, str], total: int
) -> None:
    assert client.get("/v1/metrics", params=filters).json()["total"] == total


def test_value_range_selects_overlapping_figures(client: TestClient) -> None:
    # "$45,000-$65,000" overlaps 50,000..60,000 though neither end lies inside it.
    body = client.get("/v1/metrics", params={"value_min": 50000, "value_max": 60000}).json()
    assert [m["id"] for m in body["items"]] == ["car-t-dose-manufacturing-cost"]


def test_quoted_values_hold_commas_and_the_word_null(client: TestClient) -> None:
    assert client.get("/v1/metrics", params={"subject": '"a, b"'}).json()["total"] == 0
    assert client.get("/v1/metrics", params={"geography": '"null"'}).json()["total"] == 0
    both = client.get("/v1/metrics", params={"subject": '"cell therapy",CAR-T'}).json()
    assert both["total"] == 18


@pytest.mark.parametrize(
    ("filters", "detail"),
    [
        ({"category": "market,,mna"}, "has an empty value"),
        ({"category": "market,colour"}, "has 'colour'"),
        ({"category": "null"}, "has null"),
        ({"source": "coreychem-future-of-cdmos-2026,null"}, "has null"),  # every metric has one
        ({"year": ".."}, "without either end"),
        ({"year": "20x5"}, "a year is a number"),
        ({"subject": '"open'}, "never closed"),
        ({"subject": '"a"b'}, "text after a closing quote"),
        ({"forecast": "yes"}, "expected any of: true, false"),
        ({"value_min": "nan"}, "a number as JSON writes it"),
        ({"value_min": "1e999"}, "finite number"),
    ],
)
def test_malformed_filters_are_422(
    client: TestClient, filters: dict[str, str], detail: str
) -> None:
    response = client.get("/v1/metrics", params=filters)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["errors"][0]["detail"]


def test_facets_of_the_live_tally_equal_the_counted_ones_through_writes(
    writable: Writable,
) -> None:
    """Live facets sum the tally kept by each write; a read at a version counts the metrics.
    After creates, an update of tallied fields and a delete, both give the same buckets."""
    w = writable
    for number in (1, 2, 3):  # the third with no subject (the tally by subject's null)
        body = new_metric(id=f"tally-{number}", geography="Mars", year=2031, forecast=True)
        if number == 3:
            body.update(subjects=[], geography=None)
        assert w.client.post("/v1/metrics", json=body, headers=w.auth()).status_code == 201
    path = "/v1/metrics/tally-1"
    patched = w.client.patch(
        path,
        json={
            "category": "market",
            "year": None,
            "geography": "Asia-Pacific",
            "subjects": ["tally tag", "CAR-T"],
        },
        headers={**w.auth(), "If-Match": w.etag(path)},
    )
    assert patched.status_code == 200, patched.text
    for subjects in (["CAR-T", "tally tag"], ["CAR-T", "tally tag", "TIL"]):  # another lead
        patched = w.client.patch(
            path, json={"subjects": subjects}, headers={**w.auth(), "If-Match": w.etag(path)}
        )
        assert patched.status_code == 200, patched.text
    path = "/v1/metrics/tally-2"
    assert w.client.delete(path, headers={**w.auth(), "If-Match": w.etag(path)}).status_code == 204
    path = "/v1/metrics/viral-vector-lead-time"
    patched = w.client.patch(
        path, json={"forecast": True, "year": 2020}, headers={**w.auth(), "If-Match": w.etag(path)}
    )
    assert patched.status_code == 200, patched.text

    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    tallied = (
        "category,unit,measure,qualifier,direction,year,base_year,forecast,horizon_passed,geography,"
        "subject"
    )
    for filters in (
        {},
        {"forecast": "true"},
        {"category": "market,regulatory", "year": "..2025,null"},
        {"geography": "GLOBAL,null,asia-pacific", "horizon_passed": "false"},
        {"horizon_passed": "true", "unit": "months,ratio"},
        {"direction": "null", "base_year": "2020.."},
        {"subject": "quality,CAR-T", "forecast": "true"},
        {"subject": "car-t"},
        {"subject": "Quality,null", "category": "technology"},
        {"subject": "null"},
        {"subject": "tally tag", "horizon_passed": "false"},
        # tally-1 has both: counted once (the lead rows of the tally by subject)
        {"subject": "car-t,TALLY TAG"},
        {"subject": "CAR-T,tally tag,null", "geography": "Asia-Pacific,null"},
        {"subject": "cell therapy,CAR-T,quality,car-t"},
        {"subject": "CAR-T,CAR-T"},
        {"subject": "til,tally tag"},
    ):
        total = w.client.get("/v1/metrics", params=filters).json()["total"]
        for facet in (tallied, ",".join(FACETS)):  # all tallied; some counted, some tallied
            live = w.client.get("/v1/metrics/facets", params={**filters, "facet": facet}).json()
            counted = w.client.get(
                "/v1/metrics/facets", params={**filters, "facet": facet, "as_of": future}
            ).json()
            assert live["total"] == counted["total"] == total, filters
            assert _counts(live["facets"]) == _counts(counted["facets"]), filters
    market = w.client.get("/v1/metrics/facets", params={"facet": "geography", "category": "market"})
    assert {"value": "Asia-Pacific", "count": 1} in _counts(market.json()["facets"])["geography"]
    assert "Mars" not in str(w.client.get("/v1/metrics/facets?facet=geography").json())


def test_values_that_differ_in_case_are_counted_as_their_filters_find_them(
    writable: Writable,
) -> None:
    """Geography and subject filters ignore the case of ASCII letters, so their facets count
    the spellings a filter finds together (under the most common one), and a filter by a
    stored value finds the record that holds it. Other letters are compared as written, on
    both databases alike: "ÉMIRATS" finds "Émirats" (the same but for ASCII capitals), never
    "émirats" (PostgreSQL's `lower()` folded É as SQLite's does not)."""
    w = writable
    spellings = ["Émirats", "ÉMIRATS", "émirats", "Europe", "EUROPE", "Europe"]
    for number, spelling in enumerate(spellings):
        body = new_metric(id=f"spelled-{number}", geography=spelling, subjects=[spelling])
        assert w.client.post("/v1/metrics", json=body, headers=w.auth()).status_code == 201
    facets = w.client.get("/v1/metrics/facets", params={"facet": "geography,subject"}).json()
    for name in ("geography", "subject"):
        values = facets["facets"][name]
        for bucket in values:
            linked = w.client.get(bucket["href"]).json()
            assert linked["total"] == bucket["count"], (name, bucket)
        europe = [bucket for bucket in values if str(bucket["value"]).lower() == "europe"]
        assert [(bucket["value"], bucket["count"]) for bucket in europe] == [("Europe", 3)]
        emirats = sorted(
            (bucket["count"], bucket["value"])
            for bucket in values
            if "mirats" in str(bucket["value"]).lower()
        )
        assert emirats in ([(1, "émirats"), (2, "Émirats")], [(1, "émirats"), (2, "ÉMIRATS")])
        spelled_as = {"Émirats": [0, 1], "ÉMIRATS": [0, 1], "émirats": [2], "éMIRATS": [2]}
        for spelling, numbers in spelled_as.items():
            found = w.client.get("/v1/metrics", params={name: spelling, "limit": 500}).json()
            ids = sorted(item["id"] for item in found["items"] if "spelled" in item["id"])
            assert ids == [f"spelled-{number}" for number in numbers], (name, spelling)
        found = w.client.get("/v1/metrics", params={name: "eUROPE", "limit": 500}).json()
        assert sorted(item["id"] for item in found["items"] if "spelled" in item["id"]) == [
            "spelled-3", "spelled-4", "spelled-5"
        ]  # fmt: skip


def test_a_metric_holds_a_subject_once_case_aside_as_the_filter_folds_it(
    writable: Writable,
) -> None:
    """Two subjects the subject filter cannot tell apart (ASCII case aside) are one subject
    twice; two it tells apart ("Étude" and "étude") are two."""
    w = writable
    twice = new_metric(id="twice-tagged", subjects=["CAR-T", "car-t"])
    refused = w.client.post("/v1/metrics", json=twice, headers=w.auth())
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {
            "in": "body",
            "name": "subjects",
            "detail": "a subject appears more than once (case aside)",
        }
    ]
    two = new_metric(id="two-tagged", subjects=["Étude", "étude"])
    assert w.client.post("/v1/metrics", json=two, headers=w.auth()).status_code == 201
    for spelling in ("Étude", "étude", "ÉTUDE"):
        found = w.client.get("/v1/metrics", params={"subject": spelling}).json()
        assert [item["id"] for item in found["items"]] == ["two-tagged"], spelling
    facet = w.client.get("/v1/metrics/facets", params={"facet": "subject"}).json()
    counted = {
        b["value"]: b["count"] for b in facet["facets"]["subject"] if "tude" in str(b["value"])
    }
    assert counted == {"Étude": 1, "étude": 1}
