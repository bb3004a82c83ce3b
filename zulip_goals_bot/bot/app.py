"""The running bot: the imperative shell around replies, commands, prompts and the digest.

Four threads share the work.  The *event loop* long-polls Zulip, stores each batch of events in
one transaction, and backfills from the stored high-water message id after every (re)register.
The *commands* thread answers chat commands the batches stored, so a slow command never holds up
storing anyone's replies; commands that only read do it in a read transaction.  The *sender*
sends acknowledgements and answers in order, so slow or rate-limited sending never holds up
storage.  The *scheduler* (APScheduler) wakes the bot at the next instant something may be
owed (a prompt slot, a reminder, an owner's DM hour, the digest slot; ``Program.next_wake``), after
each catch-up with Zulip and soon after chat commands, with an hourly wake-up as a safety net.
Each wake-up (a *tick*) sends whatever prompts, reminders, digests and health alerts (a blocked
goal's champions and team leads, ``bot.alerts``) the database says are due, so a missed or
doubled wake-up costs nothing; a stored update brings the next tick within seconds.
With ``[github]``, the scheduler also runs the bridge's passes (``github.service``): at start,
every ``sync_minutes``, soon after a stored update when mirroring; GitHub trouble is logged there
and never reaches the Zulip threads.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from zulip_goals_bot import __version__
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.bot.eventstream import EventsInterrupted
from zulip_goals_bot.bot.ingest import Ingest, Stats
from zulip_goals_bot.bot.lease import Lease
from zulip_goals_bot.bot.outgoing import LockedSender, ReplyCollector, SendQueue, answered
from zulip_goals_bot.bot.replies import IncomingMessage, MalformedMessage, Route
from zulip_goals_bot.bot.store import BatchEffects
from zulip_goals_bot.bot.zulip_io import QueueLost, ZulipIO
from zulip_goals_bot.clock import SYSTEM_CLOCK, Clock
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import ACK_OWED, FIRST_START_KEY, BotState, Delivery, HandledMessage
from zulip_goals_bot.domain.events import changes_updates
from zulip_goals_bot.domain.markdown import StreamRef
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.states import DeliveryKind
from zulip_goals_bot.errors import GoalsBotError, Stopping, ZulipError
from zulip_goals_bot.people.accounts import sync_users
from zulip_goals_bot.people.linking import map_people
from zulip_goals_bot.website.rebuild import site_keeper

if TYPE_CHECKING:
    from zulip_goals_bot.commands.bot_handler import GoalsBotHandler
    from zulip_goals_bot.github.service import GitHubBridge

log = logging.getLogger("zulip_goals_bot")

# The safety net: a tick at least this often, whatever the next owed instant said, for what no
# clock foretells (a goal resumed or a delivery refused while no wake-up was near, an import
# beside the bot).  Each tick asks the database what is owed, so an extra one costs nothing.
SAFETY_NET_SECONDS = 3600.0
# Tests that move a clock file set a short safety net here: a jump of that clock cannot move a
# wake-up armed in real time, so their ticks come from the interval.
TICK_ENV = "ZULIP_GOALS_BOT_TICK_SECONDS"
# After a tick in which sending failed, the next one comes this soon (Zulip was down for longer
# than the client's retries), rather than at the next owed instant or the safety net.
RETRY_SECONDS = 300.0
# After a batch that ran chat commands (`resume`, `back`, `owners add`... may make a prompt owed
# now), a tick this soon; commands arriving meanwhile share it.
AFTER_COMMANDS_SECONDS = 10.0
# After an update is stored (mirror = to-github or both), the GitHub pass comes this soon:
# replies arriving together share it, and the comment appears while the owner still looks.
MIRROR_SOON_SECONDS = 2.0
# After updates are stored (one may say blocked), the tick that tells the goal's champions comes
# this soon: replies arriving together share it, and a tick that finds nothing owed costs little.
ALERT_SOON_SECONDS = 2.0
# Deliveries interrupted by a crash are finished on start-up unless they are older than this.
STALE_PROMPT = timedelta(days=2)
STALE_DIGEST = timedelta(days=6)
# Subscriptions change rarely; re-reading them every tick would spend the rate limit.
SUBSCRIBERS_TTL_SECONDS = 600.0
# How long shutdown waits for the sender to flush acknowledgements already queued.
SHUTDOWN_FLUSH_SECONDS = 2.0
# How long shutdown waits for a running tick: with Zulip calls stopping, only recording what it
# already sent is left, a database write.
SHUTDOWN_TICK_SECONDS = 3.0
# How long the event loop waits before registering again after an error.
EVENT_LOOP_RETRY_SECONDS = 5.0
# How long it waits before asking again for the rest of an events response that broke off (the
# queue still holds them; a pause keeps a flapping connection from spinning).
INTERRUPTED_RETRY_SECONDS = 0.5


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
        self.outgoing = SendQueue(db, self.sender, self._count_error)
        self._processing = threading.Lock()
        self._ticking = threading.Lock()  # ticks take turns: the safety net and wake-ups overlap
        self._ticks = 0
        self._waker: _Waker | None = None
        self._subscribers: frozenset[int] | None = None
        self._subscribers_at = 0.0
        me = listener.whoami()
        self.bot_email = str(me.get("email", ""))
        setting = Setting(config, listener.site, int(me["user_id"]), str(me.get("full_name", "")))
        self.ctx = Context(setting, db, clock)
        self._command_handler: GoalsBotHandler | None = None
        # The goals website, rebuilt after stored updates and digests ([site] output).
        self.site = site_keeper(self.ctx, self.stop.is_set)
        self.ingest = Ingest(
            db, self.ctx.setting, listener, clock, self.stop, self._after_commit, self.stats,
            on_stored=self._stored,
        )  # fmt: skip
        self._github_soon: Callable[[], None] = lambda: None
        # Chat commands waiting for the command thread (None: stop); see ``_command_loop``.
        self._commands: queue.Queue[IncomingMessage | None] = queue.Queue()
        self._command_thread: threading.Thread | None = None

    @property
    def bot_user_id(self) -> int:
        return self.ctx.setting.bot_user_id

    @property
    def bot_name(self) -> str:
        return self.ctx.setting.bot_name

    @property
    def command_handler(self) -> GoalsBotHandler:
        """The chat commands' handler, made at the first command: the commands' modules (1 MB,
        30 ms) are imported then, not during the start-up, whose memory peak they raised."""
        if self._command_handler is None:
            from zulip_goals_bot.commands.bot_handler import GoalsBotHandler

            self._command_handler = GoalsBotHandler(self.ctx)
        return self._command_handler

    def _count_error(self) -> None:
        self.stats.errors += 1

    def process_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Store a batch of events (see ``Ingest.process_events``), then send what it owes."""
        self.ingest.process_events(events)

    def flush_sender(self, timeout: float) -> bool:
        """Wait until everything queued for sending so far (reactions, answers) has been sent."""
        return self.outgoing.flush(timeout)

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
        # Before any thread starts: links written from now on name the streams by id.
        streams = look_up_streams(self.listener, self.config)
        self.ctx = replace(self.ctx, setting=replace(self.ctx.setting, streams=streams))
        self.ingest.setting = self.ctx.setting
        self._command_handler = None  # made again with these streams
        result = self.listener.call("users/me/subscriptions")
        self.ingest.stream_names = {
            int(s["stream_id"]): str(s["name"]) for s in result.get("subscriptions", [])
        }

    def subscribers(self) -> frozenset[int]:
        """Who is subscribed to the goals stream, re-read at most every few minutes."""
        now = time.monotonic()
        if self._subscribers is None or now - self._subscribers_at > SUBSCRIBERS_TTL_SECONDS:
            self._subscribers = frozenset(self.sender.stream_subscribers(self.config.stream))
            self._subscribers_at = now
        return self._subscribers

    def note_first_start(self) -> None:
        """Remember when a bot first ran on this database (see ``digest_targets``)."""
        with self.db.write() as session:
            if session.get(BotState, FIRST_START_KEY) is None:
                now = self.clock.now()
                session.add(BotState(key=FIRST_START_KEY, value=now.isoformat(), updated_at=now))
                log.info("first start on this database at %s", now.isoformat())

    def recover_deliveries(self) -> None:
        from zulip_goals_bot.bot.outbox import Destination, recover

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
                        HandledMessage.outcome == Route.COMMAND.value,
                        HandledMessage.handled_at >= since,
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

    def _stored(self, events: Sequence[Mapping[str, Any]], count: int) -> None:
        """After a committed slice: the site and the tracking issues follow the updates."""
        self.site.stored(events, count)
        if self.config.github.writes and changes_updates(events, count):
            self._github_soon()
        if self.config.health.alerts and changes_updates(events, count):
            # An update may have said blocked: its goal's champions hear of it within seconds.
            self._wake_in(ALERT_SOON_SECONDS)

    def _after_commit(self, effects: BatchEffects) -> None:
        for mid in effects.acknowledge:
            self.outgoing.react(mid, self.config.ack_emoji)
        for user_id, text in effects.direct_replies:
            self.outgoing.dm([user_id], text)
        for msg in effects.commands:
            if self._command_thread is None:  # not running (the sandbox's first steps, tests)
                self._run_command(msg)
            else:
                self._commands.put(msg)
        if effects.commands and self._command_thread is None:
            self._wake_in(AFTER_COMMANDS_SECONDS)

    def commands_idle(self) -> bool:
        """Every command handed over so far has been answered (or failed)."""
        return self._commands.unfinished_tasks == 0

    def _command_loop(self) -> None:
        """Commands run here, not on the events thread: a slow one never delays storing
        anyone's replies (the event loop holds the ingest lock while it stores a batch)."""
        while True:
            msg = self._commands.get()
            try:
                if msg is None:
                    return
                self._run_command(msg)
                self._wake_in(AFTER_COMMANDS_SECONDS)
            finally:
                self._commands.task_done()

    def _run_command(self, msg: IncomingMessage) -> None:
        self.stats.commands += 1
        replies = ReplyCollector(self.bot_user_id, self.bot_name, self.bot_email)
        try:
            self.command_handler.answer(msg.as_api_message(), replies, msg.command)
        except GoalsBotError as exc:
            log.error("command in message %s failed: %s", msg.id, exc)
            return
        except Exception:
            log.exception("command in message %s crashed", msg.id)
            self.stats.errors += 1
            return
        mark = answered(self.db, msg.id)
        for i, part in enumerate(replies.texts):
            after = mark if i == len(replies.texts) - 1 else None
            if msg.is_stream:
                self.outgoing.stream(msg.stream, msg.topic, part, after)
            else:
                self.outgoing.dm([msg.sender_id], part, after)

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
            self.outgoing.react(mid, self.config.ack_emoji)

    def event_loop(self) -> None:
        while not self.stop.is_set():
            try:
                queue_id, last_event_id = self.listener.register()
                log.info("registered event queue %s", queue_id)
                with self._processing:
                    self.ingest.backfill()
                    self.ingest.catch_up_on_edits()
                self.ready.set()
                log.info("ready: listening for events")
                # Caught up with what was said meanwhile: now send what fell due meanwhile.
                self._wake_in(0.0)
                while not self.stop.is_set():
                    stream = self.listener.get_events(queue_id, last_event_id)
                    try:
                        with self._processing:
                            if self.stop.is_set():
                                return
                            self.ingest.process_events(stream)
                    except EventsInterrupted as exc:
                        log.warning("%s; asking for the rest", exc)
                        self.stop.wait(INTERRUPTED_RETRY_SECONDS)
                    finally:
                        stream.close()
                        self.stats.events += stream.count
                        if stream.last_event_id is not None:
                            last_event_id = stream.last_event_id
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
        """Send what is due now (health alerts, prompts, reminders, the digest), then arm the
        next wake-up.

        Safe to call any time, from any thread: ticks take turns, and the database says what
        is owed.  Logs one ``tick N done`` line, which tests count.
        """
        with self._ticking:
            if self.stop.is_set():
                return
            self._ticks += 1
            done = self._send_owed()
            log.info("tick %d done: %s", self._ticks, done.describe())
            if done.failed:
                self._wake_in(RETRY_SECONDS)
            if done.next_wake is not None:
                self._wake_in((done.next_wake - self.clock.now()).total_seconds())

    def _send_owed(self) -> _TickResult:
        done = _TickResult()
        if self.config.health.alerts:
            self._send_alerts(done)
        if not self.config.schedule.enabled and not self.config.digest.enabled:
            return done
        with _tick_step("scheduled sending", done):
            from zulip_goals_bot.goals.rollover import send_closing_notes

            # Goals that ended with a rollover get their closing note, whoever imported it.
            done.sent += send_closing_notes(
                self.ctx.db, self.sender, self.config.stream, self.clock.now
            )
            if self.config.schedule.enabled:
                from zulip_goals_bot.bot.prompts import send_due

                report = send_due(self.ctx, self.sender, self.subscribers())
                done.add(report.sent, report.failed)
                done.next_wake = report.next_wake
            else:
                done.next_wake = self.ctx.program.next_wake((), {}, self.clock.now())
            if self.config.digest.enabled:
                from zulip_goals_bot.digest.delivery import run_due_digest

                digest = run_due_digest(self.ctx, self.sender)
                if digest is not None:
                    done.add(digest.sent, digest.failed)
                    self.site.request()
        return done

    def _send_alerts(self, done: _TickResult) -> None:
        """Champions and team leads hear of goals that turned blocked or stayed at risk (in a
        step of their own: trouble with prompts or the digest must not keep a blocker untold)."""
        with _tick_step("health alerts", done):
            from zulip_goals_bot.bot.alerts import send_alerts

            alerts = send_alerts(self.ctx, self.sender)
            done.add(alerts.sent, alerts.failed)

    def _wake_in(self, seconds: float) -> None:
        """Make sure a tick runs within ``seconds`` (real time) once the scheduler runs."""
        waker = self._waker
        if waker is not None:
            waker.wake_by(datetime.now(UTC) + timedelta(seconds=max(seconds, 0.0)))

    def _start_github(self, scheduler: Any) -> GitHubBridge | None:
        """The GitHub bridge's passes ([github]): one at start, then every ``sync_minutes``,
        sooner or later when GitHub said when (a rate limit's reset)."""
        if not self.config.github.enabled:
            return None
        from zulip_goals_bot.github.service import GitHubBridge

        bridge = GitHubBridge(
            self.config, self.db, self.clock.now, self.listener.site, on_change=self.site.request
        )

        def one_pass() -> None:
            if self.stop.is_set():
                return
            result = bridge.run_once()
            if result.next_at is not None:
                wait = max((result.next_at - self.clock.now()).total_seconds(), 1.0)
                with suppress(Exception):  # the job is gone once the scheduler shut down
                    scheduler.modify_job(
                        "github", next_run_time=datetime.now(UTC) + timedelta(seconds=wait)
                    )

        def soon() -> None:
            """An update was stored, edited or deleted: mirror it within seconds, not at the
            next interval (the earlier of the two wins)."""
            at = datetime.now(UTC) + timedelta(seconds=MIRROR_SOON_SECONDS)
            with suppress(Exception):  # the job is gone once the scheduler shut down
                job = scheduler.get_job("github")
                if job is not None and (job.next_run_time is None or job.next_run_time > at):
                    scheduler.modify_job("github", next_run_time=at)

        self._github_soon = soon
        scheduler.add_job(
            one_pass,
            "interval",
            seconds=bridge.interval.total_seconds(),
            next_run_time=datetime.now(UTC),
            id="github",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
        )
        return bridge

    def run(self, *, tick_seconds: float | None = None, wake_ups: bool = True) -> int:
        """Run until stopped.  ``tick_seconds`` is the safety net's interval; without
        ``wake_ups`` only the safety net and the caller tick (the sandbox moves its own clock)."""
        from apscheduler.schedulers.background import BackgroundScheduler

        self.stats.started = self.clock.now()
        self.note_first_start()
        self.refresh_realm()
        self.recover_deliveries()
        self.recover_commands()
        self.recover_acks()
        interval = tick_seconds or float(os.environ.get(TICK_ENV, SAFETY_NET_SECONDS))
        scheduler = BackgroundScheduler(timezone=UTC)
        scheduler.add_job(
            self.tick,
            "interval",
            seconds=interval,
            id="safety-net",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
        )
        bridge = self._start_github(scheduler)
        scheduler.start()
        if wake_ups:
            self._waker = _Waker(scheduler, self.tick)
        sender = threading.Thread(target=self.outgoing.run, name="sender", daemon=True)
        sender.start()
        self._command_thread = threading.Thread(
            target=self._command_loop, name="commands", daemon=True
        )
        self._command_thread.start()
        listener = threading.Thread(target=self.event_loop, name="events", daemon=True)
        listener.start()
        try:
            while not self.stop.wait(0.5):
                if not listener.is_alive():
                    log.error("the event loop stopped unexpectedly")
                    return 1
        finally:
            self._waker = None
            scheduler.shutdown(wait=False)
            if bridge is not None:
                bridge.close()
            # A tick or a flush stuck retrying in an outage gives up now instead of minutes later.
            self.listener.stopping.set()
            self.sender.io.stopping.set()
            # Let a tick that is sending finish: a message it sent is then recorded as sent (the
            # next start would otherwise find a stale claim and not know the message went out).
            ticked = self._ticking.acquire(timeout=SHUTDOWN_TICK_SECONDS)
            # Queued commands are answered while shutdown waits; any left then are answered by
            # the next start, which finds them unanswered (recover_commands).
            self._commands.put(None)
            self._command_thread.join(timeout=SHUTDOWN_TICK_SECONDS)
            # Wait for the batch being stored, so that it is committed or rolled back whole.
            acquired = self._processing.acquire(timeout=3.0)
            self.outgoing.close()
            sender.join(timeout=SHUTDOWN_FLUSH_SECONDS)
            if acquired:
                self._processing.release()
            if ticked:
                self._ticking.release()
            log.info(
                "stopped: %d messages stored, %d duplicates ignored, %d commands",
                self.stats.stored,
                self.stats.duplicates,
                self.stats.commands,
            )
        return 0


@dataclass
class _TickResult:
    """What one tick sent, and when something may next be owed."""

    sent: int = 0
    failed: int = 0
    next_wake: datetime | None = None

    def add(self, sent: int, failed: int) -> None:
        self.sent += sent
        self.failed += failed

    def describe(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        when = f"{self.next_wake:%Y-%m-%d %H:%M} UTC" if self.next_wake else "none owed"
        return f"{self.sent} sent{failed}; next owed {when}"


class _Waker:
    """One pending wake-up (an APScheduler date job) at a time; the earliest asked for wins.

    Waking early only costs a tick that finds nothing owed, so a request for a later instant
    than the pending one is ignored: whoever asked is served by the earlier tick, which arms the
    next wake-up itself.
    """

    def __init__(self, scheduler: Any, tick: Callable[[], None]) -> None:
        self.scheduler = scheduler
        self.tick = tick
        self._lock = threading.Lock()
        self._pending: tuple[str, datetime, Any] | None = None  # job id, run time, job
        self._count = 0

    def wake_by(self, when: datetime) -> None:
        with self._lock:
            if self._pending is not None and self._pending[1] <= when:
                return
            if self._pending is not None:
                with suppress(LookupError):  # it ran already (APScheduler's JobLookupError)
                    self._pending[2].remove()
            self._count += 1
            job_id = f"wake-{self._count}"
            job = self.scheduler.add_job(
                self._woken, "date", run_date=when, args=(job_id,), id=job_id,
                misfire_grace_time=None,
            )  # fmt: skip
            self._pending = (job_id, when, job)

    def _woken(self, job_id: str) -> None:
        with self._lock:
            if self._pending is not None and self._pending[0] == job_id:
                self._pending = None
        self.tick()


@contextmanager
def _tick_step(what: str, done: _TickResult) -> Iterator[None]:
    """One step of a tick: its trouble is logged and counted, the tick goes on, and the next
    tick tries again (what a stop interrupted, the next start finishes)."""
    try:
        yield
    except Stopping as exc:
        log.info("%s interrupted (%s); the next start finishes it", what, exc)
    except GoalsBotError as exc:
        log.error("%s failed: %s; will retry on the next tick", what, exc)
        done.failed += 1
    except Exception:
        log.exception("%s crashed; will retry on the next tick", what)
        done.failed += 1


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
    clock = clock or SYSTEM_CLOCK
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
        check_setup(config, listener, db, clock)
        code = bot.run()
        return 1 if lost.is_set() else code
    finally:
        lease.release()
        db.dispose()


def check_setup(config: Config, io: ZulipIO, db: Database, clock: Clock) -> None:
    """``doctor``'s checks at start-up: a log line per problem, stored for the digest."""
    from zulip_goals_bot.doctor import startup_checks

    try:
        startup_checks(config, io, db, clock)
    except GoalsBotError as exc:  # a check that cannot run must not stop the bot
        log.warning("set-up checks could not run: %s", exc)


def look_up_streams(io: ZulipIO, config: Config) -> tuple[StreamRef, ...]:
    """The goals and digest streams with their ids, for links (see ``markdown.topic_link``).

    A stream Zulip does not know yet costs nothing but the id: links then name it by name.
    """
    found: list[StreamRef] = []
    for name in dict.fromkeys([config.stream, config.digest.stream]):
        try:
            found.append(StreamRef(name, io.stream_id(name)))
        except ZulipError as exc:
            log.warning("could not look up the id of #%s (%s); links name it by name", name, exc)
    return tuple(found)
