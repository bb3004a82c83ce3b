"""The monthly "Project goals update" blog post, drafted from the updates stored in the database.

``compose_blog`` is pure (goals and updates in, Markdown out) so the post can be checked against a
golden file; ``export_command`` is the CLI shell around it.  The post is a draft for an editor:
every goal with news gets its TL;DR, its help-wanted line and all of its updates of the period in
a collapsed ``<details>`` block; goals without news are listed at the end so nobody is forgotten.
With ``group_health`` (``export blog --group-health``) every goal shows its owners' health call as
it stood at the end of the post's range, and the goals at risk or blocked come first, under a
heading of their own, whether or not they had news.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from zulip_goals_bot.clock import SYSTEM_CLOCK, Clock
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.queries import goals_of_period, load_goals, updates_between
from zulip_goals_bot.domain.health import GoalHealth, Health, goal_health
from zulip_goals_bot.domain.markdown import neutralize, outside_code, plural
from zulip_goals_bot.domain.views import GoalView, PersonView, UpdateView
from zulip_goals_bot.errors import GoalsBotError
from zulip_goals_bot.goals.grouping import goal_groups
from zulip_goals_bot.people.handles import render_handles

# What a bad --since/--until looks like to the operator.
DATE_EXAMPLE = "2025-03-01"

# An HTML tag or comment opener: in stored text it could close our <details> block or hide the
# rest of the post, so its "<" is escaped.  Autolinks (<https://…>) do not match.
_HTML_OPENER = re.compile(r"<(?=/?[A-Za-z][A-Za-z0-9-]*(?:[\s/>]|$)|!)")


class ExportError(GoalsBotError):
    """A bad --since/--until/--output: not a date, an empty range, a folder that is missing."""


def parse_date(text: str, option: str) -> date:
    """A YYYY-MM-DD date from the command line, or an error that says what was expected."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError as exc:
        raise ExportError(
            f"{option} {text!r} is not a date; expected YYYY-MM-DD, like {DATE_EXAMPLE}"
        ) from exc


# -- composition (pure) ---------------------------------------------------------------------------


def escape_html(text: str) -> str:
    """Escape tag-like ``<`` outside code so stored text cannot break the post's HTML blocks."""
    return outside_code(text, _HTML_OPENER, lambda _m: "&lt;")


def _safe(text: str) -> str:
    """Stored text as it may appear in the post: no pings, no stray HTML, and each GitHub
    handle linked to its profile."""
    return render_handles(escape_html(neutralize(text.strip())), web=True)


def _person(p: PersonView | None) -> str:
    """GitHub handle when known (the blog's readers know people by it), else the name."""
    if p is None:
        return "someone"
    return neutralize(f"@{p.github}" if p.github else (p.full_name or p.display))


def _title(goal: GoalView) -> str:
    title = _safe(goal.title).replace("[", "\\[").replace("]", "\\]")
    return f"[{title}]({goal.tracking_url})" if goal.tracking_url else title


def _is_month(since: date, until: date) -> bool:
    return since.day == 1 and until == (since + timedelta(days=32)).replace(day=1)


def _span(since: date, until: date) -> str:
    last = until - timedelta(days=1)
    if _is_month(since, until):
        return f"{since:%B %Y}"
    return f"{since.isoformat()} to {last.isoformat()}"


def _quote(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in text.split("\n"))


def _latest(updates: Sequence[UpdateView], attr: str) -> str | None:
    for u in reversed(updates):
        value: str | None = getattr(u, attr)
        if value and value.strip():
            return value
    return None


# Goals that need help, in this order (then by title): blocked, then at risk.
NEEDS_HELP_ORDER = (Health.BLOCKED, Health.AT_RISK)
NEEDS_HELP = "Goals that need help"


def health_by(goal: GoalView, end: datetime) -> GoalHealth | None:
    """The goal's health as it stood at ``end``: its owners' calls made before then."""
    if goal.health is None:
        return None
    return goal_health(c for c in goal.health.calls if c.said_at < end)


def _health_line(health: GoalHealth, tz: ZoneInfo) -> str:
    return (
        f"**Health:** {health.health.label} since {health.since.astimezone(tz).date().isoformat()}"
    )


def _goal_section(
    goal: GoalView,
    updates: Sequence[UpdateView],
    tz: ZoneInfo,
    unit: str,
    health: GoalHealth | None = None,
) -> str:
    contacts = ", ".join(_person(p) for p in goal.poc) or "none named"
    lines = [f"### {_title(goal)}", "", f"**Point of contact:** {contacts}", ""]
    if health is not None:
        lines += [_health_line(health, tz), ""]
    if goal.progress is not None and goal.progress.total:
        lines += [f"**Progress:** {goal.progress} ({goal.progress.percent}%)", ""]
    tldr = _latest(updates, "tldr")
    if tldr:
        lines += [f"**TL;DR:** {_safe(tldr)}", ""]
    help_wanted = _latest(updates, "help_wanted")
    if help_wanted:
        lines += [f"*Help wanted:* {_safe(help_wanted)}", ""]
    if not updates:
        lines += [f"No update {unit}."]
        return "\n".join(lines)
    lines += ["<details>", f"<summary>{plural(len(updates), 'update')} {unit}</summary>", ""]
    for u in updates:
        when = u.sent_at.astimezone(tz).date().isoformat()
        where = f" ([on GitHub]({u.url}))" if u.url else ""
        lines += [f"**{_person(u.author)}** on {when}{where}:", "", _quote(_safe(u.content)), ""]
    lines += ["</details>"]
    return "\n".join(lines)


def compose_blog(
    goals: Sequence[GoalView],
    updates: Sequence[UpdateView],
    since: date,
    until: date,
    *,
    tz: ZoneInfo | None = None,
    group_health: bool = False,
) -> str:
    """The post for updates in [since, until): flagship goals, goals looking for help, the rest.

    ``updates`` are owner updates (oldest first); those of goals not in ``goals`` are ignored.
    ``tz`` is the program timezone, in which update dates are shown.  ``group_health`` puts the
    goals whose owners call them blocked or at risk (at ``until``) first, in a section of their
    own, and shows every goal's health.
    """
    zone = tz or ZoneInfo("UTC")
    end = _instant(until, zone)
    health = {g.id: health_by(g, end) for g in goals} if group_health else {}
    by_goal: dict[int, list[UpdateView]] = defaultdict(list)
    known = {g.id for g in goals}
    for u in sorted(updates, key=lambda u: (u.sent_at, u.id)):
        if u.goal_id in known:
            by_goal[u.goal_id].append(u)
    ordered = sorted(goals, key=lambda g: g.title.casefold())
    calls = {g.id: h.health for g in ordered if (h := health.get(g.id)) is not None}
    needing = sorted(
        (g for g in ordered if g.id in calls and calls[g.id].needs_help),
        key=lambda g: NEEDS_HELP_ORDER.index(calls[g.id]),
    )
    first = {g.id for g in needing}
    ordered = [g for g in ordered if g.id not in first]
    with_news = [g for g in ordered if by_goal.get(g.id)]
    # Highlights and flagship themes first, each under its own heading (as in the digest).
    groups = [
        g for g in goal_groups(with_news, lambda g: g, sort_key=lambda g: g.title.casefold())
        if g.kind.is_flagship_like
    ]  # fmt: skip
    featured = {g.id for group in groups for g in group.items}
    helping = [
        g for g in with_news if g.id not in featured and _latest(by_goal[g.id], "help_wanted")
    ]
    others = [g for g in with_news if g.id not in featured and g not in helping]
    quiet = [g for g in ordered if not by_goal.get(g.id)]
    unit = "this month" if _is_month(since, until) else "in this period"
    span = _span(since, until)
    total = sum(len(v) for v in by_goal.values())
    news = sum(1 for g in goals if by_goal.get(g.id))
    flagships = sum(1 for g in goals if g.is_flagship)
    out = [
        "+++",
        f'title = "Project goals update: {span}"',
        "+++",
        "",
        "The project is currently working towards a slate of "
        f"{plural(len(goals), 'project goal')}, "
        f"{flagships} of them designated as flagship goals. This post gathers the progress "
        f"updates posted by goal owners for {span}: {plural(total, 'update')} on "
        f"{plural(news, 'goal')}. Each goal links to its tracking issue, which has "
        "the full details.",
    ]
    if group_health and needing:
        out[-1] += (
            f" Their owners call {plural(len(needing), 'goal')} blocked or at risk: "
            f"{'they come' if len(needing) != 1 else 'it comes'} first."
        )
    elif group_health:
        out[-1] += " No goal's owners call it blocked or at risk."
    sections = (
        (NEEDS_HELP, needing),
        *((neutralize(group.title), list(group.items)) for group in groups),
        ("Goals looking for help", helping),
        ("Other goal updates", others),
    )
    for heading, chosen in sections:
        if chosen:
            out += ["", f"## {heading}"]
            for g in chosen:
                out += ["", _goal_section(g, by_goal[g.id], zone, unit, health.get(g.id))]
    if quiet:
        out += ["", f"## Goals without updates {unit}", ""]
        for g in quiet:
            contacts = ", ".join(_person(p) for p in g.poc)
            said = health.get(g.id)
            out.append(
                f"* {_title(g)}"
                + (f" ({contacts})" if contacts else "")
                + (f", {said.health.label}" if said is not None else "")
            )
    return "\n".join(out) + "\n"


# -- the command ----------------------------------------------------------------------------------


def _instant(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


# Goals added by hand (`goal add`) belong to no imported period: every post may show them.


def load_blog_data(
    session: Session, since: datetime, until: datetime, period: str | None = None
) -> tuple[list[GoalView], list[UpdateView]]:
    """Tracked goals of one period (the newest by default) plus any goal of it with an update in
    [since, until): five statements in all, one more for an earlier ``period``."""
    updates = updates_between(session, since, until)
    with_news = {u.goal_id for u in updates}
    everything = load_goals(session, include_inactive=True)
    everything, _chosen = goals_of_period(session, everything, period)
    goals = [g for g in everything if g.id in with_news or (g.is_listed and not g.ended_in)]
    return goals, updates


def export_command(
    config: Config,
    since: str,
    until: str | None,
    output: Path | None,
    period: str | None = None,
    *,
    group_health: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """`zulip-goals-bot export blog`: print the post, or write it to ``output``.

    ``since`` and ``until`` are local dates of the program, both included; ``until`` defaults
    to today, so an update sent a minute ago is in the post. ``period`` names the goals' period
    (the newest by default). ``group_health`` puts the goals that need help first.
    """
    from zulip_goals_bot.db.engine import Database

    tz = config.timezone
    first = parse_date(since, "--since")
    # Both days are included: without --until the post covers everything up to now.
    last = parse_date(until, "--until") if until else clock.now().astimezone(tz).date()
    if last < first:
        raise ExportError(
            f"--until {last.isoformat()} is before --since {first.isoformat()} "
            "(both days are included)"
        )
    end = last + timedelta(days=1)
    if output is not None and not output.parent.is_dir():
        raise ExportError(f"--output {output}: the folder {output.parent} does not exist")
    db = Database(config.database_url)
    db.upgrade()
    try:
        with db.read() as session:
            goals, updates = load_blog_data(session, _instant(first, tz), _instant(end, tz), period)
    finally:
        db.dispose()
    text = compose_blog(goals, updates, first, end, tz=tz, group_health=group_health)
    if output is None:
        print(text, end="")
        return 0
    tmp = output.with_name(output.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)
    except OSError as exc:
        raise ExportError(f"--output {output}: cannot write it ({exc.strerror})") from exc
    news = len({u.goal_id for u in updates})
    print(f"wrote {output}: {plural(len(updates), 'update')} on {plural(news, 'goal')}")
    return 0
