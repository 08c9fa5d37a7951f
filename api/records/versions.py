"""Dataset versions: every committed transaction that changes data is one version, with one
number and one timestamp shared by all its revisions.

Write transactions are serialised: on SQLite by BEGIN IMMEDIATE (api.db), on PostgreSQL by
locking the one `dataset_state` row first (`lock`). The version is taken at the first change
(`allocate`), so numbers follow commit order, timestamps never go backwards, and a transaction
that changes nothing takes none.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, case, event, select, update
from sqlmodel import Field, Session, SQLModel, col

_KEY = "dataset_version"


class DatasetState(SQLModel, table=True):
    __tablename__ = "dataset_state"

    id: int = Field(default=1, primary_key=True)
    version: int = Field(default=0)
    changed_at: datetime = Field(sa_type=DateTime(timezone=True))


@dataclass(frozen=True)
class Version:
    """The version a transaction writes."""

    number: int
    at: datetime


def current(session: Session) -> int:
    """The version the data stands at (as seen by this session's transaction)."""
    state = DatasetState.__table__  # type: ignore[attr-defined]
    return int(session.execute(select(state.c.version).where(state.c.id == 1)).scalar_one())


def lock(session: Session) -> None:
    """Start a write: wait for every other writer to finish (PostgreSQL; SQLite's writes
    already begin with the lock). Everything read after this is what the write builds on."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(col(DatasetState.version)).where(col(DatasetState.id) == 1).with_for_update()
        )


def allocate(session: Session) -> Version:
    """The version of this transaction's changes, taken at its first change."""
    taken: Version | None = session.info.get(_KEY)
    if taken is not None:
        return taken
    now = datetime.now(UTC)
    if session.get_bind().dialect.name == "sqlite":
        now_value: object = now.replace(tzinfo=None)
    else:
        now_value = now
    state = DatasetState.__table__  # type: ignore[attr-defined]
    number, at = session.execute(
        update(state)
        .where(state.c.id == 1)
        .values(
            version=state.c.version + 1,
            # Never before the previous version, whatever the clock does.
            changed_at=case((state.c.changed_at > now_value, state.c.changed_at), else_=now_value),
        )
        .returning(state.c.version, state.c.changed_at)
    ).one()
    taken = Version(number, at if at.tzinfo else at.replace(tzinfo=UTC))
    session.info[_KEY] = taken
    return taken


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_KEY, None)
