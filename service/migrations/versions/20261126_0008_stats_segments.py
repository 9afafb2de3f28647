"""statistics: per-segment figures of an issue computed by the rollup

Revision ID: 0008_stats_segments
Revises: 0007_stats_uniques
Create Date: 2026-11-26 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.db

revision: str = "0008_stats_segments"
down_revision: str | None = "0007_stats_uniques"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "stats_segment_snapshots",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("computed_at", service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("statuses", sa.String(length=400), nullable=False),
        sa.Column("openers", sa.BigInteger(), nullable=False),
        sa.Column("clickers", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_stats_segment_snapshots_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("issue_id", name=op.f("pk_stats_segment_snapshots")),
    )
    op.create_table(
        "stats_segments",
        sa.Column("issue_id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("recipients", sa.BigInteger(), nullable=False),
        sa.Column("delivered", sa.BigInteger(), nullable=False),
        sa.Column("openers", sa.BigInteger(), nullable=True),
        sa.Column("clickers", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_stats_segments_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"],
            ["segments.id"],
            name=op.f("fk_stats_segments_segment_id_segments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("issue_id", "segment_id", name=op.f("pk_stats_segments")),
    )


def downgrade() -> None:
    op.drop_table("stats_segments")
    op.drop_table("stats_segment_snapshots")
