"""SQLite reads tried on the event loop under a deadline, and made again in a thread when SQLite
is interrupted (api.direct `_OnTheLoop`, api.db's progress handler): the answers are the same
either way, an interrupted statement leaves its connection fit for the next read, and a slow
route stops being tried on the loop for a while."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from api import db, direct
from api.config import Settings
from api.db import make_engine
from api.main import create_app

# The routes api.direct serves, read in every way: a page, a filtered and sorted page, an item,
# a search, a category's list, a read at a past moment, a problem (404).
READS = (
    "/v1/metrics?limit=50&sort=id",
    "/v1/metrics?category=market&forecast=false&sort=-value_high,id",
    "/v1/metrics/viral-vector-lead-time",
    "/v1/metrics?q=cell+therapy",
    "/v1/market?limit=5",
    "/v1/metrics?limit=5&as_of=2026-01-01T00:00:00Z",
    "/v1/metrics/no-such-metric",
)


@pytest.fixture
def sqlite_url(fresh_seeded_engine: Engine) -> str:
    if fresh_seeded_engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's reads always take a thread")
    return fresh_seeded_engine.url.render_as_string(hide_password=False)


class Counted:
    """How many reads were tried on the loop, and how many were handed to a thread."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tried = self.threaded = 0
        run, in_thread = direct._OnTheLoop.run, direct._in_thread

        def counted_run(on_loop: Any, *arguments: Any) -> Any:
            self.tried += 1
            return run(on_loop, *arguments)

        async def counted_in_thread(*arguments: Any) -> Any:
            self.threaded += 1
            return await in_thread(*arguments)

        monkeypatch.setattr(direct._OnTheLoop, "run", counted_run)
        monkeypatch.setattr(direct, "_in_thread", counted_in_thread)


@contextmanager
def serve(url: str) -> Iterator[TestClient]:
    # Every read computed: a cached answer would not reach the route.
    engine = make_engine(make_url(url))
    try:
        with TestClient(
            create_app(Settings(response_cache_bytes=0), engine=engine),
            raise_server_exceptions=False,
        ) as client:
            yield client
    finally:
        engine.dispose()


def answers(client: TestClient) -> list[tuple[int, bytes, str | None]]:
    return [
        (r.status_code, r.content, r.headers.get("etag"))
        for r in (client.get(path) for path in READS)
    ]


def test_reads_within_the_budget_are_answered_on_the_loop(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(direct._OnTheLoop, "BUDGET", 60.0)
    counted = Counted(monkeypatch)
    with serve(sqlite_url) as client:
        answered = answers(client)
    assert [status for status, _body, _tag in answered] == [200] * 6 + [404]
    assert counted.tried == len(READS)
    assert counted.threaded == 0


def test_an_interrupted_read_is_answered_from_a_thread_with_the_same_answer(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a deadline already past and SQLite's progress handler called at every step, every
    attempt on the loop is interrupted: the read is made again in a thread, and the client gets
    exactly the answer a read within its budget gets (status, body, ETag)."""
    monkeypatch.setattr(direct._OnTheLoop, "BUDGET", 60.0)
    with serve(sqlite_url) as client:
        expected = answers(client)

    monkeypatch.setattr(db, "PROGRESS_STEPS", 1)  # read by each new connection
    monkeypatch.setattr(direct._OnTheLoop, "BUDGET", 0.0)
    counted = Counted(monkeypatch)
    with serve(sqlite_url) as client:
        assert answers(client) == expected
        # Every read was answered from a thread; each of the three routes (the list, the item,
        # a category's list) was tried on the loop once, and then skipped it.
        assert (counted.tried, counted.threaded) == (3, len(READS))
        # The connections SQLite interrupted serve the next reads as well.
        assert answers(client) == expected


def test_a_route_interrupted_on_the_loop_goes_to_a_thread_for_a_while(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PROGRESS_STEPS", 1)
    monkeypatch.setattr(direct._OnTheLoop, "BUDGET", 0.0)
    monkeypatch.setattr(direct._OnTheLoop, "PATIENCE", 3)
    counted = Counted(monkeypatch)
    with serve(sqlite_url) as client:
        for n in range(5):
            assert client.get(f"/v1/metrics?limit={n + 1}").status_code == 200
        exposition = client.get("/metrics").text
    # Operators see which routes outrun the budget.
    assert 'cdmo_reads_interrupted_total{route="/v1/metrics"} 2.0' in exposition
    # The first read is tried and interrupted, the next three skip the loop, the fifth is
    # tried again.
    assert (counted.tried, counted.threaded) == (2, 5)


def test_postgresql_reads_always_take_a_thread(
    fresh_seeded_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL read waits on the network: it is never tried on the event loop."""
    if fresh_seeded_engine.dialect.name != "postgresql":
        pytest.skip("SQLite's reads are tried on the loop (the tests above)")
    counted = Counted(monkeypatch)
    with serve(fresh_seeded_engine.url.render_as_string(hide_password=False)) as client:
        assert [status for status, _body, _tag in answers(client)] == [200] * 6 + [404]
    assert (counted.tried, counted.threaded) == (0, len(READS))


# --- the read sessions each thread keeps (api.records.reads.kept_read_session) ---------------

ITEM = "/v1/metrics/viral-vector-lead-time"


def test_a_kept_read_session_sees_every_commit_made_before_the_read(sqlite_url: str) -> None:
    """A thread's kept session ends each read's transaction: the next read on the same
    connection sees a commit made meanwhile by another connection, and its `Dataset-Version`
    follows."""
    with serve(sqlite_url) as client:
        kept = client.app.state.kept_reads  # type: ignore[attr-defined]
        first = client.get(ITEM)
        assert first.status_code == 200 and len(kept) == 1  # the loop's thread kept one
        writer = make_engine(make_url(sqlite_url))
        try:
            with writer.begin() as connection:
                connection.execute(
                    text(
                        "UPDATE metric SET name = 'Renamed meanwhile', version = version + 1,"
                        " document = json_set(document, '$.name', 'Renamed meanwhile')"
                        " WHERE id = 'viral-vector-lead-time'"
                    )
                )
                connection.execute(text("UPDATE dataset_state SET version = version + 1"))
        finally:
            writer.dispose()
        second = client.get(ITEM)
        assert second.json()["name"] == "Renamed meanwhile"
        assert int(second.headers["dataset-version"]) == int(first.headers["dataset-version"]) + 1
        assert second.headers["etag"] != first.headers["etag"]
        assert len(kept) == 1  # the same connection


def test_a_past_moment_does_not_outlive_its_read(sqlite_url: str) -> None:
    """A read `as_of` a moment, between live reads on the same thread, answers at that moment;
    the live reads before and after it answer live."""
    with serve(sqlite_url) as client:
        live = client.get("/v1/metrics?limit=5")
        past = client.get("/v1/metrics?limit=5&as_of=2020-01-01T00:00:00Z")
        again = client.get("/v1/metrics?limit=5")
    assert live.status_code == past.status_code == again.status_code == 200
    assert past.json()["total"] == 0 and live.json()["total"] > 0
    assert again.content == live.content
    assert again.headers["dataset-version"] == live.headers["dataset-version"]


def test_a_failed_read_leaves_the_kept_session_fit_for_the_next(sqlite_url: str) -> None:
    with serve(sqlite_url) as client:
        kept = client.app.state.kept_reads  # type: ignore[attr-defined]
        assert client.get("/v1/metrics/no-such-metric").status_code == 404
        assert client.get("/v1/metrics?sort=no_such_field").status_code == 422
        assert client.get(ITEM).status_code == 200
        assert len(kept) == 1


def test_the_kept_connections_close_with_the_app(sqlite_url: str) -> None:
    """When the app's lifespan ends, the connections its threads kept are closed (none is left
    checked out of the pool), and a read without a lifespan takes a session of its own."""
    engine = make_engine(make_url(sqlite_url))
    try:
        app = create_app(Settings(response_cache_bytes=0), engine=engine)
        with TestClient(app) as client:
            for path in READS:
                client.get(path)
            kept = list(app.state.kept_reads)
            assert kept and engine.pool.checkedout() == len(kept)  # type: ignore[attr-defined]
        assert all(connection.closed for connection in kept)
        assert app.state.kept_reads is None
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        # Without a lifespan (a TestClient not entered), nothing is kept.
        assert TestClient(app).get(ITEM).status_code == 200
        assert app.state.kept_reads is None
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()
