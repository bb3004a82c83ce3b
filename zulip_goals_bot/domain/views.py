"""Immutable views of goals, people, updates and roadmaps: the values the core works on.

``db.queries`` loads them in a fixed number of statements; everything that decides or renders
takes them as plain values, with no session behind them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from zulip_goals_bot.domain.health import GoalHealth
from zulip_goals_bot.domain.markdown import ZulipUser, message_link
from zulip_goals_bot.domain.progress import Progress
from zulip_goals_bot.domain.schedule import GoalFacts, effective_cadence
from zulip_goals_bot.domain.states import (
    GoalState,
    OwnerRole,
    UpdateKind,
    UpdateSource,
    is_listed,
    is_prompted,
    is_running,
)


class OwnerContact(enum.StrEnum):
    """Whether the bot can reach an owner, and if not, why (the digest lists the others)."""

    REACHABLE = "reachable"
    MISSING_ZULIP_ID = "no Zulip account mapped"
    AWAY = "away"
    DEACTIVATED = "deactivated"


@dataclass(frozen=True, slots=True)
class PersonView:
    person_id: int
    zulip_user_id: int | None
    full_name: str | None
    email: str | None
    github: str | None
    timezone: str | None
    away_until: date | None
    is_active: bool

    @property
    def user(self) -> ZulipUser | None:
        if self.zulip_user_id is None:
            return None
        return ZulipUser(self.zulip_user_id, self.full_name or self.email or "user")

    @property
    def display(self) -> str:
        """A name to print without pinging: full name, else @github handle."""
        if self.full_name:
            return self.full_name
        if self.github:
            return f"@{self.github}"
        return self.email or f"person {self.person_id}"

    def silent(self) -> str:
        """A silent mention when we know the Zulip account, else the plain display name."""
        user = self.user
        return user.mention(silent=True) if user is not None else self.display

    def contact(self, today: date) -> OwnerContact:
        if self.zulip_user_id is None:
            return OwnerContact.MISSING_ZULIP_ID
        if not self.is_active:
            return OwnerContact.DEACTIVATED
        if self.away_until is not None and self.away_until >= today:
            return OwnerContact.AWAY
        return OwnerContact.REACHABLE


@dataclass(frozen=True, slots=True)
class OwnerView:
    person: PersonView
    role: OwnerRole


@dataclass(frozen=True, slots=True)
class ChampionView:
    """A team's champion of a goal, by GitHub handle; ``person`` once the handle is known."""

    github: str
    team: str | None
    person: PersonView | None = None
    role: OwnerRole = OwnerRole.CHAMPION

    def silent(self) -> str:
        """A silent mention when the handle is linked to Zulip, else ``@handle``."""
        if self.person is not None and self.person.user is not None:
            return self.person.silent()
        return f"@{self.github}"


@dataclass(frozen=True, slots=True)
class RoadmapRef:
    """A roadmap a goal belongs to, as its Roadmap row names it (slug: the linked page)."""

    name: str
    slug: str | None = None

    def __str__(self) -> str:
        return self.name

    def stored(self) -> dict[str, str]:
        """The form a goal's ``roadmaps`` column keeps (``""``: no page)."""
        return {"name": self.name, "slug": self.slug or ""}

    @classmethod
    def from_stored(cls, rows: Iterable[Mapping[str, Any]] | None) -> tuple[RoadmapRef, ...]:
        """A goal's ``roadmaps`` column read back; rows without a name are skipped."""
        return tuple(
            cls(str(r["name"]), str(r.get("slug") or "") or None)
            for r in rows or ()
            if r.get("name")
        )


@dataclass(frozen=True, slots=True)
class UpdateView:
    id: int
    zulip_message_id: int | None  # None for an update written on GitHub
    goal_id: int | None
    author: PersonView | None
    kind: UpdateKind
    content: str
    tldr: str | None
    help_wanted: str | None
    sent_at: datetime
    edited_at: datetime | None
    source: UpdateSource = UpdateSource.TOPIC
    url: str | None = None  # the GitHub comment's page

    def link(self, site: str) -> str:
        """Where to read it: the Zulip message, or the comment on the tracking issue."""
        if self.zulip_message_id is None:
            return self.url or ""
        return message_link(site, self.zulip_message_id)

    @property
    def link_text(self) -> str:
        return "view comment" if self.source is UpdateSource.GITHUB else "view message"

    @property
    def where(self) -> str:
        """Where it was written, as the prompt's "last update" line says it."""
        return "on GitHub" if self.source is UpdateSource.GITHUB else "in Zulip"


@dataclass(frozen=True, slots=True)
class GoalView:
    id: int
    period: str
    slug: str
    title: str
    short_title: str | None
    status: str
    flagship: str | None
    tracking_issue: int | None
    tracking_url: str | None
    zulip_topic: str
    teams: tuple[str, ...]
    state: GoalState
    active: bool
    cadence_weeks: int | None
    created_at: datetime
    owners: tuple[OwnerView, ...] = ()
    last_update: UpdateView | None = None
    skipped_periods: frozenset[str] = field(default_factory=frozenset)
    highlight: str | None = None
    summary: str | None = None  # "What and why"
    roadmaps: tuple[RoadmapRef, ...] = ()
    ended_in: str | None = None  # the period whose import ended this goal
    progress: Progress | None = None  # the tracking issue's task list, when it has one
    health: GoalHealth | None = None  # the owners' latest call; None when they never made one

    @property
    def name(self) -> str:
        return self.short_title or self.title

    @property
    def is_flagship(self) -> bool:
        return self.flagship is not None

    @property
    def is_prompted(self) -> bool:
        """Asked for updates on schedule."""
        return is_prompted(self.active, self.state)

    @property
    def is_running(self) -> bool:
        """Active or paused: the owners' replies are updates."""
        return is_running(self.active, self.state)

    @property
    def is_listed(self) -> bool:
        """Shown in lists and answers."""
        return is_listed(self.active, self.state)

    @property
    def poc(self) -> tuple[PersonView, ...]:
        """Points of contact; when the file named none, every owner."""
        return points_of_contact(self.owners)

    def prompted_owners(self) -> tuple[PersonView, ...]:
        """Who is asked for updates: points of contact (task owners only if there are none)."""
        return self.poc

    def facts(self, default_cadence: int, today: date) -> GoalFacts:
        last = self.last_update.sent_at if self.last_update else None
        return _goal_facts(self, last, default_cadence, today)


@dataclass(frozen=True, slots=True)
class GoalOutline:
    """A goal as the set-up checks judge it: whether the schedule asks about it, and whom.

    ``doctor`` and ``run``'s start-up checks look at every goal but need none of the texts, the
    latest update or the health a ``GoalView`` carries; at 1,000 goals this is a fraction of the
    memory, and ``queries.load_outlines`` reads it without ORM objects.
    """

    id: int
    slug: str
    title: str
    short_title: str | None
    state: GoalState
    active: bool
    cadence_weeks: int | None
    created_at: datetime
    tracking_issue: int | None = None
    tracking_url: str | None = None
    owners: tuple[OwnerView, ...] = ()
    last_update_at: datetime | None = None  # the newest owner update's
    skipped_periods: frozenset[str] = field(default_factory=frozenset)

    @property
    def name(self) -> str:
        return self.short_title or self.title

    @property
    def is_running(self) -> bool:
        """Active or paused: the owners' replies are updates."""
        return is_running(self.active, self.state)

    def prompted_owners(self) -> tuple[PersonView, ...]:
        """As ``GoalView.prompted_owners``: the points of contact."""
        return points_of_contact(self.owners)

    def facts(self, default_cadence: int, today: date) -> GoalFacts:
        return _goal_facts(self, self.last_update_at, default_cadence, today)


def _goal_facts(
    goal: GoalView | GoalOutline, last_update_at: datetime | None, default_cadence: int, today: date
) -> GoalFacts:
    """What the due computation needs of either view of a goal."""
    asked = goal.prompted_owners()
    return GoalFacts(
        goal_id=goal.id,
        state=goal.state.value,
        active=goal.active,
        created_at=goal.created_at,
        cadence_weeks=effective_cadence(goal.cadence_weeks, default_cadence),
        last_update_at=last_update_at,
        owners_total=len(asked),
        owners_reachable=sum(1 for p in asked if p.contact(today) is OwnerContact.REACHABLE),
        skipped_periods=goal.skipped_periods,
    )


def points_of_contact(owners: Sequence[OwnerView]) -> tuple[PersonView, ...]:
    """The owners asked for updates: the points of contact; when the file named none, all."""
    main = tuple(o.person for o in owners if o.role is not OwnerRole.TASK)
    return main or tuple(o.person for o in owners)


@dataclass(frozen=True, slots=True)
class RoadmapPage:
    """A roadmap page as imported: its name, what and why, and point(s) of contact."""

    period: str
    slug: str
    title: str
    short_title: str | None
    summary: str | None
    owners: tuple[str, ...]  # GitHub handles

    @property
    def name(self) -> str:
        return self.short_title or self.title


class GoalName(NamedTuple):
    """The few columns needed to match what a user typed to a goal.

    A named tuple, not a dataclass: every command builds 1,000 of them and hashes them for the
    matcher's cache, and tuples do both in C.
    """

    id: int
    slug: str
    title: str
    short_title: str | None
    tracking_issue: int | None
    zulip_topic: str
    active: bool

    @property
    def name(self) -> str:
        return self.short_title or self.title


# Zulip role values (GET /users "role"): 100 owner, 200 administrator.
ADMIN_ROLES = frozenset({100, 200})


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """Who sent a message, as the message event tells it."""

    user_id: int
    email: str
    full_name: str
    is_realm_admin: bool = False
