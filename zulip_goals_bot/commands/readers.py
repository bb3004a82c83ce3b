"""Commands anyone may use: status, history, list, mine, overdue, about, subscriptions, I am."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import __version__
from ..config import Config
from ..errors import CommandError
from ..grammar import DIGEST_WORDS, HISTORY_MAX, Command, parse_handle, parse_history_args
from ..markdown import (
    SAFE_LENGTH,
    ZulipUser,
    days_ago,
    limit_items,
    plural,
    safe,
    topic_link,
)
from ..matching import echo
from ..models import (
    DigestSubscription,
    GoalState,
    Person,
)
from ..queries import load_goals
from ..queries import updates_for_goal as load_history
from ..schedule import DueState
from .answers import (
    DUE_TEXT,
    digest_text,
    goal_title,
    render_goal_list,
    render_history,
    render_status,
    schedule_text,
)
from .call import Call, owned_goal_ids, resolve_goal
from .linking import by_github, merge_person, owned_names


def cmd_status(call: Call, command: Command) -> list[str]:
    goal = resolve_goal(call, command, command.text, own_default=True)
    return render_status(goal, call.moment)


def cmd_history(call: Call, command: Command) -> list[str]:
    query, n = parse_history_args(command.text)
    if n < 1:
        raise CommandError("Show how many? Say for example `history polonius 10`.")
    goal = resolve_goal(call, command, query, own_default=True)
    updates = load_history(call.session, goal.id, min(n, HISTORY_MAX))
    return render_history(goal, updates, n, call.moment)


def cmd_list(call: Call, command: Command) -> list[str]:
    goals = load_goals(call.session)
    m = call.moment
    hint = "Narrow it down with `list team <name>`, `list flagship` or `list due`."
    match command.sub:
        case "" | "all":
            return [render_goal_list("Goals", goals, m, hint)]
        case "flagship":
            return [render_goal_list("Flagship goals", [g for g in goals if g.is_flagship], m)]
        case "due":
            due = [g for g in goals if m.due(g).is_waiting]
            return [render_goal_list("Goals waiting for an update", due, m)]
        case "overdue":
            late = [g for g in goals if m.due(g) is DueState.OVERDUE]
            return [render_goal_list("Overdue goals", late, m)]
        case "paused":
            paused = [g for g in goals if g.state is GoalState.PAUSED]
            return [render_goal_list("Paused goals", paused, m)]
        case "team":
            team = command.text.strip().lower().removeprefix("t-").removeprefix("@")
            teams = sorted({t for g in goals for t in g.teams})
            if not team:
                raise CommandError(
                    "Which team? Say for example `list team compiler`. Teams: "
                    + (", ".join(safe(t) for t in teams) or "none yet")
                )
            if team not in teams:
                close = [t for t in teams if team in t or t in team]
                raise CommandError(
                    f"No goal names the team '{echo(team)}'. "
                    + (f"Did you mean: {', '.join(safe(t) for t in close)}? " if close else "")
                    + "Teams: "
                    + limit_items([safe(t) for t in teams], 2000, sep=", ")
                )
            chosen = [g for g in goals if team in g.teams]
            return [render_goal_list(f"Goals of team {safe(team)}", chosen, m)]
        case other:
            raise CommandError(
                f"I can't list '{echo(other)}'. Say `list`, `list flagship`, "
                "`list team <name>`, `list due`, `list overdue` or `list paused`."
            )


def cmd_overdue(call: Call, command: Command) -> list[str]:
    return cmd_list(call, Command("list", sub="overdue"))


def cmd_mine(call: Call, command: Command) -> list[str]:
    ids = owned_goal_ids(call.session, call.me.id, live_only=False)
    goals = load_goals(call.session, goal_ids=ids) if ids else []
    m = call.moment
    if not goals:
        known = f" (GitHub @{call.me.github})" if call.me.github else ""
        return [
            f"You{known} don't own any goal that I know of. If a goal file lists your GitHub "
            "handle, tell me who you are: `I am @your-handle`."
        ]
    lines = [f"You own {plural(len(goals), 'goal')}:"]
    owe = 0
    for g in goals:
        due = m.due(g)
        note = ""
        if due.is_waiting:
            owe += 1
            note = " — **you owe an update**: reply in its topic " + topic_link(
                m.goals_stream, g.zulip_topic
            )
        last = g.last_update
        seen = f"last update {days_ago(last.sent_at, m.now)}" if last else "no update yet"
        lines.append(f"- {due.mark} {goal_title(g)} (`{g.slug}`): {DUE_TEXT[due]}; {seen}{note}")
    if owe:
        lines.append("If there is nothing to report this time, say `skip <goal>`.")
    else:
        lines.append("Nothing is waiting for you. :check:")
    if call.me.away_until is not None and call.me.away_until >= m.today:
        lines.append(f"You are away until {call.me.away_until.isoformat()} (say `back` to return).")
    return [limit_items(lines, SAFE_LENGTH)]


def cmd_about(call: Call, command: Command) -> list[str]:
    config = call.config
    admins = _admin_people(call.session, config)
    if admins:
        contact = "Bot admins: " + ", ".join(admins) + "."
    else:
        contact = "Ask an organization administrator about this bot."
    return [
        f"**{safe(call.ctx.bot_name)}** {__version__}: asks goal owners for progress updates, "
        "keeps them, and sums them up in a weekly digest. Say `help` for the commands.",
        schedule_text(config, call.moment.slot, call.now, call.moment.goals_stream),
        digest_text(config, call.moment.stream(config.digest.stream)),
        contact,
    ]


def _admin_people(session: Session, config: Config) -> list[str]:
    """Silent mentions of the configured admins, else of the realm's administrators."""
    if config.admins:
        rows = session.execute(
            select(Person).where(
                func.lower(Person.email).in_(sorted(config.admins)),
                Person.zulip_user_id.is_not(None),
            )
        ).scalars()
    else:
        rows = session.execute(
            select(Person).where(
                Person.is_admin.is_(True),
                Person.is_active.is_(True),
                Person.is_bot.is_(False),
                Person.zulip_user_id.is_not(None),
            )
        ).scalars()
    out = []
    for p in sorted(rows, key=lambda p: (p.full_name or "").lower()):
        assert p.zulip_user_id is not None
        out.append(ZulipUser(p.zulip_user_id, p.full_name or "admin").mention(silent=True))
    return out


def _digest_words_ok(command: Command) -> None:
    if command.text.strip().lower().rstrip(".!") not in DIGEST_WORDS:
        raise CommandError(
            f"The weekly digest is the only thing to {command.name} to: "
            f"say `{command.name} digest`."
        )


def cmd_subscribe(call: Call, command: Command) -> list[str]:
    _digest_words_ok(command)
    existing = call.session.get(DigestSubscription, call.me.id)
    if existing is not None:
        return ["You are already subscribed to the weekly digest. (`unsubscribe digest` stops it.)"]
    call.session.add(DigestSubscription(person_id=call.me.id, created_at=call.now))
    note = "" if call.config.digest.enabled else " The digest is switched off right now."
    about = digest_text(call.config, call.moment.stream(call.config.digest.stream))
    return [f"Subscribed: I'll DM you the weekly digest. {about}{note}"]


def cmd_unsubscribe(call: Call, command: Command) -> list[str]:
    _digest_words_ok(command)
    existing = call.session.get(DigestSubscription, call.me.id)
    if existing is None:
        return ["You weren't subscribed to the digest; nothing to change."]
    call.session.delete(existing)
    return ["Unsubscribed: no more digest DMs. (`subscribe digest` brings them back.)"]


def cmd_iam(call: Call, command: Command) -> list[str]:
    handle = parse_handle(command.text)
    me = call.me
    if me.github == handle:
        return [f"You are already linked to GitHub @{handle}."]
    ask_admin = "ask a bot admin (say `about` to see who) to fix it with `map`."
    if me.github:
        raise CommandError(
            f"Your Zulip account is already linked to GitHub @{me.github}. If that is wrong, "
            + ask_admin
        )
    holder = by_github(call.session, handle)
    if holder is not None and holder.zulip_user_id is not None:
        raise CommandError(
            f"GitHub @{handle} is already linked to another Zulip account, so I can't link it "
            f"to yours. If it is yours, {ask_admin}"
        )
    if holder is not None:
        merge_person(call.session, holder, me)
    me.github = handle
    me.mapped_via = "claim"
    me.claimed_at = call.now
    call.session.flush()
    owned = owned_names(call.session, me.id)
    goals = (
        " You own: " + limit_items(owned, 3000, sep=", ") + "."
        if owned
        else " No goal lists that handle yet."
    )
    return [f"Thanks! GitHub @{handle} is now linked to your Zulip account.{goals}"]
