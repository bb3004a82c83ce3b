"""Asking the bot, end to end: mentions in a stream answered in the topic, DMs answered by DM."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from fakezulip import FakeZulip, Realm
from tests.mentions import contains_unsafe_mention
from tests.support import BotProcess, add_goal, database_for, wait_until, write_conf
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import COMMAND_ANSWERED, Goal, HandledMessage

STREAM = "project-goals"
QUIET = "[schedule]\nenabled = false\n[digest]\nenabled = false\n"


@dataclass
class Chat:
    server: FakeZulip
    db: Database
    bot: BotProcess
    users: dict[str, Any]
    goals: dict[str, Goal]

    def ask_dm(self, who: str, content: str) -> str:
        """DM the bot and return its answer (all parts joined)."""
        user = self.users[who]
        before = len(self._answers(user))
        mid = self.server.send_direct_message(user, [self.users["bot"]], content)
        # The bot records a command as answered once the last part of its answer is sent.
        assert wait_until(lambda: self._outcome(mid) == COMMAND_ANSWERED), self.bot.log()[-2000:]
        return "\n".join(self._answers(user)[before:])

    def _outcome(self, message_id: int) -> str | None:
        with self.db.read() as session:
            row = session.get(HandledMessage, message_id)
            return row.outcome if row is not None else None

    def _answers(self, user: Any) -> list[str]:
        bot_id = self.users["bot"].user_id
        return [
            m["content"] for m in self.server.direct_messages_to(user) if m["sender_id"] == bot_id
        ]

    def ask_in(self, who: str, stream: str, topic: str, content: str) -> list[dict[str, Any]]:
        bot_id = self.users["bot"].user_id

        def answers() -> list[dict[str, Any]]:
            return [m for m in self.server.messages_in(stream, topic) if m["sender_id"] == bot_id]

        before = len(answers())
        self.server.send_stream_message(self.users[who], stream, topic, content)
        assert wait_until(lambda: len(answers()) > before), self.bot.log()[-2000:]
        return answers()[before:]


@pytest.fixture
def chat(tmp_path: Path) -> Iterator[Chat]:
    realm = Realm.demo()
    with FakeZulip(realm, heartbeat_seconds=2.0) as server:
        users = {
            "bot": realm.user_by_email("goals-bot@example.com"),
            "ada": realm.user_by_name("Ada Admin"),
            "ben": realm.user_by_name("Ben Owner"),
            "chloe": realm.user_by_name("Chloé Owner"),
            "eve": realm.user_by_name("Eve Lead"),
        }
        conf = write_conf(tmp_path, server, users["bot"], extra=QUIET)
        db = database_for(conf)
        ben = users["ben"]
        goals = {
            "polonius": add_goal(
                db,
                "polonius",
                "Scale Polonius to support rustc",
                [(ben.user_id, ben.email, ben.full_name)],
                issue=118,
                flagship="Yes",
            ),
            "evil": add_goal(db, "evil", "@**all** help", [], issue=7, github=["ghost"]),
        }
        with BotProcess(conf) as bot:
            yield Chat(server, db, bot, users, goals)


def test_status_by_mention_is_answered_in_the_same_topic_with_silent_mentions(chat: Chat) -> None:
    update = chat.server.send_stream_message(
        chat.users["ben"],
        STREAM,
        chat.goals["polonius"].zulip_topic,
        "TL;DR: solver is faster. Thanks @*everyone*!\n\nHelp wanted: @**all** reviewers",
    )
    assert wait_until(lambda: bool(chat.server.message(update)["reactions"]))
    answers = chat.ask_in("eve", "general", "questions", "@**Goals Bot** status polonius")
    body = answers[0]["content"]
    assert "Scale Polonius to support rustc" in body
    assert "@_**Ben Owner|" in body  # silent: Eve's question does not ping Ben
    assert "solver is faster" in body
    assert "goals/issues/118" in body or "#118" in body
    assert "@**all**" not in body and "@*everyone*" not in body
    for m in answers:
        assert not contains_unsafe_mention(m["content"])
        assert chat.server.flags(chat.users["ben"], m["id"]) == [] or "mentioned" not in (
            chat.server.flags(chat.users["ben"], m["id"])
        )


def test_fuzzy_names_by_dm(chat: Chat) -> None:
    assert "Scale Polonius" in chat.ask_dm("eve", "status polonus")  # typo
    assert "Scale Polonius" in chat.ask_dm("eve", "status #118")
    assert "Scale Polonius" in chat.ask_dm("eve", "status goals#118")
    none = chat.ask_dm("eve", "status zzzzqqq")
    assert "zzzzqqq" in none and "No goal" in none


def test_goal_titled_with_a_wildcard_is_quoted_harmlessly(chat: Chat) -> None:
    answer = chat.ask_dm("eve", "list")
    assert "help" in answer
    assert "@**all**" not in answer
    assert not contains_unsafe_mention(answer)


def test_help_about_mine_history_overdue_and_unknown(chat: Chat) -> None:
    help_text = chat.ask_dm("eve", "help")
    for word in ("status", "history", "list", "mine", "overdue", "subscribe", "about"):
        assert word in help_text
    assert "0.1.0" in chat.ask_dm("eve", "about")
    assert "Scale Polonius" in chat.ask_dm("ben", "mine")
    assert "Scale Polonius" in chat.ask_dm("eve", "history polonius")
    chat.ask_dm("eve", "overdue")
    unknown = chat.ask_dm("eve", "frobnicate now")
    assert "status" in unknown  # an unknown command gets help, not silence


def test_subscribe_and_admin_only_commands(chat: Chat) -> None:
    assert "subscribed" in chat.ask_dm("eve", "subscribe digest").lower()
    with chat.db.engine.connect() as conn:
        subs = conn.execute(text("SELECT COUNT(*) FROM digest_subscriptions")).scalar()
    assert subs == 1
    refused = chat.ask_dm("eve", "retire polonius")
    assert "admin" in refused.lower()
    with chat.db.engine.connect() as conn:
        state = conn.execute(text("SELECT state FROM goals WHERE slug = 'polonius'")).scalar()
    assert state == "active"
    assert "Eve Lead" in chat.ask_dm("ada", "subscribers")


def test_skip_in_the_goal_topic_and_away(chat: Chat) -> None:
    topic = chat.goals["polonius"].zulip_topic
    answers = chat.ask_in("ben", STREAM, topic, "@**Goals Bot** skip")
    assert "no update needed" in answers[0]["content"]
    with chat.db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM skips")).scalar() == 1
    future = datetime.now(UTC).date().replace(year=datetime.now(UTC).year + 1).isoformat()
    assert "back" in chat.ask_dm("ben", f"away until {future}").lower()
    with chat.db.engine.connect() as conn:
        away = conn.execute(
            text("SELECT away_until FROM people WHERE zulip_user_id = :u"),
            {"u": chat.users["ben"].user_id},
        ).scalar()
    assert str(away) == future
