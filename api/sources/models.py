"""The source table: documents that figures come from, with their verbatim text."""

from datetime import date

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from api.records.periods import history_of
from api.vocabulary import SourceKind, enum_column_type


class Source(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=100)
    title: str = Field(max_length=500)
    publisher: str = Field(max_length=200)
    author: str | None = Field(default=None, max_length=200)
    published_on: date
    kind: SourceKind = Field(sa_column=Column(enum_column_type(SourceKind), nullable=False))
    url: str | None = Field(default=None, max_length=2000)
    text: str = Field(sa_column=Column(Text, nullable=False))
    # Raised by every write; compare-and-set on it keeps concurrent writers from clobbering.
    version: int = Field(default=1)


SOURCE_HISTORY = history_of(Source.__table__, key="id")  # type: ignore[attr-defined]
