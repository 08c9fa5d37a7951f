"""Reading the history: revisions of one record, the change feed, releases."""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, func, select, true, tuple_
from sqlmodel import Session, col

from api.errors import InvalidInput, NotFound
from api.history.models import DatasetVersion, Release, Revision
from api.history.schemas import ReleasePublic, RevisionPublic
from api.pagination import cursor_values, encode_cursor
from api.records.asof import newest_version

_FIELDS = [name for name in RevisionPublic.model_fields if name != "at"]


def _revisions(where: ColumnElement[bool]) -> Select[Revision, datetime]:
    """The revisions `where` selects, each with its version's timestamp."""
    return (
        select(Revision, col(DatasetVersion.at))
        .join(DatasetVersion, col(DatasetVersion.version) == col(Revision.dataset_version))
        .where(where)
    )


def _public(revision: Revision, at: datetime) -> RevisionPublic:
    return RevisionPublic.model_validate(
        {**{name: getattr(revision, name) for name in _FIELDS}, "at": at}
    )


def _first_version(start: Any) -> Any:
    """The first version committed at or after `start` (timestamps follow version numbers)."""
    return (
        select(col(DatasetVersion.version))
        .where(col(DatasetVersion.at) >= start)
        .order_by(col(DatasetVersion.at), col(DatasetVersion.version))
        .limit(1)
        .scalar_subquery()
    )


def _until(session: Session, moment: datetime | None) -> datetime | None:
    """`moment` in UTC, as the database compares it (SQLite stores naive UTC text)."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None) if session.get_bind().dialect.name == "sqlite" else moment


def record_revisions(
    session: Session,
    *,
    kind: str,
    label: str,
    record_id: str,
    limit: int,
    offset: int,
    as_of: datetime | None = None,
) -> tuple[list[RevisionPublic], int]:
    """Revisions of one record (up to `as_of`), newest first; NotFound if there are none."""
    where = (col(Revision.kind) == kind) & (col(Revision.record_id) == record_id)
    until = _until(session, as_of)
    if until is not None:
        where = where & (col(Revision.dataset_version) <= newest_version(until))
    total = session.execute(select(func.count()).select_from(Revision).where(where)).scalar_one()
    if total == 0:
        raise NotFound(f"There is no {label} {record_id!r}, and there never was.")
    rows = session.execute(
        _revisions(where).order_by(col(Revision.id).desc()).limit(limit).offset(offset)
    )
    return [_public(*row) for row in rows], total


def _changes_where(
    session: Session, since: datetime | None, as_of: datetime | None
) -> ColumnElement[bool]:
    where: ColumnElement[bool] = true()
    start, until = _until(session, since), _until(session, as_of)
    if start is not None:
        where = where & (col(Revision.dataset_version) >= _first_version(start))
    if until is not None:
        where = where & (col(Revision.dataset_version) <= newest_version(until))
    return where


# The feed's order: by dataset version (commit order), then by revision id (the order its
# transaction wrote them in). An `after=` token names a revision by both, after this tag, which
# no metric sort order equals (api.metrics.service.sort_tag).
FEED_ORDER = "dataset_version,id"
# Both columns are 32-bit integers on PostgreSQL: a larger number is no revision's.
_COLUMN_LIMIT = 2**31


def feed_cursor(revision: RevisionPublic) -> str:
    """The `after=` token of the page that follows `revision` in the feed."""
    return encode_cursor([FEED_ORDER, revision.dataset_version, revision.id])


def feed_position(token: str) -> tuple[int, int]:
    """The (dataset version, revision id) an `after=` token (api.pagination.Cursor) names; a
    token of another collection or sort order, or one this API did not give, is a 422."""
    tag, *values = cursor_values(token)
    if tag != FEED_ORDER:
        raise InvalidInput("query", "after", "this cursor is for another collection or order")
    if len(values) != 2 or not all(type(v) is int and 0 < v < _COLUMN_LIMIT for v in values):
        raise InvalidInput("query", "after", "not a cursor this API gave (use the `next` link)")
    return values[0], values[1]


def _feed(
    session: Session,
    where: ColumnElement[bool],
    *,
    after: Sequence[int] | None,
    limit: int,
    offset: int,
) -> list[Row[Revision, datetime]]:
    """Up to `limit + 1` of the revisions `where` selects, in the feed's order, `offset` past
    the revision `after` names (or the start), each with its version's timestamp.

    Past a cursor, each statement is one range of `ix_revision_dataset_version_id`. PostgreSQL
    seeks a row comparison in it; as `dataset_version = v AND id > i` it walked the primary key
    instead, past every later version's revisions (1.2 s at 1,000,000). SQLite seeks a row
    value by its first column only (150 ms to pass the cursor's version in a load of 500,000),
    so there the rest of the cursor's version and the versions after it are read one after the
    other; an offset from a cursor counts through both in one query."""
    version, revision_id = col(Revision.dataset_version), col(Revision.id)
    parts = [where]
    if after is not None and session.get_bind().dialect.name == "postgresql":
        parts = [where & (tuple_(version, revision_id) > tuple_(after[0], after[1]))]
    elif after is not None:
        rest, later = (version == after[0]) & (revision_id > after[1]), version > after[0]
        if offset:
            parts = [where & (version >= after[0]) & (rest | later)]
        else:
            parts = [where & rest, where & later]
    rows: list[Row[Revision, datetime]] = []
    for part in parts:
        wanted = limit + 1 - len(rows)
        if wanted > 0:
            statement = _revisions(part).order_by(version, revision_id)
            rows += session.execute(statement.limit(wanted).offset(offset)).all()
    return rows


def changes(
    session: Session,
    *,
    since: datetime | None,
    limit: int,
    offset: int,
    as_of: datetime | None = None,
    after: Sequence[int] | None = None,
    counted: bool = True,
) -> tuple[list[RevisionPublic], int | None, bool]:
    """Up to `limit` revisions at or after `since` (and up to `as_of`) in the feed's order,
    `offset` past the revision `after` names (keyset) or the start; their total (None unless
    `counted`; a first page that holds every match is its own count), and whether more follow."""
    where = _changes_where(session, since, as_of)
    rows = _feed(session, where, after=after, limit=limit, offset=offset)
    items, more = [_public(*row) for row in rows[:limit]], len(rows) > limit
    total: int | None = None
    if counted:
        if after is None and not more and (items or offset == 0):
            total = offset + len(items)
        else:
            count = select(func.count()).select_from(Revision).where(where)
            total = session.execute(count).scalar_one()
    return items, total, more


def latest_changes(session: Session, *, limit: int, as_of: datetime | None) -> list[RevisionPublic]:
    """The last `limit` revisions up to `as_of` (or now), oldest first: read from the end of the
    feed's index, not counted to from its start (the explorer's home page)."""
    where = _changes_where(session, None, as_of)
    version, revision_id = col(Revision.dataset_version), col(Revision.id)
    newest = _revisions(where).order_by(version.desc(), revision_id.desc()).limit(limit)
    return [_public(*row) for row in reversed(session.execute(newest).all())]


def changes_after(
    session: Session,
    *,
    since: datetime | None,
    as_of: datetime | None,
    version: int,
    after: Sequence[int] | None,
    limit: int,
) -> list[RevisionPublic]:
    """Up to `limit + 1` revisions at or after `since` (and up to `as_of`) of dataset versions
    up to `version`, in the feed's order, after the revision `after` names as (dataset
    version, id) (an export's chunk)."""
    where = _changes_where(session, since, as_of) & (col(Revision.dataset_version) <= version)
    return [_public(*row) for row in _feed(session, where, after=after, limit=limit, offset=0)]


def _releases_where(session: Session, as_of: datetime | None) -> ColumnElement[bool]:
    until = _until(session, as_of)
    return true() if until is None else col(Release.created_at) <= until


def stream_releases(session: Session, *, as_of: datetime | None = None) -> Iterator[ReleasePublic]:
    """Every release (up to `as_of`), newest first."""
    statement = select(Release).where(_releases_where(session, as_of))
    rows = session.execute(statement.order_by(col(Release.id).desc()))
    yield from (ReleasePublic.model_validate(row, from_attributes=True) for row in rows.scalars())


def releases(
    session: Session, *, limit: int, offset: int, as_of: datetime | None = None
) -> tuple[list[ReleasePublic], int]:
    """Seed runs and imports that changed something (up to `as_of`), newest first."""
    where = _releases_where(session, as_of)
    total = session.execute(select(func.count()).select_from(Release).where(where)).scalar_one()
    rows = session.execute(
        select(Release).where(where).order_by(col(Release.id).desc()).limit(limit).offset(offset)
    ).scalars()
    return [ReleasePublic.model_validate(row, from_attributes=True) for row in rows], total
