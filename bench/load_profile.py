"""Where a load's time goes: `cdmo-metrics import` of the SYNTHETIC dataset run in this process,
with a timer around each step, the statements' own times and the CPU of client and server.

    python bench/load_profile.py --size 10000 --database sqlite
    python bench/load_profile.py --size 10000 --database postgresql --profile   # and cProfile

For the size given it writes bench/synthetic.py's dataset twice (round 2 changes every metric's
name and description, as bench/history.py does), migrates a fresh database (`cdmo-metrics
migrate` in a subprocess), then runs `cdmo-metrics import FOLDER` for each round through
`api.cli.main` in this process. It prints, per round: the time the command took (without the
process start-up, which bench/startup.py measures), the CPU this process used, on PostgreSQL
the CPU of the server processes serving its connections (read from /proc when each connection
is given back: the server must run on this machine), and every step and statement that took
10 ms or more, longest first, with (PostgreSQL) the CPU its connection's server process used
meanwhile (steps run on the search documents' own connection, `ahead`, show none). Steps
overlap (a step's time includes the steps it calls).

Timing figures on a busy machine vary by ±30% or more; the CPU figures much less. The database
(a temporary SQLite file, or a PostgreSQL database created beside --postgres-url's) is removed
afterwards. A measurement, not a test: no target is checked.
"""

import argparse
import cProfile
import functools
import io
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.pool import Pool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api import cli, search  # noqa: E402
from api.config import get_settings  # noqa: E402
from api.metrics import kind as metric_kind  # noqa: E402
from api.metrics import tally  # noqa: E402
from api.records import loading, store  # noqa: E402
from bench import synthetic  # noqa: E402
from bench.history import fresh_database  # noqa: E402

METRICS_PER_SOURCE = 500
TIMES: dict[str, float] = defaultdict(float)
SERVER: dict[str, float] = defaultdict(float)  # step or statement -> its backend's CPU seconds
SERVER_CPU: dict[int, float] = {}  # backend pid -> its CPU seconds when last given back
TICKS = os.sysconf("SC_CLK_TCK")
CHECKED_OUT = threading.local()  # .pid: the backend of the connection this thread holds


def backend_cpu() -> float | None:
    """CPU seconds of the PostgreSQL backend serving this thread's connection, if any."""
    pid = getattr(CHECKED_OUT, "pid", None)
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def timed(owner: Any, name: str, key: Callable[..., str] | None = None) -> None:
    """Add the time of each call of `owner.name` to TIMES (per `key` of its arguments)."""
    original = getattr(owner, name, None)
    if original is None:  # not in this checkout
        return

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started, server = time.perf_counter(), backend_cpu()
        try:
            return original(*args, **kwargs)
        finally:
            label = name + (":" + key(*args, **kwargs) if key else "")
            TIMES[label] += time.perf_counter() - started
            ended = backend_cpu()
            if server is not None and ended is not None:
                SERVER[label] += ended - server

    setattr(owner, name, wrapper)


def instrument() -> None:
    timed(cli, "read_files")
    timed(cli, "load_datasets")
    timed(cli, "tidy")
    timed(loading, "_check")
    timed(loading, "_write")
    timed(loading, "_last_writes")
    timed(store, "read_many")
    timed(store, "apply", key=lambda _session, kind, *_a, **_k: kind.name)
    timed(store, "bulk_insert", key=lambda _session, table, *_a, **_k: table.name)
    timed(store, "bulk_update", key=lambda _session, table, *_a, **_k: table.name)
    timed(store, "_write_children")
    timed(store, "_next_versions")
    timed(tally, "count_changes")
    timed(search, "ahead", key=lambda _engine, kind, *_a, **_k: kind)
    timed(search, "_copy_documents")
    timed(metric_kind, "_index")

    @event.listens_for(Engine, "before_cursor_execute")
    def _started(connection: Any, *_args: Any) -> None:
        connection.info["started"] = time.perf_counter()
        connection.info["server"] = backend_cpu()

    @event.listens_for(Engine, "after_cursor_execute")
    def _ended(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        label = re.sub(r"\(%\(.*|\(\?, .*", "(...", re.sub(r"\s+", " ", statement))[:100]
        TIMES["SQL " + label] += time.perf_counter() - connection.info["started"]
        server, ended = connection.info["server"], backend_cpu()
        if server is not None and ended is not None:
            SERVER["SQL " + label] += ended - server

    @event.listens_for(Pool, "connect")
    def _connected(dbapi_connection: Any, record: Any) -> None:
        if "psycopg" in type(dbapi_connection).__module__:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                record.info["pid"] = cursor.fetchone()[0]
            dbapi_connection.rollback()

    @event.listens_for(Pool, "checkout")
    def _taken(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        CHECKED_OUT.pid = record.info.get("pid")

    @event.listens_for(Pool, "checkin")
    def _given_back(_dbapi_connection: Any, record: Any) -> None:
        pid = record.info.get("pid") if record is not None else None
        CHECKED_OUT.pid = None
        if pid:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return
            SERVER_CPU[pid] = (int(fields[11]) + int(fields[12])) / TICKS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=10_000, help="metrics (default 10000)")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top 40")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="cdmo-load-profile-"))
    try:
        sources = max(1, -(-args.size // METRICS_PER_SOURCE))
        for revision in (1, 2):
            synthetic.write(work / f"round-{revision}", args.size, sources, revision=revision)
        with fresh_database(args.database, work, args.postgres_url, args.size) as url:
            env = {**os.environ, "DATABASE_URL": url, "TMPDIR": str(work)}
            subprocess.run(
                [sys.executable, "-m", "api.cli", "migrate"], cwd=ROOT, env=env, check=True,
                capture_output=True,
            )  # fmt: skip
            os.environ["DATABASE_URL"] = url
            get_settings.cache_clear()
            instrument()
            for revision in (1, 2):
                TIMES.clear()
                SERVER.clear()
                SERVER_CPU.clear()
                profile = cProfile.Profile() if args.profile else None
                folder = str(work / f"round-{revision}")
                started, cpu = time.perf_counter(), time.process_time()
                if profile:
                    profile.enable()
                with redirect_stdout(io.StringIO()):  # the import's report
                    code = cli.main(["import", folder, "--label", f"load profile {revision}"])
                if profile:
                    profile.disable()
                seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                if code != 0:
                    return 1
                server = (
                    f", server CPU {sum(SERVER_CPU.values()):.2f} s"
                    if args.database == "postgresql"
                    else ""
                )
                print(
                    f"== {args.database}, {args.size:,} metrics, round {revision} "
                    f"({'creates' if revision == 1 else 'updates'}): {seconds:.2f} s, "
                    f"CPU {cpu:.2f} s{server}"
                )
                for label, spent in sorted(TIMES.items(), key=lambda item: -item[1]):
                    if spent >= 0.01:
                        used = f"{SERVER[label]:7.2f} s" if label in SERVER else " " * 9
                        print(f"   {spent:7.3f} s {used}  {label}")
                if profile:
                    pstats.Stats(profile).sort_stats("tottime").print_stats(40)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
