"""Reads at a dataset version (`as_of`): the ordinary read code, answered from the history.

A read session for `as_of=T` carries the version V in force at T (the newest committed at or
before T). Every statement it runs has each versioned table replaced by the rows of its history
twin that were current at V (`periods.current_at`), under the same name and columns, so the
services' queries (filters, search, sort, facets, exports) need no knowledge of history. The
history is append-only below the newest version, so the answer for V never changes.
"""

import functools
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import (
    URL,
    Column,
    Connection,
    Engine,
    Integer,
    Select,
    Table,
    bindparam,
    event,
    select,
)
from sqlalchemy.sql import visitors
from sqlmodel import Session, col

from api.history.models import DatasetVersion
from api.records import versions
from api.records.periods import VERSIONED, current_at, kept_columns
from api.schemas import Timestamp

OPTION = "as_of_version"
TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(Timestamp)
_VERSION = bindparam(OPTION, type_=Integer)
# The live version, read through the driver at the start of every read (SQLAlchemy's execution
# of the same statement cost 30-40 µs of CPU, as much as the rest of the transaction's start).
_CURRENT = f"SELECT version, changed_at FROM {versions.DatasetState.__tablename__} WHERE id = 1"
# On PostgreSQL the same round trip makes the read one snapshot: its default level, READ
# COMMITTED, gives each statement its own, so that a page could hold a record that its count
# and its `Dataset-Version` (read here) do not. REPEATABLE READ costs a read-only transaction
# nothing more; set through SQLAlchemy (a level on the engine, set and reset around every
# checkout) it cost 100 µs of CPU a read. Writes stay READ COMMITTED: each waits for the lock
# on `dataset_state` and must then see what the write before it committed.
_CURRENT_SNAPSHOT = f"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; {_CURRENT}"
# session.info: the live (version, changed_at) a read began at, which the reads' own caches
# are keyed by (api.metrics.service): a migration that rebuilds the search indexes (0016)
# moves `changed_at` without a new version.
REVISION = "dataset_revision"
# session.info: the read waits out the commit window (`versions.settle`) whatever its `as_of`
# (the change feed's pages, which pollers go on from by time).
SETTLE = "settle"


def newest_version(until: Any) -> Any:
    """SQL: the newest version committed at or before `until` (as the database keeps times;
    null before any), one seek on `ix_dataset_version_at`."""
    return (
        select(col(DatasetVersion.version))
        .where(col(DatasetVersion.at) <= until)
        .order_by(col(DatasetVersion.at).desc(), col(DatasetVersion.version).desc())
        .limit(1)
        .scalar_subquery()
    )


def version_at(connection: Connection | Session, moment: datetime) -> int:
    """The newest version committed at or before `moment` (0 before any)."""
    moment = moment.astimezone(UTC)
    bind = connection.get_bind() if isinstance(connection, Session) else connection
    if bind.dialect.name == "sqlite":
        moment = moment.replace(tzinfo=None)  # SQLite keeps naive UTC text
    found = connection.execute(select(newest_version(moment))).scalar_one_or_none()
    return int(found or 0)


@functools.cache
def _at_version(live: Table) -> Any:
    """The rows of `live`'s history current at the version bound as `as_of_version`, named and
    shaped as `live` (built once per table: the version is a bound parameter)."""
    history = VERSIONED[live]
    return (
        select(*[history.c[column.name] for column in kept_columns(live)])
        .where(current_at(history, _VERSION))
        .subquery(live.name)
    )


def _rewrite(
    connection: Any, clause: Any, multiparams: Any, params: Any, execution_options: Any
) -> tuple[Any, Any, Any]:
    version = connection.get_execution_options().get(OPTION)
    if version is None or not isinstance(clause, Select):
        return clause, multiparams, params

    def replace(element: Any) -> Any:
        if isinstance(element, Table) and element in VERSIONED:
            return _at_version(element)
        if isinstance(element, Column) and element.table in VERSIONED:
            return _at_version(element.table).c[element.name]
        return None

    rewritten: Any = visitors.replacement_traverse(clause, {}, replace)  # type: ignore[call-overload]
    return rewritten, multiparams, {**(params or {}), OPTION: version}


def install(engine: Engine) -> None:
    """Let sessions on `engine` read at a version (see `at_version`)."""
    if not event.contains(engine, "before_execute", _rewrite):
        event.listen(engine, "before_execute", _rewrite, retval=True)


def answered_at(session: Session) -> int:
    """The dataset version a read session answers at (live or `as_of`), as its transaction
    learned it when it began."""
    session.connection()  # begins the transaction, if no query has yet
    return int(session.info["dataset_version"])


def read_version(session: Session) -> int | None:
    """The version a read session answers at, if it is not the live data."""
    option = session.connection().get_execution_options().get(OPTION)
    return None if option is None else int(option)


@event.listens_for(Session, "after_begin")
def _begin_read(session: Session, _transaction: Any, connection: Any) -> None:
    """A read learns, in its own transaction, the version it answers at: the live one, or the
    one in force at its `as_of`. It is the `Dataset-Version` header of the response, and every
    statement of the read sees the data of that moment."""
    request = session.info.get("request")
    if request is None:
        return
    moment = session.info.get("as_of")
    settled = None
    if session.info.get(SETTLE) or (moment is not None and not _before_known(connection, moment)):
        settled = versions.settle(connection)
    cursor = connection.connection.driver_connection.cursor()
    try:
        if connection.dialect.name == "postgresql":
            cursor.execute(_CURRENT_SNAPSHOT)
            cursor.nextset()
        else:
            cursor.execute(_CURRENT)
        live, changed_at = cursor.fetchone()
    finally:
        cursor.close()
    session.info[REVISION] = (live, changed_at)
    if moment is None:
        version = live
    else:
        _known(connection, changed_at)
        version = version_at(connection, moment)
        connection.execution_options(**{OPTION: version})
    if settled is not None and (moment is None or moment >= settled):
        # The answer may yet change: a feed page a poller goes on from, or `as_of` a moment
        # not yet past when the wait began. The response cache does not keep it.
        request.state.unsettled = True
    request.state.dataset_version = session.info["dataset_version"] = version


# The newest version's timestamp each database is known to have committed (by URL), as the
# reads `as_of` a moment saw it. A moment before it needs no wait (`versions.settle`): any
# version not yet visible will be dated after it.
_KNOWN: dict[URL, datetime] = {}


def _utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _known(connection: Connection, changed_at: datetime | str) -> None:
    key = connection.engine.url
    at = _utc(changed_at)
    if key not in _KNOWN or _KNOWN[key] < at:
        _KNOWN[key] = at


def _before_known(connection: Connection, moment: datetime) -> bool:
    known = _KNOWN.get(connection.engine.url)
    return known is not None and moment < known
