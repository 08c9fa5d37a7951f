"""The dataset file format of `seed/data/*.yaml` and its validation, independent of any database."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from api.schemas import no_nul
from api.vocabulary import Category, Direction, Measure, Qualifier, SourceKind, Unit

Slug = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", min_length=1, max_length=100)
]


Text = Annotated[str, StringConstraints(min_length=1, max_length=100_000), AfterValidator(no_nul)]


Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(no_nul)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(no_nul)]
Title = Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(no_nul)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2000), AfterValidator(no_nul)]
Offset = Annotated[int, Field(ge=0, le=2**31 - 1)]
Year = Annotated[int, Field(ge=1900, le=2200)]
Figure = Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15)]

UNITS_BY_MEASURE: dict[Measure, set[Unit]] = {
    Measure.share: {Unit.percent},
    Measure.growth_rate: {Unit.percent},
    Measure.multiple: {Unit.ratio},
    Measure.duration: {Unit.hours, Unit.days, Unit.months, Unit.years},
    Measure.count_: {Unit.count_},
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EvidenceIn(Strict):
    quote: Text
    start: Offset
    end: Offset


class SourceFields(Strict):
    id: Slug
    title: Title
    publisher: Name
    author: Name | None = None
    published_on: date
    kind: SourceKind
    url: Url | None = None


class SourceIn(SourceFields):
    """A dataset file's source: its text lives in `seed/sources/<text_file>`."""

    text_file: str


class SourceRecord(SourceFields):
    """A source as stored and as written through the API: metadata and the verbatim text."""

    text: Text


class MetricIn(Strict):
    id: Slug
    category: Category
    name: Name
    description: Text
    value: Figure | None
    value_low: Figure
    value_high: Figure
    qualifier: Qualifier
    unit: Unit
    measure: Measure
    direction: Direction | None
    year: Year | None
    forecast: bool
    base_year: Year | None
    geography: Label | None
    subjects: list[Label]
    cited_as: Name | None
    baseline_id: Slug | None
    evidence: EvidenceIn


class EntityIn(Strict):
    id: Slug
    name: Name
    summary: Text
    evidence: EvidenceIn
    metric_ids: list[Slug] = []


class TechnologyIn(EntityIn):
    examples: list[Name] = []


class PricingModelIn(EntityIn):
    pass


class RegulatoryChangeIn(EntityIn):
    agency: Label | None
    expected_impact: Text


class BottleneckIn(EntityIn):
    rank: int = Field(ge=1, le=1_000_000)


class FaqIn(EntityIn):
    question: Text


class DatasetIn(Strict):
    source: SourceIn
    metrics: list[MetricIn] = []
    technologies: list[TechnologyIn] = []
    pricing_models: list[PricingModelIn] = []
    regulatory_changes: list[RegulatoryChangeIn] = []
    bottlenecks: list[BottleneckIn] = []
    faqs: list[FaqIn] = []


class MetricRecord(MetricIn):
    """A metric as stored and as written through the API: it names its source."""

    source_id: Slug


class TechnologyRecord(TechnologyIn):
    source_id: Slug


class PricingModelRecord(PricingModelIn):
    source_id: Slug


class RegulatoryChangeRecord(RegulatoryChangeIn):
    source_id: Slug


class BottleneckRecord(BottleneckIn):
    source_id: Slug


class FaqRecord(FaqIn):
    source_id: Slug


ENTITY_SECTIONS = ("technologies", "pricing_models", "regulatory_changes", "bottlenecks", "faqs")


@dataclass(frozen=True)
class Dataset:
    """A validated dataset file with the verbatim text of its source."""

    path: Path
    data: DatasetIn
    text: str

    def entities(self) -> dict[str, list[EntityIn]]:
        return {section: list(getattr(self.data, section)) for section in ENTITY_SECTIONS}


@dataclass
class DatasetError(Exception):
    """One or more problems in dataset files; each line names the file, the record and the field."""

    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(self.problems)


def _record_label(raw: Any, loc: tuple[int | str, ...]) -> tuple[str, str]:
    """`metrics[car-t-dose-cost]` and the remaining field path for a pydantic error location."""
    if len(loc) >= 2 and isinstance(loc[1], int):
        section, index = str(loc[0]), loc[1]
        try:
            record_id = raw[section][index].get("id") or f"#{index}"
        except (KeyError, IndexError, TypeError, AttributeError):
            record_id = f"#{index}"
        rest = ".".join(str(part) for part in loc[2:]) or "(record)"
        return f"{section}[{record_id}]", rest
    return str(loc[0]) if loc else "(file)", ".".join(str(part) for part in loc[1:]) or "(value)"


def read_dataset(path: Path, sources_dir: Path) -> Dataset:
    """Parse and validate one dataset file on its own; raises DatasetError naming every problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DatasetError([f"{path}: cannot be read as UTF-8 YAML: {exc}"]) from None
    try:
        data = DatasetIn.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            record, where = _record_label(raw, error["loc"])
            problems.append(f"{path}: {record}.{where}: {error['msg']}")
        raise DatasetError(problems) from None
    text_path = sources_dir / data.source.text_file
    try:
        text = text_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError([f"{path}: source.text_file: cannot read {text_path}: {exc}"]) from None
    dataset = Dataset(path=path, data=data, text=text)
    problems = list(_check_records(dataset))
    if problems:
        raise DatasetError(problems)
    return dataset


def _check_evidence(dataset: Dataset, label: str, evidence: EvidenceIn) -> Iterable[str]:
    where = f"{dataset.path}: {label}.evidence"
    quote = evidence.quote
    if quote != quote.strip():
        yield f"{where}.quote: has leading or trailing whitespace"
    if evidence.end > len(dataset.text):
        yield f"{where}.end: {evidence.end} is past the end of the source ({len(dataset.text)})"
    elif dataset.text[evidence.start : evidence.end] != quote:
        found = dataset.text.find(quote)
        hint = f" (the quote occurs at {found}:{found + len(quote)})" if found >= 0 else ""
        yield f"{where}: quote is not source_text[{evidence.start}:{evidence.end}]{hint}"


def _check_records(dataset: Dataset) -> Iterable[str]:
    data, path = dataset.data, dataset.path
    metric_ids = [metric.id for metric in data.metrics]
    for section, ids in [("metrics", metric_ids)] + [
        (section, [entity.id for entity in records])
        for section, records in dataset.entities().items()
    ]:
        for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
            yield f"{path}: {section}[{duplicate}].id: duplicate id"
    known = set(metric_ids)
    for metric in data.metrics:
        label = f"metrics[{metric.id}]"
        yield from _check_evidence(dataset, label, metric.evidence)
        if metric.value_low > metric.value_high:
            yield f"{path}: {label}.value_low: {metric.value_low} > value_high {metric.value_high}"
        if metric.value is not None and not metric.value_low == metric.value == metric.value_high:
            yield f"{path}: {label}.value: a point figure needs value_low == value == value_high"
        allowed = UNITS_BY_MEASURE.get(metric.measure)
        if allowed and metric.unit not in allowed:
            yield f"{path}: {label}.unit: {metric.unit} does not fit measure {metric.measure}"
        if metric.measure is Measure.change and metric.direction is None:
            yield f"{path}: {label}.direction: a change needs a direction"
        if metric.base_year and metric.year and metric.base_year > metric.year:
            yield f"{path}: {label}.base_year: {metric.base_year} is after year {metric.year}"
        if metric.baseline_id is not None and (
            metric.baseline_id not in known or metric.baseline_id == metric.id
        ):
            yield f"{path}: {label}.baseline_id: no other metric {metric.baseline_id!r} here"
        if len(set(metric.subjects)) != len(metric.subjects):
            yield f"{path}: {label}.subjects: repeated subject"
    ranks = [bottleneck.rank for bottleneck in data.bottlenecks]
    for section, records in dataset.entities().items():
        for entity in records:
            label = f"{section}[{entity.id}]"
            yield from _check_evidence(dataset, label, entity.evidence)
            for metric_id in entity.metric_ids:
                if metric_id not in known:
                    yield f"{path}: {label}.metric_ids: unknown metric {metric_id!r}"
            if len(set(entity.metric_ids)) != len(entity.metric_ids):
                yield f"{path}: {label}.metric_ids: repeated metric id"
    if len(set(ranks)) != len(ranks):
        yield f"{path}: bottlenecks.rank: ranks must be unique"


def read_datasets(data_dir: Path, sources_dir: Path) -> list[Dataset]:
    """Every `*.yaml` file under `data_dir`, validated together (ids unique across files)."""
    datasets, problems = [], []
    for path in sorted(data_dir.glob("*.yaml")):
        try:
            datasets.append(read_dataset(path, sources_dir))
        except DatasetError as exc:
            problems.extend(exc.problems)
    seen: dict[tuple[str, str], Path] = {}
    for dataset in datasets:
        sections: dict[str, list[MetricIn] | list[EntityIn]] = {
            "metrics": dataset.data.metrics,
            **dataset.entities(),
        }
        keys = [("source", dataset.data.source.id)] + [
            (section, record.id) for section, records in sections.items() for record in records
        ]
        for key in keys:
            if key in seen:
                problems.append(f"{dataset.path}: {key[0]}[{key[1]}]: id also used in {seen[key]}")
            seen[key] = dataset.path
    if problems:
        raise DatasetError(problems)
    return datasets
