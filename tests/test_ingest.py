"""Ingest as a functional core: a batch costs the same few statements for 1 message or 5,000.

``store_messages`` loads what routing needs once per batch, routes each message with plain data
and stores the results in bulk; counting the statements SQLAlchemy sends proves it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.test_fuzz import BEN, CHLOE, EVE, NOW, Harness, make_harness, message_event
from zulip_goals_bot.bot.replies import IncomingMessage
from zulip_goals_bot.bot.store import store_messages
from zulip_goals_bot.db.engine import Database

# Every kind of message a backlog holds, in turn: owners' updates in goal topics, comments,
# DMs from owners of one or several goals (named, follow-ups, unnamed), commands, strangers.
MIX: tuple[dict[str, Any], ...] = (
    {"sender": BEN, "where": "goal topic", "goal": "polonius", "topic": "", "content": "TL;DR: ok"},
    {"sender": EVE, "where": "goal topic", "goal": "polonius", "topic": "", "content": "nice!"},
    {"sender": CHLOE, "where": "goal topic", "goal": "shared", "topic": "", "content": "more"},
    {"sender": BEN, "where": "dm", "goal": "", "topic": "", "content": "update async: no, mine"},
    {"sender": CHLOE, "where": "dm", "goal": "", "topic": "", "content": "update async: done"},
    {"sender": CHLOE, "where": "dm", "goal": "", "topic": "", "content": "and the docs merged too"},
    {"sender": BEN, "where": "dm", "goal": "", "topic": "", "content": "The solver is faster now"},
    {"sender": EVE, "where": "dm", "goal": "", "topic": "", "content": "status polonius"},
    {"sender": BEN, "where": "dm", "goal": "", "topic": "", "content": "stauts polonius"},
    {"sender": EVE, "where": "other stream", "goal": "", "topic": "chat", "content": "hi all"},
)


@contextmanager
def counted(db: Database) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def batch(h: Harness, n: int, ids: Iterator[int]) -> list[IncomingMessage]:
    specs = itertools.islice(itertools.cycle(MIX), n)
    return [IncomingMessage.from_api(message_event(h, s, next(ids))["message"]) for s in specs]


def statements_for(h: Harness, messages: list[IncomingMessage]) -> list[str]:
    with counted(h.db) as statements, h.db.write() as session:
        effects = store_messages(session, h.bot.ctx.setting, messages, NOW)
    assert effects.stored + len(effects.commands) > 0
    return statements


# The statements of a batch: handled ids (2), people (1 and a flush), topics, ownership, owners
# of the topics with news, pending DMs, goal names (their change stamp, and the names when it
# moved), due states of multi-goal owners' goals (4),
# recent updates, carried summaries, the inserts, and one update of outcomes per outcome kind.
MAX_STATEMENTS = 22


@pytest.mark.parametrize("size", [1, len(MIX), 5_000])
def test_a_batch_costs_a_fixed_number_of_statements(tmp_path: Path, size: int) -> None:
    h = make_harness(tmp_path)
    ids = itertools.count(10_000)
    # The first message alone, then the whole mix, then a backlog of thousands.
    if size == 1:
        one = [m for m in batch(h, len(MIX), ids) if not m.is_stream and m.sender_id == BEN.user_id]
        statements = statements_for(h, one[-1:])
    else:
        statements = statements_for(h, batch(h, size, ids))
    assert len(statements) <= MAX_STATEMENTS, "\n".join(statements)


def test_the_backlog_costs_what_the_mix_costs(tmp_path: Path) -> None:
    h = make_harness(tmp_path)
    ids = itertools.count(20_000)
    statements_for(h, batch(h, len(MIX), ids))  # the goal names are read once, then kept
    small = statements_for(h, batch(h, len(MIX), ids))
    large = statements_for(h, batch(h, 5_000, ids))
    assert len(large) == len(small), (small, large)
