"""Tables of the context entities (technologies, pricing models, regulatory changes, bottlenecks,
FAQ entries) and the link tables naming the metrics that quantify each."""

from sqlalchemy import JSON, CheckConstraint, Column, ForeignKey, Integer, String, Table, Text
from sqlmodel import Field, SQLModel

from api.db import metadata
from api.records.periods import history_of


class EntityColumns(SQLModel):
    """Columns every context entity has."""

    id: str = Field(primary_key=True, max_length=100)
    name: str = Field(max_length=200)
    summary: str = Field(sa_type=Text)
    source_id: str = Field(foreign_key="source.id", index=True, max_length=100)
    evidence_quote: str = Field(sa_type=Text)
    evidence_start: int
    evidence_end: int
    # Raised by every write; compare-and-set on it keeps concurrent writers from clobbering.
    version: int = Field(default=1)


def _evidence_check() -> CheckConstraint:
    return CheckConstraint("evidence_start >= 0 AND evidence_start < evidence_end", name="evidence")


class Technology(EntityColumns, table=True):
    __table_args__ = (_evidence_check(),)

    examples: list[str] = Field(default_factory=list, sa_type=JSON)


class PricingModel(EntityColumns, table=True):
    __tablename__ = "pricing_model"
    __table_args__ = (_evidence_check(),)


class RegulatoryChange(EntityColumns, table=True):
    __tablename__ = "regulatory_change"
    __table_args__ = (_evidence_check(),)

    agency: str | None = Field(default=None, max_length=100)
    expected_impact: str = Field(sa_type=Text)


class Bottleneck(EntityColumns, table=True):
    __table_args__ = (_evidence_check(), CheckConstraint("rank >= 1", name="rank_positive"))

    rank: int = Field(unique=True)


class Faq(EntityColumns, table=True):
    __table_args__ = (_evidence_check(),)

    question: str = Field(sa_type=Text)


def _metric_link_table(owner: str) -> Table:
    """`<owner>_metric`: which metrics quantify an entity, in the order the dataset lists them."""
    return Table(
        f"{owner}_metric",
        metadata,
        Column(
            f"{owner}_id",
            String(100),
            ForeignKey(f"{owner}.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column(
            "metric_id", String(100), ForeignKey("metric.id", ondelete="CASCADE"), primary_key=True
        ),
        Column("position", Integer, nullable=False),
    )


def metric_links(model: type[EntityColumns]) -> Table:
    """The link table of `model` with its history, and the history of `model`'s own table."""
    name = str(model.__tablename__)
    links = _metric_link_table(name)
    history_of(model.__table__, key="id")  # type: ignore[attr-defined]
    history_of(links, key=f"{name}_id")
    return links


TECHNOLOGY_METRIC = metric_links(Technology)
PRICING_MODEL_METRIC = metric_links(PricingModel)
REGULATORY_CHANGE_METRIC = metric_links(RegulatoryChange)
BOTTLENECK_METRIC = metric_links(Bottleneck)
FAQ_METRIC = metric_links(Faq)
