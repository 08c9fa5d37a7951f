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
from pydantic_core import PydanticCustomError

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


# A query's numbers and booleans as JSON writes them (RFC 8259 sections 3 and 6), which is what
# the document's `integer`, `number` and `boolean` mean: pydantic would also read "1_000", "+5",
# " 5", "1." as Python does, and "1", "yes", "on" as true; a malformed value is refused.
_JSON_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def _integer_text(value: object) -> object:
    if isinstance(value, str) and not _JSON_INTEGER.fullmatch(value):
        raise PydanticCustomError(
            "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
        )
    return value


_NOT_FINITE = {"nan", "inf", "infinity"}  # refused by `allow_inf_nan`, which says why


def _number_text(value: object) -> object:
    if (
        isinstance(value, str)
        and not _JSON_NUMBER.fullmatch(value)
        and value.strip().lower().lstrip("+-") not in _NOT_FINITE
    ):
        raise PydanticCustomError(
            "float_parsing", "Input should be a valid number, unable to parse string as a number"
        )
    return value


def _boolean_text(value: object) -> object:
    if isinstance(value, str) and value not in ("true", "false"):
        raise PydanticCustomError(
            "bool_parsing", "Input should be a valid boolean, unable to interpret input"
        )
    return value


QueryInteger = BeforeValidator(_integer_text)
QueryNumber = BeforeValidator(_number_text)
QueryBoolean = BeforeValidator(_boolean_text)


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


QueryText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
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
