"""Data loading and point-in-time (`as_of`) reads, on SQLite and PostgreSQL, against targets.

    python bench/history.py                                  # 10,000 and 100,000 metrics
    python bench/history.py --sizes 10000 --databases sqlite --requests 100
    python bench/history.py --quick                          # 1,000 metrics, 20 requests

For each database and size it writes bench/synthetic.py's SYNTHETIC dataset twice (revision 2
changes every metric's name and description; texts and evidence are identical), creates a fresh
database (`cdmo-metrics migrate`), and times `cdmo-metrics import` of each round as a
subprocess: N creates, then N updates, so the history holds 2N revisions. Beside each time it
prints the CPU seconds the command used (steadier than the time on a busy machine; a
PostgreSQL server's own work is not in it). At the largest size
it starts `cdmo-metrics serve` once, with the response cache off (RESPONSE_CACHE_BYTES=0), and
times sequential cold reads with httpx, each at an `as_of` moment no other request used:

- a page of 50 with a filter, `/v1/metrics?category=market&limit=50&as_of=...`, and one
  metric, `/v1/metrics/{id}?as_of=...`, at moments between the two imports (every answer is
  checked to be the first round's data);
- the same two at moments inside the second import, where (when revisions carry their own
  times) nearly every moment is a different state of the history;
- the server's resident memory (VmRSS) after 20 and after 300 distinct moments spread over the
  whole history.

It prints one markdown table, case | database | measured | target | met. The exit code is 0
when everything ran, targets met or not (a measurement, not a test), 1 on an error (an import
refused, an HTTP status other than 200, data of the wrong moment), 130 when interrupted. The
temporary folder, the PostgreSQL databases and the server are removed and stopped in every case.
PostgreSQL: a local server reachable through --postgres-url (default BENCH_POSTGRES_URL, else
postgresql+psycopg://postgres@127.0.0.1:5432/postgres); each size gets a database of its own,
created there and dropped at the end.
"""

import argparse
import math
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import synthetic  # noqa: E402
from bench.run import start_api  # noqa: E402

METRICS_PER_SOURCE = 500  # a source text holds at most 100,000 characters
REVISED = " (revision 2)"  # what bench/synthetic.py appends to names in revision 2
PAGE = "/v1/metrics?category=market&limit=50&as_of={moment}"
ITEM = "/v1/metrics/{id}?as_of={moment}"
# (size, database) -> seconds an import of that many metrics may take
IMPORT_TARGETS = {
    (10_000, "sqlite"): 2.0,
    (10_000, "postgresql"): 3.0,
    (100_000, "sqlite"): 20.0,
    (100_000, "postgresql"): 20.0,
}
TARGET_SIZE = 100_000  # the read targets are stated for 100,000 metrics, 200,000 revisions
PAGE_TARGET_MS = 50.0
ITEM_TARGET_MS = 10.0
RSS_GROWTH = 0.10  # "flat": at most 10% more resident memory after the many moments
LABELS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


class BenchError(Exception):
    """Something that makes the figures meaningless: reported, and the exit code is 1."""


@dataclass
class Row:
    case: str
    database: str
    measured: str
    target: str = "-"
    met: str = "-"


@dataclass
class Loaded:
    """A database holding both rounds, and what the benchmark knows about it."""

    url: str
    size: int
    before: datetime  # before the first import started
    first_done: datetime  # after the first import finished
    second_start: datetime  # before the second import started
    after: datetime  # after the second import finished
    market: int = 0
    ids: list[str] = field(default_factory=list)
    revisions: int | None = None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _interrupt(_signal: int, _frame: Any) -> None:
    raise KeyboardInterrupt


# --- data ------------------------------------------------------------------------------------


def generate(work: Path, size: int) -> tuple[Path, Path]:
    """Both rounds of the SYNTHETIC dataset of `size` metrics, each in a folder of its own with
    the source texts beside the dataset files."""
    sources = max(1, math.ceil(size / METRICS_PER_SOURCE))
    folders = []
    for revision in (1, 2):
        folder = work / f"synthetic-{size}" / f"round-{revision}"
        synthetic.write(folder, size, sources, revision=revision)
        folders.append(folder)
    return folders[0], folders[1]


class Importer:
    """`cdmo-metrics import` as this checkout has it: several paths (files or folders) as one
    release, or, on a CLI that takes one FILE, each file in turn in one process."""

    def __init__(self, env: dict[str, str]) -> None:
        help_text = self._cli(["import", "--help"], env).stdout
        usage = " ".join(help_text.split("\n\n")[0].split())
        self.several = "..." in usage
        self.sources_option = "--sources" in help_text

    @staticmethod
    def _cli(arguments: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", *arguments],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    def describe(self) -> str:
        if self.several:
            return "`cdmo-metrics import FOLDER`: each round one release"
        return (
            "this checkout's `cdmo-metrics import` takes one FILE: each round imports its files "
            "one after another in one process (one release per file)"
        )

    def command(self, folder: Path, label: str) -> list[str]:
        if self.several:
            command = [sys.executable, "-m", "api.cli", "import", str(folder), "--label", label]
            if self.sources_option:
                command += ["--sources", str(folder)]
            return command
        driver = (
            "import sys\n"
            "from api.cli import main\n"
            "label, *files = sys.argv[1:]\n"
            "for path in files:\n"
            "    code = main(['import', path, '--label', label])\n"
            "    if code:\n"
            "        sys.exit(code)\n"
        )
        files = [str(path) for path in sorted(folder.glob("*.json"))]
        return [sys.executable, "-c", driver, label, *files]

    def run(self, folder: Path, label: str, env: dict[str, str]) -> tuple[float, float, str]:
        """Seconds the import took, start of the process to its exit; the CPU seconds the
        process used (user and system: on a busy machine a steadier figure than the time it
        took, though on PostgreSQL the server's work is not in it); and what it printed."""
        command = self.command(folder, label)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        if result.returncode != 0:
            raise BenchError(
                f"import of {folder} exited {result.returncode}:\n{result.stderr[-3000:]}"
            )
        return seconds, cpu, result.stdout


def count(url: str, query: str) -> int | None:
    """One number from the database (None when the query does not fit this schema)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(query)).scalar_one())
    except Exception:
        return None
    finally:
        engine.dispose()


def load(
    importer: Importer,
    url: str,
    database: str,
    size: int,
    rounds: tuple[Path, Path],
    env: dict[str, str],
    rows: list[Row],
) -> Loaded:
    """Migrate a fresh database and import both rounds, timing each; rows for the table."""
    env = {**env, "DATABASE_URL": url}
    migrated = Importer._cli(["migrate"], env)
    if migrated.returncode != 0:
        raise BenchError(f"cdmo-metrics migrate exited {migrated.returncode}:\n{migrated.stderr}")
    target = IMPORT_TARGETS.get((size, database))
    before = datetime.now(UTC)
    seconds, cpu, _ = importer.run(rounds[0], f"bench history round 1 ({size})", env)
    first_done = datetime.now(UTC)
    case = f"import {size:,} metrics (creates)"
    stored = count(url, "SELECT count(*) FROM metric")
    rows.append(_import_row(case, database, size, seconds, cpu, target, stored))
    if stored != size:
        raise BenchError(f"after the first import the database holds {stored} metrics, not {size}")
    time.sleep(1.0)  # a clear gap between the rounds, for the moments "between rounds"
    second_start = datetime.now(UTC)
    seconds, cpu, report = importer.run(rounds[1], f"bench history round 2 ({size})", env)
    after = datetime.now(UTC)
    case = f"import {size:,} metrics (updates)"
    revised = count(url, f"SELECT count(*) FROM metric WHERE name LIKE '%{REVISED}'")
    rows.append(_import_row(case, database, size, seconds, cpu, target, revised))
    if revised != size:
        conflicts = [line for line in report.splitlines() if line.startswith("CONFLICT")]
        why = (
            f"; it reported {len(conflicts):,} conflicts, e.g. {conflicts[0]}" if conflicts else ""
        )
        raise BenchError(
            f"the second import updated {revised} of {size:,} metrics, not every one{why}"
        )
    loaded = Loaded(url, size, before, first_done, second_start, after)
    loaded.market = count(url, "SELECT count(*) FROM metric WHERE category = 'market'") or 0
    loaded.revisions = count(url, "SELECT count(*) FROM revision WHERE kind = 'metric'")
    return loaded


def _import_row(
    case: str,
    database: str,
    size: int,
    seconds: float,
    cpu: float,
    target: float | None,
    done: int | None,
) -> Row:
    """`done`: how many of the `size` metrics the database holds as this import wrote them."""
    measured = f"{seconds:.2f} s ({size / seconds:,.0f} metrics/s; {cpu:.2f} s CPU in the command)"
    if done != size:
        measured += f", but only {done} of {size:,} metrics stored as written"
        return Row(case, LABELS[database], measured, "-", "-")
    if target is None:
        return Row(case, LABELS[database], measured)
    return Row(case, LABELS[database], measured, f"≤ {target:g} s", _yes(seconds <= target))


def _yes(met: bool) -> str:
    return "yes" if met else "**no**"


# --- databases -------------------------------------------------------------------------------


@contextmanager
def fresh_database(kind: str, work: Path, postgres_url: str, size: int) -> Iterator[str]:
    """A new, empty database's URL; a PostgreSQL one is dropped afterwards, whatever happens."""
    if kind == "sqlite":
        yield f"sqlite:///{work / f'history-{size}-{uuid.uuid4().hex[:8]}.db'}"
        return
    name = f"bench_history_{size}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


# --- serving ---------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for process {pid}")


@contextmanager
def server(url: str, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`cdmo-metrics serve`, one worker, response cache off; stopped afterwards."""
    process, base = start_api(
        url, RESPONSE_CACHE_BYTES="0", WEB_CONCURRENCY="1", TMPDIR=env["TMPDIR"]
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise BenchError(f"the server exited {process.returncode} before it was ready")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("the server was not ready within 60 s")
            time.sleep(0.05)
        yield process, base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Moments:
    """Distinct `as_of` moments: no two requests of a run ever share one."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def spread(self, start: datetime, end: datetime, count: int) -> list[str]:
        """`count` unused moments evenly inside (start, end)."""
        step = (end - start) / (count + 1)
        moments = []
        for n in range(1, count + 1):
            moment = start + step * n
            while rfc3339(moment) in self.used:
                moment += timedelta(microseconds=1)
            self.used.add(rfc3339(moment))
            moments.append(rfc3339(moment))
        return moments


def timed_get(client: httpx.Client, path: str, expect: int = 200) -> tuple[float, Any]:
    started = time.perf_counter()
    response = client.get(path)
    milliseconds = (time.perf_counter() - started) * 1000
    if response.status_code != expect:
        raise BenchError(f"GET {path} answered {response.status_code}: {response.text[:500]}")
    return milliseconds, response.json()


def _check_page(loaded: Loaded, path: str, body: Any, round_one_only: bool) -> None:
    names = [item["name"] for item in body["items"]]
    if body["total"] != loaded.market or len(names) != min(50, loaded.market):
        raise BenchError(
            f"GET {path}: total {body['total']} and {len(names)} items, expected "
            f"{loaded.market} and {min(50, loaded.market)}"
        )
    if any(item["category"] != "market" for item in body["items"]):
        raise BenchError(f"GET {path}: an item outside category=market")
    if round_one_only and any(name.endswith(REVISED) for name in names):
        raise BenchError(f"GET {path}: a second-round name at a moment before the second round")


def _check_item(path: str, body: Any, metric_id: str, round_one_only: bool) -> None:
    if body["id"] != metric_id or "SYNTHETIC" not in body["name"]:
        raise BenchError(f"GET {path}: answered {body['id']!r} {body['name']!r}")
    if round_one_only and body["name"].endswith(REVISED):
        raise BenchError(f"GET {path}: a second-round name at a moment before the second round")


def summary(timings: list[float]) -> tuple[float, float, float]:
    """Median, 95th percentile (nearest rank) and maximum, in ms."""
    ordered = sorted(timings)
    p95 = ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
    return statistics.median(ordered), p95, ordered[-1]


def serve_and_measure(
    loaded: Loaded, database: str, args: argparse.Namespace, env: dict[str, str], rows: list[Row]
) -> None:
    label = LABELS[database]
    revisions = loaded.revisions if loaded.revisions is not None else 2 * loaded.size
    scale = f"{loaded.size:,} metrics, {revisions:,} revisions"
    at_target = loaded.size >= TARGET_SIZE
    moments = Moments()
    rng = random.Random(11)
    few, many = args.rss_moments
    started = time.perf_counter()
    with (
        server(loaded.url, env) as (process, base),
        httpx.Client(base_url=base, timeout=300) as client,
    ):
        log(f"{label}: server ready in {time.perf_counter() - started:.2f} s at {scale}")
        _, body = timed_get(client, "/v1/metrics?limit=1")
        if body["total"] != loaded.size:
            raise BenchError(f"the live collection has {body['total']} metrics, not {loaded.size}")
        served = 0

        def rss_round(count: int) -> None:
            """`count` page reads at new moments spread over the whole history."""
            nonlocal served
            for moment in moments.spread(loaded.before, loaded.after, count):
                timed_get(client, PAGE.format(moment=moment))
                served += 1

        rss_round(few)
        rss_few = rss_mib(process.pid)
        log(f"{label}: RSS {rss_few:.1f} MiB after {served} distinct as_of moments")

        windows = [
            ("between the imports", loaded.first_done, loaded.second_start, True),
            ("inside the second import", loaded.second_start, loaded.after, False),
        ]
        for window, start, end, round_one_only in windows:
            cases: list[tuple[str, float, Callable[[str], float]]] = []

            def page(moment: str, round_one_only: bool = round_one_only) -> float:
                path = PAGE.format(moment=moment)
                milliseconds, body = timed_get(client, path)
                _check_page(loaded, path, body, round_one_only)
                return milliseconds

            def item(moment: str, round_one_only: bool = round_one_only) -> float:
                metric_id = rng.choice(loaded.ids)
                path = ITEM.format(id=metric_id, moment=moment)
                milliseconds, body = timed_get(client, path)
                _check_item(path, body, metric_id, round_one_only)
                return milliseconds

            cases.append(("cold as_of page of 50, category=market", PAGE_TARGET_MS, page))
            cases.append(("cold as_of item", ITEM_TARGET_MS, item))
            for case, target, read in cases:
                timings = [read(m) for m in moments.spread(start, end, args.requests)]
                served += len(timings)
                p50, p95, worst = summary(timings)
                log(f"{label}: {case}, {window}: p50 {p50:.1f} ms, p95 {p95:.1f}, max {worst:.1f}")
                for name, value in (("p50", p50), ("p95", p95)):
                    rows.append(
                        Row(
                            f"{case}, {window} ({scale}), {name} of {len(timings)}",
                            label,
                            f"{value:.1f} ms" + (f" (max {worst:.1f})" if name == "p95" else ""),
                            f"≤ {target:g} ms" + ("" if at_target else f" at {TARGET_SIZE:,}"),
                            _yes(value <= target) if at_target else "-",
                        )
                    )

        if served < many:
            rss_round(many - served)
        rss_many = rss_mib(process.pid)
        log(f"{label}: RSS {rss_many:.1f} MiB after {served} distinct as_of moments")
        growth = rss_many / rss_few - 1
        rows.append(
            Row(
                f"server RSS after {few} vs {served} distinct as_of moments ({scale})",
                label,
                f"{rss_few:.1f} → {rss_many:.1f} MiB ({growth:+.1%})",
                f"flat (≤ {RSS_GROWTH:+.0%})",
                _yes(growth <= RSS_GROWTH),
            )
        )
        _sanity(client, loaded)


def _sanity(client: httpx.Client, loaded: Loaded) -> None:
    """Untimed: before the first import nothing existed; after the second, its names."""
    metric_id = loaded.ids[0]
    _, body = timed_get(client, PAGE.format(moment=rfc3339(loaded.before)))
    if body["total"] != 0:
        raise BenchError(f"as_of before the first import lists {body['total']} market metrics")
    timed_get(client, ITEM.format(id=metric_id, moment=rfc3339(loaded.before)), expect=404)
    _, body = timed_get(client, ITEM.format(id=metric_id, moment=rfc3339(loaded.after)))
    if not body["name"].endswith(REVISED):
        raise BenchError(f"as_of after the second import shows {body['name']!r}")


# --- the run ---------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    print("\n| case | database | measured | target | met |")
    print("|---|---|---:|---:|:---:|")
    for row in rows:
        print(f"| {row.case} | {row.database} | {row.measured} | {row.target} | {row.met} |")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", help="metrics per database (default 10000,100000)")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--requests", type=int, help="timed reads per case (default 200)")
    parser.add_argument(
        "--rss-moments",
        default="20,300",
        help="resident memory after this many distinct as_of moments, and after this many",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="a PostgreSQL database the run may CREATE DATABASE from",
    )
    parser.add_argument(
        "--quick", action="store_true", help="defaults of 1,000 metrics and 20 requests per case"
    )
    args = parser.parse_args(argv)
    args.sizes = args.sizes or ("1000" if args.quick else "10000,100000")
    args.requests = args.requests or (20 if args.quick else 200)
    try:
        args.sizes = sorted({int(size) for size in args.sizes.split(",")})
        args.rss_moments = [int(n) for n in args.rss_moments.split(",")]
    except ValueError:
        parser.error("--sizes and --rss-moments are comma-separated numbers")
    args.databases = [name.strip() for name in args.databases.split(",")]
    if unknown := set(args.databases) - set(LABELS):
        parser.error(f"unknown database {', '.join(sorted(unknown))}: sqlite, postgresql")
    if len(args.rss_moments) != 2 or not 0 < args.rss_moments[0] < args.rss_moments[1]:
        parser.error("--rss-moments takes two increasing numbers, e.g. 20,300")
    if min(args.sizes) < 50 or args.requests < 1:
        parser.error("sizes of at least 50 metrics and at least one request")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    work = Path(tempfile.mkdtemp(prefix="cdmo-bench-history-"))
    (work / "tmp").mkdir()
    # Every child writes its temporary files (as_of replicas, say) inside the run's folder.
    env = {**os.environ, "TMPDIR": str(work / "tmp"), "LOG_LEVEL": "warning"}
    rows: list[Row] = []
    try:
        importer = Importer(env)
        print(
            f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; sizes "
            f"{', '.join(f'{size:,}' for size in args.sizes)}; {args.requests} requests per "
            f"case; databases {', '.join(LABELS[d] for d in args.databases)}"
        )
        print(f"import: {importer.describe()}")
        data = {}
        for size in args.sizes:
            log(f"writing the SYNTHETIC dataset of {size:,} metrics, both rounds")
            data[size] = generate(work, size)
        for database in args.databases:
            for size in args.sizes:
                with fresh_database(database, work, args.postgres_url, size) as url:
                    log(f"{LABELS[database]}: importing {size:,} metrics, two rounds")
                    loaded = load(importer, url, database, size, data[size], env, rows)
                    if size == args.sizes[-1]:
                        engine = create_engine(url)
                        with engine.connect() as connection:
                            loaded.ids = list(
                                connection.execute(text("SELECT id FROM metric")).scalars()
                            )
                        engine.dispose()
                        serve_and_measure(loaded, database, args, env, rows)
    except KeyboardInterrupt:
        print_table(rows)
        print("\ninterrupted; cleaned up", file=sys.stderr)
        return 130
    except (BenchError, httpx.HTTPError, OSError, SQLAlchemyError) as exc:
        print_table(rows)
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
