"""API shapes of metrics: the public record, facet counts and the query parameters."""

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from api.pagination import AFTER_DESCRIPTION, COUNT_DESCRIPTION, Count, Cursor, PageQuery
from api.records.fields import EvidenceIn, FigureIn, Label, Name, Slug, Strict, Text
from api.schemas import (
    AS_OF_DESCRIPTION,
    Evidence,
    Figure,
    QueryText,
    Timestamp,
    list_checker,
    list_pattern,
    with_example,
)
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
    """Filters and search shared by the metric collections and their facets."""

    model_config = ConfigDict(extra="forbid")

    category: Category | None = Field(
        default=None, description="Only this category.", examples=["market"]
    )
    unit: Unit | None = Field(default=None, description="Only this unit.", examples=["USD"])
    measure: Measure | None = Field(
        default=None, description="Only this kind of measure.", examples=["share"]
    )
    geography: QueryText | None = Field(
        default=None, description="Only this geography (case-insensitive).", examples=["global"]
    )
    subject: QueryText | None = Field(
        default=None,
        description="Only metrics tagged with this subject (case-insensitive).",
        examples=["CAR-T"],
    )
    source: QueryText | None = Field(
        default=None,
        description="Only metrics from this source id.",
        examples=["coreychem-future-of-cdmos-2026"],
    )
    year: Year | None = Field(
        default=None, description="Only figures referring to this year.", examples=[2028]
    )
    forecast: bool | None = Field(
        default=None, description="Only projections (true) or not.", examples=[True]
    )
    horizon_passed: bool | None = Field(
        default=None,
        description="Only expired projections (true), or everything else (false).",
        examples=[False],
    )
    q: QueryText | None = Field(
        default=None,
        description="Full-text search over name, subjects, description and quote; every word "
        "must match, with stemming (outsource finds outsourcing). Without `sort`, results are "
        "ranked by relevance.",
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
    count: Count = Field(default="exact", description=COUNT_DESCRIPTION, examples=["none"])

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
    year: Year | None
    forecast: bool
    base_year: Year | None
    geography: Label | None
    subjects: list[Label]
    cited_as: Name | None
    baseline_id: Slug | None
    evidence: EvidenceIn


class MetricRecord(MetricIn):
    """A metric as stored and as written through the API: it names its source."""

    source_id: Slug
