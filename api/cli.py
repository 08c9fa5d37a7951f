"""The `cdmo-metrics` command: migrate, seed, import, keys, openapi, serve."""

import argparse
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

# Each command imports what it uses: `serve` need not load the loader, nor `keys` the server.
if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlmodel import Session

    from api.records.loading import Progress, Report


# SQLite pages a load keeps in memory (KiB): inserts into a dozen indexes of a table larger
# than SQLite's default 2 MB spilled and read pages again (100,000 metrics: 27.5 / 25.9 s ->
# 24.0 / 24.0 s, before and after alternately; 1 GiB was not faster).
LOAD_CACHE_KIB = 256 * 1024


@contextmanager
def _loading(engine: "Engine") -> Iterator["Session"]:
    """One load's transaction: after any other instance's migration or load, and without the
    statement timeout that keeps a request from holding a connection (a bulk statement over
    100,000 rows may take longer)."""
    from sqlmodel import Session

    from api import migrate

    with Session(engine) as session, session.begin():
        connection = session.connection()
        migrate.serialise(connection)  # PostgreSQL: and no statement timeout
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql(f"PRAGMA cache_size = -{LOAD_CACHE_KIB}")
        yield session


@contextmanager
def _database() -> Iterator["Engine"]:
    """The settings' database for one command, its connections closed when the command is done
    (so SQLite folds its write-ahead log into the file and removes it before the process
    exits: `console` does not wait for the interpreter to close them)."""
    from api.config import get_settings
    from api.db import make_engine

    settings = get_settings()
    engine = make_engine(settings.database_url, settings)
    try:
        yield engine
    finally:
        engine.dispose()


def _refusals(engine: "Engine") -> tuple[type[Exception], ...]:
    """What the database raises when it refuses a load or goes away: SQLAlchemy's errors, and
    the driver's own (a load writes through the driver's cursor: api.records.store)."""
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, engine.dialect.loaded_dbapi.Error)


def _migrate(_args: argparse.Namespace) -> int:
    from alembic.util import CommandError

    from api import migrate

    with _database() as engine:
        try:
            migrate.upgrade(engine)
            print(f"migrated to {migrate.current_revision(engine)}")
        except CommandError as exc:  # a revision this code does not know: a newer release's
            print(f"migrate failed, nothing was changed: {exc}", file=sys.stderr)
            return 1
        except _refusals(engine) as exc:  # unreachable, or refused: no traceback
            print(f"migrate failed, nothing was changed: {_reason(exc)}", file=sys.stderr)
            return 1
    return 0


def _not_migrated(engine: "Engine", command: str) -> bool:
    """Say so when the database is not at this code's migration: a load into another schema
    would fail (an older one) or write what the newer code does not expect."""
    from api import migrate

    mismatch = migrate.mismatch(engine)
    if mismatch is not None:
        print(f"{command} refused, nothing was written: {mismatch} Run `cdmo-metrics migrate` "
              "first (with this release's code).", file=sys.stderr)  # fmt: skip
    return mismatch is not None


def _seed(_args: argparse.Namespace) -> int:
    from api.config import get_settings
    from api.dataset import DatasetError, read_datasets
    from api.db import writer
    from api.records.loading import collector_paused, load_datasets

    settings = get_settings()
    with _database() as engine:
        try:
            if _not_migrated(engine, "seed"):
                return 1
            with collector_paused():
                datasets = read_datasets(settings.seed_dir / "data", settings.seed_dir / "sources")
                with _loading(writer(engine)) as session:
                    report = load_datasets(session, datasets)
        except DatasetError as exc:
            print(f"seed refused, nothing was written:\n{exc}", file=sys.stderr)
            return 1
        except _refusals(engine) as exc:  # the database refused or went away: no traceback
            print(f"seed failed, nothing was written: {_reason(exc)}", file=sys.stderr)
            return 1
        _tidy(engine, report)
    _print_report(report)
    return 0


def _reason(exc: Exception) -> str:
    """The first line of what the database said, for a one-line message without a traceback."""
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0]


def _tidy(engine: "Engine", report: "Report") -> None:
    """The maintenance after a committed load; its failure loses nothing, so it is a warning."""
    from sqlalchemy.exc import SQLAlchemyError

    from api.records.loading import tidy

    try:
        tidy(engine, report)
    except SQLAlchemyError as exc:
        reason = _reason(exc)
        print(f"warning: the load is committed, but VACUUM (ANALYZE) after it failed "
              f"({reason}); autovacuum will catch up", file=sys.stderr)  # fmt: skip


def _print_report(report: "Report") -> None:
    for kind, counts in report.counts.items():
        print(f"{kind:20} {counts}")
    for kept in report.kept:
        print(f"kept     {kept}: the file agrees with the last load; the correction stays")
    for conflict in report.conflicts:
        print(f"CONFLICT {conflict}: the file changed too; the correction stays, resolve by hand")
    if report.release_id is not None:
        print(f"release  {report.release_id}")


def _keys(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError
    from sqlmodel import Session

    from api.auth import service as auth_service
    from api.db import writer
    from api.errors import DomainError

    try:
        with _database() as engine, Session(writer(engine)) as session, session.begin():
            if args.keys_command == "create":
                token = auth_service.create_key(session, name=args.name, scope=args.scope)
                print(f"created key {args.name!r} with scope {args.scope!r}; it is shown once:")
                print(token)
            elif args.keys_command == "revoke":
                auth_service.revoke_key(session, name=args.name)
                print(f"revoked key {args.name!r}")
            else:
                for key in auth_service.list_keys(session):
                    state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
                    print(f"{key.name:30} {key.scope:6} {key.created_at:%Y-%m-%d} {state}")
    except DomainError as exc:
        print(exc.detail, file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:  # not migrated, or the database went away: no traceback
        reason = _reason(exc)
        print(f"keys {args.keys_command} failed: {reason} (is the database migrated? "
              "cdmo-metrics migrate)", file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _progress() -> "Progress | None":
    """A progress bar on a terminal (standard error); nothing when output is redirected."""
    if not sys.stderr.isatty():
        return None

    def show(step: str, done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        bar = "#" * filled + "-" * (width - filled)
        print(f"\r\x1b[K[{bar}] {done}/{total} {step}", end="", file=sys.stderr, flush=True)

    return show


class _DryRun(Exception):
    """`import --dry-run`: the load is done in its transaction, reported, and rolled back."""

    def __init__(self, report: "Report") -> None:
        super().__init__("dry run")
        self.report = report


def _import(args: argparse.Namespace) -> int:
    from api.dataset import DatasetError, dataset_files, read_files
    from api.db import writer
    from api.records.loading import IMPORT_ACTOR, STEPS, collector_paused, load_datasets

    files = dataset_files(Path(path) for path in args.paths)
    missing = [str(path) for path in files if not path.is_file()]
    if missing or not files:
        print(
            f"import: no dataset file at {', '.join(missing) or 'the paths given'}", file=sys.stderr
        )
        return 1
    sources = Path(args.sources) if args.sources else None
    progress = _progress()
    with _database() as engine:
        try:
            if _not_migrated(engine, "import"):
                return 1
            with collector_paused():
                datasets = read_files(files, lambda path: sources or path.parent)
                if progress:
                    metrics = sum(len(d.data.metrics) for d in datasets)
                    progress(f"read {len(files)} files, {metrics:,} metrics", 0, STEPS)
                with _loading(writer(engine)) as session:
                    label = args.label or f"import {', '.join(p.name for p in files)}"[:200]
                    report = load_datasets(
                        session, datasets, actor=IMPORT_ACTOR, label=label, progress=progress
                    )
                    if args.dry_run:
                        raise _DryRun(report)  # leaves the transaction: rolled back
        except _DryRun as dry:
            if progress:
                print(file=sys.stderr)
            dry.report.release_id = None
            _print_report(dry.report)
            print("dry run: nothing was written")
            return 0
        except DatasetError as exc:
            if progress:
                print(file=sys.stderr)
            print(f"import refused, nothing was written:\n{exc}", file=sys.stderr)
            return 1
        except _refusals(engine) as exc:  # the database refused or went away: no traceback
            if progress:
                print(file=sys.stderr)
            reason = _reason(exc)
            print(f"import failed, nothing was written: {reason}", file=sys.stderr)
            return 1
        if progress:
            print(file=sys.stderr)
        _tidy(engine, report)
    _print_report(report)
    return 0


def _openapi(_args: argparse.Namespace) -> int:
    from api.db import make_engine
    from api.main import create_app

    engine = make_engine("sqlite://")
    document = create_app(engine=engine).openapi()
    engine.dispose()
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from api.config import get_settings

    settings = get_settings()
    # uvicorn finishes in-flight requests on SIGTERM, then raises the signal again once it has
    # restored this handler: a stop asked for and carried out cleanly exits 0.
    signal.signal(signal.SIGTERM, lambda _signal, _frame: None)
    import uvicorn  # only the server needs it

    from api.http_protocol import ProblemHttpToolsProtocol
    from api.observability import log_config

    if (args.workers or settings.web_concurrency) > 1:
        gc.enable()  # this process only supervises the workers: no lifespan enables it

    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.web_concurrency,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
        access_log=False,  # the API writes its own JSON line per request (api.middleware)
        proxy_headers=True,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        # uvloop's event loop and httptools' parser (uvicorn[standard]): 3-4x the requests/s
        # of asyncio and h11 on this service (docs/benchmarks.md); an unparsable request is
        # answered with problem details (api.http_protocol).
        loop="uvloop",
        http=ProblemHttpToolsProtocol,
        ws="none",  # no WebSocket routes: the protocol is not even imported
    )
    return 0


def _within(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, as the setting it stands for."""

    def number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not from {low} to {high}")
        return value

    return number


def parser() -> argparse.ArgumentParser:
    """The command line: every command and option with its help."""
    from api.auth.service import SCOPES

    parser = argparse.ArgumentParser(
        prog="cdmo-metrics",
        description="Run and manage the CDMO Metrics API. Settings come from the environment "
        "(DATABASE_URL, SEED_DIR, HOST, PORT, ...; see the README).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("migrate", help="upgrade the database to the newest migration")
    commands.add_parser(
        "seed", help="load seed/data into the database (validated first; idempotent)"
    )
    load = commands.add_parser(
        "import", help="load dataset files and folders of them as one release"
    )
    load.add_argument(
        "paths", nargs="+", metavar="PATH",
        help="a dataset file in the format of seed/data/*.yaml, or a folder of them",
    )  # fmt: skip
    load.add_argument(
        "--sources", help="folder of the source texts (default: each file's own folder)"
    )
    load.add_argument("--label", help="the release label")
    load.add_argument(
        "--dry-run", action="store_true",
        help="check and report what the import would add, change and remove; write nothing",
    )  # fmt: skip
    keys = commands.add_parser("keys", help="manage API keys for writes")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="make a key; prints it once, last line")
    create.add_argument(
        "--name", required=True, help="a unique name for the key, shown in logs and revisions"
    )
    create.add_argument(
        "--scope",
        choices=SCOPES,
        default="write",
        help="write: create, change and delete metrics and context entities; admin: sources "
        "too (default: write)",
    )
    key_commands.add_parser("list", help="list keys (never their tokens)")
    revoke = key_commands.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name", help="the name the key was created with")
    commands.add_parser("openapi", help="print the OpenAPI document (as committed in openapi.json)")
    serve = commands.add_parser("serve", help="serve the API with uvicorn")
    serve.add_argument("--host", help="interface to bind (default: HOST)")
    serve.add_argument("--port", type=_within(1, 65535), help="port to listen on (default: PORT)")
    serve.add_argument(
        "--workers", type=_within(1, 64),
        help="worker processes, 1 to 64 (default: WEB_CONCURRENCY, else 1)",
    )  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code (`console` is the script's entry point)."""
    # Start-up allocates hundreds of thousands of objects (modules, models, routes, tables) that
    # all live as long as the process: the collector's passes over them free nothing and cost
    # about a sixth of start-up. Loads keep it paused to the end (api.records.loading); `serve`
    # resumes it once the app is up (api.main's lifespan).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _run(argv)
    finally:
        if collecting:
            gc.enable()


def _run(argv: list[str] | None) -> int:
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from api.config import get_settings

    args = parser().parse_args(argv)
    try:
        get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'_'.join(map(str, e['loc'])).upper() or 'SETTINGS'}: {e['msg']}"
            for e in exc.errors()
        )
        print(f"cdmo-metrics: invalid settings: {problems}", file=sys.stderr)
        return 2
    except SettingsError as exc:  # a variable that could not even be read as its type
        print(f"cdmo-metrics: invalid settings: {exc}", file=sys.stderr)
        return 2
    handlers = {
        "migrate": _migrate,
        "seed": _seed,
        "serve": _serve,
        "openapi": _openapi,
        "import": _import,
        "keys": _keys,
    }
    handler = handlers[args.command]
    return handler(args)


def console() -> None:
    """The `cdmo-metrics` console script (and `python -m api.cli`): `main`, then out of the
    process without the interpreter's tear-down. A load leaves hundreds of thousands of objects
    that Python would free one by one at exit, 0.15-0.2 s of a 10,000-metric import
    (docs/benchmarks-log.md); every command has committed and closed its connections by the time
    `main` returns, so only the output is left to flush."""
    code = main()
    logging.shutdown()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a reader that went away (`cdmo-metrics keys list | head -1`)
        code = code or 1
    os._exit(code)


if __name__ == "__main__":
    console()
