"""An emulated Zulip organisation with a program of goals, and the bot as a real subprocess.

The emulator runs in the benchmark process (so benchmarks can post as owners without HTTP and
hold it still while events queue up); the bot runs as ``zulip-goals-bot run`` in its own process
(``fakezulip.harness``), as in production, and is observed only from outside: its SQLite file,
its log, ``/proc``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from bench.core import BenchError
from bench.data import HISTORY_ID_BASE, TIMEZONES, Owner, Program, build_program, update_text
from fakezulip import FakeZulip, Realm, User
from fakezulip.harness import BotProcess, write_bot_conf
from zulip_goals_bot.config import load_config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import HIGH_WATER_KEY, BotState

STREAM = "project-goals"
# Benchmarks that measure storage switch the schedule off, so that no prompt competes with it.
QUIET = "[schedule]\nenabled = false\n[digest]\nenabled = false\n[logging]\nlevel = INFO\n"
# The longest a bot may take to start before a run counts as failed.
START_TIMEOUT = 60.0


@dataclass
class World:
    tmp: Path
    server: FakeZulip
    bot_user: User
    conf: Path
    db: Database
    program: Program
    users: tuple[User, ...]  # the owners' realm accounts, in ``program.owners`` order

    @property
    def db_path(self) -> Path:
        url = self.db.url
        return Path(url.removeprefix("sqlite:///"))

    def reply_plan(self, count: int, seed: int = 7) -> list[tuple[User, str, str]]:
        """``count`` owner replies (sender, topic, text), each owner in their own goal's topic."""
        import random

        rng = random.Random(seed)
        program = self.program
        out = []
        for n in range(count):
            g = n % len(program.goal_ids)
            out.append((self.users[program.owner_of_goal[g]], program.topics[g], update_text(rng)))
        return out

    def post(self, sender: User, topic: str, content: str) -> int:
        return self.server.send_stream_message(sender, STREAM, topic, content)

    def set_high_water(self, message_id: int, now: datetime) -> None:
        """Tell the bot it has seen everything up to ``message_id`` (so it does not backfill)."""
        with self.db.write() as session:
            row = session.get(BotState, HIGH_WATER_KEY)
            if row is None:
                session.add(BotState(key=HIGH_WATER_KEY, value=str(message_id), updated_at=now))
            else:
                row.value = str(message_id)
                row.updated_at = now

    def last_message_id(self) -> int:
        return self.server.last_message_id

    def reader(self) -> sqlite3.Connection:
        """A plain read-only connection for polling what the bot stored (WAL: never blocks it)."""
        conn = sqlite3.connect(
            f"file:{self.db_path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn


def stored_after(conn: sqlite3.Connection, message_id: int) -> int:
    row = conn.execute(
        "SELECT COUNT(*) FROM updates WHERE zulip_message_id > ? AND zulip_message_id < ?",
        (message_id, HISTORY_ID_BASE),
    ).fetchone()
    return int(row[0])


@contextlib.contextmanager
def world(
    tmp: Path,
    *,
    goals: int,
    owners: int,
    updates: int,
    subscribed: int,
    now: datetime,
    conf_extra: str = QUIET,
    rate_limit: int | None = None,
    rate_window: float = 60.0,
    updates_until: datetime | None = None,
) -> Iterator[World]:
    """A running emulator with ``owners`` accounts (the first ``subscribed`` of them in the goals
    stream) and a migrated database holding the program; the bot is not started."""
    realm = Realm.demo()
    users = []
    for i in range(owners):
        users.append(
            realm.add_user(
                f"Owner {i:04d}",
                f"owner{i:04d}@example.com",
                timezone=TIMEZONES[i % len(TIMEZONES)],
            )
        )
    for user in users[:subscribed]:
        realm.subscribe(user, STREAM)
    bot_user = realm.user_by_email("goals-bot@example.com")
    assert bot_user is not None
    with FakeZulip(
        realm, rate_limit_per_minute=rate_limit, rate_limit_window_seconds=rate_window
    ) as server:
        # SQLite, the embedded default, whatever backend the test suite is set to.
        conf = write_bot_conf(
            tmp, server, bot_user, extra=conf_extra, database=f"sqlite:///{tmp / 'goals.sqlite3'}"
        )
        db = Database(load_config(conf).database_url)
        db.upgrade()
        program = build_program(
            db,
            goals=goals,
            owners=[Owner(u.user_id, u.email, u.full_name, u.timezone) for u in users],
            updates=updates,
            now=now,
            updates_until=updates_until,
        )
        try:
            yield World(tmp, server, bot_user, conf, db, program, tuple(users))
        finally:
            db.dispose()


class Bot:
    """The bot subprocess, with the measurements only its parent can take."""

    def __init__(self, conf: Path, env: dict[str, str] | None = None) -> None:
        self.process = BotProcess(conf, env=env)
        self.started_at = 0.0

    def start(self) -> Bot:
        self.started_at = time.perf_counter()
        self.process.start(wait_ready=False)
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT, interval: float = 0.002) -> float:
        """Seconds from ``start`` until the bot logged that it listens for events."""
        if not self.process.wait_ready(timeout, interval):
            what = "exited while starting" if not self.process.alive() else "did not become ready"
            raise BenchError(f"the bot {what}:\n" + self.tail())
        return time.perf_counter() - self.started_at

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_rss_mb(self) -> float:
        """The process's high-water resident set size (VmHWM), in MiB."""
        return _status_kb(self.pid, "VmHWM") / 1024.0

    def check_alive(self) -> None:
        if not self.process.alive():
            raise BenchError("the bot exited:\n" + self.tail())

    def tail(self, chars: int = 3000) -> str:
        return self.process.log()[-chars:]

    def stop(self) -> None:
        if self.process.alive():
            try:
                self.process.terminate(timeout=15.0)
            except Exception:
                self.process.kill()

    def __enter__(self) -> Bot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise BenchError(f"/proc/{pid}/status has no {key}")


def post_all(w: World, plan: Sequence[tuple[User, str, str]]) -> list[int]:
    return [w.post(sender, topic, text) for sender, topic, text in plan]
