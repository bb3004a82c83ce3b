"""The weekly digest: where every goal stands, and what needs someone's attention.

``compose_digest`` is a pure function from plain data (``DigestData``) to message parts, so its
output can be checked against golden files.  ``digest.delivery.send_digest`` is the shell around
it: it loads the data in a fixed number of statements, then hands one ``outbox.Request`` per
destination (the digest topic and each subscriber's DMs) to ``outbox.deliver``, whose claim makes
the digest go out exactly once per digest week, whatever restarts or doubled ticks happen.

Health is the owners' own call and nothing else: the digest opens with the goals that turned at
risk or blocked during its week, each goal's line shows its health when it has one, and "Needs
attention" lists the goals that stayed blocked or at risk and those whose owners say done while
the goal is still open.  A goal that never said shows no health; none is guessed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from zulip_goals_bot.domain.health import (
    ATTENTION_PERIODS,
    GoalHealth,
    Health,
    HealthCall,
    describe,
    periods_held,
    turned,
)
from zulip_goals_bot.domain.markdown import (
    SAFE_LENGTH,
    StreamRef,
    ZulipUser,
    days_ago,
    limit_items,
    neutralize,
    plural,
    shorten,
    split_blocks,
    topic_link,
)
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.schedule import DueState
from zulip_goals_bot.domain.states import DeliveryKind, UpdateSource
from zulip_goals_bot.domain.views import GoalView, OwnerContact, PersonView
from zulip_goals_bot.goals.grouping import goal_groups
from zulip_goals_bot.people.handles import render_handles

# A TL;DR is one or two sentences; the start of an update is cut to the same size so that a
# program of ~40 goals fits in two or three messages.
EXCERPT_CHARS = 240


EXCERPT_LINES = 3


HELP_CHARS = 200


# Zulip's error messages can be long; the digest only needs the gist.
ERROR_CHARS = 160


# One "Needs attention" list (e.g. 200 overdue goals) never takes more than this many characters;
# at about 200 characters a line (a topic link carries its URL), that is some 25 goals.
ATTENTION_LIST_CHARS = 5_000


# The owner's words beside a goal that turned at risk or blocked: one line, like a TL;DR.
TURNED_WORDS_CHARS = 200


# Room under SAFE_LENGTH is kept for the "(part 2 of 3)" line added after the split.
PART_LIMIT = SAFE_LENGTH


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """A prompt, reminder or DM that Zulip refused during the week."""

    kind: DeliveryKind
    target: str
    period: str
    error: str | None
    at: datetime
    goal_name: str | None
    person: PersonView | None

    def render(self) -> str:
        if self.kind in (DeliveryKind.PROMPT, DeliveryKind.REMINDER, DeliveryKind.DIGEST):
            what = self.kind.value
        elif self.kind is DeliveryKind.CLOSING:
            what = "closing note"
        else:
            what = "DM " + ("prompt" if self.kind is DeliveryKind.DM_PROMPT else "reminder")
        if self.goal_name:
            what += f" for **{neutralize(self.goal_name)}**"
        if self.person is not None:
            what += f" to {_who(self.person)}"
        reason = neutralize(shorten(self.error, ERROR_CHARS)) if self.error else "unknown error"
        return f"{what} (period {self.period}): {reason}"


@dataclass(frozen=True, slots=True)
class IdentityClaim:
    """Someone said "this GitHub handle is me" during the week."""

    github: str
    person: PersonView
    at: datetime

    def render(self) -> str:
        return f"@{neutralize(self.github)} claimed by {_who(self.person)}"


@dataclass(frozen=True, slots=True)
class DigestData:
    """Everything the digest shows, read from the database in one go."""

    goals: tuple[GoalView, ...]
    since: datetime
    now: datetime
    failed: tuple[FailedDelivery, ...] = ()
    claims: tuple[IdentityClaim, ...] = ()
    updated_ids: frozenset[int] = frozenset()  # goals with an owner update since ``since``
    setup: tuple[str, ...] = ()  # set-up problems an admin must fix (``doctor`` at start-up)
    period: str | None = None  # the period whose goals these are (None: every goal)
    # Zulip accounts of the GitHub handles that the shown updates name (lower-case handle).
    people: tuple[tuple[str, ZulipUser], ...] = ()

    def only(self, goal_ids: frozenset[int]) -> DigestData:
        """The same digest for some goals only (a champion's), without the program's chores."""
        return DigestData(
            goals=tuple(g for g in self.goals if g.id in goal_ids),
            since=self.since,
            now=self.now,
            updated_ids=self.updated_ids & goal_ids,
            period=self.period,
            people=self.people,
        )


def _who(person: PersonView) -> str:
    """A silent mention, or the neutralized name of someone without a Zulip account."""
    return person.silent() if person.user is not None else neutralize(person.display)


def _handle(person: PersonView) -> str:
    return neutralize(f"@{person.github}" if person.github else person.display)


@dataclass(frozen=True, slots=True)
class _Row:
    """One goal with its due state, computed once for the summary, the list and attention."""

    goal: GoalView
    state: DueState


def _freshness(goal: GoalView, updated: bool, now: datetime, site: str) -> str:
    last = goal.last_update
    if last is None:
        return "no update yet"
    where = " on GitHub" if last.source is UpdateSource.GITHUB else ""
    link = f"[latest update{where}]({last.link(site)})"
    if updated:
        return f"updated {days_ago(last.sent_at, now)} ({link})"
    return f"no update for {plural((now - last.sent_at).days, 'day')} ({link})"


def _quote(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in text.split("\n"))


def _goal_block(
    row: _Row,
    *,
    stream: StreamRef,
    updated: bool,
    now: datetime,
    site: str,
    people: dict[str, ZulipUser],
) -> str:
    """A goal as the digest shows it: mark, title, topic, owners, freshness, help, excerpt."""
    goal = row.goal
    owners = ", ".join(_who(p) for p in goal.poc) or "_no owner_"
    health = f"{describe(goal.health, now)} · " if goal.health is not None else ""
    lines = [
        f"{row.state.mark} **{neutralize(goal.name)}** · {health}"
        f"{topic_link(stream, goal.zulip_topic)}",
        f"{owners} · {_freshness(goal, updated, now, site)}"
        + (f" · {goal.progress}" if goal.progress is not None and goal.progress.total else ""),
    ]
    last = goal.last_update
    if last is not None and last.help_wanted:
        help_text = neutralize(shorten(last.help_wanted, HELP_CHARS))
        lines.append(f"**Help wanted:** {render_handles(help_text, people)}")
    if last is not None:
        source = last.tldr or last.content
        excerpt = neutralize(shorten(source, EXCERPT_CHARS, max_lines=EXCERPT_LINES))
        if excerpt:
            lines.append(_quote(render_handles(excerpt, people)))
    return "\n".join(lines)


def _summary(rows: Sequence[_Row], updated: int) -> str:
    count = {s: 0 for s in DueState}
    for row in rows:
        count[row.state] += 1
    return " · ".join(
        [
            f"**{plural(len(rows), 'goal')}**",
            f"{updated} updated this week",
            f"{count[DueState.DUE]} due",
            f"{count[DueState.OVERDUE]} overdue",
            f"{count[DueState.PAUSED] + count[DueState.AWAY]} paused/away",
            f"{count[DueState.GRACE]} in grace",
        ]
    )


def _groups(rows: Sequence[_Row]) -> list[tuple[str, Sequence[_Row]]]:
    """Highlights, flagship goals by theme, teams, the rest (see ``grouping``)."""
    return [
        (neutralize(g.title).replace("*", ""), g.items) for g in goal_groups(rows, lambda r: r.goal)
    ]


def _open(row: _Row) -> GoalHealth | None:
    """The goal's health when it is still news: not for a goal that is over (completed, retired,
    not prompted), whose last call is history."""
    return row.goal.health if row.state not in _CLOSED else None


def _help_order(item: tuple[_Row, GoalHealth]) -> tuple[bool, datetime, str]:
    """Blocked before at risk, then the longest-standing first, then by name."""
    row, health = item
    return health.health is not Health.BLOCKED, health.since, row.goal.name.casefold()


def _health_text(health: GoalHealth, now: datetime) -> str:
    """``blocked since 12 Nov 2025 (3 days ago)``: the health as ``describe`` says it, without
    the mark (shown before the goal's name)."""
    return describe(health, now).removeprefix(f"{health.health.mark} ")


def _shown_call(health: GoalHealth) -> HealthCall:
    """The call whose words and link the digest shows: the newest of the current run that has
    words (a reaction has none), else the newest."""
    return health.voiced()


def _call_link(call: HealthCall, site: str) -> str:
    link = call.link(site)
    if not link:
        return ""
    return f" ([{call.link_text}]({link}))"


def _turned(
    rows: Sequence[_Row], data: DigestData, site: str, people: dict[str, ZulipUser]
) -> str | None:
    """The block the digest opens with: goals that turned at risk or blocked this week."""
    found = [(r, h) for r in rows if (h := _open(r)) is not None and turned(h, data.since)]
    if not found:
        return None
    items = []
    for r, h in sorted(found, key=_help_order):
        call = _shown_call(h)
        line = f"- {h.health.mark} **{neutralize(r.goal.name)}** · {_health_text(h, data.now)}"
        said = []
        if call.author:
            said.append(neutralize(call.author) + ":")
        if call.words:
            words = neutralize(shorten(" ".join(call.words.split()), TURNED_WORDS_CHARS))
            said.append(render_handles(words, people))
        if said:
            line += " · " + " ".join(said)
        items.append(line + _call_link(call, site))
    return "**Turned at risk or blocked this week**\n" + limit_items(items, ATTENTION_LIST_CHARS)


def _health_attention(
    rows: Sequence[_Row], data: DigestData, stream: StreamRef, program: Program
) -> list[tuple[str, list[str]]]:
    """Goals blocked or at risk for ``ATTENTION_PERIODS`` of their periods or more, and goals
    whose owners say done while the goal is still open."""
    now = data.now
    stuck: list[tuple[_Row, GoalHealth, int]] = []
    done: list[tuple[_Row, GoalHealth]] = []
    for r in rows:
        h = _open(r)
        if h is None:
            continue
        if h.health.needs_help:
            held = periods_held(h, program.periods(r.goal, h.since, now))
            if held >= ATTENTION_PERIODS:
                stuck.append((r, h, held))
        elif h.health is Health.DONE:
            done.append((r, h))

    def owners(r: _Row) -> str:
        return ", ".join(_who(p) for p in r.goal.poc) or "_no owner_"

    stuck_items = [
        f"- {topic_link(stream, r.goal.zulip_topic)}: {describe(h, now)}, "
        f"for {plural(held, 'period')} · {owners(r)}"
        for r, h, held in sorted(
            stuck,
            key=lambda s: (s[1].health is not Health.BLOCKED, -s[2], s[0].goal.name.casefold()),
        )
    ]
    done_items = [
        f"- {topic_link(stream, r.goal.zulip_topic)}: {describe(h, now)} · {owners(r)}"
        for r, h in sorted(done, key=lambda d: (d[1].since, d[0].goal.name.casefold()))
    ]
    return [
        (f"Blocked or at risk for {ATTENTION_PERIODS} periods or more", stuck_items),
        (_DONE_TITLE, done_items),
    ]


_DONE_TITLE = "Owners say done; still active"
# Said under that title: the owners' word does not complete a goal by itself.
_DONE_HINT = "an owner can confirm with `complete <goal>`"


def _attention(
    rows: Sequence[_Row], data: DigestData, stream: StreamRef, program: Program, today: date
) -> list[str]:
    """The "Needs attention" lists, one block each, every one bounded in length."""
    now = data.now
    prompted = [r for r in rows if r.state not in _NOT_PROMPTED]
    overdue = []
    # Longest silence first: goals that never had an update, then the oldest last update.
    for r in sorted(
        (r for r in rows if r.state is DueState.OVERDUE),
        key=lambda r: (r.goal.last_update is not None, _last_at(r.goal), r.goal.name.casefold()),
    ):
        last = r.goal.last_update
        since = (
            f"no update for {plural((now - last.sent_at).days, 'day')}"
            if last is not None
            else "no update yet"
        )
        owners = ", ".join(_who(p) for p in r.goal.poc)
        overdue.append(f"- {topic_link(stream, r.goal.zulip_topic)}: {since} · {owners}")
    ownerless = [
        f"- {topic_link(stream, r.goal.zulip_topic)}" for r in prompted if not r.goal.owners
    ]
    unreachable: dict[int, tuple[PersonView, OwnerContact, list[str]]] = {}
    for r in prompted:
        for p in r.goal.poc:
            contact = p.contact(today)
            if contact in (OwnerContact.MISSING_ZULIP_ID, OwnerContact.DEACTIVATED):
                unreachable.setdefault(p.person_id, (p, contact, []))[2].append(r.goal.name)
    unmapped = [
        f"- {_handle(p)} ({contact.value}): owner of "
        + ", ".join(f"**{neutralize(n)}**" for n in sorted(names, key=str.casefold))
        for p, contact, names in sorted(
            unreachable.values(), key=lambda v: _handle(v[0]).casefold()
        )
    ]
    sections = [
        *_health_attention(rows, data, stream, program),
        ("Overdue", overdue),
        ("Goals without an owner", ownerless),
        ("Owners the bot cannot reach", unmapped),
        ("Messages that failed", [f"- {f.render()}" for f in data.failed]),
        ("GitHub handles claimed this week", [f"- {c.render()}" for c in data.claims]),
        ("Set-up problems found when the bot started", list(data.setup)),
    ]
    blocks = [
        f"_{title} ({len(items)}):_"
        + (f" {_DONE_HINT}" if title == _DONE_TITLE else "")
        + "\n"
        + limit_items(items, ATTENTION_LIST_CHARS)
        for title, items in sections
        if items
    ]
    if not blocks:
        return ["**Needs attention**\nNothing this week. :tada:"]
    blocks[0] = "**Needs attention**\n" + blocks[0]
    return blocks


def _last_at(goal: GoalView) -> datetime:
    return (
        goal.last_update.sent_at
        if goal.last_update is not None
        else datetime.min.replace(tzinfo=UTC)
    )


_NOT_PROMPTED = frozenset(
    {DueState.PAUSED, DueState.COMPLETED, DueState.RETIRED, DueState.INACTIVE}
)
_CLOSED = frozenset({DueState.COMPLETED, DueState.RETIRED, DueState.INACTIVE})

# The group a champion's digest opens with: their goals that need help, blocked first.
NEEDS_HELP_GROUP = "Blocked or at risk"


def compose_digest(
    data: DigestData,
    *,
    stream: StreamRef,
    program: Program,
    site: str,
    title: str = "Weekly goals digest",
    health_first: bool = False,
) -> list[str]:
    """The digest as Zulip messages, each under the size limit, split only between goals.

    ``stream`` is the goals stream (for topic links), ``program`` judges each goal's due state
    and periods, ``site`` makes message links.  With ``health_first`` (a champion's digest) the
    goals that need help (blocked, then at risk) come before the others, which follow as usual.
    """
    now = data.now
    today = program.today(now)
    rows = [_Row(g, program.state(g, now)) for g in data.goals]
    first = program.today(data.since)
    header = f"**{title}** · {first.isoformat()} to {today.isoformat()}\n" + _summary(
        rows, sum(1 for r in rows if r.goal.id in data.updated_ids)
    )
    blocks = [header]
    people = dict(data.people)
    news = _turned(rows, data, site, people)
    if news is not None:
        blocks.append(news)
    for group_title, group in _ordered_groups(rows, health_first=health_first):
        for i, row in enumerate(group):
            block = _goal_block(
                row,
                stream=stream,
                updated=row.goal.id in data.updated_ids,
                now=now,
                site=site,
                people=people,
            )
            blocks.append(f"{_heading(group_title)}\n\n{block}" if i == 0 else block)
    if not rows:
        blocks.append("_No goals are being tracked yet._")
    blocks += _attention(rows, data, stream, program, today)
    return _number(split_blocks(blocks, PART_LIMIT, sep="\n\n"))


def _ordered_groups(
    rows: Sequence[_Row], *, health_first: bool
) -> list[tuple[str, Sequence[_Row]]]:
    """The digest's groups; with ``health_first``, the goals that need help before them."""
    if not health_first:
        return _groups(rows)
    helped = [(r, h) for r in rows if (h := _open(r)) is not None and h.health.needs_help]
    if not helped:
        return _groups(rows)
    first = [r for r, _h in sorted(helped, key=_help_order)]
    ids = {r.goal.id for r in first}
    rest = [r for r in rows if r.goal.id not in ids]
    return [(NEEDS_HELP_GROUP, first), *_groups(rest)]


def _heading(title: str) -> str:
    return f"**{title}**"


# A group heading: a whole line in bold, without other emphasis inside.
_HEADING = re.compile(r"^\*\*([^*\n]+)\*\*$", re.M)


def _number(parts: list[str]) -> list[str]:
    """Label the messages of a split digest, repeating a group heading cut by the split."""
    if len(parts) < 2:
        return parts
    out = [parts[0]]
    last: str | None = None
    for i, part in enumerate(parts[1:], start=2):
        found = _HEADING.findall(parts[i - 2])
        last = found[-1] if found else last
        label = f"_(digest, part {i} of {len(parts)})_"
        if last is not None and not _HEADING.match(part):
            label += f"\n\n{_heading(last)} (continued)"
        out.append(f"{label}\n\n{part}")
    return out
