"""One judgement of a goal's state: routing, `status`, `list due` and the digest agree.

The program runs in Honolulu (UTC-10), so late in the local evening the UTC date is already the
next day. A rule that judged by the UTC date would see an owner's vacation as over hours early.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from fakezulip import FakeZulip, Realm, User
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from tests.support import BotProcess, add_goal, database_for, run_cli, wait_until, write_conf
from zulip_goals_bot.config import ScheduleConfig
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import GoalOwner, Person, Update
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.schedule import DueState
from zulip_goals_bot.domain.states import GoalState, OwnerRole, UpdateKind
from zulip_goals_bot.domain.views import GoalView, OwnerView, PersonView

HONOLULU = ZoneInfo("Pacific/Honolulu")
# Periods start on Mondays at midnight in Honolulu; the period below ends as Sunday 2026-03-08
# ends there. Its last day is the owner's last day away.
LAST_DAY = date(2026, 3, 8)
LATE_EVENING = datetime(2026, 3, 8, 23, 30, tzinfo=HONOLULU)
CONF = (
    "timezone = Pacific/Honolulu\n"
    "[schedule]\nenabled = false\nweekday = monday\ntime = 00:00\n"
    "[digest]\nenabled = false\n"
)


@dataclass
class World:
    server: FakeZulip
    db: Database
    conf: Path
    clock: FileClock
    users: dict[str, User]
    goals: dict[str, int]

    def ask(self, who: str, text: str) -> str:
        """A DM command and the bot's answer to it."""
        bot = self.users["bot"]
        before = len(self.answers(who))
        self.server.send_direct_message(self.users[who], [bot], text)
        assert wait_until(lambda: len(self.answers(who)) > before), self.answers(who)
        return self.answers(who)[-1]

    def answers(self, who: str) -> list[str]:
        bot_id = self.users["bot"].user_id
        return [
            m["content"]
            for m in self.server.direct_messages_to(self.users[who])
            if m["sender_id"] == bot_id
        ]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FileClock(tmp_path / "clock")
    clock.set(LATE_EVENING.astimezone(UTC))
    realm = Realm.demo()
    with FakeZulip(realm, clock=lambda: clock.now().timestamp(), heartbeat_seconds=2.0) as server:
        users = {
            "bot": realm.user_by_email("goals-bot@example.com"),
            "ben": realm.user_by_name("Ben Owner"),
            "chloe": realm.user_by_name("Chloé Owner"),
            "eve": realm.user_by_name("Eve Lead"),
        }
        conf = write_conf(tmp_path, server, users["bot"], extra=CONF)
        db = database_for(conf)

        def owner(key: str) -> tuple[int, str, str]:
            u = users[key]
            return (u.user_id, u.email, u.full_name)

        solver = add_goal(db, "solver", "New trait solver", [owner("ben")], issue=1)
        docs = add_goal(db, "docs", "Better docs", [owner("chloe")], issue=2)
        with db.write() as session:
            ben = session.execute(
                select(Person).where(Person.zulip_user_id == users["ben"].user_id)
            ).scalar_one()
            # Ben helps with the docs goal but is not the one asked for its updates.
            session.add(GoalOwner(goal_id=docs.id, person_id=ben.id, role=OwnerRole.TASK,
                                  position=1))  # fmt: skip
            session.execute(
                update(Person)
                .where(Person.zulip_user_id == users["chloe"].user_id)
                .values(away_until=LAST_DAY)
            )
        yield World(server, db, conf, clock, users, {"solver": solver.id, "docs": docs.id})


def test_late_evening_reply_is_judged_in_the_program_timezone(world: World) -> None:
    # In Honolulu it is still the last day of the period and of Chloé's vacation; in UTC it is
    # already the next day.
    assert LATE_EVENING.astimezone(UTC).date() == LAST_DAY + timedelta(days=1)
    env = {CLOCK_FILE_ENV: str(world.clock.path)}
    with BotProcess(world.conf, env=env):
        due = world.ask("eve", "list due")
        assert "New trait solver" in due and "Better docs" not in due
        assert "every owner is away" in world.ask("eve", "status docs")

        # Ben owns both goals; only the solver waits for him, so his DM is its update.
        mid = world.server.send_direct_message(
            world.users["ben"], [world.users["bot"]], "Landed the new solver behind a flag."
        )
        assert wait_until(lambda: bool(world.server.message(mid)["reactions"]))
        with world.db.read() as session:
            stored = session.execute(
                select(Update.goal_id, Update.kind).where(Update.zulip_message_id == mid)
            ).one()
        assert tuple(stored) == (world.goals["solver"], UpdateKind.UPDATE)
        assert not any("which goal" in a for a in world.answers("ben"))

        assert "up to date" in world.ask("eve", "status solver")
        assert "Better docs" not in world.ask("eve", "list due")

    digest = run_cli(world.conf, "digest", "--dry-run", env=env)
    assert digest.returncode == 0, digest.stderr
    assert "1 updated this week · 0 due · 0 overdue · 1 paused/away" in digest.stdout


def test_program_uses_the_local_date_for_vacations() -> None:
    """The same judgement without Zulip: the pure rule at the two sides of local midnight."""
    program = Program(ScheduleConfig(weekday=0, at=datetime.min.time()), HONOLULU)
    away = PersonView(1, 10, "Chloé", None, None, None, LAST_DAY, True)
    goal = GoalView(
        id=1, period="2026", slug="docs", title="Better docs", short_title=None,
        status="Accepted", flagship=None, tracking_issue=None, tracking_url=None,
        zulip_topic="Better docs", teams=(), state=GoalState.ACTIVE, active=True,
        cadence_weeks=None, created_at=datetime(2026, 1, 1, tzinfo=UTC),
        owners=(OwnerView(away, OwnerRole.POINT_OF_CONTACT),),
    )  # fmt: skip
    assert program.state(goal, LATE_EVENING) is DueState.AWAY
    after_midnight = LATE_EVENING + timedelta(hours=1)
    assert program.state(goal, after_midnight) is DueState.OVERDUE
    assert program.reachable_owners(goal, after_midnight) == (away,)
