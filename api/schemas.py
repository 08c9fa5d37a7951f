"""API shapes shared by several domains: figures, evidence spans, query-string types."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

# Real records of the seed dataset, shown as examples in the OpenAPI document.
EXAMPLES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "examples.json").read_text(encoding="utf-8")
)


def with_example(name: str) -> ConfigDict:
    """Model config whose JSON schema carries the example record `name`."""
    return ConfigDict(json_schema_extra={"examples": [EXAMPLES[name]]})


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


def _no_nul(value: str) -> str:
    # PostgreSQL rejects NUL in text, and no legitimate query needs one.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


QueryText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_no_nul),
    Field(json_schema_extra={"pattern": "^[^\\u0000]*$"}),
]


def list_pattern(names: tuple[str, ...], *, signed: bool) -> str:
    """The JSON Schema pattern of a comma-separated list of `names` (`-` allowed if `signed`)."""
    item = ("-?" if signed else "") + "(?:" + "|".join(names) + ")"
    return f"^{item}(?:,{item})*$"


def list_checker(names: tuple[str, ...], *, signed: bool) -> Callable[[str], str]:
    """A validator explaining in words what `list_pattern` would only say in a regex."""

    def check(value: str) -> str:
        unknown = [
            part
            for part in value.split(",")
            if (part.removeprefix("-") if signed else part) not in names
        ]
        if unknown:
            raise ValueError(
                f"unknown {', '.join(map(repr, unknown))}; expected a comma-separated list of: "
                + ", ".join(names)
            )
        return value

    return check


class Evidence(BaseModel):
    """Where the source states the figure: `quote == source_text[start:end]` (code points)."""

    quote: str = Field(description="The sentence or bullet, verbatim.")
    start: int = Field(description="Offset of the first character, in Unicode code points.")
    end: int = Field(description="Offset just past the last character.")
