"""A command being handled, and how a command finds the goal it names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from zulip_goals_bot.bot.replies import goal_topic_name
from zulip_goals_bot.commands.answers import goal_title
from zulip_goals_bot.commands.effects import Answer
from zulip_goals_bot.commands.grammar import OWNERS, SPEC_BY_NAME, Command
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.models import Goal, GoalOwner, Person, goal_is_prompted
from zulip_goals_bot.db.queries import goal_names, load_goals
from zulip_goals_bot.domain.setting import Moment
from zulip_goals_bot.domain.views import GoalName, GoalView, SenderInfo
from zulip_goals_bot.errors import CommandError
from zulip_goals_bot.goals.matching import MatchKind, MatchResult, match_goal

# Commands whose "did you mean" choices can be retyped as `<command> <slug>`.
_RETYPE = frozenset({"status", "history", "skip", "pause", "resume", "complete", "retire"})


@dataclass
class Call:
    """A command being handled: who asked, where, when, and the open transaction.  Handlers
    read through it and return what they change; they are given no database to write to."""

    session: Session
    sender: SenderInfo
    me: Person
    is_admin: bool
    in_topic: tuple[str, str] | None
    moment: Moment

    @property
    def now(self) -> datetime:
        return self.moment.now

    @property
    def config(self) -> Config:
        return self.moment.config


# A command that only reads answers in blocks of text; one that changes something returns its
# answer with its effects, which ``execute.apply`` writes after it returned.
Reader = Callable[[Call, Command], list[str]]
Writer = Callable[[Call, Command], Answer]


def _topic_goal(call: Call) -> GoalName | None:
    """The goal whose topic the command was written in, if any."""
    if call.in_topic is None:
        return None
    stream, topic = call.in_topic
    if stream.lower() != call.config.stream.lower():
        return None
    wanted = goal_topic_name(topic).lower()
    names = goal_names(call.session, include_inactive=True)
    return next((g for g in names if g.zulip_topic.lower() == wanted), None)


def find_goal(session: Session, query: str) -> MatchResult:
    """Match among live goals first; then among all (completed, retired, older periods)."""
    live = match_goal(query, goal_names(session))
    if live.kind is MatchKind.FOUND:
        return live
    everything = match_goal(query, goal_names(session, include_inactive=True))
    if everything.kind is MatchKind.FOUND or live.kind is MatchKind.NONE:
        return everything
    return live


def owned_goal_ids(session: Session, person_id: int, *, live_only: bool) -> list[int]:
    query = (
        select(Goal.id)
        .join(GoalOwner, GoalOwner.goal_id == Goal.id)
        .where(GoalOwner.person_id == person_id)
        .order_by(Goal.id)
    )
    if live_only:
        query = query.where(goal_is_prompted())
    return list(session.execute(query).scalars())


def resolve_goal(
    call: Call, command: Command, query: str, *, own_default: bool = False
) -> GoalView:
    """The goal a command is about: typed, implied by the topic, or the sender's only goal."""
    query = query.strip()
    goal_id: int | None = None
    if query:
        result = find_goal(call.session, query)
        if result.goal is None or result.kind is not MatchKind.FOUND:
            hint = ""
            owners_command = SPEC_BY_NAME[command.name].group == OWNERS
            if result.kind is MatchKind.NONE and call.in_topic is None and owners_command:
                hint = "\n(If you meant this as an update, write `update <goal>: <your update>`.)"
            retype = command.name if command.name in _RETYPE else None
            raise CommandError(result.message(retype) + hint)
        goal_id = result.goal.id
    else:
        here = _topic_goal(call)
        if here is not None:
            goal_id = here.id
        elif own_default:
            owned = owned_goal_ids(call.session, call.me.id, live_only=True)
            if len(owned) == 1:
                goal_id = owned[0]
    if goal_id is None:
        example = SPEC_BY_NAME[command.name].example
        raise CommandError(f"Which goal? Name it, for example: `{example}`.")
    goals = load_goals(call.session, goal_ids=[goal_id], include_inactive=True)
    if not goals:
        raise CommandError("That goal is gone; say `list` to see the goals.")
    return goals[0]


def _is_owner(goal: GoalView, person: Person) -> bool:
    return any(o.person.person_id == person.id for o in goal.owners)


def require_owner(call: Call, goal: GoalView, verb: str) -> None:
    if not (call.is_admin or _is_owner(goal, call.me)):
        raise CommandError(
            f"Only the owners of {goal_title(goal)} (or a bot admin) can {verb} it; nothing was "
            "changed. If you own it but I don't know your GitHub handle, say "
            "`I am @your-handle` first."
        )
