"""Every table, imported in one place so that Alembic and the loader see the whole schema."""

from api.auth.models import ApiKey, IdempotentResponse, RateWindow
from api.db import metadata
from api.entities.models import Bottleneck, Faq, PricingModel, RegulatoryChange, Technology
from api.history.models import DatasetVersion, Release, Revision
from api.metrics.models import Metric, MetricSubject
from api.records.periods import VERSIONED
from api.records.versions import DatasetState
from api.sources.models import Source

__all__ = [
    "VERSIONED",
    "ApiKey",
    "Bottleneck",
    "DatasetState",
    "DatasetVersion",
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
