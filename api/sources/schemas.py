"""API shape of a source document."""

from datetime import date

from pydantic import BaseModel, Field

from api.schemas import with_example
from api.vocabulary import SourceKind


class SourcePublic(BaseModel):
    """A document that figures come from."""

    model_config = with_example("SourcePublic")

    id: str = Field(examples=["coreychem-future-of-cdmos-2026"])
    title: str
    publisher: str
    author: str | None
    published_on: date
    kind: SourceKind
    url: str | None
    metric_count: int = Field(description="Metrics taken from this source.")
    text_url: str = Field(
        description="Where the verbatim text is served; evidence offsets index into it.",
        examples=["/v1/sources/coreychem-future-of-cdmos-2026/text"],
    )
