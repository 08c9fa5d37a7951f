"""The export engine: an export holds no database connection while it waits on its client,
each client address runs a bounded number at once, and a client that stops reading is dropped.
Exports read in chunks at one dataset version, so a write during an export does not show in it."""

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from api import exports
from api.config import Settings
from api.dataset import read_datasets
from api.db import SQLITE_POOL_SIZE
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
        serving(migrated_engine, EXPORT_SEND_TIMEOUT="3") as (_server, url),
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
