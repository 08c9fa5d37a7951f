"""The OpenAPI document a client generator reads."""

import json

from fastapi.testclient import TestClient

from api import PROJECT_ROOT

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
    ("/v1/changes", "listChanges"),
    ("/v1/releases", "listReleases"),
    ("/healthz", "getHealth"),
    ("/readyz", "getReadiness"),
}
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def operations(document: dict) -> list[tuple[str, dict]]:  # type: ignore[type-arg]
    return [(path, op) for path, ops in document["paths"].items() for op in ops.values()]


WRITE_PATHS = {
    "Metric": ("/v1/metrics", "{metric_id}"),
    "Technology": ("/v1/technologies", "{item_id}"),
    "PricingModel": ("/v1/pricing-models", "{item_id}"),
    "RegulatoryChange": ("/v1/regulatory/outlook", "{item_id}"),
    "Bottleneck": ("/v1/bottlenecks", "{item_id}"),
    "Faq": ("/v1/faq", "{item_id}"),
    "Source": ("/v1/sources", "{source_id}"),
}
for _name, (_path, _id) in WRITE_PATHS.items():
    OPERATIONS |= {
        (_path, f"create{_name}"),
        (f"{_path}/{_id}", f"update{_name}"),
        (f"{_path}/{_id}", f"delete{_name}"),
        (f"{_path}/{_id}/revisions", f"list{_name}Revisions"),
    }


def test_the_committed_document_is_the_apps(client: TestClient) -> None:
    committed = json.loads((PROJECT_ROOT / "openapi.json").read_text(encoding="utf-8"))
    assert committed == client.get("/openapi.json").json(), "run `make openapi` and commit it"


def test_every_operation_has_a_stable_id_tag_and_summary(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    found = {(path, operation["operationId"]) for path, operation in operations(document)}
    assert found == OPERATIONS
    for _path, operation in operations(document):
        assert operation["tags"] and operation["summary"] and operation["description"]


def test_every_parameter_is_described_with_an_example(client: TestClient) -> None:
    for path, operation in operations(client.get("/openapi.json").json()):
        for parameter in operation.get("parameters", []):
            where = f"{path} {parameter['name']}"
            assert parameter["description"], where
            if parameter["name"] == "after":
                continue  # an opaque cursor: its examples are the `next` links the API gives
            assert parameter["schema"].get("examples") or parameter.get("examples"), where


def test_every_status_is_declared_and_errors_are_problem_details(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    get_metric = document["paths"]["/v1/metrics/{metric_id}"]["get"]["responses"]
    assert set(get_metric) == {"200", "304", "404", "406", "422", "500", "503"}
    list_metrics = document["paths"]["/v1/metrics"]["get"]["responses"]
    assert set(list_metrics) == {"200", "304", "406", "422", "500", "503"}
    assert set(list_metrics["200"]["content"]) == {
        "application/json",
        "text/csv",
        "application/x-ndjson",
    }
    for _path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == PROBLEM
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_responses_have_examples(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for name in (
        "MetricPublic", "TechnologyPublic", "PricingModelPublic", "RegulatoryChangePublic",
        "BottleneckPublic", "FaqPublic", "SourcePublic", "Facets", "Problem",
    ):  # fmt: skip
        assert schemas[name]["examples"], name
    page = document["paths"]["/v1/faq"]["get"]["responses"]["200"]["content"]["application/json"]
    assert page["example"]["items"][0]["id"] == "regulatory-changes-next-five-years"


def test_schemas_are_api_shapes_not_tables(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    metric = schemas["MetricPublic"]
    assert set(metric["properties"]) == {
        "id", "category", "name", "description", "value", "value_low", "value_high",
        "qualifier", "unit", "measure", "direction", "year", "forecast", "horizon_passed",
        "base_year", "geography", "subjects", "cited_as", "baseline_id", "source_id", "evidence",
    }  # fmt: skip
    assert "evidence_quote" not in metric["properties"]
    assert set(schemas["Unit"]["enum"]) == {
        "USD", "percent", "ratio", "hours", "days", "months", "years", "count",
    }  # fmt: skip
    parameters = client.get("/openapi.json").json()["paths"]["/v1/metrics"]["get"]["parameters"]
    assert [p["name"] for p in parameters] == [
        "limit", "offset", "format", "as_of", "category", "unit", "measure", "geography",
        "subject", "source", "year", "forecast", "horizon_passed", "q", "sort", "after", "count",
    ]  # fmt: skip
