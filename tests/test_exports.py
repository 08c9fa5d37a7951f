"""The export engine: an export holds no database connection while it waits on its client,
each client address runs a bounded number at once, and a client that stops reading is dropped.
Exports read in chunks at one dataset version, so a write during an export does not show in it."""

import csv
import io
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api import exports
from api.config import Settings
from api.dataset import read_datasets
from api.db import SQLITE_POOL_SIZE
from api.metrics.schemas import MetricPublic
from api.records.loading import load_datasets
from bench import synthetic
from tests.conftest import seed, serving

# Far more than socket buffers hold: an export that waited on its client while holding its
# connection would still hold it when the plain reads come.
METRICS = 12000


def load_many(engine: Engine, folder: Path) -> None:
    seed(engine)
    synthetic.write(folder, METRICS, 30)
    with Session(engine) as session, session.begin():
        load_datasets(session, read_datasets(folder, folder), label="synthetic")


@contextmanager
def stalled_exports(url: str, count: int, path: str) -> Iterator[list[socket.socket]]:
    """`count` clients that ask for an export (each a distinct request, so none waits on
    another's), read its first bytes, and then stop reading."""
    host, port = url.removeprefix("http://").split(":")
    clients = []
    try:
        for n in range(count):
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect((host, int(port)))
            # a filter that keeps every metric, different per client
            distinct = f"{'&' if '?' in path else '?'}value_min=-{n + 1}"
            request = f"GET {path}{distinct} HTTP/1.1\r\nHost: {host}\r\n\r\n"
            client.sendall(request.encode())
            clients.append(client)
        yield clients
    finally:
        for client in clients:
            client.close()


def wait_idle(pid: int, deadline: float = 120.0) -> None:
    """Until the server has used under 5% of a core for half a second (the exports are
    written up to what the sockets hold, and now only wait)."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    ends = time.monotonic() + deadline
    while time.monotonic() < ends:
        before = cpu()
        time.sleep(0.5)
        if cpu() - before < 0.025:
            return
    raise AssertionError("the server stayed busy")


def status_of(client: socket.socket) -> bytes:
    client.settimeout(30)
    return client.recv(12)


def test_stalled_export_readers_leave_plain_reads_answering(
    migrated_engine: Engine, tmp_path: Path
) -> None:
    """With the pool at its default size, three times as many clients that start an export and
    stop reading leave every uncached read and /readyz answering at once (before, each held a
    pooled connection: reads waited out the pool timeout and answered 503)."""
    load_many(migrated_engine, tmp_path / "synthetic")
    settings = Settings()
    pool = (
        SQLITE_POOL_SIZE
        if migrated_engine.dialect.name == "sqlite"
        else settings.db_pool_size + settings.db_max_overflow
    )
    environment = {"EXPORTS_PER_CLIENT": "1000", "EXPORT_SEND_TIMEOUT": "120"}
    with (
        serving(migrated_engine, **environment) as (server, url),
        stalled_exports(url, 3 * pool, "/v1/metrics.ndjson") as clients,
    ):
        assert all(status_of(client) == b"HTTP/1.1 200" for client in clients)
        wait_idle(server.pid)  # every export has filled what its socket holds, and waits
        with httpx.Client(base_url=url, timeout=60) as reader:
            for n in range(1, 6):
                started = time.perf_counter()
                page = reader.get("/v1/metrics", params={"limit": n, "sort": "-value_high"})
                elapsed = time.perf_counter() - started
                assert page.status_code == 200 and len(page.json()["items"]) == n
                # Under 100 ms on a quiet machine. Before, with every pooled connection held by
                # an export, a read waited out the pool (5 s on PostgreSQL, then 503; 30 s on
                # SQLite): the status is the check, and the bound is generous because the
                # machine running the tests may be shared.
                assert elapsed < 10.0, elapsed
            assert reader.get("/readyz").status_code == 200


def test_exports_per_client_are_capped_and_a_client_that_stops_reading_is_dropped(
    migrated_engine: Engine, tmp_path: Path
) -> None:
    load_many(migrated_engine, tmp_path / "synthetic")
    cap = Settings().exports_per_client
    with (
        serving(migrated_engine, EXPORT_SEND_TIMEOUT="3", log_to=tmp_path / "log") as (
            _server,
            url,
        ),
        stalled_exports(url, cap, "/v1/metrics.ndjson") as clients,
    ):
        assert all(status_of(client) == b"HTTP/1.1 200" for client in clients)
        refused = httpx.get(f"{url}/v1/metrics.ndjson", timeout=30)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "5"
        assert f"At most {cap} exports" in refused.json()["detail"]
        time.sleep(8.0)  # well past the send timeout: the server gives each up and closes
        cut = []
        for client in clients:
            received = b""
            while chunk := client.recv(65536):
                received += chunk
            cut.append(len(received))
        # Their slots are free again; each stalled client got less than the whole.
        whole = httpx.get(f"{url}/v1/metrics.ndjson", timeout=60)
        assert whole.status_code == 200
        assert len(whole.text.splitlines()) == METRICS + 42
        assert all(size < len(whole.content) for size in cut), (cut, len(whole.content))
    # Each is a line of the log, a client's doing: not an error with a traceback.
    log = (tmp_path / "log").read_text()
    assert log.count("export to /v1/metrics.ndjson given up: no chunk taken in 3.0 s") == cap
    assert "Traceback" not in log


def test_an_export_answers_at_one_version_while_writes_land(
    migrated_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks read after a write come from the history at the export's version: the export is
    the collection as it was when it began, not a mix."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.helpers import make_keys

    load_many(migrated_engine, tmp_path / "synthetic")
    keys = make_keys(migrated_engine)
    monkeypatch.setattr(exports, "CHUNK_ROWS", 500)
    settings = Settings(response_cache_bytes=0)
    with (
        TestClient(create_app(settings, migrated_engine)) as client,
        TestClient(create_app(settings, migrated_engine)) as other,
    ):
        before = client.get("/v1/metrics.ndjson").text.splitlines()
        last_id = json.loads(before[-1])["id"]
        read_chunk, chunks = exports._read_chunk, []

        def write_after_the_first_chunk(*args: object) -> exports.Chunk:
            chunk = read_chunk(*args)  # type: ignore[arg-type]
            chunks.append(chunk)
            if len(chunks) == 1:  # another instance renames the export's last metric
                written = other.patch(
                    f"/v1/metrics/{last_id}",
                    json={"name": "Renamed while an export ran"},
                    headers={"Authorization": f"Bearer {keys['alice']}", "If-Match": "*"},
                )
                assert written.status_code == 200
            return chunk

        monkeypatch.setattr(exports, "_read_chunk", write_after_the_first_chunk)
        during = client.get("/v1/metrics.ndjson")
        assert len(chunks) > 2 and during.text.splitlines() == before
        after = client.get("/v1/metrics.ndjson").text.splitlines()
        assert json.loads(after[-1])["name"] == "Renamed while an export ran"
        newer = client.get("/v1/metrics").headers["dataset-version"]
        assert int(during.headers["dataset-version"]) < int(newer)


# Figures and texts at the edges of how each writer writes them: integral floats, decimals with
# 17 digits, the smallest floats, signs; quotes, commas, line breaks, tabs, control characters,
# formula starts, characters beyond the BMP. (value, value_low, value_high), name, description.
AWKWARD = [
    ((30.0, 30.0, 30.0), "=SUM(A1:A2)", 'Says "thirty", then a comma'),
    ((0.1, 0.1, 0.1), "+1 decimal", "one line\nand another\r\nand a third"),
    ((None, -3.75, -2.5), "-negative range", "\tstarts with a tab"),
    ((1e-05, 1e-05, 1e-05), "@small", "\rstarts with a carriage return"),
    ((None, 5e-324, 0.30000000000000004), "Ünïcødé – 😀", "controls \x01 \x1f \\ and / slash"),
    ((123456789012345.6, 123456789012345.6, 123456789012345.6), "big fraction", "plain"),
    ((None, -1e15, 1e15), "the bounds", "'already quoted"),
    ((1 / 3, 1 / 3, 1 / 3), "a third", ""),
    ((-0.0, -0.0, -0.0), "minus zero", "-0"),
    ((0.0001, 0.0001, 0.0001), "the edge of plain decimals", "=1+1"),
    ((999999999999999.9, 999999999999999.9, 999999999999999.9), "just under 1e15", "x"),
    ((None, 2.5e-7, 1234.5678), "tiny to decimal", "@"),
]
SUBJECTS = [["=formula", "comma, inside", 'quote "q"'], [], ["-dash"], ["ünï", "\ttab"]]


def load_awkward(engine: Engine) -> list[str]:
    """The seed, and metrics with the AWKWARD figures and texts written straight into the
    tables (as the database holds them, whatever a loader would have said; the subjects both
    as rows and kept with the metric, and the metric's JSON, as the record store writes
    them)."""
    from api.db import writer
    from api.metrics import kind, service
    from api.metrics.models import Metric, MetricSubject
    from tests.helpers import SOURCE

    seed(engine)
    ids = []
    with Session(writer(engine)) as session, session.begin():
        for n, ((value, low, high), name, description) in enumerate(AWKWARD):
            metric_id = f"awkward-{n:02d}"
            ids.append(metric_id)
            row = dict(
                id=metric_id,
                category=["market", "pricing"][n % 2],
                name=name,
                description=description,
                value=value,
                value_low=low,
                value_high=high,
                qualifier="eq",
                unit="percent",
                measure="share",
                direction=[None, "increase"][n % 2],
                year=[None, 2001, 2099][n % 3],
                forecast=n % 2 == 0,
                base_year=[None, 1999][n % 2],
                geography=[None, "=EU", 'Côte d’Ivoire, "CI"'][n % 3],
                cited_as=[None, "@cited, as"][n % 2],
                baseline_id=ids[0] if n else None,
                source_id=SOURCE,
                evidence_quote=description or name,
                evidence_start=n,
                evidence_end=n + 10,
                subjects_json=kind._subjects_json(SUBJECTS[n % len(SUBJECTS)]),
                subjects_csv=kind._subjects_csv(SUBJECTS[n % len(SUBJECTS)]),
            )
            # The JSON pages show, as the record store renders it with the row.
            session.add(Metric(**row, document=service.document(row)))
        session.flush()
        for n, metric_id in enumerate(ids):
            for position, subject in enumerate(SUBJECTS[n % len(SUBJECTS)]):
                session.add(MetricSubject(metric_id=metric_id, subject=subject, position=position))
    return ids


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"sort": "-value_high,name"},
        {"category": "market"},
        {"q": "metrics"},
        {"sort": "-id"},
        {"q": "metrics", "sort": "id"},
    ],
    ids=["id order", "sorted", "filtered", "searched", "id descending", "searched in id order"],
)
def test_exports_write_every_value_as_the_json_api_does(
    migrated_engine: Engine, monkeypatch: pytest.MonkeyPatch, params: dict[str, str]
) -> None:
    """The database writes each row (api.metrics.encoding): the NDJSON line is the JSON API's
    item as orjson writes it, the CSV record what the Python writer makes of that item, byte
    for byte, whatever the figures and texts. Chunks of 3 rows mix chunks that PostgreSQL
    writes with chunks that Python writes (figures it does not write as plain decimals)."""
    import orjson
    from fastapi.testclient import TestClient

    from api.main import create_app

    load_awkward(migrated_engine)
    monkeypatch.setattr(exports, "CHUNK_ROWS", 3)
    with TestClient(create_app(Settings(response_cache_bytes=0), migrated_engine)) as client:
        items = client.get("/v1/metrics", params={**params, "limit": 500}).json()["items"]
        assert sum(item["id"].startswith("awkward-") for item in items) >= (
            0 if "q" in params else 6
        )
        ndjson = client.get("/v1/metrics.ndjson", params=params).content
        assert ndjson == b"".join(orjson.dumps(item) + b"\n" for item in items)
        names = exports.columns(MetricPublic)
        csv_body = client.get("/v1/metrics.csv", params=params).content
        assert csv_body == exports._csv_header(names) + exports._csv_chunk(items)
        if not params:
            table = {row["id"]: row for row in csv.DictReader(io.StringIO(csv_body.decode()))}
            assert [table[f"awkward-{n:02d}"]["value"] for n in (0, 1, 2, 3, 8)] == [
                "30", "0.1", "", "0.00001", "0",  # as JSON writes it (orjson), not repr's 1e-05
            ]  # fmt: skip
            assert table["awkward-04"]["value_low"] == "5e-324"
            assert table["awkward-00"]["name"] == "'=SUM(A1:A2)"
            assert table["awkward-02"]["value_low"] == "-3.75"  # a number: no quote mark
            assert table["awkward-02"]["name"] == "'-negative range"
            assert table["awkward-00"]["subjects"] == '\'=formula;comma, inside;quote "q"'
            assert table["awkward-03"]["description"] == "'\rstarts with a carriage return"
            lines = {json.loads(line)["id"]: line for line in ndjson.decode().splitlines()}
            assert '"value":0.00001,' in lines["awkward-03"]
            assert '"value":30,' in lines["awkward-00"]


@pytest.mark.parametrize("params", [{}, {"sort": "-id"}], ids=["ascending", "descending"])
def test_an_export_whose_reads_come_out_even_ends_with_an_empty_read(
    fresh_seeded_engine: Engine, monkeypatch: pytest.MonkeyPatch, params: dict[str, str]
) -> None:
    """In id order the database joins a read's lines into one (api.metrics.encoding; SQLite
    only in ascending order); a read as long as the rows left cannot tell that none follow,
    and the next one finds none: the export ends there, every metric written once."""
    import orjson
    from fastapi.testclient import TestClient

    from api.main import create_app
    from api.metrics import encoding

    with TestClient(create_app(Settings(response_cache_bytes=0), fresh_seeded_engine)) as client:
        items = client.get("/v1/metrics", params={**params, "limit": 500}).json()["items"]
        assert len(items) > 1
        monkeypatch.setattr(encoding, "_JOINED_ROWS", 1)
        monkeypatch.setattr(exports, "CHUNK_ROWS", len(items))
        joined = encoding._joined_chunk
        reads: list[exports.Chunk | None] = []

        def counted(*args: Any, **kwargs: Any) -> exports.Chunk | None:
            reads.append(joined(*args, **kwargs))
            return reads[-1]

        monkeypatch.setattr(encoding, "_joined_chunk", counted)
        ndjson = client.get("/v1/metrics.ndjson", params=params).content
        assert ndjson == b"".join(orjson.dumps(item) + b"\n" for item in items)
        csv_body = client.get("/v1/metrics.csv", params=params).content
        names = exports.columns(MetricPublic)
        assert csv_body == exports._csv_header(names) + exports._csv_chunk(items)
        if params and fresh_seeded_engine.dialect.name == "sqlite":
            assert reads == []  # SQLite reads a sorted export's ids first, row by row
            return
        # Each export: one read of every metric and one that finds none, under way at once
        # (api.exports.KeyedReader), so in either order.
        outcomes = sorted((read.written != b"", read.after is None) for read in reads if read)
        assert outcomes == [(False, True), (False, True), (True, False), (True, False)]
        assert len(reads) == 4


@pytest.mark.parametrize(
    "split",
    ["exact", "early", "late", "always the last", "a stranger", "repeats"],
)
def test_reads_started_ahead_give_every_metric_once_whatever_the_split_says(
    seeded_engine: Engine, monkeypatch: pytest.MonkeyPatch, split: str
) -> None:
    """The whole collection in id order is read several chunks at once, each started where
    `split` says the one before it ends; a read that ends elsewhere drops the reads after it
    and starts them again from its end: the bytes are those of a read one chunk at a time."""
    from api.main import create_app
    from api.metrics import encoding

    with TestClient(create_app(Settings(response_cache_bytes=0), seeded_engine)) as client:
        whole = {fmt: client.get(f"/v1/metrics.{fmt}").content for fmt in ("ndjson", "csv")}
        monkeypatch.setattr(exports, "CHUNK_ROWS", 4)
        exact = encoding.split_chunk
        calls: list[Any] = []

        def told(session: Any, *, after: Any, limit: int, **kwargs: Any) -> list[Any] | None:
            calls.append(after)
            right = exact(session, after=after, limit=limit, **kwargs)
            if split == "exact" or right is None:
                return right
            shorter = exact(session, after=after, limit=limit - 1, **kwargs)
            longer = exact(session, after=after, limit=limit + 1, **kwargs)
            return {
                "early": shorter,
                "late": longer,
                "always the last": None,
                "a stranger": ["zz-not-a-metric"],
                "repeats": after,
            }[split]

        monkeypatch.setattr(encoding, "split_chunk", told)
        for fmt, expected in whole.items():
            assert client.get(f"/v1/metrics.{fmt}").content == expected
        assert calls  # the exports were read ahead
        filtered = client.get("/v1/metrics.ndjson", params={"category": "market"})
        assert filtered.status_code == 200 and filtered.content.count(b"\n") == sum(
            1 for line in whole["ndjson"].splitlines() if b'"category":"market"' in line
        )


def test_exports_at_an_earlier_version_read_the_history(
    fresh_seeded_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`as_of` exports are written by the database from the history (the same query, its
    tables replaced by their rows at that version) and equal the JSON collection at as_of."""
    import orjson
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.helpers import make_keys

    keys = make_keys(fresh_seeded_engine)
    monkeypatch.setattr(exports, "CHUNK_ROWS", 5)
    with TestClient(create_app(Settings(response_cache_bytes=0), fresh_seeded_engine)) as client:
        before = client.get("/v1/changes", params={"limit": 1, "offset": 66}).json()["items"]
        moment = before[0]["at"]
        written = client.patch(
            "/v1/metrics/car-t-dose-manufacturing-cost",
            json={"name": "=Renamed, later", "subjects": ["new"]},
            headers={"Authorization": f"Bearer {keys['alice']}", "If-Match": "*"},
        )
        assert written.status_code == 200
        params = {"as_of": moment}
        items = client.get("/v1/metrics", params={**params, "limit": 500}).json()["items"]
        assert "=Renamed, later" not in {item["name"] for item in items}
        ndjson = client.get("/v1/metrics.ndjson", params=params).content
        assert ndjson == b"".join(orjson.dumps(item) + b"\n" for item in items)
        csv_body = client.get("/v1/metrics.csv", params=params).content
        names = exports.columns(MetricPublic)
        assert csv_body == exports._csv_header(names) + exports._csv_chunk(items)
        now = client.get("/v1/metrics.csv").text
        assert "'=Renamed, later" in now and "'=Renamed, later" not in csv_body.decode()


def test_the_change_feed_exports_in_chunks_at_one_version(
    fresh_seeded_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The change feed streams in chunks (bounded memory for a long history): its lines are
    the feed's items, and a revision written during the export is not in it."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.helpers import make_keys

    keys = make_keys(fresh_seeded_engine)
    monkeypatch.setattr(exports, "CHUNK_ROWS", 10)
    settings = Settings(response_cache_bytes=0)
    with (
        TestClient(create_app(settings, fresh_seeded_engine)) as client,
        TestClient(create_app(settings, fresh_seeded_engine)) as other,
    ):
        feed = client.get("/v1/changes", params={"limit": 500}).json()["items"]
        read_chunk, chunks = exports._read_chunk, []

        def write_after_the_first_chunk(*args: object) -> exports.Chunk:
            chunk = read_chunk(*args)  # type: ignore[arg-type]
            chunks.append(chunk)
            if len(chunks) == 1:
                written = other.patch(
                    "/v1/metrics/car-t-dose-manufacturing-cost",
                    json={"name": "Renamed while the feed was exported"},
                    headers={"Authorization": f"Bearer {keys['alice']}", "If-Match": "*"},
                )
                assert written.status_code == 200
            return chunk

        monkeypatch.setattr(exports, "_read_chunk", write_after_the_first_chunk)
        lines = client.get("/v1/changes.ndjson").text.splitlines()
        assert len(chunks) == 7 and [json.loads(line) for line in lines] == feed
        table = list(csv.DictReader(io.StringIO(client.get("/v1/changes.csv").text)))
        assert len(table) == len(feed) + 1  # now with the revision written meanwhile
        assert [row["id"] for row in table[:-1]] == [str(item["id"]) for item in feed]


def test_a_joined_read_ends_at_the_id_its_last_record_begins_with() -> None:
    """The next read starts after the last id of a joined one, found in its bytes: a CSV
    record's quoted cells may hold line breaks, commas and quotes of their own."""
    from api.exports import Format
    from api.metrics.encoding import _last_id

    records = [["a-1", "x", 'q"\r\nb-2,y"', "z"], ["c-3", 'p\r\nd-4,"\r\nq', "\r\n"]]
    assert (
        _last_id(exports._csv_chunk([dict(enumerate(row)) for row in records]), Format.csv) == "c-3"
    )
    assert _last_id(exports._csv_chunk([{"id": "a-1", "x": "y"}]), Format.csv) == "a-1"
    lines = [{"id": "a-1", "n": "x\ny"}, {"id": "b-2", "n": '{"id":"c-3"}\n'}]
    assert _last_id(exports._ndjson_chunk(lines), Format.ndjson) == "b-2"
