"""Crash loop: SIGKILL the server during writes, restart it, and check every write it answered.

    .venv/bin/python bench/crashloop.py --cycles 50                      # a fresh SQLite file
    .venv/bin/python bench/crashloop.py --cycles 50 --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/crashloop.py --cycles 50 --database-url URL   # a database you made

`--postgres` (or CRASHLOOP_POSTGRES_URL) names a server database to connect to; a fresh
database is created beside it and dropped afterwards. The database is migrated, seeded and
given a write key once, with the real `cdmo-metrics` commands. Each cycle then starts
`cdmo-metrics serve`, waits for /readyz, checks over HTTP what the previous cycle wrote, runs
concurrent writers (POSTs of new metrics with an Idempotency-Key; PATCHes with If-Match, each
writer changing its own metric) and SIGKILLs the server 50-400 ms after a POST and a PATCH of
the cycle were acknowledged. With the server dead it checks the database itself: integrity
and foreign keys, each record's version against its revisions, the revision counter, the
search index and the idempotency records.

A write answered 2xx must be there exactly as answered (lost otherwise); one that got no answer
must be wholly there or wholly absent (half-written otherwise); one refused with an error must
be absent. The exit status is 1 on any of these. Figures: docs/faults.md.
"""

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlmodel import Session  # noqa: E402

from api.db import make_engine  # noqa: E402
from api.records import store  # noqa: E402
from api.records.registry import KINDS  # noqa: E402

KEY_NAME = "crashloop"
METRIC = KINDS["metric"]
KILL_AFTER = (0.05, 0.4)  # seconds after a POST and a PATCH of the cycle were acknowledged
ACKNOWLEDGED_WITHIN = 20.0  # seconds at most to wait for those


@dataclass
class Write:
    """One write sent by the loop and what became of it."""

    method: str  # POST or PATCH
    record_id: str
    body: dict[str, Any]  # the POST body, or the merge patch
    cycle: int
    # acknowledged (2xx) | in_flight (sent, no answer) | refused (an error status) | not_sent
    outcome: str = "not_sent"
    status: int | None = None
    answer: dict[str, Any] | None = None  # the 2xx body


@dataclass
class Target:
    """The metric one writer PATCHes, as last acknowledged, and the PATCH still unanswered."""

    record_id: str
    state: dict[str, Any] = field(default_factory=dict)
    version: int = 0
    etag: str = ""
    pending: Write | None = None
    acknowledged_names: set[str] = field(default_factory=set)


@dataclass
class Summary:
    """The loop's figures; `ok` when nothing was lost, half-written or otherwise wrong."""

    cycles: int = 0
    acknowledged_posts: int = 0
    acknowledged_patches: int = 0
    in_flight: int = 0
    in_flight_applied: int = 0
    in_flight_absent: int = 0
    refused: int = 0
    not_sent: int = 0
    kills_during_writes: int = 0
    lost: list[str] = field(default_factory=list)
    half_written: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # phantoms, damage, unexpected answers
    elapsed: float = 0.0

    @property
    def acknowledged(self) -> int:
        return self.acknowledged_posts + self.acknowledged_patches

    @property
    def ok(self) -> bool:
        return not (self.lost or self.half_written or self.other)

    def lines(self) -> list[str]:
        return [
            f"cycles                 {self.cycles} (SIGKILL with writes in flight: "
            f"{self.kills_during_writes})",
            f"acknowledged writes    {self.acknowledged} ({self.acknowledged_posts} POST, "
            f"{self.acknowledged_patches} PATCH)",
            f"in flight at the kill  {self.in_flight} ({self.in_flight_applied} applied whole, "
            f"{self.in_flight_absent} absent whole)",
            f"refused / not sent     {self.refused} / {self.not_sent}",
            f"lost writes            {len(self.lost)}",
            f"half-written           {len(self.half_written)}",
            f"other problems         {len(self.other)}",
            f"elapsed                {self.elapsed:.1f} s",
            *(f"LOST  {problem}" for problem in self.lost[:20]),
            *(f"HALF  {problem}" for problem in self.half_written[:20]),
            *(f"OTHER {problem}" for problem in self.other[:20]),
        ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _public_to_record(body: dict[str, Any]) -> dict[str, Any]:
    """The record shape (as revisions store it) of a metric's public representation."""
    return {key: value for key, value in body.items() if key != "horizon_passed"}


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cdmo-metrics {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


class Loop:
    """The database, the key, the writers' targets and everything written so far."""

    def __init__(self, url: str, *, writers: int, seed: int, log: Callable[[str], None]) -> None:
        self.url = url
        self.writers = writers
        self.rng = random.Random(seed)
        self.seed = seed
        self.log = log
        self.summary = Summary()
        self.writes: list[Write] = []
        self.unchecked: list[Write] = []  # POSTs of the last cycle, checked after the restart
        self.server_log = Path(tempfile.mkstemp(prefix="crashloop-server-", suffix=".log")[1])
        self.env = {
            **os.environ,
            "DATABASE_URL": url,
            "LOG_LEVEL": "warning",
            "WRITE_RATE_LIMIT": "100000000",
        }
        _cli(self.env, "migrate")
        _cli(self.env, "seed")
        created = _cli(self.env, "keys", "create", "--name", KEY_NAME, "--scope", "write")
        self.key = created.strip().splitlines()[-1]
        engine = make_engine(url)
        try:
            with Session(engine) as session:
                ids = list(
                    session.execute(
                        text("SELECT id FROM metric WHERE baseline_id IS NULL ORDER BY id")
                    ).scalars()
                )
                template = store.read(session, METRIC, ids[0])
        finally:
            engine.dispose()
        assert template is not None and len(ids) > writers
        self.template = template.data
        self.targets = [Target(record_id) for record_id in ids[1 : writers + 1]]

    # --- one cycle ---------------------------------------------------------------------------

    def start_server(self) -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        with self.server_log.open("ab") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        return server, url
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            raise RuntimeError(f"the server did not become ready; see {self.server_log}")
        except BaseException:
            server.kill()
            server.wait()
            raise

    def cycle(self, number: int) -> None:
        server, url = self.start_server()
        stop = threading.Event()
        written: list[Write] = []
        threads = [
            threading.Thread(target=self.writer, args=(url, number, w, stop, written))
            for w in range(self.writers)
        ]
        delay = self.rng.uniform(*KILL_AFTER)
        try:
            applied, absent = self.check_previous(url)
            for thread in threads:
                thread.start()
            self.await_acknowledged(written, threads)
            time.sleep(delay)
        finally:
            server.send_signal(signal.SIGKILL)
            server.wait()
            stop.set()
        for thread in threads:
            thread.join(timeout=30)
        self.writes += written
        self.unchecked = [write for write in written if write.method == "POST"]
        counts = {outcome: 0 for outcome in ("acknowledged", "in_flight", "refused", "not_sent")}
        for write in written:
            counts[write.outcome] += 1
        s = self.summary
        s.cycles += 1
        s.acknowledged_posts += sum(
            1 for w in written if w.outcome == "acknowledged" and w.method == "POST"
        )
        s.acknowledged_patches += sum(
            1 for w in written if w.outcome == "acknowledged" and w.method == "PATCH"
        )
        s.in_flight += counts["in_flight"]
        s.refused += counts["refused"]
        s.not_sent += counts["not_sent"]
        s.kills_during_writes += counts["in_flight"] > 0
        damage = self.check_database()
        self.log(
            f"cycle {number:3}: killed after {delay * 1000:3.0f} ms; "
            f"{counts['acknowledged']:3} acknowledged, {counts['in_flight']} in flight, "
            f"{counts['refused']} refused; previous in-flight: {applied} applied, "
            f"{absent} absent; database {'ok' if not damage else 'DAMAGED'}; "
            f"problems so far {len(s.lost) + len(s.half_written) + len(s.other)}"
        )

    @staticmethod
    def await_acknowledged(written: list[Write], threads: list[threading.Thread]) -> None:
        """Wait (up to ACKNOWLEDGED_WITHIN) until a POST and a PATCH of this cycle have been
        acknowledged, so that each kill comes while writes are under way on a server that has
        already answered both kinds, however slow a loaded machine makes its start."""
        deadline = time.monotonic() + ACKNOWLEDGED_WITHIN
        while time.monotonic() < deadline and any(thread.is_alive() for thread in threads):
            done = {w.method for w in list(written) if w.outcome == "acknowledged"}
            if done >= {"POST", "PATCH"}:
                return
            time.sleep(0.01)

    def writer(
        self, url: str, cycle: int, number: int, stop: threading.Event, written: list[Write]
    ) -> None:
        """Write until the server dies: new metrics and PATCHes of this writer's target."""
        rng = random.Random(f"{self.seed}-{cycle}-{number}")
        target = self.targets[number]
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=url, headers=headers, timeout=20) as client:
            for n in range(1_000_000):
                if stop.is_set():
                    return
                label = f"c{cycle} w{number} n{n}"
                if rng.random() < 0.5:
                    record_id = f"crash-c{cycle}-w{number}-n{n}"
                    body = self.template | {
                        "id": record_id,
                        "name": f"Crash loop metric {label}",
                        "description": f"Written by the crash loop ({label}).",
                        "subjects": ["crash loop", f"cycle {cycle}", f"writer {number}"],
                    }
                    write = Write("POST", record_id, body, cycle)
                    request = client.build_request(
                        "POST", "/v1/metrics", json=body, headers={"Idempotency-Key": record_id}
                    )
                else:
                    body = {
                        "name": f"Crash loop patch {label}",
                        "description": f"Patched by the crash loop ({label}).",
                        "subjects": ["crash loop", f"patch {n}"],
                    }
                    write = Write("PATCH", target.record_id, body, cycle)
                    request = client.build_request(
                        "PATCH",
                        f"/v1/metrics/{target.record_id}",
                        json=body,
                        headers={"If-Match": target.etag},
                    )
                written.append(write)
                try:
                    response = client.send(request)
                except httpx.ConnectError:
                    return  # never sent: the server is gone
                except httpx.TransportError:
                    write.outcome = "in_flight"
                    if write.method == "PATCH":
                        target.pending = write
                    return
                write.status = response.status_code
                if not response.is_success:
                    write.outcome = "refused"
                    if response.status_code not in (429, 503):
                        self.summary.other.append(
                            f"{write.method} {write.record_id} answered {response.status_code}: "
                            f"{response.text[:300]}"
                        )
                        return
                    continue
                write.outcome = "acknowledged"
                write.answer = response.json()
                if write.method == "PATCH":
                    target.state = write.answer
                    target.version += 1
                    target.etag = response.headers["etag"]
                    target.acknowledged_names.add(body["name"])
        return

    # --- checks over HTTP, after a restart ---------------------------------------------------

    def check_previous(self, url: str) -> tuple[int, int]:
        """Check the last cycle's writes against the restarted server; (applied, absent) of
        those that were in flight."""
        applied = absent = 0
        with httpx.Client(base_url=url, timeout=20) as client:
            for write in self.unchecked:
                present = self.check_post(client, write)
                if write.outcome == "in_flight":
                    applied += present
                    absent += not present
            for target in self.targets:
                patched = self.check_target(client, target)
                if patched is not None:
                    applied += patched
                    absent += not patched
        self.unchecked = []
        self.summary.in_flight_applied += applied
        self.summary.in_flight_absent += absent
        return applied, absent

    def check_post(self, client: httpx.Client, write: Write) -> bool:
        """Whether the POSTed metric is there; records a problem if that is wrong."""
        s, name = self.summary, f"POST {write.record_id} (cycle {write.cycle}, {write.outcome})"
        got = client.get(f"/v1/metrics/{write.record_id}")
        history = client.get(f"/v1/metrics/{write.record_id}/revisions")
        if got.status_code == 404:
            if write.outcome == "acknowledged":
                s.lost.append(f"{name}: gone")
            elif history.status_code != 404:
                s.half_written.append(f"{name}: no record but a revision")
            return False
        if got.status_code != 200:
            s.other.append(f"{name}: GET answered {got.status_code}")
            return False
        body = got.json()
        if write.outcome == "acknowledged" and body != write.answer:
            s.lost.append(f"{name}: stored {body} differs from the answer {write.answer}")
        elif write.outcome == "in_flight" and _public_to_record(body) != write.body:
            s.half_written.append(f"{name}: stored {body} is not what was sent")
        elif write.outcome in ("refused", "not_sent"):
            s.other.append(f"{name}: stored though refused ({write.status}) or never sent")
        if history.status_code != 200:
            s.half_written.append(f"{name}: a record without revisions ({history.status_code})")
            return True
        page = history.json()
        newest = page["items"][0]
        if page["total"] != 1 or newest["version"] != 1 or newest["action"] != "create":
            s.half_written.append(f"{name}: revisions {page['items']} for one create")
        elif newest["data"] != _public_to_record(body):
            s.half_written.append(f"{name}: revision {newest['data']} differs from the record")
        return True

    def check_target(self, client: httpx.Client, target: Target) -> bool | None:
        """Check a PATCHed metric and take its ETag; whether its in-flight PATCH (if any) is
        there."""
        s, name = self.summary, f"PATCHed {target.record_id}"
        got = client.get(f"/v1/metrics/{target.record_id}")
        history = client.get(f"/v1/metrics/{target.record_id}/revisions", params={"limit": 1})
        if got.status_code != 200 or history.status_code != 200:
            s.lost.append(f"{name}: GET answered {got.status_code}, {history.status_code}")
            return None
        body, page = got.json(), history.json()
        newest = page["items"][0]
        target.etag = got.headers["etag"]
        if not target.state:  # the first cycle: take the seeded record as it is
            target.state, target.version = body, newest["version"]
        pending, target.pending = target.pending, None
        applied: bool | None = None
        if body == target.state:
            applied = False if pending else None
        elif pending is not None and body == target.state | pending.body:
            applied = True
            target.state, target.version = body, target.version + 1
        elif body["name"] != target.state["name"] and body["name"] in target.acknowledged_names:
            s.lost.append(f"{name}: stored an older {body}, acknowledged {target.state}")
        else:
            s.half_written.append(f"{name}: stored {body}, acknowledged {target.state}")
        if newest["version"] != target.version or page["total"] != target.version:
            s.half_written.append(
                f"{name}: version {target.version} but {page['total']} revisions, "
                f"the newest {newest['version']}"
            )
        if newest["data"] != _public_to_record(body) or newest["action"] == "delete":
            s.half_written.append(f"{name}: newest revision {newest} differs from the record")
        return applied

    def check_everything(self, url: str) -> None:
        """After the last cycle: every acknowledged POST, ever, is still there as answered."""
        with httpx.Client(base_url=url, timeout=20) as client:
            for write in self.writes:
                if write.method == "POST" and write.outcome == "acknowledged":
                    got = client.get(f"/v1/metrics/{write.record_id}")
                    if got.status_code != 200 or got.json() != write.answer:
                        self.summary.lost.append(
                            f"POST {write.record_id} (cycle {write.cycle}): "
                            f"{got.status_code} at the end"
                        )

    # --- checks of the database, with the server dead ----------------------------------------

    def check_database(self) -> list[str]:
        """Integrity, foreign keys, versions against revisions, the revision counter, the
        search index and idempotency records; the problems found (also in the summary)."""
        engine = make_engine(self.url)
        try:
            problems = _database_problems(engine, KEY_NAME)
        finally:
            engine.dispose()
        self.summary.half_written += problems
        return problems


def _database_problems(engine: Engine, key_name: str) -> list[str]:
    problems: list[str] = []
    sqlite = engine.dialect.name == "sqlite"
    quote = engine.dialect.identifier_preparer.quote
    with engine.connect() as connection:
        if sqlite:
            result = connection.exec_driver_sql("PRAGMA integrity_check").scalars().all()
            if result != ["ok"]:
                problems.append(f"integrity_check: {result[:5]}")
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                problems.append(f"foreign_key_check: {broken[:5]}")
        inspector = inspect(connection)
        for table in inspector.get_table_names():
            for key in inspector.get_foreign_keys(table):
                pairs = list(zip(key["constrained_columns"], key["referred_columns"], strict=True))
                joined = " AND ".join(f"p.{quote(b)} = c.{quote(a)}" for a, b in pairs)
                present = " AND ".join(f"c.{quote(a)} IS NOT NULL" for a, _ in pairs)
                orphans = connection.exec_driver_sql(
                    f"SELECT count(*) FROM {quote(table)} c WHERE {present} AND NOT EXISTS "
                    f"(SELECT 1 FROM {quote(key['referred_table'])} p WHERE {joined})"
                ).scalar_one()
                if orphans:
                    problems.append(
                        f"{orphans} row(s) of {table} refer to no {key['referred_table']}"
                    )
    with Session(engine) as session:
        problems += _history_problems(session)
        problems += _index_problems(session, sqlite, key_name)
    return problems


def _history_problems(session: Session) -> list[str]:
    """Each record's version is its count of revisions, 1..n, the newest of them being the
    record; every revision raised the dataset revision."""
    problems = []
    newest = {
        (kind, record_id): (version, action, data)
        for kind, record_id, version, action, data in session.execute(
            text(
                "SELECT kind, record_id, version, action, data FROM revision WHERE id IN "
                "(SELECT max(id) FROM revision GROUP BY kind, record_id)"
            )
        )
    }
    spans = {
        (kind, record_id): (count, distinct, low, high)
        for kind, record_id, count, distinct, low, high in session.execute(
            text(
                "SELECT kind, record_id, count(*), count(DISTINCT version), min(version), "
                "max(version) FROM revision GROUP BY kind, record_id"
            )
        )
    }
    stored: set[tuple[str, str]] = set()
    for kind in KINDS.values():
        for record_id, version in session.execute(
            text(f"SELECT id, version FROM {kind.table.name}")
        ):
            stored.add((kind.name, record_id))
            span = spans.get((kind.name, record_id))
            if span != (version, version, 1, version):
                problems.append(f"{kind.name} {record_id}: version {version}, revisions {span}")
                continue
            last_version, action, data = newest[(kind.name, record_id)]
            if isinstance(data, str):  # SQLite hands JSON back as text through text()
                data = json.loads(data)
            record = store.read(session, kind, record_id)
            if (
                record is None
                or record.data != data
                or last_version != version
                or action == "delete"
            ):
                problems.append(f"{kind.name} {record_id}: newest revision is not the record")
    for (kind_name, record_id), (_version, action, _data) in newest.items():
        if (kind_name, record_id) not in stored and action != "delete":
            problems.append(f"{kind_name} {record_id}: revisions ({action}) but no record")
    counter = session.execute(text("SELECT version FROM dataset_state WHERE id = 1")).scalar()
    distinct, newest_version = session.execute(
        text("SELECT count(DISTINCT dataset_version), max(dataset_version) FROM revision")
    ).one()
    if not counter == distinct == newest_version:
        problems.append(
            f"dataset version {counter} but {distinct} versions in the revisions, "
            f"the newest {newest_version}"
        )
    for kind in KINDS.values():
        table = kind.table.name
        differing = session.execute(
            text(
                f"SELECT count(*) FROM {table} t FULL OUTER JOIN "
                f"(SELECT id, version FROM {table}_history WHERE valid_to IS NULL) h "
                "ON h.id = t.id WHERE h.id IS NULL OR t.id IS NULL OR h.version <> t.version"
            )
        ).scalar_one()
        if differing:
            problems.append(f"{differing} {kind.plural} differ from their current history row")
    return problems


def _index_problems(session: Session, sqlite: bool, key_name: str) -> list[str]:
    """The search index holds each metric once, as it stands; each loop POST has its
    idempotency record and each idempotency record its metric."""
    problems = []
    metrics = dict(session.execute(text("SELECT id, name FROM metric")).all())
    if sqlite:
        session.execute(text("INSERT INTO metric_fts(metric_fts) VALUES ('integrity-check')"))
        session.rollback()
        indexed = session.execute(
            text(
                "SELECT h.id, f.c0 FROM metric_fts f JOIN metric_history h "
                "ON h.row_id = f.rowid WHERE h.valid_to IS NULL"
            )
        ).all()
        if sorted(indexed) != sorted(metrics.items()):
            problems.append("the search index differs from the metrics")
    else:
        indexed_ids = (
            session.execute(
                text(
                    "SELECT h.id FROM metric_fts f JOIN metric_history h "
                    "ON h.row_id = f.row_id WHERE h.valid_to IS NULL"
                )
            )
            .scalars()
            .all()
        )
        stale = session.execute(
            text(
                "SELECT count(*) FROM metric_fts f JOIN metric_history h ON h.row_id = f.row_id "
                "WHERE h.valid_to IS NULL AND h.id LIKE 'crash-%' "
                "AND NOT tsvector_to_array(cdmo_search_vector(h.name))"
                " <@ tsvector_to_array(f.document)"
            )
        ).scalar_one()
        if sorted(indexed_ids) != sorted(metrics) or stale:
            problems.append(f"the search index differs from the metrics ({stale} stale)")
    keys = set(
        session.execute(
            text("SELECT idempotency_key FROM idempotent_response WHERE key_name = :name"),
            {"name": key_name},
        ).scalars()
    )
    posted = {record_id for record_id in metrics if record_id.startswith("crash-")}
    if keys != posted:
        problems.append(
            f"idempotency records without their metric {sorted(keys - posted)[:5]}, "
            f"metrics without theirs {sorted(posted - keys)[:5]}"
        )
    return problems


def run(
    url: str,
    *,
    cycles: int,
    writers: int = 4,
    seed: int | None = None,
    log: Callable[[str], None] = print,
) -> Summary:
    """Migrate and seed the database at `url`, run `cycles` crash cycles, restart once more and
    check everything; the figures."""
    started = time.monotonic()
    seed = random.randrange(1_000_000) if seed is None else seed
    log(f"crash loop on {make_url(url).get_backend_name()}: {cycles} cycles, {writers} writers, "
        f"seed {seed}")  # fmt: skip
    loop = Loop(url, writers=writers, seed=seed, log=log)
    for number in range(cycles):
        loop.cycle(number)
    server, server_url = loop.start_server()
    try:
        applied, absent = loop.check_previous(server_url)
        loop.check_everything(server_url)
    finally:
        server.terminate()
        server.wait(timeout=30)
    loop.check_database()
    log(f"after the last restart: previous in-flight {applied} applied, {absent} absent; "
        f"every acknowledged write checked")  # fmt: skip
    loop.summary.elapsed = time.monotonic() - started
    loop.server_log.unlink(missing_ok=True)
    return loop.summary


def _postgres_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    """A fresh database on the server of `admin_url`, and how to drop it."""
    name = f"cdmo_crash_{uuid.uuid4().hex[:10]}"
    admin = make_engine(admin_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--writers", type=int, default=4, help="concurrent writers (default 4)")
    parser.add_argument("--seed", type=int, help="random seed (default: a random one, printed)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url", help="an empty database to use (and keep)")
    where.add_argument(
        "--postgres",
        default=os.environ.get("CRASHLOOP_POSTGRES_URL"),
        help="a PostgreSQL URL; a fresh database is made on its server and dropped after",
    )
    args = parser.parse_args(argv)
    # A stopped loop still kills its server and drops its database (the `finally`s run).
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(143))
    cleanup: Callable[[], None] = lambda: None  # noqa: E731
    if args.database_url:
        url = args.database_url
    elif args.postgres:
        url, cleanup = _postgres_database(args.postgres)
    else:
        folder = tempfile.TemporaryDirectory(prefix="crashloop-")
        url, cleanup = f"sqlite:///{folder.name}/crashloop.db", folder.cleanup
    try:
        summary = run(url, cycles=args.cycles, writers=args.writers, seed=args.seed)
    finally:
        cleanup()
    print()
    for line in summary.lines():
        print(line)
    print("PASS: every acknowledged write survived" if summary.ok else "FAIL")
    return 0 if summary.ok else 1


if __name__ == "__main__":
    sys.exit(main())
