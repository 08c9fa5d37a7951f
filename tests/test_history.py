"""History: versions that are transactions, as_of as a query, tags that never repeat."""

import concurrent.futures
import os
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select
from sqlmodel import Session, col
from starlette.requests import Request

from api.dataset import read_datasets
from api.main import create_app
from api.metrics.models import Metric
from api.pagination import encode_cursor
from api.records import versions
from api.records.asof import answered_at
from api.records.loading import load_datasets
from api.records.reads import read_session
from tests.conftest import SEED_DIR, seed, serving
from tests.helpers import Writable, new_metric

METRIC = "/v1/metrics/viral-vector-lead-time"


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_a_seed_load_is_one_version_and_as_of_never_shows_part_of_it(
    migrated_engine: Engine,
) -> None:
    started = datetime.now(UTC)
    seed(migrated_engine)
    ended = datetime.now(UTC)
    with TestClient(create_app(engine=migrated_engine), raise_server_exceptions=False) as client:
        release = client.get("/v1/releases").json()["items"][0]
        changes = client.get("/v1/changes", params={"limit": 500}).json()
        assert changes["total"] == 67
        assert {item["at"] for item in changes["items"]} == {release["created_at"]}
        assert {item["dataset_version"] for item in changes["items"]} == {1}
        assert release["dataset_version"] == 1

        # Every millisecond of the load, and a little either side: all or nothing.
        seen = set()
        moment = started - timedelta(milliseconds=2)
        while moment <= ended + timedelta(milliseconds=2):
            answer = client.get("/v1/metrics", params={"as_of": _z(moment), "limit": 1})
            assert answer.status_code == 200, answer.text
            total = answer.json()["total"]
            assert total in (0, 42)
            assert answer.headers["dataset-version"] == ("1" if total else "0")
            seen.add(total)
            moment += timedelta(milliseconds=1)
        assert seen == {0, 42}

        at_release = client.get("/v1/metrics", params={"as_of": release["created_at"]})
        assert at_release.json()["total"] == 42
        just_before = datetime.fromisoformat(release["created_at"]) - timedelta(microseconds=1)
        assert client.get("/v1/metrics", params={"as_of": _z(just_before)}).json()["total"] == 0


def test_a_load_is_dated_when_it_commits_so_as_of_a_moment_during_it_never_changes(
    migrated_engine: Engine,
) -> None:
    """A reader during a long load sees none of it; once it commits, `as_of` that moment still
    shows none of it, and a `/v1/changes?since` poll from that moment finds all of it."""
    during: list[datetime] = []

    def progress(step: str, _done: int, _steps: int) -> None:
        if step.startswith("wrote") and not during:  # after the load's first change
            during.append(datetime.now(UTC))
            time.sleep(0.02)

    datasets = read_datasets(SEED_DIR / "data", SEED_DIR / "sources")
    with Session(migrated_engine) as session, session.begin():
        load_datasets(session, datasets, progress=progress)
    (moment,) = during
    with TestClient(create_app(engine=migrated_engine), raise_server_exceptions=False) as client:
        release = client.get("/v1/releases").json()["items"][0]
        assert datetime.fromisoformat(release["created_at"]) > moment + timedelta(milliseconds=20)
        assert (
            release["label"]
            == f"seed {datetime.fromisoformat(release['created_at']):%Y-%m-%dT%H:%M:%SZ}"
        )
        then = client.get("/v1/metrics", params={"as_of": _z(moment), "limit": 1})
        assert (then.json()["total"], then.headers["dataset-version"]) == (0, "0")
        since = client.get("/v1/changes", params={"since": _z(moment), "limit": 1}).json()
        assert since["total"] == 67
        assert since["items"][0]["at"] == release["created_at"]
        assert (
            client.get("/v1/metrics", params={"as_of": release["created_at"]}).json()["total"] == 42
        )


@pytest.mark.parametrize(
    ("moment", "status"),
    [
        ("9999-12-31T23:59:59-01:00", 422),
        ("0001-01-01T00:00:00+01:00", 422),
        ("0001-01-01T00:00:00Z", 200),
        ("9999-12-31T23:59:59.999999Z", 200),
        ("9999-12-31T23:59:59+01:00", 200),
    ],
)
def test_extreme_timestamps_are_answered_or_refused_never_5xx(
    client: TestClient, moment: str, status: int
) -> None:
    for path, name in [
        ("/v1/metrics", "as_of"),
        (METRIC, "as_of"),
        ("/v1/metrics/facets", "as_of"),
        ("/v1/changes", "since"),
        ("/v1/changes", "as_of"),
        ("/v1/releases", "as_of"),
        (f"{METRIC}/revisions", "as_of"),
    ]:
        answer = client.get(path, params={name: moment})
        expected = 404 if status == 200 and path == METRIC and moment.startswith("0001") else status
        expected = 404 if expected == 200 and "revisions" in path and "0001" in moment else expected
        assert answer.status_code == expected, (path, name, answer.text)
        if status == 422:
            assert answer.json()["errors"][0]["name"] == name


@pytest.mark.parametrize(
    ("moment", "detail"),
    [
        ("2026-11-30T23:59:60Z", "is not a valid moment: second must be in 0..59"),
        ("2026-11-30T24:00:00Z", "is not a valid moment: hour must be in 0..23"),
        ("2026-02-30T00:00:00Z", "is not a valid moment: day is out of range for month"),
        ("2026-13-01T00:00:00Z", "is not a valid moment: month must be in 1..12"),
        (
            "2026-11-30T00:00:00+24:00",
            "is not a valid moment: the offset must be less than 24 hours",
        ),
    ],
)
def test_a_timestamp_with_a_field_out_of_range_says_which(
    client: TestClient, moment: str, detail: str
) -> None:
    """In the RFC 3339 format, but not a moment (a leap second included): the 422 names the
    field, not pydantic's "unexpected extra characters"."""
    for path, name in [("/v1/metrics", "as_of"), ("/v1/changes", "since")]:
        answer = client.get(path, params={name: moment})
        assert answer.status_code == 422
        assert answer.json()["errors"] == [{"in": "query", "name": name, "detail": detail}]


def test_every_read_names_its_dataset_version(client: TestClient) -> None:
    for path in ["/v1/metrics", METRIC, "/v1/metrics/facets", "/v1/faq", "/v1/sources",
                 "/v1/metrics.csv", f"{METRIC}/citation", "/v1/changes", "/v1/releases"]:  # fmt: skip
        answer = client.get(path)
        assert answer.status_code == 200
        assert answer.headers["dataset-version"] == "1", path
    revalidated = client.get(METRIC, headers={"If-None-Match": client.get(METRIC).headers["etag"]})
    assert revalidated.status_code == 304
    assert revalidated.headers["dataset-version"] == "1"


def test_one_write_is_one_version_shared_by_its_revisions(writable: Writable) -> None:
    w = writable
    tag = w.etag(METRIC)
    patched = w.client.patch(
        METRIC, json={"name": "Renamed"}, headers={**w.auth(), "If-Match": tag}
    )
    assert patched.status_code == 200
    assert patched.headers["dataset-version"] == "2"
    latest = w.client.get("/v1/changes", params={"since": "2000-01-01T00:00:00Z", "limit": 500})
    items = latest.json()["items"]
    assert items[-1]["dataset_version"] == 2 and items[-1]["record_id"] == "viral-vector-lead-time"
    assert w.client.get("/v1/metrics").headers["dataset-version"] == "2"
    before = w.client.get(METRIC, params={"as_of": items[-1]["at"]}).json()
    assert before["name"] == "Renamed"
    moment = datetime.fromisoformat(items[-1]["at"]) - timedelta(microseconds=1)
    assert w.client.get(METRIC, params={"as_of": _z(moment)}).json()["name"] != "Renamed"


def test_a_recreated_record_continues_its_versions_so_no_etag_repeats(writable: Writable) -> None:
    w = writable
    body = new_metric()
    path = f"/v1/metrics/{body['id']}"
    first = w.client.post("/v1/metrics", json=body, headers=w.auth())
    assert first.status_code == 201
    first_tag = first.headers["etag"]
    assert w.client.get(path).headers["etag"] == first_tag
    assert w.client.delete(path, headers={**w.auth(), "If-Match": first_tag}).status_code == 204
    again = w.client.post("/v1/metrics", json=body, headers=w.auth())
    assert again.status_code == 201
    assert again.headers["etag"] != first_tag
    assert w.client.get(path, headers={"If-None-Match": first_tag}).status_code == 200
    stale = w.client.patch(path, json={"name": "x"}, headers={**w.auth(), "If-Match": first_tag})
    assert stale.status_code == 412
    versions = [r["version"] for r in w.client.get(f"{path}/revisions").json()["items"]]
    assert versions == [3, 2, 1]


def test_a_metric_patch_runs_at_most_fourteen_statements(writable: Writable) -> None:
    """Counted on the PATCH's own write transaction (authentication has its own), at the
    driver, so that statements the engine runs on the driver's cursor directly (bulk inserts)
    count as much as SQLAlchemy's: on SQLite every statement the library prepares (not those
    SQLite runs inside a virtual table, nor BEGIN and COMMIT), on PostgreSQL every execute,
    executemany and COPY of a cursor of that connection. Two of them date the version at its
    commit (api.records.versions._stamp): 11 on SQLite, 13 on PostgreSQL (its write lock, and
    the commit window's advisory lock, which SQLite's writer takes on a file); and one more,
    as here, when the patch brings a word the documents of its kind did not hold ("counted"),
    to remember it for prefixes (api.search `search_word`): 12 and 14."""
    w = writable
    tag = w.etag(METRIC)
    statements: list[str] = []
    counting: dict[str, Any] = {}

    class Counted(psycopg.Cursor):  # type: ignore[type-arg]
        def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:
            statements.append(str(query))
            return super().execute(query, *args, **kwargs)

        def executemany(self, query: Any, params: Any, *args: Any, **kwargs: Any) -> Any:
            params = list(params)
            statements.extend([str(query)] * len(params))
            return super().executemany(query, params, *args, **kwargs)

        def copy(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
            statements.append(str(statement))
            return super().copy(statement, *args, **kwargs)

    def traced(statement: str) -> None:
        # SQLite reports the statements a virtual table runs too: prefixed "--", or naming
        # the schema as 'main' (FTS5 reading its configuration).
        internal = statement.startswith("--") or "'main'." in statement
        if not internal and statement not in ("COMMIT", "ROLLBACK"):
            statements.append(statement)

    def begun(session: Session, _transaction: Any, connection: Any) -> None:
        if not session.info.get("write", False) or counting:
            return
        driver = connection.connection.dbapi_connection
        counting["driver"] = driver
        if w.engine.dialect.name == "sqlite":
            driver.set_trace_callback(traced)
        else:
            counting["factory"] = driver.cursor_factory
            driver.cursor_factory = Counted

    event.listen(Session, "after_begin", begun)
    try:
        answer = w.client.patch(
            METRIC,
            json={"geography": "global", "name": "Counted"},
            headers={**w.auth(), "If-Match": tag},
        )
    finally:
        event.remove(Session, "after_begin", begun)
        if w.engine.dialect.name == "sqlite":
            counting["driver"].set_trace_callback(None)
        else:
            counting["driver"].cursor_factory = counting["factory"]
    assert answer.status_code == 200, answer.text
    assert answer.json()["name"] == "Counted"
    # The history's rows, written by the engine on the driver's cursor, are among them.
    assert any(s.startswith(("INSERT INTO revision", "COPY revision")) for s in statements)
    assert 0 < len(statements) <= 14, statements
    assert sum("INTO search_word" in s for s in statements) == 1


def test_nothing_is_left_in_the_temporary_folder(migrated_engine: Engine, tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    url = migrated_engine.url.render_as_string(hide_password=False)
    environment = {**os.environ, "TMPDIR": str(temporary), "DATABASE_URL": url}
    for command in (["migrate"], ["seed"], ["seed"], ["openapi"]):
        subprocess.run(
            [sys.executable, "-m", "api.cli", *command], env=environment, check=True,
            capture_output=True,
        )  # fmt: skip
    with serving(migrated_engine, TMPDIR=str(temporary)) as (_server, base):
        for day in range(1, 20):
            moment = f"2026-11-{day:02d}T00:00:00Z"
            assert httpx.get(f"{base}/v1/metrics", params={"as_of": moment}).status_code == 200
        assert (
            httpx.get(f"{base}/v1/metrics", params={"as_of": _z(datetime.now(UTC))}).json()["total"]
            == 42
        )
    assert list(temporary.iterdir()) == []


# The change feed's keyset paging: `next` carries `after=`, a token naming the page's last
# revision by the feed's order (dataset version, then id).


def _walk(client: TestClient, url: str | None) -> list[dict[str, Any]]:
    """Every item of the pages from `url` on, following `next` (each carrying `after=`, as
    the `Link` header does too)."""
    seen: list[dict[str, Any]] = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += body["items"]
        if body["next"]:
            assert "after=" in body["next"] and "offset=" not in body["next"]
            assert response.headers["link"] == f'<{body["next"]}>; rel="next"'
        else:
            assert "link" not in response.headers
        url = body["next"]
    return seen


def _by_offset(client: TestClient, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while True:
        items = client.get(
            "/v1/changes", params={**params, "limit": limit, "offset": len(seen)}
        ).json()["items"]
        if not items:
            return seen
        seen += items


def _write_versions(w: Writable) -> None:
    """Three more versions of one revision each after the seed's 67: two PATCHes, a POST."""
    for path, name in [(METRIC, "Renamed"), ("/v1/metrics/car-t-dose-manufacturing-cost", "Cost")]:
        patched = w.client.patch(path, json={"name": name}, headers={**w.auth(), "If-Match": "*"})
        assert patched.status_code == 200, patched.text
    assert w.client.post("/v1/metrics", json=new_metric(), headers=w.auth()).status_code == 201


def test_walking_the_change_feed_by_next_gives_what_offset_paging_gives(
    writable: Writable,
) -> None:
    """Every change once, in the feed's order (dataset version, then id), whatever the page
    size, across versions, with `since` and `as_of` as well."""
    w = writable
    _write_versions(w)
    whole = w.client.get("/v1/changes", params={"limit": 500}).json()
    assert whole["total"] == len(whole["items"]) == 70
    ordered = [(item["dataset_version"], item["id"]) for item in whole["items"]]
    assert ordered == sorted(set(ordered)) and ordered[-1][0] == 4
    for limit in (1, 7, 30, 69):
        by_next = _walk(w.client, f"/v1/changes?limit={limit}")
        assert by_next == _by_offset(w.client, {}, limit) == whole["items"]
    # Since version 2's moment, as of version 3's: the revisions of versions 2 and 3.
    at = {item["dataset_version"]: item["at"] for item in whole["items"]}
    window = {"since": at[2], "as_of": at[3]}
    wanted = [item for item in whole["items"] if item["dataset_version"] in (2, 3)]
    assert len(wanted) == 2
    for limit in (1, 2):
        by_next = _walk(w.client, f"/v1/changes?{urlencode({**window, 'limit': limit})}")
        assert by_next == _by_offset(w.client, window, limit) == wanted
    first = w.client.get("/v1/changes", params={**window, "limit": 1}).json()
    assert first["total"] == 2 and "since=" in first["next"] and "as_of=" in first["next"]
    # The seed's one version of 67 revisions, paged within it and past its end.
    as_of_seed = {"as_of": at[1]}
    assert _walk(w.client, f"/v1/changes?{urlencode({**as_of_seed, 'limit': 10})}") == [
        item for item in whole["items"] if item["dataset_version"] == 1
    ]


def test_a_write_between_pages_is_neither_skipped_nor_repeated(writable: Writable) -> None:
    """A change committed while a client walks the feed comes once, at the end; with `as_of`
    it never comes, and a cursor past `as_of` finds nothing."""
    w = writable
    seeded = w.client.get("/v1/changes", params={"limit": 500}).json()["items"]
    moment = seeded[-1]["at"]
    live = w.client.get("/v1/changes", params={"limit": 30}).json()
    then = w.client.get("/v1/changes", params={"limit": 30, "as_of": moment}).json()
    _write_versions(w)
    now = w.client.get("/v1/changes", params={"limit": 500}).json()["items"]
    assert len(now) == 70 and now[:67] == seeded
    assert live["items"] + _walk(w.client, live["next"]) == now
    assert then["items"] + _walk(w.client, then["next"]) == seeded
    # The newest change's cursor, read as of before it: nothing after it, nothing past as_of.
    newest = _walk(w.client, "/v1/changes?limit=69")[-1:]
    token = encode_cursor(["dataset_version,id", now[-2]["dataset_version"], now[-2]["id"]])
    assert (
        newest == now[-1:] == w.client.get("/v1/changes", params={"after": token}).json()["items"]
    )
    past = w.client.get("/v1/changes", params={"after": token, "as_of": moment}).json()
    assert (past["items"], past["total"], past["next"]) == ([], 67, None)


def test_an_offset_beside_a_cursor_counts_from_it(client: TestClient) -> None:
    """As on the metric collections: `offset` with `after` skips that many after the cursor,
    and the page's `next` carries the cursor of its own last item, without the offset."""
    whole = client.get("/v1/changes", params={"limit": 500}).json()["items"]
    first = client.get("/v1/changes", params={"limit": 5}).json()
    token = first["next"].rsplit("after=", 1)[1]
    page = client.get("/v1/changes", params={"after": token, "offset": 3, "limit": 4}).json()
    assert page["items"] == whole[8:12] and (page["offset"], page["total"]) == (3, 67)
    assert page["next"] == (
        "/v1/changes?limit=4&after="
        + encode_cursor(["dataset_version,id", whole[11]["dataset_version"], whole[11]["id"]])
    )


def test_count_none_leaves_the_feed_without_a_total(client: TestClient) -> None:
    body = client.get("/v1/changes", params={"limit": 10, "count": "none"}).json()
    assert body["total"] is None and len(body["items"]) == 10
    assert "count=none" in body["next"] and "after=" in body["next"]
    seen = body["items"] + _walk(client, body["next"])
    assert seen == client.get("/v1/changes", params={"limit": 500}).json()["items"]
    last = client.get("/v1/changes", params={"limit": 500, "count": "none"}).json()
    assert (last["total"], last["next"], len(last["items"])) == (None, None, 67)
    assert client.get("/v1/changes", params={"count": "exact"}).json()["total"] == 67
    refused = client.get("/v1/changes", params={"count": "estimated"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["name"] == "count"


@pytest.mark.parametrize(
    "token",
    [
        "!!!",
        "x" * 2001,
        "bm90IGpzb24",  # base64 of "not json"
        encode_cursor(["id", "car-t-dose-manufacturing-cost"]),  # a metric page's
        encode_cursor(["-value,id", 5, "x"]),
        encode_cursor(["dataset_version,id"]),
        encode_cursor(["dataset_version,id", 1]),
        encode_cursor(["dataset_version,id", 1, 2, 3]),
        encode_cursor(["dataset_version,id", "1", 2]),
        encode_cursor(["dataset_version,id", 1.5, 2]),
        encode_cursor(["dataset_version,id", True, 2]),
        encode_cursor(["dataset_version,id", None, 2]),
        encode_cursor(["dataset_version,id", -1, 2]),
        encode_cursor(["dataset_version,id", 1, 2**31]),
        encode_cursor(["dataset_version,id", 2**63, 1]),
        encode_cursor([1, 1, 2]),
    ],
)
def test_a_cursor_the_feed_did_not_give_is_a_422_naming_after(
    client: TestClient, token: str
) -> None:
    for params in ({"after": token}, {"after": token, "since": "2000-01-01T00:00:00Z"}):
        answer = client.get("/v1/changes", params=params)
        assert answer.status_code == 422, (token, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert [(e["in"], e["name"]) for e in answer.json()["errors"]] == [("query", "after")]


def test_a_feed_cursor_is_no_metric_cursor(client: TestClient) -> None:
    token = client.get("/v1/changes", params={"limit": 2}).json()["next"].rsplit("after=", 1)[1]
    for path in ("/v1/metrics", "/v1/market"):
        answer = client.get(path, params={"after": token})
        assert answer.status_code == 422 and answer.json()["errors"][0]["name"] == "after"
    metric = client.get("/v1/metrics", params={"limit": 2}).json()["next"].rsplit("after=", 1)[1]
    answer = client.get("/v1/changes", params={"after": metric})
    assert answer.json()["errors"] == [
        {"in": "query", "name": "after", "detail": "this cursor is for another collection or order"}
    ]


def test_a_page_by_cursor_seeks_the_feed_index(writable: Writable) -> None:
    """Each statement of a page after a cursor (and of the first page), with `since` and
    `as_of` too, reads `ix_revision_dataset_version_id` in the feed's order, with no sort and
    no table scan: on PostgreSQL with both forbidden, which it could obey only with such an
    index (at this size it would rather scan; 1,000,000 revisions: docs/benchmarks-log.md)."""
    w = writable
    _write_versions(w)
    statements: list[tuple[str, Any]] = []

    def kept(_c: Any, _cursor: Any, statement: str, parameters: Any, *_a: Any) -> None:
        if "FROM revision JOIN dataset_version" in statement:
            statements.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", kept)
    try:
        first = w.client.get("/v1/changes", params={"limit": 60, "count": "none"}).json()
        assert w.client.get(first["next"]).status_code == 200
        window = {"since": first["items"][0]["at"], "as_of": _z(datetime.now(UTC))}
        assert w.client.get("/v1/changes", params={**window, "after": first["next"].rsplit(
            "after=", 1)[1]}).status_code == 200  # fmt: skip
    finally:
        event.remove(Engine, "before_cursor_execute", kept)
    # The first page's one, then for each page after it one range on PostgreSQL and two on
    # SQLite (the rest of the seed's version, then the versions after it).
    assert len(statements) == (5 if w.engine.dialect.name == "sqlite" else 3)
    with w.engine.connect() as connection:
        for statement, parameters in statements:
            if w.engine.dialect.name == "sqlite":
                rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                plan = [str(row[-1]) for row in rows]
                reads = [line for line in plan if re.match(r"(SCAN|SEARCH) revision\b", line)]
                assert reads and all("ix_revision_dataset_version_id" in r for r in reads), plan
                assert not any("TEMP B-TREE" in line for line in plan), plan
            else:
                connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
                connection.exec_driver_sql("SET LOCAL enable_sort = off")
                rows = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                plan = [str(row[0]) for row in rows]
                text = " | ".join(plan)
                assert "Index Scan using ix_revision_dataset_version_id" in text, plan
                assert "Sort" not in text and "Seq Scan on revision" not in text, plan


def test_every_statement_of_a_read_sees_the_data_as_the_read_began(writable: Writable) -> None:
    """A read is one snapshot: a write committed while it runs shows in none of its statements
    (on PostgreSQL, READ COMMITTED would give each statement its own, so a page's items could
    hold records its `total` and its `Dataset-Version` do not)."""
    app = writable.client.app
    request = Request({"type": "http", "method": "GET", "path": "/v1/metrics",
                       "query_string": b"", "headers": [], "app": app})  # fmt: skip
    with read_session(request) as session:
        assert answered_at(session) == 1
        created = writable.client.post("/v1/metrics", json=new_metric(), headers=writable.auth())
        assert created.status_code == 201
        assert writable.client.get("/v1/metrics").headers["dataset-version"] == "2"
        ids = set(session.execute(select(col(Metric.id))).scalars())
        assert len(ids) == 42 and new_metric()["id"] not in ids
        assert versions.current(session) == 1


def test_a_read_that_turns_on_a_moment_inside_a_commit_window_waits_for_the_commit(
    writable: Writable,
) -> None:
    """A version is dated just before its commit ends. A read `as_of` a moment after that date,
    or a page of the change feed, made before the commit has ended, waits for it (in another
    server process too): it answers what the same request answers afterwards, and a poller going
    on `since` its last poll's time misses nothing. A moment before the newest version known
    needs no wait."""
    w = writable
    stamped, release = threading.Event(), threading.Event()

    def hold(session: Session) -> None:  # runs after api.records.versions._stamp
        if session.info.get("write") and not release.is_set():
            stamped.set()
            release.wait(30)

    tag = w.etag(METRIC)
    with serving(w.engine) as (_server, url):
        started = _z(datetime.now(UTC))
        old = httpx.get(f"{url}{METRIC}", params={"as_of": started})
        assert old.headers["dataset-version"] == "1"  # and the server knows version 1's date
        seeded = datetime.fromisoformat(
            httpx.get(f"{url}/v1/releases").json()["items"][0]["created_at"]
        )
        before_seed = _z(seeded - timedelta(microseconds=1))
        polled = httpx.get(f"{url}/v1/changes", params={"since": started, "limit": 500})
        assert polled.json()["items"] == []  # and no cache keeps it for the poll below
        event.listen(Session, "before_commit", hold)
        try:
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                patched = pool.submit(
                    w.client.patch, METRIC, json={"name": "Renamed"},
                    headers={**w.auth(), "If-Match": tag},
                )  # fmt: skip
                assert stamped.wait(30)
                moment = _z(datetime.now(UTC))
                # A moment before the version being committed is answered at once.
                past = pool.submit(httpx.get, f"{url}/v1/metrics", params={"as_of": before_seed})
                assert past.result(timeout=10).json()["total"] == 0
                then = pool.submit(httpx.get, f"{url}{METRIC}", params={"as_of": moment})
                feed = pool.submit(
                    httpx.get, f"{url}/v1/changes", params={"since": started, "limit": 500}
                )
                time.sleep(0.3)
                assert not then.done() and not feed.done()  # waiting for the commit
                release.set()
                assert patched.result(timeout=30).status_code == 200
                answer = then.result(timeout=30)
                changes = feed.result(timeout=30).json()["items"]
        finally:
            event.remove(Session, "before_commit", hold)
        assert (answer.json()["name"], answer.headers["dataset-version"]) == ("Renamed", "2")
        assert [c["dataset_version"] for c in changes] == [2]
        again = httpx.get(f"{url}{METRIC}", params={"as_of": moment})
        assert again.content == answer.content
