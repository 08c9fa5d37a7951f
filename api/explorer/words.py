"""Figures in words, as a reader would say them: "$45,000–$65,000, 2026", "over 60%"."""

from datetime import UTC, datetime
from decimal import Decimal

from api.metrics.schemas import MetricPublic
from api.vocabulary import Measure, Qualifier, Unit

QUALIFIER_WORDS = {
    Qualifier.eq: "",
    Qualifier.gt: "over ",
    Qualifier.gte: "at least ",
    Qualifier.lt: "under ",
    Qualifier.lte: "up to ",
    Qualifier.approx: "about ",
}
# Scale words are used only where they are exact: 150000000000 is "$150 billion", never a
# rounded "$0.15 trillion"; 45000 stays "$45,000".
_SCALES = ((12, "trillion"), (9, "billion"), (6, "million"))
_SUFFIXES = {
    Unit.hours: " hours",
    Unit.days: " days",
    Unit.months: " months",
    Unit.years: " years",
}
CATEGORY_LABELS = {
    "market": "Market",
    "technology": "Technology",
    "regulatory": "Regulatory",
    "pricing": "Pricing",
    "mna": "M&A and partnerships",
}


# The fields of a metric as a reader names them (the revision history's changes).
FIELD_LABELS = {
    "category": "Category",
    "name": "Name",
    "description": "Description",
    "value": "Value",
    "value_low": "Low value",
    "value_high": "High value",
    "qualifier": "Qualifier",
    "unit": "Unit",
    "measure": "Measure",
    "direction": "Direction",
    "year": "Year",
    "forecast": "Projection",
    "base_year": "Base year",
    "geography": "Geography",
    "subjects": "Subjects",
    "cited_as": "Cited as",
    "baseline_id": "Baseline",
    "source_id": "Source",
    "evidence": "Source sentence",
}
_LONGEST_SHOWN = 80


def field_value(value: object) -> str:
    """A stored field's value as the history shows it: numbers exact with separators, lists
    joined, a sentence by its words (cut at 80 characters), nothing as a dash."""
    if value is None or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return number(value) if isinstance(value, float) or abs(value) >= 10_000 else str(value)
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        value = value.get("quote", "")
    text = str(value)
    return text if len(text) <= _LONGEST_SHOWN else text[: _LONGEST_SHOWN - 1] + "…"


def number(value: float) -> str:
    """A figure with thousands separators, exactly as stored (no rounding)."""
    exact = Decimal(repr(float(value)))
    if exact == exact.to_integral_value():
        return f"{int(exact):,}"
    whole, _, fraction = format(exact, "f").partition(".")
    return f"{int(whole):,}.{fraction}" if whole.lstrip("-") else f"0.{fraction}"


def _scaled(value: float) -> str:
    exact = Decimal(repr(float(value)))
    for power, word in _SCALES:
        scaled = exact.scaleb(-power)
        if abs(scaled) >= 1 and scaled == scaled.quantize(Decimal("0.001")):
            text = format(scaled.normalize(), "f")
            return f"{text} {word}"
    return number(value)


def amount(value: float, unit: Unit) -> str:
    """One figure with its unit: "$150 billion", "47%", "3.5×", "12 days"."""
    if unit is Unit.usd:
        return f"${_scaled(value)}"
    if unit is Unit.percent:
        return f"{number(value)}%"
    if unit is Unit.ratio:
        return f"{number(value)}×"
    if unit is Unit.count_:
        return _scaled(value)
    return number(value) + _SUFFIXES.get(unit, "")


def figure(metric: MetricPublic) -> str:
    """The figure alone, qualified: "over $150 billion", "$45,000–$65,000", "down 25%",
    "down 8–10% a year"."""
    low, high = metric.value_low, metric.value_high
    if low == high:
        text = amount(low, metric.unit)
    elif metric.unit in (Unit.usd, Unit.count_):  # "$45,000–$65,000", "$1.2 billion–$1.5 billion"
        text = f"{amount(low, metric.unit)}–{amount(high, metric.unit)}"
    else:  # the unit once: "12–18 months", "25–30%", "3–5×"
        text = f"{number(low)}–{amount(high, metric.unit)}"
    text = QUALIFIER_WORDS[metric.qualifier] + text
    if direction(metric):
        text = f"{direction(metric)} {text}"
    if metric.measure is Measure.growth_rate:
        text += " a year"
    return text


def direction(metric: MetricPublic) -> str:
    """ "up" or "down" for a change or growth rate that has a direction (a growth rate of 8–10%
    that is a decrease must not read as growth), else ""."""
    if metric.measure not in (Measure.change, Measure.growth_rate) or metric.direction is None:
        return ""
    return "up" if metric.direction == "increase" else "down"


def when(metric: MetricPublic) -> str:
    """The period it refers to: "2026", "2023–2028", "since 2021", or ""."""
    if metric.base_year is not None and metric.year is not None:
        return f"{metric.base_year}–{metric.year}"
    if metric.base_year is not None:
        return f"since {metric.base_year}"
    return "" if metric.year is None else str(metric.year)


def in_words(metric: MetricPublic) -> str:
    """The figure and its period: "$45,000–$65,000, 2026"; projections say so, and one
    whose year has passed says it expired ("about 35%, 2025 (an expired projection)")."""
    text = figure(metric)
    period = when(metric)
    if period:
        text += f", {period}"
    if metric.horizon_passed:
        text += " (an expired projection)"
    elif metric.forecast:
        text += " (projected)"
    return text


def stamp(moment: datetime) -> str:
    """An RFC 3339 timestamp in UTC, as `as_of` takes it: 2026-11-26T10:00:00.123456Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
