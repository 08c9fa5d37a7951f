"""Field types of the record shapes every kind writes (dataset files, POST bodies, revisions).

Bodies are strict JSON types: a number is a number ("30" and true are refused), a flag is
true or false ("yes" is refused). Text holds no control characters but newline and tab, and a
list holds at most MAX_ITEMS entries, so a record is always safe to show and cheap to check."""

import re
from datetime import date
from functools import cache
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from api.errors import MAX_PROBLEM_ERRORS

Slug = Annotated[
    str, StringConstraints(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", min_length=1, max_length=100)
]

MAX_TEXT = 100_000  # characters of one text field, a source's verbatim text included
MAX_ITEMS = 50  # entries of one list (subjects, examples, metric_ids)
# C0 controls but tab and newline, DEL and the C1 controls (NUL included: PostgreSQL cannot
# store it; an escape sequence rewrites the terminal of whoever prints the record), and the
# bidirectional embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069), which make a
# name or a cell display in another order than it reads ("Trojan Source", CVE-2021-42574).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_CLASS = "\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069"


def no_control(value: str) -> str:
    """`value`, unless it holds a control character other than newline and tab."""
    found = _CONTROL.search(value)
    if found:
        raise ValueError(
            f"must not contain control characters (U+{ord(found.group()):04X} at "
            f"{found.start()}); newline and tab are allowed"
        )
    return value


NoControl = AfterValidator(no_control)
# The same rule in the OpenAPI document, so clients and fuzzers know it.
NO_CONTROL_PATTERN = Field(json_schema_extra={"pattern": f"^[^{_CONTROL_CLASS}]*$"})
Text = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_TEXT), NoControl, NO_CONTROL_PATTERN
]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=200), NoControl, NO_CONTROL_PATTERN
]


def _trimmed(value: str) -> str:
    """A label is filtered and tallied as it is written: ` global ` would be a facet value
    of its own, which `geography=global` does not find."""
    if value != value.strip():
        raise ValueError("must not begin or end with white space")
    return value


Label = Annotated[
    str,
    StringConstraints(min_length=1, max_length=100),
    NoControl,
    AfterValidator(_trimmed),
    NO_CONTROL_PATTERN,
]
Title = Annotated[
    str, StringConstraints(min_length=1, max_length=500), NoControl, NO_CONTROL_PATTERN
]


_WEB_ADDRESS = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20]+")


def _web_address(value: str) -> str:
    if not _WEB_ADDRESS.fullmatch(value) or not urlsplit(value).netloc:
        raise ValueError("must be an http:// or https:// address, without spaces")
    return value


Url = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2000),
    NoControl,
    AfterValidator(_web_address),
    Field(json_schema_extra={"pattern": "^" + _WEB_ADDRESS.pattern.replace("\\x", "\\u00") + "$"}),
]
Offset = Annotated[int, Field(ge=0, le=2**31 - 1, strict=True)]
Year = Annotated[int, Field(ge=1900, le=2200, strict=True)]
FigureIn = Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15, strict=True)]
Flag = Annotated[bool, Field(strict=True)]


def _iso_date(value: Any) -> Any:
    # A JSON body gives a date as a string; a dataset file's YAML may give a date already.
    # Numbers (read as Unix time by pydantic) are not dates here.
    if not isinstance(value, str | date):
        raise ValueError("must be a date, YYYY-MM-DD")
    return value


Date = Annotated[date, BeforeValidator(_iso_date)]


def list_entry(value: str) -> str:
    """`value`, an entry of a list, unless it holds the `;` that joins a list's entries in a
    CSV cell (where `a;b` would read as two entries), or begins or ends with white space (a
    filter `subject=CAR-T` would not find ` CAR-T`)."""
    if ";" in value:
        raise ValueError("must not contain ';', which separates a list's entries in CSV exports")
    return _trimmed(value)


# An entry of a list of labels or names: the same, no `;`, no white space around it (the
# pattern says the first; white space is left out of it, as a lookaround would be lost on
# clients and fuzzers whose pattern languages have none).
_NO_SEPARATOR = AfterValidator(list_entry)
_ENTRY_PATTERN = Field(json_schema_extra={"pattern": f"^[^;{_CONTROL_CLASS}]*$"})
LabelEntry = Annotated[
    str, StringConstraints(min_length=1, max_length=100), NoControl, _NO_SEPARATOR, _ENTRY_PATTERN
]
NameEntry = Annotated[
    str, StringConstraints(min_length=1, max_length=200), NoControl, _NO_SEPARATOR, _ENTRY_PATTERN
]
Labels = Annotated[list[LabelEntry], Field(max_length=MAX_ITEMS)]
Names = Annotated[list[NameEntry], Field(max_length=MAX_ITEMS)]
Slugs = Annotated[list[Slug], Field(max_length=MAX_ITEMS)]


@cache
def _field_names(model: type[BaseModel]) -> frozenset[str]:
    # Once per model: `model_fields` is a descriptor costing microseconds per look, and every
    # record of a 100,000-metric file looks twice.
    return frozenset(model.model_fields)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_fields(cls, data: Any) -> Any:
        # Each unknown field is an error of its own; past MAX_PROBLEM_ERRORS they are one, so
        # a body of 60,000 made-up fields costs one pass over its keys, not 60,000 errors.
        names = _field_names(cls)
        if isinstance(data, dict) and len(data) > len(names) + MAX_PROBLEM_ERRORS:
            unknown = [name for name in data if name not in names]
            if len(unknown) > MAX_PROBLEM_ERRORS:
                shown = ", ".join(repr(name) for name in unknown[:5])
                raise ValueError(f"{len(unknown)} unknown or server-owned fields ({shown}, ...)")
        return data


class EvidenceIn(Strict):
    quote: Text
    start: Offset
    end: Offset
