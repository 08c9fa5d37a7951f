"""CDMO Metrics API: structured, sourced industry metrics served as JSON."""

from pathlib import Path

from sqlmodel import SQLModel

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Set before any table is declared: constraint names must be identical on SQLite and PostgreSQL
# so that migrations can address them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
