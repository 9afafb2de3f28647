"""send window per newsletter, last sending problem per issue

Revision ID: 0003_send_window
Revises: 0002_imports
Create Date: 2026-11-26 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_send_window"
down_revision: str | None = "0002_imports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("newsletters") as batch:
        batch.add_column(sa.Column("send_window_start", sa.Time(), nullable=True))
        batch.add_column(sa.Column("send_window_end", sa.Time(), nullable=True))
        batch.add_column(
            sa.Column(
                "send_weekdays_only", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch.add_column(
            sa.Column(
                "send_skip_holidays", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    with op.batch_alter_table("issues") as batch:
        batch.add_column(sa.Column("send_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("issues") as batch:
        batch.drop_column("send_error")
    with op.batch_alter_table("newsletters") as batch:
        batch.drop_column("send_skip_holidays")
        batch.drop_column("send_weekdays_only")
        batch.drop_column("send_window_end")
        batch.drop_column("send_window_start")
