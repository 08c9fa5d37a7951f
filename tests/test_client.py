"""An integrator's view: a Python client generated from the committed openapi.json with
openapi-python-client, used against a real server."""

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from api import PROJECT_ROOT

PACKAGE = "cdmo_metrics_client"


@pytest.fixture(scope="session")
def generated_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    target = tmp_path_factory.mktemp("client")
    generator = Path(sys.executable).parent / "openapi-python-client"
    subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(PROJECT_ROOT / "openapi.json"),
            "--meta",
            "none",
            "--output-path",
            str(target / PACKAGE),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    sys.path.insert(0, str(target))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(target))


def test_generated_client_pages_fetches_and_gets_typed_404(
    generated_client: ModuleType, server_url: str
) -> None:
    from cdmo_metrics_client import Client  # type: ignore[import-not-found]
    from cdmo_metrics_client.api.metrics import get_metric, list_metrics  # type: ignore[import-not-found]
    from cdmo_metrics_client.models import MetricPublic, PageMetricPublic, Problem  # type: ignore[import-not-found]

    with Client(base_url=server_url, raise_on_unexpected_status=True) as client:
        seen: list[str] = []
        offset, pages = 0, 0
        while True:
            page = list_metrics.sync(client=client, limit=10, offset=offset, sort="id")
            assert isinstance(page, PageMetricPublic)
            seen += [metric.id for metric in page.items]
            pages += 1
            if page.next_ is None:
                break
            offset += 10
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

        missing = get_metric.sync_detailed("no-such-metric", client=client)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, Problem)
        assert missing.parsed.status == 404
        assert missing.parsed.detail == "There is no metric 'no-such-metric'."
