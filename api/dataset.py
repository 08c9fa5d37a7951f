"""The dataset file format (`seed/data/*.yaml`, or JSON): a source and its records in the record
shapes each kind declares; reading and checking files on their own, before any database."""

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from api import strict_json
from api.entities.schemas import (
    BottleneckIn,
    EntityIn,
    FaqIn,
    PricingModelIn,
    RegulatoryChangeIn,
    TechnologyIn,
)
from api.errors import detail_of
from api.metrics.schemas import MetricIn
from api.records.fields import MAX_TEXT, Strict, no_control
from api.sources.schemas import SourceIn

# libyaml's parser, bundled with PyYAML's wheels. Building Python objects still dominates a large
# YAML file (about 1 s per 1,000 metrics); machine-made bulk files can be JSON (DATASET_SUFFIXES).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DATASET_SUFFIXES = (".yaml", ".yml", ".json")


class _StrictLoader(SAFE_LOADER):  # type: ignore[misc,valid-type]
    """The safe loader, noting each key a mapping names twice (PyYAML keeps the last)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeated: list[tuple[str, str]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: set[object] = set()
        for key, _value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    place = f"line {key.start_mark.line + 1}"
                    self.repeated.append(
                        (place, f"{key.value!r} appears more than once in one mapping")
                    )
                seen.add(key.value)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(content: str) -> tuple[Any, list[tuple[str, str]]]:
    """The document, and the keys its mappings repeat, by line."""
    loader = _StrictLoader(content)
    try:
        return loader.get_single_data(), loader.repeated
    finally:
        loader.dispose()


class DatasetIn(Strict):
    source: SourceIn
    metrics: list[MetricIn] = Field(default_factory=list)
    technologies: list[TechnologyIn] = Field(default_factory=list)
    pricing_models: list[PricingModelIn] = Field(default_factory=list)
    regulatory_changes: list[RegulatoryChangeIn] = Field(default_factory=list)
    bottlenecks: list[BottleneckIn] = Field(default_factory=list)
    faqs: list[FaqIn] = Field(default_factory=list)


# The file's lists of context entities: every list after `metrics`.
ENTITY_SECTIONS = tuple(
    name for name in DatasetIn.model_fields if name not in ("source", "metrics")
)


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
        content = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            raw, ambiguous = strict_json.read(content)
        else:
            raw, ambiguous = _read_yaml(content)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValueError, RecursionError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise DatasetError([f"{path}: cannot be read as UTF-8 {kind}: {exc}"]) from None
    if ambiguous:  # as the API refuses them in a body: the same validation
        raise DatasetError([f"{path}: {place}: {what}" for place, what in ambiguous])
    try:
        data = DatasetIn.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            record, where = _record_label(raw, error["loc"])
            problems.append(f"{path}: {record}.{where}: {detail_of(error)}")
        raise DatasetError(problems) from None
    text_path = sources_dir / data.source.text_file
    folder = sources_dir.resolve()
    if not text_path.resolve().is_relative_to(folder):
        # A dataset file names its text, which becomes public at /v1/sources/{id}/text: never
        # a file elsewhere on the server (an absolute path, `..`, a link out of the folder).
        raise DatasetError(
            [f"{path}: source.text_file: {data.source.text_file!r} is not a file in the "
             f"folder of source texts, {folder}"]
        )  # fmt: skip
    try:
        # Verbatim: evidence spans count its characters, so line ends are not translated.
        with text_path.open(encoding="utf-8", newline="") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError([f"{path}: source.text_file: cannot read {text_path}: {exc}"]) from None
    if len(text) > MAX_TEXT:
        raise DatasetError(
            [f"{path}: source.text_file: {text_path} has {len(text):,} characters; a source text "
             f"may have at most {MAX_TEXT:,}"]
        )  # fmt: skip
    try:
        no_control(text)  # the rule a text sent to the API meets
    except ValueError as exc:
        hint = " (save it with LF line ends, not CRLF)" if "\r" in text else ""
        raise DatasetError([f"{path}: source.text_file: {text_path} {exc}{hint}"]) from None
    dataset = Dataset(path=path, data=data, text=text)
    problems = list(_check_records(dataset))
    if problems:
        raise DatasetError(problems)
    return dataset


def _check_records(dataset: Dataset) -> Iterable[str]:
    """Problems a file has on its own: ids repeated within a section. Everything else is checked
    by the record validation every entry point shares (api.records.validation)."""
    sections: list[tuple[str, list[Any]]] = [("metrics", list(dataset.data.metrics))]
    sections += list(dataset.entities().items())
    for section, entries in sections:
        counts = Counter(entry.id for entry in entries)
        for duplicate in sorted(i for i, n in counts.items() if n > 1):
            yield f"{dataset.path}: {section}[{duplicate}].id: duplicate id"


def dataset_files(paths: Iterable[Path]) -> list[Path]:
    """The dataset files named: files as given, folders by their dataset files (`*.yaml`,
    `*.yml`, `*.json`: the same format, in YAML or JSON), in order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if p.suffix in DATASET_SUFFIXES)
        else:
            found.append(path)
    return list(dict.fromkeys(found))


def read_datasets(data_dir: Path, sources_dir: Path) -> list[Dataset]:
    """Every dataset file in `data_dir`, validated together (ids unique across files)."""
    return read_files(dataset_files([data_dir]), lambda _path: sources_dir)


def read_files(paths: Sequence[Path], sources_dir: Callable[[Path], Path]) -> list[Dataset]:
    """Dataset files validated together (ids unique across files); a file's source text is
    looked up in `sources_dir(file)`."""
    datasets, problems = [], []
    for path in paths:
        try:
            datasets.append(read_dataset(path, sources_dir(path)))
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
