"""Write rate limits counted in Redis (REDIS_URL): one limit across instances, 503 without Redis.

The tests that need a Redis server use TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/15) and are
skipped without it; each uses key names of its own and deletes only its own Redis keys.
"""

import math
import os
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from redis import Redis
from sqlalchemy import Engine, text
from sqlmodel import Session

from api import PROJECT_ROOT
from api.auth import service as auth_service
from api.config import Settings
from api.db import writer
from api.main import create_app
from tests.conftest import free_port, serving
from tests.helpers import new_metric

REDIS_URL = os.environ.get("TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(REDIS_URL is None, reason="TEST_REDIS_URL is not set")


def make_key(engine: Engine, scope: str = "write") -> tuple[str, dict[str, str]]:
    """A new key with a name no other test run uses: (its name, its Authorization header)."""
    name = f"redis-test-{uuid.uuid4().hex[:12]}"
    with Session(writer(engine)) as session, session.begin():
        token = auth_service.create_key(session, name=name, scope=scope)
    return name, {"Authorization": f"Bearer {token}"}


def rate_window_rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM rate_window")).scalar_one())


@pytest.fixture
def redis() -> Iterator[Redis]:
    """The test Redis; afterwards, the rate keys of this test's key names are deleted."""
    assert REDIS_URL is not None
    client = Redis.from_url(REDIS_URL)
    yield client
    for key in client.scan_iter(match="cdmo:rate:redis-test-*"):
        client.delete(key)
    client.close()


def wait_for_window_start(window_seconds: int) -> None:
    """Sleep until just after a window begins, so a few quick requests share one window."""
    now = time.time()
    time.sleep(math.ceil(now / window_seconds) * window_seconds - now + 0.05)


@needs_redis
def test_the_limit_holds_across_instances_sharing_redis(
    migrated_engine: Engine, redis: Redis
) -> None:
    assert REDIS_URL is not None
    alice, alice_auth = make_key(migrated_engine)
    _bob, bob_auth = make_key(migrated_engine)
    limits = {"REDIS_URL": REDIS_URL, "WRITE_RATE_LIMIT": "3", "WRITE_RATE_WINDOW": "3600"}
    settings = Settings(redis_url=REDIS_URL, write_rate_limit=3, write_rate_window=3600)
    with (
        TestClient(create_app(settings, engine=migrated_engine)) as first,
        serving(migrated_engine, **limits) as (_server, second_url),
        httpx.Client(base_url=second_url) as second,
    ):
        instances: list[TestClient | httpx.Client] = [first, second, first, second, first]
        responses = [
            instance.post("/v1/metrics", json={"id": "x"}, headers=alice_auth)
            for instance in instances
        ]
        assert [r.status_code for r in responses] == [422, 422, 422, 429, 429]
        limited = responses[-1]
        assert limited.headers["content-type"] == "application/problem+json"
        assert limited.json()["status"] == 429
        assert f"{alice!r} made more than 3 writes in 3600 s" in limited.json()["detail"]
        assert 1 <= int(limited.headers["retry-after"]) <= 3600
        assert second.post("/v1/metrics", json={"id": "x"}, headers=bob_auth).status_code == 422

    # Counted in Redis, and only there: one key per key name and window, expiring with it.
    window = int(time.time() // 3600) * 3600
    assert int(redis.get(f"cdmo:rate:{alice}:{window}") or 0) == 5
    assert 0 < redis.ttl(f"cdmo:rate:{alice}:{window}") <= 3600
    assert rate_window_rows(migrated_engine) == 0


@needs_redis
def test_a_new_window_resets_the_count(migrated_engine: Engine, redis: Redis) -> None:
    _name, auth = make_key(migrated_engine)
    settings = Settings(redis_url=REDIS_URL, write_rate_limit=1, write_rate_window=2)
    with TestClient(create_app(settings, engine=migrated_engine)) as client:
        wait_for_window_start(2)
        assert client.post("/v1/metrics", json={"id": "x"}, headers=auth).status_code == 422
        limited = client.post("/v1/metrics", json={"id": "x"}, headers=auth)
        assert limited.status_code == 429
        retry_after = int(limited.headers["retry-after"])
        assert 1 <= retry_after <= 2
        time.sleep(retry_after)  # a client that waits as told is admitted
        assert client.post("/v1/metrics", json={"id": "x"}, headers=auth).status_code == 422


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung Redis)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


@pytest.mark.parametrize("redis_down", ["closed port", "no answer"])
def test_writes_are_refused_with_503_when_redis_is_unreachable(
    fresh_seeded_engine: Engine, redis_down: str, request: pytest.FixtureRequest
) -> None:
    port = free_port() if redis_down == "closed port" else request.getfixturevalue("silent_server")
    _name, auth = make_key(fresh_seeded_engine)
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0")
    with TestClient(create_app(settings, engine=fresh_seeded_engine)) as client:
        total = client.get("/v1/metrics").json()["total"]
        started = time.monotonic()
        refused = client.post("/v1/metrics", json=new_metric(), headers=auth)
        assert time.monotonic() - started < 3  # short timeouts: no hang
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        assert "rate limiter" in refused.json()["detail"]
        # Nothing was written, and reads go on as before.
        assert client.get(f"/v1/metrics/{new_metric()['id']}").status_code == 404
        assert client.get("/v1/metrics").json()["total"] == total
        assert rate_window_rows(fresh_seeded_engine) == 0
        # Keys are still checked first: a bad key is a 401, not a 503.
        bad = {"Authorization": "Bearer not-a-key"}
        assert client.post("/v1/metrics", json=new_metric(), headers=bad).status_code == 401


def test_compose_counts_write_rates_in_its_redis() -> None:
    import yaml

    compose = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    for name in ("api1", "api2"):
        url = services[name]["environment"]["REDIS_URL"]
        assert Settings(redis_url=url).redis_url == "redis://redis:6379/0"
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
