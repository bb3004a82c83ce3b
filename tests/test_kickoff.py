"""Starting a round at once: `prompt --now` right after `goals import`, end to end.

The commands run as a user runs them (the CLI as a subprocess) against the emulator, with the
time taken from a clock file shared by both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fakezulip import FakeZulip, Realm, User
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from tests.support import run_cli, write_conf

STREAM = "project-goals"
# A Thursday an hour after the default slot (14:00 UTC): the period runs to 2026-03-12 14:00.
# In Tokyo it is midnight, ten hours before the DM hour of Dev, who is not in the stream.
IMPORTED_AT = datetime(2026, 2, 26, 15, 0, tzinfo=UTC)
NEXT_PERIOD = datetime(2026, 3, 12, 14, 0, tzinfo=UTC)

GOAL = """# {title}

| Metadata         |                     |
|:-----------------|---------------------|
| Point of contact | @{owner}            |
| Status           | Accepted            |
| Tracking issue   | [example/goals#{n}] |

## Summary

{title}, in a few sentences.
"""


@dataclass
class World:
    server: FakeZulip
    conf: Path
    clock: FileClock
    users: dict[str, User]
    goals: Path

    def cli(self, *args: str) -> str:
        done = run_cli(self.conf, *args, env={CLOCK_FILE_ENV: str(self.clock.path)})
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def topic(self, title: str) -> list[str]:
        return [
            m["content"]
            for m in self.server.messages_in(STREAM)
            if m["subject"].startswith(title) and m["sender_id"] == self.users["bot"].user_id
        ]

    def dms(self, who: str) -> list[str]:
        bot_id = self.users["bot"].user_id
        return [
            m["content"]
            for m in self.server.direct_messages_to(self.users[who])
            if m["sender_id"] == bot_id
        ]

    def sent_by_bot(self) -> int:
        return sum(1 for m in self.server.messages if m["sender_id"] == self.users["bot"].user_id)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FileClock(tmp_path / "clock")
    clock.set(IMPORTED_AT)
    realm = Realm.demo()
    with FakeZulip(realm, clock=lambda: clock.now().timestamp(), heartbeat_seconds=2.0) as server:
        users = {
            "bot": realm.user_by_email("goals-bot@example.com"),
            "ben": realm.user_by_name("Ben Owner"),
            "dev": realm.user_by_name("Dev Owner"),
        }
        goals = tmp_path / "2026h1"
        goals.mkdir()
        (goals / "solver.md").write_text(
            GOAL.format(title="New trait solver", owner="ben-gh", n=1), encoding="utf-8"
        )
        (goals / "docs.md").write_text(
            GOAL.format(title="Better docs", owner="dev-gh", n=2), encoding="utf-8"
        )
        (tmp_path / "people.toml").write_text(
            '[people]\nben-gh = "ben@example.com"\ndev-gh = "dev@example.com"\n', encoding="utf-8"
        )
        conf = write_conf(tmp_path, server, users["bot"], extra="people_file = people.toml\n")
        yield World(server, conf, clock, users, goals)


def test_prompt_now_starts_the_first_round_at_once(world: World) -> None:
    assert re.search(r"created\s+2\n", world.cli("goals", "import", str(world.goals)))

    # New goals wait out their grace; the dry run says why and when they will be asked.
    out = world.cli("prompt", "--dry-run")
    assert out.startswith("Nothing is due at 2026-02-26 15:00 UTC.")
    assert "- docs: new goal, first asked in the first period after its grace days; " in out
    assert "next asked 2026-03-12 14:00 UTC" in out
    assert world.sent_by_bot() == 0

    out = world.cli("prompt", "--now")
    assert "Sent 3, already sent 0, failed 0 (of 3 planned)." in out, out
    (solver,) = world.topic("New trait solver")
    assert f"@**Ben Owner|{world.users['ben'].user_id}**" in solver
    (docs,) = world.topic("Better docs")
    assert f"@**Dev Owner|{world.users['dev'].user_id}**" in docs
    # Dev is not in the stream, so Dev is asked by DM too, now rather than at 10:00 in Tokyo.
    (dm,) = world.dms("dev")
    assert "Better docs" in dm
    assert world.dms("ben") == []

    # The round counts as this period's prompt: neither a second kick-off nor the schedule
    # asks again before the next period.
    assert world.cli("prompt", "--now").startswith("Nothing is due")
    world.clock.set(NEXT_PERIOD - timedelta(minutes=1))
    assert world.cli("prompt").startswith("Nothing is due")
    assert world.sent_by_bot() == 3

    # The regular schedule goes on at the slot after the period.
    world.clock.set(NEXT_PERIOD + timedelta(minutes=1))
    out = world.cli("prompt")
    assert "Sent 2" in out, out
    assert len(world.topic("New trait solver")) == 2
    assert len(world.topic("Better docs")) == 2


def test_prompt_now_for_one_goal(world: World) -> None:
    world.cli("goals", "import", str(world.goals))
    out = world.cli("prompt", "--now", "--goal", "solver")
    assert "Sent 1" in out, out
    assert len(world.topic("New trait solver")) == 1
    assert world.topic("Better docs") == [] and world.dms("dev") == []
