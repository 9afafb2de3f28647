"""inbound reports and the bounce mailbox reader's state

Revision ID: 0006_inbound_reports
Revises: 0005_tracking_ingestion
Create Date: 2026-11-26 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.db

revision: str = "0006_inbound_reports"
down_revision: str | None = "0005_tracking_ingestion"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "hard",
                "soft",
                "complaint",
                "ignore",
                "malformed",
                name="report_kind",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("detail", sa.String(length=300), nullable=True),
        sa.Column("delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("issue_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=True),
        sa.Column(
            "received_at",
            service.db.UTCDateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_inbound_reports_delivery_id_deliveries"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_inbound_reports_issue_id_issues"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_reports")),
        sa.UniqueConstraint("message_id", name=op.f("uq_inbound_reports_message_id")),
    )
    op.create_index(
        "ix_inbound_reports_received_at", "inbound_reports", ["received_at"], unique=False
    )
    op.create_table(
        "mailbox_states",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("lease_until", service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error_kind", sa.String(length=20), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_processed", sa.Integer(), nullable=False),
        sa.Column("last_set_aside", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_mailbox_states")),
    )


def downgrade() -> None:
    op.drop_table("mailbox_states")
    op.drop_index("ix_inbound_reports_received_at", table_name="inbound_reports")
    op.drop_table("inbound_reports")
