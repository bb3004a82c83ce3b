"""Answers that match intent, end to end: the bot as a subprocess against the emulator.

Chloé owns three goals.  She sends an update naming none; the bot asks which goal, she answers
with the number.  Two minutes later she adds a note; the bot files it under the goal she just
updated and says so.  The note was about another goal, so she answers the way people answer:
with that goal's name (or a typo of it, or its tracking issue), or "wrong goal" and then a
number.  The note ends under the goal she meant, her answer is stored as nothing, and the bot
says so in one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import wait_until
from tests.test_replies_e2e import World, answers, dm, running_world

NOTE = "Another note: the PR is merged."
FILED = (
    "Saved as an update of **Async closures** (you updated it moments ago). "
    "Another goal? Say `move to <goal>`."
)


# Chloé owns three goals.
GOALS = (
    ("async", "Async closures", "chloe", 105),
    ("docs", "Better docs", "chloe", 120),
    ("rfl", "Rust for Linux", "chloe", 116),
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with running_world(tmp_path, GOALS) as w:
        yield w


def filed_by_the_bot(w: World) -> tuple[int, int]:
    """The conversation up to the bot's guess: (the first update's id, the note's id)."""
    first = dm(w, "chloe", "Wrote the RFC draft and got feedback from the lang team.")
    assert "which goal it is for" in answers(w, "chloe", 1)[0]
    w.wait_row(first, kind="pending", goal_id=None)
    dm(w, "chloe", "1")
    w.wait_row(first, kind="update", goal_id=w.goals["async"].id)
    note = dm(w, "chloe", NOTE)
    w.wait_row(note, kind="update", goal_id=w.goals["async"].id, source="dm")
    assert answers(w, "chloe", 2)[-1] == FILED
    return first, note


@pytest.mark.parametrize("answer", ["rust for linux", "rust for linx", "#116"])
def test_naming_the_goal_moves_the_note_there_and_stores_nothing_else(
    world: World, answer: str
) -> None:
    w = world
    first, note = filed_by_the_bot(w)
    said = dm(w, "chloe", answer)
    w.wait_row(note, goal_id=w.goals["rfl"].id, kind="update")
    (moved,) = answers(w, "chloe", 3)[2:]
    assert moved == (
        f"Moved your update (“{NOTE}”) to **Rust for Linux**; status, the digest, the site and "
        "the blog export show it there."
    )
    assert w.rows("zulip_message_id = :m", m=said) == []  # the answer is no update
    assert w.row(first)["goal_id"] == w.goals["async"].id  # the first update stays
    assert [r["content"] for r in w.rows("goal_id = :g", g=w.goals["rfl"].id)] == [NOTE]
    assert not w.reacted(said)
    # One confirmation line and no "Saved as an update" again: the next thing the bot says is
    # the answer to the next question, and the goal's status shows the note.
    dm(w, "chloe", "status rfl")
    after = answers(w, "chloe", 4)
    assert after[1:3] == [FILED, moved]
    assert "**Rust for Linux**" in after[3] and NOTE in after[3]


def test_wrong_goal_then_a_number_files_the_note_under_that_goal(world: World) -> None:
    w = world
    _first, note = filed_by_the_bot(w)
    wrong = dm(w, "chloe", "wrong goal")
    question = answers(w, "chloe", 3)[-1]
    assert question == (
        f"OK, I took your update (“{NOTE}”) off **Async closures**. Which goal is it for? "
        "Reply with the number or the name:\n1. Async closures\n2. Better docs\n3. Rust for Linux"
    )
    w.wait_row(note, kind="pending", goal_id=None)
    number = dm(w, "chloe", "3")
    w.wait_row(note, kind="update", goal_id=w.goals["rfl"].id)
    assert w.rows("zulip_message_id IN (:a, :b)", a=wrong, b=number) == []
    assert wait_until(lambda: w.reacted(number))
    assert len(w.dms_to("chloe")) == 3


def test_a_goal_name_alone_is_answered_with_its_status(world: World) -> None:
    w = world
    said = dm(w, "chloe", "Rust for Linux")
    (status,) = answers(w, "chloe", 1)
    assert "**Rust for Linux**" in status and "Moved" not in status
    for text in ("thanks!", "ok", "👍"):
        dm(w, "chloe", text)
    last = dm(w, "eve", "status rfl")  # a marker: Eve's answer comes after Chloé's DMs
    assert "Rust for Linux" in answers(w, "eve", 1)[0]
    assert len(w.dms_to("chloe")) == 1  # thanks, ok and the emoji need no answer
    assert w.rows() == [] and not w.reacted(said) and not w.reacted(last)
