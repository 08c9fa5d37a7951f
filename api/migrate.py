"""Running Alembic from code: upgrade, downgrade and the head/current revisions.

Alembic is imported inside the functions that use it: `serve` never migrates, and leaving its
import (about 0.15 s) out of start-up brings the first answer sooner.
"""

from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, inspect, text

from api import PROJECT_ROOT
from api.db import writer

if TYPE_CHECKING:
    from alembic.config import Config


# Indexes on expressions, built by hand in migrations (autogenerate cannot compare them):
# subjects as the subject filter compares them (lower case), of the metrics (migration 0012)
# and of the tally by subject (0013).
EXPRESSION_INDEXES = {"ix_metric_subject_folded", "ix_metric_subject_count_folded"}


def include_name(name: str | None, kind: str, _parents: dict[str, str | None]) -> bool:
    """Autogenerate filter: the search indexes (and FTS5's shadow tables), their words and the
    indexes on expressions are built by hand in migrations, not declared as a model."""
    if kind == "index":
        return name not in EXPRESSION_INDEXES
    return not (kind == "table" and name is not None and ("_fts" in name or name == "search_word"))


def alembic_config() -> "Config":
    """The project's Alembic configuration, read from pyproject.toml."""
    from alembic.config import Config

    return Config(toml_file=PROJECT_ROOT / "pyproject.toml")


# Alembic's own table (its default name), holding the revision the database stands at.
VERSION_TABLE = "alembic_version"

# One key for every instance: migrations and seeding never run twice at once on PostgreSQL.
ADVISORY_LOCK_KEY = 0x63646D6F  # "cdmo"


def serialise(connection: Connection) -> None:
    """Inside a transaction on PostgreSQL, wait for any other instance's migration or seed,
    however long it takes, and lift the statement timeout for this transaction (a migration
    or a load may run longer than a request may): waiting under DB_STATEMENT_TIMEOUT_MS, an
    instance starting beside another that migrated a new database for over 5 s failed."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind `engine` up to `revision` (one instance at a time)."""
    from alembic import command

    with writer(engine).begin() as connection:
        serialise(connection)
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str = "base", *, data_loss: bool = False) -> None:
    """Migrate the database behind `engine` down to `revision`; a step that would drop tables
    holding data refuses (`DataLoss`, nothing changed) unless `data_loss` accepts it."""
    from alembic import command

    with writer(engine).begin() as connection:
        serialise(connection)
        config = alembic_config()
        config.attributes["connection"] = connection
        config.attributes[DATA_LOSS] = data_loss
        command.downgrade(config, revision)


# The downgrade option that accepts losing data: `alembic -x data_loss=accept downgrade REV`.
DATA_LOSS = "data_loss"


class DataLoss(RuntimeError):
    """A downgrade would drop tables that hold data."""


def refuse_losing(*tables: str) -> None:
    """In a migration's downgrade, before it drops `tables`: stop the whole downgrade (its
    transaction rolls back), naming what would be lost, when any of them holds rows, unless
    the caller accepted the loss."""
    from alembic import context, op

    accepted = context.get_x_argument(as_dictionary=True).get(DATA_LOSS) == "accept"
    if accepted or context.config.attributes.get(DATA_LOSS):
        return
    bind = op.get_bind()
    held = {
        table: bind.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() for table in tables
    }
    lost = ", ".join(
        f"{count:,} {'row' if count == 1 else 'rows'} of {table}"
        for table, count in held.items()
        if count
    )
    if lost:
        raise DataLoss(
            f"this downgrade would drop {lost}; nothing was changed. Export what you need "
            f"(GET /v1/dataset.zip, /v1/changes.ndjson), then run it again with "
            f"`alembic -x {DATA_LOSS}=accept downgrade ...` to accept the loss"
        )


@cache
def head_revision() -> str | None:
    """The newest migration in `migrations/versions` (read once per process)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database behind `engine` is at, or None when it was never migrated."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        return connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def databases(state: Any) -> dict[str, Engine]:
    """The databases an app (its `state`) serves from, by the name its problems give them."""
    found = {"database": state.engine}
    if state.read_engine is not state.engine:
        found["read replica"] = state.read_engine
    return found


def mismatch(engine: Engine, name: str = "database") -> str | None:
    """Why the database behind `engine` cannot serve this code (its migration is not this
    code's newest), or None when it can. Raises SQLAlchemyError when it is unreachable."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return None
    return f"The {name} is at migration {current!r}; this code needs {head!r}."
