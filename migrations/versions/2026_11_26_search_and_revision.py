"""Full-text search index over metrics, and the dataset revision counter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_state")),
    )
    op.execute(
        "INSERT INTO dataset_state (id, revision, changed_at) VALUES (1, 0, CURRENT_TIMESTAMP)"
    )

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TABLE metric_fts ("
            " metric_id VARCHAR(100) NOT NULL,"
            " document TSVECTOR NOT NULL,"
            " CONSTRAINT pk_metric_fts PRIMARY KEY (metric_id),"
            " CONSTRAINT fk_metric_fts_metric_id_metric FOREIGN KEY (metric_id)"
            " REFERENCES metric (id) ON DELETE CASCADE)"
        )
        op.execute("CREATE INDEX ix_metric_fts_document ON metric_fts USING gin (document)")
        op.execute(
            "INSERT INTO metric_fts (metric_id, document)"
            " SELECT m.id,"
            " setweight(to_tsvector('english', m.name), 'A')"
            " || setweight(to_tsvector('english', coalesce((SELECT string_agg(s.subject, ' '"
            " ORDER BY s.position) FROM metric_subject s WHERE s.metric_id = m.id), '')), 'B')"
            " || setweight(to_tsvector('english', m.description), 'C')"
            " || setweight(to_tsvector('english', m.evidence_quote), 'D')"
            " FROM metric m"
        )
    else:
        # Porter stemming: "outsource" and "outsourcing" share the stem "outsourc".
        op.execute(
            "CREATE VIRTUAL TABLE metric_fts USING fts5("
            "metric_id UNINDEXED, name, subjects, description, quote,"
            " tokenize = 'porter unicode61 remove_diacritics 2')"
        )
        op.execute(
            "INSERT INTO metric_fts (metric_id, name, subjects, description, quote)"
            " SELECT m.id, m.name, coalesce((SELECT group_concat(s.subject, ' ')"
            " FROM metric_subject s WHERE s.metric_id = m.id), ''), m.description,"
            " m.evidence_quote FROM metric m"
        )


def downgrade() -> None:
    op.execute("DROP TABLE metric_fts")
    op.drop_table("dataset_state")
