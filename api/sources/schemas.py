"""API shape of a source document."""

from datetime import date

from pydantic import BaseModel, Field

from api.pagination import PageQuery
from api.records.fields import Date, Name, Slug, Strict, Text, Title, Url
from api.schemas import QueryText, with_example
from api.search import QUERY_HELP
from api.vocabulary import SourceKind


class SourceQuery(PageQuery):
    """Search and paging of the sources."""

    q: QueryText | None = Field(
        default=None,
        description=QUERY_HELP + " Searches title, author, publisher and the whole text; "
        "results keep the collection's order (by id).",
        examples=["hospital exemption"],
    )


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


# The record shape: what dataset files and POST bodies give, and revisions keep.


class SourceFields(Strict):
    id: Slug
    title: Title
    publisher: Name
    author: Name | None = None
    published_on: Date
    kind: SourceKind
    url: Url | None = None


class SourceIn(SourceFields):
    """A dataset file's source: its text lives in `seed/sources/<text_file>`."""

    text_file: str


class SourceRecord(SourceFields):
    """A source as stored and as written through the API: metadata and the verbatim text."""

    text: Text
