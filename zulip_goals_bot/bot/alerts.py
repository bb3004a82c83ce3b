"""Blockers reach someone: a goal's champions and its teams' leads hear when it needs help.

When a goal's owners call it ``blocked``, or keep it ``at risk`` into a second period
(``health.alert_reason``), each of its champions (the ``[team] champion`` rows of its goal file)
and, with ``[health] notify_leads``, each lead of its teams gets one DM: the goal and its topic,
the health and since when, the owner's words (quoted, unable to ping) with who said them and a
link to the message or comment.

``plan_alerts`` is pure: goals, champions, leads, the program and the time in; the DMs owed out.
``send_alerts`` is the shell the running bot's tick calls: it loads what the plan needs and hands
every DM to ``outbox.deliver``, which claims it in the database first.  Each DM is keyed by
(goal and recipient, ``AlertReason.key(since)``), so it goes out once per change whatever
restarts, and a goal that turns on track and then blocked again is a new change.

Only recent changes of running goals are told (``ALERT_WINDOW``), so a first start on an old
database, or a GitHub sync reading a year of comments, tells nobody what was news months ago.
People without a linked, active Zulip account are skipped (and logged by handle and id); the
goal's own owners are not told of their own call.

Team leads come from the program's team records: the ``teams/*.toml`` files of the Rust
project's team repository (``[people] leads = [...]``), found beside the per-person files that
``people_file`` names.  Without them only champions are told.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zulip_goals_bot.bot import outbox
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.bot.zulip_io import Sender
from zulip_goals_bot.db.models import Delivery, Person
from zulip_goals_bot.db.queries import (
    goals_with_calls,
    load_champions,
    load_goals,
    person_view,
)
from zulip_goals_bot.domain.health import (
    ATTENTION_PERIODS,
    NEEDS_HELP,
    AlertReason,
    GoalHealth,
    HealthCall,
    HealthSource,
    alert_reason,
    describe,
)
from zulip_goals_bot.domain.markdown import (
    StreamRef,
    neutralize,
    quote_block,
    safe,
    shorten,
    topic_link,
)
from zulip_goals_bot.domain.program import MAX_CADENCE_WEEKS, Program
from zulip_goals_bot.domain.states import DeliveryKind, DeliveryState
from zulip_goals_bot.domain.views import ChampionView, GoalView, PersonView
from zulip_goals_bot.people.files import github_handle
from zulip_goals_bot.people.teams import PEOPLE_SUBFOLDER

log = logging.getLogger(__name__)

# A change is told only while it is this recent: a goal blocked (or at risk long enough) before
# that is history, and a first start or a backfill must not flood anyone with it.
ALERT_WINDOW = timedelta(days=14)
# How far back a run of trouble that is still news may have begun: an at-risk goal is told from
# its second period on, which starts at most a (longest) period after its first call.
ALERT_HORIZON = ALERT_WINDOW + timedelta(weeks=MAX_CADENCE_WEEKS)
# The owner's words as quoted (the stored call is already cut at ``queries.CALL_WORDS``).
WORDS_LIMIT = 500
# A runaway title must not push the DM past Zulip's limit.
TITLE_LIMIT = 300
# The folder of team records in the team repository, beside ``people/``.
TEAMS_SUBFOLDER = "teams"


def alert_target(goal_id: int, user_id: int) -> str:
    """One recipient's alerts about one goal (the delivery's ``period`` names the change)."""
    return f"goal:{goal_id}:user:{user_id}"


# --- deciding (pure) ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TeamLead:
    """A lead of a team, by GitHub handle; ``person`` once the handle is known to the bot."""

    team: str
    github: str
    person: PersonView | None = None


@dataclass(frozen=True, slots=True)
class Unreachable:
    """Someone who should hear of a goal but cannot: no Zulip account linked, or deactivated."""

    goal_id: int
    github: str | None
    person_id: int | None
    why: str

    def describe(self) -> str:
        who = f"@{self.github}" if self.github else "someone"
        person = f" (person {self.person_id})" if self.person_id is not None else ""
        return f"goal {self.goal_id}: {who}{person} {self.why}"


@dataclass(frozen=True, slots=True)
class PlannedAlert:
    """One DM owed now: the outbox request, and a line for the log."""

    request: outbox.Request
    label: str

    @property
    def text(self) -> str:
        return "\n\n".join(self.request.parts)


@dataclass(frozen=True, slots=True)
class AlertPlan:
    alerts: tuple[PlannedAlert, ...] = ()
    unreachable: tuple[Unreachable, ...] = ()


@dataclass(frozen=True, slots=True)
class DueAlert:
    """A goal whose current health its champions must hear of, and since when it is owed."""

    goal: GoalView
    health: GoalHealth
    reason: AlertReason
    owed_at: datetime

    @property
    def key(self) -> str:
        """The delivery period: names this change (``AlertReason.key``), at most 40 characters."""
        return self.reason.key(self.health.since)


def due_alert(goal: GoalView, program: Program, now: datetime) -> DueAlert | None:
    """The alert ``goal`` owes at ``now``, if any: a goal still asked for updates, a health
    champions must hear of, and a change recent enough to be news."""
    health = goal.health
    if health is None or not goal.is_prompted:
        return None
    periods = program.periods(goal, health.since, now)
    reason = alert_reason(health, periods)
    if reason is None:
        return None
    if reason is AlertReason.BLOCKED:
        owed_at = health.since
    else:
        # At risk is told once it has held into its ATTENTION_PERIODS-th period (``periods``
        # start with the one of its first call, so that one is there): from then on.
        owed_at = periods[ATTENTION_PERIODS - 1].start
    if owed_at > now or now - owed_at > ALERT_WINDOW:
        return None
    return DueAlert(goal, health, reason, owed_at)


@dataclass
class _Recipient:
    person: PersonView
    roles: list[str] = field(default_factory=list)


def _champion(team: str | None) -> str:
    if not team:
        return "a champion of this goal"
    return f"a champion of this goal for the {neutralize(team)} team"


def plan_alerts(
    goals: Iterable[GoalView],
    champions: Mapping[int, Sequence[ChampionView]],
    leads: Mapping[str, Sequence[TeamLead]],
    program: Program,
    now: datetime,
    *,
    site: str,
    stream: StreamRef,
    sent: Collection[tuple[str, str]] = (),
    notify_leads: bool = True,
) -> AlertPlan:
    """Every alert DM owed at ``now`` and not in ``sent`` (``(target, period)`` pairs already
    claimed); pure.

    Per goal owing an alert (``due_alert``): one DM to each champion and, with
    ``notify_leads``, each lead of the goal's teams (``leads`` by lower-case team name); one per
    person however many roles they have. The goal's own owners are not told of their own call.
    People without a linked, active Zulip account are returned as ``unreachable``.
    """
    alerts: list[PlannedAlert] = []
    unreachable: list[Unreachable] = []
    for goal in goals:
        due = due_alert(goal, program, now)
        if due is None:
            continue
        owners = {o.person.person_id for o in goal.owners}
        people: list[tuple[str, PersonView | None, str]] = [
            (c.github, c.person, _champion(c.team)) for c in champions.get(goal.id, ())
        ]
        if notify_leads:
            people += [
                (lead.github, lead.person, f"a lead of the {neutralize(lead.team)} team")
                for team in goal.teams
                for lead in leads.get(team.lower(), ())
            ]
        recipients: dict[int, _Recipient] = {}
        for handle, person, role in people:
            if person is None or person.zulip_user_id is None:
                pid = person.person_id if person is not None else None
                unreachable.append(Unreachable(goal.id, handle, pid, "has no Zulip account"))
                continue
            if not person.is_active:
                unreachable.append(
                    Unreachable(goal.id, handle, person.person_id, "is deactivated in Zulip")
                )
                continue
            if person.person_id in owners:
                continue
            found = recipients.setdefault(person.zulip_user_id, _Recipient(person))
            if role not in found.roles:
                found.roles.append(role)
        for user_id, recipient in recipients.items():
            target = alert_target(goal.id, user_id)
            if (target, due.key) in sent:
                continue
            text = compose_alert(due, recipient.roles, now, site=site, stream=stream)
            request = outbox.Request(
                kind=DeliveryKind.HEALTH_ALERT,
                target=target,
                period=due.key,
                destination=outbox.Destination.to_users([user_id]),
                parts=(text,),
                goal_id=goal.id,
                person_id=recipient.person.person_id,
            )
            label = f"{due.reason.value} alert for goal {goal.slug} to {recipient.person.display}"
            alerts.append(PlannedAlert(request, label))
    return AlertPlan(tuple(alerts), tuple(unreachable))


# --- composing (pure) ---------------------------------------------------------------------------


def told_call(health: GoalHealth) -> HealthCall:
    """The call whose words the DM quotes: the one that started the run, or when it has no words
    (a reaction) the newest call of the run that has some."""
    return health.voiced(first=True)


def _and(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _said(call: HealthCall, site: str) -> str:
    """Who said it, how, and where: the owner's words quoted, unable to ping anyone."""
    who = safe(call.author) if call.author else "An owner"
    link = call.link(site)
    where = f" ([{call.link_text}]({link}))" if link else ""
    if call.words:
        words = neutralize(shorten(call.words, WORDS_LIMIT))
        return f"{who} wrote{where}:\n{quote_block(words)}"
    if call.source is HealthSource.REACTION:
        return f"{who} said so with a {call.health.mark} reaction on the prompt{where}."
    return f"{who} said so{where}."


def compose_alert(
    due: DueAlert, roles: Sequence[str], now: datetime, *, site: str, stream: StreamRef
) -> str:
    """The DM to one champion or lead: what needs help, since when, in the owner's words."""
    goal, health = due.goal, due.health
    title = safe(shorten(goal.name, TITLE_LIMIT))
    if due.reason is AlertReason.BLOCKED:
        head = f"{health.health.mark} **{title}** is **blocked**, its owners say."
    else:
        head = (
            f"{health.health.mark} **{title}** has been **at risk** for "
            f"{ATTENTION_PERIODS} periods in a row, its owners say."
        )
    facts = [f"- Topic: {topic_link(stream, goal.zulip_topic)}"]
    if goal.tracking_url:
        label = f"#{goal.tracking_issue}" if goal.tracking_issue else "tracking issue"
        facts.append(f"- Tracking issue: [{label}]({goal.tracking_url})")
    facts.append(f"- Health: {describe(health, now)}")
    slug = goal.slug.replace("`", "")
    return "\n\n".join(
        [
            f"{head} You hear of it as {_and(roles)}; maybe you can help.",
            "\n".join(facts),
            _said(told_call(health), site),
            f"I tell you once per change. `status {slug}` shows the goal and its latest update.",
        ]
    )


# --- team leads from the team repository ---------------------------------------------------------


def teams_folder(people_file: Path | None) -> Path | None:
    """The team records beside the per-person files ``people_file`` names: ``teams/`` of the
    team repository (``people_file`` is the repository, or its ``people/`` folder)."""
    if people_file is None or not people_file.is_dir():
        return None
    if (people_file / TEAMS_SUBFOLDER).is_dir():
        return people_file / TEAMS_SUBFOLDER
    if people_file.name == PEOPLE_SUBFOLDER and (people_file.parent / TEAMS_SUBFOLDER).is_dir():
        return people_file.parent / TEAMS_SUBFOLDER
    return None


def parse_team_leads(text: str, name: str) -> tuple[str, tuple[str, ...]]:
    """One team record: the team's name (lower case; the file's stem when it has no ``name``)
    and its leads' handles. Raises ValueError naming the file when it is not valid TOML."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{name}: not valid TOML: {exc}") from exc
    raw_name = data.get("name")
    team = raw_name if isinstance(raw_name, str) and raw_name.strip() else Path(name).stem
    people = data.get("people")
    raw_leads: Any = people.get("leads", ()) if isinstance(people, dict) else ()
    handles: list[str] = []
    for entry in raw_leads if isinstance(raw_leads, list) else ():
        raw = entry.get("github") if isinstance(entry, dict) else entry
        handle = github_handle(raw) if isinstance(raw, str) else None
        if handle is not None and handle not in handles:
            handles.append(handle)
    return team.strip().lower(), tuple(handles)


# The team records as last read, per folder, with the files' sizes and times they were read at:
# a tick reads them again only when a file changed.
_LEADS_READ: dict[Path, tuple[tuple[tuple[str, int, int], ...], dict[str, tuple[str, ...]]]] = {}


def read_team_leads(folder: Path) -> dict[str, tuple[str, ...]]:
    """Every team's leads in ``folder`` (``*.toml``), by lower-case team name; a file that cannot
    be read is logged and skipped."""
    try:
        entries = sorted(
            (e for e in os.scandir(folder) if e.name.lower().endswith(".toml") and e.is_file()),
            key=lambda e: e.name,
        )
        signature = tuple((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in entries)
    except OSError as exc:
        log.warning("cannot read the team records in %s: %s", folder, exc)
        return {}
    kept = _LEADS_READ.get(folder)
    if kept is not None and kept[0] == signature:
        return kept[1]
    leads: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        try:
            team, handles = parse_team_leads(
                Path(entry.path).read_text(encoding="utf-8-sig"), entry.name
            )
        except (ValueError, OSError) as exc:
            log.warning("skipping team record %s: %s", entry.path, exc)
            continue
        if handles:
            leads[team] = handles
    _LEADS_READ[folder] = (signature, leads)
    return leads


def load_leads(
    session: Session, handles: Mapping[str, Sequence[str]]
) -> dict[str, tuple[TeamLead, ...]]:
    """The leads of each team with the person each handle is linked to, in one statement."""
    wanted = {h for hs in handles.values() for h in hs}
    if not wanted:
        return {}
    people = {
        p.github: person_view(p)
        for p in session.execute(select(Person).where(Person.github.in_(sorted(wanted)))).scalars()
        if p.github
    }
    return {
        team: tuple(TeamLead(team, h, people.get(h)) for h in hs) for team, hs in handles.items()
    }


# --- the shell ----------------------------------------------------------------------------------


@dataclass
class AlertReport:
    """What one ``send_alerts`` did."""

    outcomes: list[outbox.Outcome] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(1 for o in self.outcomes if o is outbox.Outcome.SENT)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o is outbox.Outcome.FAILED)


# Who was logged as unreachable, per change: a tick every few minutes says it once per process.
_LOGGED_UNREACHABLE: set[tuple[str, str]] = set()
_LOGGED_LIMIT = 10_000


def _claimed(session: Session, goal_ids: Sequence[int]) -> set[tuple[str, str]]:
    """The alerts of these goals already claimed or sent (failed ones are owed again)."""
    rows = session.execute(
        select(Delivery.target, Delivery.period).where(
            Delivery.kind == DeliveryKind.HEALTH_ALERT,
            Delivery.goal_id.in_(list(goal_ids)),
            Delivery.state != DeliveryState.FAILED,
        )
    )
    return {(target, period) for target, period in rows}


def _log_unreachable(plan: AlertPlan, keys: Mapping[int, str]) -> None:
    if len(_LOGGED_UNREACHABLE) > _LOGGED_LIMIT:
        _LOGGED_UNREACHABLE.clear()
    for item in plan.unreachable:
        seen = (keys.get(item.goal_id, ""), item.describe())
        if seen not in _LOGGED_UNREACHABLE:
            _LOGGED_UNREACHABLE.add(seen)
            log.info("health alert skipped: %s", item.describe())


def send_alerts(ctx: Context, sender: Sender) -> AlertReport:
    """Send every alert DM owed now, each claimed first (see ``outbox``); ``[health] alerts``
    off sends nothing. Reads the goals (``load_goals``) and, only when one owes an alert, its
    champions, the alerts already claimed and the linked leads, one statement each; the team
    records are read again only when one of their files changed."""
    report = AlertReport()
    config = ctx.config.health
    if not config.alerts:
        return report
    now = ctx.clock.now()
    program = ctx.program
    with ctx.db.read() as session:
        # Only goals with a recent call of trouble can owe an alert: every tick asks, and most
        # find none (one indexed statement instead of loading every goal).
        candidates = goals_with_calls(session, NEEDS_HELP, now - ALERT_HORIZON)
        goals = load_goals(session, goal_ids=sorted(candidates)) if candidates else []
        due = {g.id: d for g in goals if (d := due_alert(g, program, now))}
    if not due:
        return report
    folder = teams_folder(ctx.config.people_file) if config.notify_leads else None
    handles: dict[str, tuple[str, ...]] = {}
    if folder is not None:
        teams = {t.lower() for d in due.values() for t in d.goal.teams}
        handles = {t: hs for t, hs in read_team_leads(folder).items() if t in teams}
    ids = sorted(due)
    with ctx.db.read() as session:
        champions = load_champions(session, ids)
        sent = _claimed(session, ids)
        leads = load_leads(session, handles)
    plan = plan_alerts(
        [d.goal for d in due.values()],
        champions,
        leads,
        program,
        now,
        site=ctx.setting.site,
        stream=ctx.setting.goals_stream,
        sent=sent,
        notify_leads=config.notify_leads,
    )
    _log_unreachable(plan, {gid: d.key for gid, d in due.items()})
    for item in plan.alerts:
        outcome = outbox.deliver(ctx.db, sender, item.request, ctx.clock.now)
        log.info("%s: %s", item.label, outcome)
        report.outcomes.append(outcome)
    return report
