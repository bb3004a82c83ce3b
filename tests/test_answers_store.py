"""Answers to where the bot filed a DM, stored in process on a real database.

Ben owns three goals (Scale Polonius, Shared goal, and one titled with a wildcard).  After the bot
files one of his DMs by itself, a goal's name moves it there, "wrong goal" takes it back and asks
which goal; neither answer is stored.  Each conversation runs as one batch, as a batch per
message, and in small slices of a backlog: the result is the same.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from sqlalchemy import select

from tests.support import add_goal
from tests.test_fuzz import BEN, NOW, Harness, Member, check_answer, make_harness, message_event
from zulip_goals_bot.bot import ingest
from zulip_goals_bot.db.models import Update
from zulip_goals_bot.domain.states import UpdateKind

START = NOW - timedelta(minutes=30)
# How the conversation reaches the bot: all at once, a message at a time, a backlog in slices.
WAYS = ["one batch", "one by one", "slices of 1", "slices of 2"]


class Talk:
    """A DM conversation with the bot: messages at given minutes after START."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.events: list[dict[str, Any]] = []
        self.ids: dict[str, int] = {}

    def say(self, minute: float, text: str, *, who: Member = BEN, topic: str = "") -> int:
        spec = {"sender": who, "where": "goal topic" if topic else "dm", "goal": topic,
                "topic": "", "content": text}  # fmt: skip
        mid = 30_000 + len(self.events)
        event = message_event(self.h, spec, mid)
        event["message"]["timestamp"] = int((START + timedelta(minutes=minute)).timestamp())
        self.events.append(event)
        self.ids[text] = mid
        return mid

    def run(self, way: str) -> list[str]:
        """Deliver the conversation; the DMs the bot sent, in order."""
        if way == "one by one":
            for event in self.events:
                self.h.bot.process_events([event])
        else:
            size = {"slices of 1": 1, "slices of 2": 2}.get(way, 1_000)
            with patch.object(ingest, "STORE_SLICE", size):
                self.h.bot.process_events(self.events)
        out = self.h.drain()
        assert [p for item in out for p in check_answer(item)] == []  # nothing pings anyone
        return [item.args[1] for item in out if item.kind == "dm"]

    def row(self, text: str) -> Update | None:
        with self.h.db.read() as s:
            return s.execute(
                select(Update).where(Update.zulip_message_id == self.ids[text])
            ).scalar_one_or_none()


@pytest.fixture
def talk(tmp_path: Path) -> Talk:
    return Talk(make_harness(tmp_path))


@pytest.mark.parametrize("way", WAYS)
def test_a_goal_named_after_a_follow_up_moves_it_there(talk: Talk, way: str) -> None:
    h = talk.h
    talk.say(0, "Wrote the design doc and got feedback.")
    talk.say(1, "1")  # the first of his goals in the question: Scale Polonius
    talk.say(3, "Another note: the PR is merged.")
    talk.say(4, "shared goal")
    dms = talk.run(way)
    assert "which goal it is for" in dms[0]
    assert dms[1] == (
        "Saved as an update of **Scale Polonius** (you updated it moments ago). "
        "Another goal? Say `move to <goal>`."
    )
    assert dms[2:] == [
        "Moved your update (“Another note: the PR is merged.”) to **Shared goal**; status, the "
        "digest, the site and the blog export show it there."
    ]
    first, note = (
        talk.row("Wrote the design doc and got feedback."),
        talk.row("Another note: the PR is merged."),
    )
    assert first is not None and note is not None
    assert (first.goal_id, first.kind) == (h.goal_ids["polonius"], UpdateKind.UPDATE)
    assert (note.goal_id, note.kind) == (h.goal_ids["shared"], UpdateKind.UPDATE)
    assert talk.row("shared goal") is None and talk.row("1") is None  # answers are no updates


@pytest.mark.parametrize("answer", ["Shared goal", "shraed goal", "#102", "no, the shared one"])
def test_the_goal_can_be_named_any_way_status_reads_names(talk: Talk, answer: str) -> None:
    talk.say(0, "update polonius: TL;DR: the solver is in", who=BEN)
    talk.say(2, "and the docs are merged")  # a follow-up, filed under Polonius by the bot
    talk.say(3, answer)
    dms = talk.run("one batch")
    assert dms[-1].startswith("Moved your update (“and the docs are merged”) to **Shared goal**")
    moved = talk.row("and the docs are merged")
    assert moved is not None and moved.goal_id == talk.h.goal_ids["shared"]
    # Its TL;DR was carried from the Polonius update before it: it stays with Polonius.
    assert moved.tldr is None
    assert talk.row(answer) is None


@pytest.mark.parametrize("way", WAYS)
def test_a_moved_update_keeps_its_own_summary(talk: Talk, way: str) -> None:
    talk.say(0, "update polonius: first part")
    talk.say(1, "TL;DR: merged\n\nHelp wanted: testers for the new flag")
    talk.say(2, "shared")
    talk.run(way)
    moved = talk.row("TL;DR: merged\n\nHelp wanted: testers for the new flag")
    assert moved is not None and moved.goal_id == talk.h.goal_ids["shared"]
    assert (moved.tldr, moved.help_wanted) == ("merged", "testers for the new flag")


@pytest.mark.parametrize("way", WAYS)
def test_wrong_goal_takes_the_update_back_and_a_number_files_it(talk: Talk, way: str) -> None:
    h = talk.h
    talk.say(0, "update polonius: TL;DR: solver")
    talk.say(1, "Another note: the PR is merged.")
    talk.say(2, "wrong goal")
    talk.say(3, "2")  # the second goal of the list: Shared goal
    dms = talk.run(way)
    assert dms[0].startswith("Saved as an update of **Scale Polonius**")
    question = dms[1]
    assert question.startswith(
        "OK, I took your update (“Another note: the PR is merged.”) off **Scale Polonius**. "
        "Which goal is it for? Reply with the number or the name:\n"
    )
    assert "1. Scale Polonius\n2. Shared goal\n3. " in question
    assert len(dms) == 2  # the number is answered by filing it (and a reaction), no more words
    note = talk.row("Another note: the PR is merged.")
    assert note is not None
    assert (note.goal_id, note.kind, note.tldr) == (h.goal_ids["shared"], UpdateKind.UPDATE, None)
    assert talk.row("wrong goal") is None and talk.row("2") is None


def test_wrong_goal_with_no_answer_leaves_the_update_waiting(talk: Talk) -> None:
    talk.say(0, "update polonius: TL;DR: solver")
    talk.say(1, "Another note: the PR is merged.")
    talk.say(2, "no")
    talk.say(3, "nope")  # asked again, nothing else changes
    dms = talk.run("one by one")
    assert dms[1].startswith("OK, I took your update")
    assert dms[2].startswith("Which goal is your message (“Another note: the PR is merged.”) for?")
    note = talk.row("Another note: the PR is merged.")
    assert note is not None and (note.goal_id, note.kind) == (None, UpdateKind.PENDING)


@pytest.mark.parametrize("way", WAYS)
def test_after_the_update_window_a_goal_name_asks_for_its_status(talk: Talk, way: str) -> None:
    window = talk.h.bot.config.update_window_minutes
    talk.say(0, "update polonius: TL;DR: solver")
    talk.say(1, "Another note: the PR is merged.")
    talk.say(2 + window, "shared goal")
    dms = talk.run(way)
    assert "**Shared goal**" in dms[-1] and "Moved" not in dms[-1]  # the status of the goal
    note = talk.row("Another note: the PR is merged.")
    assert note is not None and note.goal_id == talk.h.goal_ids["polonius"]
    assert talk.row("shared goal") is None


def test_a_goal_name_with_nothing_filed_is_status_and_thanks_is_nothing(talk: Talk) -> None:
    talk.say(0, "Shared goal")
    talk.say(1, "thanks!")
    talk.say(2, "👍")
    dms = talk.run("one batch")
    assert len(dms) == 1 and "**Shared goal**" in dms[0]
    with talk.h.db.read() as s:
        assert s.execute(select(Update)).scalars().all() == []


def test_naming_the_goal_it_is_filed_under_changes_nothing(talk: Talk) -> None:
    talk.say(0, "update polonius: TL;DR: solver")
    talk.say(1, "Another note: the PR is merged.")
    talk.say(2, "polonius")
    dms = talk.run("one batch")
    assert dms[-1] == (
        "Your last update (“Another note: the PR is merged.”) is already filed under "
        "**Scale Polonius**."
    )


def test_the_owner_of_one_goal_saying_wrong_goal_is_told_it_is_the_only_one(
    tmp_path: Path,
) -> None:
    h = make_harness(tmp_path)
    solo = Member(120, "Solo Owner", "solo@example.com")
    add_goal(h.db, "solo", "Solo goal", [(solo.user_id, solo.email, solo.full_name)])
    talk = Talk(h)
    talk.say(0, "Landed the parser.", who=solo)
    talk.say(1, "wrong goal", who=solo)
    dms = talk.run("one batch")
    assert dms == [
        "**Solo goal** is your only goal, so your update stays there. Say `undo` within 10 "
        "minutes to remove it."
    ]


@pytest.mark.parametrize("way", WAYS)
def test_a_move_is_seen_by_the_summaries_of_the_rest_of_the_backlog(talk: Talk, way: str) -> None:
    """The update moved away from Polonius no longer lends its TL;DR to the next Polonius
    update, in whichever slice of a backlog that comes."""
    talk.say(0, "TL;DR: plan A", topic="polonius")
    talk.say(1, "TL;DR: plan B")  # a follow-up DM, filed under Polonius
    talk.say(2, "shared goal")  # ...moved to Shared goal
    talk.say(3, "and some more", topic="polonius")
    talk.run(way)
    later = talk.row("and some more")
    assert later is not None and later.tldr == "plan A"
