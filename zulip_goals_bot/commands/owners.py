"""Commands for goal owners: skip, away, back, pause, resume, complete, undo, move to."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import select

from zulip_goals_bot.bot.replies import already_filed_text, moved_text, quote_update
from zulip_goals_bot.commands.answers import DUE_TEXT, goal_title
from zulip_goals_bot.commands.call import Call, require_owner, resolve_goal
from zulip_goals_bot.commands.effects import (
    Answer,
    MoveUpdate,
    RemoveUpdate,
    SetAway,
    SetGoalState,
    SkipPeriod,
)
from zulip_goals_bot.commands.grammar import Command, parse_away
from zulip_goals_bot.db.models import Goal, Update
from zulip_goals_bot.domain.markdown import safe, time_tag
from zulip_goals_bot.domain.states import GoalState, UpdateKind, UpdateSource
from zulip_goals_bot.errors import CommandError

_SKIP_FILLER = re.compile(r"^(?:this|the|for)?\s*(?:week|period|time|round|update|one)?$", re.I)


def cmd_skip(call: Call, command: Command) -> Answer:
    query = command.text.strip()
    if _SKIP_FILLER.match(query):
        query = ""
    goal = resolve_goal(call, command, query, own_default=True)
    require_owner(call, goal, "skip")
    m = call.moment
    if not goal.is_prompted:
        return Answer.say(
            f"{goal_title(goal)} is {DUE_TEXT[m.due(goal)]} — there is nothing to skip."
        )
    period = m.program.period(goal, call.now)
    if period.key in goal.skipped_periods:
        return Answer.say(
            f"{goal_title(goal)} is already skipped this period. Next prompt: "
            f"{time_tag(period.end)}."
        )
    return Answer.say(
        f"OK: no update needed for {goal_title(goal)} this period. I'll ask again "
        f"{time_tag(period.end)}.",
        effects=(SkipPeriod(goal.id, period.key, call.me.id),),
    )


def cmd_away(call: Call, command: Command) -> Answer:
    until = parse_away(command.text, call.moment.today)
    return Answer.say(
        f"Got it: you are away until {until.strftime('%A')} {until.isoformat()}. I won't ask you "
        "for updates until then; a goal whose owners are all away shows as “owners away”. "
        "Say `back` if you return earlier.",
        effects=(SetAway(call.me.id, until),),
    )


def cmd_back(call: Call, command: Command) -> Answer:
    was = call.me.away_until
    back = (SetAway(call.me.id, None),) if was is not None else ()
    if was is None or was < call.moment.today:
        return Answer.say(
            "You weren't marked away; nothing to change. Welcome anyway!", effects=back
        )
    return Answer.say("Welcome back! You'll get prompts again from the next period.", effects=back)


_TRANSITIONS: Mapping[str, tuple[tuple[GoalState, ...], GoalState, str]] = {
    # command: (states it applies to, new state, what to say)
    "pause": ((GoalState.ACTIVE,), GoalState.PAUSED,
              "is paused: no prompts until someone says `resume {slug}`."),
    "resume": ((GoalState.PAUSED, GoalState.COMPLETED), GoalState.ACTIVE,
               "is active again: owners will be prompted from the next period."),
    "complete": ((GoalState.ACTIVE, GoalState.PAUSED), GoalState.COMPLETED,
                 "is completed. Congratulations! :tada: No more prompts."),
}  # fmt: skip


def cmd_transition(call: Call, command: Command) -> Answer:
    goal = resolve_goal(call, command, command.text)
    require_owner(call, goal, command.name)
    allowed, target, said = _TRANSITIONS[command.name]
    if goal.state is target:
        return Answer.say(f"{goal_title(goal)} is already {target.value}; nothing to change.")
    if goal.state is GoalState.RETIRED and not call.is_admin:
        raise CommandError(f"{goal_title(goal)} is retired; only a bot admin can bring it back.")
    if goal.state not in allowed and goal.state is not GoalState.RETIRED:
        raise CommandError(
            f"{goal_title(goal)} is {goal.state.value}, so it can't be {command.name}d; "
            "nothing was changed."
        )
    return Answer.say(
        f"{goal_title(goal)} {said.format(slug=goal.slug)}",
        effects=(SetGoalState(goal.id, target),),
    )


# How far back `move to` looks for the update to move: long enough to notice a misfiled update in
# the next digest, short enough that it never moves something long forgotten.
MOVE_WINDOW = timedelta(days=7)


def _last_dm_update(call: Call, since: datetime) -> Update | None:
    """The sender's latest update stored from a DM since ``since`` (the one the bot filed)."""
    return call.session.execute(
        select(Update)
        .where(
            Update.author_id == call.me.id,
            Update.kind == UpdateKind.UPDATE,
            Update.source == UpdateSource.DM,
            Update.deleted.is_(False),
            Update.sent_at >= since,
        )
        .order_by(Update.sent_at.desc(), Update.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _quoted(update: Update) -> str:
    return quote_update(update.content)


def cmd_undo(call: Call, command: Command) -> Answer:
    minutes = call.config.update_window_minutes
    row = _last_dm_update(call, call.now - timedelta(minutes=minutes))
    if row is None:
        raise CommandError(
            f"Nothing to undo: you sent me no update by DM in the last {minutes} minutes. "
            "To remove an older update, delete your message in Zulip; I follow deletes."
        )
    name = call.session.get(Goal, row.goal_id) if row.goal_id is not None else None
    where = f" of **{safe(name.short_title or name.title)}**" if name is not None else ""
    return Answer.say(
        f"Removed your update{where} ({_quoted(row)}). It no longer counts as an update and "
        "is left out of status, the digest and the site.",
        effects=(RemoveUpdate(row.id),),
    )


def cmd_move(call: Call, command: Command) -> Answer:
    if not command.text.strip():
        raise CommandError("Say which goal: `move to <goal>`.")
    goal = resolve_goal(call, command, command.text)
    require_owner(call, goal, "post updates for")
    row = _last_dm_update(call, call.now - MOVE_WINDOW)
    if row is None:
        raise CommandError(
            "I found no update you sent me by DM in the last week, so nothing was moved. "
            "An update posted in a goal's topic moves with the message: move it to the other "
            "goal's topic in Zulip."
        )
    name = goal.short_title or goal.title
    if row.goal_id == goal.id:
        return Answer.say(already_filed_text(row.content, name))
    return Answer.say(moved_text(row.content, name), effects=(MoveUpdate(row.id, goal.id),))
