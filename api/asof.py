"""Point-in-time reads (`as_of`): the dataset as it stood at a moment, rebuilt from the history.

The history holds every record's full state after each change, so the dataset at time T is the
newest revision of each record made at or before T, tombstones excepted. For a T before the
newest change, that state is written into a private SQLite replica (through the same record
writes as everything else, so search and derived fields behave identically) and the request is
served from it with the ordinary read code. Replicas are cached by the last revision they
contain, so a given moment is rebuilt once.
"""

import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from api import migrate, records
from api.db import make_engine, writer
from api.history.models import Revision
from api.schemas import Timestamp

KIND_ORDER = ["source", "metric", "technology", "pricing_model", "regulatory_change",
              "bottleneck", "faq"]  # fmt: skip
CACHED_REPLICAS = 8
_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(Timestamp)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


class Replicas:
    """Point-in-time replicas of one live database, built on demand and cached."""

    def __init__(self) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="cdmo-asof-"))
        self._engines: OrderedDict[int, Engine] = OrderedDict()
        self._lock = threading.Lock()

    def resolve(self, live: Engine, moment: datetime) -> int | None:
        """The last revision made at or before `moment` (0 before any); None when that is
        the newest, so the live data already is the answer."""
        moment = _utc(moment)
        with Session(live) as session:
            if session.get_bind().dialect.name == "sqlite":
                moment = moment.replace(tzinfo=None)
            newest = session.execute(select(func.max(Revision.id))).scalar_one()
            upto = session.execute(
                select(func.max(Revision.id)).where(col(Revision.at) <= moment)
            ).scalar_one()
        if newest is None or upto == newest:
            return None
        return upto or 0

    def engine(self, live: Engine, upto: int) -> Engine:
        """The replica holding the dataset as of revision `upto`."""
        with self._lock:
            if upto in self._engines:
                self._engines.move_to_end(upto)
                return self._engines[upto]
            engine = self._build(live, upto)
            self._engines[upto] = engine
            while len(self._engines) > CACHED_REPLICAS:
                _, old = self._engines.popitem(last=False)
                old.dispose()
            return engine

    def _build(self, live: Engine, upto: int) -> Engine:
        path = self._folder / f"as-of-{upto}.db"
        path.unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        with Session(live) as session:
            revisions = session.execute(
                select(Revision).where(col(Revision.id) <= upto).order_by(col(Revision.id))
            ).scalars()
            latest: dict[tuple[str, str], Revision] = {}
            for revision in revisions:
                latest[(revision.kind, revision.record_id)] = revision
        with Session(writer(engine)) as replica, replica.begin():
            for kind_name in KIND_ORDER:
                kind = records.KINDS[kind_name]
                for (name, _record_id), revision in sorted(latest.items()):
                    if name == kind_name and revision.data is not None:
                        records.write(replica, kind, revision.data, actor=revision.actor)
        return engine

    def close(self) -> None:
        """Dispose of every replica and its files."""
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()
        shutil.rmtree(self._folder, ignore_errors=True)


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    """A session on the live data, or with `?as_of=` on the replica of that moment.

    A malformed `as_of` is left to the route's parameter validation, which answers 422. The
    dependency is `async` so that a plain read costs no hand-off to a thread of its own (the
    session connects when the handler, in its thread, first queries); only an `as_of` replica,
    which may need building, is resolved in a thread.
    """
    engine: Engine = request.app.state.read_engine
    info: dict[str, int] = {}
    raw = request.query_params.get("as_of")
    if raw is not None:
        try:
            moment = _TIMESTAMP.validate_python(raw)
        except ValidationError:
            moment = None
        if moment is not None:
            engine, info = await run_in_threadpool(_replica, request, engine, moment)
    with Session(engine, info=info) as session:
        yield session


def _replica(request: Request, live: Engine, moment: datetime) -> tuple[Engine, dict[str, int]]:
    """The engine of the replica at `moment` (the live one when nothing had happened yet)."""
    upto = request.app.state.replicas.resolve(live, moment)
    if upto is None:
        return live, {}
    return request.app.state.replicas.engine(live, upto), {"as_of_revision": upto}


ReadSessionDep = Annotated[Session, Depends(get_read_session)]
