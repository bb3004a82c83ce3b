"""Period arithmetic: stable boundaries, local wall-clock slots across DST, due states."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zulip_goals_bot.domain.schedule import (
    DueState,
    GoalFacts,
    Slot,
    due_state,
    local_send_time,
    period_at,
    reminder_time,
)

THURSDAY_14_UTC = Slot(weekday=3, at=time(14, 0), tz=ZoneInfo("UTC"))


def facts(**kw: object) -> GoalFacts:
    base: dict[str, object] = {
        "goal_id": 1,
        "state": "active",
        "active": True,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "cadence_weeks": 1,
        "last_update_at": None,
        "owners_total": 1,
        "owners_reachable": 1,
    }
    base.update(kw)
    return GoalFacts(**base)  # type: ignore[arg-type]


def test_weekly_period_starts_on_the_slot() -> None:
    p = period_at(datetime(2026, 11, 25, 12, 0, tzinfo=UTC), 1, THURSDAY_14_UTC)  # a Wednesday
    assert p.start == datetime(2026, 11, 19, 14, 0, tzinfo=UTC)
    assert p.end == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    assert p.key == "2026-11-19"
    exactly = period_at(datetime(2026, 11, 26, 14, 0, tzinfo=UTC), 1, THURSDAY_14_UTC)
    assert exactly.key == "2026-11-26"


@given(st.datetimes(min_value=datetime(2024, 2, 1), max_value=datetime(2035, 1, 1)),
       st.sampled_from([1, 2, 4]),
       st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]))  # fmt: skip
def test_periods_tile_time_without_gaps(naive: datetime, weeks: int, tz: str) -> None:
    slot = Slot(weekday=3, at=time(14, 0), tz=ZoneInfo(tz))
    when = naive.replace(tzinfo=UTC)
    p = period_at(when, weeks, slot)
    assert p.contains(when)
    assert period_at(p.end, weeks, slot).start == p.end
    assert p.start.astimezone(slot.tz).time() == time(14, 0)
    assert timedelta(days=7 * weeks) - timedelta(hours=1) <= p.end - p.start
    assert p.end - p.start <= timedelta(days=7 * weeks) + timedelta(hours=1)


@pytest.mark.parametrize(
    ("tz", "week_start"),
    [("Europe/Berlin", datetime(2026, 10, 22, tzinfo=UTC)),
     ("America/New_York", datetime(2026, 10, 29, tzinfo=UTC)),
     ("Europe/Berlin", datetime(2026, 3, 26, tzinfo=UTC))],
)  # fmt: skip
def test_dst_weeks_keep_local_time_and_one_period_per_week(tz: str, week_start: datetime) -> None:
    slot = Slot(weekday=3, at=time(14, 0), tz=ZoneInfo(tz))
    keys = set()
    hour = week_start
    while hour < week_start + timedelta(days=15):
        p = period_at(hour, 1, slot)
        keys.add(p.key)
        assert p.start.astimezone(slot.tz).hour == 14
        hour += timedelta(hours=1)
    days = sorted(datetime.fromisoformat(k).date() for k in keys)
    # One period per week: consecutive keys exactly a week apart, none missing, none doubled.
    assert all(b - a == timedelta(days=7) for a, b in pairwise(days))
    assert len(days) == 4  # the week before, then the three Thursdays in the 15 days


def test_due_states() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # period started 2026-11-19 14:00
    assert due_state(facts(), now, THURSDAY_14_UTC, 7) is DueState.OVERDUE
    last_week = datetime(2026, 11, 15, tzinfo=UTC)
    assert due_state(facts(last_update_at=last_week), now, THURSDAY_14_UTC, 7) is DueState.DUE
    fresh = datetime(2026, 11, 20, tzinfo=UTC)
    assert due_state(facts(last_update_at=fresh), now, THURSDAY_14_UTC, 7) is DueState.UP_TO_DATE
    new_goal = facts(created_at=now - timedelta(days=2))
    assert due_state(new_goal, now, THURSDAY_14_UTC, 7) is DueState.GRACE
    assert due_state(facts(state="paused"), now, THURSDAY_14_UTC, 7) is DueState.PAUSED
    assert due_state(facts(owners_reachable=0), now, THURSDAY_14_UTC, 7) is DueState.AWAY
    assert due_state(facts(owners_total=0), now, THURSDAY_14_UTC, 7) is DueState.NO_OWNERS
    skipped = facts(skipped_periods=frozenset({"2026-11-19"}))
    assert due_state(skipped, now, THURSDAY_14_UTC, 7) is DueState.SKIPPED
    assert due_state(facts(active=False), now, THURSDAY_14_UTC, 7) is DueState.INACTIVE


def test_reminder_and_local_send_time() -> None:
    p = period_at(datetime(2026, 11, 20, tzinfo=UTC), 1, THURSDAY_14_UTC)
    assert reminder_time(p, p.start, 3) == p.start + timedelta(days=3)
    assert reminder_time(p, p.start + timedelta(days=5), 3) is None
    tokyo = local_send_time(p, 10, ZoneInfo("Asia/Tokyo"))
    assert tokyo >= p.start
    assert tokyo.astimezone(ZoneInfo("Asia/Tokyo")).hour == 10
    assert tokyo - p.start < timedelta(days=1)
    berlin = local_send_time(p, 16, ZoneInfo("Europe/Berlin"))
    assert berlin == datetime(2026, 11, 19, 15, 0, tzinfo=UTC)


def test_a_period_holds_its_first_instant_and_not_its_end() -> None:
    """An update posted at the very second of the prompt counts for the new period."""
    period = period_at(datetime(2026, 3, 5, 14, 0, tzinfo=UTC), 1, THURSDAY_14_UTC)
    assert period.start == datetime(2026, 3, 5, 14, 0, tzinfo=UTC)
    assert period.contains(period.start)
    assert not period.contains(period.end)
    assert period.contains(period.end - timedelta(microseconds=1))


@pytest.mark.parametrize(
    ("state", "expected"),
    [("paused", DueState.PAUSED), ("completed", DueState.COMPLETED), ("retired", DueState.RETIRED)],
)
def test_goals_that_are_not_running_are_never_due(state: str, expected: DueState) -> None:
    now = datetime(2026, 3, 20, 12, tzinfo=UTC)
    assert due_state(facts(state=state), now, THURSDAY_14_UTC, grace_days=0) is expected
    assert due_state(facts(), now, THURSDAY_14_UTC, grace_days=0) is not expected
