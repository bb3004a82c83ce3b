"""A clock a test moves by hand across processes: an ISO 8601 instant in a file.

The bot under test runs as a subprocess started by ``fakezulip.launch``, which injects this clock
into the command line when ``ZULIP_GOALS_BOT_CLOCK_FILE`` names a file. The file is re-read on
every call, so a test moves time forward without the bot sleeping; production code never reads
it (its clock is injected, the real one by default).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

CLOCK_FILE_ENV = "ZULIP_GOALS_BOT_CLOCK_FILE"


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
