"""Ingest: events from Zulip become stored updates, a transaction per slice of a batch.

The bot's event loop hands each batch to ``Ingest.process_events``; after a (re)register,
``backfill`` stores what arrived while nobody listened and ``catch_up_on_edits`` replays the
edits, moves and deletes made meanwhile. Routing and storing are ``store.store_messages``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from zulip_goals_bot.bot.catchup import StoredMessage, missed_reactions, reconcile
from zulip_goals_bot.bot.replies import IncomingMessage, MalformedMessage
from zulip_goals_bot.bot.store import (
    BatchEffects,
    Summary,
    SummaryKey,
    apply_delete,
    apply_edit,
    apply_reaction,
    health_reactions_on,
    recent_prompts,
    store_messages,
)
from zulip_goals_bot.bot.zulip_io import ZulipIO
from zulip_goals_bot.clock import Clock
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import HIGH_WATER_KEY, BotState, Update
from zulip_goals_bot.domain.events import (
    MESSAGE_CHANGE_EVENTS,
    REACTION_EVENT,
    is_health_reaction,
)
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.states import ZULIP_SOURCES
from zulip_goals_bot.errors import StorageError

log = logging.getLogger("zulip_goals_bot")

# Events stored per transaction. A backlog of 20,000 in one transaction holds all their ORM rows
# at once (the bot's peak memory went from 140 to 210 MB); slices of 1,000 halve the storage rate
# (each transaction re-reads owners, people and topics), 5,000 keep it.
STORE_SLICE = 5_000
# Events that change stored updates; messages become ``IncomingMessage``s.
# How far back start-up looks for edits, moves and deletes it missed: long enough to cover the
# current prompt period of a two-week cadence and a long weekend of downtime.
CATCH_UP_DAYS = timedelta(days=21)
# More than this share of recent updates gone at once means lost access, not deletions.
CATCH_UP_MAX_DELETED_SHARE = 0.5
# A batch that cannot be stored (database busy, disk full) is retried after this pause.
STORE_RETRY_SECONDS = 1.0


# One entry of a slice: a message reduced to what the bot uses, or an edit or delete event.
Item = IncomingMessage | Mapping[str, Any]


@dataclass
class Stats:
    """The running bot's counters (logged when it stops; tests read them)."""

    batches: int = 0
    stored: int = 0
    duplicates: int = 0
    commands: int = 0
    errors: int = 0
    events: int = 0
    started: datetime | None = None
    extra: dict[str, int] = field(default_factory=dict)


class Ingest:
    """Stores what the listener brings; ``after_commit`` gets each batch's effects to send."""

    def __init__(
        self,
        db: Database,
        setting: Setting,
        listener: ZulipIO,
        clock: Clock,
        stop: threading.Event,
        after_commit: Callable[[BatchEffects], None],
        stats: Stats,
        on_stored: Callable[[Sequence[Mapping[str, Any]], int], None] = lambda _e, _n: None,
    ) -> None:
        self.db = db
        self.setting = setting
        self.listener = listener
        self.clock = clock
        self.stop = stop
        self.after_commit = after_commit
        self.stats = stats
        # Told of every stored slice (the goals website rebuilds when updates changed).
        self.on_stored = on_stored
        self.stream_names: dict[int, str] = {}
        self._batches = 0  # numbers the ``batch N stored`` log lines, which tests count

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

    def process_events(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Store a batch of events, a transaction per ``STORE_SLICE`` messages, retrying each
        while the database is busy.

        ``events`` may be a stream (``EventStream``): each message is reduced to an
        ``IncomingMessage`` as it arrives, so a slice holds what the bot uses, not the events.
        Acknowledgements and answers wait for the last slice: sent in between, they would
        compete with storing the rest of a backlog.  If the events break off (a response cut
        short), the messages taken in are stored and acknowledged, then the error goes on.
        """
        done = BatchEffects()
        count = top = 0
        items: list[Item] = []
        broken: Exception | None = None

        def store() -> bool:
            nonlocal count, top
            effects = self._store_slice(items, done.summaries)
            if effects is None:  # stopping: what is stored is owed and found again on start-up
                return False
            count += len(items)
            top = max(top, max(_item_id(i) for i in items))
            done.acknowledge += effects.acknowledge
            done.direct_replies += effects.direct_replies
            done.commands += effects.commands
            done.stored += effects.stored
            if effects.summaries_stale or any(not isinstance(i, IncomingMessage) for i in items):
                done.summaries.clear()  # an edit or a moved update may have changed a summary
            else:
                done.summaries.update(effects.summaries)
            items.clear()
            return True

        stream = iter(events)
        while True:
            try:
                event = next(stream)
            except StopIteration:
                break
            except Exception as exc:  # the events broke off: store those taken in, then raise
                broken = exc
                break
            item = _item(event)
            if item is not None:
                items.append(item)
            if len(items) >= STORE_SLICE and not store():
                break
        if items and not self.stop.is_set():
            store()
        if count:
            self.after_commit(done)
            self._batches += 1
            log.debug(
                "batch %d stored: %d events up to message %d, %d updates, %d commands",
                self._batches,
                count,
                top,
                done.stored,
                len(done.commands),
            )
        if broken is not None:
            raise broken

    def _store_slice(
        self, items: Sequence[Item], summaries: Mapping[SummaryKey, Summary]
    ) -> BatchEffects | None:
        while not self.stop.is_set():
            try:
                effects = self._store(items, summaries)
            except StorageError as exc:
                log.error("could not store %d events: %s; retrying", len(items), exc)
                self.stats.errors += 1
                self.stop.wait(STORE_RETRY_SECONDS)
                continue
            log.debug(
                "stored %d events: %d updates, %d duplicates, %d commands",
                len(items),
                effects.stored,
                effects.duplicates,
                len(effects.commands),
            )
            self.stats.batches += 1
            self.stats.stored += effects.stored
            self.stats.duplicates += effects.duplicates
            self.on_stored([i for i in items if not isinstance(i, IncomingMessage)], effects.stored)
            return effects
        return None

    def _store(
        self, items: Sequence[Item], summaries: Mapping[SummaryKey, Summary]
    ) -> BatchEffects:
        total = BatchEffects()
        now = self.clock.now()
        with self.db.write() as session:
            chunk: list[IncomingMessage] = []
            top = 0
            followed = False  # an edit, delete or moved update came before: summaries changed

            def flush() -> None:
                nonlocal followed
                if chunk:
                    # Chunks split at edits, which may change stored summaries: after the first,
                    # they are read back from the database.
                    known = {} if followed else summaries
                    e = store_messages(session, self.setting, chunk, now, known)
                    total.summaries.update(e.summaries)
                    total.acknowledge += e.acknowledge
                    total.commands += e.commands
                    total.direct_replies += e.direct_replies
                    total.stored += e.stored
                    total.duplicates += e.duplicates
                    if e.summaries_stale:  # an update moved: later chunks read summaries again
                        total.summaries_stale = followed = True
                    chunk.clear()

            for item in items:
                if isinstance(item, IncomingMessage):
                    top = max(top, item.id)
                    chunk.append(item)
                    continue
                if item.get("type") == REACTION_EVENT:
                    # A health call on a prompt: no stored update changes, so no flush.
                    self._react(session, item, now)
                    continue
                flush()
                followed = True
                try:
                    self._follow(session, item)
                except MalformedMessage as exc:
                    kind, event_id = item.get("type"), item.get("id")
                    log.warning("skipping a malformed %s event %s: %s", kind, event_id, exc)
            flush()
            if top:
                self._set_high_water(session, top)
        return total

    def _react(self, session: Any, event: Mapping[str, Any], now: datetime) -> None:
        """Apply a reaction event in a savepoint; a malformed one is logged and skipped."""
        try:
            with session.begin_nested():
                if apply_reaction(session, event, now):
                    log.info(
                        "health reaction %s %s by user %s on message %s",
                        event.get("emoji_name"),
                        "removed" if event.get("op") == "remove" else "added",
                        event.get("user_id"),
                        event.get("message_id"),
                    )
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("skipping a malformed reaction event %s: %s", event.get("id"), exc)

    def _follow(self, session: Any, event: Mapping[str, Any]) -> None:
        """Apply an edit or delete in a savepoint, so a malformed one undoes only itself."""
        try:
            with session.begin_nested():
                if event.get("type") == "update_message":
                    apply_edit(session, self.setting, event, self.stream_names)
                else:
                    apply_delete(session, event)
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"{type(exc).__name__}: {exc}") from exc

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

        since = self.clock.now() - CATCH_UP_DAYS
        with self.db.read() as session:
            stored = [
                StoredMessage(message_id, edited_at, stream, topic, content)
                for message_id, edited_at, stream, topic, content in session.execute(
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
                        Update.source.in_(ZULIP_SOURCES),
                    )
                    .order_by(Update.zulip_message_id)
                )
                if message_id is not None
            ]
            prompts = recent_prompts(session, since)
            reacted = health_reactions_on(session, prompts)
        if not stored and not prompts:
            return
        wanted = {s.zulip_message_id for s in stored} | set(prompts)
        last = max(wanted)
        seen: dict[int, dict[str, Any]] = {}
        covered = 0
        for page in self.listener.messages_after(min(wanted) - 1):
            seen.update((int(m["id"]), m) for m in page if int(m["id"]) in wanted)
            covered = max(int(m["id"]) for m in page)
            if covered >= last or self.stop.is_set():
                break
        else:
            covered = last  # Zulip said these were the newest: nothing stored is beyond them
        missed = missed_reactions({mid: m for mid, m in seen.items() if mid in prompts}, reacted)
        if missed:
            log.info("caught up with %d health reactions made while away", len(missed))
            self.process_events(missed)
        if not stored:
            return
        found = reconcile(stored, seen, covered, max_deleted_share=CATCH_UP_MAX_DELETED_SHARE)
        if found.withheld:
            log.warning(
                "%d of %d recent updates are no longer visible on Zulip; not marking them "
                "deleted (is the bot still subscribed to #%s?): message ids %s",
                len(found.withheld),
                len(stored),
                self.setting.goals_stream.name,
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


def _message_id(event: Mapping[str, Any]) -> int:
    """The id of the message an event is about (0 when it names none), for the batch log line."""
    found = event.get("message_id")
    message = event.get("message")
    if found is None and isinstance(message, Mapping):
        found = message.get("id")
    return found if isinstance(found, int) and not isinstance(found, bool) else 0


def _item(event: Mapping[str, Any]) -> Item | None:
    """What a slice keeps of an event: a message as ``IncomingMessage``, an edit or delete as is;
    ``None`` (with a warning) for anything else."""
    kind = event.get("type")
    if kind in MESSAGE_CHANGE_EVENTS:
        return event
    if kind == REACTION_EVENT:  # only health emoji matter; the bot's own acks are most of them
        return event if is_health_reaction(event) else None
    if kind != "message":
        log.warning("skipping event %s of unknown type %r", event.get("id"), kind)
        return None
    try:
        return IncomingMessage.from_api(event.get("message") or {}, event.get("flags") or ())
    except MalformedMessage as exc:
        log.warning("skipping a malformed message event %s: %s", event.get("id"), exc)
        return None


def _item_id(item: Item) -> int:
    return item.id if isinstance(item, IncomingMessage) else _message_id(item)
