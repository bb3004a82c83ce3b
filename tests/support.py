"""Helpers for end-to-end tests: the bot as a real subprocess against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fakezulip import FakeZulip, harness
from fakezulip.harness import write_bot_conf
from tests.dbs import new_database_url
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import FIRST_START_KEY, BotState, Goal, GoalOwner, Person
from zulip_goals_bot.domain.states import GoalState, OwnerRole
from zulip_goals_bot.goals.topics import goal_topic
from zulip_goals_bot.people.files import github_handle
from zulip_goals_bot.people.link_rules import LinkOutcome, MappedVia, WantedLink
from zulip_goals_bot.people.linking import link

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

    ``database`` is a URL; by default a new database of the backend under test (tests/dbs.py);
    ``log_level="DEBUG"`` makes the bot log each stored batch (``BotProcess.batches``).
    """
    url = database or new_database_url(tmp_path)
    return write_bot_conf(
        tmp_path, server, bot_user, database=url, extra=extra, log_level=log_level
    )


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


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class BotProcess(harness.BotProcess):
    """The bot as a subprocess (``fakezulip.harness``); the suite sweeps its log for API keys."""

    def __init__(self, conf: Path, *, env: dict[str, str] | None = None) -> None:
        super().__init__(conf, env=env)
        OUTPUTS.append(self.log)


def run_cli(conf: Path | None, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60.0) -> subprocess.CompletedProcess[str]:  # fmt: skip
    cmd = [sys.executable, "-m", "fakezulip.launch"]
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


def link_handle(
    session: Session, *, github: str, zulip_user_id: int, via: MappedVia, now: datetime
) -> LinkOutcome:
    """``linking.link`` for one handle as a person types it (``@ferris``, a profile URL)."""
    handle = github_handle(github)
    assert handle is not None, github
    (outcome,) = link(session, [WantedLink(handle, zulip_user_id, via, via.label)], now=now)
    return outcome
