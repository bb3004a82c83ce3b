"""a change stamp the database sets on every write to goals

The bot keeps the goals' names in memory for `status` and the other commands that name a goal,
and must know when they changed, also when `goals import` runs in another process. Triggers set
``change_stamps.stamp`` of ``goals`` to a new random number on every insert, update and delete.
A later migration that rebuilds ``goals`` on SQLite (Alembic's batch mode copies the table) drops
these triggers and must create them again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 01:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE_EVENTS = ("insert", "update", "delete")


def upgrade() -> None:
    op.create_table(
        "change_stamps",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("stamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_change_stamps")),
    )
    op.execute("INSERT INTO change_stamps (name, stamp) VALUES ('goals', 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION goals_change_stamp() RETURNS trigger AS $$
            BEGIN
                UPDATE change_stamps SET stamp = floor(random() * 9e18)::bigint
                WHERE name = 'goals';
                RETURN NULL;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER goals_changed AFTER INSERT OR UPDATE OR DELETE ON goals "
            "FOR EACH STATEMENT EXECUTE FUNCTION goals_change_stamp()"
        )
    else:
        for event in _SQLITE_EVENTS:
            op.execute(
                f"CREATE TRIGGER goals_changed_{event} AFTER {event.upper()} ON goals "
                "BEGIN UPDATE change_stamps SET stamp = random() WHERE name = 'goals'; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS goals_changed ON goals")
        op.execute("DROP FUNCTION IF EXISTS goals_change_stamp()")
    else:
        for event in _SQLITE_EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS goals_changed_{event}")
    op.drop_table("change_stamps")
