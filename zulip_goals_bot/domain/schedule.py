"""When a goal is due: reporting periods, grace, reminders, local hours. Pure functions only.

Periods are a fixed grid of local wall-clock slots (e.g. every 2nd Thursday 14:00 in the program
timezone) counted from ``EPOCH``, so every process, restart and DST change agrees on the same
period boundaries.  The database, not a scheduler's job store, remembers what was sent for which
period; this module only says what *should* have happened by a given instant.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from zulip_goals_bot.domain.states import GoalState

# Monday 2024-01-01: period numbering starts here, so periods are stable across restarts.
EPOCH = date(2024, 1, 1)


@dataclass(frozen=True, slots=True)
class Slot:
    """The weekly moment prompts go out: weekday (0 = Monday) and local time in a timezone."""

    weekday: int
    at: time
    tz: ZoneInfo


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime  # aware UTC
    end: datetime  # aware UTC, exclusive
    key: str  # local date of the start, ISO: stable name used in the database

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end

    def previous(self, weeks: int, slot: Slot) -> Period:
        return period_at(self.start - timedelta(seconds=1), weeks, slot)


def _local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The instant of a local wall-clock time; a time skipped by DST moves forward, fold=0 wins."""
    local = datetime.combine(day, at, tzinfo=tz)
    # Round-trip through UTC normalizes non-existent local times (spring forward).
    return local.astimezone(UTC)


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local date and time (DST-safe, as the period boundaries)."""
    return _local_instant(day, at, tz)


def period_at(when: datetime, weeks: int, slot: Slot) -> Period:
    """The period of ``weeks`` weeks that contains ``when``."""
    if weeks < 1:
        raise ValueError("cadence must be at least one week")
    local_day = when.astimezone(slot.tz).date()
    first = EPOCH + timedelta(days=slot.weekday)
    span = 7 * weeks
    index = (local_day - first).days // span
    for k in (index + 1, index, index - 1):
        start_day = first + timedelta(days=span * k)
        start = _local_instant(start_day, slot.at, slot.tz)
        if start <= when:
            end = _local_instant(start_day + timedelta(days=span), slot.at, slot.tz)
            return Period(start=start, end=end, key=start_day.isoformat())
    raise AssertionError("unreachable: one of three candidate periods contains the instant")


class DueState(enum.StrEnum):
    """Why a goal is or is not waiting for an update; the digest and `status` show it."""

    UP_TO_DATE = "up to date"
    DUE = "due"
    OVERDUE = "overdue"
    GRACE = "in grace"
    SKIPPED = "skipped"
    AWAY = "owners away"
    NO_OWNERS = "no owner"
    PAUSED = "paused"
    COMPLETED = "completed"
    RETIRED = "retired"
    INACTIVE = "not prompted"

    @property
    def is_waiting(self) -> bool:
        return self in (DueState.DUE, DueState.OVERDUE)

    @property
    def mark(self) -> str:
        return _MARKS[self]


_MARKS = {
    DueState.UP_TO_DATE: ":check:",
    DueState.DUE: ":hourglass:",
    DueState.OVERDUE: ":warning:",
    DueState.GRACE: ":seedling:",
    DueState.SKIPPED: ":fast_forward:",
    DueState.AWAY: ":palm_tree:",
    DueState.NO_OWNERS: ":question:",
    DueState.PAUSED: ":pause:",
    DueState.COMPLETED: ":tada:",
    DueState.RETIRED: ":file_cabinet:",
    DueState.INACTIVE: ":zzz:",
}


def effective_cadence(goal_weeks: int | None, default_weeks: int) -> int:
    """A goal's weeks between prompts: its own when an admin set one, else the program's."""
    return goal_weeks or default_weeks


@dataclass(frozen=True, slots=True)
class GoalFacts:
    """What the due computation needs to know about one goal (plain data, no ORM)."""

    goal_id: int
    state: str  # GoalState value
    active: bool
    created_at: datetime
    cadence_weeks: int
    last_update_at: datetime | None
    owners_total: int  # mapped and unmapped
    owners_reachable: int  # mapped to Zulip and not away
    skipped_periods: frozenset[str] = frozenset()


def due_state(facts: GoalFacts, now: datetime, slot: Slot, grace_days: int) -> DueState:
    if facts.state == GoalState.PAUSED:
        return DueState.PAUSED
    if facts.state == GoalState.COMPLETED:
        return DueState.COMPLETED
    if facts.state == GoalState.RETIRED:
        return DueState.RETIRED
    if not facts.active:
        return DueState.INACTIVE
    period = period_at(now, facts.cadence_weeks, slot)
    last = facts.last_update_at
    if last is not None and last >= period.start:
        return DueState.UP_TO_DATE
    if period.key in facts.skipped_periods:
        return DueState.SKIPPED
    grace_end = facts.created_at + timedelta(days=grace_days)
    # A new goal is first due in the first period that starts after its grace: becoming due
    # mid-period would ask its owners now and again at the next period start, days later.
    if period.start < grace_end:
        return DueState.GRACE
    if facts.owners_total == 0:
        return DueState.NO_OWNERS
    if facts.owners_reachable == 0:
        return DueState.AWAY
    previous = period.previous(facts.cadence_weeks, slot)
    if (
        grace_end <= previous.start
        and (last is None or last < previous.start)
        and previous.key not in facts.skipped_periods
    ):
        return DueState.OVERDUE
    return DueState.DUE


def reminder_time(period: Period, prompted_at: datetime, reminder_days: int) -> datetime | None:
    """When the one reminder of a period goes out, or None if it would fall after the period."""
    when = max(period.start, prompted_at) + timedelta(days=reminder_days)
    return when if when < period.end else None


def local_send_time(period: Period, hour: int, tz: ZoneInfo) -> datetime:
    """The first ``hour`` o'clock in ``tz`` at or after the period start (an owner's DM time)."""
    local_start = period.start.astimezone(tz)
    candidate = _local_instant(local_start.date(), time(hour), tz)
    if candidate < period.start:
        candidate = _local_instant(local_start.date() + timedelta(days=1), time(hour), tz)
    return candidate


def next_prompt(now: datetime, weeks: int, slot: Slot) -> datetime:
    return period_at(now, weeks, slot).end


def zone(name: str | None, fallback: ZoneInfo) -> ZoneInfo:
    """An owner's Zulip timezone, or the program's when it is empty or unknown."""
    if not name:
        return fallback
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return fallback
