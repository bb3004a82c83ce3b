"""A sandbox session: the running emulator and bot, the person at the keyboard and where they
type, and how one line is run (posted, or handed to its ``/command``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from zulip_goals_bot.errors import GoalsBotError
from zulip_goals_bot.sandbox.commands import command_named
from zulip_goals_bot.sandbox.display import Console, Watcher
from zulip_goals_bot.sandbox.lines import Line, Member, Outcome, Place, message_text, script_lines
from zulip_goals_bot.sandbox.world import GITHUB_FIELD, LEAD_NAME

if TYPE_CHECKING:
    from fakezulip import FakeZulip, User
    from zulip_goals_bot.bot.app import GoalsBot
    from zulip_goals_bot.clock import FrozenClock
    from zulip_goals_bot.db.engine import Database
    from zulip_goals_bot.website.serve import Preview

# The scheduler interval handed to the bot, with no wake-ups of its own: the sandbox ticks it
# after every clock move, and the clock moves only then, so a timer would find nothing new to do.
TICK_SECONDS = 24 * 3600.0
# How long to wait for the bot to store, answer and acknowledge what was just sent.
SETTLE_SECONDS = 15.0
# How often settling looks again while a chat command is being answered.
COMMAND_POLL_SECONDS = 0.01
# How long start-up waits for the bot's first event queue and backfill.
READY_SECONDS = 20.0


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
        self.workdir = workdir  # where /site builds by default
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
        self.preview: Preview | None = None  # the goals website, once /site served it

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

    def user(self, user_id: int) -> User:
        user = self.server.realm.user_by_id(user_id)
        assert user is not None
        return user

    def where(self) -> str:
        """Where plain lines go now, in words."""
        return self.place.describe(self.bot.bot_name)

    @property
    def prompt(self) -> str:
        return f"{self.user(self.me).full_name} in {self.where()}> "

    # -- the schedule ----------------------------------------------------------------------------

    def next_prompt(self) -> datetime:
        from zulip_goals_bot.domain.schedule import next_prompt

        return next_prompt(
            self.clock.now(), self.config.schedule.cadence_weeks, self.bot.ctx.setting.slot
        )

    def next_digest(self) -> datetime:
        from zulip_goals_bot.digest.delivery import digest_period

        return digest_period(self.bot.ctx, self.clock.now()).end

    # -- waiting for the bot -------------------------------------------------------------------

    def _bot_listening(self) -> bool:
        """The bot has taken every event from its queue and is long-polling for more."""
        return self.server.is_listening(self.bot.bot_user_id)

    def settle(self) -> bool:
        """Wait until the bot has stored, answered and acknowledged everything so far."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.server.wait_for(self._bot_listening, timeout=left):
                return False
            if not self.bot.flush_sender(max(deadline - time.monotonic(), 0.01)):
                return False
            # Sending made new events (the bot's own messages and reactions): one more round.
            if not self.bot.commands_idle():  # a command is being answered on its thread
                time.sleep(COMMAND_POLL_SECONDS)
                continue
            if self._bot_listening() and self.bot.outgoing.empty():
                return True

    def show(self) -> None:
        """Print what the bot did in answer to the last line, once it is done."""
        if not self.settle():
            self.console.note("The bot is still busy; its answers will show up as they arrive.")
        self.watcher.poll()

    # -- lines -----------------------------------------------------------------------------------

    def run_line(self, text: str) -> Outcome:
        line = Line.parse(text)
        if line.command is None:
            return self.post(line.argument) if line.argument else Outcome.DONE
        command = command_named(line.command)
        if command is None:
            self.console.note(f"Unknown command /{line.command}; /help lists the commands.")
            return Outcome.REFUSED
        return command.run(self, line.argument)

    def post(self, text: str) -> Outcome:
        """Post ``text`` as the current user in the current place, then show the bot's answer."""
        from fakezulip import ApiError

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
