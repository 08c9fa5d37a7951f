"""Liveness and readiness."""

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
