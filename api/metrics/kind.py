"""The metric kind: its tables, shapes, subject rows, rules and references, declared once."""

from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from sqlmodel import Session

from api import figures, search
from api.cells import FORMULA_STARTS, csv_field
from api.filters import fold_case
from api.metrics import service, tally
from api.metrics.models import Metric, MetricSubject
from api.metrics.schemas import MetricPublic, MetricRecord
from api.records.kinds import Child, Kind, Ref
from api.records.store import Change
from api.records.validation import Check, Problem
from api.schemas import figure_text
from api.vocabulary import Measure, Unit

UNITS_BY_MEASURE: dict[str, set[str]] = {
    Measure.share: {Unit.percent},
    Measure.growth_rate: {Unit.percent},
    Measure.multiple: {Unit.ratio},
    Measure.duration: {Unit.hours, Unit.days, Unit.months, Unit.years},
    Measure.count_: {Unit.count_},
}


def rules(data: dict[str, Any], check: Check) -> Iterator[Problem]:
    """A metric's figures agree with each other, with its measure and with its quote."""
    value, low, high = data["value"], data["value_low"], data["value_high"]
    if low > high:
        yield Problem("value_low", f"{figure_text(low)} > value_high {figure_text(high)}")
    if value is not None and not low == value == high:
        yield Problem("value", "a point figure needs value_low == value == value_high")
    allowed = UNITS_BY_MEASURE.get(data["measure"])
    if allowed and data["unit"] not in allowed:
        yield Problem("unit", f"{data['unit']} does not fit measure {data['measure']}")
    if data["measure"] == Measure.change and data["direction"] is None:
        yield Problem("direction", "a change needs a direction")
    if data["base_year"] and data["year"] and data["base_year"] > data["year"]:
        yield Problem("base_year", f"{data['base_year']} is after year {data['year']}")
    # Case aside, as the subject filter compares them (and the tally by subject counts on it).
    if len({fold_case(subject) for subject in data["subjects"]}) != len(data["subjects"]):
        yield Problem("subjects", "a subject appears more than once (case aside)")
    if check.changed(data, "value_low", "value_high", "unit", "evidence"):
        quote = data["evidence"]["quote"]
        for missing in dict.fromkeys(figures.missing_figures(quote, low, high, unit=data["unit"])):
            name = "value" if value is not None else "value_low" if missing == low else "value_high"
            written = ", ".join(sorted(figures.signs_of(quote, missing)))
            if written:  # there, but as a figure of another unit ("47%" for USD)
                yield Problem(name, f"{figure_text(missing)} is written in the quote as {written},"
                              f" not {data['unit']}")  # fmt: skip
            else:
                yield Problem(name, f"{figure_text(missing)} is not written in the quote")
    baseline = data["baseline_id"]
    if (
        baseline is not None
        and baseline != data["id"]
        and check.changed(data, "baseline_id", "source_id")
    ):
        other = check.get("metric", baseline)
        if other is not None and other["source_id"] != data["source_id"]:
            yield Problem("baseline_id", f"metric {baseline!r} is from another source")
    if check.old is not None and check.changed(data, "source_id"):
        # The rule seen from the baseline's side: a metric compared against this one keeps to
        # its source (unless it moves with it, in the same load).
        for holder in check.holders("metric", "baseline_id", data["id"]):
            other = check.get("metric", holder)
            if holder != data["id"] and other and other["source_id"] != data["source_id"]:
                yield Problem(
                    "source_id",
                    f"metric {holder!r} is compared against this one (baseline_id) and is from "
                    f"source {other['source_id']!r}",
                )


def _subjects_json(subjects: list[str]) -> str:
    """The subjects as a page's item and an NDJSON line write them."""
    return orjson.dumps(subjects).decode()


def _subjects_csv(subjects: list[str]) -> str:
    """The subjects' cell as a CSV export writes it (api.exports `_cell` of the list, then
    quoted as csv.writer quotes)."""
    text = ";".join(subjects)
    if text.startswith(FORMULA_STARTS):
        text = "'" + text
    return csv_field(text)


def _present(data: dict[str, Any]) -> MetricPublic:
    year = data["year"]
    passed = bool(data["forecast"] and year is not None and year < service.current_year())
    return MetricPublic(**data, horizon_passed=passed)


def _get(session: Session, record_id: str) -> MetricPublic:
    return service.get_metric(session, metric_id=record_id)


_index = search.indexer("metric")


def _after_write(session: Session, version: int, changes: Sequence[Change]) -> None:
    """Search documents and the facet tally, in the transaction that wrote `changes`."""
    _index(session, version, changes)
    tally.count_changes(session, changes)


METRIC = Kind(
    name="metric",
    label="metric",
    plural="metrics",
    section="metrics",
    path="/metrics",
    id_param="metric_id",
    model=Metric,
    record=MetricRecord,
    public=MetricPublic,
    get=_get,
    child=Child(
        "subjects",
        MetricSubject.__table__,  # type: ignore[attr-defined]
        "metric_id",
        "subject",
        kept=(("subjects_json", _subjects_json), ("subjects_csv", _subjects_csv)),
        read_back=("subjects_json", orjson.loads),
    ),
    rendered=(("document", service.document),),
    refs=(Ref("source_id", "source"), Ref("baseline_id", "metric")),
    rules=rules,
    present=_present,
    tag_variant=lambda _session, _record_id: str(service.current_year()),
    after_write=_after_write,
    reserved_ids=("facets",),
)
