"""``zulip-goals-bot goals list``: the goals in the database, as a table or as JSON.

Each goal is shown with its outlook (``outlook.py``): whether it is prompted and, if not, why.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from zulip_goals_bot.clock import SYSTEM_CLOCK, Clock
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.queries import load_champions, load_goals
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.states import GoalState, OwnerRole
from zulip_goals_bot.domain.views import ChampionView, GoalView
from zulip_goals_bot.goals.outlook import Outlook, Reason, outlook, reason_groups


def _state_label(o: Outlook) -> str:
    g = o.goal
    if g.state is GoalState.ACTIVE and not g.active:
        return "inactive"
    if g.state is GoalState.COMPLETED and g.ended_in:
        return "ended"
    if g.state is GoalState.ACTIVE and o.reason is Reason.NO_OWNER:
        return "active, no owner"
    return g.state.value


def _owners_label(g: GoalView) -> str:
    names = [f"@{o.person.github}" if o.person.github else o.person.display
             for o in g.owners if o.role is not OwnerRole.TASK]  # fmt: skip
    tasks = sum(1 for o in g.owners if o.role is OwnerRole.TASK)
    return ", ".join(names) + (f" +{tasks} task" if tasks else "")


def goal_json(
    g: GoalView, o: Outlook | None = None, champions: Sequence[ChampionView] = ()
) -> dict[str, Any]:
    """One goal as ``goals list --json`` prints it."""
    return {
        "id": g.id,
        "period": g.period,
        "slug": g.slug,
        "title": g.title,
        "short_title": g.short_title,
        "status": g.status,
        "state": g.state.value,
        "active": g.active,
        "prompted": o.prompted if o is not None else None,
        "not_prompted_because": o.reason.value if o is not None and o.reason else None,
        "flagship": g.flagship,
        "highlight": g.highlight,
        "what_and_why": g.summary,
        "roadmaps": [r.name for r in g.roadmaps],
        "ended_in": g.ended_in,
        "tracking_issue": g.tracking_issue,
        "tracking_url": g.tracking_url,
        "topic": g.zulip_topic,
        "teams": list(g.teams),
        "owners": [
            {
                "github": o.person.github,
                "role": o.role.value,
                "zulip_user_id": o.person.zulip_user_id,
                "full_name": o.person.full_name,
            }
            for o in g.owners
        ],
        "champions": [
            {
                "github": c.github,
                "team": c.team,
                "role": c.role.value,
                "zulip_user_id": c.person.zulip_user_id if c.person else None,
            }
            for c in champions
        ],
    }


# Widest title and owners columns in `goals list`; the rest of a cell is cut with "…".
_TITLE_COLUMN = 40
_OWNERS_COLUMN = 32


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_goal_table(outlooks: Sequence[Outlook], *, prompted_column: bool = False) -> str:
    """The goals as aligned columns for a terminal (``prompted_column``: why not, per goal)."""
    header: tuple[str, ...] = ("period", "slug", "title", "state", "flagship", "owners", "topic")
    header += ("prompted",) if prompted_column else ()
    rows = [
        (
            o.goal.period,
            o.goal.slug,
            _cut(o.goal.title, _TITLE_COLUMN),
            _state_label(o),
            _cut(o.goal.flagship or "", 12),
            _cut(_owners_label(o.goal), _OWNERS_COLUMN),
            o.goal.zulip_topic,
            *((o.label(),) if prompted_column else ()),
        )
        for o in outlooks
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]  # fmt: skip
    return "\n".join(lines)


def list_command(
    config: Config, *, show_all: bool, as_json: bool, clock: Clock = SYSTEM_CLOCK
) -> int:
    """``zulip-goals-bot goals list``: active goals (``--all``: every goal, and whether it is
    prompted), or JSON."""
    now = clock.now()
    db = Database(config.database_url)
    try:
        db.upgrade()
        with db.read() as session:
            goals = load_goals(session, include_inactive=show_all)
            hidden = [] if goals or show_all else load_goals(session, include_inactive=True)
            champions = load_champions(session, [g.id for g in goals]) if as_json else {}
    finally:
        db.dispose()
    program = Program.from_config(config)
    outlooks = [outlook(g, now, program) for g in goals]
    if as_json:
        rows = [goal_json(o.goal, o, champions.get(o.goal.id, ())) for o in outlooks]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif hidden:
        reasons = reason_groups(
            [outlook(g, now, program) for g in hidden],
            config.active_statuses,
            "zulip-goals-bot goals import PATH",
        )
        print(f"No active goals: none of the {len(hidden)} imported goals is prompted.")
        print("\n".join(line for r in reasons for line in r.render()))
        print("`goals list --all` shows them all.")
    elif not goals:
        print(
            "No goals."
            if show_all
            else "No active goals. Import some with "
            "`zulip-goals-bot goals import PATH`, or use --all to see inactive ones."
        )
    else:
        print(render_goal_table(outlooks, prompted_column=show_all))
        prompted = sum(1 for o in outlooks if o.prompted)
        print(f"\n{len(goals)} goals" + ("" if show_all else " (--all shows inactive ones)"))
        print(f"{prompted} of them prompted" + ("" if show_all else " (--all says why not)"))
    return 0
