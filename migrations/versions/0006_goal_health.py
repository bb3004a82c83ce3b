"""Goal health: the owner's call (on track, at risk, blocked, done) in updates and reactions

``updates.health`` holds the health an update states; ``health_reactions`` the owners' health
reactions on the bot's prompts. Champions' alerts are deliveries (kind ``health_alert``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HEALTH = sa.Enum(
    "on-track", "at-risk", "blocked", "done", name="health", native_enum=False, length=20
)


def upgrade() -> None:
    with op.batch_alter_table("updates") as batch:
        batch.add_column(sa.Column("health", _HEALTH, nullable=True))
    op.create_index("ix_updates_health", "updates", ["health", "goal_id"])
    op.create_table(
        "health_reactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("goal_id", sa.Integer(), nullable=False),
        sa.Column("zulip_message_id", sa.BigInteger(), nullable=False),
        sa.Column("zulip_user_id", sa.BigInteger(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("emoji_name", sa.String(length=60), nullable=False),
        sa.Column("health", _HEALTH, nullable=False),
        sa.Column("reacted_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["goal_id"],
            ["goals.id"],
            name=op.f("fk_health_reactions_goal_id_goals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_health_reactions_person_id_people"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_reactions")),
        sa.UniqueConstraint(
            "zulip_message_id",
            "zulip_user_id",
            "emoji_name",
            name=op.f("uq_health_reactions_zulip_message_id_zulip_user_id_emoji_name"),
        ),
    )


def downgrade() -> None:
    op.drop_table("health_reactions")
    op.drop_index("ix_updates_health", table_name="updates")
    with op.batch_alter_table("updates") as batch:
        batch.drop_column("health")
