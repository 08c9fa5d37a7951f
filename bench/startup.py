"""Start-up to the first answer: `cdmo-metrics serve` started, then `GET /v1/metrics?limit=1`
polled every 5 ms until it answers 200; the median of several starts, and the CPU seconds the
server process had used by then (less sensitive than wall time to other work on the machine).

    python bench/startup.py                          # SQLite, a freshly seeded file
    python bench/startup.py --database-url URL --runs 7

Measured two ways: with `api/`'s bytecode compiled (`python -m compileall api`, as an install
that has started once, or the Docker image, which compiles it at build time), and from source
(`api/`'s `__pycache__` removed before every start and `PYTHONDONTWRITEBYTECODE=1`, as on a
machine where nothing may write bytecode next to the code). The packages in the virtualenv
have their bytecode either way (pip compiles at install).

Also prints the slowest modules of `import api.main` (python -X importtime), the part of the
start-up that is Python importing code.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import free_port  # noqa: E402


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU seconds of a running process (Linux), its threads included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def from_source(compiled: bool) -> dict[str, str]:
    """Compile api/'s bytecode, or remove it; the environment for the server to start with."""
    caches = list((ROOT / "api").rglob("__pycache__"))
    if compiled:
        subprocess.run([sys.executable, "-m", "compileall", "-q", "api"], cwd=ROOT, check=True)
        return {}
    for cache in caches:
        shutil.rmtree(cache, ignore_errors=True)
    return {"PYTHONDONTWRITEBYTECODE": "1"}


def start_once(url: str, compiled: bool) -> tuple[float, float | None]:
    """Seconds from the command to the first answer, and the server's CPU seconds by then."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning", **from_source(compiled)}
    # One client for all the polls: `httpx.get` makes a client, and its TLS context, per call
    # (20 ms of CPU), which on a 2-core machine took CPU from the server being measured.
    client = httpx.Client(timeout=5)
    started = time.perf_counter()
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        while True:
            try:
                answer = client.get(f"http://127.0.0.1:{port}/v1/metrics?limit=1")
                if answer.status_code == 200:
                    return time.perf_counter() - started, cpu_seconds(process.pid)
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}")
            if time.perf_counter() - started > 60:
                raise SystemExit("no answer within 60 s")
            time.sleep(0.005)
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)


def slowest_imports(count: int) -> list[tuple[int, str]]:
    """Import time of `api.main` by package (each module's own time, summed; `api`'s modules
    by subpackage), with the collector paused as `serve` imports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import gc; gc.disable(); import api.main"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    totals: dict[str, int] = {}
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].strip().split(".")
            package = ".".join(name[:2] if name[0] == "api" else name[:1])
            own = int(parts[0].rsplit(":", 1)[1])
            totals[package] = totals.get(package, 0) + own
    return sorted(((us, name) for name, us in totals.items()), reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="a migrated, seeded database (default: a new "
                        "SQLite file with the seed dataset)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.database_url is not None:
        return measure(args.database_url, args.runs)
    with tempfile.TemporaryDirectory(prefix="cdmo-startup-") as folder:
        url = f"sqlite:///{folder}/startup.db"
        env = {**os.environ, "DATABASE_URL": url}
        for command in ("migrate", "seed"):
            subprocess.run([sys.executable, "-m", "api.cli", command], env=env, cwd=ROOT,
                           check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        return measure(url, args.runs)


def measure(url: str, runs: int) -> int:
    """Start the server over `url` `runs` times each way, and print the figures."""
    print(f"start-up to the first answer over {runs} starts (target ≤ 1 s):")
    # Alternated, so that both ways see the same load on the machine.
    starts: dict[bool, list[tuple[float, float | None]]] = {True: [], False: []}
    for _ in range(runs):
        for compiled in starts:
            starts[compiled].append(start_once(url, compiled))
    for compiled, runs in starts.items():
        times = [wall for wall, _ in runs]
        cpus = [cpu for _, cpu in runs if cpu is not None]
        cpu = f", server CPU median {statistics.median(cpus):.2f} s" if cpus else ""
        print(f"  {'bytecode compiled' if compiled else 'from source      '}: "
              f"median {statistics.median(times):.2f} s, min {min(times):.2f} s{cpu}")  # fmt: skip
    from_source(compiled=True)
    print("\n| package (own import time) | ms |\n|---|---:|")
    for microseconds, name in slowest_imports(15):
        print(f"| {name.strip()} | {microseconds / 1000:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
