"""The weekly digest's shell: loading its data, choosing who gets it, sending it once per
destination and week.

``digest.compose_digest`` says what it says; this module decides when, to whom, and records each
delivery in the outbox so a restart or a second run sends nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from zulip_goals_bot.bot import outbox
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.bot.zulip_io import Sender
from zulip_goals_bot.db.models import (
    FIRST_START_KEY,
    BotState,
    Delivery,
    DigestSubscription,
    Goal,
    GoalChampion,
    Person,
)
from zulip_goals_bot.db.queries import goals_of_period, load_goals, person_view
from zulip_goals_bot.digest.compose import DigestData, FailedDelivery, IdentityClaim, compose_digest
from zulip_goals_bot.doctor import attention_lines, load_problems
from zulip_goals_bot.domain.schedule import Period, Slot
from zulip_goals_bot.domain.states import DeliveryKind, DeliveryState
from zulip_goals_bot.domain.views import GoalView
from zulip_goals_bot.people.handles import handles_of

# "This week": updates, failures and claims newer than this are reported.
DIGEST_WINDOW = timedelta(days=7)


# Failed deliveries read from the database for one digest (they are also in the logs).
MAX_FAILED_LOADED = 100


# A digest subscription's scope: the whole digest (the default), or only the goals one champions.
SCOPE_CHAMPION = "champion"


def digest_slot(ctx: Context) -> Slot:
    return ctx.program.digest_slot


def digest_period(ctx: Context, now: datetime) -> Period:
    """The digest week containing ``now``: it starts at the latest digest slot."""
    return ctx.program.digest_period(now)


def digest_goals(
    session: Session, goals: Sequence[GoalView], period: str | None
) -> tuple[list[GoalView], str | None]:
    """The goals of one period (the newest when ``period`` is None) and that period's name."""
    return goals_of_period(session, goals, period)


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
    data: DigestData,
    goal_ids: frozenset[int],
    compose: Callable[[DigestData, str, bool], list[str]],
) -> tuple[str, ...]:
    """A champion's digest: their goals only, those that need help (blocked, then at risk)
    first; a short note when they champion none."""
    mine = data.only(goal_ids)
    if not mine.goals:
        period = f" of period {data.period}" if data.period else ""
        return (
            f"**{CHAMPION_TITLE}**\nYou champion no goal{period} that I know of, so there is "
            "nothing to report. (If a goal file names you as a champion, tell me your GitHub "
            "handle with `I am @handle`; `subscribe digest` gets you the whole digest.)",
        )
    return tuple(compose(mine, CHAMPION_TITLE, True))


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
    who chose the goals they champion get those goals only, the ones that need help first.
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

    def compose(d: DigestData, title: str, health_first: bool = False) -> list[str]:
        return compose_digest(
            d,
            stream=ctx.setting.stream(cfg.stream),
            program=ctx.program,
            site=ctx.setting.site,
            title=title,
            health_first=health_first,
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
