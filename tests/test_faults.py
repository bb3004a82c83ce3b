"""The fault matrix: the bot as a subprocess, the emulator injecting one fault per test.

Every test drives real traffic (owner updates in goal topics and by DM, commands, prompts,
digests), injects its fault, then compares what the emulator holds with what the database holds
(``Rig.verify``): no owner message lost, none stored twice, every stored update acknowledged
exactly once, every prompt, reminder and digest sent exactly once, and the bot still running.
Time comes from a clock file (``ZULIP_GOALS_BOT_CLOCK_FILE``) shared by the bot and the emulator,
so schedules are reached by moving the clock, never by sleeping.  Each test asserts that its fault
fired (the emulator counts them), and a check that something did NOT happen first waits for the
bot's own signal that it had the chance (``BotProcess.wait_ticks``), never for a pause.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from fakezulip import FakeZulip, Realm, User
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from tests.support import (
    BotProcess,
    add_goal,
    database_for,
    run_cli,
    running_since,
    wait_until,
    write_conf,
)
from zulip_goals_bot.db.engine import SQLITE_BUSY_TIMEOUT_MS, Database
from zulip_goals_bot.db.models import (
    PART_SEPARATOR,
    Delivery,
    Goal,
    GoalOwner,
    HandledMessage,
    Person,
    Update,
)
from zulip_goals_bot.domain.states import (
    DeliveryKind,
    DeliveryState,
    GoalState,
    OwnerRole,
    UpdateKind,
)
from zulip_goals_bot.goals.topics import goal_topic

STREAM = "project-goals"
DIGEST_TOPIC = "weekly digest"
# Prompts and the digest off: the tests about replies look at replies only.
QUIET = "[schedule]\nenabled = false\n[digest]\nenabled = false\n"
# Thursday 2026-02-26 14:00 UTC starts a two-week period of the default schedule; goals made by
# ``add_goal`` (2026-01-01) are past their grace, so each one is due at once.
PERIOD_START = datetime(2026, 2, 26, 14, 0, tzinfo=UTC)
# How long a test waits for something the bot should do "soon" (a few ticks, some retries).
SOON = 20.0
# The text that identifies each kind of delivery in the emulator.
PROMPT_TEXT = "time for a progress update on"
REMINDER_TEXT = "a friendly reminder"


@dataclass
class Rig:
    """An emulated realm, a database with goals, a clock file and the bot process(es)."""

    tmp_path: Path
    server: FakeZulip
    conf: Path
    db: Database
    clock: FileClock
    users: dict[str, User]
    goals: dict[str, Goal]
    procs: list[BotProcess] = field(default_factory=list)
    updates: dict[int, int] = field(default_factory=dict)  # message id -> goal id
    commands: Counter[str] = field(default_factory=Counter)  # answers each user is owed by DM
    env: dict[str, str] = field(default_factory=dict)

    # -- the bot ---------------------------------------------------------------------------------

    @property
    def bot_user(self) -> User:
        return self.users["bot"]

    def start(self, *, wait_ready: bool = True) -> BotProcess:
        env = {CLOCK_FILE_ENV: str(self.clock.path), **self.env}
        proc = BotProcess(self.conf, env=env).start(wait_ready=wait_ready)
        self.procs.append(proc)
        return proc

    @property
    def bot(self) -> BotProcess:
        return self.procs[-1]

    def logs(self) -> str:
        return "\n".join(p.log() for p in self.procs)

    def tail(self) -> str:
        return self.bot.log()[-4000:] if self.procs else ""

    def at(self, when: datetime) -> None:
        self.clock.set(when)

    # -- traffic ---------------------------------------------------------------------------------

    def post(self, who: str, goal: str, content: str) -> int:
        """An owner's update in the goal's topic."""
        mid = self.server.send_stream_message(
            self.users[who], STREAM, self.goals[goal].zulip_topic, content
        )
        self.updates[mid] = self.goals[goal].id
        return mid

    def dm_update(self, who: str, goal: str, content: str) -> int:
        """An owner's update by DM, naming the goal."""
        mid = self.server.send_direct_message(
            self.users[who], [self.bot_user], f"update {self.goals[goal].slug}: {content}"
        )
        self.updates[mid] = self.goals[goal].id
        return mid

    def ask(self, who: str, command: str) -> int:
        """A command by DM; the bot owes exactly one answer (short commands fit one message)."""
        self.commands[who] += 1
        return self.server.send_direct_message(self.users[who], [self.bot_user], command)

    def traffic(self, n: int, tag: str = "") -> list[int]:
        """``n`` owner updates, alternating topic and DM, plus a command every fourth."""
        ids: list[int] = []
        for i in range(n):
            if i % 2 == 0:
                ids.append(self.post("ben", "polonius", f"TL;DR: step {tag}{i} done"))
            else:
                ids.append(self.dm_update("chloe", "async", f"TL;DR: async step {tag}{i}"))
            if i % 4 == 3:
                self.ask("eve", "status polonius")
        return ids

    # -- what the bot did --------------------------------------------------------------------------

    def bot_messages(self, **where: Any) -> list[dict[str, Any]]:
        out = []
        for m in self.server.messages:
            if m["sender_id"] != self.bot_user.user_id:
                continue
            if "topic" in where and m.get("subject") != where["topic"]:
                continue
            if "text" in where and where["text"] not in m["content"]:
                continue
            out.append(m)
        return out

    def prompts(self, goal: str) -> list[dict[str, Any]]:
        return self.bot_messages(topic=self.goals[goal].zulip_topic, text=PROMPT_TEXT)

    def digests(self) -> list[dict[str, Any]]:
        return self.bot_messages(topic=DIGEST_TOPIC)

    def answers_to(self, who: str) -> list[dict[str, Any]]:
        bot_id = self.bot_user.user_id
        return [
            m for m in self.server.direct_messages_to(self.users[who]) if m["sender_id"] == bot_id
        ]

    def acked(self, message_id: int) -> int:
        """How many reactions the bot put on a message."""
        reactions = self.server.message(message_id)["reactions"]
        return sum(1 for r in reactions if r["user_id"] == self.bot_user.user_id)

    def stored(self) -> dict[int, tuple[int | None, UpdateKind]]:
        with self.db.read() as s:
            return {
                mid: (gid, kind)
                for mid, gid, kind in s.execute(
                    select(Update.zulip_message_id, Update.goal_id, Update.kind)
                )
            }

    def deliveries(self) -> list[Delivery]:
        with self.db.read() as s:
            return list(s.execute(select(Delivery).order_by(Delivery.id)).scalars())

    def all_settled(self) -> bool:
        """Every update stored and acknowledged, every command answered."""
        stored = self.stored()
        expected = list(self.updates)
        if any(mid not in stored for mid in expected):
            return False
        if any(self.acked(mid) == 0 for mid in expected):
            return False
        return all(len(self.answers_to(who)) >= n for who, n in self.commands.items())

    def settle(self, timeout: float = SOON) -> None:
        assert wait_until(self.all_settled, timeout), self.report()

    def report(self) -> str:
        stored = self.stored()
        missing = [m for m in self.updates if m not in stored]
        unacked = [m for m in self.updates if m in stored and self.acked(m) == 0]
        answers = {w: (len(self.answers_to(w)), n) for w, n in self.commands.items()}
        return (
            f"missing {missing}, unacknowledged {unacked}, answers (got, owed) {answers}\n"
            + self.tail()
        )

    # -- the invariant ---------------------------------------------------------------------------

    def verify(self, *, running: bool = True) -> None:
        """What the emulator holds agrees with what the database holds."""
        stored = self.stored()
        # 0 lost owner messages, each stored once as an update of the right goal.
        lost = [mid for mid in self.updates if mid not in stored]
        assert not lost, f"lost owner messages {lost}\n{self.tail()}"
        wrong = {
            mid: stored[mid]
            for mid, gid in self.updates.items()
            if stored[mid] != (gid, UpdateKind.UPDATE)
        }
        assert not wrong, wrong
        extra = [
            mid
            for mid, (_g, kind) in stored.items()
            if kind is UpdateKind.UPDATE and mid not in self.updates
        ]
        assert not extra, f"updates nobody wrote as one: {extra}"
        # Every update acknowledged exactly once; nothing else acknowledged.
        for message in self.server.messages:
            mine = sum(1 for r in message["reactions"] if r["user_id"] == self.bot_user.user_id)
            want = 1 if message["id"] in self.updates else 0
            assert mine == want, (message["id"], message["content"][:80], mine)
        # Every message the bot can see was handled once (the primary key says "once").
        with self.db.read() as s:
            handled = set(s.execute(select(HandledMessage.zulip_message_id)).scalars())
        visible = [
            m["id"]
            for m in self.server.messages
            if m["sender_id"] != self.bot_user.user_id
            and (
                m["type"] == "stream"
                or self.bot_user.user_id in {r["id"] for r in m["display_recipient"]}
            )
        ]
        assert not [mid for mid in visible if mid not in handled], "unhandled messages"
        # Each command answered exactly once.
        for who, owed in self.commands.items():
            assert len(self.answers_to(who)) == owed, (who, owed, self.answers_to(who))
        self.verify_deliveries()
        if running:
            assert self.bot.alive(), self.tail()
        assert self.bot_user.api_key not in self.logs()

    def verify_deliveries(self) -> None:
        """Prompts, reminders and digests: one Zulip message per part of a sent delivery."""
        bot_ids = {m["id"]: m for m in self.bot_messages()}
        referenced: Counter[int] = Counter()
        for d in self.deliveries():
            ids = [int(i) for i in (d.zulip_message_ids or "").split(",") if i]
            if d.state is DeliveryState.SENT:
                assert len(ids) == len(d.content.split(PART_SEPARATOR)), d.id
            for mid in ids:
                assert mid in bot_ids, (d.kind, d.target, mid)
                sent = bot_ids[mid]
                if d.topic is not None:
                    assert sent["subject"] == d.topic
            referenced.update(ids)
        assert all(n == 1 for n in referenced.values()), referenced
        scheduled = [
            mid
            for mid, m in bot_ids.items()
            if PROMPT_TEXT in m["content"]
            or m["content"].split(":", 1)[-1].lstrip().startswith(REMINDER_TEXT)
            or m.get("subject") == DIGEST_TOPIC
        ]
        unrecorded = [mid for mid in scheduled if mid not in referenced]
        assert not unrecorded, f"scheduled messages sent twice or without a delivery: {unrecorded}"
        # And no destination got the same text twice.
        seen = Counter(
            (m.get("subject"), m["content"]) for m in bot_ids.values() if m["id"] in referenced
        )
        assert all(n == 1 for n in seen.values()), [k for k, n in seen.items() if n > 1]

    def close(self) -> None:
        for proc in self.procs:
            if proc.alive():
                proc.kill()


def make_rig(
    tmp_path: Path,
    *,
    extra: str = QUIET,
    start: datetime = PERIOD_START + timedelta(hours=1),
    database: str | None = None,
    heartbeat: float = 2.0,
    **server_options: Any,
) -> Iterator[Rig]:
    clock = FileClock(tmp_path / "clock")
    clock.set(start)
    realm = Realm.demo()
    with FakeZulip(
        realm, clock=lambda: clock.now().timestamp(), heartbeat_seconds=heartbeat, **server_options
    ) as server:
        users = {
            "bot": realm.user_by_email("goals-bot@example.com"),
            "ada": realm.user_by_name("Ada Admin"),
            "ben": realm.user_by_name("Ben Owner"),
            "chloe": realm.user_by_name("Chloé Owner"),
            "eve": realm.user_by_name("Eve Lead"),
        }
        assert all(u is not None for u in users.values())
        conf = write_conf(
            tmp_path, server, users["bot"], extra=extra, database=database, log_level="DEBUG"
        )
        db = database_for(conf)

        def owner(key: str) -> tuple[int, str, str]:
            u = users[key]
            return (u.user_id, u.email, u.full_name)

        goals = {
            "polonius": add_goal(db, "polonius", "Scale Polonius", [owner("ben")], issue=118),
            "async": add_goal(db, "async", "Async closures", [owner("chloe")], issue=105),
        }
        rig = Rig(tmp_path, server, conf, db, clock, users, goals)  # type: ignore[arg-type]
        try:
            yield rig
        finally:
            rig.close()
            db.dispose()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path)


# ============================================================================ rate limits


def test_429_on_every_nth_call_loses_and_repeats_nothing(rig: Rig) -> None:
    rig.start()
    fault = rig.server.faults.every_nth_429(4, retry_after=0.2)
    rig.traffic(16)
    rig.settle()
    assert rig.server.faults.fired(fault) >= 5  # the fault really hit
    assert rig.server.count_requests(status=429) == rig.server.faults.fired(fault)
    rig.server.faults.clear()
    rig.verify()
    assert "rate limited" in rig.bot.log()


def many_goals(db: Database, n: int, owner: User) -> None:
    """``n`` more goals owned by ``owner``, inserted in one transaction."""
    created = datetime(2026, 1, 1, tzinfo=UTC)
    with db.write() as s:
        person = s.execute(select(Person).where(Person.zulip_user_id == owner.user_id)).scalar_one()
        taken = set(s.execute(select(Goal.zulip_topic)).scalars())
        goals = []
        for i in range(n):
            title = f"Bulk goal {i:04d}"
            topic = goal_topic(title, None, 5000 + i, taken)
            taken.add(topic)
            goals.append(
                Goal(
                    period="2026h2",
                    slug=f"bulk-{i:04d}",
                    title=title,
                    status="Accepted",
                    tracking_issue=5000 + i,
                    zulip_topic=topic,
                    state=GoalState.ACTIVE,
                    active=True,
                    teams="",
                    extra={},
                    created_at=created,
                    updated_at=created,
                )
            )
        s.add_all(goals)
        s.flush()
        s.add_all(
            GoalOwner(
                goal_id=g.id, person_id=person.id, role=OwnerRole.POINT_OF_CONTACT, position=0
            )
            for g in goals
        )


# A scaled-down Zulip rate limit: 100 requests per 1.5 s instead of 200 per minute, low enough
# that a loaded machine still sends faster than that and the client-side budget must pace it.
BURST_LIMIT = 100
BURST_WINDOW_SECONDS = 1.5
BURST_GOALS = 1000


def test_a_thousand_prompts_due_at_once_stay_under_the_rate_limit(tmp_path: Path) -> None:
    for rig in make_rig(
        tmp_path,
        extra="[digest]\nenabled = false\n",
        rate_limit_per_minute=BURST_LIMIT,
        rate_limit_window_seconds=BURST_WINDOW_SECONDS,
    ):
        many_goals(rig.db, BURST_GOALS - len(rig.goals), rig.users["ben"])
        started = time.monotonic()
        rig.start()

        def sent() -> int:
            return len(rig.bot_messages(text=PROMPT_TEXT))

        assert wait_until(lambda: sent() >= BURST_GOALS, 120), (sent(), rig.tail())
        elapsed = time.monotonic() - started
        # The last prompt is in Zulip before the bot has its id: the tick that sent it records
        # it, then logs that it is done (and the next one finds nothing owed).
        rig.bot.wait_ticks()
        throttled = rig.server.count_requests(status=429)
        assert throttled <= 5, f"{throttled} responses were HTTP 429 (a storm)"
        assert "rate limit budget spent" in rig.logs()  # the client-side budget did the pacing
        topics = Counter(m["subject"] for m in rig.bot_messages(text=PROMPT_TEXT))
        assert len(topics) == BURST_GOALS and set(topics.values()) == {1}
        with rig.db.read() as s:
            states = Counter(s.execute(select(Delivery.state)).scalars())
        assert states == {DeliveryState.SENT: BURST_GOALS}
        rig.verify()
        print(f"{BURST_GOALS} prompts in {elapsed:.1f} s, {throttled} x 429")


# ============================================================================ 5xx, drops, slowness


def test_sigterm_during_an_outage_stops_at_once_and_the_next_start_sends_once(
    tmp_path: Path,
) -> None:
    for rig in make_rig(tmp_path, extra="[digest]\nenabled = false\n"):
        # Zulip answers 502 to every message the bot sends: the prompts are retried with backoff.
        outage = rig.server.faults.fail_next(1000, 502, "messages", "POST")
        rig.start()
        assert wait_until(lambda: rig.server.faults.fired(outage) >= 4, SOON), rig.tail()
        assert rig.server.count_requests("POST", "messages", status=502) >= 4
        # An operator stops the bot in the middle of those retries: it exits within 5 s, not
        # after the minutes of backoff left.
        assert rig.bot.terminate(timeout=5.0) == 0
        assert "interrupted" in rig.bot.log()
        assert rig.prompts("polonius") == rig.prompts("async") == []
        # Zulip is back; the next start sends each prompt once.
        rig.server.faults.clear()
        fired = rig.server.faults.fired(outage)
        rig.start()
        assert wait_until(lambda: all(len(rig.prompts(g)) == 1 for g in rig.goals), SOON)
        rig.bot.wait_ticks()  # ticks that could send a duplicate
        assert all(len(rig.prompts(g)) == 1 for g in rig.goals)
        assert rig.server.faults.fired(outage) == fired  # cleared: no 502 since
        rig.verify()


def test_5xx_and_dropped_connections_on_long_polls(rig: Rig) -> None:
    rig.start()
    faults = rig.server.faults
    for i, (fault, times) in enumerate(
        (
            (lambda: faults.fail_next(2, 500, "events", "GET"), 2),
            (lambda: faults.drop_next(2, "events", "GET"), 2),
            (lambda: faults.fail_next(1, 502, "events", "GET"), 1),
        )
    ):
        rule = fault()
        rig.traffic(2, f"poll{i}-")
        rig.settle()
        # The poll waiting when the fault was added had passed it; the ones after meet it.
        assert wait_until(lambda: faults.fired(rule) == times, SOON), faults.history()
    assert rig.server.count_requests("GET", "events", status=500) == 2
    assert rig.server.count_requests("GET", "events", status=0) == 2
    assert rig.server.count_requests("GET", "events", status=502) == 1
    rig.verify()


@pytest.fixture
def quiet_rig(tmp_path: Path) -> Iterator[Rig]:
    """A rig whose long polls never return a heartbeat on their own: a fault armed for the next
    events response meets the backlog, not a heartbeat sent while a slow machine catches up."""
    yield from make_rig(tmp_path, heartbeat=600.0)


def test_an_events_response_cut_mid_way_is_resumed_where_it_broke_off(quiet_rig: Rig) -> None:
    """A backlog's response breaks off half-way: what arrived is stored and acknowledged, the rest
    is asked for from the last event taken in, and nothing is stored twice or lost."""
    rig = quiet_rig
    rig.start()
    # Large enough (about 300 kB) that the half before the cut holds whole events.
    padding = "The solver now handles the loop case; details follow. " * 20
    backlog: list[int] = []
    # On a loaded machine the armed cut can meet a small response before the backlog (it is
    # then resumed from where it broke off too); the backlog is sent again until a cut falls
    # inside it, which is what this test is about.
    for attempt in range(3):
        rule = rig.server.faults.cut_next(1, keep=0.5, path_prefix="events", method="GET")
        # The long poll waiting now passed the fault already: one message lets the next meet it.
        # A comment, not an update: the bot's acknowledgement would be a reaction event, which
        # the next poll would meet instead of the backlog.
        topic = rig.goals["polonius"].zulip_topic
        first = rig.server.send_stream_message(
            rig.users["eve"], STREAM, topic, f"a comment before backlog {attempt}"
        )
        rig.bot.wait_stored_through(first)
        assert wait_until(lambda: any(q.polling for q in rig.server.queue_status(rig.bot_user)))
        with rig.server.hold():
            backlog += [
                rig.post("ben", "polonius", f"TL;DR: step {attempt}.{i}\n\n{padding}")
                for i in range(250)
            ]
            backlog += rig.traffic(10, f"cut-{attempt}-")
        rig.settle()
        assert rig.server.faults.fired(rule) == 1, rig.server.faults.history()
        broke = [
            int(n) for n in re.findall(r"the response broke off after (\d+) events", rig.bot.log())
        ]
        assert len(broke) == attempt + 1, rig.tail()
        if broke[-1] > 0:
            break
    else:
        raise AssertionError(f"no cut fell inside the backlog: {broke}")
    assert "asking for the rest" in rig.bot.log(), rig.tail()
    assert set(backlog) <= set(rig.stored())
    rig.verify()
    # Resumed from the last event taken in: none of the events before the cut came again.
    assert rig.bot.terminate() == 0
    assert "0 duplicates ignored" in rig.bot.log(), rig.tail()


def test_5xx_and_dropped_connections_on_sends(rig: Rig) -> None:
    rig.start()
    faults = rig.server.faults
    # Answers: a 500, a 503, then a connection dropped after Zulip stored the message (the
    # bot must find it rather than send it again), then one dropped before.
    # The answer (or reaction) is the bot's next POST: it cannot arrive before the fault fired.
    for fault, times in (
        (lambda: faults.fail_next(1, 500, "messages", "POST"), 1),
        (lambda: faults.fail_next(1, 503, "messages", "POST"), 1),
        (lambda: faults.drop_next(1, "messages", "POST", after_processing=True), 1),
        (lambda: faults.drop_next(1, "messages", "POST"), 1),
    ):
        rule = fault()
        rig.ask("eve", "status polonius")
        rig.settle()
        assert faults.fired(rule) == times, faults.history()
    # Acknowledgements: the reaction fails, or is stored with its answer lost.
    for fault, times in (
        (lambda: faults.fail_next(2, 500, "messages", "POST"), 2),
        (lambda: faults.drop_next(1, "messages", "POST", after_processing=True), 1),
        (lambda: faults.drop_next(1, "messages", "POST"), 1),
    ):
        rule = fault()
        rig.post("ben", "polonius", "TL;DR: progress despite the network")
        rig.settle()
        assert faults.fired(rule) == times, faults.history()
    rig.verify()


def test_slow_responses(rig: Rig) -> None:
    rig.start()
    faults = rig.server.faults
    slow_poll = faults.delay_next(1, 2.0, "events", "GET")
    slow_sends = faults.delay_next(2, 1.5, "messages", "POST")
    rig.traffic(4, "slow")
    rig.settle()
    # Five sends (four reactions, an answer) meet the slow ones; a later poll meets its delay.
    assert faults.fired(slow_sends) == 2, faults.history()
    assert wait_until(lambda: faults.fired(slow_poll) == 1, SOON), faults.history()
    rig.traffic(2, "after")
    rig.settle()
    rig.verify()


# ============================================================================ lost queues, restarts


@contextlib.contextmanager
def steady_traffic(rig: Rig, every: float = 0.02) -> Iterator[threading.Event]:
    """Owner updates arrive from another thread until the block ends."""
    stop = threading.Event()

    def run() -> None:
        i = 0
        while not stop.is_set():
            if i % 2 == 0:
                rig.post("ben", "polonius", f"steady {i}")
            else:
                rig.dm_update("chloe", "async", f"steady {i}")
            i += 1
            stop.wait(every)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(5)


def test_event_queue_lost_while_messages_arrive(rig: Rig) -> None:
    rig.start()
    with steady_traffic(rig):
        for _ in range(3):
            progress = len(rig.stored()) + 5
            assert wait_until(lambda: len(rig.stored()) >= progress), rig.tail()
            before = rig.server.count_requests("POST", "register")
            rig.server.expire_all_queues()  # the next GET /events: BAD_EVENT_QUEUE_ID
            assert wait_until(lambda: rig.server.count_requests("POST", "register") > before)
    rig.settle()
    assert rig.bot.log().count("the event queue was lost") >= 3
    rig.verify()


def test_full_server_restart_while_messages_arrive(rig: Rig) -> None:
    rig.start()
    with steady_traffic(rig):
        assert wait_until(lambda: len(rig.stored()) >= 5)
        rig.server.restart(downtime_seconds=1.0)  # queues gone, connections cut, 502s
        before = rig.server.count_requests("POST", "register", status=200)
        assert wait_until(
            lambda: rig.server.count_requests("POST", "register", status=200) > before, SOON
        ), rig.tail()
        rig.server.restart()  # and once more, without downtime
        assert wait_until(
            lambda: rig.server.count_requests("POST", "register", status=200) > before + 1, SOON
        ), rig.tail()
    rig.settle()
    assert rig.server.count_requests(status=502) > 0
    rig.verify()


# ============================================================================ SIGKILL


def burst(rig: Rig, n: int, tag: str) -> list[int]:
    """``n`` owner updates that reach the bot's event queue as one batch."""
    filler = "Details. " * 200
    with rig.server.hold():  # the long-poll wakes only when the whole burst is queued
        return [
            rig.post("ben", "polonius", f"TL;DR: {tag} {i}\n\n{filler}")
            if i % 2 == 0
            else rig.post("chloe", "async", f"TL;DR: {tag} {i}\n\n{filler}")
            for i in range(n)
        ]


def test_sigkill_mid_batch_then_restart(rig: Rig) -> None:
    rig.start()
    rig.traffic(4, "before")
    rig.settle()
    polls = rig.server.count_requests("GET", "events", status=200)
    ids = burst(rig, 600, "burst")
    deadline = time.monotonic() + 5
    while rig.server.count_requests("GET", "events", status=200) == polls:
        assert time.monotonic() < deadline, rig.tail()
        time.sleep(0.001)
    rig.bot.kill()  # while the batch is being stored
    stored = rig.stored()
    in_batch = sum(1 for mid in ids if mid in stored)
    assert in_batch in (0, len(ids)), f"a batch is stored whole or not at all: {in_batch}"
    rig.start()
    rig.settle()
    rig.verify()
    # Killed again after the batch was committed, while its acknowledgements go out.
    ids = burst(rig, 600, "second")
    deadline = time.monotonic() + 10
    while not all(mid in rig.stored() for mid in ids[-1:]):
        assert time.monotonic() < deadline, rig.tail()
        time.sleep(0.001)
    rig.bot.kill()
    acked = sum(1 for mid in ids if rig.acked(mid))
    rig.start()
    rig.settle()
    rig.verify()
    print(f"stored before the first kill: {in_batch}, acknowledged before the second: {acked}")


# Prompts on, digest off: the tests about prompts look at prompts.
PROMPTS_ONLY = "[digest]\nenabled = false\n"


@pytest.fixture
def prompting(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path, extra=PROMPTS_ONLY)


def claimed(rig: Rig) -> list[Delivery]:
    return [d for d in rig.deliveries() if d.state is DeliveryState.CLAIMED]


@pytest.mark.parametrize("reached_zulip", [False, True], ids=["lost", "delivered"])
def test_sigkill_between_claiming_and_sending_a_prompt(prompting: Rig, reached_zulip: bool) -> None:
    rig, faults = prompting, prompting.server.faults
    if reached_zulip:
        # Zulip stores the prompt but the answer is lost, and so is every look for it after.
        lost = faults.drop_next(1, "messages", "POST", after_processing=True)
        faults.drop_next(1000, "messages", "GET")
    else:
        lost = faults.drop_next(1000, "messages", "POST")  # the prompt never arrives
    rig.start(wait_ready=False)  # the backfill's GET /messages may be failing too
    assert wait_until(
        lambda: bool(claimed(rig)) and rig.server.count_requests(status=0) >= 2, SOON
    ), rig.tail()
    rig.bot.kill()
    assert faults.fired(lost) >= 1, faults.history()
    (stuck,) = claimed(rig)
    in_topic = rig.bot_messages(topic=stuck.topic, text=PROMPT_TEXT)
    assert len(in_topic) == (1 if reached_zulip else 0)
    faults.clear()
    rig.start()
    assert wait_until(lambda: all(len(rig.prompts(g)) == 1 for g in rig.goals), SOON), rig.tail()
    assert wait_until(lambda: not claimed(rig) and len(rig.deliveries()) == 2)
    rig.bot.wait_ticks()  # ticks that could send a duplicate
    assert all(len(rig.prompts(g)) == 1 for g in rig.goals)
    if reached_zulip:
        assert "finished 1 deliveries interrupted" in rig.bot.log()
    rig.verify()


def test_5xx_and_dropped_connections_on_prompt_sends(prompting: Rig) -> None:
    rig, faults = prompting, prompting.server.faults
    rules = [
        faults.fail_next(2, 500, "messages", "POST"),
        faults.drop_next(1, "messages", "POST", after_processing=True),
        faults.fail_next(1, 503, "messages", "POST"),
    ]
    rig.start()
    assert wait_until(lambda: all(len(rig.prompts(g)) == 1 for g in rig.goals), SOON), rig.tail()
    assert wait_until(lambda: [d.state for d in rig.deliveries()] == [DeliveryState.SENT] * 2)
    # The first sends met every fault, in order: 2 x 500, a lost answer, a 503.
    assert [faults.fired(r) for r in rules] == [2, 1, 1], faults.history()
    rig.bot.wait_ticks()  # ticks that could send a duplicate
    assert all(len(rig.prompts(g)) == 1 for g in rig.goals)
    assert rig.server.count_requests("POST", "messages", status=0) == 1
    rig.verify()


# ======================================================================= restarts across schedules

NEW_YORK = ZoneInfo("America/New_York")
# Weekly prompts on Monday 09:00 and the digest on Monday 08:00, New York time.
WEEKLY_NY = (
    "timezone = America/New_York\n"
    "[schedule]\nweekday = monday\ntime = 09:00\ncadence_weeks = 1\n"
    "[digest]\nweekday = monday\ntime = 08:00\n"
)


@pytest.mark.parametrize(
    ("week_before", "dst_monday", "prompt_utc"),
    [
        # Clocks go forward on Sunday 2026-03-08: 09:00 is 14:00 UTC before, 13:00 UTC after.
        (datetime(2026, 3, 3, 12, 0), datetime(2026, 3, 9), datetime(2026, 3, 9, 13, 0)),
        # Clocks go back on Sunday 2026-11-01: 09:00 is 13:00 UTC before, 14:00 UTC after.
        (datetime(2026, 10, 27, 12, 0), datetime(2026, 11, 2), datetime(2026, 11, 2, 14, 0)),
    ],
    ids=["spring-forward", "fall-back"],
)
def test_restarts_across_the_digest_and_prompt_times_of_a_dst_week(
    tmp_path: Path, week_before: datetime, dst_monday: datetime, prompt_utc: datetime
) -> None:
    for rig in make_rig(tmp_path, extra=WEEKLY_NY, start=week_before.replace(tzinfo=NEW_YORK)):
        running_since(rig.db, datetime(2026, 1, 1, tzinfo=UTC))
        rig.start()
        # The week before: each goal is asked once, the digest goes out once; owners answer.
        assert wait_until(
            lambda: all(len(rig.prompts(g)) == 1 for g in rig.goals) and len(rig.digests()) == 1,
            SOON,
        ), rig.tail()
        rig.post("ben", "polonius", "TL;DR: on track")
        rig.post("chloe", "async", "TL;DR: on track too")
        rig.settle()
        assert rig.bot.terminate() == 0

        # Down across the digest time (08:00), up again at 08:30 local: one digest, no prompt
        # (the goals are up to date until 09:00, which a wrong UTC offset would get wrong).
        rig.at(dst_monday.replace(hour=8, minute=30, tzinfo=NEW_YORK))
        rig.start()
        assert wait_until(lambda: len(rig.digests()) == 2, SOON), rig.tail()
        # The tick that posted the digest had asked for prompts first: none was owed.
        assert all(len(rig.prompts(g)) == 1 for g in rig.goals)
        rig.bot.kill()

        # Down across the prompt time; back 30 s after 09:00 local: one prompt per goal.
        slot = dst_monday.replace(hour=9, tzinfo=NEW_YORK)
        assert slot.astimezone(UTC) == prompt_utc.replace(tzinfo=UTC)
        rig.at(slot + timedelta(seconds=30))
        rig.start()
        assert wait_until(lambda: all(len(rig.prompts(g)) == 2 for g in rig.goals), SOON), (
            rig.tail()
        )
        fresh = [d for d in rig.deliveries() if d.kind is DeliveryKind.PROMPT][-2:]
        assert {d.period for d in fresh} == {dst_monday.date().isoformat()}

        # A restart in the same week repeats nothing.
        assert rig.bot.terminate() == 0
        rig.start()
        rig.bot.wait_ticks()
        assert all(len(rig.prompts(g)) == 2 for g in rig.goals)
        assert len(rig.digests()) == 2
        rig.verify()


def test_a_new_install_posts_its_first_digest_at_the_next_slot(tmp_path: Path) -> None:
    wednesday = datetime(2026, 3, 4, 12, 0, tzinfo=NEW_YORK)
    for rig in make_rig(tmp_path, extra=WEEKLY_NY, start=wednesday):
        rig.start()
        # First start, mid-week: the goals are asked for updates, no digest of a week begun
        # before the bot existed.
        assert wait_until(lambda: all(len(rig.prompts(g)) == 1 for g in rig.goals), SOON)
        rig.bot.wait_ticks()
        assert rig.digests() == []
        # Down over the next slot: that digest is owed, and posted once on return.
        assert rig.bot.terminate() == 0
        rig.at(datetime(2026, 3, 9, 8, 30, tzinfo=NEW_YORK))  # after the digest, before prompts
        rig.start()
        assert wait_until(lambda: len(rig.digests()) == 1, SOON), rig.tail()
        # The digest is in Zulip before the bot has its id: the tick that posted it records it,
        # then logs that it is done; the next one could send a duplicate.
        rig.bot.wait_ticks()
        assert len(rig.digests()) == 1
        assert "to 2026-03-09" in rig.digests()[0]["content"]
        rig.verify()


# ========================================================================= the database in trouble


def sqlite_file(rig: Rig) -> Path:
    url = rig.db.engine.url
    assert url.get_backend_name() == "sqlite" and url.database
    return Path(url.database)


@pytest.mark.sqlite_only
def test_database_busy_longer_than_the_busy_timeout_retries_the_batch(rig: Rig) -> None:
    rig.start()
    rig.traffic(2, "warm")
    rig.settle()
    other = sqlite3.connect(sqlite_file(rig), isolation_level=None, timeout=1)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock...
        locked_at = time.monotonic()
        ids = rig.traffic(4, "busy")
        # ...past the busy timeout: the bot says so, loudly, and stores nor acknowledges anything.
        wait = SQLITE_BUSY_TIMEOUT_MS / 1000 + SOON
        assert wait_until(lambda: "database is busy" in rig.bot.log(), wait), rig.tail()
        assert time.monotonic() - locked_at >= SQLITE_BUSY_TIMEOUT_MS / 1000
        assert not any(mid in rig.stored() or rig.acked(mid) for mid in ids)
        other.execute("ROLLBACK")
    finally:
        other.close()
    rig.settle()
    errors = [line for line in rig.bot.log().splitlines() if " ERROR " in line]
    assert any("database is busy" in line and "retrying" in line for line in errors), errors
    rig.verify()


# A file system this small fills up after a few messages.
TMPFS_BYTES = 4 * 1024 * 1024


@contextlib.contextmanager
def small_filesystem(where: Path) -> Iterator[Path]:
    """A tiny tmpfs mounted at ``where``: the only reliable full disk, even for root (who
    ignores file modes).  Skips when mounting is not allowed (not root, no CAP_SYS_ADMIN)."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path) -> Path:
    """Fill the file system until the next write fails; returns the file to delete."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


@pytest.mark.sqlite_only
def test_full_disk_is_reported_loudly_and_nothing_is_acknowledged_until_stored(
    tmp_path: Path,
) -> None:
    with small_filesystem(tmp_path / "disk") as disk:
        for rig in make_rig(tmp_path, database=f"sqlite:///{disk / 'goals.sqlite3'}"):
            rig.start()
            rig.traffic(2, "warm")
            rig.settle()
            filler = fill(disk)
            ids = [
                rig.post("ben", "polonius", f"TL;DR: full {i}\n\n" + "x" * 3000) for i in range(3)
            ]
            assert wait_until(lambda: "disk is full" in rig.bot.log(), SOON), rig.tail()
            assert not any(mid in rig.stored() or rig.acked(mid) for mid in ids)
            errors = [line for line in rig.bot.log().splitlines() if " ERROR " in line]
            assert any("could not store" in line and "disk is full" in line for line in errors)
            filler.unlink()
            rig.settle()
            rig.verify()


@pytest.mark.sqlite_only
def test_read_only_database_at_start_is_one_clear_line(tmp_path: Path) -> None:
    """A file system that is read-only already (mounted so, or remounted after disk errors).

    A read-only switch under a running bot cannot be staged: the kernel refuses to remount a
    file system with files open for writing, and root ignores file modes.
    """
    with small_filesystem(tmp_path / "disk") as disk, FakeZulip(Realm.demo()) as server:
        bot = server.realm.user_by_email("goals-bot@example.com")
        assert bot is not None
        conf = write_conf(tmp_path, server, bot, database=f"sqlite:///{disk / 'goals.sqlite3'}")
        database_for(conf).dispose()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        result = run_cli(conf, "run", timeout=30)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "read-only" in result.stderr and str(disk / "goals.sqlite3") in result.stderr
    assert bot.api_key not in result.stderr
