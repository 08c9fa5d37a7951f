"""Loads validated dataset files as one release at one dataset version, set-based: every kind is
read once, compared in memory, checked by the same validation as the API, and written in
batches. Records an analyst has changed through the API are left as they are."""

import gc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Table, create_engine, func, insert, select, text
from sqlalchemy.pool import NullPool
from sqlmodel import Session, col

from api import search
from api.dataset import Dataset, DatasetError
from api.history.models import BY_ANALYST, LOADER_ACTORS, Release, Revision
from api.records import store, versions
from api.records.kinds import Kind
from api.records.periods import VERSIONED
from api.records.registry import KINDS
from api.records.store import Change, Stored, chunks
from api.records.validation import Check, check_record, prefetch_references

# Records last written by a loader are the loader's to change; others are an analyst's.
SEED_ACTOR, IMPORT_ACTOR = LOADER_ACTORS

# (what is being done, steps done, steps in all): a load reads, checks and writes each kind.
Progress = Callable[[str, int, int], None]
STEPS = 2 * len(KINDS) + 1
# Connections that VACUUM after a load on PostgreSQL, each a table at a time.
TIDY_CONNECTIONS = 2


@dataclass
class Counts:
    """What a load did to one kind of record."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"+{self.added} ~{self.changed} -{self.removed} ={self.unchanged}"


@dataclass
class Report:
    """Counts per section, the release written (if anything changed) and the records skipped."""

    counts: dict[str, Counts] = field(default_factory=dict)
    release_id: int | None = None
    kept: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)  # the kinds it changed


def _section(kind: Kind) -> str:
    return kind.section or "sources"


def _records(dataset: Dataset) -> dict[str, list[dict[str, Any]]]:
    """The records of a dataset file in canonical form, by kind."""
    source = dataset.data.source
    found: dict[str, list[dict[str, Any]]] = {
        "source": [source.model_dump(mode="json", exclude={"text_file"}) | {"text": dataset.text}]
    }
    for kind in KINDS.values():
        if kind.section:
            found[kind.name] = [
                entry.model_dump(mode="json") | {"source_id": source.id}
                for entry in getattr(dataset.data, kind.section)
            ]
    return found


def _last_writes(
    session: Session, kind: Kind, record_ids: Sequence[str]
) -> dict[str, tuple[str, Any]]:
    """(actor, data) of the newest revision of each record an analyst has ever written; the
    others' newest (every revision) is a loader's."""
    edited: list[str] = []
    for group in chunks(list(record_ids)):
        edited += session.execute(
            select(col(Revision.record_id))
            .distinct()
            .where(
                col(Revision.kind) == kind.name,
                text(BY_ANALYST),  # as the partial index ix_revision_by_analyst says it
                store.among(session, col(Revision.record_id), group),
            )
        ).scalars()
    found: dict[str, tuple[str, Any]] = {}
    for group in chunks(edited):
        newest = (
            select(func.max(col(Revision.id)))
            .where(
                col(Revision.kind) == kind.name,
                store.among(session, col(Revision.record_id), group),
            )
            .group_by(col(Revision.record_id))
        )
        rows = session.execute(
            select(col(Revision.record_id), col(Revision.actor)).where(col(Revision.id).in_(newest))
        )
        found.update({record_id: (actor, None) for record_id, actor in rows})
    return found


def _last_loaded(session: Session, kind: Kind, record_id: str) -> Any:
    """The record as a loader last wrote it."""
    return session.execute(
        select(col(Revision.data))
        .where(
            col(Revision.kind) == kind.name,
            col(Revision.record_id) == record_id,
            col(Revision.actor).in_(LOADER_ACTORS),
        )
        .order_by(col(Revision.id).desc())
        .limit(1)
    ).scalar_one_or_none()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a load. A load allocates millions of objects
    that live until it ends; the collector's passes over them cost 40% of a 10,000-metric import
    and free nothing. Reference counting still frees everything else; the collector runs again
    afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_datasets(
    session: Session,
    datasets: Sequence[Dataset],
    *,
    actor: str = SEED_ACTOR,
    label: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Write `datasets` in the caller's (write) transaction, as one release; DatasetError
    naming every problem, with file and record, if any record is refused."""
    versions.lock(session)
    report = Report()
    wanted: dict[str, dict[str, tuple[Dataset, dict[str, Any]]]] = {name: {} for name in KINDS}
    for dataset in datasets:
        for kind_name, entries in _records(dataset).items():
            for data in entries:
                wanted[kind_name][data["id"]] = (dataset, data)
    source_ids = sorted(wanted["source"])
    stored: dict[str, dict[str, Stored]] = {}
    for name, kind in KINDS.items():
        stored[name] = {}
        if kind.name != "source":
            stored[name] = store.read_many(session, kind, source_ids=source_ids)
        elsewhere = sorted(set(wanted[name]) - set(stored[name]))  # new, or another source's
        stored[name] |= store.read_many(session, kind, ids=elsewhere)
        if progress:
            progress(f"read {kind.plural}", list(KINDS).index(name) + 1, STEPS)

    problems = _foreign_ids(wanted, stored)
    differing: dict[str, list[Change]] = {}
    for name, kind in KINDS.items():
        counts = report.counts.setdefault(_section(kind), Counts())
        differing[name] = []
        for record_id, (_dataset, data) in wanted[name].items():
            old = stored[name].get(record_id)
            if old is not None and old.data == data:
                counts.unchanged += 1
            else:
                differing[name].append(Change(record_id, old, data))
        if name != "source":
            differing[name] += [
                Change(record_id, old, None)
                for record_id, old in sorted(stored[name].items())
                if record_id not in wanted[name] and old.data["source_id"] in wanted["source"]
            ]

    # The documents of every differing record are computed from here on (those of records an
    # analyst has changed, which the load keeps, go unused).
    with _documents_ahead(session, differing):
        changes: dict[str, list[Change]] = {}
        for name, kind in KINDS.items():
            last = _last_writes(session, kind, [c.record_id for c in differing[name]])
            changes[name] = []
            for change in differing[name]:
                editor = last.get(change.record_id, (SEED_ACTOR, None))[0]
                if editor not in LOADER_ACTORS:
                    what = f"{kind.label} {change.record_id!r}"
                    if change.old is None:  # an analyst deleted it: it stays deleted
                        report.kept.append(f"{what} (deleted by {editor})")
                    elif change.new is None:
                        report.kept.append(f"{what} (added by {editor})")
                    elif _last_loaded(session, kind, change.record_id) == change.new:
                        report.kept.append(f"{what} (edited by {editor})")
                    else:
                        report.conflicts.append(f"{what} (edited by {editor})")
                    continue
                changes[name].append(change)
        if progress:
            progress("checked every record", len(KINDS) + 1, STEPS)
        problems += _check(session, wanted, changes)
        if problems:
            raise DatasetError(problems)
        if any(changes.values()):
            _write(session, changes, report, actor=actor, label=label, progress=progress)
    return report


@contextmanager
def _documents_ahead(session: Session, changes: dict[str, list[Change]]) -> Iterator[None]:
    """On PostgreSQL, have the search documents of the records about to be written computed
    on a connection of their own meanwhile (`search.ahead`); the kinds' indexers copy them in.
    Started as soon as the load knows what differs, so that they are ready by the time the
    rows are written."""
    engine = session.connection().engine
    writes = {name: [c.new for c in cs if c.new is not None] for name, cs in changes.items()}
    if engine.dialect.name != "postgresql" or not any(writes.values()):
        yield
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        session.info[search.AHEAD] = {
            name: pool.submit(search.ahead, engine, name, records)
            for name, records in writes.items()
            if records
        }
        try:
            yield
        finally:
            del session.info[search.AHEAD]
            pool.shutdown(cancel_futures=True)  # a refused load needs none of them


def _write(
    session: Session,
    changes: dict[str, list[Change]],
    report: Report,
    *,
    actor: str,
    label: str | None,
    progress: Progress | None,
) -> None:
    """Write the checked `changes` as one release at one dataset version."""
    version = versions.allocate(session)
    release_id = session.execute(
        insert(Release)
        .values(
            label=label or versions.label(actor, version.at),
            actor=actor,
            created_at=version.at,
            dataset_version=version.number,
            added=sum(c.old is None for cs in changes.values() for c in cs),
            changed=sum(
                c.old is not None and c.new is not None for cs in changes.values() for c in cs
            ),
            removed=sum(c.new is None for cs in changes.values() for c in cs),
        )
        .returning(col(Release.id))
    ).scalar_one()
    report.release_id = release_id
    versions.released(session)
    # Creates and updates in dependency order, then removals in reverse: an entity lets go of a
    # metric before the metric goes. What is removed first gives up its unique values (a
    # bottleneck's rank) for a record created in its place to take.
    for name, kind in KINDS.items():
        for column in store.unique_integers(kind.table):
            removed = [c.record_id for c in changes[name] if c.new is None]
            if removed:
                store.park(session, kind.table, column, removed)
    for name, kind in KINDS.items():
        writes = [c for c in changes[name] if c.new is not None]
        store.apply(session, kind, writes, actor=actor, release_id=release_id)
        counts = report.counts[_section(kind)]
        counts.added += sum(c.old is None for c in writes)
        counts.changed += sum(c.old is not None for c in writes)
        if progress:
            step = len(KINDS) + 2 + list(KINDS).index(name)
            progress(f"wrote {len(writes):,} {kind.plural}", step, STEPS)
    for name, kind in reversed(KINDS.items()):
        removals = [c for c in changes[name] if c.new is None]
        store.apply(session, kind, removals, actor=actor, release_id=release_id)
        report.counts[_section(kind)].removed += len(removals)
    report.written = [name for name, cs in changes.items() if cs]


def tidy(engine: Engine, report: Report) -> None:
    """After a load has committed, on PostgreSQL: VACUUM (ANALYZE) what it wrote. A bulk load
    outruns autovacuum; until it catches up, stale statistics make the planner sort a whole
    category for a page of 50, and unset visibility bits make a count read the heap (86 ms for
    a cold as_of count on 200,000 history rows, 9 ms after). The tables are vacuumed one
    statement each, largest first, on TIDY_CONNECTIONS connections at once (the server's
    cores; a load's client is idle by then): at 100,000 metrics 1.4 s in one statement."""
    if engine.dialect.name != "postgresql" or not report.written:
        return
    tables: list[Table] = []
    for kind in (KINDS[name] for name in report.written):
        tables += [kind.table, VERSIONED[kind.table]]
        if kind.child is not None:
            tables += [kind.child.table, VERSIONED[kind.child.table]]
    # Statistics of the columns plans use (keys and indexed columns) only: sampling the texts
    # of 200,000 rows costs more than it tells the planner.
    targets: dict[str, str] = {}
    for table in dict.fromkeys(tables):
        columns = {c.name for c in table.primary_key.columns}
        columns |= {c.name for index in table.indexes for c in index.columns}
        targets[table.name] = f"{table.name} ({', '.join(sorted(columns))})"
    # The live search indexes (whose word statistics estimate how many documents a search
    # finds), and the tallies kept beside the metrics.
    targets |= {f"{name}_live_fts": f"{name}_live_fts" for name in report.written}
    if "metric" in report.written:  # the tallies of the facets and of the subjects
        targets |= {name: name for name in ("metric_facet_count", "metric_subject_count")}

    # Connections of their own, not the pool's: a pool of one (DB_POOL_SIZE=1, no overflow)
    # would have the second wait for the first's minutes at 1,000,000 metrics, past its timeout.
    vacuuming = create_engine(engine.url, poolclass=NullPool)

    def vacuum(target: str) -> None:
        with vacuuming.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # Not under a request's statement timeout: at 1,000,000 metrics it takes minutes.
            connection.execute(text("SET statement_timeout = 0"))
            connection.execute(text(f"VACUUM (ANALYZE) {target}"))

    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT relname, pg_total_relation_size(oid) FROM pg_class"
                 " WHERE relname = ANY(:names) AND relkind = 'r'"),
            {"names": list(targets)},
        )  # fmt: skip
        sizes: dict[str, int] = {name: size for name, size in rows}
        # An index on an expression has statistics only from an ANALYZE of its whole table:
        # PostgreSQL skips index expressions when the command names columns. Without them the
        # planner misjudged `subject=` with a value sort at 1,000,000 metrics (34-45 ms a page,
        # 8 ms with them; docs/benchmarks.md).
        expressions = connection.execute(
            text("SELECT DISTINCT t.relname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid"
                 " WHERE t.relname = ANY(:names) AND i.indexprs IS NOT NULL"),
            {"names": list(targets)},
        ).scalars()  # fmt: skip
        targets |= {name: name for name in expressions}
    largest_first = sorted(targets, key=lambda name: -sizes.get(name, 0))
    try:
        with ThreadPoolExecutor(max_workers=TIDY_CONNECTIONS) as pool:
            for done in [pool.submit(vacuum, targets[name]) for name in largest_first]:
                done.result()  # the first failure, if any, after every one has run
    finally:
        vacuuming.dispose()


def _foreign_ids(
    wanted: dict[str, dict[str, tuple[Dataset, dict[str, Any]]]],
    stored: dict[str, dict[str, Stored]],
) -> list[str]:
    """A file may not take over ids another source already uses."""
    problems = []
    for name, kind in KINDS.items():
        if name == "source":
            continue
        for record_id, (dataset, data) in wanted[name].items():
            old = stored[name].get(record_id)
            if old is not None and old.data["source_id"] != data["source_id"]:
                problems.append(
                    f"{dataset.path}: {kind.section}[{record_id}].id: already used by source "
                    f"{old.data['source_id']!r}"
                )
    return problems


def _check(
    session: Session,
    wanted: dict[str, dict[str, tuple[Dataset, dict[str, Any]]]],
    changes: dict[str, list[Change]],
) -> list[str]:
    """Every problem of the records about to be written, named by file, record and field."""
    pending = {name: {c.record_id: c.new for c in cs} for name, cs in changes.items()}
    check = Check(session, KINDS, pending)
    problems = []
    for name, kind in KINDS.items():
        writes = [c.new for c in changes[name] if c.new is not None]
        prefetch_references(kind, writes, check)
        for change in changes[name]:
            if change.new is None:
                continue
            dataset = wanted[name][change.record_id][0]
            check.old = change.old.data if change.old else None
            where = "source" if name == "source" else f"{kind.section}[{change.record_id}]"
            problems += [
                f"{dataset.path}: {where}.{problem.field}: {problem.detail}"
                for problem in check_record(kind, change.new, check)
            ]
    check.old = None
    return problems + _removals_blocked(session, wanted, changes)


def _removals_blocked(
    session: Session,
    wanted: dict[str, dict[str, tuple[Dataset, dict[str, Any]]]],
    changes: dict[str, list[Change]],
) -> list[str]:
    """A record dropped from a file goes only if nothing that stays refers to it."""
    removed = {
        (name, c.record_id): c.old for name, cs in changes.items() for c in cs if c.new is None
    }
    after = {(name, c.record_id): c.new for name, cs in changes.items() for c in cs}
    problems = []
    for (name, record_id), old in sorted(removed.items(), key=lambda item: item[0]):
        kind = KINDS[name]
        for other, owner, ref_field in store.referrers(session, KINDS.values(), kind, record_id):
            new = after.get((other.name, owner), {})
            if new is None:
                continue  # removed in this load too
            value = new.get(ref_field, record_id)
            if record_id not in (value if isinstance(value, list) else [value]):
                continue  # lets go of it in this load
            source_id = old.data["source_id"] if old else ""
            dataset = wanted["source"][source_id][0] if source_id in wanted["source"] else None
            problems.append(
                f"{dataset.path if dataset else '(load)'}: {kind.section}[{record_id}]: cannot "
                f"be removed, {other.label} {owner!r} still refers to it ({ref_field})"
            )
    return problems
