"""Every kind of record, in the order a dataset is written: sources, metrics, then the
entities that refer to metrics. The one list of kinds."""

from api.entities.kind import ENTITIES
from api.metrics.kind import METRIC
from api.records.kinds import Kind
from api.sources.kind import SOURCE

KINDS: dict[str, Kind] = {kind.name: kind for kind in (SOURCE, METRIC, *ENTITIES)}
