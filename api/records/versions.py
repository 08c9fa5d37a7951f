"""Dataset versions: every committed transaction that changes data is one version, with one
number and one timestamp (a row of `dataset_version`, which its revisions name).

Write transactions are serialised: on SQLite by BEGIN IMMEDIATE (api.db), on PostgreSQL by
locking the one `dataset_state` row first (`lock`). The version number is taken at the first
change (`allocate`), so numbers follow commit order and a transaction that changes nothing takes
none; its timestamp is taken just before the commit (`_stamp`), so that a version is dated when
it became visible: a read `as_of` a moment during a long load, or a `/v1/changes?since` poll
made then, answers the same before and after the load commits. Timestamps never go backwards.

Between that stamp and the end of the commit (the commit window) the version is dated but not
yet visible. A read whose answer turns on dates, `as_of` a moment at or after the newest version
it knows of, or a page of the change feed, waits first for any write inside its window
(`settle`): afterwards every version dated before the wait began is visible to it, and every
later one is dated after. Otherwise an `as_of` just after a stamp answered the version before,
and the same request answered the new one once the commit ended (a 73 ms window was seen on
SQLite under load), and a feed poller asking `since` its last poll's time missed that version
for good. Writers mark their window with a lock only they take exclusively: PostgreSQL's
advisory lock `WINDOW_KEY`, released with the transaction; on SQLite an flock(2) on the file
`<database>-commit` beside the database (not on the database file itself, whose descriptors
must never be closed by another than SQLite: that drops its POSIX locks). A reader takes the
lock shared and lets it go at once. Either is given back by the system if the writer dies.
"""

import fcntl
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, case, event, insert, literal, select, text, update
from sqlmodel import Field, Session, SQLModel, col

from api.history.models import DatasetVersion, Release

_KEY = "dataset_version"
_RELEASED = "dataset_release"
_WINDOW = "dataset_commit_window"  # session.info: the window file a writer holds (SQLite)
# PostgreSQL's advisory lock of the commit window ("cdmo" in ASCII); no other lock uses it.
WINDOW_KEY = 0x63646D6F
_SETTLE_SQL = f"SELECT pg_advisory_lock_shared({WINDOW_KEY}); " \
    f"SELECT pg_advisory_unlock_shared({WINDOW_KEY})"  # fmt: skip


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


def taken(session: Session) -> Version | None:
    """The version this transaction writes, if it has changed anything yet."""
    return session.info.get(_KEY)


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


def window_file(url: Any) -> str | None:
    """The file whose flock(2) marks the commit window of the SQLite database at `url` (None
    for one in memory, which no other connection shares)."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-commit"


def _enter_window(session: Session) -> None:
    """Take the commit window's lock exclusively (writers are serialised already: no writer
    waits here for another, only for readers letting go of it)."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.execute(text(f"SELECT pg_advisory_xact_lock({WINDOW_KEY})"))
        return
    path = window_file(bind.engine.url)
    if path is not None:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        session.info[_WINDOW] = descriptor  # closed, and so unlocked, by _close_window
        fcntl.flock(descriptor, fcntl.LOCK_EX)


def settle(connection: Connection) -> datetime:
    """Wait until no write is inside its commit window, before `connection`'s read takes its
    snapshot (no statement of its transaction has run); return the moment the wait began:
    every version dated before it is visible to the read, every later one dated after it."""
    began = datetime.now(UTC)
    if connection.dialect.name == "postgresql":
        driver: Any = connection.connection.driver_connection
        # Outside the read's transaction, which begins at its next statement: a statement in
        # it would take the read's snapshot before the wait, not after.
        driver.autocommit = True
        try:
            driver.execute(_SETTLE_SQL)
        finally:
            driver.autocommit = False
        return began
    path = window_file(connection.engine.url)
    if path is None:
        return began
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # no write has opened a window yet: none is open now
        return began
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)
    finally:
        os.close(descriptor)
    return began


@event.listens_for(Session, "before_commit")
def _stamp(session: Session) -> None:
    """Date this transaction's version at its commit (never before the previous version,
    whatever the clock does): the dataset state, the version's row and the release it wrote.
    The commit window opens here (`_enter_window`), before the clock is read."""
    taken: Version | None = session.info.get(_KEY)
    if taken is None:
        return
    _enter_window(session)
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


@event.listens_for(Session, "after_transaction_end")
def _close_window(session: Session, transaction: Any) -> None:
    """The commit has ended, or the transaction otherwise (a failed commit, a closed session,
    a lost connection): the window closes, its file's descriptor with it."""
    if transaction.parent is None and _WINDOW in session.info:
        os.close(session.info.pop(_WINDOW))
