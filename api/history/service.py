"""Reading the history: revisions of one record, the change feed, releases."""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, true
from sqlmodel import Session, col

from api.errors import NotFound
from api.history.models import DatasetVersion, Release, Revision
from api.history.schemas import ReleasePublic, RevisionPublic
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


def changes(
    session: Session,
    *,
    since: datetime | None,
    limit: int,
    offset: int,
    as_of: datetime | None = None,
) -> tuple[list[RevisionPublic], int]:
    """Every revision at or after `since` (and up to `as_of`), oldest first."""
    where = _changes_where(session, since, as_of)
    total = session.execute(select(func.count()).select_from(Revision).where(where)).scalar_one()
    rows = session.execute(_revisions(where).order_by(col(Revision.id)).limit(limit).offset(offset))
    return [_public(*row) for row in rows], total


def changes_after(
    session: Session,
    *,
    since: datetime | None,
    as_of: datetime | None,
    version: int,
    after: int | None,
    limit: int,
) -> list[RevisionPublic]:
    """Up to `limit + 1` revisions at or after `since` (and up to `as_of`) of dataset versions
    up to `version`, oldest first, after the revision `after` (an export's chunk)."""
    where = _changes_where(session, since, as_of) & (col(Revision.dataset_version) <= version)
    if after is not None:
        where = where & (col(Revision.id) > after)
    rows = session.execute(_revisions(where).order_by(col(Revision.id)).limit(limit + 1))
    return [_public(*row) for row in rows]


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
