"""The OpenAPI document a client generator reads."""

import json

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api import PROJECT_ROOT
from api.exports import ExportGate
from api.main import create_app

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
    ("/v1/sources/{source_id}/text", "getSourceText"),
    ("/v1/dataset.zip", "getDatasetPackage"),
    ("/v1/changes", "listChanges"),
    ("/v1/releases", "listReleases"),
    ("/v1", "getIndex"),
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
COLLECTIONS = {
    "/v1/metrics": "Metrics",
    "/v1/market": "MarketMetrics",
    "/v1/regulatory": "RegulatoryMetrics",
    "/v1/mna": "MnaMetrics",
    "/v1/technologies": "Technologies",
    "/v1/pricing-models": "PricingModels",
    "/v1/regulatory/outlook": "RegulatoryChanges",
    "/v1/bottlenecks": "Bottlenecks",
    "/v1/faq": "Faqs",
    "/v1/sources": "Sources",
    "/v1/changes": "Changes",
    "/v1/releases": "Releases",
}
for _path, _plural in COLLECTIONS.items():
    OPERATIONS |= {
        (f"{_path}.csv", f"export{_plural}Csv"),
        (f"{_path}.ndjson", f"export{_plural}Ndjson"),
    }
for _name, (_path, _id) in WRITE_PATHS.items():
    _item = f"{_path}/{_id}/citation"
    OPERATIONS |= {
        (_item, f"get{_name}Citation"),
        (f"{_item}.bib", f"get{_name}Bibtex"),
        (f"{_item}.ris", f"get{_name}Ris"),
        (f"{_item}.json", f"get{_name}CslJson"),
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
    assert set(get_metric) == {"200", "304", "404", "406", "412", "414", "422", "500", "503"}
    list_metrics = document["paths"]["/v1/metrics"]["get"]["responses"]
    assert set(list_metrics) == {"200", "304", "406", "412", "414", "422", "500", "503"}
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
        "limit", "offset", "as_of", "category", "unit", "measure", "qualifier",
        "direction", "geography", "subject", "source", "year", "base_year", "forecast",
        "horizon_passed", "value_min", "value_max", "q", "sort", "after", "count",
        "If-None-Match",
    ]  # fmt: skip


MEDIA_TYPES = {
    ".csv": "text/csv",
    ".ndjson": "application/x-ndjson",
    "/citation": "text/plain",
    "/citation.bib": "application/x-bibtex",
    "/citation.ris": "application/x-research-info-systems",
    "/citation.json": "application/vnd.citationstyles.csl+json",
    "/text": "text/plain",
    ".zip": "application/zip",
}


def test_every_operation_answers_exactly_one_media_type(client: TestClient) -> None:
    """What a generated client needs to type `data`: one documented media type per 200."""
    document = client.get("/openapi.json").json()
    for path, operation in operations(document):
        success = {status: r for status, r in operation["responses"].items() if status < "300"}
        for status, response in success.items():
            content = list(response.get("content", {}))
            if status == "204":
                assert content == [], path
                continue
            expected = next(
                (media for end, media in MEDIA_TYPES.items() if path.endswith(end)),
                "application/json",
            )
            assert content == [expected], path


def test_headers_servers_and_security_are_declared(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["servers"] == [
        {"url": "/", "description": "The server this document is served from."}
    ]
    headers = document["components"]["headers"]
    assert set(headers) >= {"ETag", "Link", "Content-Disposition", "Dataset-Version", "Retry-After"}
    page = document["paths"]["/v1/metrics"]["get"]["responses"]["200"]["headers"]
    assert page["Link"] == {"$ref": "#/components/headers/Link"}
    assert page["Dataset-Version"] == {"$ref": "#/components/headers/Dataset-Version"}
    export = document["paths"]["/v1/metrics.csv"]["get"]
    assert export["responses"]["200"]["headers"]["Content-Disposition"] == {
        "$ref": "#/components/headers/Content-Disposition"
    }
    assert [p["name"] for p in export["parameters"] if p["in"] == "query"][-1] == "bom"
    unavailable = document["paths"]["/v1/metrics"]["get"]["responses"]["503"]
    assert unavailable["headers"] == {
        "Retry-After": {"$ref": "#/components/headers/Retry-After"},
        "X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"},
    }
    for path, operation in operations(document):
        if "tags" in operation and "writes" in operation["tags"]:
            assert operation["security"] == [{"HTTPBearer": []}], path
        else:
            assert operation["security"] == [], path


# The headers of the API's own a client reads from a successful read.
OWN_HEADERS = {"etag", "cache-control", "dataset-version", "link", "content-disposition"}


def test_every_read_declares_each_header_it_answers(client: TestClient) -> None:
    """A generated client reads only the headers an operation declares: every GET of `/v1`,
    answered 200 (a page asked for two items, so that it links a next one), declares each
    header of the API's own that it sends."""
    document = client.get("/openapi.json").json()
    ids = {"metric_id": "viral-vector-lead-time", "source_id": "coreychem-future-of-cdmos-2026"}
    checked = 0
    for path, item in document["paths"].items():
        if "get" not in item or not path.startswith("/v1"):
            continue
        concrete = path.replace("{metric_id}", ids["metric_id"])
        concrete = concrete.replace("{source_id}", ids["source_id"])
        if "{item_id}" in concrete:
            collection = path.split("/{item_id}")[0]
            first = client.get(collection, params={"limit": 1}).json()["items"][0]["id"]
            concrete = concrete.replace("{item_id}", first)
        names = {p["name"] for p in item["get"].get("parameters", [])}
        answer = client.get(concrete, params={"limit": 2} if "limit" in names else {})
        assert answer.status_code == 200, (concrete, answer.text)
        declared = {name.lower() for name in item["get"]["responses"]["200"].get("headers", {})}
        assert OWN_HEADERS & set(answer.headers) <= declared, path
        checked += 1
    assert checked >= 60


# Headers an answer of any status may carry, by the statuses that carry them.
HEADERS_BY_STATUS = {
    "x-request-id": None,  # every status
    "dataset-version": {"200", "404"},
    "www-authenticate": {"401"},
    "retry-after": {"429", "503"},
}


def test_every_answer_declares_the_headers_it_sends(client: TestClient) -> None:
    """A typed client sees a header only where it is declared: the request id of every answer,
    the version of a read that found nothing, the scheme a 401 asks for."""
    document = client.get("/openapi.json").json()
    asked = [
        ("get", "/v1/metrics/{metric_id}", "/v1/metrics/no-such-metric", {}),
        ("get", "/v1/technologies/{item_id}", "/v1/technologies/none", {}),
        ("get", "/v1/metrics", "/v1/metrics?limit=0", {}),
        ("get", "/v1/metrics", "/v1/metrics", {"Accept": "text/html"}),
        ("post", "/v1/metrics", "/v1/metrics", {}),
        ("post", "/v1/metrics", "/v1/metrics", {"Authorization": "Bearer not-a-key"}),
        ("get", "/healthz", "/healthz", {}),
        ("get", "/readyz", "/readyz", {}),
    ]
    for method, template, url, headers in asked:
        answer = client.request(method, url, headers=headers, json={} if method == "post" else None)
        response = document["paths"][template][method]["responses"][str(answer.status_code)]
        declared = {name.lower() for name in response.get("headers", {})}
        sent = {name for name in HEADERS_BY_STATUS if name in answer.headers}
        assert "x-request-id" in sent and sent <= declared, (url, answer.status_code, sent)
    assert "x-request-id" in {
        name.lower() for name in document["paths"]["/healthz"]["get"]["responses"]["200"]["headers"]
    }


def test_query_parameters_are_never_null_and_reads_take_if_none_match(client: TestClient) -> None:
    """A query string cannot carry a null: a generator told a parameter may be null lets a caller
    pass one, and leaves the filter out (every metric) where `null` would have found some.
    Every read takes If-None-Match, so that a generated call can send it."""
    document = client.get("/openapi.json").json()
    for path, operation in operations(document):
        parameters = {p["name"]: p for p in operation.get("parameters", [])}
        for parameter in parameters.values():
            if parameter["in"] == "query":
                assert "null" not in json.dumps(parameter["schema"].get("anyOf", [])), path
                assert parameter["schema"].get("type") != "null", path
        if "304" in operation["responses"]:
            assert parameters["If-None-Match"]["in"] == "header", path
    geography = next(
        p for p in document["paths"]["/v1/metrics"]["get"]["parameters"] if p["name"] == "geography"
    )
    assert geography["schema"]["type"] == "string"
    assert "`null` selects" in geography["description"]
    category = next(
        p for p in document["paths"]["/v1/metrics"]["get"]["parameters"] if p["name"] == "category"
    )
    assert "null" not in category["description"]


def test_patch_bodies_are_typed_per_kind(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    body = document["paths"]["/v1/metrics/{metric_id}"]["patch"]["requestBody"]["content"]
    assert body == {
        media: {"schema": {"$ref": "#/components/schemas/MetricPatch"}}
        for media in ("application/json", "application/merge-patch+json")
    }
    patch = schemas["MetricPatch"]
    assert "required" not in patch and patch["additionalProperties"] is False
    assert patch["properties"]["name"]["type"] == "string"  # null is not a name
    assert {"type": "null"} in patch["properties"]["geography"]["anyOf"]  # null: no geography
    assert patch["properties"]["evidence"] == {"$ref": "#/components/schemas/EvidencePatch"}
    for name in WRITE_PATHS:
        assert f"{name}Patch" in schemas
        create = document["paths"][WRITE_PATHS[name][0]]["post"]["requestBody"]["content"]
        assert create["application/json"]["schema"]["$ref"].endswith("Record")


def test_exports_document_the_429_they_answer(seeded_engine: Engine) -> None:
    """An export that counts its client's exports under way (EXPORTS_PER_CLIENT) declares
    its 429, a problem with Retry-After; the others are never refused for it."""
    app = create_app(engine=seeded_engine)
    with TestClient(app, raise_server_exceptions=False) as busy:
        app.state.export_gate = ExportGate(0)  # as if every export allowed were under way
        paths = busy.get("/openapi.json").json()["paths"]
        limited = []
        for path, operations in paths.items():
            if not path.endswith((".csv", ".ndjson")):
                continue
            responses = operations["get"]["responses"]
            answer = busy.get(path)
            if "429" not in responses:
                assert answer.status_code == 200, path
                continue
            limited.append(path)
            assert answer.status_code == 429, path
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.headers["retry-after"] == "5"
            assert responses["429"] == {
                "description": "Too Many Requests",
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
                "headers": {
                    "Retry-After": {"$ref": "#/components/headers/Retry-After"},
                    "X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"},
                },
            }
        assert {"/v1/metrics.csv", "/v1/mna.ndjson", "/v1/changes.csv"} <= set(limited)


def test_every_read_documents_the_412_of_its_if_match(client: TestClient) -> None:
    """A GET evaluates If-Match (RFC 9110 §13.1.1): each documents the 412 it may answer."""
    paths = client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        if "get" in operations:
            failed = operations["get"]["responses"].get("412")
            assert failed is not None, path
            assert failed["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }


def test_if_match_is_a_required_header_of_every_patch_and_delete(client: TestClient) -> None:
    """A PATCH or DELETE without If-Match is refused (428): a generated client must make the
    caller give it."""
    paths = client.get("/openapi.json").json()["paths"]
    changes = [(path, method) for path, ops in paths.items() for method in ops
               if method in ("patch", "delete")]  # fmt: skip
    assert len(changes) == 14
    for path, method in changes:
        headers = {p["name"]: p for p in paths[path][method]["parameters"] if p["in"] == "header"}
        assert set(headers) == {"if-match", "if-none-match"}, (path, method)
        assert (headers["if-match"]["required"], headers["if-match"]["schema"]["type"]) == (
            True, "string"
        ), (path, method)  # fmt: skip
        assert headers["if-none-match"]["required"] is False, (path, method)


def test_a_revision_names_its_kind_and_action_from_fixed_sets(client: TestClient) -> None:
    """A generated client gets enums, not free strings, for what a revision is of and did."""
    from typing import get_args

    from api.history.schemas import RecordKind
    from api.records.registry import KINDS

    assert list(get_args(RecordKind)) == list(KINDS)
    revision = client.get("/openapi.json").json()["components"]["schemas"]["RevisionPublic"]
    assert revision["properties"]["kind"]["enum"] == list(KINDS)
    assert revision["properties"]["action"]["enum"] == ["create", "update", "delete"]
    counts = [
        parameter["schema"]
        for _path, operation in operations(client.get("/openapi.json").json())
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "count"
    ]
    assert counts and all(c["$ref"] == "#/components/schemas/Count" for c in counts)
