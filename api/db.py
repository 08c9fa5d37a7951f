"""Engines: SQLite tuned for safe concurrent writes, PostgreSQL with bounded pools and statements.

Requests get their sessions from api.records: reads from `asof` (live, or at a dataset
version), writes from `routes`."""

import functools
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, LargeBinary, MetaData, cast, event
from sqlalchemy.engine import make_url
from sqlalchemy.types import UserDefinedType
from sqlmodel import SQLModel, create_engine

from api import normal_form
from api.config import Settings

metadata: MetaData = SQLModel.metadata


WRITE_OPTION = "cdmo_write"
# Requests run in threads: anyio's (up to 40: writes and the routes api.direct does not serve)
# and the direct reads' own (READ_THREADS).
ANYIO_THREADS = 40
READ_THREADS = 20
# And the revision probe's connection, and the event loop's own (SQLite reads tried on the loop:
# api.direct).
SQLITE_POOL_SIZE = ANYIO_THREADS + READ_THREADS + 2
# SQLite calls its progress handler every this many steps of a statement's program: a few
# hundred microseconds apart at most (one step is tens of nanoseconds), at no measurable cost.
PROGRESS_STEPS = 10_000


class _Bounded(threading.local):
    """The CPU time of this thread (`time.thread_time`) by which its SQLite statements must
    have finished, if any: the work a read has done, not the time it was kept waiting (a
    process preempted by another would otherwise find its lightest reads over budget)."""

    deadline: float | None = None
    interrupted = False


BOUNDED = _Bounded()


def _past_deadline() -> int:
    """SQLite's progress handler: non-zero interrupts the statement (sqlite3 raises
    OperationalError), once the thread's deadline (`BOUNDED`) has passed."""
    deadline = BOUNDED.deadline
    if deadline is not None and time.thread_time() > deadline:
        BOUNDED.interrupted = True
        return 1
    return 0


# How long an SQLite statement waits for another connection's write lock (a long load) before
# "database is locked": a write is then answered 503 with Retry-After.
BUSY_TIMEOUT_MS = 10_000


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # SQLite ignores foreign keys unless each connection asks for them; WAL lets readers go on
    # while one writer commits; FULL sync makes an acknowledged write survive a power cut.
    dbapi_connection.isolation_level = None  # transactions are begun by _begin_sqlite below
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "memory":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
    normal_form.register(dbapi_connection)  # search documents are indexed in NFKC
    dbapi_connection.set_progress_handler(_past_deadline, PROGRESS_STEPS)


def _begin_sqlite(connection: Connection) -> None:
    # A write transaction takes the write lock up front (BEGIN IMMEDIATE): a read-then-write
    # transaction that upgrades its lock later can fail with "database is locked".
    options = connection.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    # Through the driver: SQLAlchemy's execution of it cost as much as the rest of the start.
    connection.connection.driver_connection.execute(  # type: ignore[union-attr]
        "BEGIN IMMEDIATE" if options.get(WRITE_OPTION) else "BEGIN"
    )


@functools.cache
def _bytes_loader() -> type:
    """psycopg's loader of a value as the bytes it holds; psycopg is imported when a
    PostgreSQL engine first connects (an SQLite server's start-up would pay 100 ms for it)."""
    from psycopg.adapt import Loader

    class Bytes(Loader):
        def load(self, data: Any) -> bytes:
            return bytes(data)

    return Bytes


class Bpchar(UserDefinedType[bytes]):
    """PostgreSQL's `bpchar`, text that this module's connections load as bytes."""

    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "bpchar"


def as_bytes(column: ColumnElement[str], dialect: str) -> ColumnElement[bytes]:
    """A text column read as the bytes of its UTF-8, with no str made of it and encoded
    again: SQLite's as a BLOB, PostgreSQL's as `bpchar` (loaded as bytes; trailing blanks,
    which `bpchar` drops, must not matter)."""
    return cast(column, Bpchar() if dialect == "postgresql" else LargeBinary())


def _configure_postgresql(dbapi_connection: Any, _record: Any) -> None:
    # `bpchar` (SQL's `character` without a length) arrives as the bytes it holds: an export
    # casts each chunk's joined lines to it (api.metrics.encoding), which PostgreSQL sends as
    # is, so that a chunk of megabytes is neither decoded into a str nor encoded again. No
    # table has a column of that type.
    dbapi_connection.adapters.register_loader("bpchar", _bytes_loader())


def make_engine(url: str, settings: Settings | None = None) -> Engine:
    """An engine for `url`; SQLite files get their folder created and foreign keys switched on."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        pool: dict[str, int] = {}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # A connection for each thread a request may run in, rather than opening (and
            # configuring) one per request above a smaller pool, or waiting for one. (An
            # in-memory database has one connection per thread, and no such pool.)
            pool = {"pool_size": SQLITE_POOL_SIZE, "max_overflow": 0}
        engine = create_engine(url, connect_args={"check_same_thread": False}, **pool)
        event.listen(engine, "connect", _configure_sqlite)
        event.listen(engine, "begin", _begin_sqlite)
        return engine
    settings = settings or Settings()
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        connect_args={
            "connect_timeout": 3,
            # A query that runs away is cut and answered 503 rather than holding a worker.
            # No JIT: its 50-100 ms of compiling is spent exactly on the statements over large
            # tables (a count or facets at 1,000,000 metrics, a load's search documents), which
            # run in tens of milliseconds without it.
            "options": f"-c statement_timeout={settings.db_statement_timeout_ms} -c jit=off",
        },
    )
    event.listen(engine, "connect", _configure_postgresql)
    return engine


def writer(engine: Engine) -> Engine:
    """`engine` for write transactions (on SQLite they take the write lock when they begin)."""
    return engine.execution_options(**{WRITE_OPTION: True})
