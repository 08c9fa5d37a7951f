"""`/v1/dataset.zip`: the whole dataset as a Frictionless Data Package, valid and complete."""

import csv
import io
import json
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from tests.helpers import SOURCE, Writable, new_metric

RESOURCES = {
    "sources": 1,
    "metrics": 42,
    "technologies": 4,
    "pricing_models": 8,
    "regulatory_changes": 3,
    "bottlenecks": 4,
    "faqs": 5,
}


def _archive(client: TestClient, **params: str) -> zipfile.ZipFile:
    response = client.get("/v1/dataset.zip", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == 'attachment; filename="cdmo-metrics.zip"'
    return zipfile.ZipFile(io.BytesIO(response.content))


def _rows(archive: zipfile.ZipFile, name: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read(f"{name}.csv").decode("utf-8"))))


def test_the_package_is_valid_under_frictionless(client: TestClient, tmp_path: Path) -> None:
    _archive(client).extractall(tmp_path)
    result = subprocess.run(
        [Path(sys.executable).with_name("frictionless"), "validate", "--json", "datapackage.json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = json.loads(result.stdout)
    errors = [error["message"] for task in report["tasks"] for error in task["errors"]]
    assert report["valid"] is True, errors
    assert [task["name"] for task in report["tasks"]] == [*RESOURCES, f"text-{SOURCE}"]
    assert {task["name"]: task["stats"]["rows"] for task in report["tasks"][:-1]} == RESOURCES


def test_every_collection_with_its_schema_keys_and_text(client: TestClient) -> None:
    archive = _archive(client)
    package = json.loads(archive.read("datapackage.json"))
    schemas = {r["name"]: r.get("schema") for r in package["resources"]}
    metrics = schemas["metrics"]
    fields = {field["name"]: field for field in metrics["fields"]}
    assert metrics["primaryKey"] == ["id"]
    assert metrics["foreignKeys"] == [
        {"fields": ["source_id"], "reference": {"resource": "sources", "fields": ["id"]}},
        {"fields": ["baseline_id"], "reference": {"resource": "", "fields": ["id"]}},
    ]
    assert fields["unit"]["constraints"]["enum"] == [
        "USD", "percent", "ratio", "hours", "days", "months", "years", "count",
    ]  # fmt: skip
    assert (fields["value"]["type"], fields["value"]["constraints"]["required"]) == (
        "number",
        False,
    )
    assert "unit" in fields["value_low"]["description"]
    assert fields["year"]["type"] == "integer" and fields["forecast"]["type"] == "boolean"
    assert fields["subjects"]["type"] == "array"
    assert schemas["bottlenecks"] is not None
    assert {f["name"] for f in schemas["bottlenecks"]["fields"]} >= {"rank", "metric_ids"}
    assert package["licenses"][0]["name"] == "other-closed"
    assert package["citation"] == [
        "CoreyChem Editorial Team. (2026, June 1). Future of CDMOs in Personalized Cancer "
        "Medicine Manufacturing. CoreyChem."
    ]

    text = archive.read(f"sources/{SOURCE}.txt").decode("utf-8")
    assert text == client.get(f"/v1/sources/{SOURCE}/text").text
    cost = next(r for r in _rows(archive, "metrics") if r["id"] == "car-t-dose-manufacturing-cost")
    assert (cost["value"], cost["value_low"], cost["value_high"]) == ("", "45000", "65000")
    assert text[int(cost["evidence_start"]) : int(cost["evidence_end"])] == cost["evidence_quote"]
    assert json.loads(cost["subjects"]) == ["CAR-T", "manufacturing cost"]
    pricing = [r["id"] for r in _rows(archive, "pricing_models")]
    assert pricing == [i["id"] for i in client.get("/v1/pricing-models").json()["items"]]
    assert _rows(archive, "sources")[0]["text_path"] == f"sources/{SOURCE}.txt"


def test_as_of_packages_the_data_as_it_stood(writable: Writable) -> None:
    w = writable
    time.sleep(0.05)
    moment = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    time.sleep(0.05)
    assert w.client.post("/v1/metrics", json=new_metric(), headers=w.auth()).status_code == 201
    assert len(_rows(_archive(w.client), "metrics")) == 43
    assert len(_rows(_archive(w.client, as_of=moment), "metrics")) == 42
    assert w.client.get("/v1/dataset.zip", params={"as_of": "yesterday"}).status_code == 422
    assert w.client.get("/v1/dataset.zip", params={"colour": "red"}).status_code == 422


def test_the_packages_csv_files_cannot_run_a_formula(writable: Writable) -> None:
    """Text a spreadsheet would run as a formula is prefixed with `'` in the package's CSV
    files, as in the /v1 CSV exports."""
    w = writable
    path = "/v1/metrics/viral-vector-lead-time"
    formula = '=HYPERLINK("http://evil.example","x")'
    patched = w.client.patch(
        path, json={"name": formula}, headers={**w.auth(), "If-Match": w.etag(path)}
    )
    assert patched.status_code == 200, patched.text
    package = zipfile.ZipFile(io.BytesIO(w.client.get("/v1/dataset.zip").content))
    rows = {
        row["id"]: row for row in csv.DictReader(io.StringIO(package.read("metrics.csv").decode()))
    }
    assert rows["viral-vector-lead-time"]["name"] == "'" + formula
    # ... and the package says so, for a reader who needs the exact text.
    described = json.loads(package.read("datapackage.json"))["description"]
    assert "a leading ' added" in described
    exported = w.client.get("/v1/metrics.csv").text
    assert "'=HYPERLINK" in exported
