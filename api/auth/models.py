"""API keys (stored as hashes only), idempotent POST replays and shared rate-limit windows."""

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Text
from sqlmodel import Field, SQLModel


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"
    __table_args__ = (CheckConstraint("scope IN ('write', 'admin')", name="scope"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    scope: str = Field(max_length=10)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    revoked_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class IdempotentResponse(SQLModel, table=True):
    __tablename__ = "idempotent_response"

    key_name: str = Field(primary_key=True, max_length=100)
    idempotency_key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    status: int
    body: str = Field(sa_type=Text)
    location: str | None = Field(default=None, max_length=500)
    etag: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)


class RateWindow(SQLModel, table=True):
    __tablename__ = "rate_window"

    key_name: str = Field(primary_key=True, max_length=100)
    window_start: int = Field(primary_key=True)
    count: int = 0
