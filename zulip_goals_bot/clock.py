"""Where "now" comes from: an object every command and the bot are given, never a global.

Production runs on ``SYSTEM_CLOCK``; the sandbox injects a ``FrozenClock`` it moves with
``/advance``, and the tests' launcher (``fakezulip.launch``) one read from a file, so a test moves
time forward without the bot sleeping.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """An aware UTC datetime."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


# The real clock: what every command reads unless a caller (a test, the sandbox) injects another.
SYSTEM_CLOCK: Clock = SystemClock()


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
