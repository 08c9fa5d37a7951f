"""`cdmo-metrics import PATH...`: files and folders as one release, every problem named."""

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from bench import synthetic
from tests.conftest import serving


def _import(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "import", *args],
        env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_files_and_folders_load_as_one_release(migrated_engine: Engine, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    synthetic.write(first, metrics=30, sources=2)
    files = synthetic.write(second, metrics=10, sources=1, seed=8)
    # A third source, from the second folder's text, under another id.
    moved = json.loads(files[0].read_text(encoding="utf-8"))
    moved["source"]["id"] = "synthetic-source-other"
    for metric in moved["metrics"]:
        metric["id"] += "-other"
    other = second / "other.json"
    other.write_text(json.dumps(moved), encoding="utf-8")
    files[0].unlink()
    done = _import(migrated_engine, str(first), str(other), "--label", "three sources")
    assert done.returncode == 0, done.stderr
    assert "metrics              +40 ~0 -0 =0" in done.stdout
    with serving(migrated_engine) as (_server, url):
        releases = httpx.get(f"{url}/v1/releases").json()["items"]
        assert [(r["label"], r["added"]) for r in releases] == [("three sources", 43)]
        changes = httpx.get(f"{url}/v1/changes", params={"limit": 500}).json()
        assert {c["dataset_version"] for c in changes["items"]} == {releases[0]["dataset_version"]}
        assert httpx.get(f"{url}/v1/metrics").json()["total"] == 40
    again = _import(migrated_engine, str(first), str(other))
    assert again.returncode == 0 and "metrics              +0 ~0 -0 =40" in again.stdout


def test_every_problem_is_named_with_file_and_record(
    migrated_engine: Engine, tmp_path: Path
) -> None:
    (path,) = synthetic.write(tmp_path, metrics=5, sources=1)
    data = json.loads(path.read_text(encoding="utf-8"))
    first, second = data["metrics"][0], data["metrics"][1]
    first["unit"], first["measure"] = "USD", "share"
    second["evidence"]["end"] = 10**9
    path.write_text(json.dumps(data), encoding="utf-8")
    refused = _import(migrated_engine, str(path))
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert f"{path}: metrics[{first['id']}].unit: USD does not fit measure share" in refused.stderr
    assert f"{path}: metrics[{second['id']}].evidence.end: 1000000000 is past the end" in (
        refused.stderr
    )
    assert "nothing was written" in refused.stderr


def test_a_source_text_over_the_limit_says_so(migrated_engine: Engine, tmp_path: Path) -> None:
    (path,) = synthetic.write(tmp_path, metrics=1, sources=1)
    data = json.loads(path.read_text(encoding="utf-8"))
    text = tmp_path / data["source"]["text_file"]
    text.write_text(text.read_text(encoding="utf-8") + " x" * 60_000, encoding="utf-8")
    refused = _import(migrated_engine, str(path))
    assert refused.returncode == 1
    assert "a source text may have at most 100,000" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.parametrize(
    ("added", "said"),
    [
        ("\u202e", "U+202E at"),  # a bidirectional override ("Trojan Source")
        ("\x1b[2J", "U+001B at"),  # an escape sequence
        ("\x00", "U+0000 at"),
        ("\r\n", "U+000D at"),  # verbatim: CRLF is neither refused silently nor rewritten
    ],
)
def test_a_source_text_meets_the_rules_of_a_text_sent_to_the_api(
    migrated_engine: Engine, tmp_path: Path, added: str, said: str
) -> None:
    (path,) = synthetic.write(tmp_path, metrics=1, sources=1)
    data = json.loads(path.read_text(encoding="utf-8"))
    text = tmp_path / data["source"]["text_file"]
    text.write_bytes((text.read_text(encoding="utf-8") + added + "end\n").encode())
    refused = _import(migrated_engine, str(path))
    assert refused.returncode == 1, refused.stdout
    assert f"{path}: source.text_file: {text} must not contain control characters ({said}" in (
        refused.stderr
    )
    assert ("save it with LF line ends" in refused.stderr) == ("\r" in added)
    assert "nothing was written" in refused.stderr and "Traceback" not in refused.stderr
    with migrated_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM source").scalar_one() == 0


@pytest.mark.parametrize("named", ["/etc/passwd", "../secret.txt", "texts/../../secret.txt"])
def test_a_source_text_outside_the_folder_of_texts_is_refused(
    migrated_engine: Engine, tmp_path: Path, named: str
) -> None:
    """A dataset file's text becomes public (/v1/sources/{id}/text): it may only name a file in
    the folder of source texts, never one elsewhere on the server."""
    (tmp_path / "secret.txt").write_text("a server's secret", encoding="utf-8")
    folder = tmp_path / "data"
    (path,) = synthetic.write(folder, metrics=1, sources=1)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["source"]["text_file"] = named
    path.write_text(json.dumps(data), encoding="utf-8")
    refused = _import(migrated_engine, str(path))
    assert refused.returncode == 1, refused.stdout
    assert (
        f"{path}: source.text_file: {named!r} is not a file in the folder of source texts, "
        f"{folder.resolve()}" in refused.stderr
    )
    assert "nothing was written" in refused.stderr and "Traceback" not in refused.stderr
    with migrated_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM source").scalar_one() == 0


def test_a_file_naming_a_key_twice_is_refused_as_the_api_refuses_a_body(
    migrated_engine: Engine, tmp_path: Path
) -> None:
    """JSON and YAML readers keep the last of a repeated key; the API refuses a body that
    repeats one, and so does an import, naming where."""
    (path,) = synthetic.write(tmp_path, metrics=1, sources=1)
    text = path.read_text(encoding="utf-8")
    repeated = text.replace('"value": ', '"value": 31, "value": ', 1)
    path.write_text(repeated, encoding="utf-8")
    refused = _import(migrated_engine, str(path))
    assert refused.returncode == 1, refused.stdout
    assert f"{path}: metrics[0].value: appears more than once in one object" in refused.stderr
    as_yaml = path.with_suffix(".yaml")
    path.unlink()
    as_yaml.write_text("source:\n  id: a\n  id: b\nmetrics: []\n", encoding="utf-8")
    refused = _import(migrated_engine, str(as_yaml))
    assert refused.returncode == 1, refused.stdout
    assert f"{as_yaml}: line 3: 'id' appears more than once in one mapping" in refused.stderr
    assert "nothing was written" in refused.stderr and "Traceback" not in refused.stderr
    with migrated_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM source").scalar_one() == 0


def test_a_path_that_is_not_there_is_refused(migrated_engine: Engine, tmp_path: Path) -> None:
    refused = _import(migrated_engine, str(tmp_path / "missing.json"))
    assert refused.returncode == 1 and "no dataset file" in refused.stderr


def test_the_vacuum_after_a_load_is_not_cut_by_the_request_timeout(
    migrated_engine: Engine, tmp_path: Path
) -> None:
    """At 1,000,000 metrics the VACUUM (ANALYZE) after an import takes minutes: it must not run
    under the 5 s statement timeout meant for requests (it did, and the committed import was
    then reported as "nothing was written"). Here another session makes it wait on a lock for
    longer than a 100 ms timeout: `metric`, the largest table, vacuumed first. The pool has
    one connection and waits 200 ms at most for it: the VACUUMs, two at a time, connect
    outside the pool (through it, the second timed out behind the first)."""
    if migrated_engine.dialect.name != "postgresql":
        pytest.skip("VACUUM is PostgreSQL's")
    synthetic.write(tmp_path / "synthetic", 20, 1)
    environment = {
        **os.environ,
        "DATABASE_URL": migrated_engine.url.render_as_string(hide_password=False),
        "DB_STATEMENT_TIMEOUT_MS": "100",
        "DB_POOL_SIZE": "1",
        "DB_MAX_OVERFLOW": "0",
        "DB_POOL_TIMEOUT": "0.2",
    }
    with migrated_engine.connect() as blocker:
        # Writes go on (ROW EXCLUSIVE); VACUUM's SHARE UPDATE EXCLUSIVE lock waits.
        blocker.exec_driver_sql("LOCK TABLE metric IN SHARE UPDATE EXCLUSIVE MODE")
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "import", str(tmp_path / "synthetic")],
            env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE starts_with(query, 'VACUUM') AND wait_event_type = 'Lock'"
        deadline = time.monotonic() + 60
        with migrated_engine.connect() as watcher:
            while not watcher.exec_driver_sql(waiting).scalar_one():
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the VACUUM never waited"
                time.sleep(0.05)
                watcher.rollback()
        time.sleep(0.5)  # five times the statement timeout
        blocker.rollback()
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert "warning" not in err and "failed" not in err
    with migrated_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM metric").scalar_one() == 20


def test_an_import_leaves_statistics_of_the_indexes_on_folded_subjects(
    migrated_engine: Engine, tmp_path: Path
) -> None:
    """The subject filter compares folded subjects through indexes on an expression, whose
    statistics PostgreSQL gathers only when it analyzes their whole table (an ANALYZE naming
    columns skips them). The VACUUM (ANALYZE) after a load named columns, so after an import of
    1,000,000 metrics `subject=CAR-T&sort=-value` took 45 ms a page instead of 8 ms."""
    if migrated_engine.dialect.name != "postgresql":
        pytest.skip("the statistics are PostgreSQL's")
    synthetic.write(tmp_path / "synthetic", 20, 1)
    imported = _import(migrated_engine, str(tmp_path / "synthetic"))
    assert imported.returncode == 0, imported.stderr
    with migrated_engine.connect() as connection:
        analyzed = connection.exec_driver_sql(
            "SELECT DISTINCT tablename FROM pg_stats WHERE starts_with(tablename, 'ix_')"
        ).scalars()
        assert sorted(analyzed) == ["ix_metric_subject_count_folded", "ix_metric_subject_folded"]


def _kept_subjects_disagree(engine: Engine) -> list[tuple[str, str, str]]:
    """Metric rows, live and in the history, whose kept subjects (`subjects_json`,
    `subjects_csv`) are not what the store writes for their subject rows (the live ones, or
    those current at the history row's version)."""
    from sqlalchemy import text

    from api.metrics.kind import _subjects_csv, _subjects_json

    with engine.connect() as connection:
        live = {
            row[0]: (row[1], row[2])
            for row in connection.execute(
                text("SELECT id, subjects_json, subjects_csv FROM metric")
            )
        }
        subjects: dict[str, list[str]] = {}
        for owner, subject in connection.execute(
            text("SELECT metric_id, subject FROM metric_subject ORDER BY metric_id, position")
        ):
            subjects.setdefault(owner, []).append(subject)
        history = connection.execute(
            text("SELECT row_id, id, valid_from, subjects_json, subjects_csv FROM metric_history")
        ).all()
        periods = connection.execute(
            text(
                "SELECT metric_id, subject, position, valid_from, valid_to"
                " FROM metric_subject_history ORDER BY position"
            )
        ).all()
    wrong = []
    for metric_id, kept in live.items():
        listed = subjects.get(metric_id, [])
        if kept != (_subjects_json(listed), _subjects_csv(listed)):
            wrong.append(("live", metric_id, str(kept)))
    for row_id, metric_id, version, *kept in history:
        listed = [
            subject
            for owner, subject, _position, start, end in periods
            if owner == metric_id and start <= version and (end is None or end > version)
        ]
        if tuple(kept) != (_subjects_json(listed), _subjects_csv(listed)):
            wrong.append(("history", str(row_id), str(kept)))
    return wrong


def test_the_subjects_kept_with_each_metric_follow_every_write(
    migrated_engine: Engine, tmp_path: Path
) -> None:
    """A metric's `subjects_json` and `subjects_csv` (read by pages and exports) agree with its
    subject rows (read by filters and facets), live and at every version, after imports that
    create metrics, change, reorder and clear their subjects, and delete some, and after API
    writes of subjects and of other fields."""
    from fastapi.testclient import TestClient

    from api.config import Settings
    from api.main import create_app
    from tests.helpers import make_keys

    (path,) = synthetic.write(tmp_path, metrics=12, sources=1)
    assert _import(migrated_engine, str(path)).returncode == 0
    data = json.loads(path.read_text(encoding="utf-8"))
    metrics = data["metrics"]
    metrics[0]["subjects"] = [*reversed(metrics[0]["subjects"]), '=new, "quoted"']
    metrics[1]["subjects"] = []
    metrics[2]["subjects"] = ["-only"]
    metrics[3]["name"] += " (renamed)"  # a change that leaves the subjects alone
    data["metrics"] = metrics[:-2]  # two deleted
    path.write_text(json.dumps(data), encoding="utf-8")
    done = _import(migrated_engine, str(path))
    assert done.returncode == 0, done.stderr
    assert "metrics              +0 ~4 -2 =6" in done.stdout
    keys = make_keys(migrated_engine)
    headers = {"Authorization": f"Bearer {keys['alice']}", "If-Match": "*"}
    with TestClient(create_app(Settings(response_cache_bytes=0), migrated_engine)) as client:
        for body in (
            {"subjects": ["b", "a", "ünï"]},
            {"name": "Renamed by hand"},
            {"subjects": []},
        ):
            written = client.patch(f"/v1/metrics/{metrics[4]['id']}", json=body, headers=headers)
            assert written.status_code == 200, written.text
        item = client.get(f"/v1/metrics/{metrics[0]['id']}").json()
        assert item["subjects"] == metrics[0]["subjects"]
    assert _kept_subjects_disagree(migrated_engine) == []


def _documents(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(text("SELECT id, document FROM metric")).all())


def test_pages_show_each_metric_exactly_as_its_item_after_every_write(
    migrated_engine: Engine, tmp_path: Path
) -> None:
    """Live pages and items show each metric from the JSON kept with its row
    (`metric.document`); at a version (`as_of`) they are built from the history's columns.
    After imports that create, change (text, subjects, forecasts) and delete metrics, and API
    writes, a page is byte for byte the envelope of the items, and the page at this moment
    (`as_of`) is byte for byte the live page; forecasts past their horizon say so (also one
    whose description holds the text `"horizon_passed":false`); and migrating down past 0017
    and up again renders the same documents."""
    from fastapi.testclient import TestClient

    from api import migrate
    from api.config import Settings
    from api.main import create_app
    from tests.helpers import make_keys

    (path,) = synthetic.write(tmp_path, metrics=12, sources=1)
    assert _import(migrated_engine, str(path)).returncode == 0
    data = json.loads(path.read_text(encoding="utf-8"))
    metrics = data["metrics"]
    metrics[0]["subjects"] = ['=new, "quoted"', "ünï"]
    metrics[1].update(forecast=True, year=2001, base_year=None)  # past its horizon
    metrics[2]["geography"] = "Émirats"
    metrics[3]["name"] += " (renamed)"
    data["metrics"] = metrics[:-2]  # two deleted
    path.write_text(json.dumps(data), encoding="utf-8")
    done = _import(migrated_engine, str(path))
    assert done.returncode == 0, done.stderr
    keys = make_keys(migrated_engine)
    headers = {"Authorization": f"Bearer {keys['alice']}", "If-Match": "*"}
    tricky = 'It says "horizon_passed":false, \\ and \u2028 — but it has passed.'
    with TestClient(create_app(Settings(response_cache_bytes=0), migrated_engine)) as client:
        for metric_id, body in (
            (metrics[1]["id"], {"description": tricky}),
            (metrics[4]["id"], {"subjects": ["b", "a"], "cited_as": "Ünïcode & <tags>"}),
        ):
            written = client.patch(f"/v1/metrics/{metric_id}", json=body, headers=headers)
            assert written.status_code == 200, written.text
        page = client.get("/v1/metrics", params={"limit": 100})
        ids = [item["id"] for item in page.json()["items"]]
        assert len(ids) == 10
        items = [client.get(f"/v1/metrics/{metric_id}").content for metric_id in ids]
        envelope = b',"total":10,"limit":100,"offset":0,"next":null}'
        assert page.content == b'{"items":[' + b",".join(items) + b"]" + envelope
        shown = {item["id"]: item for item in page.json()["items"]}
        assert shown[metrics[1]["id"]]["horizon_passed"] is True
        assert shown[metrics[1]["id"]]["description"] == tricky
        passed = {metric_id for metric_id, item in shown.items() if item["horizon_passed"]}
        assert passed == {
            m["id"] for m in metrics[:10] if m["forecast"] and m["year"] < datetime.now(UTC).year
        }
        at = client.get(
            "/v1/metrics", params={"limit": 100, "as_of": datetime.now(UTC).isoformat()}
        )
        assert at.json()["items"] == page.json()["items"]
        # Sorted and paged by cursor, the kept documents and the history's columns agree.
        walked: dict[str, list[dict[str, Any]]] = {"live": [], "as_of": []}
        moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for name, extra in (("live", ""), ("as_of", f"&as_of={moment}")):
            url: str | None = "/v1/metrics?sort=-value_high,name&limit=3" + extra
            while url:
                answer = client.get(url).json()
                walked[name] += answer["items"]
                url = answer["next"]
        assert walked["live"] == walked["as_of"]
        assert len(walked["live"]) == 10
    kept = _documents(migrated_engine)
    migrate.downgrade(migrated_engine, "0016")
    migrate.upgrade(migrated_engine)
    assert _documents(migrated_engine) == kept


def test_the_facet_tally_of_a_bulk_load_equals_the_counted_facets(
    migrated_engine: Engine, tmp_path: Path
) -> None:
    """A load large enough to move the tallies in bulk (`store.STAGED_ROWS`): after creates, and
    after a second load that moves metrics between combinations and subjects, empties some and
    deletes others, the live facets (summed from the tally) equal those counted at a version."""
    from fastapi.testclient import TestClient

    from api.config import Settings
    from api.main import create_app
    from api.metrics.schemas import FACETS
    from api.records.store import STAGED_ROWS

    (path,) = synthetic.write(tmp_path, metrics=3 * STAGED_ROWS, sources=1)
    assert _import(migrated_engine, str(path)).returncode == 0
    data = json.loads(path.read_text(encoding="utf-8"))
    metrics = data["metrics"]
    for number, metric in enumerate(metrics[: 2 * STAGED_ROWS]):
        if number % 2:
            metric["category"] = "market"  # moved to another combination
            metric["geography"] = "Bulkland"
        else:
            metric["subjects"] = [f"bulk {number % 3}", *metric["subjects"][:1]]
    data["metrics"] = metrics[: -STAGED_ROWS // 2]  # the rest deleted
    path.write_text(json.dumps(data), encoding="utf-8")
    done = _import(migrated_engine, str(path))
    assert done.returncode == 0, done.stderr
    assert f"-{STAGED_ROWS // 2} " in done.stdout

    def counts(body: dict[str, Any]) -> dict[str, list[tuple[object, object]]]:
        return {
            name: [(v["value"], v["count"]) for v in values]
            for name, values in body["facets"].items()
        }

    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    with TestClient(create_app(Settings(response_cache_bytes=0), migrated_engine)) as client:
        for filters in (
            {},
            {"category": "market"},
            {"geography": "Bulkland,null"},
            {"subject": "bulk 1"},
            {"subject": "bulk 0,bulk 2", "category": "market,technology"},
        ):
            params = {**filters, "facet": ",".join(FACETS)}
            live = client.get("/v1/metrics/facets", params=params).json()
            counted = client.get("/v1/metrics/facets", params={**params, "as_of": future}).json()
            assert live["total"] == counted["total"] > 0, filters
            assert counts(live) == counts(counted), filters
        assert client.get("/v1/metrics").json()["total"] == 3 * STAGED_ROWS - STAGED_ROWS // 2


def test_a_dry_run_reports_what_the_import_would_do_and_writes_nothing(
    migrated_engine: Engine, tmp_path: Path
) -> None:
    (path,) = synthetic.write(tmp_path, metrics=5, sources=1)
    assert _import(migrated_engine, str(path)).returncode == 0
    data = json.loads(path.read_text(encoding="utf-8"))
    data["metrics"][0]["name"] += " (renamed)"
    data["metrics"] = data["metrics"][:3]  # two removed
    path.write_text(json.dumps(data), encoding="utf-8")

    def state() -> tuple[int, ...]:
        with migrated_engine.connect() as connection:
            return tuple(
                connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
                for table in ("metric", "release", "revision", "metric_history")
            )

    before = state()
    dry = _import(migrated_engine, str(path), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "metrics              +0 ~1 -2 =2" in dry.stdout
    assert dry.stdout.endswith("dry run: nothing was written\n") and "release" not in dry.stdout
    assert state() == before
    done = _import(migrated_engine, str(path))
    assert "metrics              +0 ~1 -2 =2" in done.stdout
    assert state() != before
