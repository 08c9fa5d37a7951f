"""Databases for the tests: SQLite always, PostgreSQL when TEST_POSTGRES_URL is set.

Every database is created empty, migrated with the real Alembic migrations and, where a test
needs data, loaded with the real seed files. Nothing calls `create_all`.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from api import PROJECT_ROOT, migrate
from api.dataset import read_datasets
from api.db import make_engine
from api.main import create_app
from api.records.loading import load_datasets
from tests.helpers import Writable, make_keys

SEED_DIR = PROJECT_ROOT / "seed"
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])


# The longest test files, started first: with `make test`'s two workers each taking a whole
# file at a time, the fuzzing stage no longer runs alone at the end.
LONGEST_FIRST = ("test_fuzz.py", "test_contract.py", "test_crash.py", "test_exports.py")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: each file's own order (by database) is kept


class DatabaseFactory:
    """Creates empty databases of one backend and drops them afterwards."""

    def __init__(self, backend: str, tmp_dir: Path) -> None:
        self.backend = backend
        self.tmp_dir = tmp_dir
        self.engines: list[Engine] = []
        self.postgres_databases: list[str] = []
        self.templates: dict[str, str] = {}  # kind -> url, made by `copy_of`

    def new_url(self, template: str | None = None) -> str:
        """A new, empty database; on PostgreSQL, a copy of database `template` if named."""
        name = f"cdmo_test_{uuid.uuid4().hex[:12]}"
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp_dir / name}.db"
        assert POSTGRES_URL is not None
        admin = make_engine(POSTGRES_URL)
        copy = f' TEMPLATE "{template}"' if template else ""
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SET statement_timeout = 0"))  # slow on a busy machine
            connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        admin.dispose()
        self.postgres_databases.append(name)
        return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    def new_engine(self) -> Engine:
        engine = make_engine(self.new_url())
        self.engines.append(engine)
        return engine

    def copy_of(self, kind: str) -> Engine:
        """A new database holding what a template of `kind` holds: "migrated" (the newest
        migration, no data) or "seeded" (and the seed dataset).

        Each template is made once per run the way any database is (the real migrations, the
        real seed files), then copied: a file copy on SQLite, `CREATE DATABASE ... TEMPLATE` on
        PostgreSQL. A test that needs a fresh database then costs milliseconds instead of the
        twenty migrations and a load (about 0.9 s on SQLite, 1.8 s on PostgreSQL)."""
        if kind not in self.templates:
            url = self.new_url()
            engine = make_engine(url)
            migrate.upgrade(engine)
            if kind == "seeded":
                seed(engine)
            engine.dispose()  # SQLite checkpoints its WAL into the file on the last close
            self.templates[kind] = url
        template = make_url(self.templates[kind])
        url = self.new_url(template=template.database)
        if self.backend == "sqlite":
            assert template.database is not None and make_url(url).database is not None
            # The template's engine is disposed, so its write-ahead log is in the file.
            assert not Path(f"{template.database}-wal").exists()
            shutil.copyfile(template.database, str(make_url(url).database))
        engine = make_engine(url)
        self.engines.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()
        if self.postgres_databases:
            assert POSTGRES_URL is not None
            admin = make_engine(POSTGRES_URL)
            with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.execute(text("SET statement_timeout = 0"))
                for name in self.postgres_databases:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def seed(engine: Engine, seed_dir: Path = SEED_DIR) -> dict[str, object]:
    """Load the dataset files under `seed_dir` in one transaction; returns the loader's counts."""
    datasets = read_datasets(seed_dir / "data", seed_dir / "sources")
    with Session(engine) as session, session.begin():
        return dict(load_datasets(session, datasets).counts)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def databases(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(backend, tmp_path_factory.mktemp(backend))
    yield factory
    factory.close()


@pytest.fixture(scope="session")
def seeded_engine(databases: DatabaseFactory) -> Engine:
    """A migrated database holding the seed dataset, shared by every read-only test."""
    engine = databases.new_engine()
    migrate.upgrade(engine)
    seed(engine)
    return engine


@pytest.fixture(scope="session")
def client(seeded_engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine=seeded_engine), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def empty_engine(databases: DatabaseFactory) -> Iterator[Engine]:
    """A fresh, empty database (no migrations applied); its pool is closed after the test, so
    a long run never holds more PostgreSQL connections than the tests under way need."""
    engine = databases.new_engine()
    yield engine
    engine.dispose()


@pytest.fixture
def migrated_engine(databases: DatabaseFactory) -> Iterator[Engine]:
    """A fresh database at the newest migration, with no data."""
    engine = databases.copy_of("migrated")
    yield engine
    engine.dispose()


@pytest.fixture
def fresh_seeded_engine(databases: DatabaseFactory) -> Iterator[Engine]:
    """A fresh database at the newest migration holding the seed dataset, for a test to change."""
    engine = databases.copy_of("seeded")
    yield engine
    engine.dispose()


@pytest.fixture
def writable(fresh_seeded_engine: Engine) -> Iterator[Writable]:
    keys = make_keys(fresh_seeded_engine)
    with TestClient(
        create_app(engine=fresh_seeded_engine), raise_server_exceptions=False
    ) as client:
        yield Writable(client, fresh_seeded_engine, keys)


@pytest.fixture
def seed_copy(tmp_path: Path) -> Path:
    """A private copy of seed/ that a test may edit."""
    target = tmp_path / "seed"
    shutil.copytree(SEED_DIR, target)
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, seconds: float = 60) -> None:
    """Wait until `url`/readyz answers 200 (or give up after `seconds`)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)


@contextmanager
def serving(
    engine: Engine, *args: str, log_to: Path | None = None, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real `cdmo-metrics serve` process (extra `args`, extra environment) over `engine`'s
    database, ready; stopped afterwards. `log_to`: a file for what it writes (its log)."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "LOG_LEVEL": "warning",
        **env,
    }
    log = open(log_to, "wb") if log_to else None  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), *args],
        env=environment,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        yield server, url
    finally:
        server.terminate()
        server.wait(timeout=20)
        if log:
            log.close()


@pytest.fixture(scope="session")
def server_url(seeded_engine: Engine) -> Iterator[str]:
    """A real `cdmo-metrics serve` process on a free port, over the seeded database."""
    with serving(seeded_engine) as (_server, url):
        yield url
