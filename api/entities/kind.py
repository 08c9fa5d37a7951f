"""The context-entity kinds (technologies, pricing models, regulatory changes, bottlenecks,
FAQ entries), each with the ordered ids of the metrics that quantify it, declared once."""

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Table
from sqlmodel import Session

from api import search
from api.entities import models, service
from api.entities.schemas import (
    BottleneckPublic,
    BottleneckRecord,
    EntityPublic,
    FaqPublic,
    FaqRecord,
    PricingModelPublic,
    PricingModelRecord,
    RegulatoryChangePublic,
    RegulatoryChangeRecord,
    TechnologyPublic,
    TechnologyRecord,
)
from api.records.kinds import Child, Kind, Ref
from api.records.validation import Check, Problem


def _rank_free(data: dict[str, Any], check: Check) -> Iterator[Problem]:
    """Bottlenecks are ranked: no two share a rank."""
    if check.changed(data, "rank"):
        for other in check.holders("bottleneck", "rank", data["rank"]):
            if other != data["id"]:
                yield Problem("rank", f"rank {data['rank']} belongs to {other!r}")


def _entity(
    name: str,
    label: str,
    plural: str,
    section: str,
    path: str,
    tag: str,
    model: type[models.EntityColumns],
    links: Table,
    record: type[BaseModel],
    public: type[EntityPublic],
    **options: Any,
) -> Kind:
    def get(session: Session, record_id: str) -> BaseModel:
        return service.get_entity(
            session, model=model, schema=public, entity_id=record_id, label=label
        )

    return Kind(
        name=name,
        label=label,
        plural=plural,
        section=section,
        path=path,
        id_param="item_id",
        model=model,
        record=record,
        public=public,
        get=get,
        child=Child("metric_ids", links, f"{name}_id", "metric_id"),
        refs=(Ref("source_id", "source"), Ref("metric_ids", "metric")),
        present=lambda data: public(**data),
        tag=tag,
        order_by=options.pop("order_by", "evidence_start"),
        after_write=search.indexer(name),
        **options,
    )


ENTITIES = (
    _entity(
        "technology", "technology", "technologies", "technologies", "/technologies",
        "technologies", models.Technology, models.TECHNOLOGY_METRIC, TechnologyRecord,
        TechnologyPublic,
    ),
    _entity(
        "pricing_model", "pricing model", "pricing models", "pricing_models", "/pricing-models",
        "pricing", models.PricingModel, models.PRICING_MODEL_METRIC, PricingModelRecord,
        PricingModelPublic,
    ),
    _entity(
        "regulatory_change", "regulatory change", "regulatory changes", "regulatory_changes",
        "/regulatory/outlook", "regulatory", models.RegulatoryChange,
        models.REGULATORY_CHANGE_METRIC, RegulatoryChangeRecord, RegulatoryChangePublic,
    ),
    _entity(
        "bottleneck", "bottleneck", "bottlenecks", "bottlenecks", "/bottlenecks", "bottlenecks",
        models.Bottleneck, models.BOTTLENECK_METRIC, BottleneckRecord, BottleneckPublic,
        rules=_rank_free, order_by="rank",
    ),
    _entity(
        "faq", "faq", "faqs", "faqs", "/faq", "faq", models.Faq, models.FAQ_METRIC, FaqRecord,
        FaqPublic,
    ),
)  # fmt: skip
