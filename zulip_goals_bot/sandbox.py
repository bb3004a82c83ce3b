"""``zulip-goals-bot sandbox``: the real bot against an embedded Zulip, driven from the terminal.

Nothing is faked on the bot's side: the emulator (``fakezulip``) serves a small organisation on
localhost, the goals are imported with the same code as ``goals import``, and ``GoalsBot`` runs
its event loop and sender threads against the emulator's URL with a real ``ZulipIO``.  The only
thing the sandbox owns is time: the bot, the database and the emulator share one ``FrozenClock``
that moves when you say ``/advance``, and the sandbox then ticks the bot's scheduler itself, once
per hour of skipped time, so a week of prompts, reminders and digests plays in seconds.

The pure helpers (parsing commands and durations, matching names, rendering messages for a
terminal) come first; the ``Sandbox`` class and ``sandbox_command`` are the shell around them.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .errors import GoalsBotError
from .markdown import plural

if TYPE_CHECKING:
    from .app import GoalsBot
    from .clock import FrozenClock
    from .config import Config
    from .db import Database
    from .fakezulip import FakeZulip, Realm, User
    from .importreport import ImportReport
    from .website.serve import Preview

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_goals"
# `--script demo` runs this shipped script (a week of the program in about a minute of reading).
DEMO_WORD = "demo"
DEMO_SCRIPT = SAMPLE_DIR / "demo-week.txt"
# The demo's default start: a Monday morning, three days before the weekly prompt, so that its
# transcript is the same on every run.
DEMO_START = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
# The period name the sample goals are imported into (a folder name would say "sample_goals").
SAMPLE_PERIOD = "sample"
# The custom profile field through which the demo users' GitHub handles map them to goal owners.
GITHUB_FIELD = "GitHub"
# The demo realm's people and the GitHub handles the sample goal files name them by.
DEMO_HANDLES: Mapping[str, str] = {
    "Ada Admin": "ada-admin",
    "Ben Owner": "ben-owner",
    "Chloé Owner": "chloe-owner",
    "Dev Owner": "dev-owner",
    "Eve Lead": "eve-lead",
}
# Who you are when the sandbox starts: the person running the program (and a bot admin).
LEAD_NAME = "Eve Lead"
# Owners named in --goals files who are not demo users get an account of their own here.
EXTRA_EMAIL_DOMAIN = "example.com"
# The scheduler interval handed to the bot, with no wake-ups of its own: the sandbox ticks it
# after every clock move, and the clock moves only then, so a timer would find nothing new to do.
TICK_SECONDS = 24 * 3600.0
# Skipped time is replayed in steps of this size (every schedule the sandbox uses is on the hour),
# so a prompt, a DM at an owner's local hour or a reminder goes out at its own time.
TICK_STEP = timedelta(hours=1)
# `/advance` refuses more than this: replaying months hour by hour is slow and rarely meant.
MAX_ADVANCE = timedelta(weeks=12)
# How long to wait for the bot to store, answer and acknowledge what was just sent.
SETTLE_SECONDS = 15.0
# How long start-up waits for the bot's first event queue and backfill.
READY_SECONDS = 20.0
# How often the watcher thread looks for new messages and reactions.
WATCH_INTERVAL = 0.1
# Continuation lines of a multi-line message are indented by this much.
INDENT = "    "
# Kept in bot_state with --database, so that a later session resumes the clock where it stopped.
CLOCK_KEY = "sandbox_clock"


# ---------------------------------------------------------------------------------------------
# Pure helpers


def format_time(when: datetime) -> str:
    """``Thu 2025-03-06 14:00 UTC``: the clock as the sandbox prints it everywhere."""
    return when.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M UTC")


def format_delta(delta: timedelta) -> str:
    """``3d 4h``, ``30m``: a forward move of the clock, compactly."""
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (mins, "m")) if n]
    return " ".join(parts) or "0m"


_DURATION = re.compile(r"(\d+)\s*([wdhm])")
_UNITS = {"w": timedelta(weeks=1), "d": timedelta(days=1), "h": timedelta(hours=1)}


def parse_duration(text: str) -> timedelta:
    """``3d``, ``12h``, ``30m``, ``1w`` or combinations like ``1d12h``; ValueError otherwise."""
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise ValueError("the duration is missing")
    total = timedelta()
    pos = 0
    for m in _DURATION.finditer(compact):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _UNITS.get(m.group(2), timedelta(minutes=1))
        pos = m.end()
    if pos != len(compact):
        raise ValueError(f"{text.strip()!r} is not a duration")
    return total


def parse_start(text: str | None, now: datetime) -> datetime:
    """``--start``: an ISO 8601 date or date-time (UTC unless it says otherwise), else ``now``.

    Seconds are dropped, so that every time the sandbox prints is a whole minute.
    """
    if text is None:
        when = now
    else:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError as exc:
            raise GoalsBotError(
                f"--start {text!r} is not a date-time like 2025-03-03T10:00 (ISO 8601, UTC "
                "unless it has an offset)"
            ) from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(second=0, microsecond=0)


def hour_steps(start: datetime, end: datetime, step: timedelta = TICK_STEP) -> list[datetime]:
    """The instants to tick at when the clock moves from ``start`` to ``end``: every whole
    ``step`` boundary after ``start``, then ``end`` itself."""
    seconds = int(step.total_seconds())
    first = datetime.fromtimestamp((int(start.timestamp()) // seconds + 1) * seconds, UTC)
    out = []
    t = first
    while t < end:
        out.append(t)
        t += step
    out.append(end)
    return out


def fold(text: str) -> str:
    """Lower case without accents, for matching names people type (``chloe`` finds Chloé)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()


@dataclass(frozen=True, slots=True)
class Member:
    """A realm user as the sandbox lists and matches them."""

    user_id: int
    full_name: str
    email: str
    timezone: str
    is_admin: bool = False
    is_bot: bool = False
    github: str | None = None
    in_goals_stream: bool = True


@dataclass(frozen=True, slots=True)
class UserMatch:
    """The people a typed name could mean: one is an answer, several or none a question."""

    query: str
    found: tuple[Member, ...]

    @property
    def person(self) -> Member | None:
        return self.found[0] if len(self.found) == 1 else None

    def problem(self) -> str:
        if not self.found:
            return f"Nobody is called {self.query!r}; /who lists the people."
        names = ", ".join(p.full_name for p in self.found)
        return f"{self.query!r} could be {names}; type more of the name."


def match_person(query: str, people: Sequence[Member]) -> UserMatch:
    """Exact name, email or GitHub handle first; then a prefix of the name or of one of its words.

    Bots are never matched: the sandbox is for acting as people.
    """
    key = fold(query).lstrip("@")
    humans = [p for p in people if not p.is_bot]
    if not key:
        return UserMatch(query, ())
    exact = [
        p
        for p in humans
        if key in (fold(p.full_name), fold(p.email), fold(p.email.split("@")[0]), p.github)
    ]
    if exact:
        return UserMatch(query, tuple(exact))
    prefix = [
        p
        for p in humans
        if fold(p.full_name).startswith(key)
        or any(word.startswith(key) for word in fold(p.full_name).split())
        or (p.github or "").startswith(key)
    ]
    return UserMatch(query, tuple(prefix))


@dataclass(frozen=True, slots=True)
class Place:
    """Where plain lines go: a stream topic, or a DM with the bot."""

    stream: str | None = None
    topic: str | None = None

    @property
    def is_dm(self) -> bool:
        return self.stream is None

    def describe(self, bot_name: str) -> str:
        if self.stream is None or self.topic is None:
            return f"DM with {bot_name}"
        return f"#{self.stream} > {self.topic}"


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


def message_text(line: str, bot_name: str) -> str:
    """What a typed line posts: ``\\n`` starts a new line, a leading ``@bot`` mentions the bot."""
    text = line.strip().replace("\\n", "\n")
    return re.sub(r"^@bot\b", lambda _m: f"@**{bot_name}**", text, flags=re.I)


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


HELP = """\
Type a line to post it where you are (see the prompt); commands start with a slash:
  /as NAME           act as someone (a prefix of the name is enough: /as ben)
  /topic GOAL        post in a goal's topic in the goals stream (or /topic STREAM > TOPIC)
  /dm                post as direct messages to the bot (questions like `status trait errors`)
  /say TEXT          post TEXT (for text starting with / or #); in any text \\n starts a new line
  /who               the people, their timezones and GitHub handles
  /goals             the goals, their topics, owners and due state
  /advance DURATION  move the clock (3d, 12h, 30m, 1w, 1d12h) and let the bot catch up;
                     /advance prompt or /advance digest jumps to the next prompt or digest time
  /prompt            send the prompts and reminders due now (like `zulip-goals-bot prompt`)
  /digest            post the digest now (like `zulip-goals-bot digest`)
  /time              the clock and the next scheduled times
  /site [FOLDER]     build the goals website (into FOLDER to keep it) and serve it locally
  /help              this text
  /quit              stop (Ctrl-D and Ctrl-C too)
In a stream, start a line with @bot to address the bot (`@bot status`)."""


class Outcome(enum.Enum):
    """What running one line did, for the script's exit status."""

    DONE = "done"
    REFUSED = "refused"  # bad input: explained, nothing changed
    QUIT = "quit"


@dataclass(frozen=True, slots=True)
class Line:
    """One input line: a ``/command`` with its argument, or text to post."""

    command: str | None
    argument: str

    @classmethod
    def parse(cls, text: str) -> Line:
        stripped = text.strip()
        if stripped.startswith("/"):
            word, _, rest = stripped[1:].partition(" ")
            return cls(word.lower(), rest.strip())
        return cls(None, stripped)


def script_lines(lines: Iterable[str]) -> Iterator[str]:
    """The lines of a script that are commands: no blank lines, no ``#`` comments."""
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line.strip() and not line.lstrip().startswith("#"):
            yield line


# ---------------------------------------------------------------------------------------------
# The shell


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


def sandbox_config(zuliprc: Path, database_url: str, lead_email: str) -> Config:
    """The bot's configuration in the sandbox: weekly prompts and no grace days, so that one
    simulated week shows a prompt, a reminder and a digest; the lead is a bot admin."""
    from .config import Config, ScheduleConfig

    return Config(
        path=None,
        zuliprc=zuliprc,
        database_url=database_url,
        admins=frozenset({lead_email.lower()}),
        github_profile_field=GITHUB_FIELD,
        schedule=ScheduleConfig(cadence_weeks=1, grace_days=0),
        log_level="WARNING",
    )


def build_realm(extra_handles: Iterable[str]) -> Realm:
    """The demo organisation with a GitHub profile field, plus one account per extra handle."""
    from .fakezulip import FIELD_EXTERNAL_ACCOUNT, Realm

    realm = Realm.demo()
    field = realm.add_profile_field(
        GITHUB_FIELD, FIELD_EXTERNAL_ACCOUNT, field_data='{"subtype":"github"}'
    )
    for name, handle in DEMO_HANDLES.items():
        user = realm.user_by_name(name)
        if user is not None:
            realm.set_profile_value(user, field, handle)
    known = set(DEMO_HANDLES.values())
    for handle in sorted(set(extra_handles) - known):
        user = realm.add_user(handle, f"{handle}@{EXTRA_EMAIL_DOMAIN}", timezone="UTC")
        realm.set_profile_value(user, field, handle)
        for stream in list(realm.streams.values()):
            realm.subscribe(user, stream.name)
    return realm


def owner_handles(path: Path) -> list[str]:
    """Every GitHub handle the goal files at ``path`` name as an owner."""
    from .goalfiles import read_goal_files
    from .importplan import owner_specs

    docs, _problems = read_goal_files([path])
    return sorted({spec.github for _file, doc in docs for spec in owner_specs(doc)})


def import_summary(report: ImportReport, source: str) -> str:
    """What the import did, in a few lines (``goals import`` prints the long form)."""
    counts = ", ".join(f"{n} {k}" for k, n in report.counts.items() if n)
    lines = [f"Imported {source}: {counts or 'nothing to do'}."]
    lines += [f"  {n.render()}" for n in report.problems]
    if report.unmapped:
        handles = ", ".join(f"@{h}" for h in report.unmapped)
        lines.append(f"Owners without a Zulip account (never prompted): {handles}.")
    return "\n".join(lines)


class Sandbox:
    """A running emulator and bot, and the person at the keyboard."""

    def __init__(
        self,
        *,
        server: FakeZulip,
        bot: GoalsBot,
        clock: FrozenClock,
        db: Database,
        console: Console,
        workdir: Path | None = None,
    ) -> None:
        self.server = server
        self.workdir = workdir
        self.bot = bot
        self.clock = clock
        self.db = db
        self.console = console
        self.config = bot.config
        lead = server.realm.user_by_name(LEAD_NAME)
        assert lead is not None  # Realm.demo() has the lead
        self.me: int = lead.user_id
        self.place = Place()
        self.watcher = Watcher(server, console, self.config.ack_emoji)
        self._thread = threading.Thread(target=self._run_bot, name="sandbox-bot", daemon=True)
        self.crashed: BaseException | None = None
        self.preview: Preview | None = None

    # -- life cycle ------------------------------------------------------------------------------

    def _run_bot(self) -> None:
        try:
            self.bot.run(tick_seconds=TICK_SECONDS, wake_ups=False)
        except BaseException as exc:  # reported by the main thread
            self.crashed = exc
            self.bot.ready.set()

    def start(self) -> None:
        self.watcher.skip_existing()
        self._thread.start()
        if not self.bot.ready.wait(READY_SECONDS) or self.crashed is not None:
            raise GoalsBotError(f"the bot did not start: {self.crashed or 'timed out'}")
        self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()
        if self.preview is not None:
            self.preview.stop()
        self.bot.stop.set()
        self._thread.join(timeout=5.0)

    # -- who and where ---------------------------------------------------------------------------

    def people(self) -> list[Member]:
        realm = self.server.realm
        stream = realm.stream_by_name(self.config.stream)
        members = stream.subscribers if stream is not None else set()
        field = next(
            (f.field_id for f in realm.profile_fields.values() if f.name == GITHUB_FIELD), None
        )
        return [
            Member(
                user_id=u.user_id,
                full_name=u.full_name,
                email=u.email,
                timezone=u.timezone,
                is_admin=u.is_admin or u.email.lower() in self.config.admins,
                is_bot=u.is_bot,
                github=u.profile_data.get(field) if field is not None else None,
                in_goals_stream=u.user_id in members,
            )
            for u in self.server.iter_users()
        ]

    def _user(self, user_id: int) -> User:
        user = self.server.realm.user_by_id(user_id)
        assert user is not None
        return user

    @property
    def prompt(self) -> str:
        return f"{self._user(self.me).full_name} in {self.place.describe(self.bot.bot_name)}> "

    # -- waiting for the bot -------------------------------------------------------------------

    def _bot_listening(self) -> bool:
        """The bot has taken every event from its queue and is long-polling for more."""
        state = self.server.state
        with state.cond:
            queues = [state.queues.get(q) for q in self.server.queues_of(self.bot.bot_user_id)]
            live = [q for q in queues if q is not None]
            return bool(live) and all(q.waiting > 0 and not q.events for q in live)

    def _sender_flushed(self, timeout: float) -> bool:
        """Everything the bot queued for sending (reactions, answers) has been sent."""
        return self.bot.flush_sender(timeout)

    def settle(self) -> bool:
        """Wait until the bot has stored, answered and acknowledged everything so far."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.server.wait_for(self._bot_listening, timeout=left):
                return False
            if not self._sender_flushed(max(deadline - time.monotonic(), 0.01)):
                return False
            # Sending made new events (the bot's own messages and reactions): one more round.
            if self._bot_listening() and self.bot.outgoing.empty():
                return True

    def show(self) -> None:
        if not self.settle():
            self.console.note("The bot is still busy; its answers will show up as they arrive.")
        self.watcher.poll()

    # -- commands --------------------------------------------------------------------------------

    def run_line(self, text: str) -> Outcome:
        line = Line.parse(text)
        if line.command is None:
            return self.post(line.argument) if line.argument else Outcome.DONE
        handler = self._commands().get(line.command)
        if handler is None:
            self.console.note(f"Unknown command /{line.command}; /help lists the commands.")
            return Outcome.REFUSED
        return handler(line.argument)

    def _commands(self) -> dict[str, Callable[[str], Outcome]]:
        return {
            "as": self.cmd_as,
            "topic": self.cmd_topic,
            "dm": self.cmd_dm,
            "say": self.cmd_say,
            "who": self.cmd_who,
            "goals": self.cmd_goals,
            "advance": self.cmd_advance,
            "prompt": self.cmd_prompt,
            "digest": self.cmd_digest,
            "time": self.cmd_time,
            "site": self.cmd_site,
            "help": self.cmd_help,
            "quit": self.cmd_quit,
            "exit": self.cmd_quit,
        }

    def post(self, text: str) -> Outcome:
        from .fakezulip import ApiError

        content = message_text(text, self.bot.bot_name)
        try:
            if self.place.stream is not None and self.place.topic is not None:
                self.server.send_stream_message(
                    self.me, self.place.stream, self.place.topic, content
                )
            else:
                self.server.send_direct_message(self.me, [self.bot.bot_user_id], content)
        except ApiError as exc:
            self.console.note(f"Zulip refused the message: {exc}")
            return Outcome.REFUSED
        self.show()
        return Outcome.DONE

    def cmd_say(self, arg: str) -> Outcome:
        if not arg:
            self.console.note("Usage: /say TEXT")
            return Outcome.REFUSED
        return self.post(arg)

    def cmd_as(self, arg: str) -> Outcome:
        match = match_person(arg, self.people())
        if match.person is None:
            self.console.note(match.problem() if arg else "Usage: /as NAME (see /who)")
            return Outcome.REFUSED
        self.me = match.person.user_id
        self.console.note(f"You are {match.person.full_name}, in {self._where()}.")
        return Outcome.DONE

    def _where(self) -> str:
        return self.place.describe(self.bot.bot_name)

    def cmd_dm(self, arg: str) -> Outcome:
        self.place = Place()
        self.console.note(f"Lines go to the {self._where()}.")
        return Outcome.DONE

    def cmd_topic(self, arg: str) -> Outcome:
        from .matching import MatchKind, match_goal
        from .queries import goal_names

        if not arg:
            self.console.note(
                "Usage: /topic GOAL (a name, slug or #issue) or /topic STREAM > TOPIC"
            )
            return Outcome.REFUSED
        if ">" in arg:
            stream_name, _, topic = (part.strip() for part in arg.partition(">"))
            stream = self.server.realm.stream_by_name(stream_name.lstrip("#"))
            if stream is None or not topic:
                names = ", ".join(f"#{s.name}" for s in self.server.realm.streams.values())
                self.console.note(f"Usage: /topic STREAM > TOPIC, with a stream among {names}.")
                return Outcome.REFUSED
            self.place = Place(stream.name, topic)
        else:
            with self.db.read() as session:
                result = match_goal(arg, goal_names(session))
            if result.kind is MatchKind.AMBIGUOUS:
                self.console.note(plain_text(result.message()))
                return Outcome.REFUSED
            if result.kind is MatchKind.FOUND and result.goal is not None:
                self.place = Place(self.config.stream, result.goal.zulip_topic)
            else:
                self.place = Place(self.config.stream, arg)
                self.console.note(f"No goal matches {arg!r}: this is a topic of its own.")
        self.console.note(f"Lines go to {self._where()}.")
        return Outcome.DONE

    def cmd_who(self, arg: str) -> Outcome:
        self.console.say(render_people(self.people(), self.me, self.config.stream))
        return Outcome.DONE

    def cmd_goals(self, arg: str) -> Outcome:
        from .queries import load_goals

        now = self.clock.now()
        program = self.bot.ctx.program
        with self.db.read() as session:
            goals = load_goals(session)
        rows = [
            GoalRow(
                g.slug,
                g.zulip_topic,
                ", ".join(p.display for p in g.poc) or "-",
                program.state(g, now).value,
            )
            for g in sorted(goals, key=lambda g: g.slug)
        ]
        self.console.say(render_goals(rows))
        return Outcome.DONE

    def _next_prompt(self) -> datetime:
        from .schedule import next_prompt

        return next_prompt(self.clock.now(), self.config.schedule.cadence_weeks, self.bot.ctx.slot)

    def _next_digest(self) -> datetime:
        from .digest_delivery import digest_period

        return digest_period(self.bot.ctx, self.clock.now()).end

    def cmd_time(self, arg: str) -> Outcome:
        self.console.note(
            f"It is {format_time(self.clock.now())}. Next prompt time: "
            f"{format_time(self._next_prompt())}; next digest: {format_time(self._next_digest())}."
        )
        return Outcome.DONE

    def cmd_advance(self, arg: str) -> Outcome:
        now = self.clock.now()
        word = arg.strip().lower()
        try:
            if word == "prompt":
                target = self._next_prompt()
            elif word == "digest":
                target = self._next_digest()
            else:
                target = now + parse_duration(arg)
        except ValueError as exc:
            self.console.note(f"{exc}; try /advance 3d, 12h, 30m, 1w, 1d12h, prompt or digest.")
            return Outcome.REFUSED
        if target <= now:
            self.console.note("The clock only moves forward; try /advance 1h.")
            return Outcome.REFUSED
        if target - now > MAX_ADVANCE:
            self.console.note(f"At most {MAX_ADVANCE.days // 7} weeks at a time, please.")
            return Outcome.REFUSED
        self.console.note(f"Clock: {format_time(target)} (+{format_delta(target - now)}).")
        self.console.shown_time = int(target.timestamp())
        for instant in hour_steps(now, target):
            self.clock.set(instant)
            self.bot.tick()
        self.show()
        return Outcome.DONE

    def cmd_prompt(self, arg: str) -> Outcome:
        from .prompts import send_due

        subscribers = frozenset(self.bot.sender.stream_subscribers(self.config.stream))
        report = send_due(self.bot.ctx, self.bot.sender, subscribers)
        self.show()
        if report.planned:
            self.console.note(report.render())
        else:
            self.console.note(
                f"Nothing is due now. The next prompt time is {format_time(self._next_prompt())}"
                " (/advance prompt goes there)."
            )
        return Outcome.DONE

    def cmd_digest(self, arg: str) -> Outcome:
        from .digest_delivery import send_digest

        report = send_digest(self.bot.ctx, self.bot.sender, force=True)
        self.show()
        self.console.note(report.render())
        return Outcome.DONE

    def cmd_site(self, arg: str) -> Outcome:
        """Build the goals website from the sandbox's database and serve it on localhost."""
        from .website.build import build_site, site_settings
        from .website.serve import Preview

        if arg:
            folder = Path(arg).expanduser()
        elif self.workdir is not None:
            folder = self.workdir / "site"
        else:
            self.console.note("Usage: /site FOLDER")
            return Outcome.REFUSED
        settings = site_settings(self.config, self.server.base_url)
        try:
            report = build_site(self.db, settings, folder, self.clock.now())
            if self.preview is None or self.preview.directory != folder:
                if self.preview is not None:
                    self.preview.stop()
                self.preview = Preview(folder, 0).start()
        except GoalsBotError as exc:
            self.console.note(f"No site: {exc}")
            return Outcome.REFUSED
        self.console.note(
            f"Built the goals site of {report.period}: {plural(report.goals, 'goal')}, "
            f"{plural(report.updates, 'update')}, in {folder}.\n"
            f"Open {self.preview.url} (served until /quit)."
        )
        return Outcome.DONE

    def cmd_help(self, arg: str) -> Outcome:
        self.console.say(HELP)
        return Outcome.DONE

    def cmd_quit(self, arg: str) -> Outcome:
        return Outcome.QUIT

    # -- sessions --------------------------------------------------------------------------------

    def run_script(self, lines: Iterable[str]) -> int:
        """Run each command, echoed as ``> line``; 1 if any was refused, else 0."""
        refused = False
        for line in script_lines(lines):
            self.console.say(f"> {line}")
            outcome = self.run_line(line)
            if outcome is Outcome.QUIT:
                break
            refused = refused or outcome is Outcome.REFUSED
        return 1 if refused else 0

    def run_interactive(self, read: Callable[[str], str] = input) -> int:
        while True:
            try:
                text = read(self.prompt)
            except EOFError:
                self.console.say("")
                return 0
            if self.run_line(text) is Outcome.QUIT:
                return 0


# ---------------------------------------------------------------------------------------------
# Start-up and shutdown


def _resolve_script(script: str | None) -> Path | None:
    if script is None or script == "-":
        return None
    if script == DEMO_WORD:
        return DEMO_SCRIPT
    path = Path(script)
    if not path.is_file():
        raise GoalsBotError(
            f"--script {script}: no such file (give a file of commands, '-' for stdin, or "
            f"'{DEMO_WORD}' for the shipped demo)"
        )
    return path


def _max_message_id(db: Database) -> int:
    from sqlalchemy import func, select

    from .models import HandledMessage, Update

    with db.read() as session:
        handled = session.execute(select(func.max(HandledMessage.zulip_message_id))).scalar()
        stored = session.execute(select(func.max(Update.zulip_message_id))).scalar()
    return max(int(handled or 0), int(stored or 0))


def _saved_clock(db: Database) -> datetime | None:
    from .models import BotState

    with db.read() as session:
        row = session.get(BotState, CLOCK_KEY)
        return datetime.fromisoformat(row.value) if row is not None else None


def _save_clock(db: Database, clock: FrozenClock) -> None:
    from .models import BotState

    now = clock.now()
    with db.write() as session:
        row = session.get(BotState, CLOCK_KEY)
        if row is None:
            session.add(BotState(key=CLOCK_KEY, value=now.isoformat(), updated_at=now))
        else:
            row.value = now.isoformat()
            row.updated_at = now


@contextlib.contextmanager
def _signals_to_main_thread() -> Iterator[None]:
    """Threads started inside ignore Ctrl-C and SIGTERM (they inherit the blocked mask), so the
    signal always reaches the main thread: one taken by another thread would not interrupt the
    main thread's read of the terminal or the script, and Ctrl-C would seem to do nothing."""
    if not hasattr(signal, "pthread_sigmask"):  # not on Windows
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  ! %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def _banner(sandbox: Sandbox, summary: str) -> str:
    from .config import WEEKDAYS

    sched = sandbox.config.schedule
    digest = sandbox.config.digest
    return "\n".join(
        [
            f"Zulip goals bot sandbox: the real bot against an emulated Zulip at "
            f"{sandbox.server.base_url}.",
            f"Clock: {format_time(sandbox.clock.now())}; it moves only with /advance.",
            f"Schedule: prompts every {WEEKDAYS[sched.weekday].capitalize()} at "
            f"{sched.at:%H:%M} {sandbox.config.timezone.key}, a reminder {sched.reminder_days} "
            f"days later, the digest every {WEEKDAYS[digest.weekday].capitalize()} at "
            f"{digest.at:%H:%M} {digest.timezone.key}.",
            summary,
            f"You are {sandbox._user(sandbox.me).full_name}, in {sandbox._where()}. "
            "/help lists the commands.",
        ]
    )


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """The bot's connections fail noisily while the emulator stops; that is expected."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def sandbox_command(
    goals: Path | None, database: Path | None, script: str | None, start: str | None
) -> int:
    """``zulip-goals-bot sandbox``: returns the exit status (130 after Ctrl-C)."""
    from .app import GoalsBot
    from .clock import FrozenClock
    from .db import Database
    from .fakezulip import FakeZulip
    from .goalsimport import import_goals
    from .zulip_io import ZulipIO

    script_path = _resolve_script(script)
    source = goals if goals is not None else SAMPLE_DIR
    if not source.exists():
        raise GoalsBotError(f"--goals {source}: no such file or folder")
    _setup_logging()
    console = Console(sys.stdout)
    workdir = Path(tempfile.mkdtemp(prefix="zulip-goals-sandbox-"))
    db_path = database if database is not None else workdir / "sandbox.sqlite3"
    database_url = f"sqlite:///{db_path}"
    db = Database(database_url)
    server: FakeZulip | None = None
    sandbox: Sandbox | None = None
    try:
        db.upgrade()
        saved = _saved_clock(db) if database is not None and start is None else None
        default = DEMO_START if script == DEMO_WORD else datetime.now(UTC)
        clock = FrozenClock(saved or parse_start(start, default))
        realm = build_realm(owner_handles(source) if goals is not None else ())
        with _signals_to_main_thread():
            server = FakeZulip(realm, clock=clock.timestamp).start()
            with server.state.cond:  # ids already in a kept database must not be handed out again
                server.state.next_message_id = max(
                    server.state.next_message_id, _max_message_id(db) + 1
                )
            bot_user = realm.user_by_email("goals-bot@example.com")
            lead = realm.user_by_name(LEAD_NAME)
            assert bot_user is not None and lead is not None
            zuliprc = server.write_zuliprc(workdir / "zuliprc", bot_user)
            config = sandbox_config(zuliprc, database_url, lead.email)
            listener = ZulipIO(zuliprc)
            report = import_goals(
                db,
                [source],
                now=clock.now(),
                period=SAMPLE_PERIOD if goals is None else None,
                active_statuses=config.active_statuses,
                members=listener.users(),
                profile_fields=listener.profile_fields(),
                profile_field_name=GITHUB_FIELD,
            )
            summary = import_summary(
                report, "the sample goals" if goals is None else f"the goals in {source}"
            )
            bot = GoalsBot(config, db, listener, ZulipIO(zuliprc), clock)
            sandbox = Sandbox(
                server=server, bot=bot, clock=clock, db=db, console=console, workdir=workdir
            )
            sandbox.start()
        console.say(_banner(sandbox, summary))
        console.shown_time = int(clock.now().timestamp())
        if script_path is not None:
            with script_path.open(encoding="utf-8") as fh:
                return sandbox.run_script(fh)
        if script == "-":
            return sandbox.run_script(sys.stdin)
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        return sandbox.run_interactive()
    except KeyboardInterrupt:
        console.say("")
        return 130
    finally:
        with _quiet_logging():
            if sandbox is not None:
                sandbox.stop()
                if database is not None:
                    _save_clock(db, sandbox.clock)
            if server is not None:
                server.stop()
            db.dispose()
            shutil.rmtree(workdir, ignore_errors=True)
