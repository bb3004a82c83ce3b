"""The weekly digest: where every goal stands, and what needs someone's attention.

``compose_digest`` is a pure function from plain data (``DigestData``) to message parts, so its
output can be checked against golden files.  ``send_digest`` is the shell around it: it loads the
data in a fixed number of statements, then hands one ``outbox.Request`` per destination (the digest
topic and each subscriber's DMs) to ``outbox.deliver``, whose claim makes the digest go out exactly
once per digest week, whatever restarts, crashes or doubled ticks happen in between.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from . import outbox
from .context import Context
from .doctor import attention_lines, load_problems
from .errors import GoalsBotError
from .grouping import goal_groups
from .handles import handles_of, render_handles
from .markdown import (
    SAFE_LENGTH,
    StreamRef,
    ZulipUser,
    days_ago,
    limit_items,
    message_link,
    neutralize,
    plural,
    shorten,
    split_blocks,
    topic_link,
)
from .models import (
    FIRST_START_KEY,
    BotState,
    Delivery,
    DeliveryKind,
    DeliveryState,
    DigestSubscription,
    Goal,
    GoalChampion,
    Person,
)
from .program import Program
from .queries import (
    GoalView,
    OwnerContact,
    PersonView,
    goals_in_period,
    load_goals,
    moved_from,
    newest_period,
    person_view,
)
from .schedule import DueState, Period, Slot
from .zulip_io import Sender

# "This week": updates, failures and claims newer than this are reported.
DIGEST_WINDOW = timedelta(days=7)
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
# Failed deliveries read from the database for one digest (they are also in the logs).
MAX_FAILED_LOADED = 100
# Room under SAFE_LENGTH is kept for the "(part 2 of 3)" line added after the split.
PART_LIMIT = SAFE_LENGTH
# Goals added by hand (`goal add`) belong to no imported period: every digest shows them.
MANUAL_PERIOD = "manual"
# A digest subscription's scope: the whole digest, or only the goals one champions.
SCOPE_ALL = "all"
SCOPE_CHAMPION = "champion"


def digest_slot(ctx: Context) -> Slot:
    return ctx.program.digest_slot


def digest_period(ctx: Context, now: datetime) -> Period:
    """The digest week containing ``now``: it starts at the latest digest slot."""
    return ctx.program.digest_period(now)


# -- plain data ---------------------------------------------------------------------------------


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


def digest_goals(
    session: Session, goals: Sequence[GoalView], period: str | None
) -> tuple[list[GoalView], str | None]:
    """The goals of one period (the newest when ``period`` is None) and that period's name.

    Goals added by hand belong to every period.  Naming an earlier period also finds the goals
    that continued from it since (one more statement).
    """
    chosen = period or newest_period(goals, ignore=(MANUAL_PERIOD,))
    if chosen is None:
        return list(goals), None
    moved = moved_from(session, chosen) if period is not None else set()
    found = {g.id for g in goals_in_period(goals, chosen, moved)}
    if period is not None and not found:
        known = sorted({g.period for g in goals})
        raise GoalsBotError(
            f"no goal of period {period!r} is tracked; periods: {', '.join(known) or 'none'}"
        )
    return [g for g in goals if g.id in found or g.period == MANUAL_PERIOD], chosen


def load_digest_data(
    session: Session, ctx: Context, since: datetime, now: datetime, period: str | None = None
) -> DigestData:
    """Goals (4 statements), failed deliveries (1), and identity claims with the people that
    updates name (1): six in all, one more for an earlier ``period``.

    ``ctx`` is accepted so that callers pass the same things to every loader; the data itself
    does not depend on configuration.
    """
    goals, period = digest_goals(session, load_goals(session), period)
    updated = frozenset(
        g.id for g in goals if g.last_update is not None and since <= g.last_update.sent_at <= now
    )
    failed_rows = session.execute(
        select(
            Delivery.kind,
            Delivery.target,
            Delivery.period,
            Delivery.error,
            Delivery.claimed_at,
            Goal.title,
            Goal.short_title,
            Person,
        )
        .outerjoin(Goal, Goal.id == Delivery.goal_id)
        .outerjoin(Person, Person.id == Delivery.person_id)
        .where(
            Delivery.state == DeliveryState.FAILED,
            # A digest cannot usefully report on its own delivery (a retry would list itself).
            Delivery.kind != DeliveryKind.DIGEST,
            Delivery.claimed_at >= since,
            Delivery.claimed_at <= now,
        )
        .order_by(Delivery.claimed_at, Delivery.id)
        .limit(MAX_FAILED_LOADED)
    )
    failed = tuple(
        FailedDelivery(
            kind=kind,
            target=target,
            period=period,
            error=error,
            at=at,
            goal_name=short or title,
            person=person_view(person) if person is not None else None,
        )
        for kind, target, period, error, at, title, short, person in failed_rows
    )
    named = handles_of(
        text
        for g in goals
        if g.last_update is not None
        for text in (g.last_update.tldr, g.last_update.content, g.last_update.help_wanted)
    )
    claimed_this_week = and_(
        Person.claimed_at.is_not(None), Person.claimed_at >= since, Person.claimed_at <= now
    )
    # One statement for both: the week's claims, and the people the updates name.
    people = list(
        session.execute(
            select(Person)
            .where(
                Person.github.is_not(None),
                or_(claimed_this_week, Person.github.in_(sorted(named))) if named
                else claimed_this_week,
            )
            .order_by(Person.claimed_at, Person.id)
        ).scalars()
    )  # fmt: skip
    claims = tuple(
        IdentityClaim(github=p.github, person=person_view(p), at=p.claimed_at)
        for p in people
        if p.github is not None and p.claimed_at is not None and since <= p.claimed_at <= now
    )
    mentioned = tuple(
        (p.github, user)
        for p in people
        if p.github in named and (user := person_view(p).user) is not None
    )
    return DigestData(
        goals=tuple(goals),
        since=since,
        now=now,
        failed=failed,
        claims=claims,
        updated_ids=updated,
        period=period,
        people=mentioned,
    )


# -- composition (pure) ---------------------------------------------------------------------------


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
    link = f"[latest update]({message_link(site, last.zulip_message_id)})"
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
    lines = [
        f"{row.state.mark} **{neutralize(goal.name)}** · {topic_link(stream, goal.zulip_topic)}",
        f"{owners} · {_freshness(goal, updated, now, site)}",
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


def _attention(rows: Sequence[_Row], data: DigestData, stream: StreamRef, today: date) -> list[str]:
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
        ("Overdue", overdue),
        ("Goals without an owner", ownerless),
        ("Owners the bot cannot reach", unmapped),
        ("Messages that failed", [f"- {f.render()}" for f in data.failed]),
        ("GitHub handles claimed this week", [f"- {c.render()}" for c in data.claims]),
        ("Set-up problems found when the bot started", list(data.setup)),
    ]
    blocks = [
        f"_{title} ({len(items)}):_\n" + limit_items(items, ATTENTION_LIST_CHARS)
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


def compose_digest(
    data: DigestData,
    *,
    stream: StreamRef,
    program: Program,
    site: str,
    title: str = "Weekly goals digest",
) -> list[str]:
    """The digest as Zulip messages, each under the size limit, split only between goals.

    ``stream`` is the goals stream (for topic links), ``program`` judges each goal's due state,
    ``site`` makes message links.
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
    for group_title, group in _groups(rows):
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
    blocks += _attention(rows, data, stream, today)
    return _number(split_blocks(blocks, PART_LIMIT, sep="\n\n"))


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


# -- sending (the shell) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestReport:
    """What ``send_digest`` did (or would do), for the CLI and the logs."""

    period: str
    parts: tuple[str, ...]
    destinations: tuple[str, ...]
    dry_run: bool = False
    sent: int = 0
    already: int = 0
    failed: int = 0

    @property
    def text(self) -> str:
        """The composed Markdown; parts are separated by a blank line."""
        return "\n\n".join(self.parts)

    def render(self) -> str:
        where = ", ".join(self.destinations) or "nobody (no digest topic and no subscribers)"
        if self.dry_run:
            split = f" in {len(self.parts)} messages" if len(self.parts) > 1 else ""
            return f"{self.text}\n\n(dry run: would post{split} to {where})"
        if self.already and not self.sent and not self.failed:
            return f"Digest {self.period}: nothing posted, already sent this period ({where})"
        return (
            f"Digest {self.period}: {self.sent} sent, {self.already} already sent, "
            f"{self.failed} failed ({where})"
        )


@dataclass(frozen=True, slots=True)
class _Target:
    key: str
    destination: outbox.Destination
    person_id: int | None = None
    champion: str | None = None  # a champion-scope subscriber's GitHub handle ("" if unknown)


def digest_targets(
    ctx: Context, session: Session, week_start: datetime | None = None
) -> list[_Target]:
    """The digest topic (unless the topic is empty) and every reachable subscriber.

    With ``week_start``, only those owed the weekly digest that started then: the topic if a bot
    was already running on this database (a new install's first digest comes at the next slot,
    not at once), and those who had subscribed by then (one who subscribes mid-week is not sent
    this week's digest at once and the next one days later).
    """
    cfg = ctx.config.digest
    out: list[_Target] = []
    if cfg.topic and (week_start is None or _started_by(session, week_start)):
        out.append(
            _Target(
                f"stream:{cfg.stream}>{cfg.topic}",
                outbox.Destination.to_topic(cfg.stream, cfg.topic),
            )
        )
    query = (
        select(Person.id, Person.zulip_user_id, DigestSubscription.scope, Person.github)
        .join(DigestSubscription, DigestSubscription.person_id == Person.id)
        .where(Person.zulip_user_id.is_not(None), Person.is_active.is_(True))
        .order_by(Person.id)
    )
    if week_start is not None:
        query = query.where(DigestSubscription.created_at <= week_start)
    for person_id, user_id, scope, github in session.execute(query):
        assert user_id is not None
        champion = (github or "") if scope == SCOPE_CHAMPION else None
        out.append(
            _Target(
                f"person:{person_id}", outbox.Destination.to_users([user_id]), person_id, champion
            )
        )
    return out


def championed(session: Session, handles: Iterable[str]) -> dict[str, frozenset[int]]:
    """The goals each of these GitHub handles champions, in one statement."""
    wanted = sorted({h for h in handles if h})
    found: dict[str, set[int]] = defaultdict(set)
    if wanted:
        for goal_id, github in session.execute(
            select(GoalChampion.goal_id, GoalChampion.github).where(GoalChampion.github.in_(wanted))
        ):
            found[github].add(goal_id)
    return {h: frozenset(found.get(h, ())) for h in wanted}


CHAMPION_TITLE = "Weekly digest of the goals you champion"


def _champion_parts(
    data: DigestData, goal_ids: frozenset[int], compose: Callable[[DigestData, str], list[str]]
) -> tuple[str, ...]:
    """A champion's digest: their goals only; a short note when they champion none."""
    mine = data.only(goal_ids)
    if not mine.goals:
        period = f" of period {data.period}" if data.period else ""
        return (
            f"**{CHAMPION_TITLE}**\nYou champion no goal{period} that I know of, so there is "
            "nothing to report. (If a goal file names you as a champion, tell me your GitHub "
            "handle with `I am @handle`; `subscribe digest` gets you the whole digest.)",
        )
    return tuple(compose(mine, CHAMPION_TITLE))


def _started_by(session: Session, when: datetime) -> bool:
    """Whether a bot had run on this database by ``when`` (yes if it never ran: cron set-ups)."""
    row = session.get(BotState, FIRST_START_KEY)
    return row is None or datetime.fromisoformat(row.value) <= when


def digest_due(ctx: Context, now: datetime) -> tuple[bool, str]:
    """Whether some destination still waits for this week's digest, and the period key.

    The digest week starts at the latest digest slot, so a bot that was down at the slot posts on
    its first tick afterwards; three cheap statements, so it can run on every tick.
    """
    period = digest_period(ctx, now)
    key = period.key
    if not ctx.config.digest.enabled:
        return False, key
    with ctx.db.read() as session:
        wanted = {t.key for t in digest_targets(ctx, session, period.start)}
        if not wanted:
            return False, key
        done = set(
            session.execute(
                select(Delivery.target).where(
                    Delivery.kind == DeliveryKind.DIGEST,
                    Delivery.period == key,
                    Delivery.state != DeliveryState.FAILED,
                )
            ).scalars()
        )
    return bool(wanted - done), key


def send_digest(
    ctx: Context,
    sender: Sender,
    *,
    dry_run: bool = False,
    since: datetime | None = None,
    force: bool = False,
    manual: bool = False,
    goals_period: str | None = None,
) -> DigestReport:
    """Compose the digest and deliver it once per destination for this digest week.

    ``manual`` (``zulip-goals-bot digest``) sends what this week still owes to the topic and to
    every subscriber, under the week's keys: a second run, a cron job or a retry after a timeout
    sends nothing more, and neither does the scheduled digest.  ``force`` (``--again``) posts
    anew under a key of its own (one per minute, so a retry within the minute is not doubled).
    ``goals_period`` is the period whose goals it covers (the newest by default). Subscribers
    who chose the goals they champion get those goals only.
    """
    now = ctx.clock.now()
    period = digest_period(ctx, now)
    key = f"manual-{now.astimezone(UTC):%Y%m%dT%H%M}" if force else period.key
    since = since or now - DIGEST_WINDOW
    with ctx.db.read() as session:
        data = load_digest_data(session, ctx, since, now, goals_period)
        data = replace(data, setup=tuple(attention_lines(load_problems(session))))
        # A manual digest goes to every subscriber; the weekly one to those of the week's start.
        targets = digest_targets(ctx, session, None if force or manual else period.start)
        champions = [t.champion for t in targets if t.champion is not None]
        goals_of = championed(session, champions) if champions else {}
    cfg = ctx.config

    def compose(d: DigestData, title: str) -> list[str]:
        return compose_digest(
            d,
            stream=ctx.stream(cfg.stream),
            program=ctx.program,
            site=ctx.site,
            title=title,
        )

    parts = tuple(compose(data, "Weekly goals digest"))
    parts_for = {
        t.key: _champion_parts(data, goals_of.get(t.champion or "", frozenset()), compose)
        for t in targets
        if t.champion is not None
    }
    described = tuple(t.destination.describe() for t in targets)
    if dry_run:
        return DigestReport(key, parts, described, dry_run=True)
    outcomes = [
        outbox.deliver(
            ctx.db,
            sender,
            outbox.Request(
                kind=DeliveryKind.DIGEST,
                target=t.key,
                period=key,
                destination=t.destination,
                parts=parts_for.get(t.key, parts),
                person_id=t.person_id,
            ),
            ctx.clock.now,
        )
        for t in targets
    ]
    return DigestReport(
        key,
        parts,
        described,
        sent=_count(outcomes, outbox.Outcome.SENT),
        already=_count(outcomes, outbox.Outcome.ALREADY),
        failed=_count(outcomes, outbox.Outcome.FAILED),
    )


def _count(outcomes: Iterable[outbox.Outcome], wanted: outbox.Outcome) -> int:
    return sum(1 for o in outcomes if o is wanted)


def run_due_digest(ctx: Context, sender: Sender) -> DigestReport | None:
    """The scheduler's entry point: send this week's digest if some destination still waits."""
    due, _key = digest_due(ctx, ctx.clock.now())
    return send_digest(ctx, sender) if due else None
