"""Which goals are live: the SQL filters and the values' properties say the same of every goal."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import ColumnElement, select

from tests.dbs import new_database
from zulip_goals_bot.db.models import Goal, goal_is_listed, goal_is_prompted, goal_is_running
from zulip_goals_bot.db.queries import load_goals
from zulip_goals_bot.domain.states import GoalState
from zulip_goals_bot.domain.views import GoalView

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def test_the_sql_filters_and_the_views_agree_on_every_state(tmp_path: Path) -> None:
    db = new_database(tmp_path, "live")
    combos = list(itertools.product([True, False], list(GoalState)))
    with db.write() as s:
        for i, (active, state) in enumerate(combos):
            s.add(
                Goal(
                    period="2025h1",
                    slug=f"g{i}",
                    title=f"Goal {i}",
                    zulip_topic=f"goal {i}",
                    state=state,
                    active=active,
                    extra={},
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
    rules: list[tuple[ColumnElement[bool], str]] = [
        (goal_is_prompted(), "is_prompted"),
        (goal_is_running(), "is_running"),
        (goal_is_listed(), "is_listed"),
    ]
    with db.read() as s:
        views: list[GoalView] = load_goals(s, include_inactive=True)
        assert len(views) == len(combos)
        for where, prop in rules:
            by_sql = set(s.execute(select(Goal.slug).where(where)).scalars())
            by_view = {g.slug for g in views if getattr(g, prop)}
            assert by_sql == by_view, prop
    # What each means, so that the agreement above is not agreement on nothing.
    live = {(g.active, g.state) for g in views if g.is_listed}
    assert (True, GoalState.PAUSED) in live and (True, GoalState.RETIRED) not in live
    assert not any(g.is_running for g in views if not g.active)
    assert {g.state for g in views if g.is_prompted} == {GoalState.ACTIVE}
    db.dispose()
