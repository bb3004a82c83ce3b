"""The one place a chat command writes: the effects its handler returned, in its transaction.

Handlers only read; ``apply`` turns their decisions into rows.  Running after the handler has
returned (and inside the same serialized write transaction it read in) keeps a refused request
from changing anything and keeps what the answer says true of what was written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from zulip_goals_bot.bot.store import move_update
from zulip_goals_bot.commands.effects import (
    AddGoal,
    Effect,
    Link,
    MoveUpdate,
    NewPerson,
    RemoveUpdate,
    SetAway,
    SetCadence,
    SetGoalState,
    SetOwners,
    SkipPeriod,
    Subscribe,
    Unsubscribe,
    Who,
)
from zulip_goals_bot.db.models import DigestSubscription, Goal, GoalOwner, Person, Skip, Update
from zulip_goals_bot.domain.states import GoalState, OwnerRole
from zulip_goals_bot.people.linking import link

log = logging.getLogger(__name__)


class HandlerWroteError(RuntimeError):
    """A handler changed rows itself instead of returning effects (a bug in the bot)."""


def check_untouched(session: Session, command: str) -> None:
    """Refuse a handler's own writes: every change of a command goes through ``apply``."""
    if session.new or session.dirty or session.deleted:
        raise HandlerWroteError(
            f"the handler of `{command}` wrote rows itself instead of returning them"
        )


def apply(session: Session, effects: Sequence[Effect], *, now: datetime) -> None:
    """Write the effects, in order; the caller owns the transaction."""
    for effect in effects:
        _apply_one(session, effect, now)
        log.info("command changed: %s", effect)
    session.flush()


def _apply_one(session: Session, effect: Effect, now: datetime) -> None:
    match effect:
        case SetGoalState(goal_id=goal_id, state=state):
            goal = _goal(session, goal_id)
            goal.state = state
            goal.updated_at = now
        case SetCadence(goal_id=goal_id, weeks=weeks):
            goal = _goal(session, goal_id)
            goal.cadence_weeks = weeks
            goal.updated_at = now
        case SkipPeriod(goal_id=goal_id, period=period, person_id=person_id):
            _goal(session, goal_id)
            taken = select(Skip.id).where(Skip.goal_id == goal_id, Skip.period == period)
            if session.execute(taken).first() is None:
                session.add(
                    Skip(goal_id=goal_id, period=period, person_id=person_id, created_at=now)
                )
        case SetAway(person_id=person_id, until=until):
            _person(session, person_id).away_until = until
        case RemoveUpdate(update_id=update_id):
            _update(session, update_id).deleted = True
        case MoveUpdate(update_id=update_id, goal_id=goal_id):
            move_update(_update(session, update_id), goal_id)
        case AddGoal():
            session.add(_new_goal(effect, now))
        case SetOwners(goal_id=goal_id, owners=owners):
            _set_owners(session, _goal(session, goal_id), owners, now)
        case Subscribe(person_id=person_id, scope=scope):
            sub = session.get(DigestSubscription, person_id)
            if sub is None:
                session.add(DigestSubscription(person_id=person_id, created_at=now, scope=scope))
            else:
                sub.scope = scope
        case Unsubscribe(person_id=person_id):
            sub = session.get(DigestSubscription, person_id)
            if sub is not None:
                session.delete(sub)
        case Link(wanted=wanted, person=person):
            _person_id(session, person, now)
            link(session, [wanted], now=now)


def _goal(session: Session, goal_id: int) -> Goal:
    goal = session.get(Goal, goal_id)
    if goal is None:
        raise LookupError(f"no goal with id {goal_id}")
    return goal


def _person(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise LookupError(f"no person with id {person_id}")
    return person


def _update(session: Session, update_id: int) -> Update:
    row = session.get(Update, update_id)
    if row is None:
        raise LookupError(f"no update with id {update_id}")
    return row


def _person_id(session: Session, who: Who, now: datetime) -> int:
    """The row of someone a command named, created when the bot has none yet."""
    if isinstance(who, int):
        return who
    if who.zulip_user_id is not None:
        found = select(Person).where(Person.zulip_user_id == who.zulip_user_id)
    else:
        found = select(Person).where(Person.github == who.github)
    person = session.execute(found).scalar_one_or_none()
    if person is None:
        person = _new_person(who, now)
        session.add(person)
        session.flush()
    return person.id


def _new_person(who: NewPerson, now: datetime) -> Person:
    if who.zulip_user_id is not None:
        return Person(zulip_user_id=who.zulip_user_id, full_name=who.full_name, created_at=now)
    return Person(github=who.github, mapped_via="admin", created_at=now)


def _new_goal(add: AddGoal, now: datetime) -> Goal:
    return Goal(
        period=add.period,
        slug=add.slug,
        title=add.title,
        short_title=None,
        status="Accepted",
        tracking_issue=None,
        zulip_topic=add.topic,
        teams="",
        state=GoalState.ACTIVE,
        active=True,
        extra={},
        created_at=now,
        updated_at=now,
    )


def _set_owners(session: Session, goal: Goal, owners: Sequence[Who], now: datetime) -> None:
    wanted = [_person_id(session, who, now) for who in owners]
    rows = session.execute(select(GoalOwner).where(GoalOwner.goal_id == goal.id)).scalars()
    current = {row.person_id: row for row in rows}
    for person_id, row in current.items():
        if person_id not in wanted:
            session.delete(row)
    for position, person_id in enumerate(wanted):
        kept = current.get(person_id)
        if kept is None:
            session.add(
                GoalOwner(
                    goal_id=goal.id, person_id=person_id, role=OwnerRole.OWNER, position=position
                )
            )
        else:
            kept.position = position
    goal.updated_at = now
