"""Charts drawn on the server as inline SVG: no script, nothing fetched, readable offline.

One kind of chart serves every page: figures of one unit as horizontal interval bars (a range
from its low to its high end, a point as a dot), on a linear axis, or a logarithmic one when the
figures span more than two orders of magnitude. The chart is an image (its links and exact
figures are in the table each page prints beside it). Colour is never the only cue: the figure
a page is about is drawn thicker and labelled in bold, baselines are hatched, projections are
outlined.
"""

import hashlib
import math
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from api.explorer import words
from api.vocabulary import Qualifier, Unit

WIDTH = 720
LABEL_WIDTH = 290
ROW_HEIGHT = 30
TOP = 10
AXIS_HEIGHT = 34
PLOT_LEFT = LABEL_WIDTH + 10
PLOT_RIGHT = WIDTH - 50
LOG_SPREAD = 100
LABEL_CHARS = 38  # what fits LABEL_WIDTH at the chart's font size


# The baseline's hatching, which the charts' style refers to (`url(#hatch)`): put once on a page
# that has charts (an id is unique in a page).
DEFS = Markup(
    '<svg class="chart-defs" width="0" height="0" aria-hidden="true" focusable="false">'
    '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
    '<line x1="0" y1="0" x2="0" y2="6" stroke="#5a4a00" stroke-width="3"/></pattern></defs></svg>'
)


@dataclass(frozen=True)
class Bar:
    """One figure on a chart."""

    label: str
    low: float
    high: float
    qualifier: Qualifier
    href: str
    role: str = "peer"  # self | baseline | peer
    forecast: bool = False
    note: str = ""


def _ticks(low: float, high: float, log: bool) -> list[float]:
    if log:
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        step = max(1, (last - first) // 6 + 1)
        return [10.0**power for power in range(first, last + 1, step)]
    span = high - low or abs(high) or 1.0
    raw = span / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = [round(start, 10)]
    while ticks[-1] < high - step * 1e-9:  # the last tick is at or past the highest figure
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _tick_label(value: float, unit: Unit) -> str:
    if unit is Unit.usd and abs(value) >= 1000 and value < 1e6:
        return f"${words.number(value / 1000)}k"
    return words.amount(value, unit)


def interval_chart(bars: list[Bar], unit: Unit, title: str, description: str) -> Markup:
    """An SVG of `bars` (all in `unit`), titled and described for screen readers."""
    if not bars:
        return Markup("")
    values = [v for bar in bars for v in (bar.low, bar.high)]
    positive = [v for v in values if v > 0]
    log = bool(positive) and min(values) > 0 and max(positive) / min(positive) > LOG_SPREAD
    if log:
        ticks = _ticks(min(positive), max(positive), True)
        lo, hi = math.log10(ticks[0]), math.log10(ticks[-1])
    else:
        ticks = _ticks(min(0.0, *values), max(values), False)
        lo, hi = ticks[0], ticks[-1]
    hi = hi if hi > lo else lo + 1

    def x(value: float) -> float:
        position = math.log10(value) if log else value
        return PLOT_LEFT + (position - lo) / (hi - lo) * (PLOT_RIGHT - PLOT_LEFT)

    height = TOP + ROW_HEIGHT * len(bars) + AXIS_HEIGHT
    axis_y = TOP + ROW_HEIGHT * len(bars)
    # Ids from the chart's own words: the same page is the same bytes (and ETag) in every
    # process, as Python's salted hash() would not give.
    digest = hashlib.sha256(f"{title}\n{description}".encode()).hexdigest()[:12]
    ident = f"chart-{digest}"
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-labelledby="{ident}-t {ident}-d" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(description)}</desc>',
    ]
    for tick in ticks:
        tx = x(tick)
        parts.append(
            f'<line class="grid" x1="{tx:.1f}" y1="{TOP}" x2="{tx:.1f}" y2="{axis_y}"/>'
            f'<text class="tick" x="{tx:.1f}" y="{axis_y + 18}" text-anchor="middle">'
            f"{escape(_tick_label(tick, unit))}</text>"
        )
    if log:
        parts.append(
            f'<text class="tick" x="{PLOT_RIGHT}" y="{axis_y + 32}" text-anchor="end">'
            "logarithmic scale</text>"
        )
    for row, bar in enumerate(bars):
        parts.append(_bar(bar, TOP + row * ROW_HEIGHT, x))
    parts.append("</svg>")
    return Markup("".join(parts))


def _bar(bar: Bar, top: float, x: object) -> str:
    assert callable(x)
    middle = top + ROW_HEIGHT / 2
    fits = LABEL_CHARS - (4 if bar.role == "self" else 0)  # bold is wider
    label = bar.label if len(bar.label) <= fits else bar.label[: fits - 1] + "…"
    weight = ' font-weight="bold"' if bar.role == "self" else ""
    shapes = [
        f'<text class="label" x="{LABEL_WIDTH}" y="{middle + 4:.1f}" text-anchor="end"{weight}>'
        f"{escape(label)}</text>"
    ]
    x1, x2 = x(bar.low), x(bar.high)
    thickness = 14 if bar.role == "self" else 10
    css = f"bar {bar.role}" + (" forecast" if bar.forecast else "")
    if x2 - x1 < 2:  # a point figure
        shapes.append(
            f'<circle class="{css}" cx="{x1:.1f}" cy="{middle:.1f}" r="{thickness / 2}"/>'
        )
    else:
        shapes.append(
            f'<rect class="{css}" x="{x1:.1f}" y="{middle - thickness / 2:.1f}" '
            f'width="{x2 - x1:.1f}" height="{thickness}" rx="2"/>'
        )
    if bar.qualifier in (Qualifier.gt, Qualifier.gte):  # open upwards: an arrow to the right
        shapes.append(f'<path class="open" d="M{x2 + 8:.1f},{middle - 5:.1f} l8,5 l-8,5 z"/>')
    elif bar.qualifier in (Qualifier.lt, Qualifier.lte):
        shapes.append(f'<path class="open" d="M{x1 - 8:.1f},{middle - 5:.1f} l-8,5 l8,5 z"/>')
    tooltip = f"{bar.label}: {bar.note}" if bar.note else bar.label
    return f"<g><title>{escape(tooltip)}</title>{''.join(shapes)}</g>"
