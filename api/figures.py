"""Finding the numbers a quote writes, to check that a metric's figure is in its evidence."""

import re
from collections.abc import Iterable

# A number as the article writes it: digits with comma thousands separators ("45,000"), or a
# plain run of digits, either with an optional decimal part ("3.5", "1,234.5").
_NUMBER = r"[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])(?:\.[0-9]+)?|[0-9]+(?:\.[0-9]+)?"

# Scale words and abbreviations, as a power of ten. Words may follow after a space ("150
# billion"); "bn"/"mn" too ("2.5 bn"); the single letters only when written against the number
# ("$1.5B", "$300M", "50k"), so that "5 m" or "3 b)" are not read as a scale.
_EXPONENTS = {
    "thousand": 3,
    "million": 6,
    "billion": 9,
    "trillion": 12,
    "k": 3,
    "m": 6,
    "mn": 6,
    "b": 9,
    "bn": 9,
    "tn": 12,
}
_SCALE = r"(?:\s*(?:thousand|million|billion|trillion|bn|mn|tn)|[kmb])(?![0-9a-z])"

# One figure, or a range of two joined by an en dash (U+2013), a hyphen or "to" ("$45,000" en
# dash "$65,000", "25-30%", "2 to 3 weeks", "$1.2-1.5 billion"). The first end may carry its own
# unit or scale ("25%-30%", "$1.2bn-$1.5bn", "3x-5x" or with the multiplication sign U+00D7);
# without a scale of its own it takes the scale written after the second end. What it is a
# figure of is written around it: a currency before ("$", "€", "£", "US$", "USD"), or after it
# a percent sign or word, a multiple ("3.5x", the multiplication sign, "3-fold") or "USD"/"dollars".
_FIGURE = re.compile(
    r"(?P<currency>(?:US)?[$€£]|USD\s*)?"
    rf"(?P<low>{_NUMBER})"
    rf"(?P<low_scale>{_SCALE})?"
    r"(?:(?P<low_mark>[%x\u00d7])?"
    r"(?:\s*[-\u2013]\s*|\s+to\s+)"
    r"(?P<high_currency>[$€£])?"
    rf"(?P<high>{_NUMBER})"
    rf"(?P<high_scale>{_SCALE})?"
    r")?"
    r"(?P<mark>\s?%|\s+per\s?cent(?![a-z])|[x\u00d7](?![0-9a-z])"
    r"|-?fold(?![a-z])|\s+(?:USD|US\s+dollars|dollars)(?![a-z]))?",
    re.IGNORECASE,
)

# The unit a written sign says a figure is in; a figure with no sign may be in any unit.
_PERCENT, _RATIO, _CURRENCY = "percent", "ratio", "USD"


def _sign(match: re.Match[str]) -> str | None:
    """The unit a figure (or both ends of a range) is written in, if its text says one."""
    if match["currency"] or match["high_currency"]:
        return _CURRENCY
    mark = (match["mark"] or match["low_mark"] or "").strip().lower().lstrip("-")
    if not mark:
        return None
    if mark.startswith(("%", "per")):
        return _PERCENT
    if mark in ("x", "\u00d7", "fold"):
        return _RATIO
    return _CURRENCY


def _value(digits: str, scale: str | None) -> float:
    """The number as written, scaled when a scale word applies ("$150 billion" is 1.5e11,
    never 150)."""
    plain = digits.replace(",", "")
    if not scale:
        return float(plain)
    # Parsed as "2.01e3" rather than multiplied: 2.01 * 1000 is 2009.9999999999998.
    return float(f"{plain}e{_EXPONENTS[scale.strip().lower()]}")


def figures_in(text: str) -> dict[float, set[str | None]]:
    """Every number the text writes (scaled when a scale word follows), with the units its
    signs say it is in (None: written with no sign)."""
    found: dict[float, set[str | None]] = {}
    for match in _FIGURE.finditer(text):
        high, high_scale, sign = match["high"], match["high_scale"], _sign(match)
        found.setdefault(_value(match["low"], match["low_scale"] or high_scale), set()).add(sign)
        if high is not None:
            found.setdefault(_value(high, high_scale), set()).add(sign)
    return found


def numbers_in(text: str) -> set[float]:
    """Every number the text writes, scaled when a scale word follows."""
    return set(figures_in(text))


def _near(value: float, numbers: Iterable[float]) -> bool:
    """`value` is one of the numbers, exactly: each is parsed as written (correctly rounded, as
    a JSON number is), so no tolerance is needed, and one would let in figures the quote does
    not write (150000000150 for "$150 billion")."""
    return any(value == n for n in numbers)


def signs_of(quote: str, value: float) -> set[str]:
    """The units the quote's signs put `value` in, where it writes it ("47%": percent)."""
    return {
        sign
        for number, signs in figures_in(quote).items()
        if _near(value, (number,))
        for sign in signs
        if sign is not None
    }


def missing_figures(quote: str, *values: float, unit: str | None = None) -> list[float]:
    """The values, in the order given, that are not among the numbers the quote writes; with
    `unit`, a number written with a sign of another unit ("47%" for USD, "$1.5" for a count)
    does not count."""
    found = figures_in(quote)
    fitting = [
        number for number, signs in found.items() if unit is None or None in signs or unit in signs
    ]
    return [float(value) for value in values if not _near(value, fitting)]
