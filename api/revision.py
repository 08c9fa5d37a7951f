"""The dataset revision: one counter, raised in the same transaction as every change of data."""

from datetime import UTC, datetime

from sqlalchemy import DateTime, text, update
from sqlmodel import Field, Session, SQLModel, col, select


class DatasetState(SQLModel, table=True):
    __tablename__ = "dataset_state"

    id: int = Field(default=1, primary_key=True)
    revision: int = Field(default=0)
    changed_at: datetime = Field(sa_type=DateTime(timezone=True))


def current(session: Session) -> int:
    """The revision the data stands at."""
    return session.exec(select(DatasetState.revision).where(DatasetState.id == 1)).one()


def bump(session: Session) -> None:
    """Record that the data changed (call inside the transaction that changed it)."""
    session.execute(
        update(DatasetState)
        .where(col(DatasetState.id) == 1)
        .values(revision=DatasetState.revision + 1, changed_at=datetime.now(UTC))
    )
    if session.get_bind().dialect.name == "postgresql":
        # Delivered at commit to every instance listening (api.response_cache.RevisionProbe).
        session.execute(text("NOTIFY cdmo_revision"))
