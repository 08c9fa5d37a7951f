"""The controlled vocabulary of DESIGN.md, shared by tables, API schemas and the loader."""

from enum import StrEnum
from typing import Any

from sqlalchemy import Enum


class Category(StrEnum):
    market = "market"
    technology = "technology"
    regulatory = "regulatory"
    pricing = "pricing"
    mna = "mna"


class Unit(StrEnum):
    usd = "USD"
    percent = "percent"
    ratio = "ratio"
    hours = "hours"
    days = "days"
    months = "months"
    years = "years"
    count_ = "count"  # `count` would shadow str.count


class Measure(StrEnum):
    level = "level"
    share = "share"
    change = "change"
    growth_rate = "growth_rate"
    multiple = "multiple"
    duration = "duration"
    count_ = "count"


class Qualifier(StrEnum):
    eq = "eq"
    gt = "gt"
    gte = "gte"
    lt = "lt"
    lte = "lte"
    approx = "approx"


class Direction(StrEnum):
    increase = "increase"
    decrease = "decrease"


class SourceKind(StrEnum):
    article = "article"
    survey = "survey"
    report = "report"
    dataset = "dataset"
    filing = "filing"


def enum_column_type(enum: type[StrEnum]) -> Enum:
    """A portable VARCHAR + CHECK column type storing the enum's values, never a native enum."""
    values: Any = lambda members: [member.value for member in members]  # noqa: E731
    return Enum(
        enum,
        native_enum=False,
        create_constraint=True,
        length=max(len(member.value) for member in enum),
        values_callable=values,
        name=enum.__name__.lower(),
    )
