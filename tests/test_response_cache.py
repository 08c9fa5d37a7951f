"""The response cache: every cached representation follows a write at once, on this instance,
on another instance sharing the database, and after a load by another process."""

import asyncio
import csv
import io
import logging
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api import exports, response_cache
from api.config import Settings
from api.db import writer
from api.main import create_app
from api.response_cache import ResponseCache
from tests.conftest import SEED_DIR
from tests.helpers import make_keys

ITEM = "/v1/metrics/viral-vector-lead-time"
VIEWS = [
    "/v1/metrics?limit=50",
    "/v1/metrics.csv",
    ITEM,
    "/v1/metrics/facets?facet=geography",
    "/v1/market?sort=-value_high",
]


def cache_of(client: TestClient) -> ResponseCache:
    layer = client.app.middleware_stack  # type: ignore[attr-defined]
    while not isinstance(layer, ResponseCache):
        layer = layer.app
    return layer


def snapshot(client: TestClient) -> dict[str, tuple[str, str]]:
    return {path: (client.get(path).headers["etag"], client.get(path).text) for path in VIEWS}


def geography_of(client: TestClient) -> object:
    return client.get(ITEM).json()["geography"]


def test_repeated_reads_are_served_from_the_cache(client: TestClient) -> None:
    cache = cache_of(client)
    first = client.get("/v1/metrics?limit=7")
    hits = cache.hits
    second = client.get("/v1/metrics?limit=7")
    assert cache.hits == hits + 1
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    revalidated = client.get(
        "/v1/metrics?limit=7", headers={"If-None-Match": first.headers["etag"]}
    )
    assert revalidated.status_code == 304 and cache.hits == hits + 2
    other = client.get("/v1/metrics?limit=7", headers={"Accept": "text/csv"})
    assert other.status_code == 406  # not the cached JSON


def test_a_write_refreshes_every_cached_representation(fresh_seeded_engine: Engine) -> None:
    keys = make_keys(fresh_seeded_engine)
    with TestClient(create_app(engine=fresh_seeded_engine)) as client:
        before = snapshot(client)
        assert snapshot(client) == before  # now cached
        tag = client.get(ITEM).headers["etag"]
        patched = client.patch(
            ITEM,
            json={"geography": "Asia-Pacific", "name": "Viral vector lead time (fresh)"},
            headers={"Authorization": f"Bearer {keys['alice']}", "If-Match": tag},
        )
        assert patched.status_code == 200
        after = snapshot(client)
        for path in VIEWS:
            assert after[path][0] != before[path][0], path
            assert after[path][1] != before[path][1], path
        rows = list(csv.DictReader(io.StringIO(after["/v1/metrics.csv"][1])))
        assert next(r for r in rows if r["id"] == "viral-vector-lead-time")["geography"] == (
            "Asia-Pacific"
        )
        assert "fresh" in after["/v1/metrics?limit=50"][1]


def test_another_instance_and_another_process_are_seen_at_once(fresh_seeded_engine: Engine) -> None:
    keys = make_keys(fresh_seeded_engine)
    with (
        TestClient(create_app(engine=fresh_seeded_engine)) as one,
        TestClient(create_app(engine=fresh_seeded_engine)) as two,
    ):
        assert geography_of(one) == geography_of(two) == "global"
        tag = two.get(ITEM).headers["etag"]
        written = one.patch(
            ITEM,
            json={"geography": None},
            headers={"Authorization": f"Bearer {keys['alice']}", "If-Match": tag},
        )
        assert written.status_code == 200
        # A revalidating request is answered from the database's current revision at once.
        revalidated = two.get(ITEM, headers={"If-None-Match": tag})
        assert revalidated.status_code == 200  # the old tag no longer validates
        assert revalidated.json()["geography"] is None
        # A plain read may trust the last known revision until the write's notification
        # arrives (PostgreSQL LISTEN/NOTIFY), well within the 60 s clients may cache.
        deadline = time.monotonic() + 5
        while geography_of(two) is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert geography_of(two) is None
        # A load by another process (the seed CLI) is a write like any other.
        from api.dataset import read_datasets
        from api.records.loading import load_datasets

        with Session(writer(fresh_seeded_engine)) as session, session.begin():
            load_datasets(session, read_datasets(SEED_DIR / "data", SEED_DIR / "sources"))
        assert geography_of(one) is None  # the analyst's correction was kept, and seen
        faq_before = one.get("/v1/faq").json()["total"]
        assert faq_before == two.get("/v1/faq").json()["total"] == 5


def test_concurrent_revalidations_after_a_write_elsewhere_all_see_it(
    fresh_seeded_engine: Engine,
) -> None:
    """Sixteen revalidations at once share revision reads, and none is answered from before
    the write."""
    keys = make_keys(fresh_seeded_engine)
    writer_app, reader_app = (
        create_app(engine=fresh_seeded_engine),
        create_app(engine=fresh_seeded_engine),
    )

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=reader_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as reader:
            tag = (await reader.get(ITEM)).headers["etag"]
            assert (await reader.get(ITEM, headers={"If-None-Match": tag})).status_code == 304
            with TestClient(writer_app) as one:
                written = one.patch(
                    ITEM,
                    json={"name": "Viral vector lead time (seen everywhere)"},
                    headers={"Authorization": f"Bearer {keys['alice']}", "If-Match": tag},
                )
                assert written.status_code == 200
            return await asyncio.gather(
                *(reader.get(ITEM, headers={"If-None-Match": tag}) for _ in range(16))
            )

    answers = asyncio.run(scenario())
    assert [answer.status_code for answer in answers] == [200] * 16
    assert {answer.json()["name"] for answer in answers} == {
        "Viral vector lead time (seen everywhere)"
    }


def test_the_cache_can_be_turned_off(
    seeded_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the cache, every read is computed and every revalidation answered by the app:
    a page, an item and an export (each tagged by the route itself) answer 304 and nothing
    else (a body sent after the 304 was an unhandled error, logged for each)."""
    settings = Settings(response_cache_bytes=0)
    with TestClient(create_app(settings, engine=seeded_engine)) as client:
        for path in ("/v1/metrics?limit=3", ITEM,
                     "/v1/metrics.csv"):  # fmt: skip
            first, second = client.get(path), client.get(path)
            assert first.status_code == second.status_code == 200
            assert first.content == second.content
            assert first.headers["etag"] == second.headers["etag"]
            revalidated = client.get(path, headers={"If-None-Match": first.headers["etag"]})
            assert revalidated.status_code == 304 and revalidated.content == b""
        assert (cache_of(client).hits, cache_of(client).misses) == (0, 0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("cache_bytes", [None, 0])
def test_if_match_is_evaluated_whether_the_response_is_cached_or_not(
    seeded_engine: Engine, cache_bytes: int | None
) -> None:
    """A stale If-Match is a 412 on a miss (and nothing is kept for it), on a hit at the edge,
    on a hit behind CORS, on a revalidation's miss, and without the cache."""
    settings = Settings() if cache_bytes is None else Settings(response_cache_bytes=cache_bytes)
    stale = {"If-Match": '"stale"'}
    with TestClient(create_app(settings, engine=seeded_engine)) as client:
        cache = cache_of(client)
        for path in ("/v1/metrics?limit=3", ITEM, "/v1/metrics.csv"):
            assert client.get(path, headers=stale).status_code == 412  # a miss
            first = client.get(path)
            assert first.status_code == 200
            tag = first.headers["etag"]
            for headers in ({}, {"Origin": "https://dashboard.example"}):  # edge, then inner
                assert client.get(path, headers={**headers, **stale}).status_code == 412
                current = client.get(path, headers={**headers, "If-Match": tag})
                assert current.status_code == 200 and current.content == first.content
            # Another Accept is another key: a revalidation's miss, If-Match checked first.
            revalidate = {"Accept": "*/*", "If-None-Match": tag}
            assert client.get(path, headers={**revalidate, **stale}).status_code == 412
            revalidate = {"Accept": "*/*;q=0.5", "If-None-Match": tag, "If-Match": tag}
            assert client.get(path, headers=revalidate).status_code == 304
        if cache_bytes == 0:
            assert (cache.hits, cache.misses) == (0, 0)
        else:
            assert cache.hits > 0


def test_a_client_that_only_revalidates_is_answered_from_the_cache(client: TestClient) -> None:
    cache = cache_of(client)
    tag = client.get("/v1/metrics?limit=9", headers={"Accept": "application/json"}).headers["etag"]
    # Another Accept is another cache key: its first request is a revalidation.
    revalidate = {"Accept": "*/*", "If-None-Match": tag}
    misses, hits = cache.misses, cache.hits
    first = client.get("/v1/metrics?limit=9", headers=revalidate)
    second = client.get("/v1/metrics?limit=9", headers=revalidate)
    assert first.status_code == second.status_code == 304
    assert first.headers["etag"] == second.headers["etag"] == tag
    assert (cache.misses, cache.hits) == (misses + 1, hits + 1)
    whole = client.get("/v1/metrics?limit=9", headers={"Accept": "*/*"})
    assert whole.status_code == 200 and len(whole.json()["items"]) == 9
    assert cache.hits == hits + 2


@pytest.mark.parametrize("cache_bytes", [None, 2000])
def test_a_revalidation_the_cache_does_not_keep_is_answered_304(
    seeded_engine: Engine, cache_bytes: int | None
) -> None:
    """A client's own tag gets 304 whether or not the cache keeps the answer: a change-feed
    page and a read `as_of` a moment not yet past (which may still change, so are never
    kept), and, with a small cache, a page and an export larger than it. A tag that names
    nothing gets the whole answer."""
    settings = Settings() if cache_bytes is None else Settings(response_cache_bytes=cache_bytes)
    paths = ["/v1/changes?since=2000-01-01T00:00:00Z&count=none", "/v1/changes.ndjson",
             f"{ITEM}?as_of=2999-01-01T00:00:00Z"]  # fmt: skip
    if cache_bytes is not None:
        paths += ["/v1/metrics?limit=50", "/v1/metrics.csv"]
    with TestClient(create_app(settings, engine=seeded_engine)) as client:
        for path in paths:
            first = client.get(path)
            assert first.status_code == 200
            tag = first.headers["etag"]
            for accept in ("*/*", "*/*;q=0.9"):  # each a revalidation the cache never saw
                again = client.get(path, headers={"Accept": accept, "If-None-Match": tag})
                assert again.status_code == 304, path
                assert again.content == b"" and again.headers["etag"] == tag
                assert again.headers["cache-control"] == first.headers["cache-control"]
            other = client.get(path, headers={"Accept": "*/*", "If-None-Match": '"other"'})
            assert other.status_code == 200 and other.content == first.content, path


def test_a_streamed_export_revalidated_on_a_miss_is_kept(
    seeded_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An export streamed in many chunks, first asked with a tag that matches: the client has
    its 304 at once, and the export is computed on to its end for the cache (the server calls
    the response done after the 304, which a streamed body would otherwise take for its
    client leaving), so the next revalidation is a hit."""
    monkeypatch.setattr(exports, "CHUNK_ROWS", 5)  # 42 metrics: nine chunks
    with TestClient(create_app(engine=seeded_engine)) as client:
        cache = cache_of(client)
        first = client.get("/v1/metrics.csv")
        assert first.status_code == 200 and len(first.text.splitlines()) == 43
        revalidate = {"Accept": "text/csv;q=0.7", "If-None-Match": first.headers["etag"]}
        misses, hits = cache.misses, cache.hits
        for _ in range(3):
            again = client.get("/v1/metrics.csv", headers=revalidate)
            assert again.status_code == 304 and again.content == b""
        assert (cache.misses, cache.hits) == (misses + 1, hits + 2)
        whole = client.get("/v1/metrics.csv", headers={"Accept": "text/csv;q=0.7"})
        assert whole.content == first.content and cache.hits == hits + 3


def test_an_answer_that_may_still_change_tells_caches_to_ask_again(client: TestClient) -> None:
    """A change-feed page and `as_of` a moment not yet past may be stored downstream but
    not reused unrevalidated; an answer `as_of` a past moment, or of the live data, is fresh
    for a minute."""
    for path in ["/v1/changes", "/v1/changes?since=2000-01-01T00:00:00Z", "/v1/changes.csv",
                 f"{ITEM}?as_of=2999-01-01T00:00:00Z", "/v1/metrics?as_of=2999-01-01T00:00:00Z"]:  # fmt: skip
        answer = client.get(path)
        assert answer.status_code == 200 and answer.headers["cache-control"] == "no-cache", path
    seeded_at = client.get("/v1/changes").json()["items"][-1]["at"]
    for path, params in [(ITEM, {}), ("/v1/metrics", {}), (ITEM, {"as_of": seeded_at})]:
        answer = client.get(path, params=params)
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "public, max-age=60", path


def _head_count(client: TestClient) -> float:
    text = client.get("/metrics").text
    found = re.search(
        r'cdmo_http_requests_total\{method="HEAD",route="/v1/metrics",status="200"\} (\S+)', text
    )
    return float(found.group(1)) if found else 0.0


def test_a_hit_answered_at_the_edge_is_the_whole_answer(client: TestClient) -> None:
    """A hit skips the framework's layers, but answers what they would: the same headers (CORS's
    `Vary: Origin` included), its own request id, no body for HEAD, counted in the metrics."""
    cache = cache_of(client)
    computed = client.get("/v1/metrics?limit=3", headers={"X-Request-ID": "first-1"})
    hits = cache.hits
    hit = client.get("/v1/metrics?limit=3", headers={"X-Request-ID": "second-2"})
    assert cache.hits == hits + 1
    assert hit.content == computed.content
    assert hit.headers["x-request-id"] == "second-2"
    same = ("etag", "vary", "cache-control", "content-type", "dataset-version", "link")
    assert {n: hit.headers[n] for n in same} == {n: computed.headers[n] for n in same}
    assert "Origin" in hit.headers["vary"]
    heads_before = _head_count(client)
    head = client.head("/v1/metrics?limit=3")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == computed.headers["etag"]
    assert cache.hits == hits + 2
    made = client.get("/v1/metrics?limit=3").headers["x-request-id"]
    assert len(made) == 32 and made != "second-2"
    # A browser's request goes the whole way, through CORS: it is still a hit.
    cors = client.get("/v1/metrics?limit=3", headers={"Origin": "https://dash.example"})
    assert cors.headers["access-control-allow-origin"] == "*"
    assert cors.content == computed.content and cache.hits == hits + 4
    assert _head_count(client) == heads_before + 1  # (the client is shared by other tests)


def test_a_failure_at_the_edge_is_answered_the_whole_way(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The edge is a shortcut outside the framework's error handling: should it fail before it
    has sent anything, the failure is logged and the request takes the whole way (the same
    answer, from the cache), never the server's plain-text 500."""
    path = "/v1/metrics?limit=4&offset=2"
    computed = client.get(path)
    hits = cache_of(client).hits

    def broken(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        raise RuntimeError("the edge broke")

    monkeypatch.setattr(response_cache, "_vary_origin", broken)
    with caplog.at_level(logging.ERROR, logger="api.response_cache"):
        answered = client.get(path)
    assert answered.status_code == 200
    assert answered.content == computed.content
    assert answered.headers["etag"] == computed.headers["etag"]
    assert "Origin" in answered.headers["vary"]  # CORS's, on the way out
    assert cache_of(client).hits == hits + 1  # answered from the cache, inside
    assert any("the cache's edge failed" in r.getMessage() for r in caplog.records)


def test_a_commit_by_any_other_connection_is_seen_by_the_next_hit(
    fresh_seeded_engine: Engine,
) -> None:
    """SQLite: the revision check is exact, and costs no table read while nothing changed: the
    probe sees the WAL index's header move when any other connection commits, in this process
    or another, and then reads the revision row."""
    if fresh_seeded_engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's writes notify; this is SQLite's check of the file")
    with TestClient(create_app(Settings(), fresh_seeded_engine)) as client:
        cache = cache_of(client)
        before = client.get(ITEM)
        hits = cache.hits
        assert client.get(ITEM).content == before.content and cache.hits == hits + 1
        # A writer changes the column and the JSON kept with the row (`document`), as the
        # record store does.
        with fresh_seeded_engine.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE metric SET geography = 'Mars', document = replace(document,"
                ' \'"geography":"global"\', \'"geography":"Mars"\')'
                " WHERE id = 'viral-vector-lead-time'"
            )
            connection.exec_driver_sql("UPDATE dataset_state SET version = version + 1")
        after = client.get(ITEM)
        assert after.json()["geography"] == "Mars" and cache.hits == hits + 1
        assert int(after.headers["dataset-version"]) == int(before.headers["dataset-version"]) + 1
        assert client.get(ITEM).content == after.content and cache.hits == hits + 2
        # Another process's commit, through the sqlite3 module alone.
        path = fresh_seeded_engine.url.database
        script = (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('PRAGMA busy_timeout=10000'); c.execute('BEGIN IMMEDIATE'); "
            "c.execute(sys.argv[2]); "
            "c.execute('UPDATE dataset_state SET version = version + 1'); c.execute('COMMIT')"
        )
        venus = (
            "UPDATE metric SET geography = 'Venus', document = replace(document,"
            ' \'"geography":"Mars"\', \'"geography":"Venus"\')'
            " WHERE id = 'viral-vector-lead-time'"
        )
        subprocess.run([sys.executable, "-c", script, str(path), venus], check=True, timeout=60)
        assert client.get(ITEM).json()["geography"] == "Venus" and cache.hits == hits + 2
        assert cache.probe._shm, "a WAL file's revision is read from the WAL index's header"


def test_a_live_server_read_right_after_its_write_sees_it(fresh_seeded_engine: Engine) -> None:
    """Over real connections the write's answer reaches the client, and its next read can
    arrive, before the write's request has finished in the server: that read must still see it
    (on PostgreSQL, before the write's own NOTIFY has come back)."""
    from tests.conftest import serving

    keys = make_keys(fresh_seeded_engine)
    with serving(fresh_seeded_engine) as (_server, url), httpx.Client(base_url=url) as client:
        path = ITEM
        tag = client.get(path).headers["etag"]
        for n in range(60):
            name = f"Viral vector lead time, round {n}"
            written = client.patch(
                path,
                json={"name": name},
                headers={"Authorization": f"Bearer {keys['alice']}", "If-Match": tag},
            )
            assert written.status_code == 200, written.text
            read = client.get(path)
            assert read.json()["name"] == name, n
            tag = read.headers["etag"]


def test_a_cancelled_revalidation_leaves_the_others_their_fence(migrated_engine: Engine) -> None:
    """PostgreSQL: revalidations that arrive together share one read of the revision (a
    fence). A request cancelled while it waits (its client gone) must not cancel the fence
    the others wait for, nor stop the next one."""
    if migrated_engine.dialect.name != "postgresql":
        pytest.skip("the shared fence is PostgreSQL's")
    from api.response_cache import RevisionProbe

    probe = RevisionProbe(migrated_engine, listen=False)

    async def revalidate() -> tuple[object, object, object]:
        first, gone, third = (asyncio.create_task(probe.revision(exact=True)) for _ in range(3))
        await asyncio.sleep(0)  # all three wait on one fence
        gone.cancel()
        known = await first, await third
        with pytest.raises(asyncio.CancelledError):
            await gone
        return (*known, await probe.revision(exact=True))

    try:
        answers = asyncio.run(revalidate())
    finally:
        probe.stop()
    assert answers[0] is not None and answers[0] == answers[1] == answers[2]


def test_reading_the_wal_index_keeps_sqlites_locks_on_it(tmp_path: Path) -> None:
    """The probe maps the WAL index without closing a descriptor of it: a close would drop
    the process's POSIX locks on the file, SQLite's own, and another process starting then
    would rebuild the index under this one's connections (SIGBUS)."""
    import os
    import sqlite3

    from sqlalchemy import create_engine

    from api.response_cache import RevisionProbe

    database = tmp_path / "locks.db"
    own = sqlite3.connect(database)
    own.execute("PRAGMA journal_mode=wal")
    own.execute("CREATE TABLE dataset_state (id INTEGER, version INTEGER, changed_at TEXT)")
    own.commit()
    own.execute("SELECT 1").fetchall()  # reading: SQLite holds its lock on the -shm file
    inode = os.stat(f"{database}-shm").st_ino

    def locked() -> bool:
        mine = [line.split() for line in Path("/proc/locks").read_text().splitlines()]
        return any(
            fields[4] == str(os.getpid()) and fields[5].endswith(f":{inode}") for fields in mine
        )

    assert locked()
    engine = create_engine(f"sqlite:///{database}")
    probe = RevisionProbe(engine, listen=False)
    for _ in range(3):
        probe.current()
        probe.stop()
        assert locked()
    own.close()
    engine.dispose()


def test_a_client_that_does_not_read_a_stream_holds_up_no_other() -> None:
    """Requests for what another is computing wait for it (one computation, then a hit), but
    at most SINGLE_FLIGHT_WAIT: an export is sent at its client's pace, and they waited for a
    client that may never read (until EXPORT_SEND_TIMEOUT)."""

    class Probe:
        async def revision(self, exact: bool = False) -> object:
            return (1, "fixed")

    computed = []

    async def export(scope: Any, receive: Any, send: Any) -> None:
        computed.append(scope["path"])
        await asyncio.sleep(0.05)  # reading the rows
        headers = [(b"content-type", b"text/csv"), (b"etag", b'"x1"')]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for part in (b"a,b\n", b"1,2\n"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    cache = ResponseCache(export, probe=Probe())  # type: ignore[arg-type]
    scope = {"type": "http", "method": "GET", "path": "/v1/metrics.csv", "query_string": b"",
             "headers": [(b"accept", b"*/*")]}  # fmt: skip

    async def never_read(message: Any) -> None:
        if message["type"] == "http.response.body":
            await asyncio.Event().wait()  # the socket is full: this send never returns

    async def exchange() -> list[bytes]:
        received: list[bytes] = []

        async def read(message: Any) -> None:
            received.append(message.get("body", b""))

        stalled = asyncio.ensure_future(cache(dict(scope), None, never_read))
        await asyncio.sleep(0.01)
        started = time.monotonic()
        await asyncio.wait_for(cache(dict(scope), None, read), timeout=5)
        waited = time.monotonic() - started
        stalled.cancel()
        return received, waited

    received, waited = asyncio.run(exchange())
    assert b"".join(received) == b"a,b\n1,2\n" and len(computed) == 2
    assert response_cache.SINGLE_FLIGHT_WAIT <= waited < 3

    async def together() -> list[list[bytes]]:
        answers: list[list[bytes]] = [[] for _ in range(8)]

        def reader(into: list[bytes]) -> Any:
            async def read(message: Any) -> None:
                into.append(message.get("body", b""))

            return read

        scoped = {**scope, "path": "/v1/metrics.ndjson"}
        await asyncio.gather(*(cache(dict(scoped), None, reader(a)) for a in answers))
        return answers

    computed.clear()
    assert all(b"".join(a) == b"a,b\n1,2\n" for a in asyncio.run(together()))
    assert computed == ["/v1/metrics.ndjson"]  # one computation; seven waited, then hit
