"""API shapes shared by several domains: figures, evidence spans, query-string types."""

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
)

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: object) -> object:
    # Pydantic would also take a number of seconds; the contract says an RFC 3339 timestamp.
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 timestamp with its offset, e.g. 2026-11-26T00:00:00Z")
    return value


def _explained(value: object, handler: ValidatorFunctionWrapHandler) -> object:
    """A timestamp in the RFC 3339 format whose fields are out of range (hour 25, second 60,
    February 30) is refused saying which, rather than with pydantic's "unexpected extra
    characters"."""
    try:
        return handler(value)
    except ValidationError:
        if not isinstance(value, str) or not _RFC3339.match(value):
            raise
        try:
            datetime.fromisoformat(value.upper())
        except ValueError as error:
            reason = str(error)
            if reason.startswith("offset must be"):
                reason = "the offset must be less than 24 hours"
            raise ValueError(f"is not a valid moment: {reason}") from None
        raise


def _in_utc(value: datetime) -> datetime:
    # 9999-12-31T23:59:59-01:00 is a valid RFC 3339 timestamp that no UTC datetime can hold.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the range of timestamps (years 1 to 9999 in UTC)") from None


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    WrapValidator(_explained),
    AfterValidator(_in_utc),
]
# What `Timestamp` refuses although its format allows it.
OUTSIDE_UTC = (
    "A moment outside years 1 to 9999 once converted to UTC (0001-01-01T00:00:00+01:00, "
    "9999-12-31T23:59:59-01:00) is a 422."
)
AS_OF_DESCRIPTION = (
    "Answer with the data exactly as it stood at this RFC 3339 moment: later changes undone, "
    "deleted records back. " + OUTSIDE_UTC
)


# A query string spells an integer, a number or a boolean one way, as JSON (and so the
# OpenAPI document's `integer`, `number` and `boolean`) does. Pydantic's lax mode would also
# take `1_0`, ` 10`, `+10` or `10.0` for 10, and `yes`, `on`, `1` or `True` for true: a value
# a client misspelled is refused, never read as something it may not have meant. Each goes
# last in its field's `Annotated[...]`, after the constraints (`Field(ge=1)`), which pydantic
# then still writes into the document as `minimum`.
def _spelled(pattern: str, spelling: str) -> BeforeValidator:
    compiled = re.compile(pattern)

    def check(value: object) -> object:
        if isinstance(value, str) and not compiled.fullmatch(value):
            raise ValueError(f"must be {spelling}")
        return value

    return BeforeValidator(check)


IntegerSpelling = _spelled(
    r"-?(0|[1-9][0-9]*)", "an integer in decimal digits without leading zeros, e.g. 50"
)
NumberSpelling = _spelled(
    r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?",
    "a number as JSON writes it, e.g. 20 or 2.5e9",
)
BooleanSpelling = _spelled("true|false", "true or false")


class AsOfQuery(BaseModel):
    """The one parameter of a single item: the moment to read it at."""

    model_config = ConfigDict(extra="forbid")

    as_of: Timestamp | None = Field(
        default=None, description=AS_OF_DESCRIPTION, examples=["2026-11-26T00:00:00Z"]
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


def figure(value: float) -> Any:
    """A figure as the API writes it: an integral value below 2**53 as an int."""
    if value.is_integer() and abs(value) < _EXACT_INTEGER_LIMIT:
        return int(value)
    return value


def figure_text(value: float) -> str:
    """A figure as the API writes it, in every representation: 150000000000, not
    150000000000.0; 1e-7 (orjson's shortest text, as JSON reads write it), not 1e-07."""
    return orjson.dumps(figure(float(value))).decode()


Figure = Annotated[
    float,
    PlainSerializer(figure, return_type=Any, when_used="json"),
    WithJsonSchema({"type": "number"}),
]


def no_nul(value: str) -> str:
    # PostgreSQL rejects NUL in text, and no legitimate query needs one.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# Long enough for a whole sentence of a source pasted in (the longest quote: 441 characters).
QUERY_TEXT_LONGEST = 500
QueryText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=QUERY_TEXT_LONGEST),
    AfterValidator(no_nul),
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
