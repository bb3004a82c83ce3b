"""The sandbox's clock in words: reading ``/advance 3d`` and ``--start``, printing times, and
the instants an advance stops at (pure functions)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from zulip_goals_bot.errors import GoalsBotError

# Skipped time is replayed in steps of this size (every schedule the sandbox uses is on the hour),
# so a prompt, a DM at an owner's local hour or a reminder goes out at its own time.
TICK_STEP = timedelta(hours=1)


def format_time(when: datetime) -> str:
    """``Thu 2025-03-06 14:00 UTC``: the clock as the sandbox prints it everywhere."""
    return when.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M UTC")


def format_delta(delta: timedelta) -> str:
    """``3d 4h``, ``30m``: a forward move of the clock, compactly."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (mins, "m")) if n]
    return " ".join(parts) or "0m"


_DURATION = re.compile(r"(\d+)\s*([wdhm])")
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1)}


def parse_duration(text: str) -> timedelta:
    """``3d``, ``12h``, ``30m``, ``1w`` or combinations like ``1d12h``; ValueError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise ValueError("the duration is missing")
    total = timedelta()
    pos = 0
    for m in _DURATION.finditer(compact):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _UNITS.get(m.group(2), timedelta(minutes=1))
        pos = m.end()
    if pos != len(compact):
        raise ValueError(f"{text.strip()!r} is not a duration")
    return total


def parse_start(text: str | None, now: datetime) -> datetime:
    """``--start``: an ISO 8601 date or date-time (UTC unless it says otherwise), else ``now``.

    Seconds are dropped, so that every time the sandbox prints is a whole minute.
    """
    if text is None:
        when = now
    else:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError as exc:
            raise GoalsBotError(
                f"--start {text!r} is not a date-time like 2025-03-03T10:00 (ISO 8601, UTC "
                "unless it has an offset)"
            ) from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(second=0, microsecond=0)


def hour_steps(start: datetime, end: datetime, step: timedelta = TICK_STEP) -> list[datetime]:
    """The instants to tick at when the clock moves from ``start`` to ``end``: every whole
    ``step`` boundary after ``start``, then ``end`` itself."""
    seconds = int(step.total_seconds())
    first = datetime.fromtimestamp((int(start.timestamp()) // seconds + 1) * seconds, UTC)
    out = []
    t = first
    while t < end:
        out.append(t)
        t += step
    out.append(end)
    return out
