"""When the scheduler wakes the bot: ``Program.next_wake``, checked against ``prompts.plan``.

The bot sleeps until the next instant something may be owed.  The strongest check is a
simulation: a bot that wakes only at ``next_wake`` must send everything a bot polling every
few minutes sends, never later than it, in programs and for owners far from UTC and across the
DST changes.  A few fixed instants pin the rules down at the edges.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from fakezulip import FakeZulip, Realm
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from tests.support import BotProcess, add_goal, database_for, wait_until, write_conf
from zulip_goals_bot.bot.app import AFTER_COMMANDS_SECONDS, TICK_ENV
from zulip_goals_bot.bot.prompts import next_wake, plan
from zulip_goals_bot.config import Config, DigestConfig, ScheduleConfig
from zulip_goals_bot.db.models import Goal
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.states import DeliveryKind, GoalState, OwnerRole
from zulip_goals_bot.domain.views import GoalView, OwnerView, PersonView

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
HONOLULU = ZoneInfo("Pacific/Honolulu")
KATHMANDU = ZoneInfo("Asia/Kathmandu")  # UTC+05:45
CHATHAM = ZoneInfo("Pacific/Chatham")  # UTC+12:45, +13:45 in its summer
# The polling bot the wake-ups are compared with looks this often.
POLL = timedelta(minutes=15)
LONG_AGO = datetime(2025, 1, 1, tzinfo=UTC)

_ids = itertools.count(1)


def person(tz: str | None, *, away_until: date | None = None) -> PersonView:
    pid = next(_ids)
    return PersonView(pid, 100 + pid, f"Owner {pid}", None, None, tz, away_until, True)


def goal(
    owners: Sequence[PersonView],
    *,
    cadence: int | None = None,
    created: datetime = LONG_AGO,
    state: GoalState = GoalState.ACTIVE,
) -> GoalView:
    gid = next(_ids)
    return GoalView(
        id=gid, period="2026", slug=f"goal-{gid}", title=f"Goal {gid}", short_title=None,
        status="Accepted", flagship=None, tracking_issue=None, tracking_url=None,
        zulip_topic=f"Goal {gid}", teams=(), state=state, active=True, cadence_weeks=cadence,
        created_at=created, owners=tuple(OwnerView(p, OwnerRole.POINT_OF_CONTACT) for p in owners),
    )  # fmt: skip


def config(tz: ZoneInfo, *, digest: bool = False, **schedule: object) -> Config:
    base = ScheduleConfig(weekday=3, at=time(14, 0), cadence_weeks=2, grace_days=7,
                          reminder_days=3, prompt_via="topic", dm_local_hour=10)  # fmt: skip
    return Config(
        path=None,
        zuliprc=Path("zuliprc"),
        timezone=tz,
        schedule=replace(base, **schedule),  # type: ignore[arg-type]
        digest=DigestConfig(enabled=digest, timezone=tz),
    )


Key = tuple[DeliveryKind, str, str]


def polled(
    goals: Sequence[GoalView], subscribers: frozenset[int], cfg: Config, start: datetime,
    end: datetime,
) -> dict[Key, datetime]:  # fmt: skip
    """What a bot that looks every ``POLL`` sends, and when."""
    sent: dict[Key, datetime] = {}
    now = start
    while now < end:
        for item in plan(goals, sent, subscribers, now, cfg):
            r = item.request
            sent[(r.kind, r.target, r.period)] = now
        now += POLL
    return sent


def woken(
    goals: Sequence[GoalView], subscribers: frozenset[int], cfg: Config, start: datetime,
    end: datetime,
) -> tuple[dict[Key, datetime], int]:  # fmt: skip
    """What a bot that wakes only at ``next_wake`` sends, and when; and how often it woke."""
    sent: dict[Key, datetime] = {}
    now: datetime | None = start
    wakes = 0
    while now is not None and now < end:
        wakes += 1
        for item in plan(goals, sent, subscribers, now, cfg):
            r = item.request
            sent[(r.kind, r.target, r.period)] = now
        later = next_wake(goals, sent, now, cfg)
        assert later is None or later > now
        now = later
    return sent, wakes


def agree(goals: Sequence[GoalView], subscribers: frozenset[int], cfg: Config,
          start: datetime, weeks: int) -> int:  # fmt: skip
    """Waking at ``next_wake`` sends what polling sends, never later; returns the wake-ups."""
    end = start + timedelta(weeks=weeks)
    by_poll = polled(goals, subscribers, cfg, start, end)
    by_wake, wakes = woken(goals, subscribers, cfg, start, end)
    # The last poll can see what became owed after the last wake-up before ``end``.
    by_poll = {k: t for k, t in by_poll.items() if t < end - POLL}
    assert by_poll, "the scenario sends nothing: it tests nothing"
    missing = {k: t for k, t in by_poll.items() if k not in by_wake}
    assert not missing, f"waking at next_wake never sent {missing}"
    late = {k: (by_wake[k], t) for k, t in by_poll.items() if not by_wake[k] <= t}
    assert not late, f"sent later than a poll would have: {late}"
    # Each is owed at the instant the bot woke: polling finds it within one interval.
    lagging = {k: (by_wake[k], t) for k, t in by_poll.items() if t - by_wake[k] >= POLL}
    assert not lagging, f"sent before it was owed: {lagging}"
    return wakes


def owners_far_from_utc() -> list[PersonView]:
    return [
        person("Pacific/Honolulu"),
        person("Asia/Kathmandu"),
        person("Pacific/Chatham"),
        person("America/New_York"),
        person(None),  # no timezone in Zulip: the program's
    ]


@pytest.mark.parametrize("via", ["topic", "dm", "both"])
@pytest.mark.parametrize(
    ("tz", "start"),
    [
        (HONOLULU, datetime(2026, 2, 23, tzinfo=UTC)),
        (KATHMANDU, datetime(2026, 2, 23, tzinfo=UTC)),
        (CHATHAM, datetime(2026, 3, 23, tzinfo=UTC)),  # its clocks go back on 2026-04-05
        (NEW_YORK, datetime(2026, 2, 23, tzinfo=UTC)),  # forward on 2026-03-08
        (BERLIN, datetime(2026, 10, 12, tzinfo=UTC)),  # back on 2026-10-25
    ],
    ids=["honolulu", "kathmandu", "chatham", "new-york-spring", "berlin-autumn"],
)
def test_waking_at_next_wake_sends_what_polling_sends(
    tz: ZoneInfo, start: datetime, via: str
) -> None:
    hono, kath, chat, ny, nowhere = owners_far_from_utc()
    back = person("Asia/Kathmandu", away_until=(start + timedelta(days=9)).date())
    goals = [
        goal([hono, kath]),
        goal([chat], cadence=1),
        goal([ny, nowhere], cadence=4),
        goal([back]),  # its owner is away until the second week
        goal([kath], created=start + timedelta(days=2)),  # in grace for the first days
        goal([hono], state=GoalState.PAUSED),
    ]
    subscribers = frozenset({hono.zulip_user_id, ny.zulip_user_id}) - {None}
    cfg = config(tz, prompt_via=via, weekday=0, at=time(1, 30), dm_local_hour=2)
    wakes = agree(goals, subscribers, cfg, start, weeks=5)  # type: ignore[arg-type]
    assert wakes < 5 * 7 * 24  # fewer than polling every hour would take


def test_a_skipped_dm_hour_and_a_doubled_one_are_found() -> None:
    """DMs at 02:00 New York time: on 2026-03-08 that hour does not exist, on 2026-11-01 it
    happens twice; the wake-ups agree with the DM rule on both."""
    owners = [person("America/New_York"), person("America/New_York")]
    goals = [goal([o], cadence=1) for o in owners]
    cfg = config(NEW_YORK, prompt_via="dm", weekday=5, at=time(23, 0), dm_local_hour=2)
    for start in (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 10, 25, tzinfo=UTC)):
        agree(goals, frozenset(), cfg, start, weeks=2)


def test_next_wake_at_the_edges() -> None:
    program = Program(
        ScheduleConfig(weekday=3, at=time(14, 0), dm_local_hour=10),
        HONOLULU,
        DigestConfig(weekday=0, at=time(9, 0), timezone=BERLIN),
    )
    # Thursday 14:00 in Honolulu is Friday 00:00 UTC: the slot is not at the UTC Thursday.
    thursday = datetime(2026, 3, 5, 20, 0, tzinfo=UTC)
    assert program.next_wake([], {}, thursday) == datetime(2026, 3, 6, 0, 0, tzinfo=UTC)
    # The digest at Monday 09:00 in Berlin: 08:00 UTC in winter, 07:00 UTC in summer.
    only_digest = replace(program, schedule=replace(program.schedule, enabled=False))
    winter = datetime(2026, 3, 20, tzinfo=UTC)
    assert only_digest.next_wake([], {}, winter) == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)
    summer = datetime(2026, 3, 27, tzinfo=UTC)
    assert only_digest.next_wake([], {}, summer) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    # Nothing enabled: nothing is ever owed, only the safety net wakes the bot.
    off = replace(only_digest, digest=replace(only_digest.digest, enabled=False))
    assert off.next_wake([], {}, winter) is None


def test_next_wake_of_a_waiting_goal() -> None:
    program = Program(
        ScheduleConfig(weekday=3, at=time(14, 0), cadence_weeks=2, reminder_days=3),
        ZoneInfo("UTC"),
        DigestConfig(enabled=False),
    )
    kath = person("Asia/Kathmandu")
    waiting = goal([kath])
    slot = datetime(2026, 2, 26, 14, 0, tzinfo=UTC)  # a period starts
    assert program.is_waiting(waiting, slot)
    # Its owner's DM hour, 10:00 in Kathmandu, is 04:15 UTC.
    assert program.next_wake([waiting], {}, slot) == datetime(2026, 2, 27, 4, 15, tzinfo=UTC)
    # Prompted at 16:20 on a day that DM hour has passed: the reminder is three days on, at
    # 16:20; the DM hours in between come first.
    prompted = {waiting.id: slot + timedelta(hours=2, minutes=20)}
    after_dm = datetime(2026, 3, 1, 5, 0, tzinfo=UTC)
    assert program.next_wake([waiting], prompted, after_dm) == datetime(
        2026, 3, 1, 16, 20, tzinfo=UTC
    )
    # A paused goal owes nothing: only the next slot remains.
    paused = replace(waiting, state=GoalState.PAUSED)
    assert program.next_wake([paused], prompted, after_dm) == datetime(
        2026, 3, 5, 14, 0, tzinfo=UTC
    )


def test_an_owner_back_from_vacation_wakes_the_bot_at_local_midnight() -> None:
    program = Program(ScheduleConfig(weekday=3, at=time(14, 0)), HONOLULU, DigestConfig(False))
    away = person("Asia/Tokyo", away_until=date(2026, 3, 2))
    asked = goal([away])
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    # Midnight after 2026-03-02 in Honolulu (the program judges vacations by its own date).
    assert program.next_wake([asked], {}, now) == datetime(2026, 3, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "hour", "tz", "expected"),
    [
        # 02:00 does not exist in New York on 2026-03-08: the DM rule moves it to 03:00 EDT.
        (datetime(2026, 3, 8, 5, 0, tzinfo=UTC), 2, NEW_YORK, datetime(2026, 3, 8, 7, 0)),
        # 01:00 happens twice on 2026-11-01: the first one (EDT) counts.
        (datetime(2026, 11, 1, 4, 0, tzinfo=UTC), 1, NEW_YORK, datetime(2026, 11, 1, 5, 0)),
        # Already past today's hour: tomorrow's.
        (datetime(2026, 3, 9, 5, 0, tzinfo=UTC), 10, KATHMANDU, datetime(2026, 3, 10, 4, 15)),
        # Chatham at +13:45 in its summer: 10:00 there is 20:15 UTC the day before.
        (datetime(2026, 1, 5, 0, 0, tzinfo=UTC), 10, CHATHAM, datetime(2026, 1, 5, 20, 15)),
    ],
)
def test_next_local_hour(now: datetime, hour: int, tz: ZoneInfo, expected: datetime) -> None:
    assert Program.next_local_hour(now, hour, tz) == expected.replace(tzinfo=UTC)


def test_the_running_bot_wakes_at_start_and_after_a_command_without_polling(
    tmp_path: Path,
) -> None:
    """The bot as in production: an hourly safety net, nothing else polls.  It ticks once it
    has caught up at start, arms its wake-up at the next owed instant, and ticks again soon
    after a `resume` makes a prompt owed at once."""
    clock = FileClock(tmp_path / "clock")
    clock.set(datetime(2026, 2, 26, 15, 0, tzinfo=UTC))  # an hour into a period: goals are due
    realm = Realm.demo()
    with FakeZulip(realm, clock=lambda: clock.now().timestamp(), heartbeat_seconds=2.0) as server:
        bot, ben = realm.user_by_email("goals-bot@example.com"), realm.user_by_name("Ben Owner")
        assert bot is not None and ben is not None
        conf = write_conf(tmp_path, server, bot, extra="[digest]\nenabled = false\n")
        db = database_for(conf)
        owner = [(ben.user_id, ben.email, ben.full_name)]
        solver = add_goal(db, "solver", "New trait solver", owner, issue=1)
        paused = add_goal(db, "polonius", "Polonius", owner, issue=2)
        with db.write() as session:
            session.execute(update(Goal).where(Goal.id == paused.id).values(state=GoalState.PAUSED))
        env = {CLOCK_FILE_ENV: str(clock.path), TICK_ENV: "3600"}
        with BotProcess(conf, env=env) as proc:

            def prompts(topic: str) -> int:
                return len(server.messages_in("project-goals", topic))

            assert wait_until(lambda: proc.ticks() == 1), proc.log()
            assert prompts(solver.zulip_topic) == 1
            # Next owed: Ben's DM hour, 10:00 in Berlin the next morning (09:00 UTC in winter).
            assert "tick 1 done: 1 sent; next owed 2026-02-27 09:00 UTC" in proc.log()
            server.send_direct_message(ben, [bot], "resume polonius")
            assert wait_until(lambda: proc.ticks() == 2, AFTER_COMMANDS_SECONDS + 20), proc.log()
            assert "tick 2 done: 1 sent" in proc.log()
            assert prompts(paused.zulip_topic) == 1
        db.dispose()
