"""What the sandbox shows: Zulip messages and reactions as terminal lines (pure rendering), and
the ``Console`` and ``Watcher`` that print them as they arrive."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from zulip_goals_bot.sandbox.lines import Member
from zulip_goals_bot.sandbox.timing import format_time

if TYPE_CHECKING:
    from fakezulip import FakeZulip

log = logging.getLogger(__name__)

# Continuation lines of a multi-line message are indented by this much.
INDENT = "    "
# How often the watcher thread looks for new messages and reactions.
WATCH_INTERVAL = 0.1

_MENTION = re.compile(r"@_?\*\*([^*|\n]+?)(?:\|\d+)?\*\*")
_GROUP_MENTION = re.compile(r"@_?\*([^*\n]+)\*")
_TOPIC_LINK = re.compile(r"#\*\*([^*>\n]+)>([^*\n]+)\*\*")
_STREAM_LINK = re.compile(r"#\*\*([^*\n]+)\*\*")
_TIME = re.compile(r"<time:([^>\s]+)>")
_LINK = re.compile(r"\[([^\]\n]+)\]\((?:https?://|/|#narrow/)[^)\s]*\)")
_ZWSP = "\u200b"


def _time_text(m: re.Match[str]) -> str:
    try:
        return format_time(datetime.fromisoformat(m.group(1).replace("Z", "+00:00")))
    except ValueError:
        return m.group(0)


def plain_text(content: str) -> str:
    """Zulip Markdown as a terminal shows it: mentions as ``@Name``, topic links as
    ``#stream > topic``, ``<time:…>`` in UTC, links as their text; the rest unchanged.

    Mentions the bot broke on purpose (``@`` + zero-width space) stay visibly not-mentions.
    """
    text = _MENTION.sub(lambda m: "@" + m.group(1), content)
    text = _GROUP_MENTION.sub(lambda m: "@" + m.group(1), text)
    text = _TOPIC_LINK.sub(lambda m: f"#{m.group(1)} > {m.group(2)}", text)
    text = _STREAM_LINK.sub(lambda m: f"#{m.group(1)}", text)
    text = _TIME.sub(_time_text, text)
    text = _LINK.sub(lambda m: m.group(1), text)
    return text.replace(_ZWSP, "")


def message_header(message: Mapping[str, Any]) -> str:
    """``[#stream > topic] Sender:`` or ``[DM Sender -> Recipient]``."""
    sender = str(message.get("sender_full_name", "?"))
    recipient = message.get("display_recipient")
    if message.get("type") == "stream":
        return f"[#{recipient} > {message.get('subject', '')}] {sender}:"
    others = [
        str(r.get("full_name", "?"))
        for r in (recipient if isinstance(recipient, list) else [])
        if r.get("id") != message.get("sender_id")
    ]
    return f"[DM {sender} -> {', '.join(others) or sender}]"


def render_message(message: Mapping[str, Any]) -> str:
    """One message for the terminal: the header, then the text (indented when it has lines)."""
    lines = plain_text(str(message.get("content", ""))).splitlines() or [""]
    head = message_header(message)
    if len(lines) == 1:
        return f"{head} {lines[0]}"
    return head + "\n" + "\n".join(INDENT + line if line.strip() else "" for line in lines)


def render_reaction(reactor: str, emoji: str, author: str, ack_emoji: str) -> str:
    mark = "✓" if emoji == ack_emoji else "•"
    return f"  {mark} {reactor} reacted :{emoji}: to {author}'s message"


def render_people(people: Sequence[Member], me: int, stream: str) -> str:
    """``/who``: one line per person, you marked with ``*``."""
    width = max((len(p.full_name) for p in people), default=0)
    email_width = max((len(p.email) for p in people), default=0)
    tz_width = max((len(p.timezone or "-") for p in people), default=0)
    lines = []
    for p in people:
        notes = []
        if p.is_bot:
            notes.append("the bot")
        if p.is_admin:
            notes.append("admin")
        if p.github:
            notes.append(f"GitHub @{p.github}")
        if not p.in_goals_stream:
            notes.append(f"not in #{stream}: gets DMs")
        mark = "*" if p.user_id == me else " "
        lines.append(
            f"  {mark} {p.full_name:<{width}}  {p.email:<{email_width}}  "
            f"{p.timezone or '-':<{tz_width}}  {', '.join(notes)}".rstrip()
        )
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class GoalRow:
    """A goal as ``/goals`` lists it."""

    slug: str
    topic: str
    owners: str
    state: str


def render_goals(rows: Sequence[GoalRow]) -> str:
    if not rows:
        return "  No active goals."
    header = GoalRow("goal", "topic", "owners", "state")
    table = [header, *rows]
    widths = [max(len(getattr(r, f)) for r in table) for f in ("slug", "topic", "owners")]
    return "\n".join(
        f"  {r.slug:<{widths[0]}}  {r.topic:<{widths[1]}}  {r.owners:<{widths[2]}}  {r.state}"
        for r in table
    )


class Console:
    """Serializes printing between the main thread and the watcher."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.RLock()
        self.shown_time: int | None = None

    def say(self, text: str) -> None:
        with self.lock:
            self.out.write(text + "\n")
            self.out.flush()

    def note(self, text: str) -> None:
        """Something the sandbox (not Zulip) says."""
        self.say("\n".join(f"  · {line}" if line else "" for line in text.splitlines()))

    def at(self, timestamp: int) -> None:
        """Print a time line before output from a new moment of the clock."""
        with self.lock:
            if timestamp != self.shown_time:
                self.shown_time = timestamp
                self.say(f"  — {format_time(datetime.fromtimestamp(timestamp, UTC))} —")


class Watcher:
    """Prints new messages and reactions from the emulator's store, in message order."""

    def __init__(self, server: FakeZulip, console: Console, ack_emoji: str) -> None:
        self.server = server
        self.console = console
        self.ack_emoji = ack_emoji
        self._seen: set[int] = set()
        self._reactions: dict[int, set[tuple[int, str]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sandbox-watcher", daemon=True)

    def skip_existing(self) -> None:
        """Messages stored before the session (none, unless restarted) are not shown again."""
        for m in self.server.messages:
            self._seen.add(int(m["id"]))
            self._reactions[int(m["id"])] = {
                (int(r["user_id"]), str(r["emoji_name"])) for r in m.get("reactions", [])
            }

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _loop(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            try:
                self.poll()
            except Exception:  # the emulator is stopping; the main thread reports problems
                log.debug("watcher poll failed", exc_info=True)

    def poll(self) -> None:
        with self._lock, self.console.lock:
            for m in self.server.messages:
                mid = int(m["id"])
                if mid not in self._seen:
                    self._seen.add(mid)
                    self.console.at(int(m["timestamp"]))
                    self.console.say(render_message(m))
                seen = self._reactions.setdefault(mid, set())
                for r in m.get("reactions", []):
                    key = (int(r["user_id"]), str(r["emoji_name"]))
                    if key not in seen:
                        seen.add(key)
                        reactor = str(r.get("user", {}).get("full_name", "?"))
                        author = str(m.get("sender_full_name", "?"))
                        self.console.say(render_reaction(reactor, key[1], author, self.ack_emoji))
