"""What ``run`` reads at start-up, read narrowly: the set-up checks' goal outlines judge every
goal as its full view does, and syncing the realm's users writes only what changed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from tests.dbs import new_database
from tests.support import add_goal
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Goal, GoalOwner, Person, Skip, Update
from zulip_goals_bot.db.queries import load_goals, load_outlines
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.states import GoalState, OwnerRole, UpdateKind
from zulip_goals_bot.people.accounts import sync_users

NOW = datetime(2026, 3, 12, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = new_database(tmp_path)
    yield database
    database.dispose()


def test_outlines_are_judged_as_the_full_views_are(db: Database) -> None:
    """Every listed goal, in the same order, with the same owners, latest update and skips:
    the schedule judges an outline exactly as it judges the goal's view."""
    fresh = add_goal(db, "fresh", "Fresh goal", [(11, "a@example.com", "Ada")])
    stale = add_goal(db, "stale", "Stale goal", [(12, "b@example.com", "Ben")])
    skipped = add_goal(db, "skipped", "Skipped goal", [(13, "c@example.com", "Cy")])
    add_goal(db, "ownerless", "Ownerless goal")
    add_goal(db, "unmapped", "Unmapped goal", github=["someone"])
    paused = add_goal(db, "paused", "Paused goal", [(11, "a@example.com", "Ada")])
    retired = add_goal(db, "retired", "Retired goal", [(12, "b@example.com", "Ben")])
    with db.write() as s:
        ada = s.execute(select(Person).where(Person.zulip_user_id == 11)).scalar_one()
        ben = s.execute(select(Person).where(Person.zulip_user_id == 12)).scalar_one()
        ben.away_until = date(2026, 4, 1)
        # A task owner beside the point of contact: only the point of contact is asked.
        s.add(GoalOwner(goal_id=fresh.id, person_id=ben.id, role=OwnerRole.TASK, position=1))
        for goal_id, kind, deleted, days_ago in (
            (fresh.id, UpdateKind.UPDATE, False, 2),
            (fresh.id, UpdateKind.UPDATE, False, 30),
            (stale.id, UpdateKind.UPDATE, False, 40),
            (stale.id, UpdateKind.UPDATE, True, 1),  # deleted: not the latest
            (stale.id, UpdateKind.COMMENT, False, 1),  # a comment: not an update
        ):
            s.add(
                Update(
                    goal_id=goal_id,
                    author_id=ada.id,
                    kind=kind,
                    deleted=deleted,
                    content="news",
                    sent_at=NOW - timedelta(days=days_ago),
                )
            )
        s.add(Skip(goal_id=skipped.id, period="2026-03-05", person_id=ada.id, created_at=NOW))
        s.get_one(Goal, paused.id).state = GoalState.PAUSED
        s.get_one(Goal, retired.id).state = GoalState.RETIRED
    with db.read() as s:
        views = load_goals(s)
        outlines = load_outlines(s)
    program = Program.default()
    today = program.today(NOW)
    assert [o.slug for o in outlines] == [v.slug for v in views]
    assert "retired" not in {o.slug for o in outlines}
    for view, outline in zip(views, outlines, strict=True):
        assert (outline.id, outline.name, outline.owners) == (view.id, view.name, view.owners)
        assert outline.prompted_owners() == view.prompted_owners()
        assert outline.facts(2, today) == view.facts(2, today)
        assert program.state(outline, NOW) is program.state(view, NOW)
    by_slug = {o.slug: o for o in outlines}
    assert by_slug["stale"].last_update_at == NOW - timedelta(days=40)
    assert by_slug["skipped"].skipped_periods == frozenset({"2026-03-05"})


def test_no_goals_no_outlines(db: Database) -> None:
    with db.read() as s:
        assert load_outlines(s) == []


def _member(user_id: int, **details: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "email": f"user{user_id}@example.com",
        "full_name": f"User {user_id}",
        "timezone": "Europe/Berlin",
        "is_active": True,
        "is_bot": False,
        "role": 400,
        **details,
    }


def _people(db: Database) -> dict[int | None, tuple[Any, ...]]:
    with db.read() as s:
        rows = s.execute(
            select(
                Person.zulip_user_id,
                Person.email,
                Person.full_name,
                Person.timezone,
                Person.is_active,
                Person.is_bot,
                Person.is_admin,
            )
        )
        return {uid: tuple(rest) for uid, *rest in rows}


def test_syncing_users_adds_the_new_and_writes_only_what_changed(db: Database) -> None:
    with db.write() as s:
        sync_users(s, [_member(1), _member(2), _member(3)], NOW)
    writes: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "INSERT")):
            writes.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.write() as s:
            sync_users(s, [_member(1), _member(2), _member(3)], NOW)
        assert writes == []  # nothing changed: nothing written
        with db.write() as s:
            sync_users(
                s,
                [
                    _member(1, full_name="Renamed", role=200),
                    _member(2, email="", timezone="", is_active=False),  # keeps its email
                    _member(3),
                    _member(4, is_bot=True),
                ],
                NOW,
            )
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(writes) == 2  # one UPDATE for both changed users, one INSERT
    assert _people(db) == {
        1: ("user1@example.com", "Renamed", "Europe/Berlin", True, False, True),
        2: ("user2@example.com", "User 2", None, False, False, False),
        3: ("user3@example.com", "User 3", "Europe/Berlin", True, False, False),
        4: ("user4@example.com", "User 4", "Europe/Berlin", True, True, False),
    }
