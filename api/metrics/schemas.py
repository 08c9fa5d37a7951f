"""API shapes of metrics: the public record, facet counts and the query parameters."""

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from api import filters
from api.filters import CHOICES_HELP, LIST_HELP, YEAR_HELP
from api.pagination import AFTER_DESCRIPTION, COUNT_DESCRIPTION, Count, Cursor, PageQuery
from api.records.fields import (
    EvidenceIn,
    FigureIn,
    Flag,
    Label,
    Labels,
    Name,
    Slug,
    Strict,
    Text,
)
from api.records.fields import Year as YearIn
from api.schemas import (
    AS_OF_DESCRIPTION,
    Evidence,
    Figure,
    NumberSpelling,
    QueryText,
    Timestamp,
    list_checker,
    list_pattern,
    no_nul,
    with_example,
)
from api.search import QUERY_HELP
from api.vocabulary import Category, Direction, Measure, Qualifier, Unit

SORTABLE_FIELDS = (
    "id",
    "category",
    "name",
    "value",
    "value_low",
    "value_high",
    "qualifier",
    "unit",
    "measure",
    "direction",
    "year",
    "base_year",
    "forecast",
    "geography",
    "cited_as",
    "source_id",
)
FACETS = (
    "category",
    "unit",
    "measure",
    "qualifier",
    "direction",
    "year",
    "base_year",
    "forecast",
    "horizon_passed",
    "geography",
    "subject",
    "source",
)

Year = Annotated[int, Field(ge=1900, le=2200)]
FiniteNumber = Annotated[float, Field(allow_inf_nan=False), NumberSpelling]
TextList = Annotated[
    str,
    StringConstraints(min_length=1, max_length=500),
    AfterValidator(no_nul),
    AfterValidator(filters.text_list),
    Field(json_schema_extra={"pattern": filters.TEXT_LIST_PATTERN}),
]
PresentTextList = Annotated[
    str,
    StringConstraints(min_length=1, max_length=500),
    AfterValidator(no_nul),
    AfterValidator(filters.present_list),
    Field(json_schema_extra={"pattern": filters.TEXT_LIST_PATTERN}),
]
YearList = Annotated[
    str,
    StringConstraints(min_length=1, max_length=500),
    AfterValidator(filters.year_list),
    Field(json_schema_extra={"pattern": filters.YEAR_LIST_PATTERN}),
]


def _names(allowed: Any, nullable: bool) -> tuple[str, ...]:
    return tuple(str(getattr(value, "value", value)) for value in allowed) + (
        ("null",) if nullable else ()
    )


def _list_field(allowed: Any, *, nullable: bool = False) -> Any:
    """Length and pattern of a list of the values of `allowed` (`null` too if `nullable`)."""
    pattern = list_pattern(_names(allowed, nullable), signed=False)
    return Field(min_length=1, max_length=500, json_schema_extra={"pattern": pattern})


def _list_check(allowed: Any, *, nullable: bool = False) -> AfterValidator:
    names = _names(allowed, False)
    return AfterValidator(filters.choices(names, nullable=nullable))


CategoryList = Annotated[str, _list_field(Category), _list_check(Category)]
UnitList = Annotated[str, _list_field(Unit), _list_check(Unit)]
MeasureList = Annotated[str, _list_field(Measure), _list_check(Measure)]
QualifierList = Annotated[str, _list_field(Qualifier), _list_check(Qualifier)]
DirectionList = Annotated[
    str, _list_field(Direction, nullable=True), _list_check(Direction, nullable=True)
]
BoolList = Annotated[str, _list_field(("true", "false")), _list_check(("true", "false"))]


SortSpec = Annotated[
    str,
    StringConstraints(max_length=500),
    AfterValidator(list_checker(SORTABLE_FIELDS, signed=True)),
    Field(json_schema_extra={"pattern": list_pattern(SORTABLE_FIELDS, signed=True)}),
]
FacetList = Annotated[
    str,
    StringConstraints(max_length=500),
    AfterValidator(list_checker(FACETS, signed=False)),
    Field(json_schema_extra={"pattern": list_pattern(FACETS, signed=False)}),
]


class MetricPublic(BaseModel):
    """One quantitative statement of a source, with the span that states it."""

    model_config = with_example("MetricPublic")

    id: str = Field(examples=["car-t-dose-manufacturing-cost"])
    category: Category
    name: str = Field(description="Short label a chart could use.")
    description: str = Field(description="What exactly is measured, of what, where.")
    value: Figure | None = Field(description="The point figure; null when only a range is given.")
    value_low: Figure = Field(description="Low end; equals `value` for a point figure.")
    value_high: Figure = Field(description="High end; equals `value` for a point figure.")
    qualifier: Qualifier = Field(description='How the source bounds it ("over 60%" is gt).')
    unit: Unit
    measure: Measure
    direction: Direction | None = Field(description="For changes and growth rates.")
    year: int | None = Field(description="The year the figure refers to.")
    forecast: bool = Field(description="True for projections, expectations and estimates.")
    horizon_passed: bool = Field(
        description="True for a forecast whose year is before the current year: an expired "
        "projection, not news."
    )
    base_year: int | None = Field(description="First year of a change or growth rate.")
    geography: str | None = Field(description='"global", a region, or null when unstated.')
    subjects: list[str] = Field(description="Therapy types and topics it is about.")
    cited_as: str | None = Field(description="The secondary citation the source gives.")
    baseline_id: str | None = Field(description="The metric it is compared against.")
    source_id: str
    evidence: Evidence


class MetricFilters(BaseModel):
    """Filters and search shared by the metric collections and their facets: one filter per
    facet, each a list meaning any of its values (see `api.filters`)."""

    model_config = ConfigDict(extra="forbid")

    category: CategoryList | None = Field(
        default=None, description="Only these categories. " + CHOICES_HELP, examples=["market,mna"]
    )
    unit: UnitList | None = Field(
        default=None, description="Only these units. " + CHOICES_HELP, examples=["USD"]
    )
    measure: MeasureList | None = Field(
        default=None, description="Only these kinds of measure. " + CHOICES_HELP, examples=["share"]
    )
    qualifier: QualifierList | None = Field(
        default=None,
        description="Only figures bounded this way (gt for over 60%). " + CHOICES_HELP,
        examples=["gt,gte"],
    )
    direction: DirectionList | None = Field(
        default=None,
        description="Only changes in these directions. " + LIST_HELP,
        examples=["decrease"],
    )
    geography: TextList | None = Field(
        default=None,
        description="Only these geographies (ASCII letters case-insensitive). " + LIST_HELP,
        examples=["global,null"],
    )
    subject: TextList | None = Field(
        default=None,
        description="Only metrics tagged with any of these subjects (ASCII letters "
        "case-insensitive); null: metrics without subjects. " + LIST_HELP,
        examples=["CAR-T,cell therapy"],
    )
    source: PresentTextList | None = Field(
        default=None,
        description="Only metrics from these source ids. " + filters.PRESENT_LIST_HELP,
        examples=["coreychem-future-of-cdmos-2026"],
    )
    year: YearList | None = Field(
        default=None,
        description="Only figures referring to these years. " + YEAR_HELP,
        examples=["2023..2028"],
    )
    base_year: YearList | None = Field(
        default=None,
        description="Only changes and growth rates starting in these years. " + YEAR_HELP,
        examples=["2021..2023"],
    )
    forecast: BoolList | None = Field(
        default=None, description="Only projections (true) or not (false).", examples=["true"]
    )
    horizon_passed: BoolList | None = Field(
        default=None,
        description="Only expired projections (true), or everything else (false).",
        examples=["false"],
    )
    value_min: FiniteNumber | None = Field(
        default=None,
        description="Only figures whose range reaches this value (value_high >= value_min).",
        examples=[20],
    )
    value_max: FiniteNumber | None = Field(
        default=None,
        description="Only figures whose range starts at or below this value "
        "(value_low <= value_max); under value_min, no range: nothing is found.",
        examples=[50],
    )
    q: QueryText | None = Field(
        default=None,
        description=QUERY_HELP + " Searches name, subjects, description and quote; without "
        "`sort`, results are ranked by relevance.",
        examples=["outsource"],
    )
    as_of: Timestamp | None = Field(
        default=None, description=AS_OF_DESCRIPTION, examples=["2026-11-26T00:00:00Z"]
    )


class MetricQuery(MetricFilters, PageQuery):
    """Filters, search, sorting, paging and representation of a metric collection."""

    sort: SortSpec | None = Field(
        default=None,
        description="Comma-separated fields, `-` for descending; default `id`, or relevance "
        "when `q` is given. Fields: " + ", ".join(SORTABLE_FIELDS) + ".",
        examples=["category,-value_high"],
    )

    after: Cursor | None = Field(default=None, description=AFTER_DESCRIPTION)
    count: Count = Field(default=Count.exact, description=COUNT_DESCRIPTION, examples=["none"])

    def sort_keys(self) -> list[tuple[str, bool]]:
        """(field, descending) pairs in order; a repeated field counts once, first wins."""
        keys: dict[str, bool] = {}
        for part in (self.sort or "").split(","):
            if part:
                keys.setdefault(part.removeprefix("-"), part.startswith("-"))
        return list(keys.items())


class FacetQuery(MetricFilters):
    """Which facets to count, over the metrics the filters select."""

    facet: FacetList = Field(
        default=",".join(FACETS),
        description="Comma-separated facets to count: " + ", ".join(FACETS) + ".",
        examples=["category,unit,year"],
    )


class FacetValue(BaseModel):
    value: str | int | bool | None = Field(description="A value of the facet; null counts blanks.")
    count: int = Field(description="Metrics with that value.")
    href: str = Field(
        description="Relative URL of the metrics with that value (the other filters kept): its "
        "`total` is `count`.",
        examples=["/v1/metrics?unit=percent"],
    )


class Facets(BaseModel):
    """Counts per value of each requested facet, over the filtered metrics."""

    model_config = with_example("Facets")

    total: int = Field(description="Metrics matching the filters.")
    facets: dict[str, list[FacetValue]]


# The record shape: what dataset files and POST bodies give, and revisions keep.


class MetricIn(Strict):
    id: Slug
    category: Category
    name: Name
    description: Text
    value: FigureIn | None
    value_low: FigureIn
    value_high: FigureIn
    qualifier: Qualifier
    unit: Unit
    measure: Measure
    direction: Direction | None
    year: YearIn | None
    forecast: Flag
    base_year: YearIn | None
    geography: Label | None
    subjects: Labels
    cited_as: Name | None
    baseline_id: Slug | None
    evidence: EvidenceIn


class MetricRecord(MetricIn):
    """A metric as stored and as written through the API: it names its source."""

    source_id: Slug
