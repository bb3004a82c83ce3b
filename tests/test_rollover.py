"""A new period: goals that continue keep their topic and history, the others end with exactly one
closing note in their topic, and importing again sends nothing more.

End to end: the real command line against the Zulip emulator (the closing notes go out through
the real ``zulip`` client), and the bot itself as a subprocess when the import had no Zulip.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from fakezulip import FakeZulip, Realm
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from tests.dbs import new_database
from tests.support import DATA, BotProcess, database_for, run_cli, wait_until, write_conf
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.bot.zulip_io import ZulipIO
from zulip_goals_bot.commands.dispatch import handle
from zulip_goals_bot.commands.grammar import parse
from zulip_goals_bot.config import load_config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Delivery, Goal, GoalPastPeriod, Update
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.states import DeliveryKind, GoalState, UpdateKind, UpdateSource
from zulip_goals_bot.domain.views import SenderInfo
from zulip_goals_bot.goals.importer import import_goals
from zulip_goals_bot.goals.rollover import send_closing_notes

H2, ANNUAL = DATA / "goalfiles-later" / "2025h2", DATA / "goalfiles-later" / "2026"
SEPTEMBER = datetime(2025, 9, 4, 12, 0, tzinfo=UTC)
JANUARY = datetime(2026, 1, 8, 12, 0, tzinfo=UTC)
STREAM = "project-goals"
STATUSES = ("--status", "Accepted,Proposed")
CONTINUED = {  # slug in 2025h2 -> slug in 2026
    "reborrow-ergo": "reborrow-ergo",  # same tracking issue
    "field-places": "field-places-2026",  # a "continuation of" link, a new issue
    "trait-dormancy": "trait-dormancy",
    "faster-links": "faster-links",
    "docs-search": "docs-search",
}
ENDED = ("faster-backend", "old-lints")


@pytest.fixture
def clock(tmp_path: Path) -> FileClock:
    clock = FileClock(tmp_path / "clock")
    clock.set(SEPTEMBER)
    return clock


@pytest.fixture
def server(clock: FileClock) -> Iterator[FakeZulip]:
    with FakeZulip(Realm.demo(), clock=lambda: clock.now().timestamp()) as s:
        yield s


def cli(conf: Path, clock: FileClock, *args: str) -> tuple[int, str]:
    done = run_cli(conf, *args, env={CLOCK_FILE_ENV: str(clock.path)})
    return done.returncode, done.stdout + done.stderr


def goals_by_slug(db: Database) -> dict[str, Goal]:
    with db.read() as s:
        return {g.slug: g for g in s.execute(select(Goal)).scalars()}


def closing_notes(server: FakeZulip, topic: str) -> list[str]:
    return [
        m["content"]
        for m in server.messages_in(STREAM, topic)
        if "ended with period" in m["content"]
    ]


def test_rollover_continues_goals_and_ends_the_rest_with_one_closing_note(
    tmp_path: Path, server: FakeZulip, clock: FileClock
) -> None:
    bot = server.realm.user_by_email("goals-bot@example.com")
    assert bot is not None
    conf = write_conf(tmp_path, server, bot)
    code, out = cli(conf, clock, "goals", "import", str(H2), *STATUSES)
    assert code == 0, out
    db = database_for(conf)
    before = goals_by_slug(db)
    with db.write() as s:  # a history, and an owner's setting, for a goal that continues
        s.add(Update(zulip_message_id=7001, goal_id=before["reborrow-ergo"].id,
                     kind=UpdateKind.UPDATE, source=UpdateSource.TOPIC,
                     content="TL;DR: the traits are on nightly.", tldr="the traits are on nightly.",
                     sent_at=SEPTEMBER + timedelta(days=10)))  # fmt: skip
        s.get(Goal, before["reborrow-ergo"].id).cadence_weeks = 4  # type: ignore[union-attr]

    clock.set(JANUARY)
    code, out = cli(conf, clock, "goals", "import", str(ANNUAL), *STATUSES, "--rollover")
    assert code == 0, out
    assert "Continued from an earlier period (same goal, topic and history):" in out
    assert "  field-places (2025h2) → field-places-2026" in out
    assert "Ended (2; completed, not deleted; one closing note each in its topic):" in out
    assert "2 closing note(s) posted in #project-goals." in out

    after = goals_by_slug(db)
    for old, new in CONTINUED.items():
        goal = after[new]
        assert (goal.id, goal.zulip_topic) == (before[old].id, before[old].zulip_topic)
        assert (goal.period, goal.state, goal.ended_in) == ("2026", GoalState.ACTIVE, None)
        assert closing_notes(server, goal.zulip_topic) == []
    assert after["reborrow-ergo"].cadence_weeks == 4
    with db.read() as s:
        update = s.execute(select(Update).where(Update.zulip_message_id == 7001)).scalar_one()
        assert update.goal_id == before["reborrow-ergo"].id
        past = {tuple(r) for r in s.execute(select(GoalPastPeriod.period, GoalPastPeriod.slug))}
    assert past == {("2025h2", slug) for slug in CONTINUED}
    for slug in ENDED:
        goal = after[slug]
        assert (goal.id, goal.period) == (before[slug].id, "2025h2")  # never deleted
        assert (goal.state, goal.ended_in) == (GoalState.COMPLETED, "2026")
        (note,) = closing_notes(server, goal.zulip_topic)
        assert "ended with period **2025h2**" in note and f"`status {slug}`" in note
    assert "new-goal" in after and after["new-goal"].period == "2026"

    # Importing again (with or without --rollover) changes nothing and sends nothing more.
    sent = len(server.messages_in(STREAM))
    for extra in (("--rollover",), ()):
        code, out = cli(conf, clock, "goals", "import", str(ANNUAL), *extra)
        assert code == 0, out
        assert "Ended (" not in out and "closing note" not in out
        assert "unchanged     6" in out
    code, out = cli(conf, clock, "goals", "import", str(H2))  # the old folder, once more
    assert code == 0, out
    assert "created       0" in out and "Ended (" not in out
    assert len(server.messages_in(STREAM)) == sent
    assert goals_by_slug(db).keys() == after.keys()

    # `status` on an ended goal still answers.
    config = load_config(conf)
    ctx = Context(
        Setting(config, "https://zulip.example.com", bot.user_id, bot.full_name), db, clock
    )
    eve = SenderInfo(16, "eve@example.com", "Eve Lead")
    answer = "\n".join(handle(ctx, eve, parse("status old-lints"), in_topic=None).messages)
    assert "**Ended** with period 2025h2: it did not continue into 2026" in answer

    # The digest and the blog export cover one period: the newest, or the one asked for.
    code, newest = cli(conf, clock, "digest", "--dry-run")
    assert code == 0, newest
    assert "Relink, don't rebuild" in newest and "Linker diagnostics" in newest
    assert "A quicker debug backend" not in newest
    code, older = cli(conf, clock, "digest", "--dry-run", "--period", "2025h2")
    assert code == 0, older
    assert "A quicker debug backend" in older and "Relink, don't rebuild" in older
    assert "Linker diagnostics" not in older
    code, bad = cli(conf, clock, "digest", "--dry-run", "--period", "2024h1")
    assert code == 2 and "--period '2024h1': no goals in that period (periods: 2025h2, 2026)" in bad
    code, post = cli(conf, clock, "export", "blog", "--since", "2025-09-01", "--until",
                     "2025-10-01", "--period", "2025h2")  # fmt: skip
    assert code == 0, post
    assert "the traits are on nightly." in post and "Linker diagnostics" not in post


def test_the_running_bot_posts_the_closing_notes_an_offline_import_owed(
    tmp_path: Path, server: FakeZulip, clock: FileClock
) -> None:
    bot = server.realm.user_by_email("goals-bot@example.com")
    assert bot is not None
    conf = write_conf(tmp_path, server, bot)
    offline = tmp_path / "offline.conf"
    offline.write_text(
        conf.read_text(encoding="utf-8").replace("zuliprc = zuliprc", "zuliprc = missing"),
        encoding="utf-8",
    )
    assert cli(offline, clock, "goals", "import", str(H2), *STATUSES)[0] == 0
    clock.set(JANUARY)
    code, out = cli(offline, clock, "goals", "import", str(ANNUAL), *STATUSES, "--rollover")
    assert code == 0, out
    assert "No Zulip connection here: the running bot posts the 2 closing note(s)" in out
    db = database_for(conf)
    topics = [goals_by_slug(db)[slug].zulip_topic for slug in ENDED]
    assert all(closing_notes(server, t) == [] for t in topics)

    proc = BotProcess(conf, env={CLOCK_FILE_ENV: str(clock.path)}).start()
    try:
        assert wait_until(lambda: all(len(closing_notes(server, t)) == 1 for t in topics)), (
            proc.log()
        )
        assert proc.terminate() == 0
    finally:
        if proc.alive():
            proc.kill()
    with db.read() as s:
        kinds = [tuple(r) for r in s.execute(select(Delivery.kind, Delivery.state))]
    assert [k for k, _ in kinds if k is DeliveryKind.CLOSING] == [DeliveryKind.CLOSING] * 2
    # The import, now online, finds nothing owed: the claims say both notes went out.
    code, out = cli(conf, clock, "goals", "import", str(ANNUAL), "--rollover")
    assert code == 0 and "closing note" not in out, out
    assert all(len(closing_notes(server, t)) == 1 for t in topics)


def test_a_closing_note_that_failed_is_posted_once_when_retried(
    tmp_path: Path, server: FakeZulip, clock: FileClock
) -> None:
    bot = server.realm.user_by_email("goals-bot@example.com")
    assert bot is not None
    rc = server.write_zuliprc(tmp_path / "zuliprc", bot)
    rc.chmod(0o600)
    io = ZulipIO(rc, sleep=lambda _s: None)
    db = new_database(tmp_path)
    import_goals(db, [H2], now=SEPTEMBER, statuses=("Accepted", "Proposed"))
    import_goals(db, [ANNUAL], now=JANUARY, statuses=("Accepted", "Proposed"), rollover=True)
    topics = [goals_by_slug(db)[slug].zulip_topic for slug in ENDED]
    server.faults.fail_next(1, status=400, path_prefix="messages", method="POST")
    assert send_closing_notes(db, io, STREAM, clock.now) == 1
    assert sorted(len(closing_notes(server, t)) for t in topics) == [0, 1]
    assert send_closing_notes(db, io, STREAM, clock.now) == 1  # the failed one, once
    assert send_closing_notes(db, io, STREAM, clock.now) == 0
    assert [len(closing_notes(server, t)) for t in topics] == [1, 1]


def test_a_goal_that_ended_is_taken_up_again_by_a_later_period(tmp_path: Path) -> None:
    db = new_database(tmp_path)
    statuses = ("Accepted", "Proposed")
    import_goals(db, [H2], now=SEPTEMBER, statuses=statuses)
    import_goals(db, [ANNUAL], now=JANUARY, statuses=statuses, rollover=True)
    ended = goals_by_slug(db)["faster-backend"]
    assert (ended.state, ended.ended_in) == (GoalState.COMPLETED, "2026")
    folder = tmp_path / "2027"
    folder.mkdir()
    text = (H2 / "faster-backend.md").read_text(encoding="utf-8")
    (folder / "debug-backend.md").write_text(text, encoding="utf-8")  # issue #405 again
    report = import_goals(db, [folder], now=JANUARY + timedelta(days=365), statuses=statuses,
                          rollover=True)  # fmt: skip
    (back,) = [c for p in report.plans for c in p.continued]
    assert ("state", "ended", "active") in [(d.name, d.old, d.new) for d in back.changes]
    again = goals_by_slug(db)["debug-backend"]
    assert (again.id, again.zulip_topic) == (ended.id, ended.zulip_topic)
    assert (again.period, again.state, again.ended_in) == ("2027", GoalState.ACTIVE, None)
    assert {e.slug for p in report.plans for e in p.ends} == {
        "docs-search", "faster-links", "field-places-2026", "new-goal", "reborrow-ergo",
        "trait-dormancy",
    }  # fmt: skip
