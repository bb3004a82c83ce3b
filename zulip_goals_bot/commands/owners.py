"""Commands for goal owners: skip, away, back, pause, resume, complete."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import CommandError
from ..grammar import Command, parse_away
from ..markdown import (
    time_tag,
)
from ..models import (
    Goal,
    GoalState,
)
from ..prompts import skip_goal
from .answers import DUE_TEXT, goal_title
from .call import Call, require_owner, resolve_goal

_SKIP_FILLER = re.compile(r"^(?:this|the|for)?\s*(?:week|period|time|round|update|one)?$", re.I)


def cmd_skip(call: Call, command: Command) -> list[str]:
    query = command.text.strip()
    if _SKIP_FILLER.match(query):
        query = ""
    goal = resolve_goal(call, command, query, own_default=True)
    require_owner(call, goal, "skip")
    m = call.moment
    if not (goal.active and goal.state is GoalState.ACTIVE):
        return [f"{goal_title(goal)} is {DUE_TEXT[m.due(goal)]} — there is nothing to skip."]
    period = m.program.period(goal, call.now)
    if period.key in goal.skipped_periods:
        return [
            f"{goal_title(goal)} is already skipped this period. Next prompt: "
            f"{time_tag(period.end)}."
        ]
    skip_goal(call.session, goal.id, call.me.id, call.now, call.ctx)
    return [
        f"OK: no update needed for {goal_title(goal)} this period. I'll ask again "
        f"{time_tag(period.end)}."
    ]


def cmd_away(call: Call, command: Command) -> list[str]:
    until = parse_away(command.text, call.moment.today)
    call.me.away_until = until
    return [
        f"Got it: you are away until {until.strftime('%A')} {until.isoformat()}. I won't ask you "
        "for updates until then; a goal whose owners are all away shows as “owners away”. "
        "Say `back` if you return earlier."
    ]


def cmd_back(call: Call, command: Command) -> list[str]:
    was = call.me.away_until
    call.me.away_until = None
    if was is None or was < call.moment.today:
        return ["You weren't marked away; nothing to change. Welcome anyway!"]
    return ["Welcome back! You'll get prompts again from the next period."]


_TRANSITIONS: Mapping[str, tuple[tuple[GoalState, ...], GoalState, str]] = {
    # command: (states it applies to, new state, what to say)
    "pause": ((GoalState.ACTIVE,), GoalState.PAUSED,
              "is paused: no prompts until someone says `resume {slug}`."),
    "resume": ((GoalState.PAUSED, GoalState.COMPLETED), GoalState.ACTIVE,
               "is active again: owners will be prompted from the next period."),
    "complete": ((GoalState.ACTIVE, GoalState.PAUSED), GoalState.COMPLETED,
                 "is completed. Congratulations! :tada: No more prompts."),
}  # fmt: skip


def cmd_transition(call: Call, command: Command) -> list[str]:
    goal = resolve_goal(call, command, command.text)
    require_owner(call, goal, command.name)
    allowed, target, said = _TRANSITIONS[command.name]
    if goal.state is target:
        return [f"{goal_title(goal)} is already {target.value}; nothing to change."]
    if goal.state is GoalState.RETIRED and not call.is_admin:
        raise CommandError(f"{goal_title(goal)} is retired; only a bot admin can bring it back.")
    if goal.state not in allowed and goal.state is not GoalState.RETIRED:
        raise CommandError(
            f"{goal_title(goal)} is {goal.state.value}, so it can't be {command.name}d; "
            "nothing was changed."
        )
    row = call.session.get(Goal, goal.id)
    assert row is not None
    row.state = target
    row.updated_at = call.now
    return [f"{goal_title(goal)} {said.format(slug=goal.slug)}"]
