"""A streaming read replica (DATABASE_READ_URL): reads come from it, writes go to the primary,
and the response cache follows the replica's own revision, so it never serves older data
than the replica holds, nor keeps data older than a write once the replica has it.

Needs TEST_POSTGRES_URL and TEST_POSTGRES_REPLICA_URL, a hot standby of it (`.ci/standby`
starts one on port 5433)."""

import os
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from api import migrate
from api.config import Settings
from api.db import make_engine
from api.main import create_app
from tests.conftest import DatabaseFactory, seed
from tests.helpers import make_keys

REPLICA_URL = os.environ.get("TEST_POSTGRES_REPLICA_URL")
ITEM = "/v1/metrics/viral-vector-lead-time"


@pytest.fixture
def primary_and_replica(
    backend: str, databases: DatabaseFactory
) -> Iterator[tuple[Engine, Engine]]:
    if backend != "postgresql" or REPLICA_URL is None:
        pytest.skip("needs PostgreSQL and a read replica of it (TEST_POSTGRES_REPLICA_URL)")
    primary = databases.new_engine()
    migrate.upgrade(primary)
    seed(primary)
    name = primary.url.database
    replica = make_engine(
        make_url(REPLICA_URL).set(database=name).render_as_string(hide_password=False)
    )
    until_replayed(replica, lambda value: value is not None)
    yield primary, replica
    replica.dispose()


def revision_of(engine: Engine) -> object:
    with engine.connect() as connection:
        try:
            return connection.execute(text("SELECT version FROM dataset_state")).scalar()
        except Exception:  # the database (or its tables) not replayed yet
            return None


def until_replayed(replica: Engine, done: object, seconds: float = 15) -> object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = revision_of(replica)
        if done(value):  # type: ignore[operator]
            return value
        time.sleep(0.05)
    raise AssertionError("the replica did not replay in time")


def test_reads_come_from_the_replica_and_writes_go_to_the_primary(
    primary_and_replica: tuple[Engine, Engine],
) -> None:
    primary, replica = primary_and_replica
    keys = make_keys(primary)
    with replica.connect() as connection:
        assert connection.execute(text("SELECT pg_is_in_recovery()")).scalar() is True
    app = create_app(Settings(), engine=primary, read_engine=replica)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/readyz").status_code == 200
        before = client.get(ITEM)
        assert before.status_code == 200 and before.json()["geography"] == "global"
        assert replica.pool.checkedin() >= 1  # the read was made on the replica's connections
        old = revision_of(primary)
        with replica.connect().execution_options(isolation_level="AUTOCOMMIT") as control:
            # Hold the replica back, so that the write is certainly not on it yet.
            control.execute(text("SELECT pg_wal_replay_pause()"))
            try:
                written = client.patch(
                    ITEM,
                    json={"geography": "Europe"},
                    headers={
                        "Authorization": f"Bearer {keys['alice']}",
                        "If-Match": before.headers["etag"],
                    },
                )
                assert written.status_code == 200  # a write on the standby would have failed
                assert revision_of(primary) != old
                # The replica's data, consistently: what it serves now is cached under the
                # replica's revision, not the primary's, so it cannot outlive the catching up.
                lagging = client.get(ITEM)
                assert lagging.json()["geography"] == "global"
                assert lagging.headers["etag"] == before.headers["etag"]
            finally:
                control.execute(text("SELECT pg_wal_replay_resume()"))
        until_replayed(replica, lambda value: value is not None and value != old)
        # The replica has the write: every read, revalidating or not, shows it at once.
        revalidated = client.get(ITEM, headers={"If-None-Match": before.headers["etag"]})
        assert revalidated.status_code == 200 and revalidated.json()["geography"] == "Europe"
        assert client.get(ITEM).json()["geography"] == "Europe"
        assert client.get("/v1/metrics?geography=europe").json()["total"] >= 1


def test_readiness_needs_the_replica_too(primary_and_replica: tuple[Engine, Engine]) -> None:
    primary, _replica = primary_and_replica
    unreachable = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    app = create_app(Settings(), engine=primary, read_engine=unreachable)
    with TestClient(app, raise_server_exceptions=False) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["detail"] == "The read replica is unreachable."
        assert client.get("/healthz").status_code == 200
    unreachable.dispose()


def test_a_read_url_must_be_postgresql() -> None:
    with pytest.raises(ValueError, match="PostgreSQL standby"):
        Settings(database_url="postgresql+psycopg://db/x", database_read_url="sqlite:///replica.db")
    with pytest.raises(ValueError, match="a standby of a PostgreSQL DATABASE_URL"):
        Settings(database_url="sqlite:///x.db", database_read_url="postgresql://db/x")
    assert Settings(database_read_url="").database_read_url is None
