"""Dataset versions: every committed transaction that changes data is one version, with one
number and one timestamp (a row of `dataset_version`, which its revisions name).

Write transactions are serialised: on SQLite by BEGIN IMMEDIATE (api.db), on PostgreSQL by
locking the one `dataset_state` row first (`lock`). The version number is taken at the first
change (`allocate`), so numbers follow commit order and a transaction that changes nothing takes
none; its timestamp is taken just before the commit (`_stamp`), so that a version is dated when
it became visible: a read `as_of` a moment during a long load, or a `/v1/changes?since` poll
made then, answers the same before and after the load commits. Timestamps never go backwards.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, case, event, insert, literal, select, update
from sqlmodel import Field, Session, SQLModel, col

from api.history.models import DatasetVersion, Release

_KEY = "dataset_version"
_RELEASED = "dataset_release"


class DatasetState(SQLModel, table=True):
    __tablename__ = "dataset_state"

    id: int = Field(default=1, primary_key=True)
    version: int = Field(default=0)
    changed_at: datetime = Field(sa_type=DateTime(timezone=True))


@dataclass(frozen=True)
class Version:
    """The version a transaction writes: its number, and its timestamp (until the commit, the
    moment of its first change)."""

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


def label(actor: str, at: datetime) -> str:
    """The label of a release whose loader gave none."""
    return f"{actor} {at:%Y-%m-%dT%H:%M:%SZ}"


def released(session: Session) -> None:
    """Note that this transaction wrote a release (a load), whose timestamp `_stamp` sets too."""
    session.info[_RELEASED] = True


def _stored(session: Session, moment: datetime) -> object:
    """`moment` as the database keeps it (SQLite: naive UTC text)."""
    return moment.replace(tzinfo=None) if session.get_bind().dialect.name == "sqlite" else moment


def allocate(session: Session) -> Version:
    """The version of this transaction's changes, taken at its first change (its timestamp is
    taken at the commit, `_stamp`)."""
    taken: Version | None = session.info.get(_KEY)
    if taken is not None:
        return taken
    state = DatasetState.__table__  # type: ignore[attr-defined]
    number = session.execute(
        update(state)
        .where(state.c.id == 1)
        .values(version=state.c.version + 1)
        .returning(state.c.version)
    ).scalar_one()
    taken = Version(number, datetime.now(UTC))
    session.info[_KEY] = taken
    return taken


@event.listens_for(Session, "before_commit")
def _stamp(session: Session) -> None:
    """Date this transaction's version at its commit (never before the previous version,
    whatever the clock does): the dataset state, the version's row and the release it wrote."""
    taken: Version | None = session.info.get(_KEY)
    if taken is None:
        return
    now = _stored(session, datetime.now(UTC))
    state = DatasetState.__table__  # type: ignore[attr-defined]
    stored = session.execute(
        update(state)
        .where(state.c.id == 1)
        .values(changed_at=case((state.c.changed_at > now, state.c.changed_at), else_=now))
        .returning(state.c.changed_at)
    ).scalar_one()
    session.execute(
        insert(DatasetVersion.__table__).values(  # type: ignore[attr-defined]
            version=taken.number, at=stored
        )
    )
    at = stored if stored.tzinfo else stored.replace(tzinfo=UTC)
    if session.info.get(_RELEASED):  # and its default label, which names the moment
        release = Release.__table__  # type: ignore[attr-defined]
        was, now_named = literal(label("", taken.at)), literal(label("", at))
        session.execute(
            update(release)
            .where(release.c.dataset_version == taken.number)
            .values(
                created_at=stored,
                label=case(
                    (release.c.label == release.c.actor + was, release.c.actor + now_named),
                    else_=release.c.label,
                ),
            )
        )
    session.info[_KEY] = Version(taken.number, at)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_KEY, None)
    session.info.pop(_RELEASED, None)
