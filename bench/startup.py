"""Start-up to the first answer: `cdmo-metrics serve` started, then `GET /v1/metrics?limit=1`
polled every 5 ms until it answers 200; the median of several starts.

    python bench/startup.py                          # SQLite, a freshly seeded file
    python bench/startup.py --database-url URL --runs 7

Also prints the slowest modules of `import api.main` (python -X importtime), the part of the
start-up that is Python importing code.
"""

import argparse
import os
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


def start_once(url: str) -> float:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning"}
    started = time.perf_counter()
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(command, env=env, cwd=ROOT)
    try:
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/v1/metrics?limit=1", timeout=5)
                if answer.status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}")
            if time.perf_counter() - started > 60:
                raise SystemExit("no answer within 60 s")
            time.sleep(0.005)
    finally:
        process.terminate()
        process.wait(timeout=30)


def slowest_imports(count: int) -> list[tuple[int, str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import api.main"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    top_level = [(us, name) for us, name in rows if not name.startswith("   ")]
    return sorted(top_level, reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="a migrated, seeded database (default: a new "
                        "SQLite file with the seed dataset)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    url = args.database_url
    if url is None:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='cdmo-startup-')}/startup.db"
        env = {**os.environ, "DATABASE_URL": url}
        for command in ("migrate", "seed"):
            subprocess.run([sys.executable, "-m", "api.cli", command], env=env, cwd=ROOT,
                           check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    times = [start_once(url) for _ in range(args.runs)]
    print(f"start-up to the first answer: median {statistics.median(times):.2f} s, "
          f"min {min(times):.2f} s over {len(times)} starts (target ≤ 1 s)")  # fmt: skip
    print("\n| module (cumulative import) | ms |\n|---|---:|")
    for microseconds, name in slowest_imports(12):
        print(f"| {name.strip()} | {microseconds / 1000:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
