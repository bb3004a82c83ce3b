"""Our own exceptions: each carries a message written for the person running the bot."""

from __future__ import annotations

from datetime import datetime


class GoalsBotError(Exception):
    """Base class; ``str(error)`` is shown to the operator as one line, without a traceback."""


class ConfigError(GoalsBotError):
    """bot.conf or zuliprc is wrong; the message names the file, the key and what was expected."""


class ZulipError(GoalsBotError):
    """The Zulip server refused a request or could not be reached."""

    def __init__(self, message: str, *, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class Stopping(GoalsBotError):
    """The bot is shutting down, so a failed call is not retried; start-up recovers its purpose."""


class UnknownPeriod(GoalsBotError):
    """``--period`` names a period no goal belongs to; the message lists the known ones."""


class StorageError(GoalsBotError):
    """The database could not store something (busy, read-only, full disk)."""


class LeaseError(GoalsBotError):
    """Another bot process already holds the sending lease on this database."""


class CommandError(Exception):
    """A request the bot cannot carry out; the message says why, for the person who asked."""


class GitHubError(GoalsBotError):
    """GitHub refused a request or could not be reached; the message says which and what to do.

    ``status`` is the HTTP status (0 when no answer came); ``retry_at`` is when GitHub said to try
    again (a rate limit), else None.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        retry_at: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_at = retry_at


class GitHubAmbiguous(GitHubError):
    """A write whose outcome is unknown (the connection broke after sending): GitHub may have
    performed it, so the caller looks before doing it again."""
