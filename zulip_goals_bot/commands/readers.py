"""Commands anyone may use: status, history, list, mine, overdue, about, subscriptions, I am."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zulip_goals_bot import __version__
from zulip_goals_bot.commands.answers import (
    DUE_TEXT,
    digest_text,
    goal_title,
    render_goal_list,
    render_history,
    render_status,
    schedule_text,
)
from zulip_goals_bot.commands.call import Call, owned_goal_ids, resolve_goal
from zulip_goals_bot.commands.effects import Answer, Link, Subscribe, Unsubscribe
from zulip_goals_bot.commands.grammar import (
    CHAMPION_DIGEST_WORDS,
    DIGEST_WORDS,
    HISTORY_MAX,
    Command,
    parse_handle,
    parse_history_args,
)
from zulip_goals_bot.commands.people import owned_names
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.models import DigestSubscription, Person
from zulip_goals_bot.db.queries import load_champions, load_goals, load_roadmaps, person_view
from zulip_goals_bot.db.queries import updates_for_goal as load_history
from zulip_goals_bot.domain.health import HEALTH_VALUES, Health
from zulip_goals_bot.domain.markdown import (
    SAFE_LENGTH,
    ZulipUser,
    days_ago,
    limit_items,
    plural,
    safe,
    topic_link,
)
from zulip_goals_bot.domain.schedule import DueState
from zulip_goals_bot.domain.setting import Moment
from zulip_goals_bot.domain.states import GoalState
from zulip_goals_bot.domain.views import ChampionView, GoalView
from zulip_goals_bot.errors import CommandError
from zulip_goals_bot.goals.grouping import RoadmapGroup, goal_groups, roadmap_groups
from zulip_goals_bot.goals.matching import echo
from zulip_goals_bot.people.handles import handles_of
from zulip_goals_bot.people.link_rules import Conflict, LinkResult, MappedVia, WantedLink
from zulip_goals_bot.people.linking import plan_link


def _zulip_people(session: Session, handles: Collection[str]) -> dict[str, ZulipUser]:
    """Zulip accounts of these GitHub handles (those linked to one), in one statement."""
    if not handles:
        return {}
    rows = session.execute(select(Person).where(Person.github.in_(sorted(handles)))).scalars()
    return {p.github: user for p in rows if p.github and (user := person_view(p).user)}


def cmd_status(call: Call, command: Command) -> list[str]:
    goal = resolve_goal(call, command, command.text, own_default=True)
    last = goal.last_update
    named = handles_of([last.tldr, last.content, last.help_wanted]) if last else set()
    return render_status(
        goal,
        call.moment,
        champions=load_champions(call.session, [goal.id]).get(goal.id, ()),
        people=_zulip_people(call.session, named),
    )


def cmd_history(call: Call, command: Command) -> list[str]:
    query, n = parse_history_args(command.text)
    if n < 1:
        raise CommandError("Show how many? Say for example `history polonius 10`.")
    goal = resolve_goal(call, command, query, own_default=True)
    updates = load_history(call.session, goal.id, min(n, HISTORY_MAX))
    return render_history(goal, updates, n, call.moment)


def cmd_list(call: Call, command: Command) -> list[str]:
    # Goals that ended with their period are history: `status` finds them, lists do not.
    goals = [g for g in load_goals(call.session) if not g.ended_in]
    m = call.moment
    hint = "Narrow it down with `list team <name>`, `list flagship` or `list due`."
    match command.sub:
        case "" | "all":
            return [render_goal_list("Goals", goals, m, hint)]
        case "flagship":
            groups = [
                group
                for group in goal_groups(goals, lambda g: g, by_team=False)
                if group.kind.is_flagship_like
            ]
            if not groups:
                return [render_goal_list("Flagship goals", [], m)]
            return [render_goal_list(safe(g.title), list(g.items), m) for g in groups]
        case "roadmap":
            return list_roadmap(call, goals, command.text.strip())
        case "due":
            due = [g for g in goals if m.due(g).is_waiting]
            return [render_goal_list("Goals waiting for an update", due, m)]
        case "overdue":
            late = [g for g in goals if m.due(g) is DueState.OVERDUE]
            return [render_goal_list("Overdue goals", late, m)]
        case "paused":
            paused = [g for g in goals if g.state is GoalState.PAUSED]
            return [render_goal_list("Paused goals", paused, m)]
        case health if health in HEALTH_VALUES:
            said = Health(health)
            chosen = [g for g in goals if g.health is not None and g.health.health is said]
            chosen.sort(key=lambda g: g.health.since if g.health is not None else m.now)
            return [render_goal_list(f"Goals {said.label} (longest first)", chosen, m)]
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
                "`list roadmap <name>`, `list team <name>`, `list due`, `list overdue`, "
                "`list paused`, `list at-risk` or `list blocked`."
            )


# How close (rapidfuzz WRatio, 0-100) a typed roadmap name must come to a roadmap's name.
ROADMAP_MATCH = 75


def _roadmap_line(group: RoadmapGroup) -> str:
    summary = f" — {safe(group.page.summary)}" if group.page and group.page.summary else ""
    return f"- **{safe(group.name)}** ({plural(len(group.goals), 'goal')}){summary}"


def list_roadmap(call: Call, goals: Sequence[GoalView], query: str) -> list[str]:
    """`list roadmap [<name>]`: the roadmaps, or one roadmap with its goals."""
    from rapidfuzz import fuzz, process

    groups = roadmap_groups(goals, load_roadmaps(call.session))
    if not groups:
        raise CommandError("No goal names a roadmap, and no roadmap page was imported.")
    if not query:
        return [
            f"Roadmaps ({len(groups)}); say `list roadmap <name>` for one of them:\n"
            + limit_items([_roadmap_line(g) for g in groups], SAFE_LENGTH)
        ]
    keys = {i: f"{g.name} {g.page.slug if g.page else ''}" for i, g in enumerate(groups)}
    best = process.extractOne(query, keys, scorer=fuzz.WRatio, score_cutoff=ROADMAP_MATCH)
    if best is None:
        names = ", ".join(f"**{safe(g.name)}**" for g in groups)
        raise CommandError(f"I don't know a roadmap called '{echo(query)}'. Roadmaps: {names}")
    group = groups[best[2]]
    head = [f"**Roadmap: {safe(group.name)}**"]
    if group.page is not None:
        if group.page.summary:
            head.append(f"**What and why**: {safe(group.page.summary)}")
        if group.page.owners:
            contacts = ", ".join(f"@{h}" for h in group.page.owners)
            head.append(f"**Point of contact**: {contacts} · period {safe(group.page.period)}")
    goals_text = render_goal_list(f"Goals of roadmap {safe(group.name)}", group.goals, call.moment)
    return ["\n".join(head), goals_text]


def cmd_overdue(call: Call, command: Command) -> list[str]:
    return cmd_list(call, Command("list", sub="overdue"))


def cmd_mine(call: Call, command: Command) -> list[str]:
    ids = owned_goal_ids(call.session, call.me.id, live_only=False)
    goals = [g for g in load_goals(call.session, goal_ids=ids) if not g.ended_in] if ids else []
    m = call.moment
    champion_of = load_champions(call.session, github=call.me.github) if call.me.github else {}
    championed = [
        g for g in load_goals(call.session, goal_ids=list(champion_of)) if not g.ended_in
    ] if champion_of else []  # fmt: skip
    if not goals and not championed:
        known = f" (GitHub @{call.me.github})" if call.me.github else ""
        return [
            f"You{known} don't own any goal that I know of. If a goal file lists your GitHub "
            "handle, tell me who you are: `I am @your-handle`."
        ]
    if not goals:
        return [limit_items(_champion_lines(championed, champion_of, m), SAFE_LENGTH)]
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
    if championed:
        lines += ["", *_champion_lines(championed, champion_of, m)]
    return [limit_items(lines, SAFE_LENGTH)]


def _champion_lines(
    goals: Sequence[GoalView], champion_of: Mapping[int, Sequence[ChampionView]], m: Moment
) -> list[str]:
    """The goals someone champions: never prompted, but worth a look."""
    lines = [
        f"You champion {plural(len(goals), 'goal')} (you are not asked for updates; "
        "`subscribe digest champion` sends you their digest):"
    ]
    for g in goals:
        teams = sorted({c.team for c in champion_of.get(g.id, ()) if c.team})
        team = f" for {', '.join(safe(t) for t in teams)}" if teams else ""
        last = g.last_update
        seen = f"last update {days_ago(last.sent_at, m.now)}" if last else "no update yet"
        due = m.due(g)
        lines.append(f"- {due.mark} {goal_title(g)} (`{g.slug}`){team}: {DUE_TEXT[due]}; {seen}")
    return lines


def cmd_about(call: Call, command: Command) -> list[str]:
    config = call.config
    admins = _admin_people(call.session, config)
    if admins:
        contact = "Bot admins: " + ", ".join(admins) + "."
    else:
        contact = "Ask an organization administrator about this bot."
    return [
        f"**{safe(call.moment.setting.bot_name)}** {__version__}: asks goal owners for progress "
        "updates, keeps them, and sums them up in a weekly digest. Say `help` for the commands.",
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


def _digest_words_ok(command: Command) -> str:
    """The subscription's scope ("all" or "champion"), or an error for anything else."""
    words = " ".join(command.text.strip().lower().rstrip(".!").split())
    if words in DIGEST_WORDS:
        return "all"
    if command.name == "subscribe" and words in CHAMPION_DIGEST_WORDS:
        return "champion"
    raise CommandError(
        f"The weekly digest is the only thing to {command.name} to: say `{command.name} digest`"
        + (
            " (or `subscribe digest champion` for the goals you champion)."
            if command.name == "subscribe"
            else "."
        )
    )


def cmd_subscribe(call: Call, command: Command) -> Answer:
    scope = _digest_words_ok(command)
    existing = call.session.get(DigestSubscription, call.me.id)
    what = "the weekly digest" if scope == "all" else "the weekly digest of the goals you champion"
    if existing is not None and existing.scope == scope:
        return Answer.say(f"You are already subscribed to {what}. (`unsubscribe digest` stops it.)")
    if existing is not None:
        said = f"Changed: from now on I'll DM you {what}."
    else:
        said = f"Subscribed: I'll DM you {what}."
    note = "" if call.config.digest.enabled else " The digest is switched off right now."
    if scope == "champion":
        if call.me.github is None:
            note += (
                " I don't know your GitHub handle yet, so I can't tell which goals you champion: "
                "say `I am @your-handle`."
            )
        else:
            count = len(load_champions(call.session, github=call.me.github))
            note += f" You champion {plural(count, 'goal')} as GitHub @{call.me.github}."
    about = digest_text(call.config, call.moment.stream(call.config.digest.stream))
    return Answer.say(f"{said} {about}{note}", effects=(Subscribe(call.me.id, scope),))


def cmd_unsubscribe(call: Call, command: Command) -> Answer:
    _digest_words_ok(command)
    existing = call.session.get(DigestSubscription, call.me.id)
    if existing is None:
        return Answer.say("You weren't subscribed to the digest; nothing to change.")
    return Answer.say(
        "Unsubscribed: no more digest DMs. (`subscribe digest` brings them back.)",
        effects=(Unsubscribe(call.me.id),),
    )


def cmd_iam(call: Call, command: Command) -> Answer:
    handle = parse_handle(command.text)
    me = call.me
    assert me.zulip_user_id is not None  # call.me is the sender's own row
    wanted = WantedLink(handle, me.zulip_user_id, MappedVia.CLAIM, MappedVia.CLAIM.label)
    plan = plan_link(call.session, wanted)
    (outcome,) = plan.outcomes
    if outcome.result is LinkResult.ALREADY:
        return Answer.say(f"You are already linked to GitHub @{handle}.")
    ask_admin = "ask a bot admin (say `about` to see who) to fix it with `map`."
    if outcome.conflict is Conflict.HAS_HANDLE:
        raise CommandError(
            f"Your Zulip account is already linked to GitHub @{me.github}. If that is wrong, "
            + ask_admin
        )
    if outcome.conflict is Conflict.HANDLE_TAKEN:
        raise CommandError(
            f"GitHub @{handle} is already linked to another Zulip account, so I can't link it "
            f"to yours. If it is yours, {ask_admin}"
        )
    owned = owned_names(call.session, plan.ownerships_at(me.id))
    goals = (
        " You own: " + limit_items(owned, 3000, sep=", ") + "."
        if owned
        else " No goal lists that handle yet."
    )
    return Answer.say(
        f"Thanks! GitHub @{handle} is now linked to your Zulip account.{goals}",
        effects=(Link(wanted, me.id),),
    )
