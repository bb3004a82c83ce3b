"""goal highlights, summaries, roadmaps, champions and periods

Later goal folders name a highlight, a one-line "What and why", roadmaps and team champions;
a goal that continues into a new period remembers the periods it was part of, and one that
ended records which import ended it.  Digest subscriptions get a scope (all, or the goals the
subscriber champions); existing subscriptions keep the whole digest.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 23:53:56
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import zulip_goals_bot.db.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "roadmaps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=40), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("short_title", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("owners", sa.Text(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=True),
        sa.Column("created_at", zulip_goals_bot.db.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", zulip_goals_bot.db.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roadmaps")),
        sa.UniqueConstraint("period", "slug", name=op.f("uq_roadmaps_period_slug")),
    )
    op.create_table(
        "goal_champions",
        sa.Column("goal_id", sa.Integer(), nullable=False),
        sa.Column("team", sa.String(length=100), nullable=False),
        sa.Column("github", sa.String(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["goal_id"],
            ["goals.id"],
            name=op.f("fk_goal_champions_goal_id_goals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("goal_id", "team", "github", name=op.f("pk_goal_champions")),
    )
    with op.batch_alter_table("goal_champions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_goal_champions_github"), ["github"], unique=False)

    op.create_table(
        "goal_past_periods",
        sa.Column("goal_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=40), nullable=False),
        sa.Column("slug", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["goal_id"],
            ["goals.id"],
            name=op.f("fk_goal_past_periods_goal_id_goals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("goal_id", "period", name=op.f("pk_goal_past_periods")),
    )
    with op.batch_alter_table("digest_subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scope", sa.String(length=20), server_default="all", nullable=False)
        )

    with op.batch_alter_table("goals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("highlight", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("summary", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("roadmaps", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("ended_in", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("goals", schema=None) as batch_op:
        batch_op.drop_column("ended_in")
        batch_op.drop_column("roadmaps")
        batch_op.drop_column("summary")
        batch_op.drop_column("highlight")

    with op.batch_alter_table("digest_subscriptions", schema=None) as batch_op:
        batch_op.drop_column("scope")

    op.drop_table("goal_past_periods")
    with op.batch_alter_table("goal_champions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_goal_champions_github"))

    op.drop_table("goal_champions")
    op.drop_table("roadmaps")
