"""Reading the history: revisions of one record, the change feed, releases."""

from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, select, true
from sqlmodel import Session, col

from api.errors import NotFound
from api.history.models import Release, Revision
from api.history.schemas import ReleasePublic, RevisionPublic


def _public(revision: Revision) -> RevisionPublic:
    return RevisionPublic.model_validate(revision, from_attributes=True)


def record_revisions(
    session: Session, *, kind: str, label: str, record_id: str, limit: int, offset: int
) -> tuple[list[RevisionPublic], int]:
    """Revisions of one record, newest first; NotFound when it never existed."""
    where = (col(Revision.kind) == kind) & (col(Revision.record_id) == record_id)
    total = session.execute(select(func.count()).select_from(Revision).where(where)).scalar_one()
    if total == 0:
        raise NotFound(f"There is no {label} {record_id!r}, and there never was.")
    rows = session.execute(
        select(Revision).where(where).order_by(col(Revision.id).desc()).limit(limit).offset(offset)
    ).scalars()
    return [_public(row) for row in rows], total


def changes(
    session: Session, *, since: datetime | None, limit: int, offset: int
) -> tuple[list[RevisionPublic], int]:
    """Every revision at or after `since`, oldest first: a feed to catch up from."""
    where: ColumnElement[bool] = true()
    if since is not None:
        since = since.astimezone(UTC)
        if session.get_bind().dialect.name == "sqlite":
            since = since.replace(tzinfo=None)  # SQLite compares the stored UTC text
        where = col(Revision.at) >= since
    total = session.execute(select(func.count()).select_from(Revision).where(where)).scalar_one()
    rows = session.execute(
        select(Revision).where(where).order_by(col(Revision.id)).limit(limit).offset(offset)
    ).scalars()
    return [_public(row) for row in rows], total


def releases(session: Session, *, limit: int, offset: int) -> tuple[list[ReleasePublic], int]:
    """Seed runs and imports that changed something, newest first."""
    total = session.execute(select(func.count()).select_from(Release)).scalar_one()
    rows = session.execute(
        select(Release).order_by(col(Release.id).desc()).limit(limit).offset(offset)
    ).scalars()
    return [ReleasePublic.model_validate(row, from_attributes=True) for row in rows], total
