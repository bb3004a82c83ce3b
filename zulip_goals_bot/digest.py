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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import outbox
from .context import Context
from .markdown import (
    SAFE_LENGTH,
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
    Person,
)
from .queries import GoalView, OwnerContact, PersonView, load_goals, person_view
from .schedule import DueState, Period, Slot, due_state, period_at
from .zulip_io import Sender

# The digest is weekly: its period grid has one-week cells anchored on the digest slot.
DIGEST_WEEKS = 1
# "This week": updates, failures and claims newer than this are reported.
DIGEST_WINDOW = timedelta(days=7)
# A TL;DR is one or two sentences; the start of an update is cut to the same size so that a
# program of ~40 goals fits in two or three messages.
EXCERPT_CHARS = 240
EXCERPT_LINES = 3
HELP_CHARS = 200
# Zulip's error messages can be long; the digest only needs the gist.
ERROR_CHARS = 160
# One "Needs attention" list (e.g. 200 overdue goals) never takes more than this many characters.
ATTENTION_LIST_CHARS = 3_000
# Failed deliveries read from the database for one digest (they are also in the logs).
MAX_FAILED_LOADED = 100
# Room under SAFE_LENGTH is kept for the "(part 2 of 3)" line added after the split.
PART_LIMIT = SAFE_LENGTH
OTHER_GOALS = "Other goals"


def digest_slot(ctx: Context) -> Slot:
    d = ctx.config.digest
    return Slot(weekday=d.weekday, at=d.at, tz=d.timezone)


def digest_period(ctx: Context, now: datetime) -> Period:
    """The digest week containing ``now``: it starts at the latest digest slot."""
    return period_at(now, DIGEST_WEEKS, digest_slot(ctx))


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


def load_digest_data(session: Session, ctx: Context, since: datetime, now: datetime) -> DigestData:
    """Goals (4 statements), failed deliveries (1) and identity claims (1): six in all.

    ``ctx`` is accepted so that callers pass the same things to every loader; the data itself
    does not depend on configuration.
    """
    goals = load_goals(session)
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
    claimed = session.execute(
        select(Person)
        .where(
            Person.claimed_at.is_not(None),
            Person.claimed_at >= since,
            Person.claimed_at <= now,
            Person.github.is_not(None),
        )
        .order_by(Person.claimed_at, Person.id)
    ).scalars()
    claims = tuple(
        IdentityClaim(github=p.github, person=person_view(p), at=p.claimed_at)
        for p in claimed
        if p.github is not None and p.claimed_at is not None
    )
    return DigestData(
        goals=tuple(goals),
        since=since,
        now=now,
        failed=failed,
        claims=claims,
        updated_ids=updated,
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


def _goal_block(row: _Row, *, stream: str, updated: bool, now: datetime, site: str) -> str:
    """A goal as the digest shows it: mark, title, topic, owners, freshness, help, excerpt."""
    goal = row.goal
    owners = ", ".join(_who(p) for p in goal.poc) or "_no owner_"
    lines = [
        f"{row.state.mark} **{neutralize(goal.name)}** · {topic_link(stream, goal.zulip_topic)}",
        f"{owners} · {_freshness(goal, updated, now, site)}",
    ]
    last = goal.last_update
    if last is not None and last.help_wanted:
        lines.append(f"**Help wanted:** {neutralize(shorten(last.help_wanted, HELP_CHARS))}")
    if last is not None:
        source = last.tldr or last.content
        excerpt = neutralize(shorten(source, EXCERPT_CHARS, max_lines=EXCERPT_LINES))
        if excerpt:
            lines.append(_quote(excerpt))
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


class HasGoal(Protocol):
    """Anything that carries a goal: the digest's rows, the website's cards."""

    @property
    def goal(self) -> GoalView: ...


R = TypeVar("R", bound=HasGoal)


def goal_groups(rows: Sequence[R]) -> list[tuple[str, list[R]]]:
    """Flagship goals, then one group per team (a goal's first team), then "Other goals".

    The digest and the website both group goals this way, so a reader finds a goal in the same
    place in both.
    """
    flagship = [r for r in rows if r.goal.is_flagship]
    by_team: dict[str, list[R]] = defaultdict(list)
    for r in rows:
        if not r.goal.is_flagship:
            by_team[r.goal.teams[0] if r.goal.teams else ""].append(r)
    groups = [("Flagship goals", flagship)] if flagship else []
    groups += [(f"Team {team}", by_team[team]) for team in sorted(t for t in by_team if t)]
    if by_team.get(""):
        groups.append((OTHER_GOALS, by_team[""]))
    return [(title, sorted(rs, key=lambda r: r.goal.name.casefold())) for title, rs in groups]


def _attention(rows: Sequence[_Row], data: DigestData, stream: str, today: date) -> list[str]:
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
    stream: str,
    default_cadence: int,
    slot: Slot,
    grace_days: int,
    site: str,
) -> list[str]:
    """The digest as Zulip messages, each under the size limit, split only between goals.

    ``stream`` is the goals stream (for topic links), ``slot``/``default_cadence``/``grace_days``
    are the prompt schedule (for each goal's due state), ``site`` makes message links.
    """
    now = data.now
    today = now.astimezone(slot.tz).date()
    rows = [
        _Row(g, due_state(g.facts(default_cadence, today), now, slot, grace_days))
        for g in data.goals
    ]
    first = data.since.astimezone(slot.tz).date()
    header = f"**Weekly goals digest** · {first.isoformat()} to {today.isoformat()}\n" + _summary(
        rows, sum(1 for r in rows if r.goal.id in data.updated_ids)
    )
    blocks = [header]
    for title, group in goal_groups(rows):
        for i, row in enumerate(group):
            block = _goal_block(
                row, stream=stream, updated=row.goal.id in data.updated_ids, now=now, site=site
            )
            blocks.append(f"{_heading(title)}\n\n{block}" if i == 0 else block)
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
        return (
            f"Digest {self.period}: {self.sent} sent, {self.already} already sent, "
            f"{self.failed} failed ({where})"
        )


@dataclass(frozen=True, slots=True)
class _Target:
    key: str
    destination: outbox.Destination
    person_id: int | None = None


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
        select(Person.id, Person.zulip_user_id)
        .join(DigestSubscription, DigestSubscription.person_id == Person.id)
        .where(Person.zulip_user_id.is_not(None), Person.is_active.is_(True))
        .order_by(Person.id)
    )
    if week_start is not None:
        query = query.where(DigestSubscription.created_at <= week_start)
    for person_id, user_id in session.execute(query):
        assert user_id is not None
        out.append(
            _Target(f"person:{person_id}", outbox.Destination.to_users([user_id]), person_id)
        )
    return out


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
) -> DigestReport:
    """Compose the digest and deliver it once per destination for this digest week.

    ``force`` posts now under a key of its own, so an operator's manual digest neither blocks
    nor repeats the scheduled one.
    """
    now = ctx.clock.now()
    period = digest_period(ctx, now)
    key = f"manual-{now.astimezone(UTC):%Y%m%dT%H%M}" if force else period.key
    since = since or now - DIGEST_WINDOW
    with ctx.db.read() as session:
        data = load_digest_data(session, ctx, since, now)
        # A manual digest goes to every subscriber; the weekly one to those of the week's start.
        targets = digest_targets(ctx, session, None if force else period.start)
    cfg = ctx.config
    parts = tuple(
        compose_digest(
            data,
            stream=cfg.stream,
            default_cadence=cfg.schedule.cadence_weeks,
            slot=ctx.slot,
            grace_days=cfg.schedule.grace_days,
            site=ctx.site,
        )
    )
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
                parts=parts,
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
