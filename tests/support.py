"""Helpers for end-to-end tests: the bot as a real subprocess against the emulator."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from zulip_goals_bot.db import Database
from zulip_goals_bot.fakezulip import FakeZulip
from zulip_goals_bot.models import (
    FIRST_START_KEY,
    BotState,
    Goal,
    GoalOwner,
    GoalState,
    OwnerRole,
    Person,
)
from zulip_goals_bot.topics import goal_topic

from .dbs import new_database_url

ROOT = Path(__file__).resolve().parents[1]
# Real data the tests read, kept in the repository (tests/data/SOURCES.md says where from).
DATA = ROOT / "tests" / "data"
# Every bot log and command output of the running test: after each test the suite greps them
# all for API keys (tests/test_security.py, tests/conftest.py).
OUTPUTS: list[Callable[[], str]] = []


def write_conf(
    tmp_path: Path,
    server: FakeZulip,
    bot_user: Any,
    *,
    extra: str = "",
    database: str | None = None,
    log_level: str | None = None,
) -> Path:
    """A bot.conf and zuliprc in ``tmp_path`` for the emulator's bot user.

    ``database`` is a URL; by default a new database of the backend under test (tests/dbs.py).
    ``log_level`` DEBUG makes the bot log each batch of events it stored (``wait_batches``).
    """
    zuliprc = tmp_path / "zuliprc"
    server.write_zuliprc(zuliprc, bot_user)
    zuliprc.chmod(0o600)
    url = database or new_database_url(tmp_path)
    conf = tmp_path / "bot.conf"
    conf.write_text(
        "[goals]\n"
        "zuliprc = zuliprc\n"
        "stream = project-goals\n"
        f"database = {url}\n"
        "admins = ada@example.com\n"
        + extra
        + (f"\n[logging]\nlevel = {log_level}\n" if log_level else ""),
        encoding="utf-8",
    )
    return conf


def database_for(conf: Path) -> Database:
    from zulip_goals_bot.config import load_config

    db = Database(load_config(conf).database_url)
    db.upgrade()
    return db


def running_since(db: Database, when: datetime) -> None:
    """Record that a bot first ran on ``db`` at ``when``: a program already in its stride, which
    owes the digest of the week the test starts in (a new install would wait for the next slot)."""
    with db.write() as session:
        session.merge(BotState(key=FIRST_START_KEY, value=when.isoformat(), updated_at=when))


def add_goal(
    db: Database,
    slug: str,
    title: str,
    owners: Iterable[tuple[int, str, str]] = (),
    *,
    issue: int | None = None,
    flagship: str | None = None,
    created: datetime | None = None,
    github: Iterable[str] = (),
) -> Goal:
    """A goal with owners given as (zulip id, email, name) and unmapped GitHub handles."""
    now = created or datetime(2026, 1, 1, tzinfo=UTC)
    with db.write() as session:
        taken = set(session.execute(select(Goal.zulip_topic)).scalars())
        goal = Goal(
            period="2026h2",
            slug=slug,
            title=title,
            status="Accepted",
            flagship=flagship,
            tracking_issue=issue,
            zulip_topic=goal_topic(title, None, issue, taken),
            state=GoalState.ACTIVE,
            active=True,
            teams="",
            extra={},
            created_at=now,
            updated_at=now,
        )
        session.add(goal)
        session.flush()
        position = 0
        for uid, email, name in owners:
            person = session.execute(
                select(Person).where(Person.zulip_user_id == uid)
            ).scalar_one_or_none()
            if person is None:
                person = Person(zulip_user_id=uid, email=email, full_name=name, created_at=now)
                session.add(person)
                session.flush()
            session.add(
                GoalOwner(
                    goal_id=goal.id,
                    person_id=person.id,
                    role=OwnerRole.POINT_OF_CONTACT,
                    position=position,
                )
            )
            position += 1
        for handle in github:
            person = Person(github=handle.lower(), created_at=now)
            session.add(person)
            session.flush()
            session.add(
                GoalOwner(goal_id=goal.id, person_id=person.id, role=OwnerRole.POINT_OF_CONTACT,
                          position=position)
            )  # fmt: skip
            position += 1
    return goal


# The lines a running bot logs when it finished a tick (INFO) and stored a batch of events
# (DEBUG): the positive signals a test waits for before it asserts that something did not happen.
TICK_DONE = re.compile(r" tick (\d+) done: ")
BATCH_STORED = re.compile(r" batch (\d+) stored: \d+ events up to message (\d+)")
# How long a test waits for a bot's next ticks or batches before it calls the bot stuck.
SIGNAL_TIMEOUT = 30.0


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class BotProcess:
    """``zulip-goals-bot run`` as a subprocess, with its log in a file."""

    def __init__(self, conf: Path, *, env: dict[str, str] | None = None) -> None:
        self.conf = conf
        self.log_path = conf.parent / f"bot-{time.monotonic_ns()}.log"
        self.env = {**os.environ, **(env or {})}
        self.env.setdefault("ZULIP_GOALS_BOT_TICK_SECONDS", "0.2")
        self.proc: subprocess.Popen[bytes] | None = None
        OUTPUTS.append(self.log)

    def start(self, *, wait_ready: bool = True) -> BotProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "zulip_goals_bot.cli", "--config", str(self.conf), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        if wait_ready:
            assert wait_until(lambda: "ready: listening" in self.log() or not self.alive()), (
                self.log()
            )
            assert self.alive(), self.log()
        return self

    def log(self) -> str:
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

        The bot logs batches at DEBUG: write the bot.conf with ``write_conf(log_level="DEBUG")``.
        """
        return [int(top) for _n, top in BATCH_STORED.findall(self.log())]

    def wait_ticks(self, n: int = 2, timeout: float = SIGNAL_TIMEOUT) -> None:
        """Wait until ``n`` more ticks finished; with 2, at least one ran wholly after the call,
        so whatever it would send is sent (a tick reads the clock and the database first)."""
        goal = self.ticks() + n
        assert wait_until(lambda: self.ticks() >= goal or not self.alive(), timeout), (
            f"fewer than {n} ticks in {timeout} s\n{self.log()[-3000:]}"
        )
        assert self.alive(), self.log()[-3000:]

    def wait_batches(self, n: int = 1, timeout: float = SIGNAL_TIMEOUT) -> None:
        """Wait until ``n`` more batches of events were stored (and their effects queued)."""
        goal = len(self.batches()) + n
        assert wait_until(lambda: len(self.batches()) >= goal or not self.alive(), timeout), (
            f"fewer than {n} batches in {timeout} s\n{self.log()[-3000:]}"
        )
        assert self.alive(), self.log()[-3000:]

    def wait_stored_through(self, message_id: int, timeout: float = SIGNAL_TIMEOUT) -> None:
        """Wait until a batch holding message ``message_id`` (or a later one) was stored."""
        assert wait_until(
            lambda: any(top >= message_id for top in self.batches()) or not self.alive(), timeout
        ), f"message {message_id} not stored in {timeout} s\n{self.log()[-3000:]}"
        assert self.alive(), self.log()[-3000:]

    def terminate(self, timeout: float = 5.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def __enter__(self) -> BotProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.kill()


def run_cli(conf: Path | None, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:  # fmt: skip
    cmd = [sys.executable, "-m", "zulip_goals_bot.cli"]
    if conf is not None:
        cmd += ["--config", str(conf)]
    done = subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    OUTPUTS.append(lambda: done.stdout + done.stderr)
    return done
