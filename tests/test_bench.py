"""The benchmark script runs (one short round), so it cannot rot. It asserts no timings."""

import shutil
import subprocess
import sys

import pytest
from sqlalchemy import Engine

from api import PROJECT_ROOT


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs it)"
)
def test_benchmark_script_prints_every_scenario() -> None:
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--duration", "1", "--rounds", "1", "--write-rounds", "5"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for scenario in (
        "page of 50 metrics",
        "one metric",
        "filtered, sorted page",
        "q search",
        "CSV export, whole collection",
        "304 revalidation",
        "read right after a write",
    ):
        assert f"| {scenario}" in result.stdout, scenario
    assert "every read saw its write" in result.stdout
    assert "(start-up to first answer: median " in result.stdout
    assert "API peak memory (VmHWM):" in result.stdout
    for scenario in ("page of 50 metrics", "filtered, sorted page", "q search"):
        # the cold-cache round: the API with its response cache off
        assert f"| {scenario} | " in result.stdout.split("| cold cache: scenario")[1], scenario
    assert "API (cache off) peak memory (VmHWM):" in result.stdout


def test_history_benchmark_runs_a_short_round() -> None:
    """bench/history.py (imports and as_of reads) on SQLite, 200 metrics: it runs and checks
    what it reads (it exits 1 on any wrong answer); no timings are asserted."""
    result = subprocess.run(
        [sys.executable, "bench/history.py", "--sizes", "200", "--databases", "sqlite",
         "--requests", "3", "--rss-moments", "2,5"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for case in ("import 200 metrics (creates)", "import 200 metrics (updates)", "cold as_of item"):
        assert case in result.stdout, case


def test_scale_benchmark_runs_a_short_round() -> None:
    """bench/scale.py (the 1,000,000-metric round of issue 12) on SQLite at 400 metrics."""
    result = subprocess.run(
        [sys.executable, "bench/scale.py", "--size", "400", "--databases", "sqlite",
         "--requests", "2"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for case in ("one metric", "deep page of 50 by keyset", "NDJSON export", "CSV export",
                 "change feed, deep page of 50 by offset, count=none",
                 "change feed, deep page of 50 by keyset (after=), count=none",
                 "page of 50, category=market&sort=-value",
                 "deep page of 50 by keyset, sort=year"):  # fmt: skip
        assert f"| {case}" in result.stdout, case
    assert "server peak memory (VmHWM)" in result.stdout


def test_load_profile_runs_a_short_round() -> None:
    """bench/load_profile.py (where a load's time goes) on SQLite at 200 metrics: both rounds
    run and are reported (which steps are listed depends on their times: not asserted)."""
    result = subprocess.run(
        [sys.executable, "bench/load_profile.py", "--size", "200", "--database", "sqlite"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for round_ in ("round 1 (creates)", "round 2 (updates)"):
        assert f"== sqlite, 200 metrics, {round_}" in result.stdout, round_


def test_export_cpu_reads_every_metric(seeded_engine: Engine) -> None:
    """bench/export_cpu.py (CPU per row of a whole export, without HTTP) reads every chunk of
    the seed's metrics in both formats."""
    url = seeded_engine.url.render_as_string(hide_password=False)
    result = subprocess.run(
        [sys.executable, "bench/export_cpu.py", url],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ndjson 42 rows,"), result.stdout
    assert "\ncsv    42 rows," in result.stdout, result.stdout
