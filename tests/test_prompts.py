"""Prompts, reminders and DMs: when they go out, to whom, what they say, and that each goes once."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from fakezulip import FakeZulip, Realm, User
from tests.dbs import new_database
from tests.mentions import contains_unsafe_mention
from zulip_goals_bot.bot import outbox
from zulip_goals_bot.bot.app import look_up_streams
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.bot.prompts import (
    compose_dm,
    compose_dm_reminder,
    compose_prompt,
    compose_reminder,
    plan,
    send_due,
)
from zulip_goals_bot.bot.zulip_io import Sender, ZulipIO
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.commands.effects import SkipPeriod
from zulip_goals_bot.commands.execute import apply
from zulip_goals_bot.config import Config, ScheduleConfig
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Delivery, Goal, GoalOwner, Person, Skip, Update
from zulip_goals_bot.db.queries import load_goals
from zulip_goals_bot.domain.markdown import MAX_MESSAGE_LENGTH, StreamRef
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.states import (
    DeliveryKind,
    DeliveryState,
    GoalState,
    OwnerRole,
    UpdateKind,
)

STREAM = "project-goals"
GOALS_STREAM = StreamRef(STREAM, 7)  # links name the stream by this id, as the bot looks it up
LONG_AGO = datetime(2024, 6, 1, tzinfo=UTC)
# A Thursday that starts a period of every cadence (1, 2 and 4 weeks counted from 2024-01-04).
PERIOD_START_DAY = date(2025, 5, 22)
FRIDAY, MONDAY = PERIOD_START_DAY + timedelta(days=1), PERIOD_START_DAY + timedelta(days=4)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@dataclass
class Message:
    at: datetime
    content: str
    stream: str | None = None
    topic: str | None = None
    user_ids: tuple[int, ...] = ()


class Recorder:
    """A Zulip stand-in that records what was sent and when (the clock's time)."""

    def __init__(self, clock: FrozenClock) -> None:
        self.clock = clock
        self.messages: list[Message] = []

    def send_stream(self, stream: str, topic: str, content: str) -> int:
        self.messages.append(Message(self.clock.now(), content, stream, topic))
        return len(self.messages)

    def send_dm(self, user_ids: Sequence[int], content: str) -> int:
        self.messages.append(Message(self.clock.now(), content, user_ids=tuple(sorted(user_ids))))
        return len(self.messages)

    def add_reaction(self, message_id: int, emoji_name: str) -> None:
        pass

    def in_topic(self, topic: str) -> list[Message]:
        return [m for m in self.messages if m.topic == topic]

    def dms_to(self, user_id: int) -> list[Message]:
        return [m for m in self.messages if m.user_ids == (user_id,)]


def make_config(tz: str = "UTC", **schedule: object) -> Config:
    base = ScheduleConfig(weekday=3, at=time(14, 0), cadence_weeks=1, grace_days=7,
                          reminder_days=3, prompt_via="topic", dm_local_hour=10)  # fmt: skip
    return Config(
        path=None,
        zuliprc=Path("zuliprc"),
        stream=STREAM,
        timezone=ZoneInfo(tz),
        schedule=replace(base, **schedule),  # type: ignore[arg-type]
    )


@dataclass
class World:
    """A database, a frozen clock and a recording sender, with helpers to add data and tick."""

    db: Database
    clock: FrozenClock
    config: Config
    sender: Sender
    subscribers: set[int] = field(default_factory=set)
    streams: tuple[StreamRef, ...] = (GOALS_STREAM,)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    @property
    def rec(self) -> Recorder:
        assert isinstance(self.sender, Recorder)
        return self.sender

    @property
    def ctx(self) -> Context:
        site = "https://zulip.example"
        return Context(
            Setting(self.config, site, 1, "Goals Bot", self.streams), self.db, self.clock
        )

    def person(
        self,
        name: str,
        *,
        tz: str | None = "UTC",
        subscribed: bool = True,
        away_until: date | None = None,
        zulip_id: int | None = -1,
    ) -> int:
        uid = next(self._ids) if zulip_id == -1 else zulip_id
        with self.db.write() as s:
            p = Person(zulip_user_id=uid, full_name=name, email=f"{name.split()[0].lower()}@x.org",
                       timezone=tz, away_until=away_until, created_at=LONG_AGO)  # fmt: skip
            s.add(p)
            s.flush()
            pid = p.id
        if subscribed and uid is not None:
            self.subscribers.add(uid)
        return pid

    def zulip_id(self, person_id: int) -> int:
        with self.db.read() as s:
            person = s.get(Person, person_id)
            assert person is not None and person.zulip_user_id is not None
            return person.zulip_user_id

    def goal(
        self,
        slug: str,
        owners: Sequence[int],
        *,
        title: str | None = None,
        created_at: datetime = LONG_AGO,
        cadence: int | None = None,
        state: GoalState = GoalState.ACTIVE,
        issue: int | None = None,
        roles: Sequence[OwnerRole] | None = None,
        answered_at: datetime | None = None,
    ) -> int:
        """A goal; ``answered_at`` stores an update by its first owner (to start a test quiet)."""
        with self.db.write() as s:
            g = Goal(
                period="2025h1",
                slug=slug,
                title=title or slug.replace("-", " ").capitalize(),
                zulip_topic=slug,
                tracking_issue=issue,
                tracking_url=(
                    f"https://github.com/rust-lang/rust-project-goals/issues/{issue}"
                    if issue
                    else None
                ),
                state=state,
                cadence_weeks=cadence,
                created_at=created_at,
                updated_at=created_at,
            )
            s.add(g)
            s.flush()
            for i, pid in enumerate(owners):
                role = roles[i] if roles else OwnerRole.POINT_OF_CONTACT
                s.add(GoalOwner(goal_id=g.id, person_id=pid, role=role, position=i))
            gid = g.id
        if answered_at is not None:
            self.update(gid, owners[0], answered_at)
        return gid

    def update(self, goal_id: int, author: int, at: datetime) -> None:
        with self.db.write() as s:
            s.add(Update(zulip_message_id=next(self._ids), goal_id=goal_id,
                         author_id=author, kind=UpdateKind.UPDATE, content="TL;DR: progress",
                         sent_at=at))  # fmt: skip

    def set_state(self, goal_id: int, state: GoalState) -> None:
        with self.db.write() as s:
            goal = s.get(Goal, goal_id)
            assert goal is not None
            goal.state = state

    def tick(self, **kw: object) -> outbox.Outcome | None:
        report = send_due(self.ctx, self.sender, frozenset(self.subscribers), **kw)  # type: ignore[arg-type]
        assert report.failed == 0
        return None

    def run(self, start: datetime, end: datetime, step: timedelta = timedelta(hours=1)) -> None:
        """Tick at every ``step`` from ``start`` (inclusive) to ``end`` (exclusive)."""
        self.clock.set(start)
        while self.clock.now() < end:
            self.tick()
            self.clock.advance(step)

    def deliveries(self) -> list[Delivery]:
        with self.db.read() as s:
            return list(s.execute(select(Delivery).order_by(Delivery.id)).scalars())


@pytest.fixture
def world(tmp_path: Path) -> World:
    db = new_database(tmp_path)
    clock = FrozenClock(utc(2025, 5, 1))
    return World(db, clock, make_config(), Recorder(clock))


def slot_instant(day: date, tz: str = "UTC", at: time = time(14)) -> datetime:
    return datetime.combine(day, at, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def local(day: date, hour: int, tz: str) -> datetime:
    return slot_instant(day, tz, time(hour))


def mentioned_ids(text: str) -> set[int]:
    """User ids that a message notifies (non-silent mentions)."""
    return {int(m) for m in re.findall(r"@\*\*[^*|]+\|(\d+)\*\*", text)}


# --- topic prompts ------------------------------------------------------------------------------


def test_prompt_goes_out_once_at_the_slot_mentioning_reachable_owners(world: World) -> None:
    ben = world.person("Ben Owner")
    ada = world.person("Ada Away", away_until=date(2025, 6, 1))
    task = world.person("Tess Task")
    gid = world.goal("async-closures", [ben, ada, task], issue=123,
                     roles=[OwnerRole.POINT_OF_CONTACT, OwnerRole.POINT_OF_CONTACT,
                            OwnerRole.TASK])  # fmt: skip
    start = slot_instant(PERIOD_START_DAY)
    world.run(start - timedelta(hours=3), start + timedelta(hours=3))
    # The first tick catches up the previous (unprompted) period; then nothing until the slot.
    before, prompt = world.rec.in_topic("async-closures")
    assert (before.at, prompt.at) == (start - timedelta(hours=3), start)
    assert prompt.stream == STREAM
    assert mentioned_ids(prompt.content) == {world.zulip_id(ben)}  # not the away one, not tasks
    assert "[#123](https://github.com/rust-lang/rust-project-goals/issues/123)" in prompt.content
    assert "no update yet" in prompt.content.lower()
    assert "`TL;DR:`" in prompt.content and "`Help wanted:`" in prompt.content
    assert "`skip`" in prompt.content
    row = world.deliveries()[-1]
    assert (row.kind, row.target, row.period, row.state) == (
        DeliveryKind.PROMPT,
        f"goal:{gid}",
        PERIOD_START_DAY.isoformat(),
        DeliveryState.SENT,
    )


def test_calling_send_due_twice_sends_nothing_the_second_time(world: World) -> None:
    world.goal("a", [world.person("Ben Owner")])
    world.goal("b", [world.person("Eve Lead")])
    world.clock.set(slot_instant(PERIOD_START_DAY) + timedelta(minutes=1))
    first = send_due(world.ctx, world.sender, frozenset(world.subscribers))
    second = send_due(world.ctx, world.sender, frozenset(world.subscribers))
    assert (first.sent, first.already, len(first.planned)) == (2, 0, 2)
    assert (second.sent, second.already, len(second.planned)) == (0, 0, 0)
    assert len(world.rec.messages) == 2
    assert second.render().startswith("Nothing is due")


def test_prompt_shows_the_last_update_and_neutralizes_the_title(world: World) -> None:
    ben = world.person("Ben Owner")
    gid = world.goal("x", [ben], title="Ping @**all** and @*team*")
    world.update(gid, ben, utc(2025, 5, 12, 9, 30))
    world.run(slot_instant(PERIOD_START_DAY), slot_instant(PERIOD_START_DAY) + timedelta(hours=1))
    [prompt] = world.rec.messages
    assert "<time:2025-05-12T09:30:00+00:00> (10 days ago)" in prompt.content
    assert not contains_unsafe_mention(prompt.content, [world.zulip_id(ben)])


def test_downtime_over_prompt_time_sends_once_when_back(world: World) -> None:
    start = slot_instant(PERIOD_START_DAY)
    world.goal("a", [world.person("Ben Owner")], answered_at=start - timedelta(days=1))
    world.run(start - timedelta(hours=2), start - timedelta(hours=1))
    world.clock.set(start + timedelta(days=2))  # down for two days
    world.tick()
    world.tick()
    world.run(start + timedelta(days=2), start + timedelta(days=2, hours=5))
    [prompt] = world.rec.messages
    assert prompt.at == start + timedelta(days=2)


def test_missed_period_is_not_prompted_after_it_ended(world: World) -> None:
    start = slot_instant(PERIOD_START_DAY)
    world.goal("a", [world.person("Ben Owner")], answered_at=start - timedelta(days=1))
    world.run(start + timedelta(days=7, hours=1), start + timedelta(days=7, hours=5))
    [prompt] = world.rec.messages  # down for the whole period: only the next one is asked
    assert prompt.at == start + timedelta(days=7, hours=1)
    assert [d.period for d in world.deliveries()] == [
        (PERIOD_START_DAY + timedelta(days=7)).isoformat()
    ]


@pytest.mark.parametrize(
    ("tz", "days"),
    [
        # Thursdays around the spring and autumn changes (Europe: last Sunday of March/October;
        # US: second Sunday of March, first Sunday of November).
        ("Europe/Berlin", [date(2025, 3, 27), date(2025, 4, 3)]),
        ("Europe/Berlin", [date(2025, 10, 23), date(2025, 10, 30)]),
        ("America/New_York", [date(2025, 3, 6), date(2025, 3, 13)]),
        ("America/New_York", [date(2025, 10, 30), date(2025, 11, 6)]),
    ],
)
def test_exactly_one_prompt_per_period_across_dst(world: World, tz: str, days: list[date]) -> None:
    world.config = make_config(tz)
    first, second = (slot_instant(d, tz) for d in days)
    world.goal("a", [world.person("Ben Owner")], answered_at=first - timedelta(days=2))
    # The two slots are 14:00 local, so 167 or 169 hours apart, not 168.
    assert abs((second - first) - timedelta(days=7)) == timedelta(hours=1)
    world.run(first - timedelta(days=1), second + timedelta(days=1))
    assert [m.at for m in world.rec.messages if "time for" in m.content] == [first, second]
    prompts = [d for d in world.deliveries() if d.kind is DeliveryKind.PROMPT]
    assert [d.period for d in prompts] == [d.isoformat() for d in days]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (time(2, 30), utc(2025, 3, 30, 1, 30)),  # does not exist: 03:30 CEST
        (time(2, 30), utc(2025, 10, 26, 0, 30)),  # exists twice: the first one
    ],
)
def test_slot_inside_a_dst_change_sends_one_prompt(
    world: World, at: time, expected: datetime
) -> None:
    world.config = make_config("Europe/Berlin", weekday=6, at=at)
    world.goal("a", [world.person("Ben Owner")], answered_at=expected - timedelta(days=2))
    world.run(expected - timedelta(days=1), expected + timedelta(days=1), timedelta(minutes=30))
    assert [m.at for m in world.rec.messages] == [expected]


@pytest.mark.parametrize("cadence", [1, 2, 4])
def test_cadence_weeks(world: World, cadence: int) -> None:
    world.goal("a", [world.person("Ben Owner")], cadence=cadence)
    start = slot_instant(PERIOD_START_DAY)
    world.run(start, start + timedelta(weeks=8), timedelta(hours=6))
    expected = [start + timedelta(weeks=w) for w in range(0, 8, cadence)]
    assert [m.at for m in world.rec.messages if "time for" in m.content] == expected


def test_config_default_cadence_applies_to_goals_without_their_own(world: World) -> None:
    world.config = make_config(cadence_weeks=2)
    world.goal("a", [world.person("Ben Owner")])
    world.goal("b", [world.person("Eve Lead")], cadence=1)
    start = slot_instant(PERIOD_START_DAY)
    world.run(start, start + timedelta(weeks=4), timedelta(hours=12))
    prompts = [m for m in world.rec.messages if "time for" in m.content]
    assert len([m for m in prompts if m.topic == "a"]) == 2
    assert len([m for m in prompts if m.topic == "b"]) == 4


def test_new_goal_waits_for_its_grace_and_the_next_period(world: World) -> None:
    start = slot_instant(PERIOD_START_DAY)
    world.goal("new", [world.person("Ben Owner")], created_at=start - timedelta(days=2))
    world.goal("old", [world.person("Eve Lead")])
    world.run(start, start + timedelta(weeks=2), timedelta(hours=6))
    new = world.rec.in_topic("new")
    assert [m.at for m in new if "time for" in m.content] == [start + timedelta(weeks=1)]
    assert "A short update is very welcome" not in new[0].content  # due, not overdue
    assert len([m for m in world.rec.in_topic("old") if "time for" in m.content]) == 2


def test_overdue_goal_gets_a_gentler_nudge_in_its_prompt(world: World) -> None:
    world.goal("a", [world.person("Ben Owner")])
    start = slot_instant(PERIOD_START_DAY)
    world.run(start + timedelta(weeks=1), start + timedelta(weeks=1, hours=1))
    assert "A short update is very welcome, even one line." in world.rec.messages[0].content


def test_skip_away_paused_completed_retired_get_no_prompt(world: World) -> None:
    ben = world.person("Ben Owner")
    skipped = world.goal("skipped", [ben])
    world.goal("away", [world.person("Ada Away", away_until=FRIDAY + timedelta(days=9))])
    world.goal("paused", [ben], state=GoalState.PAUSED)
    world.goal("completed", [ben], state=GoalState.COMPLETED)
    world.goal("retired", [ben], state=GoalState.RETIRED)
    world.goal("nobody", [world.person("No Zulip", zulip_id=None)])
    world.goal("asked", [ben])
    start = slot_instant(PERIOD_START_DAY)
    world.clock.set(start - timedelta(days=1))  # skipping before the period starts...
    with world.db.write() as s:
        [goal] = load_goals(s, goal_ids=[skipped])
        key = world.ctx.program.period(goal, start + timedelta(hours=1)).key
        assert world.ctx.program.period(goal, start + timedelta(hours=2)).key == key
        skip = SkipPeriod(skipped, key, ben)
        apply(s, [skip], now=start + timedelta(hours=1))
        apply(s, [skip], now=start + timedelta(hours=2))  # a second skip is no second row
    assert key == PERIOD_START_DAY.isoformat()
    world.run(start, start + timedelta(days=7), timedelta(hours=4))
    assert {m.topic for m in world.rec.messages} == {"asked"}
    with world.db.read() as s:
        assert s.execute(select(func.count()).select_from(Skip)).scalar() == 1
    world.rec.messages.clear()
    world.run(start + timedelta(days=7), start + timedelta(days=8), timedelta(hours=4))
    # ...covers one period only; the away owner is still away.
    assert {m.topic for m in world.rec.messages if "time for" in m.content} == {
        "skipped",
        "asked",
    }


def test_skipping_an_unknown_goal_is_refused(world: World) -> None:
    with world.db.write() as s, pytest.raises(LookupError):
        apply(s, [SkipPeriod(999, "2026-01-02", 1)], now=world.clock.now())


def test_owner_back_from_away_mid_period_is_prompted_then(world: World) -> None:
    world.goal("a", [world.person("Ada Away", away_until=FRIDAY)])
    start = slot_instant(PERIOD_START_DAY)
    world.run(start, start + timedelta(days=4))
    [prompt] = world.rec.messages
    assert prompt.at == local(FRIDAY + timedelta(days=1), 0, "UTC")  # the day after away_until


# --- reminders ----------------------------------------------------------------------------------


def test_reminder_once_after_reminder_days_only_while_silent(world: World) -> None:
    ben, eve = world.person("Ben Owner"), world.person("Eve Lead")
    world.goal("silent", [ben, eve])
    answered = world.goal("answered", [ben])
    start = slot_instant(PERIOD_START_DAY)
    world.run(start, start + timedelta(days=1), timedelta(hours=2))
    world.update(answered, ben, start + timedelta(days=1))
    world.run(start + timedelta(days=1), start + timedelta(days=7), timedelta(hours=2))
    reminders = [m for m in world.rec.messages if "reminder" in m.content]
    assert [(m.topic, m.at) for m in reminders] == [("silent", start + timedelta(days=3))]
    assert mentioned_ids(reminders[0].content) == {world.zulip_id(ben), world.zulip_id(eve)}
    kinds = [(d.kind, d.target) for d in world.deliveries()]
    assert kinds.count((DeliveryKind.REMINDER, "goal:1")) == 1


def test_no_reminder_when_it_would_fall_after_the_period(world: World) -> None:
    world.config = make_config(reminder_days=5)
    world.goal("a", [world.person("Ben Owner")])
    start = slot_instant(PERIOD_START_DAY)
    world.clock.set(start + timedelta(days=3))  # the prompt goes out late (bot was down)
    world.tick()
    world.run(start + timedelta(days=3), start + timedelta(days=7), timedelta(hours=3))
    assert len(world.rec.messages) == 1


def test_reminder_mentions_only_reachable_owners(world: World) -> None:
    ben = world.person("Ben Owner")
    ada = world.person("Ada Away")
    world.goal("a", [ben, ada])
    start = slot_instant(PERIOD_START_DAY)
    world.run(start, start + timedelta(days=1))
    with world.db.write() as s:
        person = s.get(Person, ada)
        assert person is not None
        person.away_until = date(2025, 5, 30)
    world.run(start + timedelta(days=1), start + timedelta(days=4))
    prompt, reminder = world.rec.messages
    assert mentioned_ids(prompt.content) == {world.zulip_id(ben), world.zulip_id(ada)}
    assert mentioned_ids(reminder.content) == {world.zulip_id(ben)}


# --- direct messages ----------------------------------------------------------------------------


def test_unsubscribed_owners_get_a_dm_at_their_local_hour(world: World) -> None:
    world.config = make_config("Europe/Berlin")
    ben = world.person("Ben Owner", tz="Europe/Berlin", subscribed=False)
    chloe = world.person("Chloé Owner", tz="America/New_York", subscribed=False)
    dev = world.person("Dev Owner", tz="Asia/Tokyo", subscribed=False)
    nobody = world.person("Nat NoZone", tz=None, subscribed=False)
    eve = world.person("Eve Lead", tz="UTC")  # subscribed: sees the topic, no DM
    start = slot_instant(PERIOD_START_DAY, "Europe/Berlin")  # Thursday 14:00 CEST = 12:00 UTC
    for slug, owner in (("b", ben), ("c", chloe), ("d", dev), ("n", nobody), ("e", eve)):
        world.goal(slug, [owner], answered_at=start - timedelta(days=2))
    world.run(start - timedelta(days=1), start + timedelta(days=3))
    assert {m.topic: m.at for m in world.rec.messages if m.topic} == dict.fromkeys(
        ["b", "c", "d", "n", "e"], start
    )
    dm_times = {
        who: [m.at for m in world.rec.dms_to(world.zulip_id(who)) if "time for" in m.content]
        for who in (ben, chloe, dev, nobody, eve)
    }
    assert dm_times == {
        # Friday 10:00 in Berlin: Thursday 10:00 was before the slot.
        ben: [local(FRIDAY, 10, "Europe/Berlin")],
        # Thursday 10:00 in New York, where the slot is at 08:00.
        chloe: [local(PERIOD_START_DAY, 10, "America/New_York")],
        # Friday 10:00 in Tokyo, where the slot is at 21:00 on Thursday.
        dev: [local(FRIDAY, 10, "Asia/Tokyo")],
        # No Zulip timezone: the program's.
        nobody: [local(FRIDAY, 10, "Europe/Berlin")],
        eve: [],
    }


def test_one_dm_per_owner_per_week_listing_all_due_goals(world: World) -> None:
    dev = world.person("Dev Owner", tz="Asia/Tokyo", subscribed=False)
    eve = world.person("Eve Lead")
    world.goal("one", [dev], cadence=1)
    world.goal("two", [dev, eve], cadence=2)
    world.goal("four", [dev], cadence=4, issue=7)
    start = slot_instant(PERIOD_START_DAY)
    world.run(start, start + timedelta(days=2))
    [dm] = world.rec.dms_to(world.zulip_id(dev))
    for slug in ("one", "two", "four"):
        assert f"[#{STREAM} > {slug}](#narrow/stream/7-{STREAM}/topic/{slug})" in dm.content
    assert "`update <goal>:`" in dm.content
    [row] = [d for d in world.deliveries() if d.kind is DeliveryKind.DM_PROMPT]
    assert (row.target, row.period) == (f"person:{dev}", PERIOD_START_DAY.isoformat())
    # The next week only the weekly goal has a new period: the others were asked already.
    world.rec.messages.clear()
    world.run(start + timedelta(days=2), start + timedelta(days=9))
    dms = world.rec.dms_to(world.zulip_id(dev))
    listed = [re.findall(rf"\[#{STREAM} > ([a-z]+)\]", m.content) for m in dms]
    assert [
        (m.at, goals) for m, goals in zip(dms, listed, strict=True) if "time for" in m.content
    ] == [(local(FRIDAY + timedelta(days=7), 10, "Asia/Tokyo"), ["one"])]


def test_dm_reminder_after_reminder_days_at_the_local_hour(world: World) -> None:
    dev = world.person("Dev Owner", tz="Asia/Tokyo", subscribed=False)
    world.goal("quiet", [dev], cadence=2)
    answered = world.goal("answered", [dev], cadence=2)
    start = slot_instant(PERIOD_START_DAY)
    world.run(start, start + timedelta(days=2))
    world.update(answered, dev, start + timedelta(days=2))
    world.run(start + timedelta(days=2), start + timedelta(days=14))
    dms = world.rec.dms_to(world.zulip_id(dev))
    assert [m.at for m in dms] == [local(FRIDAY, 10, "Asia/Tokyo"), local(MONDAY, 10, "Asia/Tokyo")]
    assert "reminder" in dms[1].content and "quiet" in dms[1].content
    assert "answered" not in dms[1].content
    topic_reminders = [m for m in world.rec.messages if m.topic and "reminder" in m.content]
    assert [m.topic for m in topic_reminders] == ["quiet"]


def test_prompt_via_dm_sends_no_topic_messages(world: World) -> None:
    world.config = make_config(prompt_via="dm")
    ben = world.person("Ben Owner")
    world.goal("a", [ben])
    world.goal("b", [ben])
    start = slot_instant(PERIOD_START_DAY)
    world.run(start, start + timedelta(days=7))
    assert all(m.topic is None for m in world.rec.messages)
    prompt, reminder = world.rec.dms_to(world.zulip_id(ben))
    assert (prompt.at, reminder.at) == (local(FRIDAY, 10, "UTC"), local(MONDAY, 10, "UTC"))


def test_prompt_via_both_sends_topic_and_dm_but_reminds_in_the_topic(world: World) -> None:
    world.config = make_config(prompt_via="both")
    ben = world.person("Ben Owner")
    world.goal("a", [ben])
    start = slot_instant(PERIOD_START_DAY)
    world.run(start, start + timedelta(days=7))
    assert [m.topic for m in world.rec.messages] == ["a", None, "a"]
    assert "reminder" in world.rec.messages[2].content


def test_a_dm_listing_many_goals_stays_under_the_size_limit(world: World) -> None:
    ben = world.person("Ben Owner", subscribed=False)
    for i in range(150):
        world.goal(f"goal-{i:03}", [ben], title="A rather long goal title " * 4 + str(i), issue=i)
    start = slot_instant(PERIOD_START_DAY)
    world.run(start, start + timedelta(days=1))
    [dm] = world.rec.dms_to(world.zulip_id(ben))
    assert len(dm.content) < MAX_MESSAGE_LENGTH
    assert re.search(r"… and \d+ more", dm.content)


# --- the entry points ---------------------------------------------------------------------------


def test_dry_run_sends_nothing_and_shows_the_text(world: World) -> None:
    world.goal("a", [world.person("Ben Owner")], title="Faster builds")
    world.clock.set(slot_instant(PERIOD_START_DAY))
    report = send_due(world.ctx, world.sender, frozenset(world.subscribers), dry_run=True)
    assert world.rec.messages == [] and world.deliveries() == []
    text = report.render()
    assert text.startswith("Dry run: 1 message would be sent now.")
    assert "prompt for goal a → #project-goals > a" in text
    assert "time for a progress update on **Faster builds**" in text


def test_goal_option_limits_and_rejects_unknown_slugs(world: World) -> None:
    world.goal("a", [world.person("Ben Owner")])
    world.goal("b", [world.person("Eve Lead")])
    world.clock.set(slot_instant(PERIOD_START_DAY))
    bad = send_due(world.ctx, world.sender, frozenset(world.subscribers), goal_slug="nope")
    assert "No active goal has the slug 'nope'" in bad.render()
    report = send_due(world.ctx, world.sender, frozenset(world.subscribers), goal_slug="B")
    assert report.sent == 1 and [m.topic for m in world.rec.messages] == ["b"]
    assert report.render().splitlines()[0] == "Sent 1, already sent 0, failed 0 (of 1 planned)."


def test_send_due_uses_a_constant_number_of_queries(world: World) -> None:
    from sqlalchemy import event

    def count_for(n_goals: int) -> int:
        for i in range(n_goals):
            world.goal(f"g{n_goals}-{i}", [world.person(f"P{n_goals} {i}")])
        statements: list[str] = []

        def listener(*args: object) -> None:
            statements.append(str(args[2]))

        event.listen(world.db.engine, "before_cursor_execute", listener)
        try:
            send_due(world.ctx, world.sender, frozenset(), dry_run=True)
        finally:
            event.remove(world.db.engine, "before_cursor_execute", listener)
        return len(statements)

    world.clock.set(slot_instant(PERIOD_START_DAY))
    assert count_for(2) == count_for(30)


def test_plan_is_pure_and_skips_what_was_already_sent(world: World) -> None:
    world.goal("a", [world.person("Ben Owner")])
    now = slot_instant(PERIOD_START_DAY)
    with world.db.read() as s:
        goals = load_goals(s)
    [planned] = plan(goals, {}, frozenset(world.subscribers), now, world.config)
    key = (planned.request.kind, planned.request.target, planned.request.period)
    assert plan(goals, {key: now}, frozenset(world.subscribers), now, world.config) == []
    # Three days later the prompt's claim time decides the reminder.
    later = now + timedelta(days=3)
    [reminder] = plan(goals, {key: now}, frozenset(world.subscribers), later, world.config)
    assert reminder.kind is DeliveryKind.REMINDER


def test_failed_prompt_is_retried_on_the_next_tick(world: World) -> None:
    from zulip_goals_bot.errors import ZulipError

    class Flaky(Recorder):
        fail = True

        def send_stream(self, stream: str, topic: str, content: str) -> int:
            if self.fail:
                self.fail = False
                raise ZulipError("server error 502", retryable=True)
            return super().send_stream(stream, topic, content)

    world.sender = Flaky(world.clock)
    world.goal("a", [world.person("Ben Owner")])
    world.clock.set(slot_instant(PERIOD_START_DAY))
    first = send_due(world.ctx, world.sender, frozenset(world.subscribers))
    assert first.failed == 1
    world.clock.advance(timedelta(minutes=1))
    second = send_due(world.ctx, world.sender, frozenset(world.subscribers))
    assert second.sent == 1 and len(world.rec.messages) == 1


# --- texts --------------------------------------------------------------------------------------


def test_texts_read_well(world: World) -> None:
    ben = world.person("Ben Owner", zulip_id=11)
    chloe = world.person("Chloé Owner", zulip_id=12)
    gid = world.goal("async-closures", [ben, chloe], title="Stabilize async closures", issue=263)
    world.goal("parallel-frontend", [ben], title="Parallel front end")
    world.update(gid, chloe, utc(2025, 4, 24, 15, 2))
    with world.db.read() as s:
        goals = load_goals(s)
    by_slug = {g.slug: g for g in goals}
    goal = by_slug["async-closures"]
    owners = goal.prompted_owners()
    now = utc(2025, 5, 8, 14)
    assert compose_prompt(goal, owners, now) == (
        "@**Ben Owner|11** and @**Chloé Owner|12**: time for a progress update on "
        "**Stabilize async closures** :wave:\n"
        "\n"
        "Last update <time:2025-04-24T15:02:00+00:00> (13 days ago), in Zulip.\n"
        "\n"
        "Just reply in this topic with a few lines: what happened since then, what's next, "
        "anything blocking you, and where help is wanted. Start with `TL;DR:` for a one-line "
        "summary, and add a `Help wanted:` line if others can pitch in.\n"
        "\n"
        "How is it going? Add `Status: on track`, `at risk` or `blocked`, or react here: "
        ":green_circle: on track, :yellow_circle: at risk, :red_circle: blocked.\n"
        "\n"
        "Tracking issue: [#263](https://github.com/rust-lang/rust-project-goals/issues/263)\n"
        "\n"
        "You can also send me a direct message. Nothing to report this time? "
        "Reply `skip` here and I'll ask again next period."
    )
    dm = compose_dm(owners[0], [goal, by_slug["parallel-frontend"]], now, stream=GOALS_STREAM)
    assert dm == (
        "Hi Ben :wave: time for progress updates on your goals:\n"
        "\n"
        "- **Stabilize async closures** ([#project-goals > async-closures]"
        "(#narrow/stream/7-project-goals/topic/async-closures)): last update "
        "<time:2025-04-24T15:02:00+00:00> (13 days ago), in Zulip, "
        "[#263](https://github.com/rust-lang/rust-project-goals/issues/263)\n"
        "- **Parallel front end** ([#project-goals > parallel-frontend]"
        "(#narrow/stream/7-project-goals/topic/parallel-frontend)): no update yet\n"
        "\n"
        "A few lines each: what happened, what's next, anything blocking you, and where help "
        "is wanted. A `TL;DR:` line gives the summary, a `Help wanted:` line asks for a hand, "
        "and `Status: on track`, `at risk` or `blocked` says how it is going.\n"
        "\n"
        "Reply in each goal's topic, or right here starting with `update <goal>:` "
        "(for example `update async-closures: TL;DR: …`). Nothing to report for a goal this "
        "time? Send `skip <goal>` (like `skip async-closures`)."
    )
    reminder = compose_reminder(goal, owners[:1], now, prompted_at=utc(2025, 5, 5, 14))
    assert reminder == (
        "@**Ben Owner|11**: a friendly reminder: **Stabilize async closures** has no update yet "
        "since I asked <time:2025-05-05T14:00:00+00:00>. A few lines are enough (a `TL;DR:` is "
        "perfect); just reply here, or `skip` if there is nothing to report this time."
    )
    single = compose_dm_reminder(owners[1], [goal], now, stream=GOALS_STREAM)
    assert single.startswith("Hi Chloé, a friendly reminder: this goal is still waiting")
    assert single.endswith("Send `skip async-closures`.")


# --- end to end, against the emulated Zulip server with the real ZulipIO ------------------------


@pytest.fixture
def zulip(world: World, tmp_path: Path) -> Iterator[tuple[FakeZulip, ZulipIO]]:
    """The demo realm (Dev Owner is not subscribed to project-goals), its people in the DB."""
    realm = Realm.demo()
    with FakeZulip(realm, clock=world.clock.timestamp) as server:
        bot = realm.user_by_name("Goals Bot")
        assert bot is not None
        rc = server.write_zuliprc(tmp_path / "zuliprc", bot)
        rc.chmod(0o600)
        io = ZulipIO(rc, sleep=lambda _s: None)
        for user in realm.users.values():
            if not user.is_bot:
                world.person(user.full_name, tz=user.timezone or None, zulip_id=user.user_id)
        world.subscribers = io.stream_subscribers(STREAM)
        world.streams = look_up_streams(io, world.config)
        world.sender = io
        yield server, io


def person_id(world: World, name: str) -> int:
    with world.db.read() as s:
        return s.execute(select(Person.id).where(Person.full_name == name)).scalar_one()


def realm_user(server: FakeZulip, name: str) -> User:
    user = server.realm.user_by_name(name)
    assert user is not None
    return user


def test_e2e_topic_prompts_dms_and_reminders(
    world: World, zulip: tuple[FakeZulip, ZulipIO]
) -> None:
    server, io = zulip
    world.config = make_config("Europe/Berlin")
    ben, chloe, dev = (person_id(world, n) for n in ("Ben Owner", "Chloé Owner", "Dev Owner"))
    start = slot_instant(PERIOD_START_DAY, "Europe/Berlin")
    world.goal("async-closures", [ben, chloe], title="Stabilize async closures", issue=263,
               answered_at=start - timedelta(days=1))  # fmt: skip
    for slug in ("polonius", "parallel-frontend", "cargo-script"):
        world.goal(slug, [dev], answered_at=start - timedelta(days=1))
    world.run(start - timedelta(hours=2), start + timedelta(days=5), timedelta(hours=1))
    again = send_due(world.ctx, io, frozenset(world.subscribers))
    assert again.planned == []

    prompt, reminder = server.messages_in(STREAM, "async-closures")
    assert prompt["sender_email"] == "goals-bot@example.com"
    assert prompt["timestamp"] == int(start.timestamp())
    owners = {realm_user(server, n).user_id for n in ("Ben Owner", "Chloé Owner")}
    assert mentioned_ids(prompt["content"]) == owners == mentioned_ids(reminder["content"])
    assert "friendly reminder" in reminder["content"]
    assert reminder["timestamp"] == int((start + timedelta(days=3)).timestamp())
    # Dev is not subscribed: the topics still get their prompt, and Dev one DM for all three.
    for slug in ("polonius", "parallel-frontend", "cargo-script"):
        assert len(server.messages_in(STREAM, slug)) == 2  # prompt and reminder
    dm_prompt, dm_reminder = server.direct_messages_to(realm_user(server, "Dev Owner"))
    assert dm_prompt["timestamp"] == int(local(FRIDAY, 10, "Asia/Tokyo").timestamp())
    assert dm_reminder["timestamp"] == int(local(MONDAY, 10, "Asia/Tokyo").timestamp())
    stream_id = server.realm.stream_by_name(STREAM).stream_id  # type: ignore[union-attr]
    for slug in ("polonius", "parallel-frontend", "cargo-script"):
        link = f"[#{STREAM} > {slug}](#narrow/stream/{stream_id}-{STREAM}/topic/{slug})"
        assert link in dm_prompt["content"]
        assert link in dm_reminder["content"]
    assert server.direct_messages_to(realm_user(server, "Ben Owner")) == []
    sent = [d for d in world.deliveries() if d.kind is DeliveryKind.DM_PROMPT]
    assert [(d.target, d.state) for d in sent] == [(f"person:{dev}", DeliveryState.SENT)]


def test_e2e_crash_between_claim_and_send_is_finished_once(
    world: World, zulip: tuple[FakeZulip, ZulipIO]
) -> None:
    server, io = zulip
    world.goal("never-sent", [person_id(world, "Ben Owner")])
    world.goal("sent-not-marked", [person_id(world, "Eve Lead")])
    world.clock.set(slot_instant(PERIOD_START_DAY))
    with world.db.read() as s:
        goals = load_goals(s)
    planned = plan(goals, {}, frozenset(world.subscribers), world.clock.now(), world.config)
    assert [p.request.destination.topic for p in planned] == ["never-sent", "sent-not-marked"]
    # Crash 1: claimed, never sent.  Crash 2: claimed and sent, but not marked sent.
    for p in planned:
        assert outbox.claim(world.db, p.request, world.clock.now()) is not None
    second = planned[1].request
    assert second.destination.topic is not None
    io.send_stream(STREAM, second.destination.topic, second.parts[0])
    # The restarted bot's tick must not send them again before recovery...
    report = send_due(world.ctx, io, frozenset(world.subscribers))
    assert report.planned == []
    # ...and recovery finishes the first and recognises the second.
    done = outbox.recover(
        world.db,
        io,
        lambda dest, text: io.find_own(dest.stream, dest.topic, dest.user_ids, text),
        world.clock.now,
    )
    assert done == 2
    assert len(server.messages_in(STREAM, "never-sent")) == 1
    assert len(server.messages_in(STREAM, "sent-not-marked")) == 1
    assert {d.state for d in world.deliveries()} == {DeliveryState.SENT}
    assert send_due(world.ctx, io, frozenset(world.subscribers)).planned == []
