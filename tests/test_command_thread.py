"""Commands apart from storing: a slow command never delays anyone's reply being stored, and a
reading command reads (no write transaction, so it never waits for a writer)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from fakezulip import FakeZulip, Realm, User
from tests.support import add_goal, database_for, wait_until, write_conf
from zulip_goals_bot.bot.app import GoalsBot
from zulip_goals_bot.bot.zulip_io import ZulipIO
from zulip_goals_bot.clock import SystemClock
from zulip_goals_bot.config import load_config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Goal, Update

QUIET = "[schedule]\nenabled = false\n[digest]\nenabled = false\n"


def stored(db: Database, message_id: int) -> bool:
    with db.read() as s:
        found = s.execute(select(Update.id).where(Update.zulip_message_id == message_id))
        return found.first() is not None


@pytest.fixture
def realm_server() -> Iterator[tuple[FakeZulip, dict[str, User]]]:
    realm = Realm.demo()
    names = {"bot": "Goals Bot", "ben": "Ben Owner", "eve": "Eve Lead"}
    users = {k: realm.user_by_name(v) for k, v in names.items()}
    assert all(users.values())
    with FakeZulip(realm, heartbeat_seconds=2.0) as server:
        yield server, users  # type: ignore[misc]


@dataclass
class Running:
    """The bot running in this process against the emulator, with Polonius (Ben's goal)."""

    server: FakeZulip
    users: dict[str, User]
    db: Database
    bot: GoalsBot
    goal: Goal

    def answers_to(self, who: str) -> list[str]:
        bot_id = self.users["bot"].user_id
        return [
            m["content"]
            for m in self.server.direct_messages_to(self.users[who])
            if m["sender_id"] == bot_id
        ]


@contextmanager
def running_bot(
    tmp_path: Path, realm_server: tuple[FakeZulip, dict[str, User]]
) -> Iterator[Running]:
    """Start the bot on its own thread, wait until it listens; stop it and check it stopped."""
    server, users = realm_server
    ben = users["ben"]
    conf = write_conf(tmp_path, server, users["bot"], extra=QUIET)
    config = load_config(conf)
    db = database_for(conf)
    goal = add_goal(
        db, "polonius", "Polonius", [(ben.user_id, ben.email, ben.full_name)], issue=118
    )
    bot = GoalsBot(config, db, ZulipIO(config.zuliprc), ZulipIO(config.zuliprc), SystemClock())
    runner = threading.Thread(target=bot.run, kwargs={"wake_ups": False}, daemon=True)
    runner.start()
    try:
        assert bot.ready.wait(15)
        yield Running(server, users, db, bot, goal)
    finally:
        bot.stop.set()
        runner.join(timeout=15)
        db.dispose()
    assert not runner.is_alive()


def test_a_reply_is_stored_while_a_slow_command_is_answered(
    tmp_path: Path, realm_server: tuple[FakeZulip, dict[str, User]]
) -> None:
    entered, release = threading.Event(), threading.Event()
    with running_bot(tmp_path, realm_server) as r:
        users = r.users
        answer = r.bot.command_handler.answer  # the handler the running bot made

        def held(message: dict[str, Any], handler: Any, command: Any) -> None:
            """The command takes its time (a slow database, a big answer): held until released."""
            entered.set()
            release.wait(30)
            answer(message, handler, command)

        r.bot.command_handler.answer = held  # type: ignore[method-assign]
        try:
            r.server.send_direct_message(users["eve"], [users["bot"]], "status polonius")
            assert entered.wait(15)
            reply = r.server.send_stream_message(
                users["ben"], "project-goals", r.goal.zulip_topic, "TL;DR: done"
            )
            assert wait_until(lambda: stored(r.db, reply)), "the reply waited for the command"
            assert not release.is_set()  # the command was still being answered
        finally:
            release.set()
        assert wait_until(lambda: bool(r.answers_to("eve")))
        assert "Polonius" in r.answers_to("eve")[0] and "done" in r.answers_to("eve")[0]


def test_a_status_dm_is_parsed_once_on_its_way_to_the_answer(
    tmp_path: Path, realm_server: tuple[FakeZulip, dict[str, User]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Routing reads the command; the handler answers that same parse, it does not read again."""
    from zulip_goals_bot.commands import bot_handler, grammar

    parsed: list[str] = []
    real_parse = grammar.parse

    def counting(text: str, bot_name: str = "Goals Bot") -> grammar.Command:
        parsed.append(text)
        return real_parse(text, bot_name)

    monkeypatch.setattr(grammar, "parse", counting)
    monkeypatch.setattr(bot_handler, "parse", counting)
    with running_bot(tmp_path, realm_server) as r:
        parsed.clear()
        r.server.send_direct_message(r.users["eve"], [r.users["bot"]], "status polonius")
        assert wait_until(lambda: bool(r.answers_to("eve")))
        assert "**Polonius**" in r.answers_to("eve")[0]
        assert parsed == ["status polonius"]


def test_status_reads_without_a_write_transaction(
    tmp_path: Path, realm_server: tuple[FakeZulip, dict[str, User]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from zulip_goals_bot.bot.context import Context
    from zulip_goals_bot.commands.dispatch import handle
    from zulip_goals_bot.commands.grammar import parse
    from zulip_goals_bot.domain.setting import Setting
    from zulip_goals_bot.domain.views import SenderInfo

    server, users = realm_server
    ben = users["ben"]
    conf = write_conf(tmp_path, server, users["bot"], extra=QUIET)
    db = database_for(conf)
    add_goal(db, "polonius", "Polonius", [(ben.user_id, ben.email, ben.full_name)], issue=118)
    ctx = Context(
        Setting(load_config(conf), "https://zulip.example", 2, "Goals Bot"), db, SystemClock()
    )
    sender = SenderInfo(ben.user_id, ben.email, ben.full_name)
    begins: list[str] = []
    writes: list[str] = []
    opened = db.write

    def write() -> Any:
        writes.append("write")
        return opened()

    monkeypatch.setattr(db, "write", write)  # counts the write transactions asked for

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("BEGIN"):
            begins.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        for text in ("status polonius", "list", "history polonius", "mine", "overdue", "about"):
            begins.clear()
            reply = handle(ctx, sender, parse(text, bot_name="Goals Bot"), in_topic=None)
            assert reply.messages, text
            assert writes == [], text
            if db.is_sqlite:  # PostgreSQL's BEGIN is implicit, not a statement
                assert begins == ["BEGIN DEFERRED"], (text, begins)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
        db.dispose()
