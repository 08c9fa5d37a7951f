"""Tables of the history: one revision per change of any record, and releases of data loads."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, Index, text
from sqlmodel import Field, SQLModel


class Release(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    label: str = Field(max_length=200)
    actor: str = Field(max_length=100)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    # The dataset version the load wrote; `created_at` is that version's timestamp.
    dataset_version: int | None = Field(default=None)
    added: int = 0
    changed: int = 0
    removed: int = 0


# The actors the loaders write as (seed, import); an API key may not take their names.
LOADER_ACTORS = ("seed", "import")
# Revisions an analyst wrote (through the API), as the partial index and its queries say it.
BY_ANALYST = f"actor NOT IN ({', '.join(repr(actor) for actor in LOADER_ACTORS)})"


class Revision(SQLModel, table=True):
    __table_args__ = (
        CheckConstraint("action IN ('create', 'update', 'delete')", name="action"),
        # A record's revisions, newest last: its newest is one backward seek (migration 0010).
        Index("ix_revision_kind_record_id_id", "kind", "record_id", "id"),
        # The records an analyst has written: few, so that a load of 100,000 records finds
        # which of them it must leave alone in one small index (migration 0010).
        Index(
            "ix_revision_by_analyst",
            "kind",
            "record_id",
            postgresql_where=text(BY_ANALYST),
            sqlite_where=text(BY_ANALYST),
        ),
        # The change feed's order, and the revisions of a range of versions (`since`, `as_of`,
        # a keyset page's seek: api.history.service; migration 0021).
        Index("ix_revision_dataset_version_id", "dataset_version", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=30)
    record_id: str = Field(max_length=100)
    version: int
    action: str = Field(max_length=10)
    actor: str = Field(max_length=100)
    # The dataset version (one committed transaction; its timestamp is in `dataset_version`);
    # `version` is the record's own.
    dataset_version: int
    # The full record after the change, in the dataset-file shape; null for a delete.
    data: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    changes: list[str] = Field(default_factory=list, sa_type=JSON)
    release_id: int | None = Field(default=None, foreign_key="release.id", index=True)


class DatasetVersion(SQLModel, table=True):
    """When each dataset version was committed: its timestamp, taken just before the commit
    (api.records.versions), one row per version rather than a copy on each of its revisions,
    which a load of 1,000,000 metrics would have had to rewrite at its end (migration 0020)."""

    __tablename__ = "dataset_version"
    __table_args__ = (
        # as_of: the newest version at or before a moment is one seek.
        Index("ix_dataset_version_at", "at", "version"),
    )

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    at: datetime = Field(sa_type=DateTime(timezone=True))
