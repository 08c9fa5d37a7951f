"""Alembic environment: the URL comes from the caller (tests, CLI) or from Settings."""

from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection
from sqlmodel.sql.sqltypes import AutoString

from api.config import get_settings
from api.db import make_engine
from api.migrate import include_name
from api.models import metadata

config = context.config


def render_item(kind: str, obj: Any, _context: AutogenContext) -> str | bool:
    """Render SQLModel's AutoString as plain sa.String so migrations never import sqlmodel."""
    if kind == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things in place: batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # One transaction for the whole run, on SQLite too (Alembic assumes SQLite's DDL is not
        # transactional and commits each step; it is, with the BEGIN api.db issues): a step
        # that fails, or refuses to lose data (api.migrate.refuse_losing), leaves the database
        # where it was, not halfway.
        transactional_ddl=True,
        compare_type=True,
        render_item=render_item,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    engine = make_engine(get_settings().database_url)
    with engine.connect() as new_connection:
        run_migrations(new_connection)
    engine.dispose()
