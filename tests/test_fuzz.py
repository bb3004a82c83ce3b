"""Bad input: generated messages and malformed events through the real handlers.

In process, ``GoalsBot.process_events`` (event parsing, ``replies.store_messages``, then
``commands.parse``/``handle`` for the commands) runs on a real database with 10,000 generated
messages: commands, replies, random Unicode, 10,000-character texts, Markdown, code fences,
mentions, wildcards and HTML.  Nothing may raise, every answer must be valid for Zulip (under
10,000 characters, no wildcard, no un-silenced mention of someone else), and the database must
stay consistent (every message handled once, updates only for existing goals, by their owners).
A smaller sample goes end to end through the emulator, and malformed events (missing fields,
unknown types, unknown or deactivated users) are injected into the running bot's event queue.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from fakezulip import FakeZulip, Realm
from tests.dbs import new_database
from tests.support import BotProcess, add_goal, database_for, wait_until, write_conf
from tests.test_security import QUIET, unsafe_in
from zulip_goals_bot.bot.app import GoalsBot
from zulip_goals_bot.bot.outgoing import Outgoing
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Goal, GoalOwner, HandledMessage, Person, Update
from zulip_goals_bot.domain.markdown import MAX_MESSAGE_LENGTH
from zulip_goals_bot.domain.states import GoalState, OwnerRole, UpdateKind
from zulip_goals_bot.goals.topics import goal_topic

STREAM = "project-goals"
BOT_ID = 2
BOT_NAME = "Goals Bot"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
# Generated messages fed in process: EXAMPLES batches of BATCH messages.
EXAMPLES = 100
BATCH = 100


@dataclass(frozen=True)
class Member:
    user_id: int
    full_name: str
    email: str

    def recipient(self) -> dict[str, Any]:
        return {"id": self.user_id, "email": self.email, "full_name": self.full_name}


BOT = Member(BOT_ID, BOT_NAME, "goals-bot@example.com")
ADA = Member(1, "Ada Admin", "ada@example.com")  # an admin by bot.conf
BEN = Member(3, "Ben Owner", "ben@example.com")
CHLOE = Member(4, "Chloé Owner", "chloe@example.com")
EVE = Member(6, "Eve Lead", "eve@example.com")  # owns nothing
STRANGER = Member(999, "Zed **Stranger**|1", "zed@example.com")  # unknown to the realm
PEOPLE = (ADA, BEN, CHLOE, EVE, STRANGER)

GOALS = (
    ("polonius", "Scale Polonius", (BEN,)),
    ("async", "Async closures", (CHLOE,)),
    ("shared", "Shared goal", (BEN, CHLOE)),
    ("evil", "@**all** and <b>HTML</b> `code`", (BEN,)),
)


class StubZulip:
    """Stands in for ZulipIO where the in-process bot would talk to Zulip: it never does."""

    site = "https://zulip.example.com"

    def whoami(self) -> dict[str, Any]:
        return {"user_id": BOT_ID, "full_name": BOT_NAME}


@dataclass
class Harness:
    bot: GoalsBot
    db: Database
    goal_ids: dict[str, int]
    topics: dict[str, str]
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    def drain(self) -> list[Outgoing]:
        return self.bot.outgoing.drain()


def make_harness(tmp_path: Path) -> Harness:
    db = new_database(tmp_path)
    with db.write() as s:
        people = {
            m.user_id: Person(
                zulip_user_id=m.user_id, email=m.email, full_name=m.full_name, created_at=NOW
            )
            for m in (ADA, BEN, CHLOE, EVE)
        }
        s.add_all(people.values())
        s.flush()
        goal_ids, topics = {}, {}
        taken: set[str] = set()
        for i, (slug, title, owners) in enumerate(GOALS):
            topic = goal_topic(title, None, 100 + i, taken)
            taken.add(topic)
            goal = Goal(
                period="2026h1",
                slug=slug,
                title=title,
                status="Accepted",
                tracking_issue=100 + i,
                zulip_topic=topic,
                state=GoalState.ACTIVE,
                active=True,
                teams="",
                extra={},
                created_at=NOW - timedelta(days=60),
                updated_at=NOW - timedelta(days=60),
            )
            s.add(goal)
            s.flush()
            for pos, owner in enumerate(owners):
                s.add(
                    GoalOwner(
                        goal_id=goal.id,
                        person_id=people[owner.user_id].id,
                        role=OwnerRole.POINT_OF_CONTACT,
                        position=pos,
                    )
                )
            goal_ids[slug], topics[slug] = goal.id, topic
    config = Config(path=None, zuliprc=Path("zuliprc"), admins=frozenset({ADA.email}))
    stub: Any = StubZulip()
    bot = GoalsBot(config, db, stub, stub, FrozenClock(NOW))
    return Harness(bot, db, goal_ids, topics)


# ============================================================================ generated messages

COMMANDS = (
    "status {goal}",
    "history {goal} {n}",
    "list",
    "list team {text}",
    "list flagship",
    "mine",
    "overdue",
    "help",
    "about",
    "subscribe digest",
    "unsubscribe digest",
    "I am @{handle}",
    "skip {goal}",
    "skip",
    "away until 2026-0{n}-1{n}",
    "away for {n} weeks",
    "back",
    "pause {goal}",
    "resume {goal}",
    "complete {goal}",
    "goal add {handle} {text}",
    "owners add {goal} @{handle}",
    "owners set {goal} {mention}",
    "owners remove {goal} {mention}",
    "cadence {goal} {n}",
    "retire {goal}",
    "map @{handle} {mention}",
    "subscribers",
    "update {goal}: {text}",
    "{text}",
)

handles = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)
mentions = st.sampled_from(
    [
        "@**all**",
        "@**everyone**",
        "@**stream**",
        "@**channel**",
        "@**topic**",
        "@_**all**",
        "@*rust-team*",
        "@**Ben Owner|3**",
        "@**Ben Owner**",
        "@_**Chloé Owner|4**",
        "@**Eve Lead|6**",
        "@**Goals Bot|2**",
        "@**Nobody Known|777**",
    ]
)
markup = st.sampled_from(
    [
        "**bold** _it_ ~~gone~~",
        "```\n@**all** in a fence\n```",
        "````quote\n@**everyone** quoted\n````",
        "<script>alert(1)</script><b>html</b>&amp;",
        "[link](https://example.com/@**all**)",
        "> quoted @**all**\n\nTL;DR: something",
        "Help wanted: @**everyone** reviewers",
        "`@**all**` and ``@*team*``",
        "| a | b |\n|---|---|\n| @**all** | x |",
        "$$x^2$$ :tada: <time:2026-01-01T00:00:00Z>",
        "#**project-goals>Scale Polonius** and #**general**",
        "\u202eRTL\u200b zero\u200dwidth\ufeff",
    ]
)
unicode_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=200,
)
huge = st.builds(
    lambda unit, n: (unit * (MAX_MESSAGE_LENGTH // max(len(unit), 1) + 1))[:n],
    st.sampled_from(["a", "@**all** ", "```", "é🦀", "**", "\n", "TL;DR: x\n\n", "<b>"]),
    st.integers(min_value=9_000, max_value=MAX_MESSAGE_LENGTH),
)
free_text = st.one_of(unicode_text, markup, mentions, huge, st.just(""), st.just("   \n  "))
goal_words = st.one_of(
    st.sampled_from([g[0] for g in GOALS] + ["Scale Polonius", "#100", "polonus", "@**all**"]),
    unicode_text,
)


@st.composite
def command_text(draw: st.DrawFn) -> str:
    template = draw(st.sampled_from(COMMANDS))
    text = template.format(
        goal=draw(goal_words),
        n=draw(st.integers(min_value=-3, max_value=99)),
        text=draw(free_text),
        handle=draw(handles),
        mention=draw(mentions),
    )
    if draw(st.booleans()):
        text = f"@**{BOT_NAME}** " + text
    return text


@st.composite
def message_spec(draw: st.DrawFn) -> dict[str, Any]:
    """A message as the generator wants it; ``Feed.event`` turns it into a Zulip event."""
    sender = draw(st.sampled_from(PEOPLE))
    where = draw(st.sampled_from(["dm", "goal topic", "other topic", "other stream"]))
    content = draw(
        st.one_of(command_text(), free_text, st.builds(" ".join, st.lists(free_text, max_size=4)))
    )
    return {
        "sender": sender,
        "where": where,
        "goal": draw(st.sampled_from([g[0] for g in GOALS])),
        "topic": draw(st.one_of(unicode_text.filter(str.strip), st.just("✔ "))),
        "content": content,
    }


def message_event(h: Harness, spec: Mapping[str, Any], message_id: int) -> dict[str, Any]:
    sender: Member = spec["sender"]
    message: dict[str, Any] = {
        "id": message_id,
        "sender_id": sender.user_id,
        "sender_email": sender.email,
        "sender_full_name": sender.full_name,
        "content": spec["content"],
        "timestamp": int(NOW.timestamp()),
        "client": "website",
    }
    if spec["where"] == "dm":
        message |= {"type": "private", "display_recipient": [sender.recipient(), BOT.recipient()]}
    else:
        stream = "general" if spec["where"] == "other stream" else STREAM
        topic = h.topics[spec["goal"]] if spec["where"] == "goal topic" else spec["topic"]
        if spec["topic"] == "✔ " and spec["where"] == "goal topic":
            topic = "✔ " + topic  # a resolved goal topic is still the goal's
        message |= {"type": "stream", "display_recipient": stream, "subject": topic}
    flags = ["mentioned"] if f"@**{BOT_NAME}**" in spec["content"] else []
    return {"type": "message", "message": message, "flags": flags}


def check_answer(item: Outgoing) -> list[str]:
    """Why an answer the bot queued would be invalid on Zulip, if it would."""
    if item.kind == "react":
        return []
    if item.kind == "dm":
        (user_ids, content) = item.args
        recipients = frozenset({*user_ids, BOT_ID})
    else:
        (_stream, _topic, content) = item.args
        recipients = frozenset()
    problems = [f"{item.kind} answer: {p}" for p in unsafe_in(content, recipients)]
    if not content.strip():
        problems.append(f"{item.kind} answer is empty")
    if len(content) > MAX_MESSAGE_LENGTH:
        problems.append(f"{item.kind} answer of {len(content)} characters")
    return problems


def check_database(
    h: Harness, fed: Sequence[int], owners_before: set[tuple[int | None, int | None]]
) -> None:
    with h.db.read() as s:
        handled = set(
            s.execute(
                select(HandledMessage.zulip_message_id).where(
                    HandledMessage.zulip_message_id.in_(fed)
                )
            ).scalars()
        )
        assert handled == set(fed)
        dangling = s.execute(
            select(func.count())
            .select_from(Update)
            .outerjoin(Goal, Goal.id == Update.goal_id)
            .where(Update.goal_id.is_not(None), Goal.id.is_(None))
        ).scalar_one()
        assert dangling == 0
        # An update is always by one of its goal's owners, before or after the batch (Ada, an
        # admin, may change the owners within it).
        updates = set(
            s.execute(
                select(Update.goal_id, Update.author_id).where(
                    Update.kind == UpdateKind.UPDATE, Update.zulip_message_id.in_(fed)
                )
            ).all()
        )
        assert updates <= owners_before | owners(h)


def owners(h: Harness) -> set[tuple[int | None, int | None]]:
    with h.db.read() as s:
        return set(s.execute(select(GoalOwner.goal_id, GoalOwner.person_id)).all())


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = make_harness(tmp_path_factory.mktemp("fuzz"))
    yield h
    h.db.dispose()


# Commands that change who owns what are generated too: Ada (an admin) may run them, the others
# must be refused; either way no update may come from someone who never owned its goal.
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(specs=st.lists(message_spec(), min_size=BATCH, max_size=BATCH))
def test_ten_thousand_generated_messages(
    harness: Harness, specs: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    h = harness
    caplog.set_level(logging.ERROR, logger="zulip_goals_bot")
    commands_before = h.bot.stats.commands
    events = [message_event(h, spec, next(h.ids)) for spec in specs]
    owners_before = owners(h)
    fed = [e["message"]["id"] for e in events]
    h.bot.process_events(events)
    out = h.drain()
    problems = [p for item in out for p in check_answer(item)]
    assert not problems, problems
    crashed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not crashed, crashed
    # Every command got one answer (the last part of a split one carries the "answered" mark).
    answered = sum(1 for item in out if item.after is not None)
    assert answered == h.bot.stats.commands - commands_before
    check_database(h, fed, owners_before)
    # The same batch again (a re-delivered queue, a backfill): nothing new happens.
    before = h.bot.stats.commands
    h.bot.process_events(events)
    assert h.drain() == [] and h.bot.stats.commands == before


# ============================================================================ malformed events


def test_malformed_events_are_logged_and_skipped_by_the_running_bot(tmp_path: Path) -> None:
    realm = Realm.demo()
    with FakeZulip(realm, heartbeat_seconds=2.0) as server:
        bot_user = realm.user_by_email("goals-bot@example.com")
        ben, chloe = realm.user_by_name("Ben Owner"), realm.user_by_name("Chloé Owner")
        conf = write_conf(tmp_path, server, bot_user, extra=QUIET)
        db = database_for(conf)
        goal = add_goal(
            db,
            "polonius",
            "Scale Polonius",
            [(u.user_id, u.email, u.full_name) for u in (ben, chloe)],
        )
        stamp = int(datetime.now(UTC).timestamp())

        def message(mid: int, sender_id: int, content: str) -> dict[str, Any]:
            return {
                "id": mid,
                "type": "stream",
                "sender_id": sender_id,
                "sender_email": f"user{sender_id}@example.com",
                "sender_full_name": f"User {sender_id}",
                "display_recipient": STREAM,
                "subject": goal.zulip_topic,
                "content": content,
                "timestamp": stamp,
            }

        malformed: list[dict[str, Any]] = [
            {"type": "message"},
            {"type": "message", "message": "not an object"},
            {"type": "message", "message": {"id": 900001, "type": "stream"}},
            {"type": "message", "message": {**message(900002, ben.user_id, "x"), "id": "x"}},
            {"type": "update_message"},
            {"type": "update_message", "message_id": "twelve", "content": "edited"},
            {"type": "update_message", "message_ids": [None, {}], "content": "edited"},
            {"type": "delete_message"},
            {"type": "delete_message", "message_ids": "not a list"},
            {"type": "frobnicate", "data": [1, 2, 3]},
            {"no type": True},
        ]
        # Well-formed but odd: a user the realm never had, and an owner deactivated since.
        server.deactivate_user(chloe)
        odd = [
            {"type": "message", "message": message(900010, 4242, "TL;DR: who am I?")},
            {"type": "message", "message": message(900011, chloe.user_id, "TL;DR: left")},
        ]
        with BotProcess(conf) as bot:
            for event in malformed + odd:
                assert server.inject_event(bot_user, event) == 1
            after = server.send_stream_message(ben, STREAM, goal.zulip_topic, "TL;DR: still here")
            assert wait_until(lambda: bool(server.message(after)["reactions"])), bot.log()[-3000:]
            assert bot.alive()
            log = bot.log()
        assert "Traceback" not in log and "crashed" not in log, log[-3000:]
        assert log.count("skipping a malformed") + log.count("of unknown type") == len(malformed)
        with db.read() as s:
            stored = dict(s.execute(select(Update.zulip_message_id, Update.kind)).all())
        # The real update is stored, the odd ones kept (the deactivated owner's is an update;
        # the stranger's a comment), and nothing of the malformed ones.
        assert stored == {
            after: UpdateKind.UPDATE,
            900011: UpdateKind.UPDATE,
            900010: UpdateKind.COMMENT,
        }
        db.dispose()
