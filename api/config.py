"""Settings, read once from environment variables (and an optional `.env` file)."""

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from api import PROJECT_ROOT


class Settings(BaseSettings):
    """Every knob of the service; each field is the environment variable of the same name."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{PROJECT_ROOT / 'data' / 'cdmo-metrics.db'}",
        description="SQLAlchemy URL; sqlite:///path or postgresql+psycopg://user@host/db.",
    )
    database_read_url: str | None = Field(
        default=None,
        description="A streaming read replica of DATABASE_URL (PostgreSQL): reads are served "
        "from it, writes go to DATABASE_URL.",
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="Interface `serve` binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `serve` listens on.")
    web_concurrency: int = Field(
        default=1, ge=1, le=64, description="Worker processes `serve` starts (--workers)."
    )
    seed_dir: Path = Field(
        default=PROJECT_ROOT / "seed", description="Folder holding sources/ and data/."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default=["*"],
        description="Origins allowed to read the API from a browser, as a JSON list or "
        "separated by commas (scheme://host[:port], no path); * is any.",
    )
    db_statement_timeout_ms: int = Field(
        default=5000, ge=100, description="PostgreSQL statement timeout; a slower query is 503."
    )
    write_rate_limit: int = Field(
        default=120, ge=1, description="Writes each API key may make per rate window."
    )
    write_rate_window: int = Field(default=60, ge=1, description="Rate window, in seconds.")
    redis_url: str | None = Field(
        default=None,
        description="redis:// or rediss:// URL: count write rates in Redis, not the database.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    response_cache_bytes: int = Field(
        default=48 * 1024 * 1024,
        ge=0,
        description="Memory for finished GET responses, kept until the next write; 0 turns "
        "the cache off (every request is computed, as on a cold cache).",
    )
    max_query_bytes: int = Field(
        default=8 * 1024, ge=256, description="Longest query string accepted (414 above)."
    )
    max_query_parameters: int = Field(
        default=64, ge=1, description="Most query parameters one request may carry (414 above)."
    )
    idempotency_retention_hours: float = Field(
        default=24,
        gt=0,
        description="Hours an Idempotency-Key's first response is kept and replayed; older "
        "records are deleted.",
    )
    auth_failure_limit: int = Field(
        default=100,
        ge=1,
        description="Failed authentications one client address may make per AUTH_FAILURE_WINDOW "
        "before it is answered 429 without a check.",
    )
    auth_failure_window: int = Field(
        default=60, ge=1, description="Window of AUTH_FAILURE_LIMIT, in seconds."
    )
    exports_per_client: int = Field(
        default=4, ge=1, description="CSV/NDJSON exports one client address may run at once."
    )
    export_send_timeout: float = Field(
        default=30.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds an export waits for a client to take the next chunk before it "
        "drops the connection.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        default="info", description="Log level of uvicorn and of the API's JSON request log."
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        try:
            backend = make_url(url).get_backend_name()
        except Exception as exc:
            raise ValueError(f"not a database URL ({exc})") from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"use sqlite:///... or postgresql+psycopg://..., not {backend!r}")
        return url

    @field_validator("database_read_url")
    @classmethod
    def _postgres_replica(cls, url: str | None, info: ValidationInfo) -> str | None:
        if not url:
            return None  # DATABASE_READ_URL= (empty) means reads go to DATABASE_URL
        primary = info.data.get("database_url")
        if primary and make_url(primary).get_backend_name() != "postgresql":
            raise ValueError("a standby of a PostgreSQL DATABASE_URL; with SQLite, leave it unset")
        try:
            backend = make_url(url).get_backend_name()
        except Exception as exc:
            raise ValueError(f"not a database URL ({exc})") from None
        if backend != "postgresql":
            raise ValueError("a read replica is a PostgreSQL standby: postgresql+psycopg://...")
        return url

    @field_validator("redis_url")
    @classmethod
    def _known_redis(cls, url: str | None) -> str | None:
        if not url:
            return None  # REDIS_URL= (empty) means no Redis, as unset does
        if not url.startswith(("redis://", "rediss://")):
            raise ValueError("use redis://host:6379/0 or rediss://...")
        try:
            from redis import Redis  # only when configured: the import costs ~60 ms

            Redis.from_url(url)  # parses only; connects on first use
        except ValueError as exc:
            raise ValueError(f"not a Redis URL ({exc})") from None
        return url

    db_pool_size: int = Field(default=5, ge=1, description="PostgreSQL connections kept open.")
    db_max_overflow: int = Field(default=5, ge=0, description="Extra connections under load.")
    db_pool_timeout: float = Field(
        default=5.0,
        gt=0,
        allow_inf_nan=False,
        description="Seconds a request waits for a connection before a 503.",
    )
    request_head_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a request's line and headers (408 after).",
    )
    request_body_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds a client has, once its headers are in, to send the request's body "
        "whole (408 after, or the connection closed if the answer was already sent).",
    )
    shutdown_timeout: int = Field(
        default=8,
        ge=1,
        le=3600,
        description="Seconds `serve` waits, once told to stop, for responses under way (a slow "
        "export) before it cuts them; below a container's stop timeout (Docker: 10 s).",
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, given: object) -> object:
        if not isinstance(given, str):
            return given
        text = given.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError("not a JSON list of origins") from None
        return [origin.strip() for origin in text.split(",") if origin.strip()]

    @field_validator("cors_origins")
    @classmethod
    def _origins_as_browsers_send_them(cls, origins: list[str]) -> list[str]:
        if not origins:
            raise ValueError("no origin: use * for any, or name at least one")
        for origin in origins:
            parts = urlsplit(origin)
            if origin != "*" and (
                parts.scheme not in ("http", "https") or not parts.netloc
                or f"{parts.scheme}://{parts.netloc}" != origin
            ):  # fmt: skip
                raise ValueError(
                    f"{origin!r} is not an origin as a browser sends it: scheme://host[:port], "
                    "no path and no trailing slash (or *)"
                )
        return origins


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings."""
    return Settings()
