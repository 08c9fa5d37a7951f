"""The seeded dataset against the article: every figure, every span, and the loader's guarantees."""

from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine, MetaData, select, text

from api.dataset import DatasetError
from tests.conftest import SEED_DIR, seed

SOURCE_ID = "coreychem-future-of-cdmos-2026"
SOURCE_FILE = (
    SEED_DIR / "sources" / "future-of-cdmos-in-personalized-cancer-medicine-manufacturing.txt"
)
ARTICLE = SOURCE_FILE.read_text(encoding="utf-8")

# Transcribed from the article by hand, independently of seed/data:
# id, value, value_low, value_high, unit, qualifier, the figure as the article writes it.
FIGURES = [
    (
        "personalized-cancer-medicine-market-size-2028",
        150000000000,
        150000000000,
        150000000000,
        "USD",
        "gt",
        "$150 billion",
    ),
    ("personalized-cancer-medicine-market-cagr", 11.2, 11.2, 11.2, "percent", "eq", "11.2%"),
    ("oncology-pipeline-personalized-share", 47, 47, 47, "percent", "eq", "47%"),
    ("cell-gene-therapy-cdmo-capacity-growth-2026", 34, 34, 34, "percent", "eq", "34%"),
    ("car-t-dose-manufacturing-cost", None, 45000, 65000, "USD", "eq", "$45,000–$65,000"),
    ("monoclonal-antibody-batch-manufacturing-cost", 15000, 15000, 15000, "USD", "eq", "$15,000"),
    (
        "cancer-vaccine-developers-full-outsourcing-share-2027",
        60,
        60,
        60,
        "percent",
        "gt",
        "Over 60%",
    ),
    ("vein-to-vein-time-reduction", 25, 25, 25, "percent", "eq", "25%"),
    ("closed-system-operator-variability-reduction", 40, 40, 40, "percent", "eq", "40%"),
    ("closed-system-batch-release-success-increase", 30, 30, 30, "percent", "eq", "30%"),
    ("continuous-manufacturing-cycle-time-reduction", 50, 50, 50, "percent", "eq", "50%"),
    ("real-time-release-timeline-compression", 60, 60, 60, "percent", "eq", "60%"),
    ("digital-twin-failed-batch-reduction", 22, 22, 22, "percent", "eq", "22%"),
    ("digital-twin-raw-material-waste-reduction", 18, 18, 18, "percent", "eq", "18%"),
    ("ai-cell-viability-improvement", 12, 12, 12, "percent", "eq", "12%"),
    ("autologous-cell-therapy-viability-window", None, 18, 72, "hours", "eq", "18-72 hours"),
    ("distributed-cell-therapy-capacity-share-2025", 35, 35, 35, "percent", "approx", "35%"),
    (
        "cell-therapy-regional-node-count-2025",
        None,
        5,
        10,
        "count",
        "approx",
        "5-10 regional nodes",
    ),
    ("regulatory-uncertainty-top-risk-share", 71, 71, 71, "percent", "eq", "71%"),
    (
        "personalized-cell-therapy-post-approval-change-time",
        14,
        14,
        14,
        "months",
        "eq",
        "14 months",
    ),
    ("standard-biologic-post-approval-change-time", 6, 6, 6, "months", "eq", "6 months"),
    ("qbd-filing-rejection-reduction", 40, 40, 40, "percent", "eq", "40%"),
    ("rwd-process-verification-required-share", 80, 80, 80, "percent", "eq", "80%"),
    ("quality-failure-cost-multiple", 3.5, 3.5, 3.5, "ratio", "eq", "3.5x"),
    ("regulatory-flexibility-approval-timeline-reduction", 30, 30, 30, "percent", "eq", "30%"),
    ("value-based-pricing-client-retention-increase", 15, 15, 15, "percent", "eq", "15%"),
    ("value-based-pricing-renegotiation-reduction", 20, 20, 20, "percent", "eq", "20%"),
    ("capacity-pool-upfront-capital-reduction", 40, 40, 40, "percent", "eq", "40%"),
    (
        "capacity-pool-minimum-utilization",
        70,
        70,
        70,
        "percent",
        "gte",
        "minimum utilization rate of 70%",
    ),
    ("platform-process-per-dose-cost-reduction", 25, 25, 25, "percent", "eq", "25%"),
    ("ultra-personalized-annual-cost-reduction", None, 8, 10, "percent", "eq", "8-10%"),
    (
        "oncology-cdmo-mna-value-2023",
        28000000000,
        28000000000,
        28000000000,
        "USD",
        "eq",
        "$28 billion",
    ),
    ("oncology-cdmo-mna-value-growth-2023", 45, 45, 45, "percent", "eq", "45%"),
    ("vertical-integration-contract-value-premium", 30, 30, 30, "percent", "eq", "30%"),
    ("cdmo-academic-alliance-share", 55, 55, 55, "percent", "eq", "55%"),
    ("profit-sharing-co-development-program-share", 12, 12, 12, "percent", "eq", "12%"),
    ("asia-pacific-cdmo-capacity-cagr", 28, 28, 28, "percent", "eq", "28% CAGR"),
    ("personalized-production-turnaround-time", None, 7, 14, "days", "eq", "7-14 days"),
    ("viral-vector-lead-time", None, 12, 18, "months", "eq", "12-18 months"),
    ("viable-cell-therapy-shelf-life", None, 48, 72, "hours", "eq", "48-72 hours"),
    ("cogs-plus-fixed-margin-range", None, 15, 25, "percent", "eq", "15% to 25%"),
    (
        "gmp-harmonization-registration-cost-reduction",
        None,
        20,
        30,
        "percent",
        "approx",
        "estimated 20-30%",
    ),
]
# (id, year, base_year, forecast, direction, geography, cited_as, baseline_id) where they matter.
CONTEXT = [
    ("personalized-cancer-medicine-market-size-2028", 2028, None, True, None, "global", None, None),
    (
        "personalized-cancer-medicine-market-cagr",
        2028,
        2023,
        True,
        "increase",
        "global",
        None,
        None,
    ),
    ("oncology-pipeline-personalized-share", 2026, None, False, None, None, "IQVIA, 2024", None),
    (
        "cell-gene-therapy-cdmo-capacity-growth-2026",
        2026,
        None,
        True,
        "increase",
        "global",
        None,
        None,
    ),
    (
        "car-t-dose-manufacturing-cost",
        2026,
        None,
        False,
        None,
        None,
        None,
        "monoclonal-antibody-batch-manufacturing-cost",
    ),
    (
        "cancer-vaccine-developers-full-outsourcing-share-2027",
        2027,
        None,
        True,
        None,
        None,
        None,
        None,
    ),
    ("vein-to-vein-time-reduction", 2026, 2021, False, "decrease", None, None, None),
    (
        "regulatory-uncertainty-top-risk-share",
        2024,
        None,
        False,
        None,
        None,
        "PharmaManufacturing Survey, 2024",
        None,
    ),
    (
        "personalized-cell-therapy-post-approval-change-time",
        None,
        None,
        False,
        None,
        None,
        None,
        "standard-biologic-post-approval-change-time",
    ),
    ("distributed-cell-therapy-capacity-share-2025", 2025, None, True, None, None, None, None),
    ("platform-process-per-dose-cost-reduction", 2026, 2022, False, "decrease", None, None, None),
    ("oncology-cdmo-mna-value-2023", 2023, None, False, None, None, None, None),
    ("oncology-cdmo-mna-value-growth-2023", 2023, 2022, False, "increase", None, None, None),
    ("asia-pacific-cdmo-capacity-cagr", None, None, False, "increase", "Asia-Pacific", None, None),
    (
        "gmp-harmonization-registration-cost-reduction",
        None,
        None,
        True,
        "decrease",
        "global",
        None,
        None,
    ),
]


@pytest.fixture(scope="module")
def served(client: TestClient) -> dict[str, dict[str, object]]:
    body = client.get("/v1/metrics", params={"limit": 500}).json()
    return {item["id"]: item for item in body["items"]}


def test_the_seed_source_is_the_article_byte_for_byte() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "sources" / SOURCE_FILE.name
    if not shared.exists():
        pytest.skip("the shared article is not beside this checkout")
    assert SOURCE_FILE.read_bytes() == shared.read_bytes()


def test_api_serves_exactly_the_articles_figures(served: dict[str, dict[str, object]]) -> None:
    assert sorted(served) == sorted(row[0] for row in FIGURES)
    for metric_id, value, low, high, unit, qualifier, _written in FIGURES:
        metric = served[metric_id]
        assert (metric["value"], metric["value_low"], metric["value_high"]) == (value, low, high)
        assert (metric["unit"], metric["qualifier"]) == (unit, qualifier), metric_id


def test_each_evidence_span_is_exact_and_states_its_figure(
    served: dict[str, dict[str, object]],
) -> None:
    for metric_id, *_rest, written in FIGURES:
        evidence = served[metric_id]["evidence"]
        assert isinstance(evidence, dict)
        quote = evidence["quote"]
        assert ARTICLE[evidence["start"] : evidence["end"]] == quote
        assert quote == quote.strip() and not quote.startswith("•")
        assert written in quote, f"{metric_id}: {written!r} not in its quote"


def test_time_place_citation_and_comparisons(served: dict[str, dict[str, object]]) -> None:
    for metric_id, year, base_year, forecast, direction, geography, cited, baseline in CONTEXT:
        metric = served[metric_id]
        assert (
            metric["year"],
            metric["base_year"],
            metric["forecast"],
            metric["direction"],
            metric["geography"],
            metric["cited_as"],
            metric["baseline_id"],
        ) == (year, base_year, forecast, direction, geography, cited, baseline), metric_id


def test_changes_carry_a_direction_and_the_categories_cover_all_five_sections(
    served: dict[str, dict[str, object]],
) -> None:
    assert all(m["direction"] for m in served.values() if m["measure"] == "change")
    counts: dict[object, int] = {}
    for metric in served.values():
        counts[metric["category"]] = counts.get(metric["category"], 0) + 1
    assert counts == {"market": 10, "technology": 11, "regulatory": 8, "pricing": 7, "mna": 6}


def test_entity_spans_are_exact(client: TestClient) -> None:
    for path in ("technologies", "pricing-models", "regulatory/outlook", "bottlenecks", "faq"):
        for item in client.get(f"/v1/{path}").json()["items"]:
            evidence = item["evidence"]
            assert ARTICLE[evidence["start"] : evidence["end"]] == evidence["quote"], item["id"]


def _dump(engine: Engine) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, sorted: the database's whole content."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return {
            name: sorted(connection.execute(select(table)).all(), key=repr)
            for name, table in metadata.tables.items()
        }


def test_seeding_twice_changes_nothing(migrated_engine: Engine) -> None:
    first = seed(migrated_engine)
    before = _dump(migrated_engine)
    second = seed(migrated_engine)
    assert _dump(migrated_engine) == before
    assert str(first["metrics"]) == "+42 ~0 -0 =0"
    assert all(str(counts).startswith("+0 ~0 -0 =") for counts in second.values())


def _edit(seed_dir: Path, change: callable) -> None:  # type: ignore[valid-type]
    path = seed_dir / "data" / f"{SOURCE_ID}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_a_bad_file_is_refused_naming_the_record_and_changes_nothing(
    migrated_engine: Engine, seed_copy: Path
) -> None:
    seed(migrated_engine)
    before = _dump(migrated_engine)

    def corrupt(data: dict) -> None:  # type: ignore[type-arg]
        data["metrics"][0]["description"] = "An edit that must not land."
        car_t = next(m for m in data["metrics"] if m["id"] == "car-t-dose-manufacturing-cost")
        car_t["evidence"]["start"] += 1

    _edit(seed_copy, corrupt)
    with pytest.raises(DatasetError) as refused:
        seed(migrated_engine, seed_copy)
    message = str(refused.value)
    assert f"{SOURCE_ID}.yaml: metrics[car-t-dose-manufacturing-cost].evidence" in message
    assert "quote is not source_text[" in message
    assert _dump(migrated_engine) == before


def test_a_load_may_reorder_the_bottlenecks(migrated_engine: Engine, seed_copy: Path) -> None:
    """Ranks are unique at every moment, yet a file may swap two, rotate three, or give a new
    bottleneck the rank of one it removes: the load holds them in one transaction."""
    seed(migrated_engine)

    def ranks() -> dict[str, int]:
        with migrated_engine.connect() as connection:
            return dict(connection.execute(text("SELECT id, rank FROM bottleneck")).all())

    original = ranks()

    def rotate(data: dict) -> None:  # type: ignore[type-arg]
        first, second, third = data["bottlenecks"][:3]
        first["rank"], second["rank"], third["rank"] = second["rank"], third["rank"], first["rank"]

    _edit(seed_copy, rotate)
    assert str(seed(migrated_engine, seed_copy)["bottlenecks"]).startswith("+0 ~3 -0")
    rotated = ranks()
    assert rotated["viral-vector-capacity"] == original["cold-chain-logistics"]
    assert rotated["cold-chain-logistics"] == original["til-processing-platforms"]
    assert rotated["til-processing-platforms"] == original["viral-vector-capacity"]

    def replace(data: dict) -> None:  # type: ignore[type-arg]
        removed = data["bottlenecks"].pop(0)
        data["bottlenecks"].append({**removed, "id": "viral-vector-capacity-renamed"})

    _edit(seed_copy, replace)
    assert str(seed(migrated_engine, seed_copy)["bottlenecks"]).startswith("+1 ~0 -1")
    replaced = ranks()
    assert "viral-vector-capacity" not in replaced
    assert replaced["viral-vector-capacity-renamed"] == rotated["viral-vector-capacity"]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("unit", "furlongs", "metrics[viral-vector-lead-time].unit: Input should be"),
        ("value_low", 99, "metrics[viral-vector-lead-time].value_low: 99 > value_high"),
        (
            "baseline_id",
            "no-such-metric",
            "metrics[viral-vector-lead-time].baseline_id: there is no metric 'no-such-metric'",
        ),
        ("qualifier", "roughly", "metrics[viral-vector-lead-time].qualifier"),
        (
            "id",
            "viable-cell-therapy-shelf-life",
            "metrics[viable-cell-therapy-shelf-life].id: duplicate",
        ),
    ],
)
def test_invalid_records_are_named_with_their_field(
    seed_copy: Path, migrated_engine: Engine, field: str, value: object, expected: str
) -> None:
    def change(data: dict) -> None:  # type: ignore[type-arg]
        metric = next(m for m in data["metrics"] if m["id"] == "viral-vector-lead-time")
        metric[field] = value

    _edit(seed_copy, change)
    with pytest.raises(DatasetError) as refused:
        seed(migrated_engine, seed_copy)
    assert expected in str(refused.value)


def test_editing_and_removing_records_updates_the_database(
    client: TestClient, migrated_engine: Engine, seed_copy: Path
) -> None:
    seed(migrated_engine)
    from api.main import create_app

    paths = [
        "/v1/metrics/viral-vector-lead-time",
        "/v1/metrics.csv",
        "/v1/faq/scaling-bottlenecks",
    ]
    with TestClient(create_app(engine=migrated_engine)) as before:
        tags = {path: before.get(path).headers["etag"] for path in paths}
        assert before.get("/v1/metrics", params={"q": "academic alliances"}).json()["total"] == 1

    def change(data: dict) -> None:  # type: ignore[type-arg]
        data["metrics"] = [m for m in data["metrics"] if m["id"] != "cdmo-academic-alliance-share"]
        for entity in data["pricing_models"] + data["technologies"]:
            entity["metric_ids"] = [
                i for i in entity["metric_ids"] if i != "cdmo-academic-alliance-share"
            ]
        metric = next(m for m in data["metrics"] if m["id"] == "viral-vector-lead-time")
        metric["name"] = "Viral vector lead time (edited)"
        metric["subjects"] = ["viral vector"]

    _edit(seed_copy, change)
    counts = seed(migrated_engine, seed_copy)
    assert str(counts["metrics"]) == "+0 ~1 -1 =40"

    with TestClient(create_app(engine=migrated_engine)) as edited:
        after = {path: edited.get(path).headers["etag"] for path in tags}
        assert (
            after["/v1/metrics/viral-vector-lead-time"]
            != tags["/v1/metrics/viral-vector-lead-time"]
        )
        assert after["/v1/metrics.csv"] != tags["/v1/metrics.csv"]
        assert after["/v1/faq/scaling-bottlenecks"] == tags["/v1/faq/scaling-bottlenecks"]
        # The search index follows the load: new words are found, removed metrics are not.
        found = edited.get("/v1/metrics", params={"q": "edited"}).json()["items"]
        assert [m["id"] for m in found] == ["viral-vector-lead-time"]
        assert edited.get("/v1/metrics", params={"q": "academic alliances"}).json()["total"] == 0
        assert edited.get("/v1/metrics/cdmo-academic-alliance-share").status_code == 404
        metric = edited.get("/v1/metrics/viral-vector-lead-time").json()
        assert metric["name"] == "Viral vector lead time (edited)"
        assert metric["subjects"] == ["viral vector"]
        assert edited.get("/v1/metrics").json()["total"] == 41
    # The shared, seeded database is untouched by this test's private copy.
    assert client.get("/v1/metrics/cdmo-academic-alliance-share").status_code == 200
