"""Chat commands: what people can ask the bot, by mentioning it in a stream or by DM.

``parse`` turns a message into a ``Command`` (pure); ``handle`` runs it in one database
transaction and returns a ``Reply``.  Anything a person got wrong (an unknown goal, a bad date, a
command only admins may use) raises ``CommandError`` inside that transaction, so the answer
explains the problem and nothing in the database changes.  The answers are composed by pure
functions over the views of ``queries``; every text that came from people (titles, updates, the
words they typed) goes through ``markdown.neutralize`` so that echoing it pings nobody, and owners
are named with silent mentions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from . import __version__
from .config import WEEKDAYS, Config
from .context import Context
from .errors import GoalsBotError
from .grouping import RoadmapGroup, goal_groups, roadmap_groups
from .handles import handles_of, render_handles
from .markdown import (
    MAX_MESSAGE_LENGTH,
    SAFE_LENGTH,
    ZulipUser,
    days_ago,
    limit_items,
    message_link,
    neutralize,
    plural,
    quote_block,
    shorten,
    split_blocks,
    time_tag,
    topic_link,
)
from .matching import MatchKind, MatchResult, echo, match_goal
from .models import (
    Delivery,
    DigestSubscription,
    Goal,
    GoalOwner,
    GoalState,
    OwnerRole,
    Person,
    Skip,
    Update,
    UpdateKind,
)
from .people import SenderInfo, ensure_people
from .prompts import skip_goal
from .queries import (
    ChampionView,
    GoalName,
    GoalView,
    OwnerView,
    UpdateView,
    goal_names,
    load_champions,
    load_goals,
    load_roadmaps,
    person_view,
)
from .queries import updates_for_goal as load_history
from .replies import goal_topic_name
from .schedule import DueState, Slot, due_state, next_prompt, period_at
from .topics import goal_topic

log = logging.getLogger(__name__)

# `history` shows this many messages unless asked for another number, and never more than MAX.
HISTORY_DEFAULT = 5
HISTORY_MAX = 50
# How much of an update `status` and `history` quote: enough to follow, short enough to scan.
STATUS_QUOTE_CHARS = 600
STATUS_QUOTE_LINES = 8
HISTORY_QUOTE_CHARS = 400
HISTORY_QUOTE_LINES = 6
# A DM longer than this, or on several lines, is an update, never a command.
MAX_COMMAND_CHARS = 300
# A goal named in a command is at most this long (longer text in a DM is an update).
MAX_GOAL_QUERY = 120
MAX_GOAL_WORDS = 8
# `away` for longer than this is almost certainly a typo in the date.
MAX_AWAY_DAYS = 366
# Cadences an admin may set: weekly, every two weeks, every four weeks (as in bot.conf).
CADENCES = (1, 2, 4)
# Period name of goals added by hand rather than imported from goal files.
MANUAL_PERIOD = "manual"
# Longest slug and title `goal add` accepts (the database's slug column is 200 wide).
MAX_SLUG = 100
MAX_TITLE = 300
# The GitHub login rules: letters, digits and single hyphens, at most 39 characters.
GITHUB_HANDLE = re.compile(r"^[a-z\d](?:[a-z\d]|-(?=[a-z\d])){0,38}$", re.I)
# Unknown command words are quoted back at most this long.
ECHO_WORD_CHARS = 40


# --------------------------------------------------------------------------------------------
# The commands, their syntax and examples (the help text is generated from this table).


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    syntax: str
    summary: str
    example: str
    group: str  # "anyone", "owners" or "admins"


ANYONE, OWNERS, ADMINS = "anyone", "owners", "admins"

SPECS: tuple[Spec, ...] = (
    Spec("status", "status <goal>", "owners, latest update, and what is due", "status polonius",
         ANYONE),
    Spec("history", "history <goal> [N]", f"the last N updates and comments (default "
         f"{HISTORY_DEFAULT}, at most {HISTORY_MAX})", "history polonius 10", ANYONE),
    Spec("list", "list [flagship | roadmap <name> | team <name> | due | overdue | paused]",
         "goals at a glance", "list team compiler", ANYONE),
    Spec("mine", "mine", "the goals you own or champion, and whether you owe an update", "mine",
         ANYONE),
    Spec("overdue", "overdue", "goals that have missed more than one update", "overdue",
         ANYONE),
    Spec("subscribe", "subscribe digest [champion]", "get the weekly digest by DM (`champion`: "
         "only the goals you champion)", "subscribe digest", ANYONE),
    Spec("unsubscribe", "unsubscribe digest", "stop the digest DMs", "unsubscribe digest",
         ANYONE),
    Spec("iam", "I am @github-handle", "link the GitHub handle that goal files name you by",
         "I am @ferris", ANYONE),
    Spec("about", "about", "version, schedule, and who runs this bot", "about", ANYONE),
    Spec("help", "help", "this list", "help", ANYONE),
    Spec("skip", "skip [<goal>]", "no update needed this period (in a goal's topic, that goal)",
         "skip polonius", OWNERS),
    Spec("away", "away until <YYYY-MM-DD> | away for <N> days/weeks",
         "no prompts while you are away", "away for 2 weeks", OWNERS),
    Spec("back", "back", "you are back: prompts resume", "back", OWNERS),
    Spec("pause", "pause <goal>", "stop prompts for a goal until `resume`", "pause polonius",
         OWNERS),
    Spec("resume", "resume <goal>", "prompt a paused or completed goal again",
         "resume polonius", OWNERS),
    Spec("complete", "complete <goal>", "mark a goal done: no more prompts",
         "complete polonius", OWNERS),
    Spec("goal", "goal add <slug> <title> [--period <name>]", "add a goal by hand",
         "goal add faster-builds Faster incremental builds", ADMINS),
    Spec("owners", "owners set|add|remove <goal> <@github-handles, @-mentions or emails>",
         "change who owns a goal", "owners add polonius @lqd", ADMINS),
    Spec("cadence", "cadence <goal> 1|2|4|default", "weeks between prompts for one goal",
         "cadence polonius 4", ADMINS),
    Spec("retire", "retire <goal>", "stop tracking a goal (its history stays)", "retire polonius",
         ADMINS),
    Spec("map", "map @github-handle <@-mention or email>",
         "link (or move) a GitHub handle to a Zulip user", "map @ferris ferris@example.com",
         ADMINS),
    Spec("subscribers", "subscribers", "who gets the digest by DM", "subscribers", ADMINS),
)  # fmt: skip
SPEC_BY_NAME: Mapping[str, Spec] = {s.name: s for s in SPECS}
UNKNOWN = "unknown"

# Other words people use for the same commands.
ALIASES: Mapping[str, str] = {
    "?": "help",
    "commands": "help",
    "version": "about",
    "i'm": "iam",
    "im": "iam",
    "unpause": "resume",
}
LIST_FILTERS = ("flagship", "roadmap", "team", "due", "overdue", "paused", "all")
# `list` filters that take a name after them.
_NAMED_FILTERS = frozenset({"team", "roadmap"})
OWNERS_ACTIONS = ("set", "add", "remove")
# What may follow `subscribe`: only the digest can be subscribed to.
_DIGEST_WORDS = frozenset({"", "digest", "to digest", "the digest", "to the digest"})
# ... and for only the goals one champions (`subscribe digest champion`).
_CHAMPION_DIGEST_WORDS = frozenset(
    {"digest champion", "champion digest", "digest champions", "champion", "digest as champion"}
)
# Commands that take no argument: only the bare word is a command (in a DM, "back from
# holidays, here is what happened" is an update, not `back`).
_BARE = frozenset({"help", "about", "mine", "overdue", "back", "subscribers"})
# Commands whose "did you mean" choices can be retyped as `<command> <slug>`.
_RETYPE = frozenset({"status", "history", "skip", "pause", "resume", "complete", "retire"})
_SKIP_FILLER = re.compile(r"^(?:this|the|for)?\s*(?:week|period|time|round|update|one)?$", re.I)


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed request: the command's name, a sub-command word, and the rest as typed."""

    name: str  # a Spec name, or "unknown"
    sub: str = ""  # `list` filter, `owners` action, `goal` action
    text: str = ""  # the arguments, as typed (goal names have spaces, mentions too)
    typed: str = ""  # the command word as typed, to quote it back when unknown

    @property
    def args(self) -> tuple[str, ...]:
        return tuple(self.text.split())


def strip_mention(text: str, bot_name: str) -> str:
    """The text without a leading mention of the bot (``@**Name**``, ``@_**Name|id**``)."""
    pattern = r"^\s*@_?\*\*" + re.escape(bot_name) + r"(?:\|\d+)?\*\*[\s:,]*"
    return re.sub(pattern, "", text, count=1, flags=re.I).strip()


def _split_word(text: str) -> tuple[str, str]:
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def parse(text: str, bot_name: str = "Goals Bot") -> Command:
    """Read a command from a message; empty text asks for help.  Pure."""
    body = strip_mention(text, bot_name)
    if not body:
        return Command("help")
    word, rest = _split_word(body)
    key = word.lower()
    key = key.rstrip(":,.!?") or key
    if key == "i":  # "I am @handle"
        second, after = _split_word(rest)
        if second.lower() == "am":
            return Command("iam", text=after, typed=f"{word} {second}")
    name = ALIASES.get(key, key)
    if name not in SPEC_BY_NAME:
        return Command(UNKNOWN, text=rest, typed=word)
    if name in ("list", "owners", "goal"):
        sub, after = _split_word(rest)
        return Command(name, sub=sub.lower(), text=after, typed=word)
    return Command(name, text=rest, typed=word)


def is_command(text: str, bot_name: str) -> bool:
    """Whether a message is a command rather than an update (used for DMs and goal topics).

    Only a one-line message whose first word is a known command, with arguments of the expected
    shape, counts: "status polonius" is a command, "Status: landed the PR" and "back from
    holidays, here is the news" are updates.  An empty message (or only the bot's mention) asks
    for help.
    """
    body = strip_mention(text, bot_name)
    if not body:
        return True
    if "\n" in body or len(body) > MAX_COMMAND_CHARS:
        return False
    word = body.split()[0]
    if word.endswith((":", ",")):
        return False
    command = parse(body, bot_name)
    rest = command.text.strip().rstrip("?!.").strip()
    match command.name:
        case "unknown":
            return False
        case name if name in _BARE:
            return not rest and not command.sub
        case "list":
            return command.sub in ("", *LIST_FILTERS) and (
                command.sub in _NAMED_FILTERS or not rest
            )
        case "subscribe":
            return rest.lower() in _DIGEST_WORDS | _CHAMPION_DIGEST_WORDS
        case "unsubscribe":
            return rest.lower() in _DIGEST_WORDS
        case "iam":
            return len(command.args) == 1
        case "away":
            return rest.lower().startswith(("until ", "for "))
        case "goal":
            return command.sub == "add"
        case "owners":
            return command.sub in OWNERS_ACTIONS
        case "map":
            return command.text.startswith("@") or len(command.args) == 2
        case _:  # a goal name and maybe a number: short, and not "Status: landed the PR"
            return (
                len(rest) <= MAX_GOAL_QUERY
                and len(rest.split()) <= MAX_GOAL_WORDS
                and not any(mark in rest for mark in (": ", ", ", "; ", ". "))
            )


# --------------------------------------------------------------------------------------------
# Replies


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


class CommandError(Exception):
    """A request the bot cannot carry out; the message says why, for the person who asked."""


# --------------------------------------------------------------------------------------------
# Pure pieces: what the bot says, computed from views and settings.


@dataclass(frozen=True, slots=True)
class Moment:
    """The settings and the instant an answer is computed for."""

    now: datetime
    config: Config
    slot: Slot
    site: str

    @property
    def today(self) -> date:
        return self.now.astimezone(self.config.timezone).date()

    def cadence(self, goal: GoalView) -> int:
        return goal.cadence_weeks or self.config.schedule.cadence_weeks

    def due(self, goal: GoalView) -> DueState:
        facts = goal.facts(self.config.schedule.cadence_weeks, self.today)
        return due_state(facts, self.now, self.slot, self.config.schedule.grace_days)

    def next_prompt(self, goal: GoalView) -> datetime | None:
        if not self.config.schedule.enabled or not (goal.active and goal.state is GoalState.ACTIVE):
            return None
        return next_prompt(self.now, self.cadence(goal), self.slot)


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


def safe(text: str) -> str:
    """Stored or typed text, made unable to ping and unable to break our bold marks."""
    return neutralize(text).replace("**", "")


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
    lines.append(f"**Topic**: {topic_link(m.config.stream, goal.zulip_topic)}")
    blocks = ["\n".join(lines)]
    last = goal.last_update
    if last is None:
        blocks.append("**Latest update**: none yet.")
    else:
        quoted = excerpt(last, STATUS_QUOTE_CHARS, STATUS_QUOTE_LINES, prefer_tldr=True)
        blocks.append(
            f"**Latest update**: by {author_text(last)}, {when_text(last.sent_at, m.now)} — "
            f"[view message]({message_link(m.site, last.zulip_message_id)})\n"
            + quote_block(render_handles(quoted, people))
        )
        if last.help_wanted:
            help_text = shorten(neutralize(last.help_wanted), 500)
            blocks.append(f"**Help wanted**: {render_handles(help_text, people)}")
    upcoming = m.next_prompt(goal)
    cadence = plural(m.cadence(goal), "week")
    if upcoming is not None:
        blocks.append(f"**Next prompt**: {time_tag(upcoming)} (every {cadence})")
    elif goal.active and goal.state is GoalState.ACTIVE:
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
        f"(topic {topic_link(m.config.stream, goal.zulip_topic)}):"
    )
    blocks = [head]
    for u in updates:
        kind = "**Update**" if u.kind is UpdateKind.UPDATE else "Comment"
        edited = " (edited)" if u.edited_at else ""
        blocks.append(
            f"{kind} by {author_text(u)}, {when_text(u.sent_at, m.now)}{edited} — "
            f"[view]({message_link(m.site, u.zulip_message_id)})\n"
            + quote_block(excerpt(u, HISTORY_QUOTE_CHARS, HISTORY_QUOTE_LINES, prefer_tldr=False))
        )
    return blocks


def goal_line(goal: GoalView, m: Moment) -> str:
    """One goal in a list: state mark, name, issue, owners, last update."""
    due = m.due(goal)
    issue = f", goals#{goal.tracking_issue}" if goal.tracking_issue is not None else ""
    names = ", ".join(plain_name(o) for o in goal.owners)
    owners = f"; {names}" if names else ""
    last = goal.last_update
    seen = f"last update {days_ago(last.sent_at, m.now)}" if last else "no update yet"
    flag = " :star:" if goal.is_flagship else ""
    return (
        f"- {due.mark} {goal_title(goal)}{flag} (`{goal.slug}`{issue}) — {DUE_TEXT[due]}"
        f"{owners}; {seen}"
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


def schedule_text(config: Config, slot: Slot, now: datetime) -> str:
    s = config.schedule
    if not s.enabled:
        return "Scheduled prompts are switched off."
    stream = f"#**{config.stream}**"
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


def digest_text(config: Config) -> str:
    d = config.digest
    if not d.enabled:
        return "The weekly digest is switched off."
    when = f"every {weekday_name(d.weekday)} at {d.at.strftime('%H:%M')} ({d.timezone.key})"
    if d.topic:
        return (
            f"The weekly digest is posted {when} in {topic_link(d.stream, d.topic)}, and sent by "
            "DM to subscribers (`subscribe digest`)."
        )
    return f"The weekly digest is sent {when} by DM to subscribers (`subscribe digest`)."


# --------------------------------------------------------------------------------------------
# Small parsers for arguments (pure)


def parse_history_args(text: str) -> tuple[str, int]:
    """``<goal> [N]``: a trailing number after a goal name is how many messages to show."""
    words = text.split()
    if len(words) >= 2 and words[-1].isdigit():
        return " ".join(words[:-1]), int(words[-1])
    return text.strip(), HISTORY_DEFAULT


_AWAY_FOR = re.compile(r"^for\s+(\d+)\s*(d|days?|w|wks?|weeks?)$", re.I)
_AWAY_UNTIL = re.compile(r"^(?:until|till|til)\s+(\S+)$", re.I)


def parse_away(text: str, today: date) -> date:
    """The last day someone is away: ``until 2026-12-15`` or ``for 3 weeks``."""
    text = " ".join(text.split()).rstrip(".!")
    usage = "Say `away until 2026-12-15` (a date) or `away for 2 weeks`."
    m = _AWAY_FOR.match(text)
    if m:
        n = int(m.group(1))
        days = n * 7 if m.group(2).lower().startswith("w") else n
        if days < 1:
            raise CommandError(f"Away for no time at all? {usage}")
        until = today + timedelta(days=days)
    else:
        m = _AWAY_UNTIL.match(text)
        if not m:
            raise CommandError(f"I didn't understand '{echo(text)}'. {usage}")
        try:
            until = date.fromisoformat(m.group(1))
        except ValueError:
            raise CommandError(
                f"'{echo(m.group(1))}' is not a date I can read; write it as YYYY-MM-DD. {usage}"
            ) from None
        if until <= today:
            raise CommandError(
                f"{until.isoformat()} is not in the future (today is {today.isoformat()}). {usage}"
            )
    if (until - today).days > MAX_AWAY_DAYS:
        raise CommandError(
            f"That is more than a year away ({until.isoformat()}); if you are stepping back from "
            "a goal, ask an admin to change its owners instead."
        )
    return until


def parse_handle(text: str) -> str:
    """A GitHub handle as typed (``@ferris``, ``ferris``, ``github.com/ferris``), lower-cased."""
    raw = text.strip().rstrip(".!")
    handle = re.sub(r"^(?:https?://)?(?:www\.)?github\.com/", "", raw, flags=re.I).lstrip("@")
    handle = handle.rstrip("/")
    if not GITHUB_HANDLE.match(handle):
        raise CommandError(
            f"'{echo(raw)}' is not a GitHub handle. Say `I am @your-github-handle`, "
            "the handle goal files list you by."
        )
    return handle.lower()


# A person in `owners` and `map`: a Zulip mention, an email, or an @github-handle.
_PERSON = re.compile(
    r"@_?\*\*(?P<name>[^*|]+?)(?:\|(?P<id>\d+))?\*\*"
    r"|(?P<email>[^\s@,<>*]+@[^\s@,<>*]+\.[^\s@,<>*]+)"
    r"|@(?P<handle>[A-Za-z0-9][A-Za-z0-9-]*)"
)


@dataclass(frozen=True, slots=True)
class PersonRef:
    """Someone named in a command, before looking them up."""

    kind: str  # "zulip", "email" or "github"
    value: str  # user id / name, email, or handle
    name: str = ""

    def shown(self) -> str:
        match self.kind:
            case "github":
                return f"@{self.value}"
            case "zulip":
                return safe(self.name or self.value)
            case _:
                return safe(self.value)


def parse_people(text: str) -> tuple[str, list[PersonRef]]:
    """Split ``<goal> <people...>``: the goal is everything before the first person."""
    first = _PERSON.search(text)
    if first is None:
        return text.strip(), []
    head, tail = text[: first.start()].strip(), text[first.start() :]
    refs: list[PersonRef] = []
    pos = 0
    for m in _PERSON.finditer(tail):
        between = tail[pos : m.start()].strip(" ,;")
        if between and between.lower() != "and":
            raise CommandError(
                f"I didn't understand '{echo(between)}'. Name people as @github-handle, with a "
                "Zulip @-mention, or by email."
            )
        pos = m.end()
        if m.group("email"):
            refs.append(PersonRef("email", m.group("email").lower()))
        elif m.group("handle"):
            handle = m.group("handle")
            if not GITHUB_HANDLE.match(handle):
                raise CommandError(f"'@{echo(handle)}' is not a GitHub handle.")
            refs.append(PersonRef("github", handle.lower()))
        elif m.group("id"):
            refs.append(PersonRef("zulip", m.group("id"), m.group("name").strip()))
        else:
            refs.append(PersonRef("zulip", "", m.group("name").strip()))
    rest = tail[pos:].strip(" ,;")
    if rest:
        raise CommandError(f"I didn't understand '{echo(rest)}' after the names.")
    return head, refs


# --------------------------------------------------------------------------------------------
# The imperative shell: one database transaction per command.


@dataclass
class Call:
    """A command being handled: who asked, where, and the open transaction."""

    ctx: Context
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
        return self.ctx.config


Handler = Callable[[Call, Command], list[str]]


def _sender_is_admin(ctx: Context, session: Session, sender: SenderInfo) -> bool:
    if sender.is_realm_admin or ctx.is_admin_email(sender.email):
        return True
    flag = session.execute(
        select(Person.is_admin).where(Person.zulip_user_id == sender.user_id)
    ).scalar_one_or_none()
    return bool(flag)


def handle(
    ctx: Context, sender: SenderInfo, command: Command, *, in_topic: tuple[str, str] | None
) -> Reply:
    """Run one command in one write transaction; a refused or mistaken request changes nothing.

    Raises ``StorageError`` only when the database itself is unavailable.
    """
    if command.name == "help":
        return Reply.of([help_text(ctx.bot_name)])
    if command.name == UNKNOWN:
        return Reply.of([unknown_text(command, ctx.bot_name)])
    spec = SPEC_BY_NAME[command.name]
    now = ctx.clock.now()
    moment = Moment(now=now, config=ctx.config, slot=ctx.slot, site=ctx.site)
    try:
        with ctx.db.write() as session:
            admin = _sender_is_admin(ctx, session, sender)
            if spec.group == ADMINS and not admin:
                used = "goal add" if spec.name == "goal" else spec.name
                raise CommandError(
                    f"Sorry, only bot admins can use `{used}`; nothing was changed. "
                    "Say `about` to see who the admins are."
                )
            me = ensure_people(session, [sender], now)[sender.user_id]
            call = Call(ctx, session, sender, me, admin, in_topic, moment)
            blocks = HANDLERS[command.name](call, command)
    except CommandError as exc:
        return Reply.of([str(exc)])
    return Reply.of(blocks, sep="\n\n")


def unknown_text(command: Command, bot_name: str) -> str:
    word = echo(command.typed, ECHO_WORD_CHARS)
    return f"I don't know the command '{word}'. Here is what I can do:\n\n" + help_text(bot_name)


# -- goal lookup ---------------------------------------------------------------------------


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


def _owned_goal_ids(session: Session, person_id: int, *, live_only: bool) -> list[int]:
    query = (
        select(Goal.id)
        .join(GoalOwner, GoalOwner.goal_id == Goal.id)
        .where(GoalOwner.person_id == person_id)
        .order_by(Goal.id)
    )
    if live_only:
        query = query.where(Goal.active.is_(True), Goal.state == GoalState.ACTIVE)
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
            owned = _owned_goal_ids(call.session, call.me.id, live_only=True)
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


def _require_owner(call: Call, goal: GoalView, verb: str) -> None:
    if not (call.is_admin or _is_owner(goal, call.me)):
        raise CommandError(
            f"Only the owners of {goal_title(goal)} (or a bot admin) can {verb} it; nothing was "
            "changed. If you own it but I don't know your GitHub handle, say "
            "`I am @your-handle` first."
        )


# -- read-only commands -------------------------------------------------------------------


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
                "`list roadmap <name>`, `list team <name>`, `list due`, `list overdue` or "
                "`list paused`."
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
    ids = _owned_goal_ids(call.session, call.me.id, live_only=False)
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
                call.config.stream, g.zulip_topic
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
        f"**{safe(call.ctx.bot_name)}** {__version__}: asks goal owners for progress updates, "
        "keeps them, and sums them up in a weekly digest. Say `help` for the commands.",
        schedule_text(config, call.moment.slot, call.now),
        digest_text(config),
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


# -- owners' commands ---------------------------------------------------------------------


def cmd_skip(call: Call, command: Command) -> list[str]:
    query = command.text.strip()
    if _SKIP_FILLER.match(query):
        query = ""
    goal = resolve_goal(call, command, query, own_default=True)
    _require_owner(call, goal, "skip")
    m = call.moment
    if not (goal.active and goal.state is GoalState.ACTIVE):
        return [f"{goal_title(goal)} is {DUE_TEXT[m.due(goal)]} — there is nothing to skip."]
    period = period_at(call.now, m.cadence(goal), m.slot)
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
    _require_owner(call, goal, command.name)
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


# -- digest subscription ------------------------------------------------------------------


def _digest_words_ok(command: Command) -> str:
    """The subscription's scope ("all" or "champion"), or an error for anything else."""
    words = " ".join(command.text.strip().lower().rstrip(".!").split())
    if words in _DIGEST_WORDS:
        return "all"
    if command.name == "subscribe" and words in _CHAMPION_DIGEST_WORDS:
        return "champion"
    raise CommandError(
        f"The weekly digest is the only thing to {command.name} to: say `{command.name} digest`"
        + (" (or `subscribe digest champion` for the goals you champion)." if command.name ==
           "subscribe" else ".")
    )  # fmt: skip


def cmd_subscribe(call: Call, command: Command) -> list[str]:
    scope = _digest_words_ok(command)
    existing = call.session.get(DigestSubscription, call.me.id)
    what = "the weekly digest" if scope == "all" else "the weekly digest of the goals you champion"
    if existing is not None and existing.scope == scope:
        return [f"You are already subscribed to {what}. (`unsubscribe digest` stops it.)"]
    if existing is not None:
        existing.scope = scope
        said = f"Changed: from now on I'll DM you {what}."
    else:
        call.session.add(DigestSubscription(person_id=call.me.id, created_at=call.now, scope=scope))
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
    return [f"{said} {digest_text(call.config)}{note}"]


def cmd_unsubscribe(call: Call, command: Command) -> list[str]:
    _digest_words_ok(command)
    existing = call.session.get(DigestSubscription, call.me.id)
    if existing is None:
        return ["You weren't subscribed to the digest; nothing to change."]
    call.session.delete(existing)
    return ["Unsubscribed: no more digest DMs. (`subscribe digest` brings them back.)"]


def cmd_subscribers(call: Call, command: Command) -> list[str]:
    subs = call.session.execute(select(DigestSubscription)).scalars().all()
    if not subs:
        return ["Nobody is subscribed to the digest by DM."]
    names = sorted(
        (
            ZulipUser(s.person.zulip_user_id, s.person.full_name or "user").mention(silent=True)
            if s.person.zulip_user_id is not None
            else safe(s.person.full_name or s.person.email or f"person {s.person_id}")
        )
        for s in subs
    )
    return [
        f"{plural(len(names), 'subscriber')} to the digest by DM:\n"
        + limit_items([f"- {n}" for n in names], SAFE_LENGTH)
    ]


# -- identity ------------------------------------------------------------------------------


def move_ownerships(session: Session, source: Person, target: Person) -> None:
    """Give ``target`` every goal ``source`` owns (a goal both own keeps ``target``'s row)."""
    taken = select(GoalOwner.goal_id).where(GoalOwner.person_id == target.id)
    session.execute(
        delete(GoalOwner).where(GoalOwner.person_id == source.id, GoalOwner.goal_id.in_(taken))
    )
    session.execute(
        update(GoalOwner).where(GoalOwner.person_id == source.id).values(person_id=target.id)
    )


def merge_person(session: Session, source: Person, target: Person) -> None:
    """Move everything of ``source`` (a placeholder without Zulip account) to ``target``."""
    move_ownerships(session, source, target)
    session.execute(update(Update).where(Update.author_id == source.id).values(author_id=target.id))
    session.execute(update(Skip).where(Skip.person_id == source.id).values(person_id=target.id))
    session.execute(
        update(Delivery).where(Delivery.person_id == source.id).values(person_id=target.id)
    )
    if session.get(DigestSubscription, target.id) is None:
        session.execute(
            update(DigestSubscription)
            .where(DigestSubscription.person_id == source.id)
            .values(person_id=target.id)
        )
    source.github = None
    session.flush()
    session.delete(source)
    session.flush()
    session.expire_all()


def _by_github(session: Session, handle: str) -> Person | None:
    return session.execute(select(Person).where(Person.github == handle)).scalar_one_or_none()


def _owned_names(session: Session, person_id: int) -> list[str]:
    rows = session.execute(
        select(Goal.title, Goal.short_title)
        .join(GoalOwner, GoalOwner.goal_id == Goal.id)
        .where(GoalOwner.person_id == person_id, Goal.state != GoalState.RETIRED)
        .order_by(Goal.id)
    )
    return [f"**{safe(short or title)}**" for title, short in rows]


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
    holder = _by_github(call.session, handle)
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
    owned = _owned_names(call.session, me.id)
    goals = (
        " You own: " + limit_items(owned, 3000, sep=", ") + "."
        if owned
        else " No goal lists that handle yet."
    )
    return [f"Thanks! GitHub @{handle} is now linked to your Zulip account.{goals}"]


def _people_where(session: Session, column: Any, values: Sequence[Any]) -> list[Person]:
    """People whose ``column`` is one of ``values``, in one statement (none for no values)."""
    if not values:
        return []
    return list(session.execute(select(Person).where(column.in_(list(values)))).scalars())


def _find_people(call: Call, refs: Sequence[PersonRef], *, create: bool) -> list[Person]:
    """Person rows for names in a command, in order (set-based: one query per kind of name).

    Unknown @github handles and Zulip mentions with an id become new rows when ``create``.
    """
    s = call.session
    ids = [int(r.value) for r in refs if r.kind == "zulip" and r.value]
    names = [r.name.lower() for r in refs if r.kind == "zulip" and not r.value]
    emails = [r.value for r in refs if r.kind == "email"]
    handles = [r.value for r in refs if r.kind == "github"]
    by_id = {p.zulip_user_id: p for p in _people_where(s, Person.zulip_user_id, ids)}
    by_name: dict[str, list[Person]] = {}
    for p in _people_where(s, func.lower(Person.full_name), names):
        if p.zulip_user_id is not None:
            by_name.setdefault((p.full_name or "").lower(), []).append(p)
    by_email = {
        (p.email or "").lower(): p for p in _people_where(s, func.lower(Person.email), emails)
    }
    by_handle = {p.github: p for p in _people_where(s, Person.github, handles)}
    out: list[Person] = []
    for r in refs:
        found: Person | None = None
        match r.kind:
            case "zulip" if r.value:
                found = by_id.get(int(r.value))
                if found is None and create:
                    found = Person(
                        zulip_user_id=int(r.value), full_name=r.name, created_at=call.now
                    )
                    s.add(found)
                    by_id[int(r.value)] = found
            case "zulip":
                matches = by_name.get(r.name.lower(), [])
                if len(matches) != 1:
                    raise CommandError(
                        f"I can't tell which Zulip user '{r.shown()}' is; pick them from the "
                        "@-mention typeahead so the mention carries their id."
                    )
                found = matches[0]
            case "email":
                found = by_email.get(r.value)
                if found is None:
                    raise CommandError(
                        f"I don't know a Zulip user with the email {r.shown()} yet; use an "
                        "@-mention instead."
                    )
            case _:
                found = by_handle.get(r.value)
                if found is None and create:
                    found = Person(github=r.value, mapped_via="admin", created_at=call.now)
                    s.add(found)
                    by_handle[r.value] = found
        if found is None:
            raise CommandError(f"I don't know {r.shown()}.")
        if found not in out:
            out.append(found)
    s.flush()
    return out


def _person_text(p: Person) -> str:
    if p.zulip_user_id is not None:
        return ZulipUser(p.zulip_user_id, p.full_name or p.email or "user").mention(silent=True)
    if p.github:
        return f"@{p.github}"
    return safe(p.full_name or p.email or f"person {p.id}")


def cmd_map(call: Call, command: Command) -> list[str]:
    words = command.text.split(None, 1)
    usage = "Say `map @github-handle @-mention` (or an email instead of the mention)."
    if len(words) != 2:
        raise CommandError(usage)
    handle = parse_handle(words[0])
    head, refs = parse_people(words[1])
    if head or len(refs) != 1 or refs[0].kind == "github":
        raise CommandError(usage)
    (target,) = _find_people(call, refs, create=True)
    if target.zulip_user_id is None:
        raise CommandError(usage)
    holder = _by_github(call.session, handle)
    if holder is not None and holder.id == target.id:
        return [f"GitHub @{handle} is already linked to {_person_text(target)}."]
    notes = []
    if target.github and target.github != handle:
        notes.append(f"(they were @{target.github} before)")
        target.github = None
        call.session.flush()
    if holder is not None and holder.zulip_user_id is None:
        merge_person(call.session, holder, target)
    elif holder is not None:
        move_ownerships(call.session, holder, target)
        notes.append(f"(moved from {_person_text(holder)}, with its goals)")
        holder.github = None
        call.session.flush()
    target.github = handle
    target.mapped_via = "admin"
    call.session.flush()
    extra = (" " + " ".join(notes)) if notes else ""
    return [f"GitHub @{handle} is now linked to {_person_text(target)}{extra}."]


# -- admin commands -----------------------------------------------------------------------

_PERIOD_OPTION = re.compile(r"(?:^|\s)--period(?:=|\s+)(\S+)")
_SLUG = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_SLUG - 1}}}$")


def cmd_goal(call: Call, command: Command) -> list[str]:
    if command.sub != "add":
        raise CommandError("Say `goal add <slug> <title>` (and `--period <name>` if you like).")
    text = command.text
    period = MANUAL_PERIOD
    option = _PERIOD_OPTION.search(text)
    if option:
        period = option.group(1)
        text = (text[: option.start()] + " " + text[option.end() :]).strip()
    slug, title = _split_word(text)
    if not slug or not title:
        raise CommandError(
            "A goal needs a slug and a title: `goal add faster-builds Faster incremental builds`."
        )
    if not _SLUG.match(slug):
        raise CommandError(
            f"'{echo(slug)}' can't be a slug: use letters, digits, '-' and '_' "
            f"(at most {MAX_SLUG} characters)."
        )
    if not re.match(r"^[\w.-]{1,40}$", period):
        raise CommandError(f"'{echo(period)}' can't be a period name (like `2025h2`).")
    title = " ".join(title.split())
    if len(title) > MAX_TITLE:
        raise CommandError(f"That title is {len(title)} characters; keep it under {MAX_TITLE}.")
    exists = call.session.execute(
        select(Goal.id).where(Goal.period == period, Goal.slug == slug)
    ).first()
    if exists:
        raise CommandError(f"There is already a goal `{slug}` in period {period}.")
    taken = set(call.session.execute(select(Goal.zulip_topic)).scalars())
    topic = goal_topic(title, None, None, taken)
    goal = Goal(
        period=period,
        slug=slug,
        title=title,
        short_title=None,
        status="Accepted",
        tracking_issue=None,
        zulip_topic=topic,
        teams="",
        state=GoalState.ACTIVE,
        active=True,
        extra={},
        created_at=call.now,
        updated_at=call.now,
    )
    call.session.add(goal)
    call.session.flush()
    return [
        f"Added **{safe(title)}** (`{slug}`, period {period}); its topic is "
        f"{topic_link(call.config.stream, topic)}. Add owners with "
        f"`owners add {slug} @github-handle`."
    ]


def cmd_owners(call: Call, command: Command) -> list[str]:
    action = command.sub
    if action not in OWNERS_ACTIONS:
        raise CommandError(
            "Say `owners set|add|remove <goal> @github-handle ...` (Zulip @-mentions and emails "
            "work too)."
        )
    query, refs = parse_people(command.text)
    if not refs:
        raise CommandError(f"Whom? Say for example `owners {action} polonius @lqd`.")
    goal = resolve_goal(call, command, query)
    people = _find_people(call, refs, create=action != "remove")
    rows = list(
        call.session.execute(select(GoalOwner).where(GoalOwner.goal_id == goal.id)).scalars()
    )
    current = {r.person_id: r for r in rows}
    wanted_ids = [p.id for p in people]
    if action == "remove":
        missing = [p for p in people if p.id not in current]
        if missing:
            raise CommandError(
                f"{', '.join(_person_text(p) for p in missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not an owner of {goal_title(goal)}; "
                "nothing was changed."
            )
        for pid in wanted_ids:
            call.session.delete(current.pop(pid))
    else:
        if action == "set":
            for pid in list(current):
                if pid not in wanted_ids:
                    call.session.delete(current.pop(pid))
        position = max((r.position for r in current.values()), default=-1) + 1
        for p in people:
            if p.id in current:
                continue
            row = GoalOwner(
                goal_id=goal.id, person_id=p.id, role=OwnerRole.OWNER, position=position
            )
            call.session.add(row)
            current[p.id] = row
            position += 1
        if action == "set":
            for i, pid in enumerate(wanted_ids):
                current[pid].position = i
    goal_row = call.session.get(Goal, goal.id)
    assert goal_row is not None
    goal_row.updated_at = call.now
    call.session.flush()
    after = load_goals(call.session, goal_ids=[goal.id], include_inactive=True)[0]
    owners = ", ".join(owner_text(o, call.moment.today) for o in after.owners) or "nobody"
    return [f"Owners of {goal_title(after)}: {owners}."]


def cmd_cadence(call: Call, command: Command) -> list[str]:
    words = command.text.split()
    usage = "Say `cadence <goal> 1`, `2` or `4` (weeks between prompts), or `default`."
    if not words:
        raise CommandError(usage)
    value = words[-1].lower()
    query = " ".join(words[:-1])
    if value == "default":
        weeks: int | None = None
    elif value.isdigit() and int(value) in CADENCES:
        weeks = int(value)
    else:
        raise CommandError(f"'{echo(value)}' is not a cadence. {usage}")
    goal = resolve_goal(call, command, query)
    row = call.session.get(Goal, goal.id)
    assert row is not None
    row.cadence_weeks = weeks
    row.updated_at = call.now
    effective = weeks or call.config.schedule.cadence_weeks
    default = " (the default)" if weeks is None else ""
    upcoming = next_prompt(call.now, effective, call.moment.slot)
    return [
        f"{goal_title(goal)} is now prompted every {plural(effective, 'week')}{default}. "
        f"Next prompt: {time_tag(upcoming)}."
    ]


def cmd_retire(call: Call, command: Command) -> list[str]:
    goal = resolve_goal(call, command, command.text)
    if goal.state is GoalState.RETIRED:
        return [f"{goal_title(goal)} is already retired."]
    row = call.session.get(Goal, goal.id)
    assert row is not None
    row.state = GoalState.RETIRED
    row.updated_at = call.now
    return [
        f"{goal_title(goal)} is retired: no more prompts, and it leaves lists and the digest. "
        "Its history stays."
    ]


HANDLERS: Mapping[str, Handler] = {
    "status": cmd_status,
    "history": cmd_history,
    "list": cmd_list,
    "mine": cmd_mine,
    "overdue": cmd_overdue,
    "subscribe": cmd_subscribe,
    "unsubscribe": cmd_unsubscribe,
    "iam": cmd_iam,
    "about": cmd_about,
    "skip": cmd_skip,
    "away": cmd_away,
    "back": cmd_back,
    "pause": cmd_transition,
    "resume": cmd_transition,
    "complete": cmd_transition,
    "goal": cmd_goal,
    "owners": cmd_owners,
    "cadence": cmd_cadence,
    "retire": cmd_retire,
    "map": cmd_map,
    "subscribers": cmd_subscribers,
}


# --------------------------------------------------------------------------------------------
# zulip_bots adapter


class BotHandler(Protocol):
    def send_reply(
        self, message: dict[str, Any], response: str, widget_content: str | None = None
    ) -> Any: ...


class GoalsBotHandler:
    """The zulip_bots handler protocol around ``parse`` and ``handle``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def usage(self) -> str:
        return (
            "Goals Bot asks goal owners for progress updates and answers questions about goals.\n\n"
            + help_text(self.ctx.bot_name)
        )

    def initialize(self, bot_handler: Any) -> None:
        """Nothing to set up: everything lives in the Context."""

    def handle_message(self, message: dict[str, Any], bot_handler: BotHandler) -> None:
        sender = SenderInfo(
            user_id=int(message["sender_id"]),
            email=str(message.get("sender_email", "")),
            full_name=str(message.get("sender_full_name", "")),
        )
        recipient = message.get("display_recipient")
        is_stream = message.get("type", "stream" if isinstance(recipient, str) else "private") in (
            "stream",
            "channel",
        )
        topic = str(message.get("subject", message.get("topic", "")))
        in_topic = (str(recipient), topic) if is_stream and topic else None
        command = parse(str(message.get("content", "")), bot_name=self.ctx.bot_name)
        try:
            reply = handle(self.ctx, sender, command, in_topic=in_topic)
        except GoalsBotError as exc:
            log.error("command failed: %s", exc)
            reply = Reply(
                [
                    "Sorry, I couldn't do that just now (my database is busy). "
                    "Please try again in a minute."
                ]
            )
        for text in reply.messages:
            bot_handler.send_reply(message, text)
