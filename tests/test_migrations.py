"""Migrations: reversible on both databases, and in step with the models."""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session

from api import PROJECT_ROOT, migrate
from api.auth.service import create_key
from api.migrate import include_name
from api.models import metadata
from tests.conftest import seed

TABLES = {
    "alembic_version",
    "source",
    "metric",
    "metric_subject",
    "technology",
    "technology_metric",
    "pricing_model",
    "pricing_model_metric",
    "regulatory_change",
    "regulatory_change_metric",
    "bottleneck",
    "bottleneck_metric",
    "faq",
    "faq_metric",
    "dataset_state",
    "metric_fts",
    "technology_fts",
    "pricing_model_fts",
    "regulatory_change_fts",
    "bottleneck_fts",
    "faq_fts",
    "source_fts",
    "metric_live_fts",
    "technology_live_fts",
    "pricing_model_live_fts",
    "regulatory_change_live_fts",
    "bottleneck_live_fts",
    "faq_live_fts",
    "source_live_fts",
    "metric_facet_count",
    "metric_subject_count",
    "api_key",
    "idempotent_response",
    "rate_window",
    "release",
    "revision",
    "dataset_version",
    "search_word",
}
HISTORY = {
    f"{name}_history"
    for name in TABLES
    if not name.endswith("_fts")
    and name not in ("alembic_version", "dataset_state", "api_key", "idempotent_response",
                     "rate_window", "release", "revision", "metric_facet_count",
                     "metric_subject_count", "dataset_version", "search_word")
}  # fmt: skip
TABLES |= HISTORY


def tables(engine: Engine) -> set[str]:
    """Table names, FTS5's internal shadow tables (metric_fts_data, ...) left out."""
    return {t for t in inspect(engine).get_table_names() if "_fts_" not in t}


def test_upgrade_downgrade_upgrade(empty_engine: Engine) -> None:
    migrate.upgrade(empty_engine)
    assert tables(empty_engine) == TABLES
    assert migrate.current_revision(empty_engine) == migrate.head_revision()
    seed(empty_engine)

    migrate.downgrade(empty_engine, "base", data_loss=True)
    assert tables(empty_engine) == {"alembic_version"}
    assert migrate.current_revision(empty_engine) is None

    migrate.upgrade(empty_engine)
    assert tables(empty_engine) == TABLES
    assert str(seed(empty_engine)["metrics"]) == "+42 ~0 -0 =0"


@pytest.mark.parametrize(
    ("down_to", "named"),
    [
        ("0002", "67 rows of revision, 1 row of release, 1 row of api_key"),
        ("base", "67 rows of revision, 1 row of release, 1 row of api_key"),
    ],
)
def test_a_downgrade_that_would_drop_data_refuses_and_changes_nothing(
    empty_engine: Engine, down_to: str, named: str, tmp_path: Path
) -> None:
    """Below 0003 the history and the API keys go; below 0001 every record: a downgrade that
    would drop rows says what and stops, unless the loss is accepted."""
    migrate.upgrade(empty_engine)
    seed(empty_engine)
    with Session(empty_engine) as session, session.begin():
        create_key(session, name="alice", scope="write")
    with pytest.raises(migrate.DataLoss, match=f"would drop {named}; nothing was changed"):
        migrate.downgrade(empty_engine, down_to)
    assert migrate.current_revision(empty_engine) == migrate.head_revision()
    assert tables(empty_engine) == TABLES
    with empty_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM revision").scalar_one() == 67
    # The same from Alembic's command line, and with the loss accepted there.
    url = empty_engine.url.render_as_string(hide_password=False)
    environment = {**os.environ, "DATABASE_URL": url}
    alembic = [sys.executable, "-m", "alembic"]
    refused = subprocess.run(
        [*alembic, "downgrade", down_to],
        env=environment,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert refused.returncode != 0 and "nothing was changed" in refused.stderr
    assert migrate.current_revision(empty_engine) == migrate.head_revision()
    accepted = subprocess.run(
        [*alembic, "-x", "data_loss=accept", "downgrade", down_to],
        env=environment,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert accepted.returncode == 0, accepted.stderr
    assert migrate.current_revision(empty_engine) == (None if down_to == "base" else down_to)


def test_models_and_migrations_do_not_drift(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": include_name}
        )
        assert compare_metadata(context, metadata) == []


def test_0025_remembers_the_words_writers_would_have(empty_engine: Engine) -> None:
    """The words of a database loaded before 0025 are read from its history, as writers read
    them: the same words, so that `personaliz*` finds personalized (stemmed `person`)."""
    words = "SELECT kind, word FROM search_word ORDER BY kind, word"
    migrate.upgrade(empty_engine)
    seed(empty_engine)
    with empty_engine.connect() as connection:
        written = connection.execute(text(words)).all()
    assert ("metric", "personalized") in written and len(written) > 2000
    migrate.downgrade(empty_engine, "0024")
    assert "search_word" not in tables(empty_engine)
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        assert connection.execute(text(words)).all() == written


def test_the_search_indexes_go_down_to_0005_and_back(empty_engine: Engine) -> None:
    """0006 rebuilds metric_fts in the shared language and adds one index per kind; down,
    0005's metric index (English stemming) is rebuilt from the history, then up again."""
    migrate.upgrade(empty_engine)
    seed(empty_engine)
    migrate.downgrade(empty_engine, "0005")
    assert "technology_fts" not in tables(empty_engine)
    postgres = empty_engine.dialect.name == "postgresql"
    old_match = (
        "SELECT count(*) FROM metric_fts WHERE document @@ plainto_tsquery('english', 'outsource')"
        if postgres
        else "SELECT count(*) FROM metric_fts WHERE metric_fts MATCH 'outsource'"
    )
    with empty_engine.connect() as connection:
        assert connection.execute(text(old_match)).scalar_one() == 1
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        for kind in ("metric", "technology", "faq", "source"):
            indexed = connection.execute(text(f"SELECT count(*) FROM {kind}_fts")).scalar_one()
            rows = connection.execute(text(f"SELECT count(*) FROM {kind}_history")).scalar_one()
            assert indexed == rows > 0, kind


def test_the_live_search_indexes_and_the_facet_tally_go_down_to_0007_and_back(
    empty_engine: Engine,
) -> None:
    """0008 fills each kind's live index with the documents of its current rows, and the facet
    tally with the metrics per combination of tallied values; down, both are dropped."""
    migrate.upgrade(empty_engine)
    seed(empty_engine)
    migrate.downgrade(empty_engine, "0007")
    assert not {"metric_live_fts", "metric_facet_count"} & tables(empty_engine)
    migrate.upgrade(empty_engine)
    postgres = empty_engine.dialect.name == "postgresql"
    with empty_engine.connect() as connection:
        for kind in ("metric", "technology", "faq", "source"):
            indexed = connection.execute(text(f"SELECT count(*) FROM {kind}_live_fts")).scalar_one()
            live = connection.execute(text(f"SELECT count(*) FROM {kind}")).scalar_one()
            assert indexed == live > 0, kind
        therapy = (
            "SELECT count(*) FROM metric_live_fts WHERE document @@ to_tsquery('cdmo_search', 'therapy')"
            if postgres
            else "SELECT count(*) FROM metric_live_fts WHERE metric_live_fts MATCH 'therapy'"
        )
        # As tests/test_search.py finds: "cell therapy" 20 metrics, "therapy -cell" 8.
        assert connection.execute(text(therapy)).scalar_one() == 28
        columns = (
            "category, unit, measure, qualifier, direction, year, base_year, forecast, geography"
        )
        tallied = connection.execute(
            text(f"SELECT {columns}, metrics FROM metric_facet_count ORDER BY cell")
        ).all()
        counted = connection.execute(
            text(f"SELECT {columns}, count(*) FROM metric GROUP BY {columns}")
        ).all()
        assert sorted(map(tuple, tallied), key=str) == sorted(map(tuple, counted), key=str)
        assert sum(row[-1] for row in tallied) == 42


def test_the_tally_by_subject_is_filled_as_writes_keep_it_and_goes_down_and_back(
    empty_engine: Engine,
) -> None:
    """0012's tally by subject, and 0013's with each metric's list of subjects and its lead
    row, filled from the live metrics, equal the one the seed load kept (api.metrics.tally)
    and the metrics counted per combination and subject; down, 0013 gives 0012's and 0012
    drops it."""
    migrate.upgrade(empty_engine)
    seed(empty_engine)
    columns = "category, unit, measure, qualifier, direction, year, base_year, forecast, geography"
    read = text(
        f"SELECT cell, {columns}, subject, subjects, lead, metrics FROM metric_subject_count"
        " ORDER BY cell"
    )
    read_0012 = text(
        f"SELECT cell, {columns}, subject, metrics FROM metric_subject_count ORDER BY cell"
    )
    joined = ", ".join(f"m.{c.strip()}" for c in columns.split(","))
    count = text(
        f"SELECT {joined}, s.subject, count(*) FROM metric m"
        f" LEFT JOIN metric_subject s ON s.metric_id = m.id GROUP BY {joined}, s.subject"
    )
    with empty_engine.connect() as connection:
        kept = connection.execute(read).all()
        counted = sorted((tuple(row) for row in connection.execute(count)), key=str)
    leads = [row for row in kept if row.lead]
    assert sum(row.metrics for row in leads) == 42  # one lead row per metric
    several = [row for row in leads if row.subjects.count("\x1f") > 2]
    assert several, "the seed has metrics with several subjects"
    assert all(row.subjects.startswith(f"\x1f{row.subject}\x1f") for row in leads if row.subject)
    migrate.downgrade(empty_engine, "0012")
    with empty_engine.connect() as connection:
        down = connection.execute(read_0012).all()
    assert sorted((tuple(row[1:]) for row in down), key=str) == counted
    assert all(row.cell.endswith(f",{orjson.dumps(row.subject).decode()}]") for row in down)
    migrate.downgrade(empty_engine, "0011")
    assert "metric_subject_count" not in tables(empty_engine)
    migrate.upgrade(empty_engine, "0012")
    with empty_engine.connect() as connection:
        assert connection.execute(read_0012).all() == down
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        filled = connection.execute(read).all()
        postgres = empty_engine.dialect.name == "postgresql"
        folded = connection.execute(
            text(
                "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'ix_metric_subject%folded'"
                if postgres
                else "SELECT count(*) FROM sqlite_master WHERE name LIKE 'ix_metric_subject%folded'"
            )
        ).scalar_one()
    assert folded == 2  # the metrics' subjects (0012) and the tally's (0013), in lower case
    assert filled == kept
    by_subject: Counter[tuple[object, ...]] = Counter()
    for row in filled:
        by_subject[tuple(row[1:-3])] += row.metrics
    assert sorted(((*key, n) for key, n in by_subject.items()), key=str) == counted
    assert sum(row[-1] for row in counted) > 42


def test_the_subjects_kept_with_each_metric_go_down_to_0010_and_back(empty_engine: Engine) -> None:
    """0011 fills each metric's `subjects_json` and `subjects_csv`, live and in its history
    (each history row from the subjects current at its version), with what the record store
    writes; down, the columns are dropped."""
    from fastapi.testclient import TestClient

    from api.config import Settings
    from api.main import create_app
    from tests.helpers import make_keys

    migrate.upgrade(empty_engine)
    seed(empty_engine)
    keys = make_keys(empty_engine)
    headers = {"Authorization": f"Bearer {keys['alice']}", "If-Match": "*"}
    with TestClient(create_app(Settings(), empty_engine)) as client:
        for subjects in (["=formula", "comma, inside", 'quote "q"', "ünï"], ["-dash"], []):
            written = client.patch(
                "/v1/metrics/car-t-dose-manufacturing-cost",
                json={"subjects": subjects},
                headers=headers,
            )
            assert written.status_code == 200, written.text
    kept = (
        "SELECT 'live', id, subjects_json, subjects_csv FROM metric UNION ALL"
        " SELECT 'history', CAST(row_id AS VARCHAR(20)), subjects_json, subjects_csv"
        " FROM metric_history ORDER BY 1, 2"
    )
    with empty_engine.connect() as connection:
        written_by_the_store = connection.execute(text(kept)).all()
    assert {row[2] for row in written_by_the_store} >= {
        '["=formula","comma, inside","quote \\"q\\"","ünï"]',
        '["-dash"]',
        "[]",
    }
    assert '"\'=formula;comma, inside;quote ""q"";ünï"' in {row[3] for row in written_by_the_store}
    assert sum(row[2] != "[]" for row in written_by_the_store) > 42
    migrate.downgrade(empty_engine, "0010")
    columns = {column["name"] for column in inspect(empty_engine).get_columns("metric_history")}
    assert not {"subjects_json", "subjects_csv"} & columns
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        assert connection.execute(text(kept)).all() == written_by_the_store


def test_version_timestamps_go_down_to_0019_and_back(empty_engine: Engine) -> None:
    """0020 keeps each version's timestamp once, in `dataset_version`, from the revisions that
    held it; down, each revision holds its version's timestamp again; up again, the change feed
    and `as_of` answer as before."""
    from datetime import UTC, datetime

    from fastapi.testclient import TestClient

    from api.config import Settings
    from api.main import create_app
    from tests.helpers import make_keys

    migrate.upgrade(empty_engine)
    seed(empty_engine)
    keys = make_keys(empty_engine)
    headers = {"Authorization": f"Bearer {keys['alice']}", "If-Match": "*"}

    def answers() -> tuple[list[tuple[int, int, str]], list[str]]:
        with TestClient(create_app(Settings(), empty_engine)) as client:
            feed = client.get("/v1/changes", params={"limit": 500}).json()["items"]
            at_each = [
                client.get("/v1/metrics", params={"as_of": at, "limit": 1}).headers[
                    "dataset-version"
                ]
                for at in sorted({item["at"] for item in feed})
            ]
        return [(item["id"], item["dataset_version"], item["at"]) for item in feed], at_each

    with TestClient(create_app(Settings(), empty_engine)) as client:
        for name in ("First rename", "Second rename"):
            written = client.patch(
                "/v1/metrics/car-t-dose-manufacturing-cost", json={"name": name}, headers=headers
            )
            assert written.status_code == 200, written.text
    before, versions_before = answers()
    assert len({at for _id, _version, at in before}) == 3 and versions_before == ["1", "2", "3"]
    migrate.downgrade(empty_engine, "0019")
    with empty_engine.connect() as connection:
        held = connection.execute(text("SELECT id, dataset_version, at FROM revision ORDER BY id"))
        restored = [
            (id_, version, (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat())
            for id_, version, at in (
                (row[0], row[1], row[2] if isinstance(row[2], datetime) else
                 datetime.fromisoformat(row[2])) for row in held
            )
        ]  # fmt: skip
    assert restored == [
        (id_, version, datetime.fromisoformat(at).isoformat()) for id_, version, at in before
    ]
    assert "dataset_version" not in inspect(empty_engine).get_table_names()
    migrate.upgrade(empty_engine)
    assert answers() == (before, versions_before)


def test_0023_gives_a_database_loaded_before_the_statistics_of_its_expression_indexes(
    empty_engine: Engine,
) -> None:
    """A database loaded at 0022 without its tables analyzed whole (as loads did) has no
    statistics for the indexes on folded subjects; 0023 analyzes those tables."""
    if empty_engine.dialect.name != "postgresql":
        pytest.skip("the statistics are PostgreSQL's")
    analyzed = (
        "SELECT DISTINCT tablename FROM pg_stats"
        " WHERE tablename IN ('ix_metric_subject_folded', 'ix_metric_subject_count_folded')"
    )
    # Loaded in process (no VACUUM (ANALYZE) after it) by this code, at its own revision, then
    # taken down to 0022: the migrations in between leave the statistics as they are.
    migrate.upgrade(empty_engine)
    seed(empty_engine)
    migrate.downgrade(empty_engine, "0022")
    with empty_engine.connect() as connection:
        assert connection.execute(text(analyzed)).scalars().all() == []
    migrate.upgrade(empty_engine)
    with empty_engine.connect() as connection:
        assert sorted(connection.execute(text(analyzed)).scalars()) == [
            "ix_metric_subject_count_folded",
            "ix_metric_subject_folded",
        ]
    migrate.downgrade(empty_engine, "0022")  # nothing to undo: statistics are not schema
    migrate.upgrade(empty_engine)
