"""History, API keys, idempotent replays, rate-limit windows, and a version on every record.

Columns are added and dropped with plain ALTER TABLE (SQLite 3.35+ and PostgreSQL), never by
recreating a table: on SQLite a table rebuild would fire ON DELETE CASCADE on its children.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 04:29:57.283554
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.migrate import refuse_losing

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("scope IN ('write', 'admin')", name=op.f("ck_api_key_scope")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("name", name=op.f("uq_api_key_name")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_key_token_hash")),
    )
    op.create_table(
        "idempotent_response",
        sa.Column("key_name", sa.String(length=100), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("location", sa.String(length=500), nullable=True),
        sa.Column("etag", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_name", "idempotency_key", name=op.f("pk_idempotent_response")),
    )
    op.create_table(
        "rate_window",
        sa.Column("key_name", sa.String(length=100), nullable=False),
        sa.Column("window_start", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key_name", "window_start", name=op.f("pk_rate_window")),
    )
    op.create_table(
        "release",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_release")),
    )
    op.create_table(
        "revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("record_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("release_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "action IN ('create', 'update', 'delete')", name=op.f("ck_revision_action")
        ),
        sa.ForeignKeyConstraint(
            ["release_id"], ["release.id"], name=op.f("fk_revision_release_id_release")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_revision")),
    )
    with op.batch_alter_table("revision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_revision_at"), ["at"], unique=False)
        batch_op.create_index("ix_revision_kind_record_id", ["kind", "record_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_revision_release_id"), ["release_id"], unique=False)

    op.add_column(
        "bottleneck", sa.Column("version", sa.Integer(), nullable=False, server_default="1")
    )

    op.add_column("faq", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))

    op.add_column("metric", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))

    op.add_column(
        "pricing_model", sa.Column("version", sa.Integer(), nullable=False, server_default="1")
    )

    op.add_column(
        "regulatory_change", sa.Column("version", sa.Integer(), nullable=False, server_default="1")
    )

    op.add_column("source", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))

    op.add_column(
        "technology", sa.Column("version", sa.Integer(), nullable=False, server_default="1")
    )


def downgrade() -> None:
    # The history and the API keys exist nowhere else.
    refuse_losing("revision", "release", "api_key")
    op.execute("ALTER TABLE technology DROP COLUMN version")
    op.execute("ALTER TABLE source DROP COLUMN version")
    op.execute("ALTER TABLE regulatory_change DROP COLUMN version")
    op.execute("ALTER TABLE pricing_model DROP COLUMN version")
    op.execute("ALTER TABLE metric DROP COLUMN version")
    op.execute("ALTER TABLE faq DROP COLUMN version")
    op.execute("ALTER TABLE bottleneck DROP COLUMN version")
    with op.batch_alter_table("revision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_revision_release_id"))
        batch_op.drop_index("ix_revision_kind_record_id")
        batch_op.drop_index(batch_op.f("ix_revision_at"))

    op.drop_table("revision")
    op.drop_table("release")
    op.drop_table("rate_window")
    op.drop_table("idempotent_response")
    op.drop_table("api_key")
