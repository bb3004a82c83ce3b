"""Sending: reactions and answers go out in order from one thread, so slow or rate-limited
sending never holds up storing what arrives."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from zulip_bots.lib import BotIdentity, BotStorage

from zulip_goals_bot.bot.zulip_io import ZulipIO
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import ACK_DONE, ACK_OWED, COMMAND_ANSWERED, HandledMessage
from zulip_goals_bot.errors import GoalsBotError, Stopping

log = logging.getLogger("zulip_goals_bot")

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


class ReplyCollector:
    """The bot-handler object the command handler answers through (zulip_bots' protocol).

    It only collects the reply parts: the sender thread sends them in order after the batch, and
    marks the command answered once the last part is out.
    """

    def __init__(self, bot_user_id: int, bot_name: str, bot_email: str) -> None:
        self.texts: list[str] = []
        self.user_id = bot_user_id
        self.email = bot_email
        self.full_name = bot_name

    def identity(self) -> BotIdentity:
        return BotIdentity(self.full_name, self.email)

    @property
    def storage(self) -> BotStorage:
        raise NotImplementedError("the goals bot keeps its state in its own database")

    def send_reply(
        self, message: dict[str, Any], response: str, widget_content: str | None = None
    ) -> dict[str, Any] | None:
        self.texts.append(response)
        return None

    def send_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError("commands answer with send_reply")

    def react(self, message: dict[str, Any], emoji_name: str) -> dict[str, Any]:
        raise NotImplementedError("commands answer with send_reply")

    def update_message(self, message: dict[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError("commands answer with send_reply")

    def get_config_info(self, bot_name: str, optional: bool = False) -> dict[str, str]:
        return {}

    def quit(self, message: str = "") -> None:
        raise NotImplementedError("the goals bot stops on SIGTERM")


def answered(db: Database, message_id: int) -> Callable[[], None]:
    """What to run once the last reply to a command is sent: its message stops waiting for an
    answer (a restart answers the commands still waiting)."""

    def mark() -> None:
        with db.write() as session:
            row = session.get(HandledMessage, message_id)
            if row is not None:
                row.outcome = COMMAND_ANSWERED

    return mark


@dataclass
class Outgoing:
    """One thing for the sender thread to do."""

    kind: str  # "react", "stream", "dm", or "flush" (nothing to send: only ``after``)
    args: tuple[Any, ...]
    after: Callable[[], None] | None = None


class SendQueue:
    """What the bot owes Zulip, in order; ``run`` is the sender thread.

    Reactions are recorded as done (``ACK_DONE``) once they are on Zulip, in batches.
    """

    def __init__(self, db: Database, sender: LockedSender, on_error: Callable[[], None]) -> None:
        self.db = db
        self.sender = sender
        self._on_error = on_error
        self._items: queue.Queue[Outgoing | None] = queue.Queue()

    def react(self, message_id: int, emoji_name: str) -> None:
        self._items.put(Outgoing("react", (message_id, emoji_name)))

    def stream(
        self, stream: str | None, topic: str | None, text: str, after: Callable[[], None] | None
    ) -> None:
        self._items.put(Outgoing("stream", (stream, topic, text), after=after))

    def dm(
        self, user_ids: Sequence[int], text: str, after: Callable[[], None] | None = None
    ) -> None:
        self._items.put(Outgoing("dm", (list(user_ids), text), after=after))

    def empty(self) -> bool:
        return self._items.empty()

    def drain(self) -> list[Outgoing]:
        """Take everything queued without sending it (for a bot run in process, without Zulip)."""
        out = []
        while not self._items.empty():
            item = self._items.get_nowait()
            if item is not None:
                out.append(item)
        return out

    def close(self) -> None:
        """Let ``run`` return once what is queued before this is handled."""
        self._items.put(None)

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued for sending so far (reactions, answers) has been sent."""
        done = threading.Event()
        self._items.put(Outgoing("flush", (), after=done.set))
        return done.wait(timeout)

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

    def run(self) -> None:
        acked: list[int] = []
        left = 0  # items not sent because the bot is stopping
        while True:
            if acked and (len(acked) >= ACK_MARK_BATCH or self._items.empty()):
                self._mark_acked(acked)
            item = self._items.get()
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
                self._on_error()
            except Exception:
                log.exception("sender crashed on %s", item.kind)
                self._on_error()
