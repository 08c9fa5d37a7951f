"""API keys: 256-bit random tokens, stored only as SHA-256 hashes; writes limited per key."""

import hashlib
import hmac
import logging
import math
import secrets
from datetime import UTC, datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from api.auth.models import ApiKey, RateWindow
from api.errors import Conflict, NotFound
from api.history.models import LOADER_ACTORS

logger = logging.getLogger("api.auth")

SCOPES = ("write", "admin")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(session: Session, *, name: str, scope: str) -> str:
    """Store a new key named `name` and return its token (the only time it is ever shown)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    # The actors the system writes as: a key of one of these names would pass its corrections
    # off as a load's, and the next load would revert them.
    if name.strip().lower() in LOADER_ACTORS:
        raise Conflict(f"{name!r} is reserved: the loader records its own changes as that.")
    token = secrets.token_urlsafe(32)  # 32 random bytes: 256 bits
    session.add(
        ApiKey(name=name, scope=scope, token_hash=_hash(token), created_at=datetime.now(UTC))
    )
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"A key named {name!r} exists already.") from None
    return token


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, oldest first (hashes included, tokens never stored)."""
    return list(session.execute(select(ApiKey).order_by(col(ApiKey.id))).scalars())


def revoke_key(session: Session, *, name: str) -> None:
    """Revoke the key named `name`; it stops working at once."""
    revoked = session.execute(
        update(ApiKey)
        .where(col(ApiKey.name) == name, col(ApiKey.revoked_at).is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    if revoked.rowcount != 1:  # type: ignore[attr-defined]
        raise NotFound(f"There is no active key named {name!r}.")


def authenticate(session: Session, token: str) -> ApiKey | None:
    """The key `token` belongs to (revoked or not), or None."""
    digest = _hash(token)
    key: ApiKey | None = session.execute(
        select(ApiKey).where(col(ApiKey.token_hash) == digest)
    ).scalar_one_or_none()
    # Found by hash, so timing reveals nothing of the token; still compared in constant time.
    if key is None or not hmac.compare_digest(key.token_hash, digest):
        return None
    return key


def count_write(session: Session, *, key_name: str, window_seconds: int) -> tuple[int, int]:
    """Count one write for `key_name` in the current window, shared by every process through
    the database; returns (writes so far in this window, seconds until it ends)."""
    window, reset = window_of(window_seconds)
    table = RateWindow.__table__  # type: ignore[attr-defined]
    updated = session.execute(
        update(table)
        .where(table.c.key_name == key_name, table.c.window_start == window)
        .values(count=table.c.count + 1)
    )
    if updated.rowcount == 0:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.execute(
                    insert(table).values(key_name=key_name, window_start=window, count=1)
                )
        except IntegrityError:
            session.execute(
                update(table)
                .where(table.c.key_name == key_name, table.c.window_start == window)
                .values(count=table.c.count + 1)
            )
    session.execute(
        table.delete().where(table.c.key_name == key_name, table.c.window_start < window)
    )
    count = session.execute(
        select(func.coalesce(func.max(table.c.count), 0)).where(
            table.c.key_name == key_name, table.c.window_start == window
        )
    ).scalar_one()
    return int(count), reset


def window_of(window_seconds: int) -> tuple[int, int]:
    """The start of the current fixed window (Unix seconds) and the whole seconds until it
    ends, rounded up so that a client waiting Retry-After seconds lands in the next window."""
    now = datetime.now(UTC).timestamp()
    window = int(now // window_seconds) * window_seconds
    return window, max(1, math.ceil(window + window_seconds - now))
