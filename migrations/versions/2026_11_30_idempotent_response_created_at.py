"""An index on idempotent_response.created_at: the POST that deletes the expired first
responses (older than IDEMPOTENCY_RETENTION_HOURS) finds them without reading the table.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 07:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_idempotent_response_created_at", "idempotent_response", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_idempotent_response_created_at", table_name="idempotent_response")
