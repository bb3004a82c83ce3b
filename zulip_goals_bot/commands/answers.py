"""What the bot answers: pure rendering of goals, updates and settings for chat replies.

Every text that came from people goes through ``markdown.neutralize`` (or ``safe``), so echoing
it pings nobody; owners are named with silent mentions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from zulip_goals_bot.commands.grammar import (
    ADMINS,
    ANYONE,
    HISTORY_MAX,
    OWNERS,
    SPEC_BY_NAME,
    SPECS,
    Command,
    near_command,
)
from zulip_goals_bot.config import WEEKDAYS, Config
from zulip_goals_bot.domain.health import GoalHealth, HealthSource, describe
from zulip_goals_bot.domain.markdown import (
    MAX_MESSAGE_LENGTH,
    SAFE_LENGTH,
    StreamRef,
    ZulipUser,
    days_ago,
    limit_items,
    neutralize,
    plural,
    quote_block,
    safe,
    shorten,
    split_blocks,
    stream_link,
    time_tag,
    topic_link,
)
from zulip_goals_bot.domain.progress import Progress
from zulip_goals_bot.domain.schedule import DueState, Slot, next_prompt
from zulip_goals_bot.domain.setting import Moment
from zulip_goals_bot.domain.states import OwnerRole, UpdateKind
from zulip_goals_bot.domain.views import ChampionView, GoalName, GoalView, OwnerView, UpdateView
from zulip_goals_bot.goals.matching import echo
from zulip_goals_bot.people.handles import render_handles

# How much of an update `status` and `history` quote: enough to follow, short enough to scan.
STATUS_QUOTE_CHARS = 600


STATUS_QUOTE_LINES = 8


HISTORY_QUOTE_CHARS = 400


HISTORY_QUOTE_LINES = 6


# Unknown command words are quoted back at most this long.
ECHO_WORD_CHARS = 40


@dataclass(frozen=True, slots=True)
class Reply:
    """One or more Zulip messages, each under Zulip's 10,000-character limit."""

    messages: list[str]

    def __post_init__(self) -> None:
        for m in self.messages:
            if len(m) >= MAX_MESSAGE_LENGTH:
                raise ValueError(f"reply of {len(m)} characters is over Zulip's limit")

    @classmethod
    def of(cls, blocks: Iterable[str], sep: str = "\n") -> Reply:
        return cls(split_blocks(blocks, SAFE_LENGTH, sep=sep) or ["(nothing to say)"])


DUE_TEXT: Mapping[DueState, str] = {
    DueState.UP_TO_DATE: "up to date",
    DueState.DUE: "an update is due",
    DueState.OVERDUE: "overdue: no update last period either",
    DueState.GRACE: "new goal: not asked for updates yet",
    DueState.SKIPPED: "skipped this period",
    DueState.AWAY: "waiting: every owner is away or not on Zulip",
    DueState.NO_OWNERS: "no owner to ask",
    DueState.PAUSED: "paused: owners are not asked for updates",
    DueState.COMPLETED: "completed",
    DueState.RETIRED: "retired",
    DueState.INACTIVE: "not prompted (not an accepted goal)",
}


def goal_title(goal: GoalView | GoalName) -> str:
    return f"**{safe(goal.short_title or goal.title)}**"


def issue_link(goal: GoalView) -> str | None:
    if goal.tracking_issue is None:
        return None
    label = f"goals#{goal.tracking_issue}"
    return f"[{label}]({goal.tracking_url})" if goal.tracking_url else label


def owner_text(owner: OwnerView, today: date) -> str:
    """A silent mention for a Zulip user; the plain @github handle for an unmapped owner."""
    p = owner.person
    if p.zulip_user_id is not None:
        who = ZulipUser(p.zulip_user_id, p.full_name or p.email or "user").mention(silent=True)
    elif p.github:
        who = f"@{p.github}"
    else:
        who = safe(p.display)
    notes = []
    if owner.role is OwnerRole.TASK:
        notes.append("task")
    if p.zulip_user_id is None:
        notes.append("not linked to Zulip yet")
    elif p.away_until is not None and p.away_until >= today:
        notes.append(f"away until {p.away_until.isoformat()}")
    return who + (f" ({', '.join(notes)})" if notes else "")


def plain_name(owner: OwnerView) -> str:
    """An owner's name without any mention, for compact lists."""
    return safe(owner.person.display)


def excerpt(update: UpdateView, limit: int, lines: int, *, prefer_tldr: bool) -> str:
    text = (update.tldr if prefer_tldr and update.tldr else None) or update.content
    return shorten(neutralize(text), limit, max_lines=lines) or "(empty)"


def author_text(update: UpdateView) -> str:
    a = update.author
    if a is None:
        return "someone"
    if a.zulip_user_id is not None:
        return ZulipUser(a.zulip_user_id, a.full_name or a.email or "user").mention(silent=True)
    return safe(a.display)


def when_text(when: datetime, now: datetime) -> str:
    return f"{time_tag(when)} ({days_ago(when, now)})"


# A status answer names this many open tasks of the task list; the issue has the rest.
OPEN_TASKS_SHOWN = 3


def progress_text(progress: Progress) -> str:
    """``5 of 8 tasks done (62%); open: …``, the open tasks escaped (they are GitHub text)."""
    text = f"{progress} ({progress.percent}%)"
    if progress.open_tasks:
        shown = [shorten(neutralize(t), 80) for t in progress.open_tasks[:OPEN_TASKS_SHOWN]]
        more = len(progress.open_tasks) - len(shown)
        text += "; open: " + "; ".join(shown) + (f" and {more} more" if more > 0 else "")
    return text


def render_status(
    goal: GoalView,
    m: Moment,
    *,
    champions: Sequence[ChampionView] = (),
    people: Mapping[str, ZulipUser] | None = None,
) -> list[str]:
    """The `status` answer: one block per fact, the update quoted.

    ``champions`` are the goal's team champions; ``people`` the Zulip accounts of GitHub handles
    the latest update names (shown as silent mentions).
    """
    due = m.due(goal)
    state = goal.state.value if goal.active else f"{goal.state.value}, not prompted"
    lines = [f"{due.mark} {goal_title(goal)} — {DUE_TEXT[due]}"]
    if goal.short_title and goal.short_title != goal.title:
        lines.append(f"**Title**: {safe(goal.title)}")
    if goal.summary:
        lines.append(f"**What and why**: {safe(goal.summary)}")
    lines.append(f"**Status**: {safe(goal.status)} (bot: {state}) · `{goal.slug}` · {goal.period}")
    if goal.ended_in:
        lines.append(
            f"**Ended** with period {safe(goal.period)}: it did not continue into "
            f"{safe(goal.ended_in)}; its history stays."
        )
    if goal.highlight:
        lines.append(f"**Highlight**: {safe(goal.highlight)}")
    if goal.flagship:
        flagship = "" if goal.flagship.lower() in ("yes", "true") else f": {safe(goal.flagship)}"
        lines.append(f"**Flagship goal**{flagship}")
    if goal.roadmaps:
        lines.append(f"**Roadmaps**: {', '.join(safe(r.name) for r in goal.roadmaps)}")
    owners = ", ".join(owner_text(o, m.today) for o in goal.owners) or "none yet"
    lines.append(f"**Owners**: {owners}")
    if champions:
        named = [c.silent() + (f" ({safe(c.team)})" if c.team else "") for c in champions]
        lines.append(f"**Champions**: {', '.join(named)}")
    if goal.teams:
        lines.append(f"**Teams**: {', '.join(safe(t) for t in goal.teams)}")
    link = issue_link(goal)
    if link:
        lines.append(f"**Tracking issue**: {link}")
    if goal.progress is not None and goal.progress.total:
        lines.append(f"**Progress**: {progress_text(goal.progress)}")
    lines.append(f"**Health**: {health_text(goal.health, m)}")
    lines.append(f"**Topic**: {topic_link(m.goals_stream, goal.zulip_topic)}")
    blocks = ["\n".join(lines)]
    last = goal.last_update
    if last is None:
        blocks.append("**Latest update**: none yet.")
    else:
        quoted = excerpt(last, STATUS_QUOTE_CHARS, STATUS_QUOTE_LINES, prefer_tldr=True)
        blocks.append(
            f"**Latest update**: by {author_text(last)}, {when_text(last.sent_at, m.now)} — "
            f"[{last.link_text}]({last.link(m.site)})\n"
            + quote_block(render_handles(quoted, people))
        )
        if last.help_wanted:
            wanted = shorten(neutralize(last.help_wanted), 500)
            blocks.append(f"**Help wanted**: {render_handles(wanted, people)}")
    upcoming = m.next_prompt(goal)
    cadence = plural(m.cadence(goal), "week")
    if upcoming is not None:
        blocks.append(f"**Next prompt**: {time_tag(upcoming)} (every {cadence})")
    elif goal.is_prompted:
        blocks.append("**Next prompt**: none, scheduled prompts are switched off")
    return blocks


def render_history(
    goal: GoalView, updates: Sequence[UpdateView], asked: int, m: Moment
) -> list[str]:
    if not updates:
        return [f"No updates or comments for {goal_title(goal)} yet."]
    clamp = f" (at most {HISTORY_MAX})" if asked > HISTORY_MAX else ""
    head = (
        f"{goal_title(goal)}: the last {plural(len(updates), 'message')}{clamp}, newest first "
        f"(topic {topic_link(m.goals_stream, goal.zulip_topic)}):"
    )
    blocks = [head]
    for u in updates:
        kind = "**Update**" if u.kind is UpdateKind.UPDATE else "Comment"
        edited = " (edited)" if u.edited_at else ""
        blocks.append(
            f"{kind} by {author_text(u)}, {when_text(u.sent_at, m.now)}{edited} — "
            f"[view]({u.link(m.site)})\n"
            + quote_block(excerpt(u, HISTORY_QUOTE_CHARS, HISTORY_QUOTE_LINES, prefer_tldr=False))
        )
    return blocks


def health_text(health: GoalHealth | None, m: Moment) -> str:
    """The owners' call and since when, with who said it and a link: never a guess."""
    if health is None:
        return "not given yet (owners can say `Status: on track`, `at risk` or `blocked`)"
    text = describe(health, m.now)
    call = health.latest
    who = f" by {safe(call.author)}" if call.author else ""
    how = " with a reaction" if call.source is HealthSource.REACTION else ""
    link = call.link(m.site)
    return text + (f" — [said{who}{how}]({link})" if link else "")


def goal_line(goal: GoalView, m: Moment) -> str:
    """One goal in a list: state mark, name, issue, owners, last update, health."""
    due = m.due(goal)
    issue = f", goals#{goal.tracking_issue}" if goal.tracking_issue is not None else ""
    names = ", ".join(plain_name(o) for o in goal.owners)
    owners = f"; {names}" if names else ""
    last = goal.last_update
    seen = f"last update {days_ago(last.sent_at, m.now)}" if last else "no update yet"
    flag = " :star:" if goal.is_flagship else ""
    health = goal.health
    said = f"; {health.health.mark} {health.health.label}" if health is not None else ""
    return (
        f"- {due.mark} {goal_title(goal)}{flag} (`{goal.slug}`{issue}) — {DUE_TEXT[due]}"
        f"{owners}; {seen}{said}"
    )


def render_goal_list(title: str, goals: Sequence[GoalView], m: Moment, hint: str = "") -> str:
    """A list that always fits one message: "… and N more" past the limit."""
    if not goals:
        return f"{title}: none."
    head = f"{title} ({len(goals)}):"
    tail = f"\n{hint}" if hint and len(goals) > 1 else ""
    body = limit_items([goal_line(g, m) for g in goals], SAFE_LENGTH - len(head) - len(tail) - 2)
    return f"{head}\n{body}{tail}"


def help_text(bot_name: str) -> str:
    groups = {
        ANYONE: "**Anyone**",
        OWNERS: "**Goal owners** (for goals you own)",
        ADMINS: "**Admins only** :lock:",
    }
    lines = [
        f"Mention me (@{safe(bot_name)}) in any stream, or send me a direct message. Name a goal "
        "by its slug, a few words of its title, or its tracking issue (`#263`)."
    ]
    for group, heading in groups.items():
        lines.append("")
        lines.append(heading)
        for s in SPECS:
            if s.group == group:
                lock = " :lock:" if group == ADMINS else ""
                example = f" Example: `{s.example}`" if s.example != s.syntax else ""
                lines.append(f"- `{s.syntax}`{lock} — {s.summary}.{example}")
    return "\n".join(lines)


def weekday_name(index: int) -> str:
    return WEEKDAYS[index].capitalize()


def schedule_text(config: Config, slot: Slot, now: datetime, goals_stream: StreamRef) -> str:
    s = config.schedule
    if not s.enabled:
        return "Scheduled prompts are switched off."
    stream = stream_link(goals_stream)
    where = {
        "topic": f"in each goal's topic in {stream} (by DM to owners not in that stream)",
        "dm": "by direct message to each owner",
        "both": f"in each goal's topic in {stream} and by direct message",
    }[s.prompt_via]
    return (
        f"Owners are asked for an update every {plural(s.cadence_weeks, 'week')} (some goals "
        f"differ) on {weekday_name(slot.weekday)} at {slot.at.strftime('%H:%M')} "
        f"({slot.tz.key}), {where}; owners who have not answered get one reminder "
        f"{plural(s.reminder_days, 'day')} later. New goals have "
        f"{plural(s.grace_days, 'day')} of grace. Next prompts: "
        f"{time_tag(next_prompt(now, s.cadence_weeks, slot))}."
    )


def digest_text(config: Config, digest_stream: StreamRef) -> str:
    d = config.digest
    if not d.enabled:
        return "The weekly digest is switched off."
    when = f"every {weekday_name(d.weekday)} at {d.at.strftime('%H:%M')} ({d.timezone.key})"
    if d.topic:
        return (
            f"The weekly digest is posted {when} in {topic_link(digest_stream, d.topic)}, and "
            "sent by DM to subscribers (`subscribe digest`)."
        )
    return f"The weekly digest is sent {when} by DM to subscribers (`subscribe digest`)."


def unknown_text(command: Command, bot_name: str) -> str:
    """The answer to a word that is no command: the closest command when it is a typo."""
    word = echo(command.typed, ECHO_WORD_CHARS)
    guess = near_command(command.typed)
    if guess is not None:
        spec = SPEC_BY_NAME[guess]
        retyped = f"{guess} {echo(command.text)}".strip() if command.text.strip() else guess
        return (
            f"I don't know the command '{word}'. Did you mean `{retyped}`? "
            f"(`{spec.syntax}`: {spec.summary}.)"
        )
    return f"I don't know the command '{word}'. Here is what I can do:\n\n" + help_text(bot_name)
