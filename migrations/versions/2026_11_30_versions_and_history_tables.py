"""Versions are transactions, and as_of is a query: history twins of every record table.

- `dataset_state.revision` becomes `version`: one number per committed transaction.
- `revision.dataset_version` (with `at`, shared by every revision of a version) and
  `release.dataset_version`; the old history is grouped into versions (a release's revisions
  are one version, at its last revision's time; any other revision is a version of its own).
- `<table>_history` for every record table and child table: its columns, a `row_id`, and the
  versions `valid_from` <= v < `valid_to` in which the row was current; filled from the
  revisions (past periods) and the live tables (current rows).
- `metric_fts` indexes every `metric_history` row (by `row_id`), so search works at a version.
- On PostgreSQL, a trigger NOTIFYs `cdmo_revision` whenever `dataset_state` changes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 01:00:00
"""

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENTITIES = ["technology", "pricing_model", "regulatory_change", "bottleneck", "faq"]
# (live table, the column naming its record, columns indexed for reads at a version)
TABLES: list[tuple[str, str, list[str]]] = [
    ("source", "id", []),
    ("metric", "id", ["category", "geography", "source_id", "year"]),
    ("metric_subject", "metric_id", ["subject"]),
    *[(name, "id", ["source_id"]) for name in ENTITIES],
    *[(f"{name}_metric", f"{name}_id", []) for name in ENTITIES],
]
# kind -> (child table, owner column, value column, field of the record)
CHILDREN = {
    "metric": ("metric_subject", "metric_id", "subject", "subjects"),
    **{name: (f"{name}_metric", f"{name}_id", "metric_id", "metric_ids") for name in ENTITIES},
}
SQLITE_FTS = (
    "CREATE VIRTUAL TABLE metric_fts USING fts5("
    "name, subjects, description, quote, tokenize = 'porter unicode61 remove_diacritics 2')"
)


def _plain(column_type: Any) -> Any:
    if isinstance(column_type, sa.Enum):
        return sa.String(column_type.length)
    if isinstance(column_type, sa.String) and not isinstance(column_type, sa.Text):
        return sa.String(column_type.length)
    return column_type


def _create_history_tables(bind: sa.Connection) -> None:
    inspector = sa.inspect(bind)
    for name, key, indexed in TABLES:
        columns = [
            sa.Column(column["name"], _plain(column["type"]), nullable=column["nullable"])
            for column in inspector.get_columns(name)
        ]
        history = f"{name}_history"
        op.create_table(
            history,
            sa.Column("row_id", sa.Integer(), nullable=False),
            *columns,
            sa.Column("valid_from", sa.Integer(), nullable=False),
            sa.Column("valid_to", sa.Integer(), nullable=True),
            sa.PrimaryKeyConstraint("row_id", name=op.f(f"pk_{history}")),
        )
        op.create_index(f"ix_{history}_{key}", history, [key, "valid_from"])
        for column in indexed:
            op.create_index(
                f"ix_{history}_{column}", history, [column, key, "valid_from", "valid_to"]
            )


def _versions(bind: sa.Connection) -> dict[int, tuple[int, Any]]:
    """Group the old revisions into versions: revision id -> (version, timestamp)."""
    rows = bind.execute(sa.text("SELECT id, at, release_id FROM revision ORDER BY id")).all()
    groups: list[list[Any]] = []
    for row in rows:
        if groups and row.release_id is not None and groups[-1][0].release_id == row.release_id:
            groups[-1].append(row)
        else:
            groups.append([row])
    counter = bind.execute(sa.text("SELECT version FROM dataset_state WHERE id = 1")).scalar()
    # Keep the newest version number equal to the old counter: export tags made from the old
    # counter are never reused for other content.
    base = max(int(counter or 0), len(groups)) - len(groups)
    found: dict[int, tuple[int, Any]] = {}
    last_at = None
    for number, group in enumerate(groups, start=base + 1):
        at = max(row.at for row in group)
        if last_at is not None and at < last_at:
            at = last_at
        last_at = at
        found.update({row.id: (number, at) for row in group})
    bind.execute(sa.text("UPDATE dataset_state SET version = :v"), {"v": base + len(groups)})
    return found


def _columns(data: dict[str, Any], kind: str, table: sa.Table) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in data.items():
        if key == "evidence":
            row |= {f"evidence_{part}": value[part] for part in ("quote", "start", "end")}
        elif kind in CHILDREN and key == CHILDREN[kind][3]:
            continue
        elif key in table.c:
            if isinstance(table.c[key].type, sa.Date) and isinstance(value, str):
                value = date.fromisoformat(value)
            row[key] = value
    return row


def _fill_history(bind: sa.Connection, versions: dict[int, tuple[int, Any]]) -> None:
    """Past periods from the revisions' records; current rows from the live tables."""
    metadata = sa.MetaData()

    def table(name: str) -> sa.Table:
        return sa.Table(name, metadata, autoload_with=bind)

    revisions = bind.execute(
        sa.text("SELECT id, kind, record_id, version, data FROM revision ORDER BY id")
    ).all()
    by_record: dict[tuple[str, str], list[Any]] = {}
    for row in revisions:
        by_record.setdefault((row.kind, row.record_id), []).append(row)
    rows: dict[str, list[dict[str, Any]]] = {}
    open_from: dict[tuple[str, str], int] = {}
    for (kind, record_id), history in by_record.items():
        for row, following in zip(history, [*history[1:], None], strict=True):
            start = versions[row.id][0]
            if following is None:
                open_from[(kind, record_id)] = start
                continue
            data = json.loads(row.data) if isinstance(row.data, str) else row.data
            if data is None:
                continue  # a tombstone: no row in that period
            end = versions[following.id][0]
            period = {"valid_from": start, "valid_to": end}
            rows.setdefault(kind, []).append(
                _columns(data, kind, table(kind)) | {"version": row.version} | period
            )
            if kind in CHILDREN:
                child, owner, value, field = CHILDREN[kind]
                rows.setdefault(child, []).extend(
                    {owner: record_id, value: item, "position": position} | period
                    for position, item in enumerate(data[field])
                )
    current = bind.execute(sa.text("SELECT version FROM dataset_state WHERE id = 1")).scalar()
    for name, key, _indexed in TABLES:
        kind = next((k for k, child in CHILDREN.items() if child[0] == name), name)
        for live in bind.execute(sa.select(table(name))).mappings():
            start = open_from.get((kind, live[key]), current or 0)
            rows.setdefault(name, []).append(dict(live) | {"valid_from": start, "valid_to": None})
    for name, entries in rows.items():
        if entries:
            bind.execute(table(f"{name}_history").insert(), entries)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.execute("ALTER TABLE dataset_state RENAME COLUMN revision TO version")
    with op.batch_alter_table("revision") as batch_op:
        batch_op.add_column(sa.Column("dataset_version", sa.Integer(), nullable=True))
    op.add_column("release", sa.Column("dataset_version", sa.Integer(), nullable=True))
    versions = _versions(bind)
    if versions:
        bind.execute(
            sa.text("UPDATE revision SET dataset_version = :v, at = :at WHERE id = :id"),
            [{"id": rid, "v": v, "at": at} for rid, (v, at) in versions.items()],
        )
    bind.execute(
        sa.text(
            "UPDATE release SET dataset_version = (SELECT max(r.dataset_version) FROM revision r"
            " WHERE r.release_id = release.id), created_at = coalesce((SELECT max(r.at)"
            " FROM revision r WHERE r.release_id = release.id), created_at)"
        )
    )
    with op.batch_alter_table("revision") as batch_op:
        batch_op.alter_column("dataset_version", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_index("ix_revision_at")
        batch_op.create_index("ix_revision_at_dataset_version", ["at", "dataset_version"])

    _create_history_tables(bind)
    _fill_history(bind, versions)

    op.execute("DROP TABLE metric_fts")
    if postgres:
        op.execute(
            "CREATE TABLE metric_fts ("
            " row_id INTEGER NOT NULL,"
            " document TSVECTOR NOT NULL,"
            " CONSTRAINT pk_metric_fts PRIMARY KEY (row_id),"
            " CONSTRAINT fk_metric_fts_row_id_metric_history FOREIGN KEY (row_id)"
            " REFERENCES metric_history (row_id) ON DELETE CASCADE)"
        )
        op.execute("CREATE INDEX ix_metric_fts_document ON metric_fts USING gin (document)")
        op.execute(
            "INSERT INTO metric_fts (row_id, document)"
            " SELECT h.row_id,"
            " setweight(to_tsvector('english', h.name), 'A')"
            " || setweight(to_tsvector('english', coalesce((SELECT string_agg(s.subject, ' '"
            " ORDER BY s.position) FROM metric_subject_history s WHERE s.metric_id = h.id"
            " AND s.valid_from <= h.valid_from"
            " AND (s.valid_to IS NULL OR s.valid_to > h.valid_from)), '')), 'B')"
            " || setweight(to_tsvector('english', h.description), 'C')"
            " || setweight(to_tsvector('english', h.evidence_quote), 'D')"
            " FROM metric_history h"
        )
        op.execute(
            "CREATE FUNCTION cdmo_notify_version() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN PERFORM pg_notify('cdmo_revision', NEW.version::text); RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER dataset_state_notify AFTER UPDATE ON dataset_state"
            " FOR EACH ROW EXECUTE FUNCTION cdmo_notify_version()"
        )
    else:
        op.execute(SQLITE_FTS)
        op.execute(
            "INSERT INTO metric_fts (rowid, name, subjects, description, quote)"
            " SELECT h.row_id, h.name, coalesce((SELECT group_concat(s.subject, ' ')"
            " FROM metric_subject_history s WHERE s.metric_id = h.id"
            " AND s.valid_from <= h.valid_from"
            " AND (s.valid_to IS NULL OR s.valid_to > h.valid_from)), ''),"
            " h.description, h.evidence_quote FROM metric_history h"
        )


def downgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.execute("DROP TABLE metric_fts")
    if postgres:
        op.execute("DROP TRIGGER dataset_state_notify ON dataset_state")
        op.execute("DROP FUNCTION cdmo_notify_version()")
    for name, key, indexed in reversed(TABLES):
        history = f"{name}_history"
        for column in indexed:
            op.drop_index(f"ix_{history}_{column}", table_name=history)
        op.drop_index(f"ix_{history}_{key}", table_name=history)
        op.drop_table(history)
    with op.batch_alter_table("revision") as batch_op:
        batch_op.drop_index("ix_revision_at_dataset_version")
        batch_op.create_index("ix_revision_at", ["at"])
        batch_op.drop_column("dataset_version")
    # Not batch mode: SQLite would recreate `release`, which `revision` refers to.
    op.execute("ALTER TABLE release DROP COLUMN dataset_version")
    op.execute("ALTER TABLE dataset_state RENAME COLUMN version TO revision")
    # The search index of 0002: one document per live metric.
    if postgres:
        op.execute(
            "CREATE TABLE metric_fts ("
            " metric_id VARCHAR(100) NOT NULL,"
            " document TSVECTOR NOT NULL,"
            " CONSTRAINT pk_metric_fts PRIMARY KEY (metric_id),"
            " CONSTRAINT fk_metric_fts_metric_id_metric FOREIGN KEY (metric_id)"
            " REFERENCES metric (id) ON DELETE CASCADE)"
        )
        op.execute("CREATE INDEX ix_metric_fts_document ON metric_fts USING gin (document)")
        op.execute(
            "INSERT INTO metric_fts (metric_id, document)"
            " SELECT m.id,"
            " setweight(to_tsvector('english', m.name), 'A')"
            " || setweight(to_tsvector('english', coalesce((SELECT string_agg(s.subject, ' '"
            " ORDER BY s.position) FROM metric_subject s WHERE s.metric_id = m.id), '')), 'B')"
            " || setweight(to_tsvector('english', m.description), 'C')"
            " || setweight(to_tsvector('english', m.evidence_quote), 'D')"
            " FROM metric m"
        )
    else:
        op.execute(
            "CREATE VIRTUAL TABLE metric_fts USING fts5("
            "metric_id UNINDEXED, name, subjects, description, quote,"
            " tokenize = 'porter unicode61 remove_diacritics 2')"
        )
        op.execute(
            "INSERT INTO metric_fts (metric_id, name, subjects, description, quote)"
            " SELECT m.id, m.name, coalesce((SELECT group_concat(s.subject, ' ')"
            " FROM metric_subject s WHERE s.metric_id = m.id), ''), m.description,"
            " m.evidence_quote FROM metric m"
        )
