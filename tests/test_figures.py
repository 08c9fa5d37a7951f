"""Finding a metric's figure in its evidence quote."""

import re
from typing import Any

import pytest
import yaml

from api import PROJECT_ROOT
from api.figures import figures_in, missing_figures, numbers_in

SEED_FILE = PROJECT_ROOT / "seed" / "data" / "coreychem-future-of-cdmos-2026.yaml"


def seeded_metrics() -> list[dict[str, Any]]:
    with SEED_FILE.open(encoding="utf-8") as file:
        metrics: list[dict[str, Any]] = yaml.safe_load(file)["metrics"]
    return metrics


METRICS = seeded_metrics()


def test_the_seeded_dataset_has_all_its_metrics() -> None:
    assert len(METRICS) == 42


@pytest.mark.parametrize("metric", METRICS, ids=[metric["id"] for metric in METRICS])
def test_every_seeded_figure_is_written_in_its_quote(metric: dict[str, Any]) -> None:
    quote = metric["evidence"]["quote"]
    low, high, unit = metric["value_low"], metric["value_high"], metric["unit"]
    assert missing_figures(quote, low, high, unit=unit) == []


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("grew by 30% in 2024", {30.0, 2024.0}),
        ("1,200 patients", {1200.0}),
        ("1,234,567.89 doses", {1234567.89}),
        ("a CAGR of 11.2% from 2023.", {11.2, 2023.0}),
        ("(IQVIA, 2024).", {2024.0}),
        ("3.5x faster", {3.5}),
        ("3.5× higher", {3.5}),
        ("compared to $15,000 for a batch", {15000.0}),
        # Ranges: en dash, hyphen and "to", with "$" or "%" on either end.
        ("$45,000–$65,000 per dose", {45000.0, 65000.0}),
        ("$45,000 – $65,000 per dose", {45000.0, 65000.0}),
        ("25-30%", {25.0, 30.0}),
        ("25%–30%", {25.0, 30.0}),
        ("2 to 3 weeks", {2.0, 3.0}),
        ("margins ranging from 15% to 25%.", {15.0, 25.0}),
        ("viable only 18-72 hours post-processing", {18.0, 72.0}),
        ("lead times of 12-18 months", {12.0, 18.0}),
        ("from 2023 to 2028", {2023.0, 2028.0}),
        # Scale words: the number scaled, never as written ("$150 billion" is not 150).
        ("exceed $150 billion by 2028", {150e9, 2028.0}),
        ("$2.3 million", {2.3e6}),
        ("1.2 trillion", {1.2e12}),
        ("45 thousand", {45e3}),
        ("$1.5B", {1.5e9}),
        ("$300M", {300e6}),
        ("$2.5bn", {2.5e9}),
        ("$2.5 bn", {2.5e9}),
        ("50k", {50e3}),
        # The scale written after a range applies to both of its ends.
        ("$1.2-1.5 billion", {1.2e9, 1.5e9}),
        ("$1.2–1.5 billion", {1.2e9, 1.5e9}),
        ("$1.2 to 1.5 billion", {1.2e9, 1.5e9}),
        ("$1.2 billion to $1.5 billion", {1.2e9, 1.5e9}),
        ("$1.2bn-$1.5bn", {1.2e9, 1.5e9}),
        ("3x-5x", {3.0, 5.0}),
        ("3×–5× higher", {3.0, 5.0}),
        # Not scales: a unit after a space, or a word that merely starts with a scale's letter.
        ("5 months", {5.0}),
        ("14 months, compared to 6 months", {14.0, 6.0}),
        ("5 m away", {5.0}),
        ("the 5th batch", {5.0}),
        ("no figures here", set()),
        ("", set()),
    ],
)
def test_numbers_in(text: str, numbers: set[float]) -> None:
    assert numbers_in(text) == numbers


@pytest.mark.parametrize(
    ("text", "scaled"),
    [("2.01 thousand", 2010.0), ("$2.01 million", 2_010_000.0), ("$1.07 billion", 1_070_000_000.0)],
)
def test_scaled_values_are_exact(text: str, scaled: float) -> None:
    # In floating point 2.01 * 1000 is 2009.9999999999998: the scaled figure is the number the
    # text means, exactly, so that it also equals a value stored as an integer.
    assert scaled in numbers_in(text)


@pytest.mark.parametrize(
    ("quote", "values", "missing"),
    [
        ("grew by 30% in 2024", (31,), [31.0]),
        ("grew by 30% in 2024", (30,), []),
        ("$45,000–$65,000 per dose", (45000, 70000), [70000.0]),
        ("$45,000–$65,000 per dose", (45000, 65000), []),
        ("$45,000–$65,000 per dose", (45, 0), [45.0, 0.0]),
        # A scaled figure matches its scaled value, nothing else.
        ("exceed $150 billion", (150e9,), []),
        ("exceed $150 billion", (150,), [150.0]),
        ("exceed $150 billion", (150e6,), [150e6]),
        ("exceed $150 billion", (15e9,), [15e9]),
        ("$1.2-1.5 billion", (1.2e9, 1.5e9), []),
        ("$1.2-1.5 billion", (1.2, 1.5), [1.2, 1.5]),
        ("$1.2-1.5 billion", (1.2e6, 1.5e9), [1.2e6]),
        ("3.5x faster", (3.5,), []),
        ("3.5x faster", (35,), [35.0]),
        ("2 to 3 weeks", (2, 3), []),
        ("25-30%", (25, 30), []),
        ("25-30%", (-30,), [-30.0]),
        ("1,200 patients", (1200,), []),
        ("1,200 patients", (1, 200), [1.0, 200.0]),
        # Exactly the number written: no tolerance lets in a figure the quote does not state.
        ("a CAGR of 11.2%", (11.2 * (1 + 1e-12),), [11.2 * (1 + 1e-12)]),
        ("a CAGR of 11.2%", (11.2001,), [11.2001]),
        ("a $150 billion market", (150_000_000_150,), [150_000_000_150.0]),
        ("a $150 billion market", (150e9,), []),
        ("cut by 0.1%", (0.10000000001,), [0.10000000001]),
        ("$2.01 billion", (2_010_000_000,), []),
        # The values missing, in the order given; none given, none missing.
        ("between 10 and 20", (30, 10, 40, 20), [30.0, 40.0]),
        ("between 10 and 20", (), []),
        ("no figures here", (0,), [0.0]),
    ],
)
def test_missing_figures(quote: str, values: tuple[float, ...], missing: list[float]) -> None:
    result = missing_figures(quote, *values)
    assert result == missing
    assert all(type(value) is float for value in result)


@pytest.mark.parametrize(
    ("text", "signs"),
    [
        ("exceed $150 billion by 2028", {150e9: {"USD"}, 2028.0: {None}}),
        ("US$2.5 bn", {2.5e9: {"USD"}}),
        ("45,000 USD a dose", {45000.0: {"USD"}}),
        ("45,000 dollars", {45000.0: {"USD"}}),
        ("$45,000–$65,000 per dose", {45000.0: {"USD"}, 65000.0: {"USD"}}),
        ("$1.2-1.5 billion", {1.2e9: {"USD"}, 1.5e9: {"USD"}}),
        ("47% of assets", {47.0: {"percent"}}),
        ("25%–30%", {25.0: {"percent"}, 30.0: {"percent"}}),
        ("25-30%", {25.0: {"percent"}, 30.0: {"percent"}}),
        ("12 percent", {12.0: {"percent"}}),
        ("2.5 per cent", {2.5: {"percent"}}),
        ("3.5x higher", {3.5: {"ratio"}}),
        ("3.5× higher", {3.5: {"ratio"}}),
        ("3x-5x", {3.0: {"ratio"}, 5.0: {"ratio"}}),
        ("a 3-fold rise", {3.0: {"ratio"}}),
        ("14 days, 1,200 patients", {14.0: {None}, 1200.0: {None}}),
        ("30% of 30 sites", {30.0: {"percent", None}}),
    ],
)
def test_figures_in_knows_the_unit_a_sign_writes(
    text: str, signs: dict[float, set[str | None]]
) -> None:
    assert figures_in(text) == signs


@pytest.mark.parametrize(
    ("quote", "value", "unit", "missing"),
    [
        ("exceed $150 billion by 2028", 150e9, "USD", []),
        ("exceed $150 billion by 2028", 150e9, "count", [150e9]),
        ("exceed $150 billion by 2028", 2028, "USD", []),  # a number with no sign fits any
        ("47% of oncology pipeline assets", 47, "percent", []),
        ("47% of oncology pipeline assets", 47, "USD", [47.0]),
        ("47% of oncology pipeline assets", 47, "count", [47.0]),
        ("3.5x higher", 3.5, "ratio", []),
        ("3.5x higher", 3.5, "percent", [3.5]),
        ("30% of 30 sites", 30, "count", []),  # written both ways
        ("30% of 30 sites", 30, "percent", []),
    ],
)
def test_a_figure_written_as_another_unit_is_missing(
    quote: str, value: float, unit: str, missing: list[float]
) -> None:
    assert missing_figures(quote, value, unit=unit) == missing
    assert missing_figures(quote, value) == []  # without a unit, only the number counts


def test_numbers_in_compiles_no_pattern_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bulk imports run it on 100,000 quotes: the pattern is compiled once, at import.
    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("numbers_in compiled a regular expression")

    with monkeypatch.context() as patch:
        patch.setattr(re, "compile", no_compiling)
        patch.setattr(re, "_compile", no_compiling)
        found = numbers_in("$45,000–$65,000 per dose, $1.2-1.5 billion, 25-30%")
    assert found == {45000.0, 65000.0, 1.2e9, 1.5e9, 25.0, 30.0}
