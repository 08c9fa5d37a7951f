"""The metric collection, its category views and single metrics."""

import pytest
from fastapi.testclient import TestClient

from api.pagination import encode_cursor

TOTAL = 42


def ids(response_json: dict) -> list[str]:  # type: ignore[type-arg]
    return [item["id"] for item in response_json["items"]]


def test_collection_envelope_with_defaults(client: TestClient) -> None:
    response = client.get("/v1/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"items", "total", "limit", "offset", "next"}
    assert (body["total"], body["limit"], body["offset"], body["next"]) == (TOTAL, 50, 0, None)
    assert "link" not in response.headers
    assert ids(body) == sorted(ids(body))


def test_paging_links_in_body_and_header_until_the_last_page(client: TestClient) -> None:
    seen: list[str] = []
    url: str | None = "/v1/metrics?limit=20&category=market&sort=-value_high"
    pages = 0
    while url:
        response = client.get(url)
        body = response.json()
        seen += ids(body)
        pages += 1
        if body["next"]:
            assert response.headers["link"] == f'<{body["next"]}>; rel="next"'
            assert "category=market" in body["next"] and "sort=-value_high" in body["next"]
        else:
            assert "link" not in response.headers
        url = body["next"]
    market = client.get("/v1/metrics", params={"category": "market", "limit": 500}).json()
    assert pages == 1 and len(seen) == market["total"] == 10

    # `next` pages by keyset: `after=` names the sort order and the last item's sort values
    # (here its id).
    first = client.get("/v1/metrics", params={"limit": 20}).json()
    last = ids(first)[-1]
    assert first["next"] == f"/v1/metrics?limit=20&after={encode_cursor(['id', last])}"
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    assert (second["offset"], third["offset"], third["next"]) == (0, 0, None)
    assert ids(first) + ids(second) + ids(third) == sorted(
        item["id"] for item in client.get("/v1/metrics", params={"limit": 500}).json()["items"]
    )
    assert (first["total"], second["total"], third["total"]) == (TOTAL, TOTAL, TOTAL)


@pytest.mark.parametrize(
    "sort",
    [
        "-value_high",
        "year,-value",
        "-geography,name",
        "forecast,-base_year,cited_as",
        # A nullable first field: its rows with a value and those without are read apart.
        "-value",
        "value",
        "-year",
        "value,-year",
        "-direction,value_low",
        "-name",
    ],
)
def test_keyset_pages_follow_any_sort_order_with_nulls_last(client: TestClient, sort: str) -> None:
    """Walking `next` links (after=) gives exactly the one-page listing, on any sort with
    nullable fields, for every page size."""
    whole = ids(client.get("/v1/metrics", params={"sort": sort, "limit": 500}).json())
    assert len(whole) == TOTAL
    for limit in (1, 4, 7):
        seen: list[str] = []
        url: str | None = f"/v1/metrics?sort={sort}&limit={limit}"
        while url:
            body = client.get(url).json()
            seen += ids(body)
            url = body["next"]
            assert url is None or "after=" in url
        assert seen == whole


@pytest.mark.parametrize("sort", ["-value", "value", "year", "-year", "-year,name"])
@pytest.mark.parametrize(
    "filters",
    [
        {"category": "market"},
        {"value_min": "50"},
        {"value_max": "30", "forecast": "false"},
        {"subject": "CAR-T"},
        # Tallied filters: a page sorted by year reads the years that hold a match, one by one.
        {"forecast": "true", "unit": "USD,percent"},
        {"q": "cell"},
    ],
)
def test_filtered_sorted_pages_by_keyset_and_offset(
    client: TestClient, sort: str, filters: dict[str, str]
) -> None:
    """With a filter, each page by `after=` and by `offset` is its slice of the whole listing,
    which is in the sort's order with nulls last and holds exactly the filter's matches."""
    whole = client.get("/v1/metrics", params={**filters, "sort": sort, "limit": 500}).json()
    everything = client.get("/v1/metrics", params={"limit": 500}).json()["items"]
    assert whole["total"] == len(whole["items"]) > 0
    field, descending = sort.split(",")[0].removeprefix("-"), sort.startswith("-")
    present = [item[field] for item in whole["items"] if item[field] is not None]
    assert present == sorted(present, reverse=descending)
    assert [item[field] for item in whole["items"]][len(present) :] == [None] * (
        whole["total"] - len(present)
    )
    if "value_min" in filters:
        wanted = {m["id"] for m in everything if m["value_high"] >= float(filters["value_min"])}
        assert set(ids(whole)) == wanted
    expected = ids(whole)
    for limit in (2, 5):
        seen: list[str] = []
        url: str | None = "/v1/metrics?" + "&".join(
            f"{key}={value}" for key, value in {**filters, "sort": sort, "limit": limit}.items()
        )
        while url:
            body = client.get(url).json()
            seen += ids(body)
            url = body["next"]
        assert seen == expected
        for offset in range(1, len(expected) + 1, 3):  # across the rows with no value too
            params = {**filters, "sort": sort, "limit": limit, "offset": offset}
            page = client.get("/v1/metrics", params=params).json()
            assert ids(page) == expected[offset : offset + limit]


def test_count_none_skips_the_total_and_bad_cursors_are_422(client: TestClient) -> None:
    body = client.get("/v1/metrics", params={"limit": 5, "count": "none"}).json()
    assert body["total"] is None and len(body["items"]) == 5 and "count=none" in body["next"]
    assert client.get("/v1/metrics", params={"limit": 500, "count": "none"}).json()["next"] is None
    for bad in ("!!!", "bm90IGpzb24", encode_cursor([1, 2, 3, 4])):
        response = client.get("/v1/metrics", params={"after": bad})
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == "application/problem+json"
    # A cursor is for the sort order it was given with: another order, even with as many
    # sort values, would read its values as another item's.
    by_value = client.get("/v1/metrics", params={"sort": "-value,id", "limit": 2}).json()
    cursor = by_value["next"].rsplit("after=", 1)[1]
    assert client.get("/v1/metrics", params={"sort": "-value", "after": cursor}).status_code == 200
    for other in ("name", "value", "-value_low", "id"):
        response = client.get("/v1/metrics", params={"sort": other, "after": cursor})
        assert response.status_code == 422, other
        assert response.json()["errors"] == [
            {"in": "query", "name": "after", "detail": "this cursor is for another sort order"}
        ]
    # Numbers no sort field can hold: refused before any database sees them.
    for sort, values in (
        ("year,id", ["year,id", 2**63, "x"]), ("year,id", ["year,id", 3_000_000_000, "x"]),
        ("id", ["id", 2**63]), ("-value,id", ["-value,id", 2**63, "x"]),
    ):  # fmt: skip
        response = client.get("/v1/metrics", params={"sort": sort, "after": encode_cursor(values)})
        assert response.status_code == 422, values
        assert response.headers["content-type"] == "application/problem+json"
    # A number where a text field's value goes (id, name, geography, source_id: columns whose
    # type names no Python type) is not a cursor this API gave either: it was bound as is,
    # SQLite sorting every text after it and PostgreSQL comparing it as text, so the two
    # databases answered different pages for it.
    for sort, values in (
        ("id", ["id", 1]), ("id", ["id", 1.5]), ("-id", ["-id", 1]),
        ("name,id", ["name,id", 7, "x"]), ("geography,id", ["geography,id", 2, "x"]),
        ("source_id,id", ["source_id,id", "s", 3]), ("cited_as,id", ["cited_as,id", 0.5, "x"]),
    ):  # fmt: skip
        response = client.get("/v1/metrics", params={"sort": sort, "after": encode_cursor(values)})
        assert response.status_code == 422, values
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"] == [
            {
                "in": "query",
                "name": "after",
                "detail": "not a cursor this API gave (use the `next` link)",
            }
        ]
    # Ranked by relevance (q, no sort): paged by offset.
    ranked = client.get("/v1/metrics", params={"q": "cell", "limit": 2}).json()
    assert "offset=2" in ranked["next"] and "after=" not in ranked["next"]


def test_offset_past_the_end_is_an_empty_page(client: TestClient) -> None:
    body = client.get("/v1/metrics", params={"offset": 1000}).json()
    assert (body["items"], body["total"], body["next"]) == ([], TOTAL, None)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"unit": "USD"},
            [
                "car-t-dose-manufacturing-cost",
                "monoclonal-antibody-batch-manufacturing-cost",
                "oncology-cdmo-mna-value-2023",
                "personalized-cancer-medicine-market-size-2028",
            ],
        ),
        ({"geography": "asia-pacific"}, ["asia-pacific-cdmo-capacity-cagr"]),
        (
            {"geography": "global"},
            [
                "cell-gene-therapy-cdmo-capacity-growth-2026",
                "gmp-harmonization-registration-cost-reduction",
                "personalized-cancer-medicine-market-cagr",
                "personalized-cancer-medicine-market-size-2028",
                "viral-vector-lead-time",
            ],
        ),
        ({"subject": "car-t"}, ["car-t-dose-manufacturing-cost"]),
        (
            {"year": 2026, "category": "mna"},
            ["cdmo-academic-alliance-share", "profit-sharing-co-development-program-share"],
        ),
        (
            {"forecast": "true"},
            [
                "cancer-vaccine-developers-full-outsourcing-share-2027",
                "cell-gene-therapy-cdmo-capacity-growth-2026",
                "cell-therapy-regional-node-count-2025",
                "distributed-cell-therapy-capacity-share-2025",
                "gmp-harmonization-registration-cost-reduction",
                "personalized-cancer-medicine-market-cagr",
                "personalized-cancer-medicine-market-size-2028",
            ],
        ),
        (
            {"measure": "duration", "unit": "hours"},
            ["autologous-cell-therapy-viability-window", "viable-cell-therapy-shelf-life"],
        ),
        ({"source": "no-such-source"}, []),
    ],
)
def test_filters(client: TestClient, params: dict[str, object], expected: list[str]) -> None:
    body = client.get("/v1/metrics", params={**params, "limit": 500}).json()
    assert ids(body) == expected
    assert body["total"] == len(expected)


@pytest.mark.parametrize(
    ("params", "total"),
    [
        ({"category": "mna"}, 6),
        ({"measure": "duration"}, 6),
        ({"year": 2026}, 9),
        ({"forecast": "false", "category": "market"}, 6),
        ({"unit": "percent", "measure": "change", "category": "technology"}, 7),
        ({"source": "coreychem-future-of-cdmos-2026"}, TOTAL),
    ],
)
def test_filter_totals(client: TestClient, params: dict[str, object], total: int) -> None:
    body = client.get("/v1/metrics", params={**params, "limit": 500}).json()
    assert body["total"] == total == len(body["items"])
    for item in body["items"]:
        for name in ("category", "unit", "measure", "year", "forecast", "source"):
            if name in params:
                key = "source_id" if name == "source" else name
                assert str(item[key]).lower() == str(params[name]).lower()


def test_usd_figures_sorted_by_value(client: TestClient) -> None:
    body = client.get("/v1/metrics", params={"unit": "USD", "sort": "-value_high"}).json()
    assert [(m["id"], m["value_low"], m["value_high"]) for m in body["items"]] == [
        ("personalized-cancer-medicine-market-size-2028", 150000000000, 150000000000),
        ("oncology-cdmo-mna-value-2023", 28000000000, 28000000000),
        ("car-t-dose-manufacturing-cost", 45000, 65000),
        ("monoclonal-antibody-batch-manufacturing-cost", 15000, 15000),
    ]


def test_multi_field_sort(client: TestClient) -> None:
    items = client.get("/v1/metrics", params={"sort": "category,-value_high", "limit": 500}).json()[
        "items"
    ]
    keys = [(m["category"], -m["value_high"]) for m in items]
    assert keys == sorted(keys)
    descending = client.get("/v1/metrics", params={"sort": "-id"}).json()["items"]
    assert ids({"items": descending}) == sorted(ids({"items": descending}), reverse=True)


def test_nulls_sort_last_in_both_directions(client: TestClient) -> None:
    for sort in ("year", "-year"):
        years = [
            m["year"] for m in client.get("/v1/metrics", params={"sort": sort}).json()["items"]
        ]
        assert None not in years[: years.index(None)] and set(years[years.index(None) :]) == {None}


def test_q_searches_name_description_subjects_and_quote(client: TestClient) -> None:
    by_quote = client.get("/v1/metrics", params={"q": "leukapheresis"}).json()
    assert ids(by_quote) == ["vein-to-vein-time-reduction"]
    by_subject = client.get("/v1/metrics", params={"q": "car-t"}).json()
    assert "car-t-dose-manufacturing-cost" in ids(by_subject)
    assert client.get("/v1/metrics", params={"q": "digital twin vein"}).json()["total"] == 0
    assert client.get("/v1/metrics", params={"q": "100%_"}).json()["total"] == 0
    assert client.get("/v1/metrics", params={"q": '"*:-()'}).json()["total"] == 0


def test_q_ranks_by_relevance_unless_sorted(client: TestClient) -> None:
    # Both figures come from one sentence ("... reduces failed batches by 22% and cuts raw
    # material waste by 18%"); only one has "waste" in its name, so it ranks first.
    ranked = client.get("/v1/metrics", params={"q": "digital twin waste"}).json()
    assert ids(ranked) == [
        "digital-twin-raw-material-waste-reduction",
        "digital-twin-failed-batch-reduction",
    ]
    sorted_by_id = client.get("/v1/metrics", params={"q": "digital twin waste", "sort": "id"})
    assert ids(sorted_by_id.json()) == sorted(ids(ranked))


def test_q_stems_words(client: TestClient) -> None:
    for q in ("outsource", "outsourcing", "OUTSOURCED"):
        body = client.get("/v1/metrics", params={"q": q}).json()
        assert ids(body) == ["cancer-vaccine-developers-full-outsourcing-share-2027"], q
    reductions = client.get("/v1/metrics", params={"q": "reduce", "limit": 500}).json()
    assert "vein-to-vein-time-reduction" in ids(reductions)  # "reduced" in its quote


def test_one_metric(client: TestClient) -> None:
    response = client.get("/v1/metrics/car-t-dose-manufacturing-cost")
    assert response.status_code == 200
    metric = response.json()
    assert metric == {
        "id": "car-t-dose-manufacturing-cost",
        "category": "market",
        "name": metric["name"],
        "description": metric["description"],
        "value": None,
        "value_low": 45000,
        "value_high": 65000,
        "qualifier": "eq",
        "unit": "USD",
        "measure": "level",
        "direction": None,
        "year": 2026,
        "forecast": False,
        "horizon_passed": False,
        "base_year": None,
        "geography": None,
        "subjects": metric["subjects"],
        "cited_as": None,
        "baseline_id": "monoclonal-antibody-batch-manufacturing-cost",
        "source_id": "coreychem-future-of-cdmos-2026",
        "evidence": {
            "quote": "The average cost of manufacturing a single CAR-T dose via a CDMO is currently "
            "$45,000–$65,000, compared to $15,000 for a monoclonal antibody batch "
            "(per patient equivalent).",
            "start": 1775,
            "end": 1947,
        },
    }
    assert "CAR-T" in metric["subjects"]
    baseline = client.get(f"/v1/metrics/{metric['baseline_id']}").json()
    assert (baseline["value"], baseline["unit"]) == (15000, "USD")


def test_figures_are_served_as_written_not_as_floats(client: TestClient) -> None:
    raw = client.get("/v1/metrics/personalized-cancer-medicine-market-size-2028").text
    assert '"value":150000000000,' in raw
    assert (
        '"value":11.2,' in client.get("/v1/metrics/personalized-cancer-medicine-market-cagr").text
    )


def test_flags_are_json_booleans_in_pages_and_items(client: TestClient) -> None:
    """Pages and items are read through the driver (api.records.driver), which returns
    SQLite's booleans as the integers it stores: they must still be served as true/false."""
    page = client.get("/v1/metrics?limit=50&sort=id")
    items = page.json()["items"]
    assert len(items) == TOTAL
    for item in items:
        assert type(item["forecast"]) is bool and type(item["horizon_passed"]) is bool
    assert '"forecast":true' in page.text and '"forecast":false' in page.text
    forecast = next(item["id"] for item in items if item["forecast"])
    assert '"forecast":true,' in client.get(f"/v1/metrics/{forecast}").text


def test_unknown_metric_is_404_problem(client: TestClient) -> None:
    response = client.get("/v1/metrics/no-such-metric")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "There is no metric 'no-such-metric'.",
        "instance": "/v1/metrics/no-such-metric",
    }


@pytest.mark.parametrize(
    ("path", "category", "total"),
    [("/v1/market", "market", 10), ("/v1/regulatory", "regulatory", 8), ("/v1/mna", "mna", 6)],
)
def test_category_views_are_filtered_metric_collections(
    client: TestClient, path: str, category: str, total: int
) -> None:
    body = client.get(path, params={"limit": 3}).json()
    assert body["total"] == total
    assert {item["category"] for item in body["items"]} == {category}
    assert body["next"] == f"{path}?limit=3&after={encode_cursor(['id', ids(body)[-1]])}"
    same = client.get("/v1/metrics", params={"category": category, "limit": 3}).json()
    assert body["items"] == same["items"]
    filtered = client.get(path, params={"forecast": "true", "sort": "-year"}).json()
    assert all(item["forecast"] for item in filtered["items"])
    assert client.get(path, params={"category": category}).json()["total"] == total


def test_category_view_with_another_category_is_empty(client: TestClient) -> None:
    body = client.get("/v1/market", params={"category": "mna"}).json()
    assert (body["items"], body["total"]) == ([], 0)


def test_a_value_range_given_backwards_finds_nothing(client: TestClient) -> None:
    """value_max under value_min is no range: no figure overlaps it (as a year range that ends
    before it starts holds no year), not the figures that happen to span the gap. (A 422 would
    refuse what the OpenAPI document allows: each bound alone is valid.)"""
    for path in ("/v1/metrics", "/v1/market", "/v1/metrics.csv"):
        answer = client.get(path, params={"value_min": "65000", "value_max": "45000"})
        assert answer.status_code == 200, path
        rows = answer.text.splitlines()[1:] if path.endswith(".csv") else answer.json()["items"]
        assert rows == [], path
    facets = client.get(
        "/v1/metrics/facets", params={"value_min": "65000", "value_max": "45000"}
    ).json()
    assert facets["total"] == 0
    equal = client.get("/v1/metrics", params={"value_min": "45000", "value_max": "45000"})
    assert [item["id"] for item in equal.json()["items"]] == ["car-t-dose-manufacturing-cost"]


def test_numbers_are_read_as_json_writes_them(client: TestClient) -> None:
    # Refused otherwise ("1_000", "+5", " 5": tests/test_errors.py); these are JSON numbers.
    for params, expected in (
        ({"value_min": "1E+3", "value_max": "150000000000"}, 4),
        ({"value_min": "-1.5e3", "value_max": "0.5"}, 0),
        ({"value_min": "45000.0", "limit": "10", "offset": "0"}, 3),
    ):
        response = client.get("/v1/metrics", params=params)
        assert response.status_code == 200, (params, response.text)
        assert response.json()["total"] == expected, params
