"""What the website is made from, as plain values: the pages are composed from these alone.

``website.data`` reads them from the database; tests and the pages never need a session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

from zulip_goals_bot.domain.states import UpdateSource
from zulip_goals_bot.domain.views import GoalView
from zulip_goals_bot.errors import GoalsBotError


class SiteError(GoalsBotError):
    """Bad input to the website commands (a period, a folder); explained, nothing written."""


class SiteUpdate(NamedTuple):
    """One owner update as the website shows it.

    A named tuple made straight from a database row (the columns of ``_UPDATE_COLUMNS``, in
    order): a program has 100,000 updates, and building dataclasses from named row access costs
    as much as reading them.
    """

    message_id: int | None  # None for an update written on GitHub
    goal_id: int
    author_name: str | None
    author_github: str | None
    content: str
    tldr: str | None
    help_wanted: str | None
    sent_at: datetime
    edited_at: datetime | None
    source: str
    url: str | None  # the GitHub comment, for an update written there
    author_login: str | None  # its GitHub author, when nobody linked them to Zulip
    update_id: int

    @property
    def author(self) -> str | None:
        """Full name, else @github handle."""
        if self.author_name:
            return self.author_name
        handle = self.author_github or self.author_login
        return f"@{handle}" if handle else None

    @property
    def ident(self) -> str:
        """The update's anchor on its goal's page (stable across builds)."""
        if self.message_id is not None:
            return f"update-{self.message_id}"
        return f"comment-{self.update_id}"

    @property
    def on_github(self) -> bool:
        return self.source == UpdateSource.GITHUB.value

    @property
    def in_topic(self) -> bool:
        """Posted in the goal's topic, so a link to it in Zulip shows it to readers."""
        return self.source == UpdateSource.TOPIC.value

    @property
    def changed_at(self) -> datetime:
        return self.edited_at or self.sent_at


@dataclass(frozen=True, slots=True)
class SiteData:
    """One period's goals and updates; updates are newest first per goal."""

    period: str
    goals: tuple[GoalView, ...]
    updates: Mapping[int, tuple[SiteUpdate, ...]]
    extra: Mapping[int, Mapping[str, str]]  # metadata rows the goal file had beyond the known
    modified: Mapping[int, datetime]  # when each goal's record last changed
    # Each goal's task list on the days it changed (GitHub sync): (day, done, total), oldest first.
    progress_days: Mapping[int, tuple[tuple[date, int, int], ...]] = field(default_factory=dict)

    def updates_of(self, goal_id: int) -> tuple[SiteUpdate, ...]:
        return self.updates.get(goal_id, ())
