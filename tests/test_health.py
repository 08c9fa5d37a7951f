"""Liveness and readiness."""

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api import migrate
from api.main import create_app


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_when_migrated(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "revision": migrate.head_revision()}


def test_readyz_is_503_until_the_database_is_migrated(empty_engine: Engine) -> None:
    with TestClient(create_app(engine=empty_engine)) as unmigrated:
        response = unmigrated.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "5"
        assert "None" in response.json()["detail"]
        migrate.upgrade(empty_engine)
        assert unmigrated.get("/readyz").status_code == 200


@pytest.mark.parametrize("path", ["/v1/metrics", "/v1/metrics/any-id", "/v1/sources", "/"])
def test_reads_say_the_database_is_not_migrated_rather_than_fail(
    empty_engine: Engine, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`serve` on a database never migrated: each read is a 503 saying so, as /readyz does
    (not a 500 and a traceback), until the database is migrated."""
    with TestClient(create_app(engine=empty_engine)) as unmigrated:
        response = unmigrated.get(path)
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "5"
        assert response.json()["detail"] == (
            f"The database is at migration None; this code needs {migrate.head_revision()!r}."
        )
        assert not [record for record in caplog.records if record.exc_info]
        assert "Run `cdmo-metrics migrate`." in caplog.text
        migrate.upgrade(empty_engine)
        assert unmigrated.get(path).status_code == (404 if path.endswith("any-id") else 200)


SERVICE_DOCUMENTS = ["/healthz", "/readyz", "/openapi.json"]


@pytest.mark.parametrize("path", SERVICE_DOCUMENTS)
def test_service_documents_refuse_unknown_parameters(client: TestClient, path: str) -> None:
    """As every /v1 operation: a parameter nothing reads is refused, never ignored."""
    response = client.get(path, params={"verbose": "true", "format": "yaml"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {"in": "query", "name": "verbose", "detail": "Unknown parameter."},
        {"in": "query", "name": "format", "detail": "Unknown parameter."},
    ]


@pytest.mark.parametrize("path", SERVICE_DOCUMENTS)
def test_service_documents_answer_406_to_an_accept_they_cannot_meet(
    client: TestClient, path: str
) -> None:
    refused = client.get(path, headers={"Accept": "text/html"})
    assert refused.status_code == 406
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == (
        "This resource is available as application/json; the Accept header allows none of them."
    )
    for accept in ("application/json", "application/*", "*/*", "text/html, */*;q=0.1"):
        assert client.get(path, headers={"Accept": accept}).status_code == 200, accept


def test_the_probes_document_406_and_422(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/healthz", "/readyz"):
        assert {"406", "422"} <= set(paths[path]["get"]["responses"]), path
