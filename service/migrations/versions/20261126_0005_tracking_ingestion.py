"""tracking: one stored link per issue position, flush bookkeeping for buffered hits

Revision ID: 0005_tracking_ingestion
Revises: 0004_stats_rollups
Create Date: 2026-11-26 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.db

revision: str = "0005_tracking_ingestion"
down_revision: str | None = "0004_stats_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("links") as batch:
        batch.create_unique_constraint(op.f("uq_links_issue_id_position"), ["issue_id", "position"])
    op.create_table(
        "tracking_flushes",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("flushed_at", service.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_flushes")),
    )


def downgrade() -> None:
    op.drop_table("tracking_flushes")
    with op.batch_alter_table("links") as batch:
        batch.drop_constraint(op.f("uq_links_issue_id_position"), type_="unique")
