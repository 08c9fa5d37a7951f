"""API shapes of the context entities and their collection parameters."""

from pydantic import BaseModel, Field

from api.filters import LIST_HELP
from api.metrics.schemas import TextList
from api.pagination import PageQuery
from api.records.fields import EvidenceIn, Label, Name, Names, Slug, Slugs, Strict, Text
from api.schemas import Evidence, QueryText, with_example
from api.search import QUERY_HELP


class EntityQuery(PageQuery):
    """Filters and paging of a context-entity collection."""

    source: TextList | None = Field(
        default=None,
        description="Only items from these source ids, as the metric collections take them. "
        + LIST_HELP,
        examples=["coreychem-future-of-cdmos-2026"],
    )
    q: QueryText | None = Field(
        default=None,
        description=QUERY_HELP + " Searches name, summary, the evidence quote and the fields of "
        "the kind; results keep the collection's order.",
        examples=["capacity"],
    )


class EntityPublic(BaseModel):
    """Fields every context entity has."""

    id: str
    name: str
    summary: str = Field(description="What it is, in the project's own words.")
    evidence: Evidence
    source_id: str
    metric_ids: list[str] = Field(description="The metrics that quantify it.")


class TechnologyPublic(EntityPublic):
    """A manufacturing innovation the source describes."""

    model_config = with_example("TechnologyPublic")

    examples: list[str] = Field(description="Named platforms, as the source spells them.")


class PricingModelPublic(EntityPublic):
    """A pricing or contracting model CDMOs use."""

    model_config = with_example("PricingModelPublic")


class RegulatoryChangePublic(EntityPublic):
    """An anticipated regulatory shift."""

    model_config = with_example("RegulatoryChangePublic")

    agency: str | None = Field(description="The agency behind it, or null when none is named.")
    expected_impact: str = Field(description="What it would change for CDMOs.")


class BottleneckPublic(EntityPublic):
    """A bottleneck in scaling manufacturing, ranked as the source lists it."""

    model_config = with_example("BottleneckPublic")

    rank: int = Field(ge=1)


class FaqPublic(EntityPublic):
    """A question the source answers, with a summary of its answer."""

    model_config = with_example("FaqPublic")

    question: str = Field(description="The question, verbatim.")


# The record shapes: what dataset files and POST bodies give, and revisions keep.


class EntityIn(Strict):
    id: Slug
    name: Name
    summary: Text
    evidence: EvidenceIn
    metric_ids: Slugs = Field(default_factory=list)


class TechnologyIn(EntityIn):
    examples: Names = Field(default_factory=list)


class PricingModelIn(EntityIn):
    pass


class RegulatoryChangeIn(EntityIn):
    agency: Label | None
    expected_impact: Text


class BottleneckIn(EntityIn):
    rank: int = Field(ge=1, le=1_000_000, strict=True)


class FaqIn(EntityIn):
    question: Text


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
