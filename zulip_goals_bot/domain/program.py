"""The program's calendar: one place that says what state a goal is in and what is owed.

Every caller that asks "is this goal due?" (routing a reply, `status`, `list`, `mine`,
`overdue`, prompts and reminders, the digest, the sandbox, the blog export) asks a ``Program``.
It judges in the program's timezone: the local date decides whether an owner is away, and the
local wall-clock slot decides where a period starts, so a reply at 23:30 local time on the last
day of a period is judged the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from zulip_goals_bot.config import Config, DigestConfig, ScheduleConfig
from zulip_goals_bot.domain.schedule import (
    DueState,
    Period,
    Slot,
    due_state,
    effective_cadence,
    local_instant,
    next_prompt,
    period_at,
    reminder_time,
    zone,
)
from zulip_goals_bot.domain.views import GoalOutline, GoalView, OwnerContact, PersonView

# The digest is weekly: its period grid has one-week cells anchored on the digest slot.
DIGEST_WEEKS = 1
# Every period of every cadence (1, 2 or 4 weeks) starts on a weekly prompt slot, and so does the
# week by which owners' DMs are grouped: the weekly grid holds every instant a period begins.
SLOT_WEEKS = 1
# A health strip shows at most this many periods: two years of fortnights, more than any goal.
MAX_PERIODS_SHOWN = 52


@dataclass(frozen=True, slots=True)
class Program:
    """The prompt schedule of one program, in its timezone (plain data; no clock, no I/O)."""

    schedule: ScheduleConfig
    tz: ZoneInfo
    digest: DigestConfig = field(default_factory=DigestConfig)

    @classmethod
    def from_config(cls, config: Config) -> Program:
        return cls(schedule=config.schedule, tz=config.timezone, digest=config.digest)

    @classmethod
    def default(cls) -> Program:
        """The default schedule in UTC, for callers without a bot.conf (tests, library use)."""
        return cls(schedule=ScheduleConfig(), tz=ZoneInfo("UTC"))

    @property
    def slot(self) -> Slot:
        return Slot(weekday=self.schedule.weekday, at=self.schedule.at, tz=self.tz)

    @property
    def digest_slot(self) -> Slot:
        """The weekly moment the digest goes out, in the digest's own timezone."""
        return Slot(weekday=self.digest.weekday, at=self.digest.at, tz=self.digest.timezone)

    def digest_period(self, now: datetime) -> Period:
        """The digest week containing ``now``: it starts at the latest digest slot."""
        return period_at(now, DIGEST_WEEKS, self.digest_slot)

    def today(self, now: datetime) -> date:
        """The program's local date at ``now`` (vacations and skips are local dates)."""
        return now.astimezone(self.tz).date()

    def cadence(self, goal: GoalView) -> int:
        return effective_cadence(goal.cadence_weeks, self.schedule.cadence_weeks)

    def period(self, goal: GoalView, now: datetime) -> Period:
        """The reporting period of ``goal`` that contains ``now``."""
        return period_at(now, self.cadence(goal), self.slot)

    def state(self, goal: GoalView | GoalOutline, now: datetime) -> DueState:
        """Why ``goal`` is or is not waiting for an update at ``now``."""
        facts = goal.facts(self.schedule.cadence_weeks, self.today(now))
        return due_state(facts, now, self.slot, self.schedule.grace_days)

    def state_then(
        self, goal: GoalView, now: datetime, then: datetime, last_update_at: datetime | None
    ) -> DueState:
        """The state ``goal`` had at ``then`` with its latest update at ``last_update_at``;
        vacations and pauses count as they are at ``now`` (their history is not kept)."""
        facts = replace(
            goal.facts(self.schedule.cadence_weeks, self.today(now)), last_update_at=last_update_at
        )
        return due_state(facts, then, self.slot, self.schedule.grace_days)

    def standing(self, goal: GoalView, now: datetime) -> DueState:
        """The state ``goal`` would be in past its grace and with no update: what is left is what
        stops it from ever being prompted (its status, state, owners), not timing."""
        facts = replace(
            goal.facts(self.schedule.cadence_weeks, self.today(now)),
            created_at=now - timedelta(weeks=4 * MAX_CADENCE_WEEKS),
            last_update_at=None,
            skipped_periods=frozenset(),
        )
        return due_state(facts, now, self.slot, grace_days=0)

    def periods(self, goal: GoalView, start: datetime, now: datetime) -> tuple[Period, ...]:
        """``goal``'s reporting periods from the one containing ``start`` to the one containing
        ``now`` (the last one still running), at most ``MAX_PERIODS_SHOWN``, oldest first."""
        weeks = self.cadence(goal)
        period = self.period(goal, now)
        found = [period]
        while period.start > start and len(found) < MAX_PERIODS_SHOWN:
            period = period.previous(weeks, self.slot)
            found.append(period)
        return tuple(reversed(found))

    def health_periods(self, goal: GoalView, now: datetime) -> tuple[Period, ...]:
        """The periods a goal's health strip shows: from its first call (or its creation) on."""
        first = goal.health.calls[0].said_at if goal.health is not None else goal.created_at
        return self.periods(goal, min(first, goal.created_at), now)

    def is_waiting(self, goal: GoalView, now: datetime) -> bool:
        return self.state(goal, now).is_waiting

    def reachable_owners(self, goal: GoalView, now: datetime) -> tuple[PersonView, ...]:
        """The owners a prompt for ``goal`` goes to today (mapped, active, not away)."""
        today = self.today(now)
        return tuple(
            p for p in goal.prompted_owners() if p.contact(today) is OwnerContact.REACHABLE
        )

    def next_asked(self, goal: GoalView, now: datetime) -> datetime | None:
        """When the schedule next asks ``goal``'s owners if nobody changes anything.

        None when it never will by itself: the goal is paused, completed, retired or not
        prompted, has no owner, or its owners are unmapped; an admin must act first.
        """
        state = self.state(goal, now)
        if not self.schedule.enabled or state in _NEVER_PROMPTED or state is DueState.NO_OWNERS:
            return None
        period = self.period(goal, now)
        if state is DueState.GRACE:
            first_due = goal.created_at + timedelta(days=self.schedule.grace_days)
            while period.start < first_due:
                period = period_at(period.end, self.cadence(goal), self.slot)
            return period.start
        if state is DueState.AWAY:
            today = self.today(now)
            returns = [
                local_instant(p.away_until + timedelta(days=1), time(0), self.tz)
                for p in goal.prompted_owners()
                if p.contact(today) is OwnerContact.AWAY and p.away_until is not None
            ]
            return min(returns, default=None)
        return period.end

    def next_prompt(self, goal: GoalView, now: datetime) -> datetime | None:
        """When ``goal`` is next asked, or None when it is not prompted at all."""
        if not self.schedule.enabled or self.state(goal, now) in _NEVER_PROMPTED:
            return None
        return next_prompt(now, self.cadence(goal), self.slot)

    def next_wake(
        self, goals: Iterable[GoalView], prompted: Mapping[int, datetime], now: datetime
    ) -> datetime | None:
        """The earliest instant after ``now`` at which a prompt, reminder, DM or digest may
        become owed, if nobody changes anything meanwhile; None when nothing ever will.

        Conservative: it may name an instant at which nothing turns out to be owed (the bot then
        wakes for nothing), never one later than a message that is owed.  ``prompted`` maps the
        goals whose topic prompt of their current period went out to when it was claimed.
        What is owed at that instant is still for ``prompts.plan`` and the digest to say.
        """
        found: list[datetime] = []
        if self.digest.enabled:
            found.append(self.digest_period(now).end)
        if self.schedule.enabled:
            found.append(self._prompt_candidates(goals, prompted, now))
        later = [when for when in found if when > now]
        return min(later, default=None)

    def _prompt_candidates(
        self, goals: Iterable[GoalView], prompted: Mapping[int, datetime], now: datetime
    ) -> datetime:
        # Periods (hence grace ends, overdue goals and the weekly DM grouping) change on a slot.
        found = [period_at(now, SLOT_WEEKS, self.slot).end]
        today = self.today(now)
        dm_zones: set[ZoneInfo] = set()
        for goal in goals:
            state = self.state(goal, now)
            if state in _NEVER_PROMPTED:
                continue
            # An owner back from a vacation is reachable from the next local midnight.
            found += [
                local_instant(p.away_until + timedelta(days=1), time(0), self.tz)
                for p in goal.prompted_owners()
                if p.away_until is not None and p.away_until >= today
            ]
            if not state.is_waiting:
                continue
            asked = prompted.get(goal.id)
            if asked is not None:
                reminder = reminder_time(self.period(goal, now), asked, self.schedule.reminder_days)
                if reminder is not None:
                    found.append(reminder)
            # DM prompts and DM reminders go out at the DM hour in each owner's own timezone.
            dm_zones.update(zone(p.timezone, self.tz) for p in self.reachable_owners(goal, now))
        found += [self.next_local_hour(now, self.schedule.dm_local_hour, tz) for tz in dm_zones]
        return min(when for when in found if when > now)

    @staticmethod
    def next_local_hour(now: datetime, hour: int, tz: ZoneInfo) -> datetime:
        """The first ``hour`` o'clock in ``tz`` after ``now`` (a skipped hour moves forward, as
        ``schedule.local_send_time`` moves it)."""
        day = now.astimezone(tz).date()
        for offset in range(3):  # today, tomorrow, or the day after a DST change ate an hour
            when = local_instant(day + timedelta(days=offset), time(hour), tz)
            if when > now:
                return when
        raise AssertionError("unreachable: a local hour recurs within three days")


# The longest cadence a goal may have (weeks); `standing` looks further back than two of them.
MAX_CADENCE_WEEKS = 4
# States in which no prompt will ever go out until an admin changes the goal.
_NEVER_PROMPTED = frozenset(
    {DueState.PAUSED, DueState.COMPLETED, DueState.RETIRED, DueState.INACTIVE}
)
