"""The bot as a real subprocess against the emulator: the one way tests and benchmarks run it.

``write_bot_conf`` writes a ``bot.conf`` and a zuliprc for an emulator user; ``BotProcess``
runs ``zulip-goals-bot run`` on them in its own process, as in production, with its log in a
file next to the configuration.  Everything else is observed from outside: the emulator's
store and request log, the bot's database, its log.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fakezulip.realm import User
from fakezulip.server import FakeZulip

# The line the bot logs once it has an event queue and has caught up (zulip_goals_bot.bot.app).
READY_LINE = "ready: listening"
# The environment variable that sets the bot's scheduler interval (zulip_goals_bot.bot.app), and the
# value used here: a prompt or digest that a test's clock makes due goes out within a moment.
TICK_ENV = "ZULIP_GOALS_BOT_TICK_SECONDS"
TICK_SECONDS = "0.2"
# How long a bot may take to start before ``start`` gives up (a busy 2-core machine is slow).
READY_TIMEOUT = 15.0
# How often ``wait_ready`` looks at the log.
POLL_SECONDS = 0.05
# The bot.conf's program lead: ``Realm.demo()``'s administrator.
DEMO_ADMIN = "ada@example.com"
STREAM = "project-goals"


# The lines a running bot logs when it finished a tick (INFO) and stored a batch of events
# (DEBUG): the positive signals a test waits for before it asserts that something did not happen.
TICK_DONE = re.compile(r" tick (\d+) done: ")
BATCH_STORED = re.compile(r" batch (\d+) stored: \d+ events up to message (\d+)")
# How long to wait for a bot's next ticks or batches before calling the bot stuck.
SIGNAL_TIMEOUT = 30.0


class BotNotReady(RuntimeError):
    """The bot exited or did not log ``READY_LINE`` in time; the message ends with its log."""


def write_bot_conf(
    directory: Path,
    server: FakeZulip,
    bot_user: User,
    *,
    database: str,
    extra: str = "",
    admins: str = DEMO_ADMIN,
    stream: str = STREAM,
    log_level: str | None = None,
) -> Path:
    """``directory/bot.conf`` and its ``zuliprc`` (mode 0600) for ``bot_user`` on ``server``.

    ``database`` is an SQLAlchemy URL; ``extra`` is appended verbatim (more sections or keys);
    ``log_level`` (e.g. ``DEBUG``, for ``BotProcess.batches``) sets ``[logging] level``.
    """
    server.write_zuliprc(directory / "zuliprc", bot_user)
    conf = directory / "bot.conf"
    conf.write_text(
        "[goals]\n"
        "zuliprc = zuliprc\n"
        f"stream = {stream}\n"
        f"database = {database}\n"
        f"admins = {admins}\n"
        + extra
        + (f"\n[logging]\nlevel = {log_level}\n" if log_level else ""),
        encoding="utf-8",
    )
    return conf


class BotProcess:
    """``zulip-goals-bot run`` as a subprocess, with its stdout and stderr in ``log_path``."""

    def __init__(self, conf: Path, *, env: dict[str, str] | None = None) -> None:
        self.conf = conf
        self.log_path = conf.parent / f"bot-{time.monotonic_ns()}.log"
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault(TICK_ENV, TICK_SECONDS)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True, timeout: float = READY_TIMEOUT) -> BotProcess:
        """Spawn the bot; with ``wait_ready``, return once it listens (else ``BotNotReady``).

        One process per object: a second start would leave the first running, unwatched.
        """
        if self.alive():
            raise RuntimeError("this bot process is already running; stop it first")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fakezulip.launch", "--config", str(self.conf), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        if wait_ready and not self.wait_ready(timeout):
            raise BotNotReady(f"the bot did not become ready:\n{self.log()}")
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT, interval: float = POLL_SECONDS) -> bool:
        """True once the log has ``READY_LINE``; False if the bot exits first or time runs out.

        Only the new part of the log is read each time, so a short ``interval`` costs little.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        marker = READY_LINE.encode()
        while True:
            try:
                with self.log_path.open("rb") as fh:
                    fh.seek(max(seen - len(marker), 0))
                    chunk = fh.read()
            except FileNotFoundError:
                chunk = b""
            if marker in chunk:
                return self.alive()
            seen = max(seen - len(marker), 0) + len(chunk)
            if not self.alive() or time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the bot has not been started")
        return self.proc.pid

    def log(self) -> str:
        """Everything the bot has logged so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ticks(self) -> int:
        """How many ticks this process has finished (see ``GoalsBot.tick``)."""
        return len(TICK_DONE.findall(self.log()))

    def batches(self) -> list[int]:
        """For each batch of events this process stored, the highest message id in it.

        The bot logs batches at DEBUG: write the bot.conf with ``log_level="DEBUG"``.
        """
        return [int(top) for _n, top in BATCH_STORED.findall(self.log())]

    def _wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done() and self.alive() and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if not self.alive():
            raise BotNotReady(f"the bot exited while waiting for {what}:\n{self.log()[-3000:]}")
        if not done():
            raise TimeoutError(f"{what} did not happen in {timeout} s\n{self.log()[-3000:]}")

    def wait_ticks(self, n: int = 2, timeout: float = SIGNAL_TIMEOUT) -> None:
        """Wait until ``n`` more ticks finished; with 2, at least one ran wholly after the call,
        so whatever it would send is sent (a tick reads the clock and the database first)."""
        goal = self.ticks() + n
        self._wait(lambda: self.ticks() >= goal, timeout, f"{n} more ticks")

    def wait_stored_through(self, message_id: int, timeout: float = SIGNAL_TIMEOUT) -> None:
        """Wait until a batch holding message ``message_id`` (or a later one) was stored."""
        self._wait(
            lambda: any(top >= message_id for top in self.batches()),
            timeout,
            f"storing message {message_id}",
        )

    def terminate(self, timeout: float = 5.0) -> int:
        """SIGTERM, as systemd stops it; its exit status."""
        if self.proc is None:
            raise RuntimeError("the bot has not been started")
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.proc is None:
            raise RuntimeError("the bot has not been started")
        self.proc.kill()
        self.proc.wait(timeout=10)

    def __enter__(self) -> BotProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.kill()
