"""The OpenAPI document a client generator reads."""

from fastapi.testclient import TestClient

OPERATIONS = {
    ("/v1/metrics", "listMetrics"),
    ("/v1/metrics/facets", "getMetricFacets"),
    ("/v1/metrics/{metric_id}", "getMetric"),
    ("/v1/market", "listMarketMetrics"),
    ("/v1/regulatory", "listRegulatoryMetrics"),
    ("/v1/mna", "listMnaMetrics"),
    ("/v1/technologies", "listTechnologies"),
    ("/v1/technologies/{item_id}", "getTechnology"),
    ("/v1/pricing-models", "listPricingModels"),
    ("/v1/pricing-models/{item_id}", "getPricingModel"),
    ("/v1/regulatory/outlook", "listRegulatoryChanges"),
    ("/v1/regulatory/outlook/{item_id}", "getRegulatoryChange"),
    ("/v1/bottlenecks", "listBottlenecks"),
    ("/v1/bottlenecks/{item_id}", "getBottleneck"),
    ("/v1/faq", "listFaqs"),
    ("/v1/faq/{item_id}", "getFaq"),
    ("/v1/sources", "listSources"),
    ("/v1/sources/{source_id}", "getSource"),
    ("/v1/sources/{source_id}/citation", "getSourceCitation"),
    ("/v1/sources/{source_id}/text", "getSourceText"),
    ("/healthz", "getHealth"),
    ("/readyz", "getReadiness"),
}


def test_every_operation_has_a_stable_id_tag_and_summary(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    found = {
        (path, operation["operationId"])
        for path, operations in document["paths"].items()
        for operation in operations.values()
    }
    assert found == OPERATIONS
    for operations in document["paths"].values():
        for operation in operations.values():
            assert operation["tags"] and operation["summary"]


def test_errors_are_documented_as_problem_details(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    get_metric = document["paths"]["/v1/metrics/{metric_id}"]["get"]["responses"]
    assert set(get_metric) == {"200", "404", "406", "422", "503"}
    for status in ("404", "406", "422", "503"):
        assert get_metric[status]["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_schemas_are_api_shapes_not_tables(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    metric = schemas["MetricPublic"]
    assert set(metric["properties"]) == {
        "id", "category", "name", "description", "value", "value_low", "value_high",
        "qualifier", "unit", "measure", "direction", "year", "forecast", "horizon_passed", "base_year",
        "geography", "subjects", "cited_as", "baseline_id", "source_id", "evidence",
    }  # fmt: skip
    assert "evidence_quote" not in metric["properties"]
    assert set(schemas["Unit"]["enum"]) == {
        "USD", "percent", "ratio", "hours", "days", "months", "years", "count",
    }  # fmt: skip
    parameters = client.get("/openapi.json").json()["paths"]["/v1/metrics"]["get"]["parameters"]
    assert [p["name"] for p in parameters] == [
        "limit", "offset", "format", "category", "unit", "measure", "geography", "subject",
        "source", "year", "forecast", "horizon_passed", "q", "sort",
    ]  # fmt: skip
    assert all(p["description"] for p in parameters)
