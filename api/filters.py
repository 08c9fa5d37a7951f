"""The spelling of filter values in a query string: lists, the no-value bucket, year ranges.

- A comma-separated list means any of its values: `category=market,mna`.
- `null` (unquoted) selects records without a value: `geography=null`, `year=null`.
- A value that contains a comma or a double quote, or is the word null itself, is written in
  double quotes, a quote inside doubled (as in CSV): `subject="cell, gene",CAR-T`.
- Years take inclusive ranges: `2023..2028`, `2025..` (from 2025), `..2025` (up to 2025), in a
  list too: `2023,2026..`; `2028..2023` holds no year.

`spell` writes a value back in this spelling (the facet links use it).

Text filters that ignore case (geography, subject) fold ASCII letters only, on both databases
alike (`fold_case`; in SQL api.metrics.service's `ascii_lower`): `GLOBAL` finds "global", while
"Émirats" and "émirats" are two spellings. SQLite's `lower()` folds ASCII letters only and has
no other; PostgreSQL's would fold every letter, so the same query found other records there.
"""

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

NULL = "null"
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold_case(text: str) -> str:
    """`text` with its ASCII capitals lowered, as the case-insensitive filters compare it."""
    return text.translate(_ASCII_LOWER)


LIST_HELP = (
    "A comma-separated list means any of the values; `null` selects the metrics without one; "
    'a value containing a comma or a quote, or the word null itself, goes in double quotes ("" '
    "for a quote inside)."
)
# Of a field every metric has, from a fixed set of words: no null, nothing to quote.
CHOICES_HELP = "A comma-separated list means any of the values."
# Of a text field every metric has (its source): no null.
PRESENT_LIST_HELP = (
    "A comma-separated list means any of the values; every metric has one, so `null` is "
    "refused; a value containing a comma or a quote, or the word null itself, goes in double "
    'quotes ("" for a quote inside).'
)


def values(raw: str) -> list[str | None]:
    """The values of a list, None for an unquoted `null`; ValueError if malformed."""
    found: list[str | None] = []
    position = 0
    while True:
        if raw.startswith('"', position):
            value, position = _quoted(raw, position)
            found.append(value)
        else:
            end = raw.find(",", position)
            end = len(raw) if end < 0 else end
            token = raw[position:end]
            if not token:
                raise ValueError("has an empty value (two commas, or one at an end)")
            if '"' in token:
                raise ValueError(f"has a quote inside the unquoted value {token!r}")
            found.append(None if token == NULL else token)
            position = end
        if position == len(raw):
            return found
        position += 1  # the comma
        if position == len(raw):
            raise ValueError("has an empty value (two commas, or one at an end)")


def _quoted(raw: str, position: int) -> tuple[str, int]:
    """The value quoted at `position` and the position just past its closing quote."""
    chars: list[str] = []
    index = position + 1
    while index < len(raw):
        if raw[index] == '"':
            if raw.startswith('""', index):
                chars.append('"')
                index += 2
                continue
            index += 1
            if index < len(raw) and raw[index] != ",":
                raise ValueError("has text after a closing quote; separate values with commas")
            return "".join(chars), index
        chars.append(raw[index])
        index += 1
    raise ValueError("has a quote that is never closed")


# The grammar as JSON Schema patterns (what a generated client or a fuzzer can check).
_TEXT_ITEM = '(?:"(?:[^"\\u0000]|"")*"|[^,"\\u0000]+)'
TEXT_LIST_PATTERN = f"^{_TEXT_ITEM}(?:,{_TEXT_ITEM})*$"
_YEAR = "(?:19[0-9]{2}|2[01][0-9]{2}|2200)"
_YEAR_ITEM = f"(?:null|{_YEAR}(?:\\.\\.(?:{_YEAR})?)?|\\.\\.{_YEAR})"
YEAR_LIST_PATTERN = f"^{_YEAR_ITEM}(?:,{_YEAR_ITEM})*$"


def spell(value: object) -> str:
    """`value` as one item of a list: null, true/false, a number, or text (quoted if needed)."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text == NULL or "," in text or '"' in text or not text:
        return '"' + text.replace('"', '""') + '"'
    return text


def choices(allowed: Sequence[str], *, nullable: bool) -> Callable[[str], str]:
    """A validator of a list of `allowed` values (and `null` if `nullable`)."""

    def check(raw: str) -> str:
        for value in values(raw):
            if value is None and not nullable:
                raise ValueError("has null, but every metric has a value here")
            if value is not None and value not in allowed:
                raise ValueError(f"has {value!r}; expected any of: " + ", ".join(allowed))
        return raw

    return check


def text_list(raw: str) -> str:
    values(raw)
    return raw


def present_list(raw: str) -> str:
    """A list of the values of a field every metric has: no `null`."""
    if None in values(raw):
        raise ValueError("has null, but every metric has a value here")
    return raw


@dataclass(frozen=True)
class YearRange:
    low: int | None
    high: int | None


YEAR_MIN, YEAR_MAX = 1900, 2200
YEAR_HELP = (
    "Years: a comma-separated list of years and inclusive ranges (`2023..2028`, `2025..`, "
    "`..2025`), `null` for metrics without one."
)


def _year(text: str) -> int:
    # Digits as the year is written (the OpenAPI pattern's form): "02026" is refused, as the
    # pattern says, not read as 2026.
    written = text.isascii() and text.isdigit() and text == str(int(text))
    if not written or not YEAR_MIN <= int(text) <= YEAR_MAX:
        raise ValueError(f"has {text!r}; a year is a number from {YEAR_MIN} to {YEAR_MAX}")
    return int(text)


def years(raw: str) -> list[YearRange | None]:
    """The ranges of a year list (a single year is a range of one), None for `null`."""
    found: list[YearRange | None] = []
    for value in values(raw):
        if value is None:
            found.append(None)
            continue
        low, dots, high = value.partition("..")
        if not dots:
            found.append(YearRange(_year(value), _year(value)))
            continue
        if not low and not high:
            raise ValueError("has a range without either end")
        # A range that ends before it starts holds no year, as in SQL's BETWEEN.
        found.append(YearRange(_year(low) if low else None, _year(high) if high else None))
    return found


def year_list(raw: str) -> str:
    years(raw)
    return raw
