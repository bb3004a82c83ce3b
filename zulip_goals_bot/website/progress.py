"""The program's progress over time: the goals' task lists summed at the end of each week."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from zulip_goals_bot.domain.schedule import Period


@dataclass(frozen=True, slots=True)
class WeekProgress:
    week: str  # the week's key (its first day)
    done: int
    total: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def program_progress(
    days: Mapping[int, Sequence[tuple[date, int, int]]],
    weeks: Sequence[Period],
    now: datetime,
    tz: ZoneInfo,
) -> tuple[WeekProgress, ...]:
    """Per week, each goal's task list as it stood at the week's end (its last change on or
    before that day), summed; weeks before any goal had a task list are left out."""
    out = []
    for week in weeks:
        until = min(week.end, now).astimezone(tz).date()
        done = total = 0
        for changes in days.values():
            i = bisect_right([d for d, _done, _total in changes], until)
            if i:
                done += changes[i - 1][1]
                total += changes[i - 1][2]
        if total:
            out.append(WeekProgress(week.key, done, total))
    return tuple(out)
