"""API shapes shared by several domains: figures, evidence spans, query-string types."""

from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainSerializer, StringConstraints, WithJsonSchema

# Exact binary floats are integers below 2**53; serialise those without a ".0" so that
# 150000000000 reads as written in the source.
_EXACT_INTEGER_LIMIT = 2**53


def _figure(value: float) -> Any:
    if value.is_integer() and abs(value) < _EXACT_INTEGER_LIMIT:
        return int(value)
    return value


Figure = Annotated[
    float,
    PlainSerializer(_figure, return_type=Any, when_used="json"),
    WithJsonSchema({"type": "number"}),
]

# PostgreSQL rejects NUL in text; no legitimate query needs one.
QueryText = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]


class Evidence(BaseModel):
    """Where the source states the figure: `quote == source_text[start:end]` (code points)."""

    quote: str = Field(description="The sentence or bullet, verbatim.")
    start: int = Field(description="Offset of the first character, in Unicode code points.")
    end: int = Field(description="Offset just past the last character.")
