"""What a command changes, as plain values: a handler decides, ``execute`` writes.

A handler reads what it needs, checks the request and returns its answer together with these
values; nothing is written until it has returned, so a refused request cannot have changed
anything and every write a command makes passes through one function (``execute.apply``).
Each value renders itself for the log line that says what a command changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from zulip_goals_bot.domain.states import GoalState
from zulip_goals_bot.people.link_rules import WantedLink


@dataclass(frozen=True, slots=True)
class NewPerson:
    """Someone a command names whom the bot has no row for yet: a Zulip account picked from
    the typeahead (its id and name) or a GitHub handle."""

    zulip_user_id: int | None = None
    full_name: str | None = None
    github: str | None = None

    def __str__(self) -> str:
        if self.zulip_user_id is not None:
            return f"new person (Zulip user {self.zulip_user_id})"
        return f"new person (@{self.github})"


# A person a command names: the id of a row the bot has, or one to create.
Who = int | NewPerson


@dataclass(frozen=True, slots=True)
class SetGoalState:
    goal_id: int
    state: GoalState

    def __str__(self) -> str:
        return f"goal {self.goal_id} -> {self.state.value}"


@dataclass(frozen=True, slots=True)
class SetCadence:
    goal_id: int
    weeks: int | None  # None: the program's default

    def __str__(self) -> str:
        return f"goal {self.goal_id} cadence -> {self.weeks or 'default'}"


@dataclass(frozen=True, slots=True)
class SkipPeriod:
    goal_id: int
    period: str  # the key of the period skipped
    person_id: int

    def __str__(self) -> str:
        return f"goal {self.goal_id} skips {self.period} (person {self.person_id})"


@dataclass(frozen=True, slots=True)
class SetAway:
    person_id: int
    until: date | None  # None: back

    def __str__(self) -> str:
        return f"person {self.person_id} away until {self.until or '-'}"


@dataclass(frozen=True, slots=True)
class RemoveUpdate:
    update_id: int

    def __str__(self) -> str:
        return f"update {self.update_id} removed"


@dataclass(frozen=True, slots=True)
class MoveUpdate:
    update_id: int
    goal_id: int

    def __str__(self) -> str:
        return f"update {self.update_id} -> goal {self.goal_id}"


@dataclass(frozen=True, slots=True)
class AddGoal:
    period: str
    slug: str
    title: str
    topic: str  # chosen by the handler among the topics not taken

    def __str__(self) -> str:
        return f"goal {self.period}/{self.slug} added"


@dataclass(frozen=True, slots=True)
class SetOwners:
    """The goal's owners become exactly these, in this order (roles of those kept stay)."""

    goal_id: int
    owners: tuple[Who, ...]

    def __str__(self) -> str:
        return f"goal {self.goal_id} owners -> {', '.join(map(str, self.owners)) or 'nobody'}"


@dataclass(frozen=True, slots=True)
class Subscribe:
    person_id: int
    scope: str  # "all" or "champion"

    def __str__(self) -> str:
        return f"person {self.person_id} subscribed ({self.scope})"


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    person_id: int

    def __str__(self) -> str:
        return f"person {self.person_id} unsubscribed"


@dataclass(frozen=True, slots=True)
class Link:
    """A GitHub handle linked to a Zulip account (``I am``, ``map``); ``person`` is the account's
    row, created first when the bot has none."""

    wanted: WantedLink
    person: Who

    def __str__(self) -> str:
        return f"@{self.wanted.github} -> Zulip user {self.wanted.zulip_user_id}"


Effect = (
    SetGoalState
    | SetCadence
    | SkipPeriod
    | SetAway
    | RemoveUpdate
    | MoveUpdate
    | AddGoal
    | SetOwners
    | Subscribe
    | Unsubscribe
    | Link
)


@dataclass(frozen=True, slots=True)
class Answer:
    """A command's answer and what it changes (applied only after the handler returned)."""

    blocks: tuple[str, ...]
    effects: tuple[Effect, ...] = ()

    @classmethod
    def say(cls, *blocks: str, effects: tuple[Effect, ...] = ()) -> Answer:
        return cls(blocks, effects)
