"""Finding the numbers a quote writes, to check that a metric's figure is in its evidence."""

import math
import re

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
# without a scale of its own it takes the scale written after the second end.
_FIGURE = re.compile(
    rf"(?P<low>{_NUMBER})"
    rf"(?P<low_scale>{_SCALE})?"
    r"(?:[%x\u00d7]?"
    r"(?:\s*[-\u2013]\s*|\s+to\s+)"
    r"[$€£]?"
    rf"(?P<high>{_NUMBER})"
    rf"(?P<high_scale>{_SCALE})?"
    r")?",
    re.IGNORECASE,
)

_REL_TOL = 1e-9


def _values(digits: str, scale: str | None, into: set[float]) -> None:
    """Add the number as written and, when a scale applies, the number scaled."""
    plain = digits.replace(",", "")
    into.add(float(plain))
    if scale:
        # Parsed as "2.01e3" rather than multiplied: 2.01 * 1000 is 2009.9999999999998.
        into.add(float(f"{plain}e{_EXPONENTS[scale.strip().lower()]}"))


def numbers_in(text: str) -> set[float]:
    """Every number the text writes, each as written and, when a scale word follows, scaled."""
    found: set[float] = set()
    for match in _FIGURE.finditer(text):
        high, high_scale = match["high"], match["high_scale"]
        _values(match["low"], match["low_scale"] or high_scale, found)
        if high is not None:
            _values(high, high_scale, found)
    return found


def missing_figures(quote: str, *values: float) -> list[float]:
    """The values, in the order given, that are not among the numbers the quote writes."""
    found = numbers_in(quote)
    return [
        float(value)
        for value in values
        if value not in found
        and not any(math.isclose(value, number, rel_tol=_REL_TOL) for number in found)
    ]
