"""Running Alembic from code: upgrade, downgrade and the head/current revisions."""

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from api import PROJECT_ROOT
from api.db import writer


def include_name(name: str | None, kind: str, _parents: dict[str, str | None]) -> bool:
    """Autogenerate filter: the search index (and FTS5's shadow tables) is built by hand in
    migrations, not declared as a model."""
    return not (kind == "table" and name is not None and name.startswith("metric_fts"))


def alembic_config() -> Config:
    """The project's Alembic configuration, read from pyproject.toml."""
    return Config(toml_file=PROJECT_ROOT / "pyproject.toml")


# One key for every instance: migrations and seeding never run twice at once on PostgreSQL.
ADVISORY_LOCK_KEY = 0x63646D6F  # "cdmo"


def serialise(connection: Connection) -> None:
    """Inside a transaction on PostgreSQL, wait for any other instance's migration or seed."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind `engine` up to `revision` (one instance at a time)."""
    with writer(engine).begin() as connection:
        serialise(connection)
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    """Migrate the database behind `engine` down to `revision`."""
    with writer(engine).begin() as connection:
        serialise(connection)
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def head_revision() -> str | None:
    """The newest migration in `migrations/versions`."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database behind `engine` is at, or None when it was never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
