"""API shapes of metrics: the public record and the collection's query parameters."""

from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from api.pagination import PageQuery
from api.schemas import Evidence, Figure, QueryText
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
Year = Annotated[int, Field(ge=1900, le=2200)]


class MetricPublic(BaseModel):
    """One quantitative statement of a source, with the span that states it."""

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
    base_year: int | None = Field(description="First year of a change or growth rate.")
    geography: str | None = Field(description='"global", a region, or null when unstated.')
    subjects: list[str] = Field(description="Therapy types and topics it is about.")
    cited_as: str | None = Field(description="The secondary citation the source gives.")
    baseline_id: str | None = Field(description="The metric it is compared against.")
    source_id: str
    evidence: Evidence


class MetricQuery(PageQuery):
    """Filters, search, sorting and paging of a metric collection."""

    category: Category | None = Field(default=None, description="Only this category.")
    unit: Unit | None = Field(default=None, description="Only this unit.", examples=["USD"])
    measure: Measure | None = Field(default=None, description="Only this kind of measure.")
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
    year: Year | None = Field(default=None, description="Only figures referring to this year.")
    forecast: bool | None = Field(default=None, description="Only projections (true) or not.")
    q: QueryText | None = Field(
        default=None,
        description="Words that must all occur in the name, description, subjects or quote.",
        examples=["cell therapy"],
    )
    sort: QueryText = Field(
        default="id",
        description="Comma-separated fields, `-` for descending: " + ", ".join(SORTABLE_FIELDS),
        examples=["category,-value_high"],
    )

    @field_validator("sort")
    @classmethod
    def _known_sort_fields(cls, sort: str) -> str:
        fields = [part.strip().removeprefix("-") for part in sort.split(",")]
        unknown = [field for field in fields if field not in SORTABLE_FIELDS]
        if unknown:
            raise ValueError(
                f"cannot sort by {', '.join(map(repr, unknown))}; "
                f"sortable fields: {', '.join(SORTABLE_FIELDS)}"
            )
        if len(set(fields)) != len(fields):
            raise ValueError("a field appears more than once")
        return sort

    def sort_keys(self) -> list[tuple[str, bool]]:
        """(field, descending) pairs in order."""
        return [
            (part.strip().removeprefix("-"), part.strip().startswith("-"))
            for part in self.sort.split(",")
        ]
