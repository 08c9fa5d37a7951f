"""Integrators' and frontend developers' view: clients generated from the live OpenAPI document
of a real server, used against it. openapi-python-client in Python; openapi-typescript with
openapi-fetch (default generics) compiled by `tsc --strict` and run by node. Also Redocly's
recommended ruleset over the document. The npm tools come from package-lock.json (`make npm`)."""

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from api import PROJECT_ROOT

PACKAGE = "cdmo_metrics_client"
NODE_BIN = PROJECT_ROOT / "node_modules" / ".bin"
needs_npm = pytest.mark.skipif(
    not NODE_BIN.is_dir() or shutil.which("node") is None,
    reason="the npm tools are not installed: run `make npm` (make test does)",
)


@pytest.fixture(scope="session")
def live_document(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OpenAPI document the running server serves, saved to a file."""
    path = tmp_path_factory.mktemp("document") / "openapi.json"
    path.write_text(httpx.get(f"{server_url}/openapi.json").text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def generated_client(
    live_document: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    target = tmp_path_factory.mktemp("client")
    bin_dir = Path(sys.executable).parent
    generated = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(live_document),
            "--config",
            str(PROJECT_ROOT / "clients" / "python-client.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(target / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    # Every operation generated: nothing skipped for an unsupported media type or schema.
    assert "Warning" not in generated.stdout + generated.stderr, generated.stdout
    sys.path.insert(0, str(target))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(target))


def test_generated_python_client_pages_reads_downloads_and_gets_typed_problems(
    generated_client: ModuleType, server_url: str
) -> None:
    from cdmo_metrics_client import Client  # type: ignore[import-not-found]
    from cdmo_metrics_client.api.metrics import (  # type: ignore[import-not-found]
        export_metrics_csv,
        get_metric,
        list_metrics,
    )
    from cdmo_metrics_client.models import (  # type: ignore[import-not-found]
        MetricPublic,
        PageMetricPublic,
        Problem,
    )

    with Client(base_url=server_url, raise_on_unexpected_status=True) as client:
        seen: list[str] = []
        query: dict[str, str] | None = {"limit": "10", "sort": "id"}
        pages = 0
        while query is not None:
            keyset = {"after": query["after"]} if "after" in query else {}
            page = list_metrics.sync(
                client=client, limit=int(query["limit"]), sort=query["sort"], **keyset
            )
            assert isinstance(page, PageMetricPublic)
            seen += [metric.id for metric in page.items]
            pages += 1
            # Follow `next`: its query holds the parameters of the next page.
            query = dict(parse_qsl(urlsplit(page.next_).query)) if page.next_ else None
            assert pages <= 5, "next should end after five pages"
        assert (pages, len(seen), page.total) == (5, 42, 42)
        assert seen == sorted(seen)

        metric = get_metric.sync("car-t-dose-manufacturing-cost", client=client)
        assert isinstance(metric, MetricPublic)
        assert (metric.value, metric.value_low, metric.value_high, metric.unit.value) == (
            None,
            45000,
            65000,
            "USD",
        )
        assert metric.evidence.quote.startswith("The average cost of manufacturing a single CAR-T")

        csv_text = export_metrics_csv.sync(client=client, unit="USD", sort="-value_high", bom=True)
        assert isinstance(csv_text, str)
        lines = csv_text.splitlines()
        assert lines[0].startswith("\ufeffid,category,name")
        assert [line.split(",")[0] for line in lines[1:]] == [
            "personalized-cancer-medicine-market-size-2028",
            "oncology-cdmo-mna-value-2023",
            "car-t-dose-manufacturing-cost",
            "monoclonal-antibody-batch-manufacturing-cost",
        ]

        missing = get_metric.sync_detailed("no-such-metric", client=client)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, Problem)
        assert missing.parsed.status == 404
        assert missing.parsed.detail == "There is no metric 'no-such-metric'."

        invalid = list_metrics.sync_detailed(client=client, limit=0)
        assert invalid.status_code == 422
        assert isinstance(invalid.parsed, Problem)
        assert [error.name for error in invalid.parsed.errors] == ["limit"]


# Redocly CLI: no usage reports, no update checks.
NODE_ENV = {**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"}


def _run(*command: str, cwd: Path) -> str:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=300, env=NODE_ENV
    )
    assert done.returncode == 0, f"{command[0]}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@needs_npm
def test_generated_typescript_client_compiles_strictly_and_works(
    live_document: Path, server_url: str, tmp_path: Path
) -> None:
    work = tmp_path / "typescript"
    shutil.copytree(PROJECT_ROOT / "clients" / "typescript", work)
    (work / "node_modules").symlink_to(PROJECT_ROOT / "node_modules")
    _run(str(NODE_BIN / "openapi-typescript"), str(live_document), "-o", "schema.ts", cwd=work)
    _run(str(NODE_BIN / "tsc"), "-p", "tsconfig.json", cwd=work)
    output = _run("node", "out/tour.js", server_url, cwd=work)
    assert output.splitlines() == [
        "paged: 5 pages, 42 metrics",
        "metric: car-t-dose-manufacturing-cost 45000-65000 USD",
        "csv: 4 rows",
        "problems: 404 422",
    ]


@needs_npm
def test_redocly_recommended_ruleset_passes(live_document: Path, tmp_path: Path) -> None:
    """0 errors and 0 warnings (the health probes, too, document their 414)."""
    report = tmp_path / "lint.json"
    with report.open("w") as out:
        subprocess.run(
            [
                str(NODE_BIN / "redocly"),
                "lint",
                str(live_document),
                "--config",
                str(PROJECT_ROOT / "redocly.yaml"),
                "--format",
                "json",
            ],
            stdout=out,
            stderr=subprocess.DEVNULL,
            env=NODE_ENV,
            timeout=300,
            check=False,
        )
    problems = json.loads(report.read_text())["problems"]
    found = sorted(
        (problem["ruleId"], problem["severity"], problem["location"][0]["pointer"])
        for problem in problems
    )
    assert found == []
