"""The running bot: the imperative shell around replies, commands, prompts and the digest.

Three threads share the work.  The *event loop* long-polls Zulip, stores each batch of events in
one transaction, and backfills from the stored high-water message id after every (re)register.
The *sender* sends acknowledgements and answers in order, so slow or rate-limited sending never
holds up storage.  The *scheduler* (APScheduler) ticks: it sends whatever prompts, reminders and
digests the database says are due, which makes missed or doubled schedules harmless.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

from sqlalchemy import select, update

from . import __version__
from .clock import Clock, default_clock
from .config import Config
from .context import Context
from .db import Database
from .errors import GoalsBotError, Stopping, StorageError, ZulipError
from .lease import Lease
from .models import (
    FIRST_START_KEY,
    HIGH_WATER_KEY,
    BotState,
    Delivery,
    DeliveryKind,
    HandledMessage,
    Update,
    UpdateSource,
)
from .people import SenderInfo, map_people, sync_users
from .replies import (
    BatchEffects,
    IncomingMessage,
    MalformedMessage,
    Router,
    apply_delete,
    apply_edit,
    store_messages,
    strip_bot_mention,
)
from .schedule import due_state
from .website.rebuild import site_keeper
from .zulip_io import QueueLost, ZulipIO

log = logging.getLogger("zulip_goals_bot")

# Seconds between scheduler ticks; each tick asks the database what is due, so a minute of
# latency is the only cost of a long interval.  Tests set ZULIP_GOALS_BOT_TICK_SECONDS lower.
TICK_SECONDS = 30.0
TICK_ENV = "ZULIP_GOALS_BOT_TICK_SECONDS"
# Events stored per transaction. A backlog of 20,000 in one transaction holds all their ORM rows
# at once (the bot's peak memory went from 140 to 210 MB); slices of 1,000 halve the storage rate
# (each transaction re-reads owners, people and topics), 5,000 keep it.
STORE_SLICE = 5_000
# How far back start-up looks for edits, moves and deletes it missed: long enough to cover the
# current prompt period of a two-week cadence and a long weekend of downtime.
CATCH_UP_DAYS = timedelta(days=21)
# More than this share of recent updates gone at once means lost access, not deletions.
CATCH_UP_MAX_DELETED_SHARE = 0.5
# A batch that cannot be stored (database busy, disk full) is retried after this pause.
STORE_RETRY_SECONDS = 1.0
# Deliveries interrupted by a crash are finished on start-up unless they are older than this.
STALE_PROMPT = timedelta(days=2)
STALE_DIGEST = timedelta(days=6)
# Subscriptions change rarely; re-reading them every tick would spend the rate limit.
SUBSCRIBERS_TTL_SECONDS = 600.0
# How long shutdown waits for the sender to flush acknowledgements already queued.
SHUTDOWN_FLUSH_SECONDS = 2.0
# Outcomes of a message whose acknowledgement is owed (set in its batch's transaction) and done
# (set once the reaction is on Zulip); start-up reacts to the owed ones, so a crash between the
# commit and the reaction loses no acknowledgement (reacting twice is harmless).
ACK_OWED = "ack owed"
ACK_DONE = "acknowledged"
# How long the event loop waits before registering again after an error.
EVENT_LOOP_RETRY_SECONDS = 5.0
# Acknowledgements are marked done in batches of at most this many, or when the queue runs dry.
ACK_MARK_BATCH = 100


class LockedSender:
    """Serializes a ZulipIO between the sender thread, the scheduler and commands."""

    def __init__(self, io: ZulipIO) -> None:
        self.io = io
        self._lock = threading.Lock()

    def send_stream(self, stream: str, topic: str, content: str) -> int:
        with self._lock:
            return self.io.send_stream(stream, topic, content)

    def send_dm(self, user_ids: Sequence[int], content: str) -> int:
        with self._lock:
            return self.io.send_dm(user_ids, content)

    def add_reaction(self, message_id: int, emoji_name: str) -> None:
        with self._lock:
            self.io.add_reaction(message_id, emoji_name)

    def find_own(
        self, stream: str | None, topic: str | None, user_ids: Sequence[int], content: str
    ) -> int | None:
        with self._lock:
            return self.io.find_own(stream, topic, user_ids, content)

    def stream_subscribers(self, stream: str) -> set[int]:
        with self._lock:
            return self.io.stream_subscribers(stream)


@dataclass
class _Outgoing:
    """One thing for the sender thread to do."""

    kind: str  # "react", "stream", "dm", or "flush" (nothing to send: only ``after``)
    args: tuple[Any, ...]
    after: Callable[[], None] | None = None


@dataclass
class Stats:
    batches: int = 0
    stored: int = 0
    duplicates: int = 0
    commands: int = 0
    errors: int = 0
    events: int = 0
    started: datetime | None = None
    extra: dict[str, int] = field(default_factory=dict)


class GoalsBot:
    """One bot process: owns the database, the Zulip connections and the three threads."""

    def __init__(
        self,
        config: Config,
        db: Database,
        listener: ZulipIO,
        sender_io: ZulipIO,
        clock: Clock,
    ) -> None:
        self.config = config
        self.db = db
        self.listener = listener
        self.sender = LockedSender(sender_io)
        self.clock = clock
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.stats = Stats()
        self._outgoing: queue.Queue[_Outgoing | None] = queue.Queue()
        self._processing = threading.Lock()
        self._stream_names: dict[int, str] = {}
        self._subscribers: frozenset[int] | None = None
        self._subscribers_at = 0.0
        me = listener.whoami()
        self.bot_user_id = int(me["user_id"])
        self.bot_name = str(me.get("full_name", ""))
        self.ctx = Context(
            config=config,
            db=db,
            clock=clock,
            site=listener.site,
            bot_user_id=self.bot_user_id,
            bot_name=self.bot_name,
        )
        self.router = Router(
            bot_user_id=self.bot_user_id,
            bot_name=self.bot_name,
            goals_stream=config.stream,
            is_command=self._is_command,
            match_goal=_match_goal,
            waiting_goals=self._waiting_goals,
            update_window=timedelta(minutes=config.update_window_minutes),
        )
        # The goals website, rebuilt after stored updates and digests ([site] output).
        self.site = site_keeper(self.ctx, lambda: self.stop.is_set())

    # -- routing helpers ---------------------------------------------------------------------

    def _is_command(self, text: str) -> bool:
        from .commands import is_command

        return is_command(text, self.bot_name)

    def _waiting_goals(self, session: Any, goal_ids: Sequence[int]) -> set[int]:
        from .queries import load_goals

        now = self.clock.now()
        cadence = self.config.schedule.cadence_weeks
        grace = self.config.schedule.grace_days
        return {
            g.id
            for g in load_goals(session, goal_ids=list(goal_ids))
            if due_state(g.facts(cadence, now.date()), now, self.ctx.slot, grace).is_waiting
        }

    # -- start-up ------------------------------------------------------------------------------

    def refresh_realm(self) -> None:
        """Users (names, timezones, roles) and stream ids, once at start-up."""
        members = self.listener.users()
        try:
            fields = self.listener.profile_fields()
        except ZulipError as exc:
            log.warning("could not read the realm's profile fields: %s", exc)
            fields = []
        with self.db.write() as session:
            now = self.clock.now()
            sync_users(session, members, now)
            report = map_people(
                session,
                members=members,
                profile_fields=fields,
                people_file=self.config.people_file,
                now=now,
                profile_field_name=self.config.github_profile_field,
            )
        for outcome in report.linked:
            log.info("mapped %s", outcome.render(dict(report.names)))
        result = self.listener.call("users/me/subscriptions")
        self._stream_names = {
            int(s["stream_id"]): str(s["name"]) for s in result.get("subscriptions", [])
        }
        if self.config.stream not in self._stream_names.values():
            log.warning(
                "the bot is not subscribed to #%s: it will not see owners' replies there; "
                "subscribe it in Zulip",
                self.config.stream,
            )

    def subscribers(self) -> frozenset[int]:
        """Who is subscribed to the goals stream, re-read at most every few minutes."""
        now = time.monotonic()
        if self._subscribers is None or now - self._subscribers_at > SUBSCRIBERS_TTL_SECONDS:
            self._subscribers = frozenset(self.sender.stream_subscribers(self.config.stream))
            self._subscribers_at = now
        return self._subscribers

    def note_first_start(self) -> None:
        """Remember when a bot first ran on this database (see ``digest.digest_targets``)."""
        with self.db.write() as session:
            if session.get(BotState, FIRST_START_KEY) is None:
                now = self.clock.now()
                session.add(BotState(key=FIRST_START_KEY, value=now.isoformat(), updated_at=now))
                log.info("first start on this database at %s", now.isoformat())

    def recover_deliveries(self) -> None:
        from .outbox import Destination, recover

        def find(dest: Destination, content: str) -> int | None:
            return self.sender.find_own(dest.stream, dest.topic, dest.user_ids, content)

        def still_wanted(d: Delivery) -> bool:
            # A prompt or digest interrupted long ago would arrive stale; it is dropped instead.
            age = self.clock.now() - d.claimed_at
            limit = STALE_DIGEST if d.kind is DeliveryKind.DIGEST else STALE_PROMPT
            return age <= limit

        done = recover(self.db, self.sender, find, self.clock.now, still_wanted)
        if done:
            log.info("finished %d deliveries interrupted by the last shutdown", done)

    def recover_commands(self) -> None:
        """Answer commands that were stored but not answered when the last run stopped."""
        since = self.clock.now() - STALE_PROMPT
        with self.db.read() as session:
            ids = list(
                session.execute(
                    select(HandledMessage.zulip_message_id).where(
                        HandledMessage.outcome == "command", HandledMessage.handled_at >= since
                    )
                ).scalars()
            )
        for message_id in ids:
            try:
                found = self.listener.call(
                    f"messages/{message_id}", request={"apply_markdown": False}
                )
                msg = IncomingMessage.from_api(found["message"])
            except (ZulipError, MalformedMessage, KeyError) as exc:
                log.warning("could not re-read command message %s: %s", message_id, exc)
                continue
            log.info("answering command %s left unanswered by the last run", message_id)
            self._run_command(msg)

    # -- storing events ----------------------------------------------------------------------

    def high_water(self) -> int:
        with self.db.read() as session:
            row = session.get(BotState, HIGH_WATER_KEY)
            return int(row.value) if row is not None else 0

    def _set_high_water(self, session: Any, message_id: int) -> None:
        row = session.get(BotState, HIGH_WATER_KEY)
        now = self.clock.now()
        if row is None:
            session.add(BotState(key=HIGH_WATER_KEY, value=str(message_id), updated_at=now))
        elif int(row.value) < message_id:
            row.value = str(message_id)
            row.updated_at = now

    def process_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Store a batch, a transaction per slice, retrying each while the database is busy.

        Acknowledgements and answers wait for the last slice: sent in between, they would
        compete with storing the rest of a backlog.
        """
        done = BatchEffects()
        for start in range(0, len(events), STORE_SLICE):
            effects = self._store_slice(events[start : start + STORE_SLICE])
            if effects is None:  # stopping: what is stored is owed and found again on start-up
                break
            done.acknowledge += effects.acknowledge
            done.direct_replies += effects.direct_replies
            done.commands += effects.commands
        self._after_commit(done)

    def _store_slice(self, events: Sequence[Mapping[str, Any]]) -> BatchEffects | None:
        while not self.stop.is_set():
            try:
                effects = self._store(events)
            except StorageError as exc:
                log.error("could not store %d events: %s; retrying", len(events), exc)
                self.stats.errors += 1
                self.stop.wait(STORE_RETRY_SECONDS)
                continue
            log.debug(
                "stored %d events: %d updates, %d duplicates, %d commands",
                len(events),
                effects.stored,
                effects.duplicates,
                len(effects.commands),
            )
            self.stats.batches += 1
            self.stats.stored += effects.stored
            self.stats.duplicates += effects.duplicates
            self.site.stored(events, effects.stored)
            return effects
        return None

    def _store(self, events: Sequence[Mapping[str, Any]]) -> BatchEffects:
        total = BatchEffects()
        now = self.clock.now()
        with self.db.write() as session:
            chunk: list[IncomingMessage] = []
            top = 0

            def flush() -> None:
                if chunk:
                    e = store_messages(session, self.router, chunk, now)
                    total.acknowledge += e.acknowledge
                    total.commands += e.commands
                    total.direct_replies += e.direct_replies
                    total.stored += e.stored
                    total.duplicates += e.duplicates
                    chunk.clear()

            for event in events:
                kind = event.get("type")
                try:
                    if kind == "message":
                        msg = IncomingMessage.from_api(
                            event.get("message") or {}, event.get("flags") or ()
                        )
                        top = max(top, msg.id)
                        chunk.append(msg)
                    elif kind in ("update_message", "delete_message"):
                        flush()
                        self._follow(session, event)
                    else:
                        log.warning("skipping event %s of unknown type %r", event.get("id"), kind)
                except MalformedMessage as exc:
                    log.warning("skipping a malformed %s event %s: %s", kind, event.get("id"), exc)
            flush()
            if top:
                self._set_high_water(session, top)
            if total.acknowledge:
                session.execute(
                    update(HandledMessage)
                    .where(HandledMessage.zulip_message_id.in_(total.acknowledge))
                    .values(outcome=ACK_OWED)
                    .execution_options(synchronize_session=False)
                )
        return total

    def _follow(self, session: Any, event: Mapping[str, Any]) -> None:
        """Apply an edit or delete in a savepoint, so a malformed one undoes only itself."""
        try:
            with session.begin_nested():
                if event.get("type") == "update_message":
                    apply_edit(session, self.router, event, self._stream_names)
                else:
                    apply_delete(session, event)
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"{type(exc).__name__}: {exc}") from exc

    def _after_commit(self, effects: BatchEffects) -> None:
        for mid in effects.acknowledge:
            self._outgoing.put(_Outgoing("react", (mid, self.config.ack_emoji)))
        for user_id, text in effects.direct_replies:
            self._outgoing.put(_Outgoing("dm", ([user_id], text)))
        for msg in effects.commands:
            self._run_command(msg)

    def _run_command(self, msg: IncomingMessage) -> None:
        from .commands import handle, parse

        self.stats.commands += 1
        text = strip_bot_mention(msg.content, self.bot_name)
        sender = SenderInfo(msg.sender_id, msg.sender_email, msg.sender_name)
        in_topic = (msg.stream or "", msg.topic or "") if msg.is_stream else None
        try:
            reply = handle(self.ctx, sender, parse(text, bot_name=self.bot_name), in_topic=in_topic)
        except GoalsBotError as exc:
            log.error("command in message %s failed: %s", msg.id, exc)
            return
        except Exception:
            log.exception("command in message %s crashed", msg.id)
            self.stats.errors += 1
            return
        mark = self._mark_command_done(msg.id)
        for i, part in enumerate(reply.messages):
            after = mark if i == len(reply.messages) - 1 else None
            if msg.is_stream:
                self._outgoing.put(_Outgoing("stream", (msg.stream, msg.topic, part), after=after))
            else:
                self._outgoing.put(_Outgoing("dm", ([msg.sender_id], part), after=after))

    def _mark_command_done(self, message_id: int) -> Callable[[], None]:
        def mark() -> None:
            with self.db.write() as session:
                row = session.get(HandledMessage, message_id)
                if row is not None:
                    row.outcome = "command answered"

        return mark

    # -- the threads ---------------------------------------------------------------------------

    def recover_acks(self) -> None:
        """Queue the acknowledgements owed by the last run (it stopped before reacting)."""
        since = self.clock.now() - STALE_PROMPT
        with self.db.read() as session:
            ids = list(
                session.execute(
                    select(HandledMessage.zulip_message_id)
                    .where(HandledMessage.outcome == ACK_OWED, HandledMessage.handled_at >= since)
                    .order_by(HandledMessage.zulip_message_id)
                ).scalars()
            )
        if ids:
            log.info("acknowledging %d updates left unacknowledged by the last run", len(ids))
        for mid in ids:
            self._outgoing.put(_Outgoing("react", (mid, self.config.ack_emoji)))

    def _mark_acked(self, message_ids: list[int]) -> None:
        if not message_ids:
            return
        try:
            with self.db.write() as session:
                session.execute(
                    update(HandledMessage)
                    .where(
                        HandledMessage.zulip_message_id.in_(message_ids),
                        HandledMessage.outcome == ACK_OWED,
                    )
                    .values(outcome=ACK_DONE)
                    .execution_options(synchronize_session=False)
                )
        except GoalsBotError as exc:  # they are reacted to again after a restart: harmless
            log.error("could not record %d acknowledgements: %s", len(message_ids), exc)
        message_ids.clear()

    def flush_sender(self, timeout: float) -> bool:
        """Wait until everything queued for sending so far (reactions, answers) has been sent."""
        done = threading.Event()
        self._outgoing.put(_Outgoing("flush", (), after=done.set))
        return done.wait(timeout)

    def sender_loop(self) -> None:
        acked: list[int] = []
        left = 0  # items not sent because the bot is stopping
        while True:
            if acked and (len(acked) >= ACK_MARK_BATCH or self._outgoing.empty()):
                self._mark_acked(acked)
            item = self._outgoing.get()
            if item is None:
                self._mark_acked(acked)
                if left:
                    # Acknowledgements owed and unanswered commands are found again on start-up.
                    log.info("stopping: %d reactions or answers left for the next start", left)
                return
            if left:
                left += 1
                continue
            try:
                if item.kind == "react":
                    self.sender.add_reaction(*item.args)
                    acked.append(int(item.args[0]))
                elif item.kind == "stream":
                    self.sender.send_stream(*item.args)
                elif item.kind == "dm":
                    self.sender.send_dm(*item.args)
                if item.after is not None:
                    item.after()
            except Stopping:
                left = 1
            except GoalsBotError as exc:
                log.error("could not send %s: %s", item.kind, exc)
                self.stats.errors += 1
            except Exception:
                log.exception("sender crashed on %s", item.kind)
                self.stats.errors += 1

    def backfill(self) -> int:
        """Store every message newer than the high-water mark, oldest first."""
        count = 0
        for page in self.listener.messages_after(self.high_water()):
            self.process_events(
                [{"type": "message", "message": m, "flags": m.get("flags", [])} for m in page]
            )
            count += len(page)
            if self.stop.is_set():
                break
        if count:
            log.info("backfill: %d messages since the last run", count)
        return count

    def catch_up_on_edits(self) -> None:
        """Replay edits, moves and deletes of recent updates that happened while nobody listened.

        Zulip keeps no events for a queue that did not exist; comparing the stored updates of the
        last ``CATCH_UP_DAYS`` with the messages as Zulip shows them now finds those changes.
        """
        from .replies import StoredMessage, reconcile

        since = self.clock.now() - CATCH_UP_DAYS
        with self.db.read() as session:
            stored = [
                StoredMessage(*row)
                for row in session.execute(
                    select(
                        Update.zulip_message_id,
                        Update.edited_at,
                        Update.stream,
                        Update.topic,
                        Update.content,
                    )
                    .where(
                        Update.sent_at >= since,
                        Update.deleted.is_(False),
                        Update.source != UpdateSource.IMPORT,
                    )
                    .order_by(Update.zulip_message_id)
                )
            ]
        if not stored:
            return
        wanted = {s.zulip_message_id for s in stored}
        last = stored[-1].zulip_message_id
        seen: dict[int, dict[str, Any]] = {}
        covered = 0
        for page in self.listener.messages_after(stored[0].zulip_message_id - 1):
            seen.update((int(m["id"]), m) for m in page if int(m["id"]) in wanted)
            covered = max(int(m["id"]) for m in page)
            if covered >= last or self.stop.is_set():
                break
        else:
            covered = last  # Zulip said these were the newest: nothing stored is beyond them
        found = reconcile(stored, seen, covered, max_deleted_share=CATCH_UP_MAX_DELETED_SHARE)
        if found.withheld:
            log.warning(
                "%d of %d recent updates are no longer visible on Zulip; not marking them "
                "deleted (is the bot still subscribed to #%s?): message ids %s",
                len(found.withheld),
                len(stored),
                self.config.stream,
                found.withheld[:20],
            )
        if found.events:
            log.info(
                "caught up with changes made while away: %d edited, %d moved, %d deleted",
                found.edited,
                found.moved,
                found.deleted,
            )
            self.process_events(found.events)

    def event_loop(self) -> None:
        while not self.stop.is_set():
            try:
                queue_id, last_event_id = self.listener.register()
                log.info("registered event queue %s", queue_id)
                with self._processing:
                    self.backfill()
                    self.catch_up_on_edits()
                self.ready.set()
                log.info("ready: listening for events")
                while not self.stop.is_set():
                    events = self.listener.get_events(queue_id, last_event_id)
                    if not events:
                        continue
                    last_event_id = max(int(e["id"]) for e in events)
                    self.stats.events += len(events)
                    wanted = [e for e in events if e.get("type") != "heartbeat"]
                    if wanted:
                        with self._processing:
                            if self.stop.is_set():
                                return
                            self.process_events(wanted)
            except Stopping:
                return
            except QueueLost:
                log.warning("the event queue was lost; registering again and backfilling")
            except ZulipError as exc:
                log.error("Zulip error in the event loop: %s; reconnecting", exc)
                self.stop.wait(EVENT_LOOP_RETRY_SECONDS)
            except Exception:
                # Whatever it was, the messages are still on Zulip: registering again backfills
                # them from the high-water mark, so a bug costs a delay, never a message.
                log.exception("the event loop crashed; registering again and backfilling")
                self.stats.errors += 1
                self.stop.wait(EVENT_LOOP_RETRY_SECONDS)

    def tick(self) -> None:
        """Send what is due now: prompts, reminders, the digest. Safe to call any time."""
        if not self.config.schedule.enabled and not self.config.digest.enabled:
            return
        try:
            if self.config.schedule.enabled:
                from .prompts import send_due

                send_due(self.ctx, self.sender, self.subscribers())
            if self.config.digest.enabled:
                from .digest import digest_due, send_digest

                due, _key = digest_due(self.ctx, self.clock.now())
                if due:
                    send_digest(self.ctx, self.sender)
                    self.site.request()
        except Stopping as exc:
            log.info("scheduled sending interrupted (%s); the next start finishes it", exc)
        except GoalsBotError as exc:
            log.error("scheduled sending failed: %s; will retry on the next tick", exc)
        except Exception:
            log.exception("scheduled sending crashed; will retry on the next tick")

    def run(self, *, tick_seconds: float | None = None) -> int:
        from apscheduler.schedulers.background import BackgroundScheduler

        self.stats.started = self.clock.now()
        self.note_first_start()
        self.refresh_realm()
        self.recover_deliveries()
        self.recover_commands()
        self.recover_acks()
        sender = threading.Thread(target=self.sender_loop, name="sender", daemon=True)
        sender.start()
        listener = threading.Thread(target=self.event_loop, name="events", daemon=True)
        listener.start()
        interval = tick_seconds or float(os.environ.get(TICK_ENV, TICK_SECONDS))
        scheduler = BackgroundScheduler(timezone=str(self.config.timezone))
        scheduler.add_job(
            self.tick,
            "interval",
            seconds=interval,
            id="tick",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
        )
        scheduler.start()
        try:
            while not self.stop.wait(0.5):
                if not listener.is_alive():
                    log.error("the event loop stopped unexpectedly")
                    return 1
        finally:
            scheduler.shutdown(wait=False)
            # A tick or a flush stuck retrying in an outage gives up now instead of minutes later.
            self.listener.stopping.set()
            self.sender.io.stopping.set()
            # Wait for the batch being stored, so that it is committed or rolled back whole.
            acquired = self._processing.acquire(timeout=3.0)
            self._outgoing.put(None)
            sender.join(timeout=SHUTDOWN_FLUSH_SECONDS)
            if acquired:
                self._processing.release()
            log.info(
                "stopped: %d messages stored, %d duplicates ignored, %d commands",
                self.stats.stored,
                self.stats.duplicates,
                self.stats.commands,
            )
        return 0


def _match_goal(session: Any, query: str) -> int | None:
    from .matching import MatchKind, match_goal
    from .queries import goal_names

    result = match_goal(query, goal_names(session))
    if result.kind is MatchKind.FOUND and result.goal is not None:
        return result.goal.id
    return None


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The zulip client and urllib3 log request details we do not need (and URLs with params).
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def open_database(config: Config) -> Database:
    db = Database(config.database_url)
    db.upgrade()
    return db


def run_bot(config: Config, *, clock: Clock | None = None) -> int:
    """``zulip-goals-bot run``: connect, take the lease, and run until SIGTERM/SIGINT."""
    setup_logging(config.log_level)
    clock = clock or default_clock()
    listener = ZulipIO(config.zuliprc)
    sender_io = ZulipIO(config.zuliprc)
    listener.whoami()  # fail fast, with one clear line, on a wrong key
    db = open_database(config)
    lease = Lease(db.engine)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not lease.acquire(stop, wait=not db.is_sqlite):
        return 0
    lost = lease.watch(stop)
    try:
        bot = GoalsBot(config, db, listener, sender_io, clock)
        bot.stop = stop
        log.info(
            "zulip-goals-bot %s starting as %s (user %s) on %s, stream #%s",
            __version__,
            bot.bot_name,
            bot.bot_user_id,
            listener.site,
            config.stream,
        )
        code = bot.run()
        return 1 if lost.is_set() else code
    finally:
        lease.release()
        db.dispose()


def prompt_command(config: Config, *, dry_run: bool, goal: str | None) -> int:
    from .prompts import send_due

    setup_logging("WARNING")
    io = ZulipIO(config.zuliprc)
    me = io.whoami()
    db = open_database(config)
    clock = default_clock()
    ctx = Context(config, db, clock, io.site, int(me["user_id"]), str(me.get("full_name", "")))
    sender = LockedSender(io)
    report = send_due(
        ctx,
        sender,
        frozenset(sender.stream_subscribers(config.stream)),
        dry_run=dry_run,
        goal_slug=goal,
    )
    print(report.render())
    return 0


def digest_command(config: Config, *, dry_run: bool, since: str | None) -> int:
    from datetime import date, time

    from .digest import send_digest

    setup_logging("WARNING")
    clock = default_clock()
    since_dt = None
    if since:
        try:
            since_dt = datetime.combine(date.fromisoformat(since), time(0), tzinfo=config.timezone)
        except ValueError as exc:
            raise GoalsBotError(f"--since {since!r} is not a date like 2026-11-01") from exc
    db = open_database(config)
    if dry_run:
        ctx = Context(config, db, clock, _site_from_zuliprc(config), 0, "")
        report = send_digest(ctx, _NoSender(), dry_run=True, since=since_dt)
        print(report.render())
        return 0
    io = ZulipIO(config.zuliprc)
    me = io.whoami()
    ctx = Context(config, db, clock, io.site, int(me["user_id"]), str(me.get("full_name", "")))
    report = send_digest(ctx, LockedSender(io), since=since_dt, force=True)
    print(report.render())
    return 0


class _NoSender:
    """A dry run must not send; this makes any attempt an error rather than a message."""

    def send_stream(self, stream: str, topic: str, content: str) -> int:
        raise GoalsBotError("dry run: nothing is sent")

    def send_dm(self, user_ids: Sequence[int], content: str) -> int:
        raise GoalsBotError("dry run: nothing is sent")

    def add_reaction(self, message_id: int, emoji_name: str) -> None:
        raise GoalsBotError("dry run: nothing is sent")


def _site_from_zuliprc(config: Config) -> str:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(config.zuliprc, encoding="utf-8")
        return parser.get("api", "site", fallback=os.environ.get("ZULIP_SITE", ""))
    except configparser.Error:
        return os.environ.get("ZULIP_SITE", "")
