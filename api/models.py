"""Every table, imported in one place so that Alembic and the loader see the whole schema."""

from api.auth.models import ApiKey, IdempotentResponse, RateWindow
from api.db import metadata
from api.entities.models import (
    ENTITY_TABLES,
    Bottleneck,
    Faq,
    PricingModel,
    RegulatoryChange,
    Technology,
)
from api.history.models import Release, Revision
from api.metrics.models import Metric, MetricSubject
from api.revision import DatasetState
from api.sources.models import Source

__all__ = [
    "ENTITY_TABLES",
    "ApiKey",
    "Bottleneck",
    "DatasetState",
    "Faq",
    "IdempotentResponse",
    "Metric",
    "MetricSubject",
    "PricingModel",
    "RateWindow",
    "RegulatoryChange",
    "Release",
    "Revision",
    "Source",
    "Technology",
    "metadata",
]
