"""Operating the service: request ids, the JSON request log, settings checked at start, workers."""

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api import migrate
from api.main import create_app
from tests.conftest import serving
from tests.helpers import make_keys


def test_request_id_is_made_or_echoed(client: TestClient) -> None:
    made = client.get("/healthz").headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == (
        "abc-123"
    )
    unsafe = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


def test_one_json_log_line_per_request_naming_the_key_never_the_token(
    fresh_seeded_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    keys = make_keys(fresh_seeded_engine)
    with TestClient(create_app(engine=fresh_seeded_engine)) as client:
        caplog.set_level(logging.INFO, logger="api.access")
        client.get("/v1/faq?limit=1", headers={"X-Request-ID": "req-1"})
        client.post(
            "/v1/metrics", json={"id": "x"}, headers={"Authorization": f"Bearer {keys['alice']}"}
        )
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "api.access"]
    assert lines[0] == {
        "method": "GET",
        "path": "/v1/faq",
        "status": 200,
        "duration_ms": lines[0]["duration_ms"],
        "request_id": "req-1",
    }
    assert lines[1]["status"] == 422 and lines[1]["key"] == "alice"
    assert keys["alice"] not in caplog.text and '"id": "x"' not in caplog.text


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL: Value error, use sqlite:///"),
        ({"PORT": "99999"}, "PORT: Input should be less than or equal to 65535"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL: Input should be"),
        ({"CORS_ORIGINS": "https://a.example/"}, "CORS_ORIGINS: Value error, 'https://a.example/'"),
        ({"CORS_ORIGINS": '["https://a.example'}, "CORS_ORIGINS: Value error, not a JSON list"),
        ({"CORS_ORIGINS": ""}, "CORS_ORIGINS: Value error, no origin"),
        ({"HOST": ""}, "HOST: String should have at least 1 character"),
        ({"EXPORT_SEND_TIMEOUT": "inf"}, "EXPORT_SEND_TIMEOUT: Input should be a finite number"),
        (
            {"DATABASE_URL": "sqlite:////tmp/x.db", "DATABASE_READ_URL": "postgresql://h/d"},
            "DATABASE_READ_URL: Value error, a standby of a PostgreSQL DATABASE_URL",
        ),
        ({"SHUTDOWN_TIMEOUT": "0"}, "SHUTDOWN_TIMEOUT: Input should be greater than or equal to 1"),
    ],
)
def test_bad_settings_fail_fast_with_one_line(env: dict[str, str], expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "migrate"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and expected in result.stderr


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        (["--port", "73817"], "argument --port: 73817 is not from 1 to 65535"),
        (["--port", "0"], "argument --port: 0 is not from 1 to 65535"),
        (["--workers", "0"], "argument --workers: 0 is not from 1 to 64"),
        (["--workers", "1000"], "argument --workers: 1000 is not from 1 to 64"),
    ],
)
def test_serve_options_are_held_to_their_settings_bounds(option: list[str], expected: str) -> None:
    """As PORT and WEB_CONCURRENCY are: a port over 65,535 bound another (73817 is 8281), and
    0 fell back to the default without a word."""
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "serve", *option],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and expected in result.stderr


def test_cors_origins_may_be_a_plain_list() -> None:
    from api.config import Settings

    origins = "https://a.example, http://b.example:8080"
    assert Settings(cors_origins=origins).cors_origins == [
        "https://a.example",
        "http://b.example:8080",
    ]
    assert Settings(cors_origins='["*"]').cors_origins == ["*"]


def test_serve_runs_several_workers(seeded_engine: Engine, tmp_path: Path) -> None:
    with serving(seeded_engine, "--workers", "2") as (server, url):
        workers = subprocess.run(
            ["pgrep", "-P", str(server.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(workers) >= 2
        answers = {httpx.get(f"{url}/v1/faq").json()["total"] for _ in range(10)}
        assert answers == {5}


def test_instances_starting_together_migrate_and_seed_once(empty_engine: Engine) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": empty_engine.url.render_as_string(hide_password=False),
    }
    command = f"{sys.executable} -m api.cli migrate && {sys.executable} -m api.cli seed"
    starts = [
        subprocess.Popen(
            ["sh", "-c", command],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [start.communicate(timeout=240)[0] for start in starts]
    assert [start.returncode for start in starts] == [0, 0, 0], outputs
    assert sum("metrics              +42 ~0 -0 =0" in output for output in outputs) == 1
    with TestClient(create_app(engine=empty_engine)) as client:
        assert client.get("/v1/releases").json()["total"] == 1
        assert client.get("/v1/metrics").json()["total"] == 42
        assert client.get("/readyz").status_code == 200


def test_an_instance_waits_out_another_instances_migration(
    backend: str, migrated_engine: Engine
) -> None:
    """PostgreSQL: an instance starting beside one that holds the migration lock waits for it
    however long it takes; it waited under the statement timeout (5 s by default) and failed
    when a new database's migration or seed took longer."""
    if backend != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    from sqlalchemy import text

    holder = migrated_engine.connect()
    held = holder.begin()
    holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": migrate.ADVISORY_LOCK_KEY})
    env = {
        **os.environ,
        "DATABASE_URL": migrated_engine.url.render_as_string(hide_password=False),
        "DB_STATEMENT_TIMEOUT_MS": "200",
    }
    waiting = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "migrate"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(3)  # many times the statement timeout
        assert waiting.poll() is None, waiting.communicate()[0]
    finally:
        held.rollback()
        holder.close()
    output = waiting.communicate(timeout=120)[0]
    assert waiting.returncode == 0, output
    assert output.strip().endswith(f"migrated to {migrate.head_revision()}")


def test_prometheus_metrics(client: TestClient) -> None:
    client.get("/v1/faq?limit=2")
    client.get("/v1/faq?limit=2")
    client.get("/v1/metrics/no-such-metric")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    assert 'cdmo_http_requests_total{method="GET",route="/v1/faq",status="200"}' in text
    assert (
        'cdmo_http_requests_total{method="GET",route="/v1/metrics/{metric_id}",status="404"}'
        in text
    )
    assert 'cdmo_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/v1/faq"}' in (
        text
    )
    for family in (
        "cdmo_cache_hits_total",
        "cdmo_cache_misses_total",
        "cdmo_dataset_version",
        "cdmo_db_connections_in_use",
        "cdmo_db_pool_size",
    ):
        assert f"\n{family} " in text, family
    hits = float(text.split("\ncdmo_cache_hits_total ")[1].split()[0])
    assert hits >= 1


def test_a_slow_query_is_cut_and_answered_503(backend: str, databases: object) -> None:
    if backend != "postgresql":
        pytest.skip("statement timeouts are a PostgreSQL setting")
    from fastapi import FastAPI
    from sqlalchemy import text

    from api.config import Settings
    from api.db import make_engine
    from api.problems import install_error_handlers
    from tests.conftest import POSTGRES_URL

    assert POSTGRES_URL is not None
    engine = make_engine(POSTGRES_URL, Settings(db_statement_timeout_ms=200))
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/slow")
    def slow() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_sleep(5)"))

    started = time.monotonic()
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/slow")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"].startswith(
        "The database did not answer within its statement timeout"
    )  # reachable: not "unreachable"
    assert time.monotonic() - started < 2
    engine.dispose()


def test_database_outage_is_503_then_recovers_by_itself(
    backend: str, seeded_engine: Engine
) -> None:
    if backend != "postgresql":
        pytest.skip("a database server outage needs the server database")
    from sqlalchemy.engine import make_url

    from api.config import Settings
    from api.db import make_engine
    from tests.faultproxy import FaultProxy

    real = seeded_engine.url
    proxy = FaultProxy((real.host or "127.0.0.1", real.port or 5432))
    url = make_url(real.render_as_string(hide_password=False)).set(port=proxy.port)
    engine = make_engine(url.render_as_string(hide_password=False), Settings())
    statuses: list[int] = []
    try:
        with TestClient(create_app(engine=engine), raise_server_exceptions=False) as client:
            assert client.get("/v1/faq").status_code == 200
            proxy.cut()
            started = time.monotonic()
            # The listener learns of the cut on its own thread: a read in the moment before
            # it does may still be answered from the response cache (the data it had).
            down = client.get("/v1/faq")
            while down.status_code == 200 and time.monotonic() - started < 2:
                down = client.get("/v1/faq")
            assert time.monotonic() - started < 2
            assert down.status_code == 503 and down.headers["retry-after"] == "5"
            assert down.headers["content-type"] == "application/problem+json"
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 503
            for path in ("/v1/metrics/car-t-dose-manufacturing-cost", "/v1/metrics?q=cost"):
                statuses.append(client.get(path).status_code)
            proxy.restore()
            recovered = time.monotonic()
            while time.monotonic() - recovered < 5:
                response = client.get("/v1/faq")
                statuses.append(response.status_code)
                if response.status_code == 200:
                    break
                time.sleep(0.1)
            assert statuses[-1] == 200
            assert client.get("/readyz").status_code == 200
            assert 500 not in statuses
    finally:
        proxy.close()
        engine.dispose()


def test_sigterm_under_load_finishes_in_flight_requests_refuses_new_ones_and_exits_0(
    fresh_seeded_engine: Engine,
) -> None:
    """Eight clients keep reading (a new connection per request) while the server is told to
    stop. Every answer that arrives is whole and 200; every request that gets no answer is
    refused at the connection (never a 500, never a cut-off body); a write whose body is still
    arriving when the signal comes is finished and stored; the process exits 0."""
    import signal
    import threading

    from sqlmodel import Session

    from api.metrics.models import Metric
    from tests.helpers import new_metric

    keys = make_keys(fresh_seeded_engine)
    outcomes: list[tuple[float, str]] = []
    stop, started, release = threading.Event(), threading.Event(), threading.Event()
    posted: list[int] = []

    def client(url: str) -> None:
        while not stop.is_set():
            try:
                response = httpx.get(f"{url}/v1/metrics?limit=50", timeout=10)
                whole = len(response.json()["items"]) >= 42
                outcomes.append((time.monotonic(), f"{response.status_code}{'' if whole else '!'}"))
            except httpx.ConnectError:
                outcomes.append((time.monotonic(), "refused"))
                time.sleep(0.01)
            except httpx.RemoteProtocolError as exc:  # closed before a byte of an answer
                kind = "closed" if "without sending a response" in str(exc) else f"cut: {exc}"
                outcomes.append((time.monotonic(), kind))
            except httpx.ReadError:  # reset: connected while it stopped listening, never accepted
                outcomes.append((time.monotonic(), "reset"))

    body = json.dumps(new_metric(id="written-while-stopping")).encode()

    def held_body() -> Iterator[bytes]:
        yield body[:20]
        started.set()  # the request line, headers and a first chunk are on their way
        release.wait(timeout=20)
        yield body[20:]

    def write(url: str) -> None:
        headers = {"Authorization": f"Bearer {keys['alice']}", "Content-Type": "application/json"}
        with httpx.Client(timeout=30) as session:
            posted.append(
                session.post(f"{url}/v1/metrics", content=held_body(), headers=headers).status_code
            )

    with serving(fresh_seeded_engine) as (server, url):
        clients = [threading.Thread(target=client, args=(url,)) for _ in range(8)]
        for thread in clients:
            thread.start()
        writer = threading.Thread(target=write, args=(url,))
        writer.start()
        assert started.wait(timeout=10)
        time.sleep(1.0)  # load runs, and the server has long read the write's headers
        # ... and has answered a real load (later on a busy machine): then the signal.
        deadline = time.monotonic() + 30
        while sum(kind == "200" for _m, kind in outcomes) <= 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert server.poll() is None  # it waits for the write still under way
        release.set()
        assert server.wait(timeout=30) == 0
        exited = time.monotonic()
        time.sleep(0.5)
        stop.set()
        for thread in [*clients, writer]:
            thread.join(timeout=30)
    assert posted == [201]
    with Session(fresh_seeded_engine) as session:
        assert session.get(Metric, "written-while-stopping") is not None
    kinds = {kind for _moment, kind in outcomes}
    assert kinds <= {"200", "refused", "closed", "reset"}, kinds
    answered_before = [k for moment, k in outcomes if moment < signalled and k == "200"]
    assert len(answered_before) > 20  # the load was real
    assert all(kind != "200" for moment, kind in outcomes if moment > exited + 0.1)
    assert "refused" in kinds  # new connections are refused once it stops listening
