"""Every table, imported in one place so that Alembic and the loader see the whole schema."""

from api.db import metadata
from api.entities.models import (
    ENTITY_TABLES,
    Bottleneck,
    Faq,
    PricingModel,
    RegulatoryChange,
    Technology,
)
from api.metrics.models import Metric, MetricSubject
from api.revision import DatasetState
from api.sources.models import Source

__all__ = [
    "ENTITY_TABLES",
    "Bottleneck",
    "DatasetState",
    "Faq",
    "Metric",
    "MetricSubject",
    "PricingModel",
    "RegulatoryChange",
    "Source",
    "Technology",
    "metadata",
]
