"""a covering index for the newest live update of each goal

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 09:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("updates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_updates_goal_kind_sent", ["goal_id", "kind", "deleted", "sent_at"], unique=False
        )
        batch_op.drop_index("ix_updates_goal_sent")


def downgrade() -> None:
    with op.batch_alter_table("updates", schema=None) as batch_op:
        batch_op.create_index("ix_updates_goal_sent", ["goal_id", "sent_at"], unique=False)
        batch_op.drop_index("ix_updates_goal_kind_sent")
