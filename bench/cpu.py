"""CPU per request, in process: what the application itself costs, without a server or a network.

    python bench/cpu.py                       # SQLite, seed dataset
    python bench/cpu.py --database-url postgresql+psycopg://...   # an existing, seeded database

Calls the ASGI application directly (no server, no sockets) and divides the process's CPU time
(`time.process_time`, all threads) by the requests made: a cached page of 50, one metric and a
304, then, with the response cache off, cold pages. CPU time, unlike wall time or wrk's
requests/s, hardly moves when other processes share the cores, so these figures can be compared
across runs on a busy machine. The server's own share (uvicorn's parser and event loop) is not
in them: `make bench` measures the whole.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _scope(path: str, query: bytes, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": query, "root_path": "",
        "headers": [(b"host", b"bench"), *headers], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip


async def _measure(app: Any, path: str, query: bytes, headers: list[Any], count: int) -> float:
    """CPU microseconds per request, after a warm-up."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    for _ in range(max(3, count // 20)):
        sent.clear()
        await app(_scope(path, query, headers), receive, send)
    started = time.process_time()
    for _ in range(count):
        sent.clear()
        await app(_scope(path, query, headers), receive, send)
    if sent[0]["status"] not in (200, 304):
        raise SystemExit(f"{path}?{query.decode()}: {sent[0]['status']}")
    return (time.process_time() - started) / count * 1e6


async def _run(url: str, count: int) -> None:
    from api.config import Settings
    from api.db import make_engine
    from api.main import create_app

    engine = make_engine(url)
    cached = create_app(Settings(log_level="warning"), engine)
    cold = create_app(Settings(log_level="warning", response_cache_bytes=0), engine)
    for app in (cached, cold):
        app.state.probe.start()
    print("| request | CPU µs per request |")
    print("|---|---:|")
    item = "/v1/metrics/viral-vector-lead-time"
    for name, path, query in [("cached page of 50", "/v1/metrics", b"limit=50"),
                              ("cached one metric", item, b"")]:  # fmt: skip
        print(f"| {name} | {await _measure(cached, path, query, [], count):.1f} |")
        sent: list[Any] = []

        async def keep(message: Any, sent: list[Any] = sent) -> None:
            sent.append(message)

        async def nothing() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        await cached(_scope(path, query, []), nothing, keep)
        etag = dict(sent[0]["headers"])[b"etag"]
        cost = await _measure(cached, path, query, [(b"if-none-match", etag)], count)
        print(f"| 304 of the {name.removeprefix('cached ')} | {cost:.1f} |")
    for name, query in [
        ("cold page of 50 (cache off)", b"limit=50&sort=id"),
        ("cold filtered, sorted page", b"category=market&forecast=false&sort=-value_high,id"),
        ("cold q page", b"q=cell+therapy"),
    ]:
        cost = await _measure(cold, "/v1/metrics", query, [], max(50, count // 100))
        print(f"| {name} | {cost:,.0f} |")
    for app in (cached, cold):
        app.state.probe.stop()
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", help="a migrated, seeded database (default: a new "
                        "SQLite file with the seed dataset)")  # fmt: skip
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    url = args.database_url
    if url is not None:
        asyncio.run(_run(url, args.requests))
        return 0
    from sqlmodel import Session

    from api import migrate
    from api.dataset import read_datasets
    from api.db import make_engine
    from api.records.loading import load_datasets

    with tempfile.TemporaryDirectory(prefix="cdmo-cpu-") as folder:
        url = f"sqlite:///{folder}/bench.db"
        engine = make_engine(url)
        migrate.upgrade(engine)
        datasets = read_datasets(ROOT / "seed" / "data", ROOT / "seed" / "sources")
        with Session(engine) as session, session.begin():
            load_datasets(session, datasets, label="bench")
        engine.dispose()
        asyncio.run(_run(url, args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
