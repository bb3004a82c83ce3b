"""GitHub tracking issues: comments as updates, the issues' task lists, mirrored updates

An update may now come from a GitHub comment (``github_comment_id``, ``url``, ``author_login``)
instead of a Zulip message, so ``zulip_message_id`` may be empty. ``github_issues`` keeps what the
last sync saw of each goal's tracking issue (ETags, the ids of its comments, the task list);
``github_progress`` one row per goal and day its task list changed; ``github_mirror`` the claim
and the comment of each Zulip update posted to its tracking issue.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 04:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("updates") as batch:
        batch.alter_column("zulip_message_id", existing_type=sa.BigInteger(), nullable=True)
        batch.add_column(sa.Column("github_comment_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("author_login", sa.String(length=40), nullable=True))
        batch.create_unique_constraint(op.f("uq_updates_github_comment_id"), ["github_comment_id"])
    op.create_table(
        "github_issues",
        sa.Column("goal_id", sa.Integer(), nullable=False),
        sa.Column("repository", sa.String(length=200), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=True),
        sa.Column("issue_etag", sa.Text(), nullable=True),
        sa.Column("since", sa.DateTime(), nullable=True),
        sa.Column("comments_etag", sa.Text(), nullable=True),
        sa.Column("comment_ids", sa.JSON(), nullable=False),
        sa.Column("tasks_done", sa.Integer(), nullable=False),
        sa.Column("tasks_total", sa.Integer(), nullable=False),
        sa.Column("open_tasks", sa.JSON(), nullable=False),
        sa.Column("synced_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["goal_id"],
            ["goals.id"],
            name=op.f("fk_github_issues_goal_id_goals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("goal_id", name=op.f("pk_github_issues")),
    )
    op.create_table(
        "github_progress",
        sa.Column("goal_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["goal_id"],
            ["goals.id"],
            name=op.f("fk_github_progress_goal_id_goals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("goal_id", "day", name=op.f("pk_github_progress")),
    )
    op.create_table(
        "github_mirror",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("update_id", sa.Integer(), nullable=False),
        sa.Column("repository", sa.String(length=200), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("body_hash", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["update_id"],
            ["updates.id"],
            name=op.f("fk_github_mirror_update_id_updates"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_github_mirror")),
        sa.UniqueConstraint("update_id", name=op.f("uq_github_mirror_update_id")),
    )


def downgrade() -> None:
    op.drop_table("github_mirror")
    op.drop_table("github_progress")
    op.drop_table("github_issues")
    with op.batch_alter_table("updates") as batch:
        batch.drop_constraint(op.f("uq_updates_github_comment_id"), type_="unique")
        batch.drop_column("author_login")
        batch.drop_column("url")
        batch.drop_column("github_comment_id")
        batch.alter_column("zulip_message_id", existing_type=sa.BigInteger(), nullable=False)
