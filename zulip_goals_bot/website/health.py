"""Where each goal stands, now and week by week: the website's badges, charts and strips.

The state of a goal is the bot's own rule, asked of the ``Program`` as the digest asks it; this
module only chooses the instants.  Weeks are the prompt slot's
weekly grid (``schedule.period_at`` with one-week cells), so a week starts when prompts go out.
A past week's state is the one the goal had at the end of that week, given the updates it had by
then; paused and completed goals and owners who are away count as they are today (the database
keeps no history of them).  The owners' own calls (on track, at risk, ...) are counted on the same
weeks, and strung along each goal's reporting periods, by ``goal_health``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.schedule import DueState, Period, period_at
from zulip_goals_bot.website.content import SiteData
from zulip_goals_bot.website.goal_health import (
    HealthCell,
    WeekCalls,
    goal_periods,
    program_weeks,
    strip,
)

# The chart and the strips show at most this many weeks, the latest: half a year, the length of
# a Rust goals period, keeps the chart readable.
MAX_WEEKS = 26
# A week's state is taken just before it ends.
_JUST_BEFORE = timedelta(microseconds=1)


def this_week(now: datetime, program: Program) -> Period:
    return period_at(now, 1, program.slot)


def weeks(
    first: datetime, now: datetime, program: Program, limit: int = MAX_WEEKS
) -> tuple[Period, ...]:
    """The weeks from the one holding ``first`` to the current one, at most ``limit``, oldest
    first."""
    out = [this_week(now, program)]
    while len(out) < limit and out[-1].start > first:
        out.append(out[-1].previous(1, program.slot))
    return tuple(reversed(out))


@dataclass(frozen=True, slots=True)
class WeekHealth:
    """One week of the program: how many goals were updated, and how many waited at its end."""

    week: Period
    goals: int  # goals that existed by the end of the week
    updated: int
    due: int
    overdue: int


@dataclass(frozen=True, slots=True)
class Health:
    """Everything time-dependent the site shows, computed once per build."""

    now: datetime
    weeks: tuple[Period, ...]
    states: Mapping[int, DueState]  # goal id -> state now
    activity: Mapping[int, tuple[int, ...]]  # goal id -> updates per week, oldest week first
    program: tuple[WeekHealth, ...]
    # The owners' calls: each goal's health per reporting period, the program's per week.
    cells: Mapping[int, tuple[HealthCell, ...]]
    calls: tuple[WeekCalls, ...]  # aligned with ``weeks``

    @property
    def week(self) -> Period:
        return self.weeks[-1]


def compute_health(data: SiteData, now: datetime, program: Program) -> Health:
    """States now, updates per week and per goal, and the program's weekly health."""
    firsts = [g.created_at for g in data.goals]
    firsts += [ups[-1].sent_at for ups in data.updates.values() if ups]
    grid = weeks(min(firsts, default=now), now, program)
    starts = [w.start for w in grid]
    ends = [min(w.end - _JUST_BEFORE, now) for w in grid]
    states: dict[int, DueState] = {}
    activity: dict[int, tuple[int, ...]] = {}
    updated = [0] * len(grid)
    waiting = {DueState.DUE: [0] * len(grid), DueState.OVERDUE: [0] * len(grid)}
    existing = [0] * len(grid)
    for goal in data.goals:
        states[goal.id] = program.state(goal, now)
        times = sorted(u.sent_at for u in data.updates_of(goal.id))
        activity[goal.id] = _per_week(times, starts, grid[-1].end)
        for i, count in enumerate(activity[goal.id]):
            updated[i] += count > 0
        for i, at in enumerate(ends):
            if goal.created_at > at:
                continue
            existing[i] += 1
            last = bisect_right(times, at)
            state = program.state_then(goal, now, at, times[last - 1] if last else None)
            if state in waiting:
                waiting[state][i] += 1
    weekly = tuple(
        WeekHealth(
            week=w,
            goals=existing[i],
            updated=updated[i],
            due=waiting[DueState.DUE][i],
            overdue=waiting[DueState.OVERDUE][i],
        )
        for i, w in enumerate(grid)
    )
    periods = goal_periods(data.goals, program, now)
    return Health(
        now=now,
        weeks=grid,
        states=states,
        activity=activity,
        program=weekly,
        cells={g.id: strip(g, periods[g.id], now) for g in data.goals},
        calls=program_weeks(data.goals, grid),
    )


def _per_week(
    times: Sequence[datetime], starts: Sequence[datetime], end: datetime
) -> tuple[int, ...]:
    """How many of the sorted ``times`` fall in each week (weeks given by their starts)."""
    bounds = [bisect_left(times, s) for s in starts] + [bisect_left(times, end)]
    return tuple(bounds[i + 1] - bounds[i] for i in range(len(starts)))
