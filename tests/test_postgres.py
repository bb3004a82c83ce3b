"""PostgreSQL itself: migrations, times, serialized writers, the lease, and leader/standby runs.

These always run on PostgreSQL (a throwaway server from tests/dbs.py, or DATABASE_URL), whatever
GOALS_TEST_DB says, and are skipped, with a warning at the end, where there is none.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from fakezulip import FakeZulip, Realm
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from tests.dbs import new_postgres_url
from tests.support import BotProcess, add_goal, database_for, running_since, wait_until, write_conf
from zulip_goals_bot.bot import lease as lease_module
from zulip_goals_bot.bot.lease import ADVISORY_LOCK_KEY, Lease
from zulip_goals_bot.db.engine import Database, alembic_config, downgrade, upgrade
from zulip_goals_bot.db.models import PART_SEPARATOR, Base, BotState, Delivery
from zulip_goals_bot.domain.states import DeliveryState
from zulip_goals_bot.errors import LeaseError

STREAM = "project-goals"
# The issue's promise: a standby takes over within this many seconds of the leader's death.
TAKEOVER_LIMIT_SECONDS = 30.0
# 2025-03-13 is a prompt day of the default schedule (every 2nd Thursday, 14:00 UTC).
PROMPT_DAY = datetime(2025, 3, 13, 14, 1, tzinfo=UTC)
REMINDER_DAY = PROMPT_DAY + timedelta(days=3, hours=1)  # reminder_days = 3
DIGEST_DAY = datetime(2025, 3, 17, 9, 30, tzinfo=UTC)  # Monday, after the 09:00 digest slot
CREATED = datetime(2025, 1, 1, tzinfo=UTC)  # long before: past every grace period
# How long the emulator holds a message before storing it: long enough to kill the sender first.
IN_FLIGHT_SECONDS = 2.0


def empty_db() -> Database:
    return Database(new_postgres_url())


def migrated_db() -> Database:
    return Database(new_postgres_url(migrated=True))


# --- migrations and types ----------------------------------------------------------------------


def test_migrations_upgrade_downgrade_and_no_drift() -> None:
    db = empty_db()
    try:
        db.upgrade()
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert db.current_revision() == head
        assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        downgrade(db.engine, "base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        assert db.current_revision() is None
        upgrade(db.engine)
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert db.current_revision() == head
    finally:
        db.dispose()


def _migrate_at_once(url: str, processes: int = 2) -> list[BaseException]:
    barrier = threading.Barrier(processes)
    errors: list[BaseException] = []

    def migrate() -> None:
        db = Database(url)  # an engine of its own, like another process
        try:
            barrier.wait()
            db.upgrade()
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(processes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_two_processes_upgrading_a_new_database_at_once_both_succeed() -> None:
    """A leader and a standby started together both migrate first; the second finds it done."""
    for _ in range(3):
        url = new_postgres_url("race")
        assert _migrate_at_once(url) == []
        db = Database(url)
        assert db.current_revision() is not None
        with db.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        db.dispose()


def test_times_come_back_aware_utc_whatever_the_server_timezone() -> None:
    url = new_postgres_url(migrated=True)
    tokyo = make_url(url).update_query_dict({"options": "-c TimeZone=Asia/Tokyo"})
    db = Database(tokyo.render_as_string(hide_password=False))
    other = Database(url)
    try:
        berlin = timezone(timedelta(hours=1))
        when = datetime(2026, 11, 25, 15, 0, 0, 123456, tzinfo=berlin)
        with db.write() as session:
            assert session.execute(text("SHOW TimeZone")).scalar() == "Asia/Tokyo"
            session.add(BotState(key="k", value="v", updated_at=when))
        for database in (db, other):
            with database.read() as session:
                row = session.execute(select(BotState)).scalar_one()
                raw = session.execute(text("SELECT updated_at FROM bot_state")).scalar_one()
            assert row.updated_at == when
            assert row.updated_at.tzinfo == UTC
            assert raw == datetime(2026, 11, 25, 14, 0, 0, 123456)  # stored as naive UTC
    finally:
        db.dispose()
        other.dispose()


# --- the lease -----------------------------------------------------------------------------------


@pytest.fixture
def lease_db(monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setattr(lease_module, "STANDBY_POLL_SECONDS", 0.05)
    db = migrated_db()
    yield db
    db.dispose()


def test_second_lease_refuses_or_waits_and_takes_over_on_release(lease_db: Database) -> None:
    leader = Lease(lease_db.engine)
    assert leader.acquire(wait=False)
    standby = Lease(Database(lease_db.url).engine)  # another process: its own engine
    with pytest.raises(LeaseError, match="another zulip-goals-bot holds the lease"):
        standby.acquire(wait=False)

    stop = threading.Event()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(standby.acquire(stop, wait=True)))
    waiter.start()
    assert wait_until(lambda: standby.polls >= 3)  # it asked, and asked again after a pause
    assert got == []  # still waiting
    leader.release()
    waiter.join(timeout=5)
    assert got == [True]
    assert standby.still_held()

    # A standby asked to stop while waiting gives up without the lease.
    third = Lease(lease_db.engine)
    stop.set()
    assert third.acquire(stop, wait=True) is False
    standby.release()
    standby.engine.dispose()


def test_leader_stops_when_the_session_holding_its_lease_is_gone(lease_db: Database) -> None:
    leader = Lease(lease_db.engine)
    assert leader.acquire(wait=False)
    stop = threading.Event()
    polls = leader.polls
    lost = leader.watch(stop)
    assert wait_until(lambda: leader.polls >= polls + 3)  # the watch checked a few times
    assert not lost.is_set()
    assert leader.still_held()
    # What a restarted server or an operator's pg_terminate_backend does to the leader.
    with lease_db.engine.connect() as conn:
        killed = conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND objid = :k AND granted"
            ),
            {"k": ADVISORY_LOCK_KEY},
        ).all()
    assert killed == [(True,)]
    assert lost.wait(5) and stop.is_set()
    assert not leader.still_held()  # even though its connection would reconnect
    successor = Lease(lease_db.engine)
    assert successor.acquire(wait=False)
    successor.release()
    leader.release()


# --- leader and standby: two `run` processes on one database --------------------------------------


@dataclass
class Cluster:
    server: FakeZulip
    db: Database
    conf: Path
    clock: FileClock
    users: dict[str, Any]
    topics: dict[str, str]

    def bot_process(self) -> BotProcess:
        return BotProcess(self.conf, env={CLOCK_FILE_ENV: str(self.clock.path)})

    def post(self, who: str, goal: str, content: str) -> int:
        return self.server.send_stream_message(self.users[who], STREAM, self.topics[goal], content)

    def stored(self) -> list[int]:
        with self.db.engine.connect() as conn:
            return list(
                conn.execute(text("SELECT zulip_message_id FROM updates ORDER BY 1")).scalars()
            )

    def deliveries(self) -> list[Delivery]:
        with self.db.read() as s:
            return list(s.execute(select(Delivery).order_by(Delivery.id)).scalars())

    def claimed(self) -> list[Delivery]:
        return [d for d in self.deliveries() if d.state is DeliveryState.CLAIMED]

    def sent(self, kind: str) -> list[Delivery]:
        return [d for d in self.deliveries() if d.kind == kind and d.state is DeliveryState.SENT]

    def bot_messages(self) -> list[dict[str, Any]]:
        bot_id = self.users["bot"].user_id
        return [m for m in self.server.messages if m["sender_id"] == bot_id]

    def owner_messages(self) -> list[dict[str, Any]]:
        bot_id = self.users["bot"].user_id
        return [m for m in self.server.messages_in(STREAM) if m["sender_id"] != bot_id]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    clock = FileClock(tmp_path / "clock")
    clock.set(PROMPT_DAY)
    realm = Realm.demo()
    with FakeZulip(realm, heartbeat_seconds=2.0, clock=lambda: clock.now().timestamp()) as server:
        users = {
            "bot": realm.user_by_email("goals-bot@example.com"),
            "ben": realm.user_by_name("Ben Owner"),
            "chloe": realm.user_by_name("Chloé Owner"),
            "eve": realm.user_by_name("Eve Lead"),
        }
        conf = write_conf(tmp_path, server, users["bot"], database=new_postgres_url("cluster"))
        db = database_for(conf)

        def owner(key: str) -> tuple[int, str, str]:
            u = users[key]
            return (u.user_id, u.email, u.full_name)

        goals = {
            "polonius": add_goal(db, "polonius", "Scale Polonius", [owner("ben")], issue=118,
                                 created=CREATED),
            "async": add_goal(db, "async", "Async closures", [owner("chloe")], issue=105,
                              created=CREATED),
            "docs": add_goal(db, "docs", "Better docs", [owner("eve")], issue=120,
                             created=CREATED),
            "silent": add_goal(db, "silent", "Silent goal", [owner("chloe")], issue=121,
                               created=CREATED),
        }  # fmt: skip
        running_since(db, CREATED)
        topics = {slug: g.zulip_topic for slug, g in goals.items()}
        yield Cluster(server, db, conf, clock, users, topics)
        db.dispose()


def each_delivery_sent_once(c: Cluster) -> list[dict[str, Any]]:
    """Every message of the bot belongs to exactly one delivery, and none went out twice."""
    deliveries = c.deliveries()
    assert {d.state for d in deliveries} == {DeliveryState.SENT}
    by_delivery = Counter(
        int(i) for d in deliveries for i in (d.zulip_message_ids or "").split(",") if i
    )
    bot_messages = c.bot_messages()
    assert sorted(by_delivery) == sorted(m["id"] for m in bot_messages)
    assert max(by_delivery.values()) == 1
    for d in deliveries:
        ids = [int(i) for i in (d.zulip_message_ids or "").split(",") if i]
        assert [c.server.message(i)["content"] for i in ids] == d.content.split(PART_SEPARATOR)
    per_period = Counter((d.kind, d.target, d.period) for d in deliveries)
    assert set(per_period.values()) == {1}
    return bot_messages


class QueuedForTheLease:
    """The test waits for the lease like a third bot, and so decides when the standby may lead.

    Blocked in ``pg_advisory_lock`` it is first in line: PostgreSQL hands it the lock the moment
    the leader's session ends, before the standby's next try.
    """

    def __init__(self, db: Database) -> None:
        self.conn = db.engine.connect()
        self.got = threading.Event()
        self.thread = threading.Thread(target=self._wait, daemon=True)

    def _wait(self) -> None:
        self.conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
        self.conn.commit()
        self.got.set()

    def queue(self, db: Database) -> None:
        self.thread.start()

        def waiting() -> bool:
            with db.engine.connect() as conn:
                return bool(
                    conn.execute(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND objid = :k AND NOT granted"
                        ),
                        {"k": ADVISORY_LOCK_KEY},
                    ).scalar()
                )

        assert wait_until(waiting)

    def release(self) -> None:
        assert self.got.wait(10)
        self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
        self.conn.commit()
        self.conn.close()


def test_leader_and_standby_share_one_database_and_nothing_is_lost_or_sent_twice(
    cluster: Cluster,
) -> None:
    c = cluster
    leader = c.bot_process().start()
    standby = c.bot_process()
    try:
        # The leader prompts every goal (and posts the digest of the week).
        assert wait_until(lambda: len(c.sent("prompt")) == 4, timeout=20), leader.log()
        standby.start(wait_ready=False)
        assert wait_until(lambda: "waiting as a standby" in standby.log()), standby.log()

        # Owners answer; the leader stores and acknowledges while the standby only waits.
        before = [
            c.post("ben", "polonius", "TL;DR: the new solver passes the test suite"),
            c.post("chloe", "async", "Closures are in nightly."),
            c.post("eve", "docs", "Wrote the chapter on lifetimes."),
        ]
        assert wait_until(lambda: c.stored() == before), leader.log()
        assert wait_until(lambda: all(c.server.message(m)["reactions"] for m in before))
        assert wait_until(lambda: not [d for d in c.deliveries() if d.state is not
                                       DeliveryState.SENT])  # fmt: skip
        assert "ready: listening" in leader.log()
        assert "ready: listening" not in standby.log()
        assert standby.alive()

        # SIGKILL the leader; messages sent while nobody leads are not lost.
        leader.kill()
        killed_at = time.monotonic()
        during = [
            c.post("ben", "polonius", "Also: the borrow checker is 2x faster."),
            c.post("eve", "docs", "And a second chapter."),
        ]
        assert wait_until(lambda: "ready: listening" in standby.log(), TAKEOVER_LIMIT_SECONDS), (
            standby.log()
        )
        assert time.monotonic() - killed_at < TAKEOVER_LIMIT_SECONDS
        assert "the leader is gone: this process now sends" in standby.log()
        assert wait_until(lambda: c.stored() == sorted(before + during)), standby.log()

        # The new leader stores new replies, reminds the silent goal once, posts the digest.
        after = [c.post("ben", "polonius", "One more thing: benchmarks are in.")]
        assert wait_until(lambda: c.stored() == sorted(before + during + after)), standby.log()
        assert wait_until(lambda: bool(c.server.message(after[0])["reactions"]))
        c.clock.set(REMINDER_DAY)
        assert wait_until(lambda: len(c.sent("reminder")) == 1), standby.log()
        digests = len(c.sent("digest"))
        c.clock.set(DIGEST_DAY)
        assert wait_until(lambda: len(c.sent("digest")) == digests + 1), standby.log()
        standby.wait_ticks()  # ticks that could send a duplicate
        assert standby.terminate() == 0
    finally:
        for proc in (leader, standby):
            if proc.alive():
                proc.kill()

    # Every owner message stored exactly once, compared id by id with the server.
    owner_ids = sorted(m["id"] for m in c.owner_messages())
    assert owner_ids == sorted(before + during + after)
    assert c.stored() == owner_ids
    for m in c.owner_messages():
        bot_reactions = [r for r in m["reactions"] if r["user_id"] == c.users["bot"].user_id]
        assert len(bot_reactions) <= 1

    bot_messages = each_delivery_sent_once(c)

    # What the people see: one prompt per goal topic, one reminder only where nobody answered.
    for slug, topic in c.topics.items():
        from_bot = [m for m in bot_messages if m.get("subject") == topic]
        expected = 2 if slug == "silent" else 1
        assert len(from_bot) == expected, (slug, [m["content"][:80] for m in from_bot])
        assert len({m["content"] for m in from_bot}) == expected
    digest_topic = [m for m in bot_messages if m.get("subject") == "weekly digest"]
    assert len({m["content"] for m in digest_topic}) == len(digest_topic) >= 2


@pytest.mark.parametrize("fault", ["lands after the leader died", "never reaches Zulip"])
def test_leader_killed_while_sending_a_prompt(cluster: Cluster, fault: str) -> None:
    """The standby finds a prompt that did arrive, and sends one that did not, exactly once.

    Every topic already holds last period's prompt with the very same text ("No update yet"):
    that one is no proof that this period's prompt went out.
    """
    c = cluster
    c.clock.set(PROMPT_DAY - timedelta(hours=1))  # last period's prompts and the digest go out
    leader = c.bot_process().start()
    standby = c.bot_process()
    queued = QueuedForTheLease(c.db)
    try:
        standby.start(wait_ready=False)
        assert wait_until(lambda: "waiting as a standby" in standby.log()), standby.log()
        assert wait_until(lambda: len(c.sent("prompt")) == 4 and len(c.sent("digest")) == 1)
        faults = c.server.faults
        if fault == "lands after the leader died":
            rule = faults.delay_next(1, IN_FLIGHT_SECONDS, path_prefix="messages", method="POST")
        else:
            rule = faults.fail_next(1000, 503, path_prefix="messages", method="POST")
        c.clock.set(PROMPT_DAY)
        assert wait_until(lambda: bool(c.claimed())), leader.log()
        # The prompt is on its way (held up, or refused): only now is the leader killed.
        assert wait_until(lambda: faults.fired(rule) >= 1), faults.history()
        [in_flight] = c.claimed()
        queued.queue(c.db)
        leader.kill()
        assert queued.got.wait(10)
        if fault == "lands after the leader died":
            assert wait_until(lambda: len(c.server.messages_in(STREAM, in_flight.topic)) == 2)
        else:
            c.server.faults.clear()
        queued.release()

        assert wait_until(lambda: "ready: listening" in standby.log(), TAKEOVER_LIMIT_SECONDS), (
            standby.log()
        )
        assert "finished 1 deliveries interrupted by the last shutdown" in standby.log()
        assert wait_until(lambda: len(c.sent("prompt")) == 8), standby.log()
        standby.wait_ticks()  # ticks that could send a duplicate
        assert standby.terminate() == 0
    finally:
        for proc in (leader, standby):
            if proc.alive():
                proc.kill()
    bot_messages = each_delivery_sent_once(c)
    for topic in c.topics.values():
        prompts = [m for m in bot_messages if m.get("subject") == topic]
        assert len(prompts) == 2, topic  # one per period
        assert prompts[0]["timestamp"] < prompts[1]["timestamp"]


def test_sigterm_on_a_standby_stops_it_without_ever_leading(cluster: Cluster) -> None:
    leader = cluster.bot_process().start()
    standby = cluster.bot_process()
    try:
        standby.start(wait_ready=False)
        assert wait_until(lambda: "waiting as a standby" in standby.log()), standby.log()
        assert standby.proc is not None
        standby.proc.send_signal(signal.SIGTERM)
        assert standby.proc.wait(timeout=10) == 0
        assert "ready: listening" not in standby.log()
        assert leader.alive()
        assert leader.terminate() == 0
    finally:
        for proc in (leader, standby):
            if proc.alive():
                proc.kill()
