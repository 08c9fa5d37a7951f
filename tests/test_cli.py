"""The `cdmo-metrics` command as a user runs it."""

import argparse
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from api import cli
from tests.conftest import free_port
from tests.test_dataset import SOURCE_ID


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_migrate_then_seed_twice_then_a_bad_file(tmp_path: Path, seed_copy: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "SEED_DIR": str(seed_copy)}
    migrated = run("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    first = run("seed", env=env)
    assert first.returncode == 0, first.stderr
    assert "metrics              +42 ~0 -0 =0" in first.stdout
    second = run("seed", env=env)
    assert "metrics              +0 ~0 -0 =42" in second.stdout
    # The command leaves without the interpreter's tear-down, having closed its connections:
    # the database is whole in its file, with no write-ahead log left beside it (only the
    # empty file whose lock marks a write's commit window, api.records.versions).
    assert sorted(p.name for p in tmp_path.glob("cli.db*")) == ["cli.db", "cli.db-commit"]
    assert (tmp_path / "cli.db-commit").stat().st_size == 0

    path = seed_copy / "data" / f"{SOURCE_ID}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["metrics"][3]["unit"] = "furlongs"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    refused = run("seed", env=env)
    assert refused.returncode == 1
    assert "seed refused, nothing was written" in refused.stderr
    assert f"{path}: metrics[{data['metrics'][3]['id']}].unit: Input should be" in refused.stderr


def _commands(
    parser: argparse.ArgumentParser, path: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands(sub, f"{path} {name}".strip())
    return found


def test_every_command_and_option_has_help() -> None:
    commands = _commands(cli.parser())
    assert [name for name, _ in commands] == [
        "", "migrate", "seed", "import", "keys", "keys create", "keys list", "keys revoke",
        "openapi", "serve",
    ]  # fmt: skip
    for name, parser in commands:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions), name
            elif not isinstance(action, argparse._HelpAction):
                assert action.help, f"cdmo-metrics {name}: {action.dest} has no help"
    usage = run("--help", env={}).stdout
    for command in ("migrate", "seed", "import", "keys", "openapi", "serve"):
        assert f"    {command} " in usage
    create = run("keys", "create", "--help", env={}).stdout
    assert "--name NAME" in create and "a unique name for the key" in create
    assert "admin: sources too" in " ".join(create.split())


def test_keys_on_a_database_not_migrated_say_so(tmp_path: Path) -> None:
    listed = run("keys", "list", env={"DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"})
    assert listed.returncode == 1
    assert listed.stderr.startswith("keys list failed: no such table: api_key")
    assert "cdmo-metrics migrate" in listed.stderr and "Traceback" not in listed.stderr


def test_seed_and_migrate_refuse_a_database_they_cannot_load_in_one_line(tmp_path: Path) -> None:
    """The image's start (`migrate && seed && serve`) says what is wrong, never a traceback:
    seed into a database not migrated (or migrated by a newer release), migrate a database
    at a revision this code does not know, either against a server that is not there."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'new.db'}"}
    seeded = run("seed", env=env)
    assert seeded.returncode == 1 and "Traceback" not in seeded.stderr
    assert seeded.stderr.startswith(
        "seed refused, nothing was written: The database is at migration None; this code needs"
    )
    assert run("migrate", env=env).returncode == 0
    with sqlite3.connect(tmp_path / "new.db") as database:
        database.execute("UPDATE alembic_version SET version_num = '9999'")
    migrated = run("migrate", env=env)
    assert migrated.returncode == 1 and "Traceback" not in migrated.stderr
    assert migrated.stderr.startswith("migrate failed, nothing was changed: Can't locate revision")
    seeded = run("seed", env=env)
    assert seeded.returncode == 1 and "at migration '9999'" in seeded.stderr
    nowhere = {"DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none"}
    for command in ("migrate", "seed"):
        failed = run(command, env=nowhere)
        assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
        assert failed.stderr.count("\n") == 1 and "connection failed" in failed.stderr
