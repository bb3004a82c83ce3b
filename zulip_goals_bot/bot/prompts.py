"""Asking owners for updates: prompts and reminders, in goal topics and by direct message.

``plan`` is pure: given the goals, what was already delivered and the time, it says which
messages are owed right now.  ``send_due`` is the shell around it: it loads everything with a
constant number of queries and hands each planned message to ``outbox.deliver``, which claims it
in the database before sending, so a restart, a second process or a double tick sends nothing
twice.  Nothing here remembers "the last run": a missed schedule (the bot was down) is simply
still owed at the next tick, for as long as its period lasts.

Rules, per goal whose ``due_state`` is DUE or OVERDUE:

* topic prompt (PROMPT, ``goal:<id>``, goal period): once per period, in the goal's topic,
  mentioning its reachable points of contact (not with ``prompt_via = dm``);
* topic reminder (REMINDER): once, ``reminder_days`` after the prompt, if still no update;
* owners who cannot see the topic (not subscribed, or ``prompt_via = dm``; everyone for prompts
  with ``prompt_via = both``) get one DM per week (DM_PROMPT, ``person:<id>``, key of the weekly
  slot) at ``dm_local_hour`` in their own timezone, listing all their goals that have not been
  asked by DM during their current period; and one DM reminder per week (DM_REMINDER) for goals
  still silent ``reminder_days`` after their DM prompt, at the same local hour.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from zulip_goals_bot.bot import outbox
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.bot.zulip_io import Sender
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.models import Delivery
from zulip_goals_bot.db.queries import load_goals
from zulip_goals_bot.domain.health import describe, reaction_legend
from zulip_goals_bot.domain.markdown import (
    MAX_MESSAGE_LENGTH,
    StreamRef,
    days_ago,
    limit_items,
    neutralize,
    plural,
    shorten,
    time_tag,
    topic_link,
)
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.schedule import (
    DueState,
    Period,
    local_instant,
    local_send_time,
    period_at,
    reminder_time,
    zone,
)
from zulip_goals_bot.domain.states import DeliveryKind, DeliveryState, UpdateSource
from zulip_goals_bot.domain.views import GoalView, PersonView

log = logging.getLogger(__name__)

# The kinds this module sends; the digest's deliveries are none of its business.
PROMPT_KINDS = (
    DeliveryKind.PROMPT,
    DeliveryKind.REMINDER,
    DeliveryKind.DM_PROMPT,
    DeliveryKind.DM_REMINDER,
)
# DMs are grouped per week whatever each goal's cadence, so an owner gets at most one a week.
DM_CADENCE_WEEKS = 1
# Room kept under Zulip's limit for a DM's greeting and instructions around the goal list.
DM_FRAME_RESERVE = 1_500
# Titles are echoed in every message; a runaway one must not push a prompt over Zulip's limit.
TITLE_LIMIT = 300

# What was already delivered (claimed or sent; failed ones are owed again), keyed like the
# outbox's unique constraint, with the time it was claimed.
Sent = Mapping[tuple[DeliveryKind, str, str], datetime]


def goal_target(goal_id: int) -> str:
    return f"goal:{goal_id}"


def person_target(person_id: int) -> str:
    return f"person:{person_id}"


# --- deciding (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """One message owed now: the outbox request plus what a human needs to check it."""

    request: outbox.Request
    goal_ids: tuple[int, ...]
    label: str  # e.g. "prompt for goal async-closures" or "DM prompt to Ben Owner (2 goals)"

    @property
    def kind(self) -> DeliveryKind:
        return self.request.kind

    def render(self) -> str:
        """The delivery as ``prompt --dry-run`` shows it: a header, then the exact text."""
        body = "\n".join("    " + line if line else "" for line in self.text.splitlines())
        return f"{self.label} → {self.request.destination.describe()}\n{body}"

    @property
    def text(self) -> str:
        return "\n\n".join(self.request.parts)


@dataclass(frozen=True, slots=True)
class _DueGoal:
    goal: GoalView
    period: Period
    state: DueState
    owners: tuple[PersonView, ...]  # reachable points of contact


@dataclass(frozen=True, slots=True)
class _Audience:
    """Who sees a goal's prompt how: mentioned in the topic, prompted or reminded by DM."""

    topic: bool
    dm_prompt: tuple[PersonView, ...]
    dm_reminder: tuple[PersonView, ...]


class _History:
    """The claim times of past deliveries, indexed for "was this person already asked since…"."""

    def __init__(self, sent: Sent) -> None:
        self.sent = sent
        self._times: dict[tuple[DeliveryKind, str], list[datetime]] = defaultdict(list)
        for (kind, target, _period), when in sent.items():
            self._times[(kind, target)].append(when)
        for times in self._times.values():
            times.sort()

    def first_since(self, kind: DeliveryKind, target: str, since: datetime) -> datetime | None:
        return next((t for t in self._times.get((kind, target), ()) if t >= since), None)


def _due(goal: GoalView, now: datetime, program: Program, kickoff: bool) -> _DueGoal | None:
    """The goal as owed a prompt now, or None; a kick-off also asks goals still in grace."""
    state = program.state(goal, now)
    if kickoff and state is DueState.GRACE:
        state = DueState.DUE
    if not state.is_waiting:
        return None
    owners = program.reachable_owners(goal, now)
    if not owners:
        return None
    return _DueGoal(goal, program.period(goal, now), state, owners)


def _audience(owners: Sequence[PersonView], subscribers: frozenset[int], via: str) -> _Audience:
    unsubscribed = tuple(p for p in owners if p.zulip_user_id not in subscribers)
    if via == "dm":
        return _Audience(topic=False, dm_prompt=tuple(owners), dm_reminder=tuple(owners))
    if via == "both":
        return _Audience(topic=True, dm_prompt=tuple(owners), dm_reminder=unsubscribed)
    return _Audience(topic=True, dm_prompt=unsubscribed, dm_reminder=unsubscribed)


def _dm_reminder_at(asked: datetime, reminder_days: int, hour: int, tz: ZoneInfo) -> datetime:
    """``reminder_days`` local days after the DM prompt, at the owner's DM hour."""
    day = asked.astimezone(tz).date() + timedelta(days=reminder_days)
    return local_instant(day, time(hour), tz)


def plan(
    goals: Sequence[GoalView],
    sent: Sent,
    subscribers: frozenset[int],
    now: datetime,
    config: Config,
    goals_stream: StreamRef | None = None,
    *,
    kickoff: bool = False,
) -> list[PlannedDelivery]:
    """Every prompt, reminder and DM owed at ``now`` and not yet in ``sent``; pure.

    ``goals_stream`` is the goals stream as DMs link to it (by default, by its name alone).
    ``kickoff`` starts a round at once: goals still in their grace are asked too, and DMs go
    out now instead of at each owner's local hour. What it sends is keyed by the current
    period like any prompt, so a second kick-off, or the schedule, never asks twice.
    """
    stream = goals_stream or StreamRef(config.stream)
    sched = config.schedule
    program = Program.from_config(config)
    history = _History(sent)
    week = period_at(now, DM_CADENCE_WEEKS, program.slot)
    out: list[PlannedDelivery] = []
    people: dict[int, PersonView] = {}
    dm_prompts: dict[int, list[_DueGoal]] = defaultdict(list)
    dm_reminders: dict[int, list[_DueGoal]] = defaultdict(list)
    for goal in goals:
        due = _due(goal, now, program, kickoff)
        if due is None:
            continue
        audience = _audience(due.owners, subscribers, sched.prompt_via)
        if audience.topic:
            planned = _plan_topic(due, sent, now, config)
            if planned is not None:
                out.append(planned)
        for person in audience.dm_prompt:
            people[person.person_id] = person
            target = person_target(person.person_id)
            asked = history.first_since(DeliveryKind.DM_PROMPT, target, due.period.start)
            if asked is None:
                dm_prompts[person.person_id].append(due)
            elif person in audience.dm_reminder:
                tz = zone(person.timezone, config.timezone)
                when = _dm_reminder_at(asked, sched.reminder_days, sched.dm_local_hour, tz)
                reminded = history.first_since(DeliveryKind.DM_REMINDER, target, when)
                if when <= now and when < due.period.end and reminded is None:
                    dm_reminders[person.person_id].append(due)
    for person_id, dues in sorted(dm_prompts.items()):
        person = people[person_id]
        key = (DeliveryKind.DM_PROMPT, person_target(person_id), week.key)
        tz = zone(person.timezone, config.timezone)
        if key not in sent and (kickoff or now >= local_send_time(week, sched.dm_local_hour, tz)):
            out.append(_dm_request(DeliveryKind.DM_PROMPT, person, week, dues, now, stream))
    for person_id, dues in sorted(dm_reminders.items()):
        person = people[person_id]
        key = (DeliveryKind.DM_REMINDER, person_target(person_id), week.key)
        if key not in sent:
            out.append(_dm_request(DeliveryKind.DM_REMINDER, person, week, dues, now, stream))
    return out


def next_wake(
    goals: Sequence[GoalView], sent: Sent, now: datetime, config: Config
) -> datetime | None:
    """When ``plan`` (or the digest) may next owe something, for the scheduler; pure.

    See ``Program.next_wake``: this only finds when each goal's topic prompt went out.
    """
    program = Program.from_config(config)
    prompted: dict[int, datetime] = {}
    for goal in goals:
        key = (DeliveryKind.PROMPT, goal_target(goal.id), program.period(goal, now).key)
        if key in sent:
            prompted[goal.id] = sent[key]
    return program.next_wake(goals, prompted, now)


def _plan_topic(due: _DueGoal, sent: Sent, now: datetime, config: Config) -> PlannedDelivery | None:
    goal, period = due.goal, due.period
    target = goal_target(goal.id)
    destination = outbox.Destination.to_topic(config.stream, goal.zulip_topic)
    prompted_at = sent.get((DeliveryKind.PROMPT, target, period.key))
    if prompted_at is None:
        text = compose_prompt(goal, due.owners, now, state=due.state)
        kind, label = DeliveryKind.PROMPT, f"prompt for goal {goal.slug}"
    else:
        when = reminder_time(period, prompted_at, config.schedule.reminder_days)
        if when is None or now < when or (DeliveryKind.REMINDER, target, period.key) in sent:
            return None
        text = compose_reminder(goal, due.owners, now, prompted_at=prompted_at)
        kind, label = DeliveryKind.REMINDER, f"reminder for goal {goal.slug}"
    request = outbox.Request(
        kind=kind,
        target=target,
        period=period.key,
        destination=destination,
        parts=(text,),
        goal_id=goal.id,
    )
    return PlannedDelivery(request, (goal.id,), label)


def _dm_request(
    kind: DeliveryKind,
    person: PersonView,
    week: Period,
    dues: Sequence[_DueGoal],
    now: datetime,
    stream: StreamRef,
) -> PlannedDelivery:
    goals = [d.goal for d in dues]
    if kind is DeliveryKind.DM_PROMPT:
        text = compose_dm(person, goals, now, stream=stream)
        what = "DM prompt"
    else:
        text = compose_dm_reminder(person, goals, now, stream=stream)
        what = "DM reminder"
    assert person.zulip_user_id is not None  # only reachable owners get here
    request = outbox.Request(
        kind=kind,
        target=person_target(person.person_id),
        period=week.key,
        destination=outbox.Destination.to_users([person.zulip_user_id]),
        parts=(text,),
        person_id=person.person_id,
    )
    label = f"{what} to {person.display} ({plural(len(goals), 'goal')})"
    return PlannedDelivery(request, tuple(g.id for g in goals), label)


# --- composing (pure) ---------------------------------------------------------------------------


def _mentions(owners: Sequence[PersonView]) -> str:
    names = [p.user.mention() for p in owners if p.user is not None]
    if not names:
        return "Hi"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _last_update(goal: GoalView, now: datetime) -> str:
    last = goal.last_update
    if last is None:
        return "no update yet"
    when = f"{time_tag(last.sent_at)} ({days_ago(last.sent_at, now)})"
    if last.source is UpdateSource.GITHUB and last.url:
        return f"last update {when}, [on GitHub]({last.url})"
    return f"last update {when}, {last.where}"


def _tracking(goal: GoalView) -> str | None:
    """A Markdown link to the tracking issue, or None when the goal has none."""
    if goal.tracking_url:
        label = f"#{goal.tracking_issue}" if goal.tracking_issue else "tracking issue"
        return f"[{label}]({goal.tracking_url})"
    if goal.tracking_issue:
        return f"#{goal.tracking_issue}"
    return None


def _title(goal: GoalView) -> str:
    return neutralize(shorten(goal.name, TITLE_LIMIT))


def _first_name(person: PersonView) -> str:
    name = person.full_name.split()[0] if person.full_name and person.full_name.split() else ""
    return neutralize(name or person.display)


def compose_prompt(
    goal: GoalView,
    owners: Sequence[PersonView],
    now: datetime,
    *,
    state: DueState = DueState.DUE,
) -> str:
    """The prompt posted in a goal's topic, mentioning the owners who are asked."""
    title = _title(goal)
    last = _last_update(goal, now)
    lines = [
        f"{_mentions(owners)}: time for a progress update on **{title}** :wave:",
        "",
        f"{last[0].upper()}{last[1:]}."
        + (" A short update is very welcome, even one line." if state is DueState.OVERDUE else ""),
        "",
        "Just reply in this topic with a few lines: what happened since then, what's next, "
        "anything blocking you, and where help is wanted. Start with `TL;DR:` for a one-line "
        "summary, and add a `Help wanted:` line if others can pitch in.",
        "",
        f"How is it going? Add `Status: on track`, `at risk` or `blocked`, or react here: "
        f"{reaction_legend()}.{_health_now(goal, now)}",
    ]
    tracking = _tracking(goal)
    if tracking:
        lines += ["", f"Tracking issue: {tracking}"]
    lines += [
        "",
        "You can also send me a direct message. Nothing to report this time? "
        "Reply `skip` here and I'll ask again next period.",
    ]
    return "\n".join(lines)


def compose_reminder(
    goal: GoalView,
    owners: Sequence[PersonView],
    now: datetime,
    *,
    prompted_at: datetime,
) -> str:
    """The one reminder in a goal's topic, for owners who have not answered the prompt."""
    title = _title(goal)
    return (
        f"{_mentions(owners)}: a friendly reminder: **{title}** has no update yet since I asked "
        f"{time_tag(prompted_at)}. A few lines are enough (a `TL;DR:` is perfect); just reply "
        "here, or `skip` if there is nothing to report this time."
    )


def _health_now(goal: GoalView, now: datetime) -> str:
    """What the owners said last, so that an unchanged health needs no new word."""
    if goal.health is None:
        return ""
    return f" Last said: {describe(goal.health, now)}."


def _goal_item(goal: GoalView, now: datetime, stream: StreamRef) -> str:
    parts = [f"**{_title(goal)}** ({topic_link(stream, goal.zulip_topic)})"]
    parts.append(_last_update(goal, now))
    tracking = _tracking(goal)
    if tracking:
        parts.append(tracking)
    return "- " + ", ".join(parts[:1]) + ": " + ", ".join(parts[1:])


def _goal_list(goals: Sequence[GoalView], now: datetime, stream: StreamRef, frame: int) -> str:
    items = [_goal_item(g, now, stream) for g in goals]
    return limit_items(items, MAX_MESSAGE_LENGTH - frame - DM_FRAME_RESERVE)


def _how_to_reply(goals: Sequence[GoalView]) -> str:
    if len(goals) == 1:
        slug = goals[0].slug
        return (
            "Reply right here or in the goal's topic. "
            f"Nothing to report this time? Send `skip {slug}`."
        )
    slug = goals[0].slug
    return (
        "Reply in each goal's topic, or right here starting with `update <goal>:` "
        f"(for example `update {slug}: TL;DR: …`). "
        f"Nothing to report for a goal this time? Send `skip <goal>` (like `skip {slug}`)."
    )


def compose_dm(
    person: PersonView, goals: Sequence[GoalView], now: datetime, *, stream: StreamRef
) -> str:
    """One DM asking an owner about all of their goals that are due, however many."""
    if len(goals) == 1:
        head = f"Hi {_first_name(person)} :wave: time for a progress update on your goal:"
    else:
        head = f"Hi {_first_name(person)} :wave: time for progress updates on your goals:"
    ask = (
        "A few lines each: what happened, what's next, anything blocking you, and where help "
        "is wanted. A `TL;DR:` line gives the summary, a `Help wanted:` line asks for a hand, "
        "and `Status: on track`, `at risk` or `blocked` says how it is going."
    )
    how = _how_to_reply(goals)
    frame = len(head) + len(ask) + len(how)
    return "\n\n".join([head, _goal_list(goals, now, stream, frame), ask, how])


def compose_dm_reminder(
    person: PersonView, goals: Sequence[GoalView], now: datetime, *, stream: StreamRef
) -> str:
    """One DM reminding an owner of the goals still silent since their DM prompt."""
    noun = "this goal is" if len(goals) == 1 else "these goals are"
    head = f"Hi {_first_name(person)}, a friendly reminder: {noun} still waiting for an update:"
    how = _how_to_reply(goals)
    frame = len(head) + len(how)
    return "\n\n".join([head, _goal_list(goals, now, stream, frame), how])


# --- the shell ----------------------------------------------------------------------------------


@dataclass
class PromptReport:
    """What one ``send_due`` did (or, on a dry run, would do); ``render`` is the CLI output."""

    now: datetime
    dry_run: bool
    planned: list[PlannedDelivery] = field(default_factory=list)
    outcomes: list[outbox.Outcome] = field(default_factory=list)
    problem: str | None = None  # bad input, e.g. an unknown --goal; nothing was sent
    # When something may next be owed (see ``next_wake``); not computed on a dry run.
    next_wake: datetime | None = None
    # On a dry run, each goal asked nothing now: (slug, state, when the schedule asks next).
    waiting: list[tuple[str, DueState, datetime | None]] = field(default_factory=list)

    def _count(self, outcome: outbox.Outcome) -> int:
        return sum(1 for o in self.outcomes if o is outcome)

    @property
    def sent(self) -> int:
        return self._count(outbox.Outcome.SENT)

    @property
    def already(self) -> int:
        return self._count(outbox.Outcome.ALREADY)

    @property
    def failed(self) -> int:
        return self._count(outbox.Outcome.FAILED)

    def render(self) -> str:
        if self.problem is not None:
            return self.problem
        if not self.planned:
            return "\n\n".join(
                [f"Nothing is due at {self.now:%Y-%m-%d %H:%M} UTC.", *self._not_now()]
            )
        if self.dry_run:
            head = f"Dry run: {plural(len(self.planned), 'message')} would be sent now."
            return "\n\n".join([head, *(p.render() for p in self.planned), *self._not_now()])
        lines = [
            f"Sent {self.sent}, already sent {self.already}, failed {self.failed} "
            f"(of {len(self.planned)} planned)."
        ]
        lines += [f"- {o}: {p.label}" for p, o in zip(self.planned, self.outcomes, strict=True)]
        return "\n".join(lines)

    def _not_now(self) -> list[str]:
        """Why each other goal is asked nothing now, and when the schedule will ask it."""
        if not self.waiting:
            return []
        lines = [f"Not asked now ({plural(len(self.waiting), 'goal')}):"]
        for slug, state, when in self.waiting:
            why = NOT_NOW.get(state, state.value)
            nxt = f"next asked {when:%Y-%m-%d %H:%M} UTC" if when else "not asked until changed"
            lines.append(f"- {slug}: {why}; {nxt}")
        lines.append("`prompt --now` asks goals still in grace at once.")
        return ["\n".join(lines)]


# How a dry run explains a goal that is asked nothing now.
NOT_NOW: Mapping[DueState, str] = {
    DueState.UP_TO_DATE: "updated this period",
    DueState.DUE: "already asked this period",
    DueState.OVERDUE: "already asked this period",
    DueState.GRACE: "new goal, first asked in the first period after its grace days",
    DueState.SKIPPED: "skipped this period",
    DueState.AWAY: "every owner is away or not mapped to Zulip",
    DueState.NO_OWNERS: "no owner (add one in the goal file and import again)",
    DueState.PAUSED: "paused (`resume <goal>` in chat)",
    DueState.COMPLETED: "completed",
    DueState.RETIRED: "retired",
    DueState.INACTIVE: "its status is not in active_statuses",
}


def load_sent(session: Session, since_key: str) -> dict[tuple[DeliveryKind, str, str], datetime]:
    """Prompt deliveries of periods starting on or after ``since_key``, in one statement."""
    rows = session.execute(
        select(Delivery.kind, Delivery.target, Delivery.period, Delivery.claimed_at).where(
            Delivery.kind.in_(PROMPT_KINDS),
            Delivery.period >= since_key,  # ISO dates compare as strings
            Delivery.state != DeliveryState.FAILED,
        )
    )
    return {(kind, target, period): claimed for kind, target, period, claimed in rows}


def _oldest_key(goals: Iterable[GoalView], now: datetime, config: Config) -> str:
    program = Program.from_config(config)
    keys = [program.period(g, now).key for g in goals]
    return min([*keys, period_at(now, DM_CADENCE_WEEKS, program.slot).key])


def send_due(
    ctx: Context,
    sender: Sender,
    subscribers: frozenset[int],
    *,
    dry_run: bool = False,
    goal_slug: str | None = None,
    kickoff: bool = False,
) -> PromptReport:
    """Send (or, on a dry run, only list) what ``plan`` says is owed now.

    ``goal_slug`` keeps the deliveries that concern that goal: its topic prompt or reminder and
    the DMs to its owners (which still list their other due goals, as a DM always does).
    ``kickoff`` starts a round now (see ``plan``).
    """
    now = ctx.clock.now()
    report = PromptReport(now=now, dry_run=dry_run)
    with ctx.db.read() as session:
        goals = load_goals(session)
        sent = load_sent(session, _oldest_key(goals, now, ctx.config)) if goals else {}
    all_goals = goals  # ``goal_slug`` narrows ``goals``; the next wake-up looks at all
    planned = plan(
        goals,
        sent,
        subscribers,
        now,
        ctx.config,
        ctx.setting.goals_stream,
        kickoff=kickoff,
    )
    if goal_slug is not None:
        wanted = {g.id for g in goals if g.slug.lower() == goal_slug.strip().lower()}
        if not wanted:
            report.problem = (
                f"No active goal has the slug {goal_slug!r}; "
                "`zulip-goals-bot goals list` shows them. Nothing was sent."
            )
            return report
        planned = [p for p in planned if wanted & set(p.goal_ids)]
        goals = [g for g in goals if g.id in wanted]
    report.planned = planned
    if dry_run:
        program = ctx.program
        asked = {gid for p in planned for gid in p.goal_ids}
        report.waiting = [
            (g.slug, program.state(g, now), program.next_asked(g, now))
            for g in goals
            if g.id not in asked
        ]
        return report
    for item in planned:
        outcome = outbox.deliver(ctx.db, sender, item.request, ctx.clock.now)
        log.info("%s: %s", item.label, outcome)
        report.outcomes.append(outcome)
    if planned:
        # The prompts just claimed set their reminders' times.
        with ctx.db.read() as session:
            sent = load_sent(session, _oldest_key(all_goals, now, ctx.config))
    report.next_wake = next_wake(all_goals, sent, now, ctx.config)
    return report
