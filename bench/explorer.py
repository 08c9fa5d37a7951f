"""The explorer's pages: how long each takes to render cold, and how many bytes it transfers.

    python bench/explorer.py                      # SQLite, and PostgreSQL if reachable
    python bench/explorer.py --databases sqlite --repeat 3
    python bench/explorer.py --synthetic 10000    # the seed and 10,000 made-up metrics

For each database it migrates and seeds a fresh one, starts `cdmo-metrics serve` with the
response cache off (RESPONSE_CACHE_BYTES=0: every request renders the page again), and asks
for each page with `Accept-Encoding: gzip`: the first request of the new process (templates not
yet compiled, the database's pages not yet read: a cold start), then `--repeat` more whose
median is the ordinary uncached render. Then headless Chromium (Debian's, through Playwright)
loads each page with an empty cache and reports its load event and the bytes it transferred,
stylesheet and script included. It prints one markdown table; a page meets the targets when it
loads in under 1 s and transfers under 150 KB (the article page is excepted from the size).
Exit code 0 when everything ran, targets met or not (a measurement, not a test); 1 on an HTTP
status other than 200.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

PAGES = [
    "/",
    "/explore/metrics",
    "/explore/metrics?q=cost&category=market",
    "/explore/metrics/car-t-dose-manufacturing-cost",
    "/explore/sources/coreychem-future-of-cdmos-2026",
    "/explore/market",
    "/explore/technologies",
    "/explore/regulatory",
    "/explore/pricing",
    "/explore/mna",
    "/explore/bottlenecks",
    "/explore/faq",
]
ARTICLE = "/explore/sources/"
TIME_TARGET_MS = 1000
SIZE_TARGET = 150 * 1024
CLI = Path(sys.executable).with_name("cdmo-metrics")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _database(kind: str, folder: str, postgres_url: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder}/explorer.db"
        return
    name = f"bench_explorer_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


_PAGE_LOAD = """() => {
  const [navigation] = performance.getEntriesByType("navigation");
  const assets = performance.getEntriesByType("resource");
  return [navigation.loadEventEnd, [navigation, ...assets].reduce((n, e) => n + e.transferSize, 0)];
}"""


def _in_browser(base: str) -> dict[str, tuple[float, int]]:
    """Each page in headless Chromium with an empty cache: (load event in ms, bytes transferred
    with its stylesheet and script)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from playwright.sync_api import sync_playwright

    from tests.browser.pages import launch

    found = {}
    with sync_playwright() as playwright:
        browser = launch(playwright)
        for page in PAGES:
            context = browser.new_context()  # a cold cache for every page
            tab = context.new_page()
            tab.goto(base + page, wait_until="load")
            loaded, transferred = tab.evaluate(_PAGE_LOAD)
            found[page] = (float(loaded), int(transferred))
            context.close()
        browser.close()
    return found


def _measure(
    url: str, repeat: int, synthetic: Path | None
) -> list[tuple[str, float, float, int, float, int]]:
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "warning", "RESPONSE_CACHE_BYTES": "0"}
    subprocess.run([CLI, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([CLI, "seed"], env=env, check=True, stdout=subprocess.DEVNULL)
    if synthetic is not None:
        subprocess.run(
            [CLI, "import", str(synthetic)], env=env, check=True, stdout=subprocess.DEVNULL
        )
    port = _free_port()
    server = subprocess.Popen([CLI, "serve", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"
    rows = []
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        with httpx.Client(base_url=base, headers={"Accept-Encoding": "gzip"}) as client:
            for page in PAGES:
                times = []
                size = 0
                for _ in range(repeat + 1):
                    started = time.perf_counter()
                    response = client.get(page)
                    times.append((time.perf_counter() - started) * 1000)
                    if response.status_code != 200:
                        raise SystemExit(f"{page}: HTTP {response.status_code}")
                    size = (
                        len(response.content)
                        if "content-encoding" not in response.headers
                        else (int(response.headers.get("content-length", 0)))
                    )
                rows.append((page, times[0], statistics.median(times[1:]), size))
        browser = _in_browser(base)
    finally:
        server.terminate()
        server.wait(timeout=20)
    return [(*row, *browser[row[0]]) for row in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        help="also import this many made-up metrics (bench/synthetic.py) beside the seed",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    print(
        "| page | database | server, first (ms) | server, median (ms) | HTML gzip (KB) "
        "| browser load, cold (ms) | browser transferred, all (KB) | met |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        synthetic = None
        if args.synthetic:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import synthetic as made_up

            synthetic = Path(folder) / "synthetic"
            made_up.write(synthetic, args.synthetic, max(1, args.synthetic // 200))
        for kind in args.databases.split(","):
            with _database(kind, folder, args.postgres_url) as url:
                for page, first, median, size, load, total in _measure(url, args.repeat, synthetic):
                    met = load < TIME_TARGET_MS and (
                        page.startswith(ARTICLE) or total < SIZE_TARGET
                    )
                    print(
                        f"| `{page}` | {kind} | {first:.0f} | {median:.0f} | {size / 1024:.1f} "
                        f"| {load:.0f} | {total / 1024:.1f} | {'yes' if met else 'NO'} |"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
