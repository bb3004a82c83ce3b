"""Ingest: how fast the running bot stores owner replies, next to the limits of its two ends.

Per run, with the program at full size (1,000 goals, 1,500 owners, 100,000 stored updates):

1. *Transport limit*: a bare ``zulip.Client`` drains N queued message events with a no-op
   callback (``call_on_each_event``), measured from the moment the events are released.
2. The bot starts as a subprocess (its high-water mark set past step 1's messages).
3. *Live*: replies arrive at a steady rate; each one's latency from post to row in SQLite.
4. *Queued*: N replies are posted while the emulator's lock is held, so they wait in the bot's
   event queue; from the release until ``COUNT(*)`` of the new updates reaches N.
5. *Storage limit*: the very rows the bot stored (updates and handled messages) bulk-inserted
   with SQLAlchemy Core ``executemany`` into a copy of the database as it was before the run.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from bench.core import BenchError, Figure, Sizes, at_least, below, percentile, wait_for
from bench.data import HISTORY_ID_BASE, a_friday_evening, table_of
from bench.profiling import Profile
from bench.world import Bot, World, stored_after, world
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import HandledMessage, Update

# How often the benchmark polls SQLite for stored rows; it bounds the resolution of latencies.
POLL_SECONDS = 0.002
# The longest a queued burst may take before the run is declared failed.
BURST_TIMEOUT = 300.0
# After the burst is stored the bot still commits and queues acknowledgements; the peak RSS is
# read once that is over.
RSS_SETTLE_SECONDS = 0.5
# Replies posted at the live rate while the burst's acknowledgements are being sent.
ACK_PHASE_SECONDS = 2.0


class _Drained(Exception):
    """Stops ``call_on_each_event`` once every event arrived."""


def figures(sizes: Sizes) -> dict[str, Figure]:
    n = f"{sizes.queued:,}"
    return {
        "rate": Figure("rate", f"Ingest: updates stored per second ({n} queued)", "updates/s",
                       at_least(5_000)),
        "transport": Figure("transport", "Ingest limit: bare `zulip` client, no-op callback",
                            "events/s"),
        "storage": Figure("storage", "Ingest limit: SQLAlchemy Core bulk insert of the same rows",
                          "rows/s"),
        "vs_transport": Figure("vs_transport", "Ingest: our rate / transport limit", "×"),
        "vs_storage": Figure("vs_storage", "Ingest: our rate / storage limit", "×",
                             at_least(0.35)),
        "live_p99": Figure("live_p99",
                           f"Ingest live ({sizes.live_rate:.0f} replies/s): p99 post → stored",
                           "ms", below(100)),
        "live_acks_p99": Figure(
            "live_acks_p99",
            f"Ingest live, while the {n} acknowledgements go out: p99 post → stored",
            "ms",
            below(100),
        ),
        "acks_during": Figure(
            "acks_during", "Ingest: acknowledgements sent during those replies", "reactions"
        ),
        "rss_live": Figure("rss_live", "Peak RSS of the bot: start-up and live ingest", "MB",
                           below(60)),
        "rss_burst": Figure("rss_burst", f"Peak RSS of the bot: {n} queued replies", "MB",
                            below(100)),
    }  # fmt: skip


def run(sizes: Sizes, tmp: Path, out: dict[str, Figure], profile: Profile) -> None:
    now = a_friday_evening()
    with world(
        tmp,
        goals=sizes.goals,
        owners=sizes.owners,
        updates=sizes.updates,
        subscribed=0,
        now=now,
    ) as w:
        out["transport"].add(_transport(w, sizes.queued))
        w.set_high_water(w.last_message_id(), now)
        w.db.dispose()
        before = tmp / "before.sqlite3"
        shutil.copyfile(w.db_path, before)
        with Bot(w.conf) as bot:
            bot.wait_ready()
            out["live_p99"].add(_live(w, bot, sizes.live_rate, sizes.live_seconds))
            out["rss_live"].add(bot.peak_rss_mb())
            with profile.subprocess("ingest-burst", bot.pid):
                first, rate = _burst(w, bot, sizes.queued)
            out["rate"].add(rate)
            # The burst's acknowledgements are now queued in the bot's sender thread; replies
            # arriving meanwhile must still be stored at once.
            acked = _reactions(w)
            with profile.subprocess("ingest-during-acks", bot.pid):
                during = _live(w, bot, sizes.live_rate, ACK_PHASE_SECONDS, wait_acks=False)
            out["live_acks_p99"].add(during)
            out["acks_during"].add(_reactions(w) - acked)
            time.sleep(RSS_SETTLE_SECONDS)
            out["rss_burst"].add(bot.peak_rss_mb())
        out["storage"].add(_storage(w, before, first))
    out["vs_transport"].add(out["rate"].samples[-1] / out["transport"].samples[-1])
    out["vs_storage"].add(out["rate"].samples[-1] / out["storage"].samples[-1])


def _transport(w: World, count: int) -> float:
    """Events per second a bare client drains from a queue holding ``count`` message events."""
    client = w.server.client_for(w.bot_user)
    seen = 0
    done_at = 0.0

    def callback(_event: dict[str, Any]) -> None:
        nonlocal seen, done_at
        seen += 1
        if seen == count:
            done_at = time.perf_counter()
            raise _Drained

    def listen() -> None:
        try:
            client.call_on_each_event(callback, event_types=["message"])
        except _Drained:
            return

    before = set(w.server.queues_of(w.bot_user))
    thread = threading.Thread(target=listen, name="bare-client", daemon=True)
    thread.start()
    if not wait_for(lambda: _waiting_queue(w, before) is not None, 30.0):
        raise BenchError("the bare client did not register an event queue")
    plan = w.reply_plan(count, seed=11)
    with w.server.hold():
        for sender, topic, text in plan:
            w.post(sender, topic, text)
    released = time.perf_counter()
    thread.join(BURST_TIMEOUT)
    if thread.is_alive() or seen < count:
        raise BenchError(f"the bare client drained only {seen} of {count} events")
    for queue_id in set(w.server.queues_of(w.bot_user)) - before:
        w.server.expire_queue(queue_id)
    return count / (done_at - released)


def _waiting_queue(w: World, before: set[str]) -> str | None:
    """The new queue once its client is parked in a long poll (so it sees the burst at once)."""
    parked = [q.queue_id for q in w.server.queue_status(w.bot_user) if q.polling > 0]
    return next((queue_id for queue_id in parked if queue_id not in before), None)


def _reactions(w: World) -> int:
    return w.server.count_requests("POST", "messages/", status=200)


def _live(w: World, bot: Bot, rate: float, seconds: float, *, wait_acks: bool = True) -> float:
    """p99 milliseconds from posting a reply to its row being visible in SQLite."""
    count = max(int(rate * seconds), 1)
    plan = w.reply_plan(count, seed=13)
    floor = w.last_message_id()
    posted: dict[int, float] = {}
    seen: dict[int, float] = {}
    stop = threading.Event()
    conn = w.reader()

    def poll() -> None:
        last = floor
        while not stop.is_set():
            rows = conn.execute(
                "SELECT zulip_message_id FROM updates WHERE zulip_message_id > ? "
                "AND zulip_message_id < ?",
                (last, HISTORY_ID_BASE),
            ).fetchall()
            t = time.perf_counter()
            for (mid,) in rows:
                seen.setdefault(mid, t)
                last = max(last, mid)
            time.sleep(POLL_SECONDS)

    poller = threading.Thread(target=poll, name="poller", daemon=True)
    poller.start()
    start = time.perf_counter()
    try:
        for k, (sender, topic, text) in enumerate(plan):
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t = time.perf_counter()
            posted[w.post(sender, topic, text)] = t
        if not wait_for(lambda: len(seen) >= count, 30.0):
            bot.check_alive()
            raise BenchError(f"only {len(seen)} of {count} live replies were stored")
        if wait_acks:  # so that the next phase starts with an idle sender
            last_id = max(posted)
            wait_for(lambda: bool(w.server.message(last_id)["reactions"]), 30.0, 0.02)
    finally:
        stop.set()
        poller.join()
        conn.close()
    latencies = [(seen[mid] - t) * 1000.0 for mid, t in posted.items()]
    return percentile(latencies, 99)


def _burst(w: World, bot: Bot, count: int) -> tuple[int, float]:
    """Post ``count`` replies while the bot cannot fetch them, release, time until all stored."""
    plan = w.reply_plan(count, seed=17)
    floor = w.last_message_id()
    conn = w.reader()
    try:
        with w.server.hold():
            for sender, topic, text in plan:
                w.post(sender, topic, text)
        released = time.perf_counter()
        deadline = released + BURST_TIMEOUT
        while stored_after(conn, floor) < count:
            if time.perf_counter() > deadline:
                raise BenchError(f"the queued burst was not stored:\n{bot.tail()}")
            bot.check_alive()
            time.sleep(POLL_SECONDS)
        elapsed = time.perf_counter() - released
    finally:
        conn.close()
    return floor, count / elapsed


def _storage(w: World, before: Path, floor: int) -> float:
    """Rows per second for a plain Core bulk insert of what the bot stored in the burst."""
    source = Database(w.db.url)
    try:
        with source.engine.connect() as conn:
            updates = [
                dict(r._mapping)
                for r in conn.execute(
                    select(table_of(Update)).where(
                        Update.zulip_message_id > floor,
                        Update.zulip_message_id < HISTORY_ID_BASE,
                    )
                )
            ]
            handled = [
                dict(r._mapping)
                for r in conn.execute(
                    select(table_of(HandledMessage)).where(HandledMessage.zulip_message_id > floor)
                )
            ]
    finally:
        source.dispose()
    for row in updates:
        row.pop("id")
    target = Database(f"sqlite:///{before}")
    try:
        start = time.perf_counter()
        with target.engine.begin() as conn:
            conn.execute(insert(table_of(HandledMessage)), handled)
            conn.execute(insert(table_of(Update)), updates)
        elapsed = time.perf_counter() - start
    finally:
        target.dispose()
    return len(updates) / elapsed
