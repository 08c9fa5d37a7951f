"""Each metric's subjects kept with its row: `subjects_json` (the JSON array a page's item and an
NDJSON export show, as orjson writes it) and `subjects_csv` (the cell a CSV export writes), on
`metric` and on `metric_history`, written by the record store with the subjects. Pages and
exports then read them with the row instead of gathering `metric_subject` rows for each metric
(which stays, for filters and facets).

Filled from the subject rows: the live ones for `metric`, and for each history row those
current at the version it was written at (a metric's subjects change only with a new version
of the metric).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("metric", "metric_history")
# A spreadsheet runs a cell that begins with one of these as a formula (api/exports.py).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(joined: str, postgres: bool) -> str:
    """The CSV cell of the subjects joined by `;`, as api/exports.py writes it: a leading `'`
    when it starts as a formula; quoted, quotes doubled, when it holds a comma, a quote or a
    line break."""
    character, position = ("chr", "strpos") if postgres else ("char", "instr")
    marks = ["','", "'\"'", f"{character}(10)", f"{character}(13)"]
    quoted = " OR ".join(f"{position}({joined}, {mark}) > 0" for mark in marks)
    starts = ", ".join(
        f"{character}({ord(start)})" if start in "\t\r" else f"'{start}'"
        for start in FORMULA_STARTS
    )
    formula = f"substr({joined}, 1, 1) IN ({starts})"
    escaped = f"replace({joined}, '\"', '\"\"')"
    return (
        f"CASE WHEN {quoted} THEN '\"' || CASE WHEN {formula} THEN '''' ELSE '' END"
        f" || {escaped} || '\"' WHEN {formula} THEN '''' || {joined} ELSE {joined} END"
    )


def _fill(table: str, postgres: bool) -> None:
    """Set both columns of the rows of `table` that have subjects (the others keep `[]` and
    the empty cell)."""
    if table == "metric":
        key, subjects = "id", "metric_subject"
        of_row = "s.metric_id = t.id"
    else:
        key, subjects = "row_id", "metric_subject_history"
        of_row = (
            "s.metric_id = t.id AND s.valid_from <= t.valid_from"
            " AND (s.valid_to IS NULL OR s.valid_to > t.valid_from)"
        )
    if postgres:
        aggregates = (
            "'[' || string_agg(to_json(s.subject)::text, ',' ORDER BY s.position) || ']' AS json,"
            " string_agg(s.subject, ';' ORDER BY s.position) AS joined"
        )
        kept = (
            f"SELECT t.{key} AS owner, {aggregates} FROM {table} t"
            f" JOIN {subjects} s ON {of_row} GROUP BY t.{key}"
        )
    else:  # aggregates take no ORDER BY before SQLite 3.44: each reads an ordered subquery
        ordered = f"SELECT s.subject FROM {subjects} s WHERE {of_row} ORDER BY s.position"
        kept = (
            f"SELECT t.{key} AS owner, (SELECT json_group_array(subject) FROM ({ordered})) AS json,"
            f" (SELECT group_concat(subject, ';') FROM ({ordered})) AS joined FROM {table} t"
            f" WHERE EXISTS (SELECT 1 FROM {subjects} s WHERE {of_row})"
        )
    op.execute(f"CREATE TEMPORARY TABLE kept_subjects AS {kept}")
    op.execute(
        f"UPDATE {table} SET subjects_json = kept.json,"
        f" subjects_csv = {_cell('kept.joined', postgres)}"
        f" FROM kept_subjects AS kept WHERE {table}.{key} = kept.owner"
    )
    op.execute("DROP TABLE kept_subjects")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        # Filling the columns of a large dataset takes longer than a request may.
        op.execute("SET LOCAL statement_timeout = 0")
    for table in TABLES:
        op.add_column(
            table, sa.Column("subjects_json", sa.Text(), nullable=False, server_default="[]")
        )
        op.add_column(
            table, sa.Column("subjects_csv", sa.Text(), nullable=False, server_default="")
        )
        _fill(table, postgres)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"ALTER TABLE {table} DROP COLUMN subjects_csv")
        op.execute(f"ALTER TABLE {table} DROP COLUMN subjects_json")
