"""Where "now" comes from: the real clock, or one that tests and the sandbox move by hand.

A subprocess bot can be given a controllable clock through ``ZULIP_GOALS_BOT_CLOCK_FILE``: the file
holds an ISO 8601 instant (or is absent for the real clock) and is re-read on every call, so a test
or the sandbox can move time forward without the bot sleeping.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

CLOCK_FILE_ENV = "ZULIP_GOALS_BOT_CLOCK_FILE"


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware UTC datetime."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to; thread-safe because the bot and tests share it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def timestamp(self) -> float:
        return self.now().timestamp()


class FileClock:
    """Reads the current instant from a file; falls back to the system clock when it is missing."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def now(self) -> datetime:
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return datetime.now(UTC)
        if not text:
            return datetime.now(UTC)
        when = datetime.fromisoformat(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.astimezone(UTC)

    def set(self, when: datetime) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(when.astimezone(UTC).isoformat(), encoding="utf-8")
        tmp.replace(self.path)


def default_clock() -> Clock:
    path = os.environ.get(CLOCK_FILE_ENV)
    if path:
        return FileClock(Path(path))
    return SystemClock()
