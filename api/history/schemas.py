"""API shapes of the history: revisions of records, and releases of data loads."""

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from api.pagination import AFTER_DESCRIPTION, COUNT_DESCRIPTION, Count, Cursor, PageQuery
from api.schemas import OUTSIDE_UTC, Timestamp, figure

# The kinds of record, as api.records.registry names them (a test holds the two together).
RecordKind = Literal[
    "source", "metric", "technology", "pricing_model", "regulatory_change", "bottleneck", "faq"
]


class RevisionPublic(BaseModel):
    """One change of one record: who, when, the full record after it, and which fields changed."""

    id: int = Field(description="Position in the history of the whole dataset.")
    kind: RecordKind = Field(examples=["metric"])
    record_id: str = Field(examples=["viral-vector-lead-time"])
    version: int = Field(description="The record's version after the change.")
    dataset_version: int = Field(
        description="The dataset version (one committed transaction) it belongs to; every "
        "revision of one version shares its `at`."
    )
    action: Literal["create", "update", "delete"] = Field(
        description="create, update or delete (a tombstone)."
    )
    actor: str = Field(description="The API key's name, `seed` or `import`.")
    at: datetime
    changes: list[str] = Field(description="Fields that differ from the previous revision.")
    data: dict[str, Any] | None = Field(description="The full record after it; null if deleted.")
    release_id: int | None = Field(description="The seed or import release it belongs to.")

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # SQLite hands timestamps back without their zone; they are stored in UTC.
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @field_validator("data")
    @classmethod
    def _figures(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # The stored JSON has a figure as the float column held it (150000000000.0); a
        # revision shows it as the record does (150000000000). Figures are the only floats.
        return None if value is None else {key: _as_written(item) for key, item in value.items()}


def _as_written(value: Any) -> Any:
    if isinstance(value, float):
        return figure(value)
    if isinstance(value, dict):
        return {key: _as_written(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_written(item) for item in value]
    return value


class ReleasePublic(BaseModel):
    """A seed run or import that changed something."""

    id: int
    label: str
    actor: str
    created_at: datetime = Field(description="The timestamp of its dataset version.")
    dataset_version: int | None = Field(
        description="The dataset version it wrote: `as_of` at `created_at` shows it."
    )
    added: int
    changed: int
    removed: int

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class ChangesQuery(PageQuery):
    """The change feed's parameters."""

    since: Timestamp | None = Field(
        default=None,
        description="Only changes at or after this RFC 3339 timestamp (with its offset). "
        + OUTSIDE_UTC,
        examples=["2026-11-26T00:00:00Z"],
    )
    after: Cursor | None = Field(default=None, description=AFTER_DESCRIPTION)
    count: Count = Field(default=Count.exact, description=COUNT_DESCRIPTION, examples=["none"])
