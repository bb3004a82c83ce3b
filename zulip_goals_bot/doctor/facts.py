"""What the doctor knows about an install, as plain data: the files, what Zulip said, the
database.  ``gather`` reads them; the checks only look at them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zulip_goals_bot.domain.views import GoalOutline

if TYPE_CHECKING:
    from zulip_goals_bot.config import Config


@dataclass(frozen=True, slots=True)
class FileFacts:
    """bot.conf and the zuliprc as found on disk."""

    config_path: Path
    config_error: str | None = None
    zuliprc_path: Path | None = None
    zuliprc_error: str | None = None
    zuliprc_mode: int | None = None  # permission bits; None when the credentials come from env
    credentials_from_env: bool = False


@dataclass(frozen=True, slots=True)
class ZulipFacts:
    """What the server said; ``unread`` names what could not be read (and why)."""

    site: str
    error: str | None = None  # the server could not be reached or refused the credentials
    refused: bool = False  # the credentials were refused (rather than the server unreachable)
    me: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""
    feature_level: int | None = None
    server_time: datetime | None = None
    members: tuple[Mapping[str, Any], ...] = ()
    streams: tuple[Mapping[str, Any], ...] = ()  # every stream the bot can see
    subscribed: frozenset[int] = frozenset()  # stream ids the bot is subscribed to
    stream_members: Mapping[int, frozenset[int]] = field(default_factory=dict)
    realm: Mapping[str, Any] = field(default_factory=dict)  # realm_* settings
    custom_emoji: tuple[Mapping[str, Any], ...] = ()
    ack_renders: bool | None = None  # ":ack_emoji:" renders as an emoji on this server
    profile_fields: tuple[Mapping[str, Any], ...] = ()
    unread: Mapping[str, str] = field(default_factory=dict)

    def stream(self, name: str) -> Mapping[str, Any] | None:
        key = name.casefold()
        return next((s for s in self.streams if str(s.get("name", "")).casefold() == key), None)

    def member(self, user_id: int | None) -> Mapping[str, Any] | None:
        return next((m for m in self.members if m.get("user_id") == user_id), None)


@dataclass(frozen=True, slots=True)
class DbFacts:
    """The database: reachable, at which migration, and the goals it tracks."""

    where: str  # the URL without its password
    error: str | None = None
    missing_file: bool = False  # SQLite file not created yet (doctor does not create it)
    current: str | None = None
    head: str | None = None
    goals: tuple[GoalOutline, ...] = ()
    goals_error: str | None = None
    # What the bot's last GitHub syncs recorded per goal: (slug, when, why it failed or None).
    github_syncs: tuple[tuple[str, datetime | None, str | None], ...] = ()


@dataclass(frozen=True, slots=True)
class IssueFacts:
    """One goal's tracking issue as GitHub answered it (``error`` None: readable)."""

    slug: str
    ref: str  # owner/name#N
    error: str | None = None
    status: int = 200


@dataclass(frozen=True, slots=True)
class GitHubFacts:
    """What GitHub said about the token, the repository and the goals' tracking issues."""

    repository: str
    auth: str  # "token" or "GitHub App"
    credentials_error: str | None = None  # no token, unreadable key file, too-open mode
    error: str | None = None  # GitHub unreachable, or the token refused
    refused: bool = False
    repo_error: str | None = None
    can_push: bool | None = None  # the repository's ``permissions.push`` for these credentials
    issues: tuple[IssueFacts, ...] = ()
    rate_remaining: int | None = None
    rate_limit: int | None = None
    rate_reset: datetime | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    files: FileFacts
    now: datetime
    config: Config | None = None
    zulip: ZulipFacts | None = None
    db: DbFacts | None = None
    github: GitHubFacts | None = None
