"""One validation: the loader and the API refuse the same records with the same messages."""

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import Session

from api.dataset import DatasetError, read_datasets
from api.records.loading import load_datasets
from tests.helpers import SOURCE, TEXT_PATH, Writable, new_metric

BASE = new_metric()
QUOTE = str(BASE["evidence"]["quote"])  # type: ignore[index]
# (case, changes to a valid new metric); each is refused by every entry point alike.
INVALID: list[tuple[str, dict[str, Any]]] = [
    ("unit not allowed for the measure", {"measure": "share", "unit": "USD"}),
    ("evidence end past the text",
     {"evidence": {"quote": QUOTE, "start": 4915, "end": 2147483647}}),
    ("quote not equal to the span",
     {"evidence": {"quote": QUOTE, "start": 4916, "end": 4916 + len(QUOTE)}}),
    ("quote with surrounding whitespace",
     {"evidence": {"quote": QUOTE + " ", "start": 4915, "end": 4916 + len(QUOTE)}}),
    ("value outside low..high", {"value": 3.5, "value_low": 3.5, "value_high": 4}),
    ("low above high", {"value": None, "value_low": 3.5, "value_high": 3}),
    ("unknown baseline", {"baseline_id": "no-such-metric"}),
    ("self baseline", {"baseline_id": BASE["id"]}),
    ("duplicate subjects", {"subjects": ["quality", "quality"]}),
    ("subjects equal but for case", {"subjects": ["CAR-T", "car-t"]}),
    ("figure not in its quote", {"value": 3.6, "value_low": 3.6, "value_high": 3.6}),
    ("a multiple's figure stored as dollars", {"measure": "level", "unit": "USD"}),
    ("change without a direction", {"measure": "change", "unit": "percent"}),
    ("base year after year", {"year": 2024, "base_year": 2025}),
    ("a bidirectional override in a name", {"name": "Cost per dose \u202e0001$"}),
    ("a control character in a name", {"name": "Cost\x1b[2J per dose"}),
    ("a list separator in a subject", {"subjects": ["CAR-T;TIL"]}),
    ("white space around a subject", {"subjects": [" CAR-T"]}),
    ("white space around a geography", {"geography": " global "}),
    ("an unknown field", {"colour": "red"}),
    ("several problems at once",
     {"measure": "share", "unit": "USD", "subjects": ["a", "a"], "baseline_id": "nope"}),
]  # fmt: skip


def _loader_refusal(engine: Engine, seed_dir: Path, record: dict[str, Any]) -> set[tuple[str, str]]:
    path = next((seed_dir / "data").glob("*.yaml"))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    entry = {key: value for key, value in record.items() if key != "source_id"}
    data["metrics"].append(entry)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(DatasetError) as refused:
        datasets = read_datasets(seed_dir / "data", seed_dir / "sources")
        with Session(engine) as session, session.begin():
            load_datasets(session, datasets)
    prefix = f"metrics[{record['id']}]."
    found = set()
    for problem in refused.value.problems:
        assert prefix in problem, problem  # nothing else in the file is refused
        field, detail = problem.split(prefix, 1)[1].split(": ", 1)
        found.add((field, detail))
    return found


def _api_refusal(w: Writable, record: dict[str, Any]) -> set[tuple[str, str]]:
    answer = w.client.post("/v1/metrics", json=record, headers=w.auth())
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return {(error["name"], error["detail"]) for error in answer.json()["errors"]}


@pytest.mark.parametrize(("case", "changes"), INVALID, ids=[case for case, _ in INVALID])
def test_loader_and_api_refuse_alike(
    case: str,
    changes: dict[str, Any],
    writable: Writable,
    empty_engine: Engine,
    seed_copy: Path,
) -> None:
    from api import migrate

    migrate.upgrade(empty_engine)
    record = copy.deepcopy(BASE) | copy.deepcopy(changes)
    through_api = _api_refusal(writable, record)
    through_loader = _loader_refusal(empty_engine, seed_copy, record)
    assert through_api == through_loader
    assert through_api  # and each case is refused at all
    # Nothing was written by either.
    assert writable.client.get(f"/v1/metrics/{BASE['id']}").status_code == 404


def test_an_unknown_source_is_refused_by_the_api(writable: Writable) -> None:
    """(A dataset file's records always belong to the file's own source.)"""
    refused = _api_refusal(writable, BASE | {"source_id": "no-such-source"})
    assert refused == {("source_id", "there is no source 'no-such-source'")}


def test_messages_name_the_problem(writable: Writable) -> None:
    refused = _api_refusal(writable, BASE | {"measure": "share", "unit": "USD"})
    assert refused == {
        ("unit", "USD does not fit measure share"),
        ("value", "3.5 is written in the quote as ratio, not USD"),  # "3.5x"
    }
    refused = _api_refusal(writable, BASE | {"evidence": INVALID[1][1]["evidence"]})
    length = len(writable.client.get(TEXT_PATH).text)
    assert refused == {("evidence.end", f"2147483647 is past the end of the source ({length})")}


def test_a_patch_whose_figure_leaves_its_quote_is_refused(writable: Writable) -> None:
    w = writable
    path = "/v1/metrics/vertical-integration-contract-value-premium"
    before = w.client.get(path).json()
    assert "30% premium" in before["evidence"]["quote"]
    refused = w.client.patch(
        path,
        json={"value": 31, "value_low": 31, "value_high": 31},
        headers={**w.auth(), "If-Match": w.etag(path)},
    )
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {"in": "body", "name": "value", "detail": "31 is not written in the quote"}
    ]
    assert w.client.get(path).json() == before


@pytest.mark.parametrize(
    ("path", "changes", "error"),
    [
        # "$150 billion": 150 is the number as written, not the figure.
        ("/v1/metrics/personalized-cancer-medicine-market-size-2028",
         {"value": 150, "value_low": 150, "value_high": 150},
         {"name": "value", "detail": "150 is not written in the quote"}),
        # Near the figure written is not the figure written.
        ("/v1/metrics/personalized-cancer-medicine-market-size-2028",
         {"value": 150000000150, "value_low": 150000000150, "value_high": 150000000150},
         {"name": "value", "detail": "150000000150 is not written in the quote"}),
        # "47% of oncology pipeline assets": a share, not dollars.
        ("/v1/metrics/oncology-pipeline-personalized-share",
         {"unit": "USD", "measure": "level"},
         {"name": "value", "detail": "47 is written in the quote as percent, not USD"}),
    ],
)  # fmt: skip
def test_a_patch_that_misreads_its_quote_is_refused(
    writable: Writable, path: str, changes: dict[str, Any], error: dict[str, str]
) -> None:
    w = writable
    before = w.client.get(path).json()
    refused = w.client.patch(path, json=changes, headers={**w.auth(), "If-Match": w.etag(path)})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"] == [{"in": "body", **error}]
    assert w.client.get(path).json() == before


def test_every_seeded_figure_is_written_in_its_quote(client: Any) -> None:
    from api import figures

    metrics = client.get("/v1/metrics", params={"limit": 500}).json()["items"]
    assert len(metrics) == 42
    for metric in metrics:
        quote = metric["evidence"]["quote"]
        low, high, unit = metric["value_low"], metric["value_high"], metric["unit"]
        assert figures.missing_figures(quote, low, high, unit=unit) == []
    assert SOURCE
