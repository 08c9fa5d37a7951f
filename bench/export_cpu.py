"""CPU per row of a whole metric export, without HTTP: every chunk of `/v1/metrics.<format>` read
as the export engine reads it (`api.exports._read_chunk` with `api.metrics.encoding.read_chunk`),
timed by the CPU the reading process used and, on PostgreSQL, the CPU of the database's server
processes (read from /proc: run it on the database's machine). CPU time moves much less than
rows/s when other work shares the cores.

    python bench/export_cpu.py sqlite:////path/to/m1.db
    python bench/export_cpu.py postgresql+psycopg://postgres@127.0.0.1:5432/scale1m --rounds 2

`--sha256` also prints each export's digest (to show two versions of the code write the same
bytes). The database must hold metrics already (bench/scale.py's SYNTHETIC dataset, for example); it
is only read. Each round prints, per format: rows, bytes, wall time, and microseconds of CPU
per row in the reader, in the database, and both.
"""

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import exports
from api.config import Settings
from api.db import make_engine
from api.exports import Chunk, Format
from api.metrics import encoding
from api.metrics.schemas import MetricQuery
from api.records import asof


def database_cpu(engine: Engine, database: str | None) -> float:
    """CPU seconds used so far by the PostgreSQL server processes serving `database` (0 on
    SQLite, where the database runs in the reader's own process)."""
    if database is None:
        return 0.0
    with engine.connect() as connection:
        pids = connection.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = :name"), {"name": database}
        ).scalars()
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def export_once(engine: Engine, version: int, fmt: Format, digest: Any = None) -> tuple[int, int]:
    """Read every chunk of the export of all metrics in `fmt`: (rows, bytes). With `digest`
    (a hashlib object), every chunk is also written as the export engine writes it (without
    the CSV header) and hashed."""
    query = MetricQuery()

    def read(session: Session, after: list[Any] | None, limit: int) -> Chunk:
        return encoding.read_chunk(
            session, query=query, category=None, fmt=fmt, after=after, limit=limit
        )

    after: list[Any] | None = None
    rows = size = 0
    while True:
        chunk = exports._read_chunk(engine, version, read, after, exports.CHUNK_ROWS)
        written = chunk.written if chunk.written is not None else b""
        rows += written.count(b"\n") if chunk.written is not None else len(chunk.items)
        if digest is not None:
            if chunk.written is None:
                items = chunk.items
                written = (
                    exports._csv_chunk(items) if fmt is Format.csv else exports._ndjson_chunk(items)
                )
            digest.update(written)
        size += len(written)
        if chunk.after is None:
            return rows, size
        after = chunk.after


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("database_url")
    parser.add_argument("--formats", default="ndjson,csv")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--sha256",
        action="store_true",
        help="also print each export's SHA-256 (its body "
        "without the CSV header), to compare two versions of the code; adds CPU to the reader",
    )
    args = parser.parse_args(argv)
    engine = make_engine(args.database_url, Settings())
    asof.install(engine)
    database = engine.url.database if engine.dialect.name == "postgresql" else None
    with engine.connect() as connection:
        version = connection.execute(
            text("SELECT version FROM dataset_state WHERE id = 1")
        ).scalar_one()
    for _round in range(args.rounds):
        for name in args.formats.split(","):
            fmt = Format(name)
            wall, cpu = time.perf_counter(), time.process_time()
            server = database_cpu(engine, database)
            digest = hashlib.sha256() if args.sha256 else None
            rows, size = export_once(engine, version, fmt, digest)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            server = database_cpu(engine, database) - server
            per_row = 1e6 / max(rows, 1)
            print(
                f"{name:6} {rows:,} rows, {size:,} bytes: {wall:.2f} s ({rows / wall:,.0f} rows/s);"
                f" CPU per row: reader {cpu * per_row:.2f} us, database {server * per_row:.2f} us,"
                f" both {(cpu + server) * per_row:.2f} us",
                flush=True,
            )
            if digest is not None:
                print(f"{name:6} SHA-256 {digest.hexdigest()}", flush=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
