"""The `cdmo-metrics` command: serve, migrate, seed."""

import argparse
import json
import sys

import uvicorn
from sqlmodel import Session

from api import migrate
from api.config import get_settings
from api.dataset import DatasetError, read_datasets
from api.db import make_engine
from api.seeding import Report, load_datasets


def _migrate(_args: argparse.Namespace) -> int:
    settings = get_settings()
    engine = make_engine(settings.database_url, settings)
    migrate.upgrade(engine)
    print(f"migrated to {migrate.current_revision(engine)}")
    return 0


def _seed(_args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        datasets = read_datasets(settings.seed_dir / "data", settings.seed_dir / "sources")
        engine = make_engine(settings.database_url, settings)
        with Session(engine) as session, session.begin():
            report = load_datasets(session, datasets)
    except DatasetError as exc:
        print(f"seed refused, nothing was written:\n{exc}", file=sys.stderr)
        return 1
    _print_report(report)
    return 0


def _print_report(report: Report) -> None:
    for kind, counts in report.counts.items():
        print(f"{kind:20} {counts}")
    for kept in report.kept:
        print(f"kept     {kept}: the file agrees with the last load; the correction stays")
    for conflict in report.conflicts:
        print(f"CONFLICT {conflict}: the file changed too; the correction stays, resolve by hand")
    if report.release_id is not None:
        print(f"release  {report.release_id}")


def _openapi(_args: argparse.Namespace) -> int:
    from api.main import create_app

    document = create_app(engine=make_engine("sqlite://")).openapi()
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0


def _serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cdmo-metrics` console script."""
    parser = argparse.ArgumentParser(prog="cdmo-metrics", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="upgrade the database to the newest migration")
    commands.add_parser(
        "seed", help="load seed/data into the database (validated first; idempotent)"
    )
    commands.add_parser("openapi", help="print the OpenAPI document (as committed in openapi.json)")
    serve = commands.add_parser("serve", help="serve the API with uvicorn")
    serve.add_argument("--host", help="interface to bind (default: HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT)")
    args = parser.parse_args(argv)
    handler = {"migrate": _migrate, "seed": _seed, "serve": _serve, "openapi": _openapi}[
        args.command
    ]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
