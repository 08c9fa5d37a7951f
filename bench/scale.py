"""The scale round: cold reads and exports at a given size (issue 12: 1,000,000 metrics).

    python bench/run.py --size 1000000            # SQLite, and PostgreSQL with BENCH_POSTGRES_URL
    python bench/scale.py --size 20000 --requests 20

It writes bench/synthetic.py's SYNTHETIC dataset (SIZE metrics, 200 per source: 5,000 sources
at 1,000,000), imports it with `cdmo-metrics import` into a fresh database of each kind, serves
it with the response cache off (`RESPONSE_CACHE_BYTES=0`: every request computed) and times
sequential requests with httpx, each distinct so no layer can answer from memory: one metric, a
filtered and sorted page of 50, a `q` page (the same query with another page size each time, and
a query new each time), facets (the tallied columns; the subject facet; the facets of one
subject and of two), a first and a deep keyset page (`after=` at
the middle of the collection), the same with `count=none`; a page of the change feed from its
middle, by offset and by keyset; pages of the sorts a user pages
through (`SORTS`), alone and with a common filter, first and from the middle by keyset (the
middle found by offset, not timed; with a filter, a tenth of the way); then one whole NDJSON
and one CSV
export (rows/s, and rows per second of the server's CPU time, which contention for the cores
changes less), and the server's peak memory (VmHWM). Each row is printed against its target.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import synthetic  # noqa: E402
from bench.history import Importer, fresh_database, server  # noqa: E402

PER_SOURCE = 200
CATEGORIES = synthetic.CATEGORIES


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def p50_p95(timings: list[float]) -> tuple[float, float]:
    timings = sorted(timings)
    return statistics.median(timings), timings[max(0, int(len(timings) * 0.95) - 1)]


def measure(
    client: httpx.Client, paths: Callable[[int], str], requests: int
) -> tuple[float, float, object]:
    timings, body = [], None
    for n in range(requests):
        path = paths(n)
        started = time.perf_counter()
        response = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code} {response.text[:300]}")
        body = response.json()
    p50, p95 = p50_p95(timings)
    return p50, p95, body


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def export_rate(client: httpx.Client, fmt: str, pid: int) -> tuple[float, int, float]:
    """Rows per second of one whole export, read as fast as the client can, and rows per
    second of the server's CPU time (what a contended machine does not change much)."""
    started, cpu = time.perf_counter(), cpu_seconds(pid)
    rows = 0
    headers = {"Accept-Encoding": "identity"}
    with client.stream("GET", f"/v1/metrics.{fmt}", headers=headers) as response:
        for chunk in response.iter_bytes():
            rows += chunk.count(b"\n")
    seconds, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu
    rows -= 1 if fmt == "csv" else 0
    return rows / seconds, rows, rows / cpu


CASES = ("item", "filtered", "q", "q-new", "facets", "facets-subject", "facets-of-subject",
         "facets-of-subjects", "first", "deep", "deep-count-none", "changes-offset",
         "changes-deep", "sorts", "sorts-deep", "exports")  # fmt: skip
# The sorts a user pages through (issue 12), each alone and with a common filter ("sorts"),
# and from the middle of the sorted collection by keyset ("sorts-deep").
SORTS = ("-value", "value", "-year", "year", "name", "-value_high", "value_low")
SORT_FILTERS = ("", "category=market", "subject=CAR-T", "forecast=true", "geography=global")
DEEP_FILTERS = ("", "category=market", "geography=global")


def round_for(
    kind: str,
    url: str,
    folder: Path | None,
    size: int,
    requests: int,
    work: Path,
    only: tuple[str, ...] = CASES,
) -> None:
    """Migrate, import `folder` (None: `url` already holds the dataset), serve and measure."""
    env = {**os.environ, "DATABASE_URL": url, "TMPDIR": str(work), "LOG_LEVEL": "warning"}
    migrated = Importer._cli(["migrate"], env)
    if migrated.returncode != 0:
        raise SystemExit(f"cdmo-metrics migrate exited {migrated.returncode}:\n{migrated.stderr}")
    if folder is None:
        print(f"\n### {kind}, {size:,} metrics (loaded before)\n")
    else:
        seconds, _cpu, _ = Importer(env).run(folder, "scale", env)
        print(
            f"\n### {kind}, {size:,} metrics (import: {seconds:.0f} s, {size / seconds:,.0f}/s)\n"
        )
    print("| case | p50 ms | p95 ms | target | met |")
    print("|---|---:|---:|---|---|")
    with server(url, env) as (process, base), httpx.Client(base_url=base, timeout=600) as client:
        per_source = PER_SOURCE
        sources = max(1, size // per_source)

        def metric_id(n: int) -> str:
            s = (n * 7919) % sources
            return f"synthetic-{s:03d}-{(n * 104729) % per_source:05d}"

        def page_after(n: int) -> str:
            # The cursor of the item at the middle of the id order (a deep page by keyset): the
            # sort order it is for, then the item's sort values.
            from api.pagination import encode_cursor

            middle = f"synthetic-{sources // 2 + n:03d}-00000"
            return f"/v1/metrics?limit=50&after={encode_cursor(['id', middle])}"

        def changes_after(n: int) -> str:
            # The cursor of a revision in the middle of the feed (found by offset, not timed),
            # moved on by n revisions of its version (the import's, which holds them all).
            from api.pagination import encode_cursor

            if not middle_change:
                found = client.get(f"/v1/changes?limit=1&count=none&offset={size // 2}")
                middle_change.update(found.json()["items"][0])
            version, revision_id = middle_change["dataset_version"], middle_change["id"] + n
            cursor = encode_cursor(["dataset_version,id", version, revision_id])
            return f"/v1/changes?limit=50&count=none&after={cursor}"

        middle_change: dict[str, Any] = {}
        cases: list[tuple[str, str, Callable[[int], str], float | None]] = [
            ("item", "one metric", lambda n: f"/v1/metrics/{metric_id(n)}", 5),
            (
                "filtered",
                "filtered, sorted page of 50",
                lambda n: (
                    f"/v1/metrics?category={CATEGORIES[n % 5]}&forecast=false"
                    f"&sort=-value_high&limit={50 - n % 3}"
                ),
                30,
            ),
            ("q", "q page of 50", lambda n: f"/v1/metrics?q=batch+yields&limit={50 - n % 3}", 50),
            (
                # The same matches, but a query no request asked before: nothing of it is kept.
                "q-new",
                "q page of 50, a query new each time",
                lambda n: f"/v1/metrics?q=batch+yields+-absent{n}&limit=50",
                50,
            ),
            (
                "facets",
                "facets (category, unit, year)",
                lambda n: (
                    "/v1/metrics/facets?facet=category,unit,year"
                    f"&forecast={'true' if n % 2 else 'false'}"
                ),
                250,
            ),
            (
                "facets-subject",
                "facets (subject)",
                lambda n: f"/v1/metrics/facets?facet=subject&category={CATEGORIES[n % 5]}",
                250,
            ),
            (
                "facets-of-subject",
                "facets (category, unit, year) of one subject",
                lambda n: (
                    "/v1/metrics/facets?facet=category,unit,year"
                    f"&subject={quote(synthetic.SUBJECTS[n % len(synthetic.SUBJECTS)])}"
                ),
                250,
            ),
            (
                "facets-of-subjects",
                "facets (category, unit) of two subjects",
                lambda n: (
                    "/v1/metrics/facets?facet=category,unit&subject="
                    + quote(",".join(synthetic.SUBJECTS[n % 5 : n % 5 + 2]))
                ),
                250,
            ),
            (
                "first",
                "first page of 50 (id order)",
                lambda n: f"/v1/metrics?limit={50 - n % 3}",
                30,
            ),
            ("deep", "deep page of 50 by keyset (after=)", page_after, 30),
            (
                "deep-count-none",
                "deep page, count=none",
                lambda n: page_after(n) + "&count=none",
                30,
            ),
            (
                "changes-offset",
                "change feed, deep page of 50 by offset, count=none (to compare)",
                lambda n: f"/v1/changes?limit=50&count=none&offset={size // 2 + n}",
                None,  # offset paging has no target: the keyset page beside it has
            ),
            (
                "changes-deep",
                "change feed, deep page of 50 by keyset (after=), count=none",
                changes_after,
                30,
            ),
        ]
        for key, name, paths, target in cases:
            if key not in only:
                continue
            p50, p95, _body = measure(client, paths, requests)
            if target is None:
                print(f"| {name} | {p50:.1f} | {p95:.1f} | - | - |")
                continue
            met = "yes" if p50 <= target else "**no**"
            print(f"| {name} | {p50:.1f} | {p95:.1f} | ≤ {target} ms | {met} |")
        if "sorts" in only:
            for sort in SORTS:
                for filters in SORT_FILTERS:
                    given = f"{filters}&" if filters else ""
                    p50, p95, _body = measure(
                        client,
                        lambda n, given=given, sort=sort: (
                            f"/v1/metrics?{given}sort={sort}&limit={50 - n % 3}"
                        ),
                        requests,
                    )
                    met = "yes" if p50 <= 30 else "**no**"
                    print(f"| page of 50, {given}sort={sort} | {p50:.1f} | {p95:.1f} "
                          f"| ≤ 30 ms | {met} |")  # fmt: skip
        if "sorts-deep" in only:
            for sort in SORTS:
                for filters in DEEP_FILTERS:
                    given = f"{filters}&" if filters else ""
                    # The cursor of the item at the middle of the sorted matches (found by
                    # offset, not timed).
                    middle = client.get(
                        f"/v1/metrics?{given}sort={sort}&limit=1&count=none"
                        f"&offset={size // (2 if not filters else 10)}"
                    ).json()["next"]
                    cursor = middle.split("after=")[1].split("&")[0]
                    p50, p95, _body = measure(
                        client,
                        lambda n, given=given, sort=sort, cursor=cursor: (
                            f"/v1/metrics?{given}sort={sort}&limit={50 - n % 3}&after={cursor}"
                        ),
                        requests,
                    )
                    met = "yes" if p50 <= 30 else "**no**"
                    print(f"| deep page of 50 by keyset, {given}sort={sort} | {p50:.1f} "
                          f"| {p95:.1f} | ≤ 30 ms | {met} |")  # fmt: skip
        for fmt in ("ndjson", "csv") if "exports" in only else ():
            rate, rows, per_cpu = export_rate(client, fmt, process.pid)
            met = "yes" if rate >= 100_000 else "**no**"
            print(f"| {fmt.upper()} export, {rows:,} rows | {rate:,.0f} rows/s | "
                  f"{per_cpu:,.0f} rows per server CPU-s | ≥ 100,000 rows/s | {met} |")  # fmt: skip
        peak = peak_mib(process.pid)
        met = "yes" if peak <= 150 else "**no**"
        print(f"| server peak memory (VmHWM), all of the above | {peak:.0f} MiB | - "
              f"| ≤ 150 MiB | {met} |")  # fmt: skip


def run(size: int, requests: int, databases: list[str], only: tuple[str, ...] = CASES) -> None:
    with tempfile.TemporaryDirectory(prefix="cdmo-scale-") as name:
        work = Path(name)
        folder = work / "synthetic"
        started = time.perf_counter()
        synthetic.write(folder, size, max(1, size // PER_SOURCE))
        seconds = time.perf_counter() - started
        print(f"SYNTHETIC dataset of {size:,} metrics written in {seconds:.0f} s")
        postgres = os.environ.get("BENCH_POSTGRES_URL", "")
        for kind in databases:
            if kind == "postgresql" and not postgres:
                print("\n(PostgreSQL skipped: BENCH_POSTGRES_URL is not set)")
                continue
            with fresh_database(kind, work, postgres, size) as url:
                round_for({"sqlite": "SQLite", "postgresql": "PostgreSQL"}[kind], url, folder,
                          size, requests, work, only)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument(
        "--database-url",
        help="measure this database, which already holds the SYNTHETIC dataset of --size "
        "metrics (no generation, no import)",
    )
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help="comma-separated cases to run, of: " + ", ".join(CASES),
    )
    args = parser.parse_args(argv)
    only = tuple(args.cases.split(","))
    if unknown := set(only) - set(CASES):
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    if args.database_url:
        kind = "PostgreSQL" if args.database_url.startswith("postgresql") else "SQLite"
        with tempfile.TemporaryDirectory(prefix="cdmo-scale-") as work:
            round_for(kind, args.database_url, None, args.size, args.requests, Path(work), only)
        return 0
    run(args.size, args.requests, args.databases.split(","), only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
