"""Context entities: technologies, pricing models, regulatory outlook, bottlenecks, FAQ."""

import pytest
from fastapi.testclient import TestClient

COLLECTIONS = [
    ("/v1/technologies", 4, {"examples"}),
    ("/v1/pricing-models", 8, set()),
    ("/v1/regulatory/outlook", 3, {"agency", "expected_impact"}),
    ("/v1/bottlenecks", 4, {"rank"}),
    ("/v1/faq", 5, {"question"}),
]
COMMON = {"id", "name", "summary", "evidence", "source_id", "metric_ids"}


@pytest.mark.parametrize(("path", "total", "extra"), COLLECTIONS)
def test_collections_and_items(client: TestClient, path: str, total: int, extra: set[str]) -> None:
    body = client.get(path).json()
    assert (body["total"], body["limit"], body["offset"], body["next"]) == (total, 50, 0, None)
    metric_ids = {m["id"] for m in client.get("/v1/metrics?limit=500").json()["items"]}
    for item in body["items"]:
        assert set(item) == COMMON | extra
        assert set(item["metric_ids"]) <= metric_ids
        assert client.get(f"{path}/{item['id']}").json() == item
    paged = client.get(path, params={"limit": 1, "offset": 1})
    assert paged.json()["items"] == body["items"][1:2]
    assert paged.headers["link"] == f'<{path}?limit=1&offset=2>; rel="next"'


@pytest.mark.parametrize(("path", "_total", "_extra"), COLLECTIONS)
def test_unknown_item_is_404(client: TestClient, path: str, _total: int, _extra: set[str]) -> None:
    response = client.get(f"{path}/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].endswith("'nothing-here'.")


def test_technologies_name_their_platforms_in_article_order(client: TestClient) -> None:
    items = client.get("/v1/technologies").json()["items"]
    assert [item["examples"] for item in items] == [["CliniMACS Prodigy®", "Cocoon®"], [], [], []]
    starts = [item["evidence"]["start"] for item in items]
    assert starts == sorted(starts)
    closed = items[0]
    assert closed["metric_ids"] == [
        "closed-system-operator-variability-reduction",
        "closed-system-batch-release-success-increase",
    ]


def test_bottlenecks_are_ranked_as_the_faq_lists_them(client: TestClient) -> None:
    items = client.get("/v1/bottlenecks").json()["items"]
    assert [item["rank"] for item in items] == [1, 2, 3, 4]
    assert items[0]["evidence"]["quote"].startswith("(1) viral vector production capacity")
    assert items[0]["metric_ids"] == ["viral-vector-lead-time"]
    assert items[3]["evidence"]["quote"].startswith("(4) regulatory comparability")


def test_regulatory_outlook_names_agencies(client: TestClient) -> None:
    items = client.get("/v1/regulatory/outlook").json()["items"]
    assert [item["agency"] for item in items] == ["FDA", "EMA", None]
    assert items[2]["metric_ids"] == ["gmp-harmonization-registration-cost-reduction"]


def test_faq_questions_are_verbatim(client: TestClient) -> None:
    questions = [item["question"] for item in client.get("/v1/faq").json()["items"]]
    assert questions[0] == (
        "What is the main difference between a traditional CDMO and one specializing in "
        "personalized cancer medicine?"
    )
    assert len(questions) == 5 and all(q.endswith("?") for q in questions)


def test_pricing_models_include_the_faqs(client: TestClient) -> None:
    items = client.get("/v1/pricing-models").json()["items"]
    names = " ".join(item["name"].lower() for item in items)
    for model in ("value-based", "capacity", "fee-for-service", "tiered", "cogs"):
        assert model in names, model


def test_source_filter(client: TestClient) -> None:
    assert client.get("/v1/faq", params={"source": "elsewhere"}).json()["total"] == 0
    assert (
        client.get("/v1/faq", params={"source": "coreychem-future-of-cdmos-2026"}).json()["total"]
        == 5
    )


def test_source_filter_takes_a_list_as_the_metrics_do(client: TestClient) -> None:
    """`source` is a list meaning any of its ids, quoted or not, on every collection: a list
    is never searched for as one id (which no id could match)."""
    article = "coreychem-future-of-cdmos-2026"
    for path in ("/v1/faq", "/v1/technologies", "/v1/bottlenecks"):
        whole = client.get(path).json()["total"]
        for value in (f"{article},elsewhere", f'"{article}"', f'elsewhere,"{article}"'):
            assert client.get(path, params={"source": value}).json()["total"] == whole, value
        assert client.get(path, params={"source": "elsewhere,null"}).json()["total"] == 0
        refused = client.get(path, params={"source": f"{article},"})
        assert refused.status_code == 422
        assert refused.json()["errors"] == [
            {"in": "query", "name": "source",
             "detail": "has an empty value (two commas, or one at an end)"}
        ]  # fmt: skip


def test_pricing_models_list_in_the_article_order(client: TestClient) -> None:
    items = client.get("/v1/pricing-models").json()["items"]
    # "While traditional fee-for-service (cost-plus) is still common, many CDMOs now offer
    # tiered pricing based on patient volume, ... and risk-sharing models ...": each model is
    # its own clause, so the three list as the sentence names them, not by id.
    assert [item["id"] for item in items] == [
        "value-based-pricing",
        "capacity-pool",
        "platform-process-economies-of-scale",
        "profit-sharing-joint-venture",
        "fee-for-service-cost-plus",
        "tiered-patient-volume-pricing",
        "risk-sharing-revenue-share",
        "cogs-plus-fixed-margin",
    ]
    assert (
        items[4]["evidence"]["quote"] == "traditional fee-for-service (cost-plus) is still common"
    )


@pytest.mark.parametrize(("path", "_total", "_extra"), COLLECTIONS)
def test_context_entities_list_in_the_article_order(
    client: TestClient, path: str, _total: int, _extra: set[str]
) -> None:
    starts = [item["evidence"]["start"] for item in client.get(path).json()["items"]]
    assert starts == sorted(starts)
    assert len(set(starts)) == len(starts)


def test_the_ema_hospital_exemption_is_worded_as_the_article_words_it(client: TestClient) -> None:
    ema = client.get("/v1/regulatory/outlook/ema-hospital-exemption").json()
    # The article: "could shift some manufacturing back to academic centers, impacting CDMO
    # volume"; it neither says the move is anticipated nor that the volume falls.
    assert "could shift" in ema["summary"]
    assert "could shift" in ema["expected_impact"] and "impact" in ema["expected_impact"]
    for word in ("anticipated", "reduc", "move"):
        assert word not in ema["summary"] + ema["expected_impact"]
    fee = client.get("/v1/pricing-models/fee-for-service-cost-plus").json()
    assert "markup" not in fee["summary"] and "each service" not in fee["summary"]
