"""`zulip-goals-bot run` as a subprocess against the emulator: store, survive, stop, restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from fakezulip import FakeZulip, Realm
from tests.dbs import new_database_url
from tests.support import BotProcess, add_goal, database_for, run_cli, wait_until, write_conf
from zulip_goals_bot.db.engine import alembic_config


@pytest.fixture
def server() -> Iterator[FakeZulip]:
    with FakeZulip(Realm.demo(), heartbeat_seconds=2.0) as s:
        yield s


def stored_ids(conf: Path) -> list[int]:
    db = database_for(conf)
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT zulip_message_id FROM updates ORDER BY 1")).scalars()
        return list(rows)


def test_run_stores_replies_survives_queue_loss_stops_and_restarts(
    tmp_path: Path, server: FakeZulip
) -> None:
    realm = server.realm
    bot = realm.user_by_email("goals-bot@example.com")
    ben = realm.user_by_name("Ben Owner")
    assert bot is not None and ben is not None
    # No schedule: the topic holds the owner's messages only. DEBUG: the batch log lines.
    quiet = "[schedule]\nenabled = false\n"
    conf = write_conf(tmp_path, server, bot, extra=quiet, log_level="DEBUG")
    db = database_for(conf)
    goal = add_goal(
        db, "polonius", "Polonius", [(ben.user_id, ben.email, ben.full_name)], issue=118
    )

    proc = BotProcess(conf).start()
    try:
        first = server.send_stream_message(ben, "project-goals", goal.zulip_topic, "TL;DR: done")
        assert wait_until(lambda: stored_ids(conf) == [first]), proc.log()
        with db.engine.connect() as conn:
            row = conn.execute(
                text("SELECT goal_id, kind, tldr FROM updates WHERE zulip_message_id = :m"),
                {"m": first},
            ).one()
        assert tuple(row) == (goal.id, "update", "done")
        # The acknowledgement is a reaction, not a message.
        assert wait_until(lambda: bool(server.message(first)["reactions"])), proc.log()
        assert server.message(first)["reactions"][0]["user_id"] == bot.user_id

        # The queue is lost; a message sent meanwhile is still stored after re-registering.
        server.expire_all_queues()
        second = server.send_stream_message(ben, "project-goals", goal.zulip_topic, "more")
        assert wait_until(lambda: stored_ids(conf) == [first, second]), proc.log()
        assert "registering again" in proc.log()

        started = time.monotonic()
        assert proc.terminate(timeout=5.0) == 0
        assert time.monotonic() - started < 5.0
    finally:
        if proc.alive():
            proc.kill()

    # Sent while the bot is down: stored on restart, and nothing is stored twice.
    third = server.send_stream_message(ben, "project-goals", goal.zulip_topic, "while down")
    proc2 = BotProcess(conf).start()
    try:
        assert wait_until(lambda: stored_ids(conf) == [first, second, third]), proc2.log()
        # A duplicate would come from events handled again; once a later message's batch is
        # stored, every earlier event is.
        later = server.send_stream_message(ben, "general", "elsewhere", "not about a goal")
        proc2.wait_stored_through(later)
        assert stored_ids(conf) == [first, second, third]
        assert proc2.terminate() == 0
    finally:
        if proc2.alive():
            proc2.kill()
    in_topic = server.messages_in("project-goals", goal.zulip_topic)
    assert [m["id"] for m in in_topic] == [first, second, third]  # acknowledged, not answered
    assert all(m["reactions"] for m in in_topic)


@pytest.mark.sqlite_only
def test_long_polls_and_acknowledgements_keep_their_connections(
    tmp_path: Path, server: FakeZulip
) -> None:
    """Each reply costs a long poll and a reaction, over connections kept alive (the events are
    read as a stream through the client's session): a connection opened per poll shows here."""
    realm = server.realm
    bot = realm.user_by_email("goals-bot@example.com")
    ben = realm.user_by_name("Ben Owner")
    assert bot is not None and ben is not None
    conf = write_conf(tmp_path, server, bot, extra="[schedule]\nenabled = false\n")
    goal = add_goal(database_for(conf), "polonius", "Polonius",
                    [(ben.user_id, ben.email, ben.full_name)], issue=118)  # fmt: skip
    with BotProcess(conf) as proc:
        first = server.send_stream_message(ben, "project-goals", goal.zulip_topic, "TL;DR: 0")
        assert wait_until(lambda: bool(server.message(first)["reactions"])), proc.log()
        opened = server.connections_opened
        polls = server.count_requests("GET", "events")
        for i in range(1, 11):
            mid = server.send_stream_message(ben, "project-goals", goal.zulip_topic, f"step {i}")
            assert wait_until(lambda: bool(server.message(mid)["reactions"])), proc.log()
        assert server.count_requests("GET", "events") - polls >= 10
        assert server.connections_opened - opened <= 2, proc.log()


def test_second_run_on_the_same_sqlite_file_refuses(tmp_path: Path, server: FakeZulip) -> None:
    bot = server.realm.user_by_email("goals-bot@example.com")
    conf = write_conf(tmp_path, server, bot, database=f"sqlite:///{tmp_path / 'goals.sqlite3'}")
    with BotProcess(conf):
        result = run_cli(conf, "run", timeout=30)
    assert result.returncode == 2
    assert "already running" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_zuliprc_is_one_clear_line(tmp_path: Path) -> None:
    conf = tmp_path / "bot.conf"
    conf.write_text("[goals]\nzuliprc = nowhere/zuliprc\n", encoding="utf-8")
    result = run_cli(conf, "run")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "nowhere/zuliprc: zuliprc not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_api_key_is_one_clear_line(tmp_path: Path, server: FakeZulip) -> None:
    bot = server.realm.user_by_email("goals-bot@example.com")
    conf = write_conf(tmp_path, server, bot)
    zuliprc = tmp_path / "zuliprc"
    zuliprc.write_text(
        zuliprc.read_text().replace(f"key={bot.api_key}", "key=wrongwrongwrong"), encoding="utf-8"
    )
    result = run_cli(conf, "run")
    assert result.returncode == 2, result.stderr
    assert "refused the bot's credentials" in result.stderr
    assert result.stderr.count("\n") == 1
    assert "wrongwrongwrong" not in result.stderr


def test_unreachable_server_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "zuliprc").write_text(
        "[api]\nemail=bot@example.com\nkey=abc\nsite=http://127.0.0.1:9\n", encoding="utf-8"
    )
    (tmp_path / "zuliprc").chmod(0o600)
    conf = tmp_path / "bot.conf"
    conf.write_text("[goals]\nzuliprc = zuliprc\n", encoding="utf-8")
    result = run_cli(conf, "run")
    assert result.returncode == 2
    assert "cannot reach the Zulip server" in result.stderr
    assert result.stderr.count("\n") == 1


def test_malformed_bot_conf_is_one_clear_line(tmp_path: Path) -> None:
    conf = tmp_path / "bot.conf"
    conf.write_text("[schedule]\ncadence_weeks = often\n", encoding="utf-8")
    result = run_cli(conf, "run")
    assert result.returncode == 2
    assert "[schedule] cadence_weeks = 'often'" in result.stderr
    assert result.stderr.count("\n") == 1


def test_help_and_version() -> None:
    result = run_cli(None, "--help")
    assert result.returncode == 0
    for sub in ("run", "db", "goals", "prompt", "digest", "export", "sandbox"):
        assert sub in result.stdout
    for sub in (["run"], ["db", "upgrade"], ["goals", "import"], ["export", "blog"]):
        assert run_cli(None, *sub, "--help").returncode == 0
    assert run_cli(None, "--version").stdout.startswith("zulip-goals-bot ")


def test_db_commands(tmp_path: Path) -> None:
    conf = tmp_path / "bot.conf"
    conf.write_text(f"[goals]\ndatabase = {new_database_url(tmp_path)}\n", encoding="utf-8")
    assert "empty" in run_cli(conf, "db", "current").stdout
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    up = run_cli(conf, "db", "upgrade")
    assert up.returncode == 0 and f"revision {head}" in up.stdout
    assert run_cli(conf, "db", "current").stdout.strip().startswith(str(head))


def test_help_does_not_import_the_heavy_machinery() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from zulip_goals_bot import cli; "
        "heavy = [m for m in ('sqlalchemy', 'zulip', 'apscheduler', 'alembic') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
