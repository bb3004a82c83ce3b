"""Batching is invisible: storing a batch fast gives what storing its events one at a time gives.

``Ingest.process_events`` stores a backlog with fast paths (summaries remembered from slice to
slice, chunks split at edits and deletes, duplicates dropped and ids looked up as a range, rows
written in bulk).  Each is an optimisation only: a message, edit or delete must leave the same
``updates`` rows whether it arrives in a backlog of thousands or alone.  Here generated batches
are stored once through the fast path, in small slices, and once event by event (each a batch of
one, where none of the fast paths has anything to remember or merge), on two copies of the same
SQLite database; the stored updates and handled messages must be the same.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.dbs import new_database
from tests.support import add_goal
from tests.test_fuzz import ADA, BEN, BOT, CHLOE, EVE, NOW, STREAM, Member, StubZulip
from zulip_goals_bot.bot import ingest
from zulip_goals_bot.bot.app import GoalsBot
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Goal, HandledMessage, Update

pytestmark = pytest.mark.sqlite_only  # the database is copied as a file for each example

# More owners than ``store.FEW_PEOPLE``, each of one goal, so a batch may come from many senders.
EXTRA = tuple(Member(200 + i, f"Owner {i}", f"owner{i}@example.com") for i in range(10))
GOAL_OWNERS: tuple[tuple[str, str, tuple[Member, ...]], ...] = (
    ("polonius", "Scale Polonius", (BEN,)),
    ("async", "Async closures", (CHLOE,)),
    ("shared", "Shared goal", (BEN, CHLOE)),
    *((f"team-{i}", f"Team goal {i}", (m,)) for i, m in enumerate(EXTRA)),
)
FEW = (BEN, CHLOE)
MANY = (BEN, CHLOE, EVE, ADA, *EXTRA)
STREAM_IDS = {7: STREAM, 8: "general"}
# Texts that route as updates, comments, follow-ups, named DMs, answers to the bot's question
# and to where it filed a DM (a goal's name moves the update, "wrong goal" takes it back and
# asks), never as commands with effects (those would run at a different time in the two; a
# goal's name with nothing just filed asks `status`, which changes nothing).
CONTENTS = (
    "TL;DR: plan A",
    "TL;DR: plan B\n\nHelp wanted: reviewers",
    "Help wanted: testers",
    "more details on the work",
    "the solver is faster now",
    "update polonius: TL;DR: named",
    "update shared: merged the docs",
    "shared: progress on the shared part",
    "polonius",
    "2",
    "shared goal",
    "no",
    "wrong goal",
    "thanks!",
)
# Gaps between messages, in seconds: within the update window (10 minutes) and beyond it.
GAPS = st.sampled_from([1, 30, 300, 599, 601, 900])
# Goal slug -> Zulip topic, filled by the ``template`` fixture before the first example.
TOPICS: dict[str, str] = {}


@dataclass(frozen=True)
class Template:
    path: Path
    topics: Mapping[str, str]  # goal slug -> its Zulip topic


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """A migrated database with the people and goals, copied for each example: migrating a new
    database twice per example would cost most of the test's time."""
    folder = tmp_path_factory.mktemp("store-property")
    db = new_database(folder, "template")
    for slug, title, owners in GOAL_OWNERS:
        add_goal(db, slug, title, [(m.user_id, m.email, m.full_name) for m in owners])
    with db.write() as s:
        topics = {slug: topic for slug, topic in s.execute(select(Goal.slug, Goal.zulip_topic))}
    db.dispose()  # the last connection checkpoints the WAL: the file alone is the database
    TOPICS.update(topics)  # the strategies build messages in goal topics
    yield Template(folder / "template.sqlite3", topics)


def open_bot(template: Template, folder: Path, name: str) -> tuple[GoalsBot, Database]:
    path = folder / f"{name}.sqlite3"
    shutil.copyfile(template.path, path)
    db = Database(f"sqlite:///{path}")
    config = Config(path=None, zuliprc=Path("zuliprc"), admins=frozenset({ADA.email}))
    stub: Any = StubZulip()
    bot = GoalsBot(config, db, stub, stub, FrozenClock(NOW))
    bot.ingest.stream_names = dict(STREAM_IDS)
    return bot, db


# ------------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class Message:
    sender: Member
    where: str  # "dm", "goal topic" or "other topic"
    goal: str
    content: str


@dataclass(frozen=True)
class Change:
    """An edit, move, delete or re-delivery of the n-th message of the batch (n modulo their
    number, so the message may come later in the batch than the change)."""

    kind: str  # "edit", "move", "delete" or "again"
    target: int
    value: str = ""  # the new content, or the goal (or other topic) moved to


def messages(senders: Sequence[Member]) -> st.SearchStrategy[tuple[Message, int]]:
    message = st.builds(
        Message,
        sender=st.sampled_from(senders),
        where=st.sampled_from(["dm", "dm", "goal topic", "goal topic", "other topic"]),
        goal=st.sampled_from([g[0] for g in GOAL_OWNERS[:5]]),
        content=st.sampled_from(CONTENTS),
    )
    return st.tuples(message, GAPS)


target = st.integers(min_value=0, max_value=40)
changes = st.one_of(
    st.builds(Change, st.just("edit"), target, st.sampled_from(CONTENTS)),
    st.builds(Change, st.just("move"), target, st.sampled_from(["polonius", "shared", "chat"])),
    st.builds(Change, st.just("delete"), target),
    st.builds(Change, st.just("again"), target),
)


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int]:
    """Events as Zulip sends them, and the slice size of the fast path."""
    senders = draw(st.sampled_from([FEW, MANY]))
    ops = draw(st.lists(st.one_of(messages(senders), messages(senders), changes), max_size=40))
    dense = draw(st.booleans())  # ids close together are looked up as a range
    slice_size = draw(st.integers(min_value=1, max_value=8))
    mid = 10_000
    at = int((NOW - timedelta(hours=6)).timestamp())
    sent: list[dict[str, Any]] = []
    for op in ops:
        if isinstance(op, tuple):
            msg, gap = op
            mid += 1 if dense else draw(st.integers(min_value=1, max_value=50))
            at += gap
            sent.append(message_event(msg, mid, at))
    events: list[dict[str, Any]] = []
    new = iter(sent)
    for op in ops:
        if isinstance(op, tuple):
            events.append(next(new))
        elif sent:
            events.append(change_event(op, sent[op.target % len(sent)]["message"]))
    return events, slice_size


def change_event(change: Change, about: Mapping[str, Any]) -> dict[str, Any]:
    mid, edited = about["id"], about["timestamp"] + 60
    if change.kind == "again":  # a re-delivered event: the very same message
        return {"type": "message", "message": dict(about), "flags": []}
    if change.kind == "delete":
        return {"type": "delete_message", "message_ids": [mid]}
    event: dict[str, Any] = {"type": "update_message", "message_id": mid, "message_ids": [mid],
                             "edit_timestamp": edited}  # fmt: skip
    if change.kind == "edit":
        return event | {"content": change.value}
    topic = TOPICS.get(change.value, change.value)  # a goal's topic, or one of no goal
    return event | {"subject": topic, "stream_id": 7}


def message_event(msg: Message, message_id: int, timestamp: int) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": message_id,
        "sender_id": msg.sender.user_id,
        "sender_email": msg.sender.email,
        "sender_full_name": msg.sender.full_name,
        "content": msg.content,
        "timestamp": timestamp,
        "client": "website",
    }
    if msg.where == "dm":
        recipients = [msg.sender.recipient(), BOT.recipient()]
        message |= {"type": "private", "display_recipient": recipients}
    else:
        topic = TOPICS[msg.goal] if msg.where == "goal topic" else "chat"
        message |= {"type": "stream", "display_recipient": STREAM, "subject": topic}
    return {"type": "message", "message": message, "flags": []}


# ------------------------------------------------------------------------------- the state


def stored_state(db: Database) -> tuple[list[tuple[Any, ...]], dict[int, str]]:
    """Every column of every update that matters, by message id, and each handled outcome."""
    with db.read() as s:
        updates = [
            tuple(row)
            for row in s.execute(
                select(
                    Update.zulip_message_id,
                    Update.goal_id,
                    Update.author_id,
                    Update.kind,
                    Update.source,
                    Update.content,
                    Update.tldr,
                    Update.help_wanted,
                    Update.stream,
                    Update.topic,
                    Update.sent_at,
                    Update.edited_at,
                    Update.deleted,
                ).order_by(Update.zulip_message_id)
            )
        ]
        handled = dict(
            s.execute(select(HandledMessage.zulip_message_id, HandledMessage.outcome)).all()
        )
    return updates, handled


def stored_fast_and_slow(
    template: Template, events: Sequence[Mapping[str, Any]], slice_size: int
) -> tuple[Any, Any]:
    """The stored state after ``events`` through the fast path, and one event at a time."""
    with tempfile.TemporaryDirectory(dir=template.path.parent) as folder:
        fast, fast_db = open_bot(template, Path(folder), "fast")
        slow, slow_db = open_bot(template, Path(folder), "slow")
        try:
            with patch.object(ingest, "STORE_SLICE", slice_size):
                fast.process_events(events)
            for event in events:
                slow.process_events([event])
            return stored_state(fast_db), stored_state(slow_db)
        finally:
            fast_db.dispose()
            slow_db.dispose()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=batches())
def test_a_batch_stored_fast_equals_its_events_stored_one_at_a_time(
    template: Template, batch: tuple[list[dict[str, Any]], int]
) -> None:
    events, slice_size = batch
    got, want = stored_fast_and_slow(template, events, slice_size)
    assert got[0] == want[0]
    assert got[1] == want[1]


# A DM conversation of owners of several goals with the bot: updates it files by itself, then
# answers to where it filed them (a goal's name, "wrong goal", a number), acknowledgements.
TALK = (
    "TL;DR: plan A",
    "TL;DR: plan B\n\nHelp wanted: reviewers",
    "more details on the work",
    "update polonius: TL;DR: named",
    "polonius",
    "polonius ",
    "Scale Polonius",
    "shared goal",
    "no, shared",
    "async",
    "#102",
    "wrong goal",
    "no",
    "1",
    "2",
    "ok",
    "thanks!",
)
TALK_GAPS = st.sampled_from([1, 20, 60, 599, 601])


@st.composite
def conversations(draw: st.DrawFn) -> tuple[list[dict[str, Any]], int]:
    """DMs (and now and then a topic update, an edit or a delete) of Ben and Chloé."""
    sent: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    mid = 20_000
    at = int((NOW - timedelta(hours=6)).timestamp())
    for _ in range(draw(st.integers(min_value=1, max_value=30))):
        mid += 1
        at += draw(TALK_GAPS)
        sender = draw(st.sampled_from(FEW))
        where = draw(st.sampled_from(["dm", "dm", "dm", "dm", "goal topic"]))
        goal = "polonius" if sender is BEN else "async"
        msg = Message(
            sender, where, draw(st.sampled_from([goal, "shared"])), draw(st.sampled_from(TALK))
        )
        sent.append(message_event(msg, mid, at))
        events.append(sent[-1])
        if draw(st.integers(min_value=0, max_value=9)) == 0:
            change = draw(changes)
            events.append(change_event(change, sent[change.target % len(sent)]["message"]))
    return events, draw(st.integers(min_value=1, max_value=8))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=conversations())
def test_answers_to_where_the_bot_filed_a_dm_are_the_same_in_a_batch_and_one_at_a_time(
    template: Template, batch: tuple[list[dict[str, Any]], int]
) -> None:
    """A goal named right after the bot filed a DM moves it, "wrong goal" takes it back: the
    part of a batch after either routes on facts read again, so it stores what storing each
    message alone stores."""
    events, slice_size = batch
    got, want = stored_fast_and_slow(template, events, slice_size)
    assert got[0] == want[0]
    assert got[1] == want[1]
