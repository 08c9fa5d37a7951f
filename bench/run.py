"""The benchmark suite: the API against a bare ASGI ceiling serving the very same bytes.

    make bench                                   # seed dataset, 3 rounds of 5 s a scenario
    python bench/run.py --duration 3 --synthetic # plus the 10,000-metric SYNTHETIC dataset

For each dataset it builds a fresh SQLite database (and a PostgreSQL one when
BENCH_POSTGRES_URL is set), starts `cdmo-metrics serve` (one uvicorn worker) pinned to core 0,
records each scenario's response, starts bench/ceiling.py serving those bytes on the same
core, and loads both with wrk (16 connections) pinned to core 1, in turns (`--rounds`: the API,
then each ceiling server, then the API again...), so that both see the same moments of a noisy
machine. It prints the medians of the rounds' requests/s and p50/p99 latency, the median of the
rounds' ratios with their range, the API's peak memory, the start-up to the first answer (median
of three starts), and the latency of a read right after a write. Figures and how to read them:
docs/benchmarks.md.
"""

import argparse
import base64
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
STARTS = 3  # starts of the API whose median is its start-up
sys.path.insert(0, str(ROOT))

SCENARIOS = [
    ("page of 50 metrics", "/v1/metrics?limit=50", {}),
    ("one metric", "/v1/metrics/{metric}", {}),
    ("filtered, sorted page", "/v1/metrics?category=market&forecast=false&sort=-value_high,id", {}),
    ("q search", "/v1/metrics?q=cell+therapy", {}),
    ("CSV export, whole collection", "/v1/metrics.csv", {}),
    ("304 revalidation", "/v1/metrics?limit=50", {"If-None-Match": "{etag}"}),
]
# The same questions, asked of the API with its response cache off (every request computed, as
# on a cold cache) and of Datasette's table JSON over the very same SQLite file. `{db}` is
# Datasette's name for the database. The q search is table JSON with a `_where` on the same
# FTS5 index (one document per history row; the current rows' documents), since Datasette's own
# `_search` needs an index keyed by the table's rowid.
COLD_SCENARIOS = [
    ("page of 50 metrics", "/v1/metrics?limit=50&sort=id", "/{db}/metric.json?_size=50&_sort=id"),
    (
        "filtered, sorted page",
        "/v1/metrics?category=market&forecast=false&sort=-value_high,id",
        "/{db}/metric.json?category=market&forecast=0&_sort_desc=value_high&_size=50",
    ),
    (
        "q search",
        "/v1/metrics?q=cell+therapy",
        "/{db}/metric.json?_size=50&_where=id+in+(select+h.id+from+metric_fts+join+"
        "metric_history+h+on+h.row_id+%3D+metric_fts.rowid+where+metric_fts+match+"
        "%27cell+therapy%27+and+h.valid_to+is+null)",
    ),
]
KEEP_HEADERS = ("content-type", "etag", "cache-control", "vary", "link", "content-disposition")


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: int, command: list[str]) -> list[str]:
    return (["taskset", "-c", str(core)] if shutil.which("taskset") else []) + command


def wait_ready(url: str, path: str = "/healthz") -> None:
    # One client: `httpx.get` makes a client and a TLS context per call (20 ms of CPU), taken
    # from the starting server on a 2-core machine.
    with httpx.Client(timeout=1) as client:
        for _ in range(600):
            try:
                if client.get(url + path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not start")


def _ms(text: str) -> float:
    found = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if found is None:
        raise ValueError(f"unreadable wrk latency {text!r}")
    number, unit = found.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(url: str, headers: dict[str, str], duration: int, connections: int) -> Result:
    """wrk's figures for `url`, after a second of the same load whose figures are dropped
    (every server measured gets it: the first second after a process starts, or after another
    scenario, measured start-up rather than serving; the API's p99 of its first scenario
    was 2.0 and 7.6 ms in runs whose later scenarios had 0.9-1.4 ms)."""
    command = ["wrk", "-t1", f"-c{connections}", "--latency", url]
    for name, value in headers.items():
        command[1:1] = ["-H", f"{name}: {value}"]
    subprocess.run(pinned(1, [*command, "-d1s"]), capture_output=True, check=True)
    command.append(f"-d{duration}s")
    output = subprocess.run(pinned(1, command), capture_output=True, text=True, check=True).stdout
    if "Non-2xx or 3xx responses" in output:
        raise RuntimeError(f"{url} answered errors under load:\n{output}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))  # type: ignore[union-attr]
    return Result(rps, p50, p99)


def peak_memory_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_database(url: str, synthetic_dir: Path | None) -> str:
    """Migrate and load the seed dataset (and the synthetic one); return a write key."""
    from sqlmodel import Session

    from api import migrate
    from api.auth import service as auth_service
    from api.dataset import read_datasets
    from api.db import make_engine, writer
    from api.records.loading import load_datasets

    engine = make_engine(url)
    migrate.upgrade(engine)
    datasets = read_datasets(ROOT / "seed" / "data", ROOT / "seed" / "sources")
    if synthetic_dir is not None:
        datasets += read_datasets(synthetic_dir, synthetic_dir)
    with Session(writer(engine)) as session, session.begin():
        load_datasets(session, datasets, label="benchmark")
        key = auth_service.create_key(session, name=f"bench-{uuid.uuid4().hex[:6]}", scope="write")
    engine.dispose()
    return key


def write_then_read(url: str, key: str, rounds: int) -> tuple[float, float, bool]:
    """p50/p99 ms of a GET right after a PATCH of the same metric, and whether every GET
    showed the write."""
    path = f"{url}/v1/metrics/viral-vector-lead-time"
    timings, fresh = [], True
    with httpx.Client() as client:
        tag = client.get(path).headers["etag"]
        for n in range(rounds):
            name = f"Viral vector lead time (bench {n})"
            patched = client.patch(
                path,
                json={"name": name},
                headers={"Authorization": f"Bearer {key}", "If-Match": tag},
            )
            start = time.perf_counter()
            read = client.get(path)
            timings.append((time.perf_counter() - start) * 1000)
            fresh &= read.json()["name"] == name
            tag = read.headers["etag"] if patched.status_code == 200 else tag
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.99) - 1], fresh


def run(label: str, url: str, args: argparse.Namespace, synthetic_dir: Path | None) -> None:
    from bench.startup import start_once

    key = build_database(url, synthetic_dir)
    # As `bench/startup.py` measures it: `cdmo-metrics serve` to the first 200 of a page,
    # polled every 5 ms; the median of three starts (one start swung 0.7-1.3 s on one machine).
    starts = sorted(start_once(url, compiled=True)[0] for _ in range(STARTS))
    api, api_url = start_api(url)
    ceilings: list[tuple[subprocess.Popen[bytes], str, str]] = []
    page_ceiling: dict[str, float] = {}
    try:
        wait_ready(api_url)
        metric = "viral-vector-lead-time"
        etag = httpx.get(f"{api_url}/v1/metrics?limit=50").headers["etag"]
        scenarios = [
            (name, path.format(metric=metric), {k: v.format(etag=etag) for k, v in headers.items()})
            for name, path, headers in SCENARIOS
        ]
        recorded = {}
        for _name, path, _headers in scenarios:
            response = httpx.get(api_url + path)
            recorded[path] = {
                "status": response.status_code,
                "headers": [(k, v) for k, v in response.headers.items() if k in KEEP_HEADERS],
                "body": base64.b64encode(response.content).decode(),
            }
        responses = Path(tempfile.mkstemp(suffix=".json")[1])
        responses.write_text(json.dumps(recorded))
        ceilings = start_ceilings(responses, args.granian, scenarios[0][1])
        print(
            f"\n## {label}  (start-up to first answer: median {statistics.median(starts):.2f} s"
            f" of {STARTS}, {starts[0]:.2f}-{starts[-1]:.2f} s)\n"
        )
        print(
            "| scenario | API req/s | API p50 ms | API p99 ms | ceiling req/s | ceiling p99 ms ",
            end="",
        )
        print(f"| ceiling server | ratio (range of {args.rounds}) | met (≥ 50%, p99 < 5 ms) |")
        print("|---|---:|---:|---:|---:|---:|---|---:|---|")
        for name, path, headers in scenarios:
            mine: list[Result] = []
            best: list[tuple[Result, str]] = []
            for _ in range(args.rounds):  # in turns: both see the same moments of the machine
                mine.append(wrk(api_url + path, headers, args.duration, args.connections))
                best.append(fastest(ceilings, path, headers, args))
            ratios = sorted(m.rps / b.rps for m, (b, _server) in zip(mine, best, strict=True))
            ratio = statistics.median(ratios)
            api_figures, ceiling = median_of(mine), median_of([b for b, _ in best])
            servers = sorted({server for _, server in best})
            page_ceiling.setdefault(name, ceiling.rps)
            met = ratio >= 0.5 and api_figures.p99_ms < 5
            spread = f" ({ratios[0]:.1%}-{ratios[-1]:.1%})" if len(ratios) > 1 else ""
            print(
                f"| {name} | {api_figures.rps:,.0f} | {api_figures.p50_ms:.2f} | "
                f"{api_figures.p99_ms:.2f} | {ceiling.rps:,.0f} | {ceiling.p99_ms:.2f} | "
                f"{', '.join(servers)} | {ratio:.1%}{spread} | {'yes' if met else '**no**'} |"
            )
        p50, p99, fresh = write_then_read(api_url, key, args.write_rounds)
        print(
            f"| read right after a write ({args.write_rounds} rounds) | - | {p50:.2f} | {p99:.2f} "
            f"| - | - | - | {'every read saw its write' if fresh else 'STALE READS'} | - |"
        )
        print(f"\nAPI peak memory (VmHWM): {peak_memory_mib(api.pid):.1f} MiB")
        responses.unlink()
    finally:
        for process in (api, *(process for process, _url, _name in ceilings)):
            process.terminate()
            process.wait(timeout=10)
    if url.startswith("sqlite:"):
        cold(url, args, page_ceiling["page of 50 metrics"])


def start_ceilings(
    responses: Path, granian: str | None, probe_path: str
) -> list[tuple[subprocess.Popen[bytes], str, str]]:
    """bench/ceiling.py on each bare ASGI server available here, on core 0: uvicorn with
    uvloop and httptools, and granian when given. (process, URL, server name) of each."""
    env = {**os.environ, "CEILING_RESPONSES": str(responses), "PYTHONPATH": str(ROOT)}
    port = free_port()
    started = [
        (
            subprocess.Popen(
                pinned(0, [sys.executable, "-m", "uvicorn", "bench.ceiling:app", "--port",
                           str(port), "--log-level", "warning", "--no-access-log",
                           "--loop", "uvloop", "--http", "httptools"]),
                env=env, cwd=ROOT,
            ),
            f"http://127.0.0.1:{port}",
            "uvicorn (uvloop, httptools)",
        )
    ]  # fmt: skip
    if granian:
        port = free_port()
        started.append(
            (
                subprocess.Popen(
                    pinned(0, [granian, "--interface", "asgi", "--host", "127.0.0.1", "--port",
                               str(port), "--workers", "1", "--log-level", "warning",
                               "--no-access-log", "bench.ceiling:app"]),
                    env=env, cwd=ROOT,
                ),
                f"http://127.0.0.1:{port}",
                "granian",
            )
        )  # fmt: skip
    for _process, url, _name in started:
        wait_ready(url, probe_path)
    return started


def median_of(results: list[Result]) -> Result:
    """Each figure's median over the rounds."""
    return Result(
        statistics.median(r.rps for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p99_ms for r in results),
    )


def fastest(
    ceilings: list[tuple[subprocess.Popen[bytes], str, str]],
    path: str,
    headers: dict[str, str],
    args: argparse.Namespace,
) -> tuple[Result, str]:
    """The ceiling: the fastest bare ASGI server serving these bytes, in this run."""
    results = [
        (wrk(url + path, headers, args.duration, args.connections), name)
        for _process, url, name in ceilings
    ]
    return max(results, key=lambda result: result[0].rps)


def start_api(url: str, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """`cdmo-metrics serve` (one worker, production settings) on core 0, over `url`."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": url,
        "LOG_LEVEL": "warning",
        "WRITE_RATE_LIMIT": "100000",
        **env,
    }
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port)]
    return subprocess.Popen(pinned(0, command), env=environment, cwd=ROOT), (
        f"http://127.0.0.1:{port}"
    )


def cold(url: str, args: argparse.Namespace, ceiling_rps: float) -> None:
    """Every request computed (RESPONSE_CACHE_BYTES=0), against Datasette when given, and
    against the ceiling's page of 50 (the same size of answer) in this run."""
    database = Path(url.removeprefix("sqlite:///"))
    print("\n| cold cache: scenario | API req/s | API p50 ms | API p99 ms ", end="")
    print("| of the ceiling (page of 50: ≥ 8%) ", end="")
    print("| Datasette req/s | Datasette p99 ms | API / Datasette (≥ 10x) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    api, api_url = start_api(url, RESPONSE_CACHE_BYTES="0")
    datasette = None
    try:
        wait_ready(api_url)
        if args.datasette:
            port = free_port()
            command = [args.datasette, "serve", str(database), "--port", str(port)]
            datasette = subprocess.Popen(
                pinned(0, command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            datasette_url = f"http://127.0.0.1:{port}"
            wait_ready(datasette_url, "/-/versions.json")
        for name, path, theirs in COLD_SCENARIOS:
            if datasette is not None:
                their_path = theirs.format(db=database.stem)
                assert httpx.get(datasette_url + their_path).json()["rows"], their_path
            mine, others = [], []
            for _ in range(args.rounds):  # in turns, as the cached round
                mine.append(wrk(api_url + path, {}, args.duration, args.connections))
                if datasette is not None:
                    others.append(
                        wrk(datasette_url + their_path, {}, args.duration, args.connections)
                    )
            ours = median_of(mine)
            row = (
                f"| {name} | {ours.rps:,.0f} | {ours.p50_ms:.2f} | {ours.p99_ms:.2f} "
                f"| {ours.rps / ceiling_rps:.1%} "
            )
            if others:
                theirs_figures = median_of(others)
                times = statistics.median(m.rps / o.rps for m, o in zip(mine, others, strict=True))
                row += f"| {theirs_figures.rps:,.0f} | {theirs_figures.p99_ms:.2f} | {times:.1f}x |"
            else:
                row += "| - | - | - |"
            print(row)
        print(f"\nAPI (cache off) peak memory (VmHWM): {peak_memory_mib(api.pid):.1f} MiB")
    finally:
        for process in (api, datasette):
            if process is not None:
                process.terminate()
                process.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="wrk runs of each server per scenario, in turns; the medians are printed",
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--write-rounds", type=int, default=200)
    parser.add_argument("--synthetic", action="store_true", help="also the 10,000-metric set")
    parser.add_argument(
        "--datasette",
        help="a datasette executable (make bench installs one from bench/requirements.lock): "
        "compare the API on a cold cache with Datasette's table JSON on the same SQLite file",
    )
    parser.add_argument(
        "--granian",
        help="a granian executable (make bench installs one from bench/requirements.lock): "
        "a second bare ASGI server for the ceiling; the faster one counts",
    )
    parser.add_argument(
        "--size",
        type=int,
        help="instead of the rounds above: the scale round (bench/scale.py) at this many "
        "metrics, e.g. 1000000",
    )
    args = parser.parse_args()
    if args.size:
        from bench import scale

        scale.run(args.size, 20, ["sqlite", "postgresql"])
        return 0
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2
    # As `make run` and the image do before serving: start-up is measured with the app's
    # bytecode compiled (only what changed is), whether or not the environment lets Python
    # write it (PYTHONDONTWRITEBYTECODE).
    subprocess.run([sys.executable, "-m", "compileall", "-q", "api"], cwd=ROOT, check=True)
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
          f"wrk -t1 -c{args.connections} -d{args.duration}s")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="cdmo-bench-"))
    try:
        datasets: list[tuple[str, Path | None]] = [("seed dataset (42 metrics)", None)]
        if args.synthetic:
            from bench.synthetic import write

            write(work / "synthetic", 10_000, 50)
            datasets.append(("seed + SYNTHETIC dataset (10,042 metrics)", work / "synthetic"))
        for label, synthetic in datasets:
            run(f"SQLite, {label}", f"sqlite:///{work / uuid.uuid4().hex}.db", args, synthetic)
            postgres = os.environ.get("BENCH_POSTGRES_URL")
            if postgres:
                from sqlalchemy import create_engine, text
                from sqlalchemy.engine import make_url

                name = f"cdmo_bench_{uuid.uuid4().hex[:8]}"
                admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
                with admin.connect() as connection:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
                try:
                    url = (
                        make_url(postgres).set(database=name).render_as_string(hide_password=False)
                    )
                    run(f"PostgreSQL, {label}", url, args, synthetic)
                finally:
                    with admin.connect() as connection:
                        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    admin.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
