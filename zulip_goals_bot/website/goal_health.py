"""The owners' own call of how each goal is going, as the website shows it: a badge per goal, a
strip of the goal's reporting periods, and the program's calls at the end of each week.

A goal's health is the latest call its owners made (``domain.health``); a goal that never made
one shows that it has none, and nothing here guesses one.  A period's (or a week's) health is
the one standing at its end, as ``GoalHealth.at_each`` says for every goal and week of a
build; each goal's periods come from ``Program.health_periods``, worked out once per cadence.
Pure functions over plain values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from zulip_goals_bot.domain.health import GoalHealth, Health
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.schedule import Period
from zulip_goals_bot.domain.views import GoalView

# What a goal whose owners never gave a health shows instead of one.
NO_HEALTH = "no health yet"
# The key of such goals in goals.json's weekly counts (beside the health values).
NOT_SAID = "not-said"
# The order in which the health states are listed, counted and stacked in the chart.
ORDER: tuple[Health, ...] = (Health.ON_TRACK, Health.AT_RISK, Health.BLOCKED, Health.DONE)


def label(state: Health | None) -> str:
    """A health as readers see it: "on track", ..., or ``NO_HEALTH``."""
    return state.label if state is not None else NO_HEALTH


def css_class(state: Health | None) -> str:
    """The class that colours a health: ``health-at-risk``, ..., ``health-none``."""
    return f"health-{state.value}" if state is not None else "health-none"


def key(state: Health | None) -> str:
    """A health as goals.json counts it: its value, or ``NOT_SAID``."""
    return state.value if state is not None else NOT_SAID


def states_at(health: GoalHealth | None, instants: Sequence[datetime]) -> tuple[Health | None, ...]:
    """The health standing at each instant (the latest call made before it), as
    ``GoalHealth.at`` gives it; None before the first call and for a goal that never said."""
    if health is None:
        return (None,) * len(instants)
    return health.at_each(instants)


@dataclass(frozen=True, slots=True)
class HealthCell:
    """One reporting period of a goal's health strip."""

    period: Period
    state: Health | None  # the health at the period's end (now, for the current one)
    current: bool  # the period still running

    @property
    def title(self) -> str:
        """``period of 2025-03-06: at risk``; the period still running says so."""
        now = " (now)" if self.current else ""
        return f"period of {self.period.key}{now}: {label(self.state)}"


def first_instant(goal: GoalView) -> datetime:
    """Where a goal's health strip starts: its first call, or its creation if that is earlier
    (as ``Program.health_periods`` starts it)."""
    if goal.health is None:
        return goal.created_at
    return min(goal.health.calls[0].said_at, goal.created_at)


def goal_periods(
    goals: Sequence[GoalView], program: Program, now: datetime
) -> dict[int, tuple[Period, ...]]:
    """``Program.health_periods`` of every goal, asking the program once per cadence.

    The periods of one cadence are one grid: each goal's are those of the longest list (from
    the earliest start among the goals of its cadence) that end after its own start, which is
    what ``Program.periods`` returns for it, capped at the same number of periods.
    """
    by_cadence: dict[int, list[GoalView]] = {}
    for g in goals:
        by_cadence.setdefault(program.cadence(g), []).append(g)
    out: dict[int, tuple[Period, ...]] = {}
    for group in by_cadence.values():
        earliest = min(group, key=first_instant)
        grid = program.health_periods(earliest, now)
        for g in group:
            start = first_instant(g)
            out[g.id] = tuple(p for p in grid if p.end > start) or grid[-1:]
    return out


def strip(goal: GoalView, periods: Sequence[Period], now: datetime) -> tuple[HealthCell, ...]:
    """A cell per period, oldest first, with the health at its end."""
    states = states_at(goal.health, [p.end for p in periods])
    return tuple(
        HealthCell(period=p, state=s, current=p.contains(now))
        for p, s in zip(periods, states, strict=True)
    )


@dataclass(frozen=True, slots=True)
class WeekCalls:
    """One week of the program: how many goals stood at each health at its end."""

    week: Period
    counts: Mapping[str, int]  # ``key(state)`` -> goals, for every state in ORDER and NOT_SAID

    @property
    def goals(self) -> int:
        return sum(self.counts.values())

    def count(self, state: Health | None) -> int:
        return self.counts[key(state)]


def program_weeks(goals: Sequence[GoalView], weeks: Sequence[Period]) -> tuple[WeekCalls, ...]:
    """Per week, the goals at each health at its end; a goal counts from the week it existed
    (or made its first call) by the end of, as "not said" until its first call."""
    ends = [w.end for w in weeks]
    counts = [dict.fromkeys([*(s.value for s in ORDER), NOT_SAID], 0) for _ in weeks]
    for g in goals:
        for i, state in enumerate(states_at(g.health, ends)):
            if state is None and g.created_at >= ends[i]:
                continue  # not created yet
            counts[i][key(state)] += 1
    return tuple(WeekCalls(week=w, counts=c) for w, c in zip(weeks, counts, strict=True))
