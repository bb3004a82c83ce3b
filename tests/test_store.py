"""Storing in process: a backlog in slices, summaries carried across them, and catching up with
edits, moves and deletes made while the bot was away."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from tests.support import add_goal
from tests.test_fuzz import BEN, CHLOE, NOW, Member, make_harness, message_event
from zulip_goals_bot.bot.catchup import StoredMessage, reconcile
from zulip_goals_bot.bot.ingest import STORE_SLICE
from zulip_goals_bot.bot.store import FEW_PEOPLE
from zulip_goals_bot.db.models import Goal, HandledMessage, Person, Update
from zulip_goals_bot.domain.states import UpdateKind


def test_a_backlog_is_stored_in_slices_and_follow_ups_keep_the_summary(tmp_path: Path) -> None:
    h = make_harness(tmp_path)
    first, last = 5_000, 5_000 + 2 * STORE_SLICE + 10
    specs = [{"sender": BEN, "where": "goal topic", "goal": "polonius", "topic": "x",
              "content": "TL;DR: solver rewritten\n\nHelp wanted: reviewers"}]  # fmt: skip
    specs += [
        {
            "sender": BEN if i % 2 else CHLOE,
            "where": "goal topic",
            "goal": "shared",
            "topic": "x",
            "content": f"more details {i}",
        }
        for i in range(last - first - 2)
    ]
    specs.append({"sender": BEN, "where": "goal topic", "goal": "polonius", "topic": "x",
                  "content": "also: thanks!"})  # fmt: skip
    events = [message_event(h, spec, first + i) for i, spec in enumerate(specs)]
    h.bot.process_events(events)
    out = h.drain()
    with h.db.read() as s:
        stored = s.execute(select(func.count()).select_from(Update)).scalar_one()
        handled = s.execute(select(func.count()).select_from(HandledMessage)).scalar_one()
        follow_up = s.execute(
            select(Update).where(Update.zulip_message_id == events[-1]["message"]["id"])
        ).scalar_one()
    assert stored == handled == len(events)
    # The follow-up is two slices after the message with the summary, by the same owner.
    assert follow_up.kind is UpdateKind.UPDATE
    assert (follow_up.tldr, follow_up.help_wanted) == ("solver rewritten", "reviewers")
    # Every update acknowledged once, after the whole backlog was stored.
    assert sorted(item.args[0] for item in out if item.kind == "react") == [
        e["message"]["id"] for e in events
    ]


def test_a_follow_up_slices_after_an_edit_carries_the_edited_summary(tmp_path: Path) -> None:
    """Summaries are remembered from slice to slice of a backlog, but an edit in between
    changes them: the follow-up carries what the update says after the edit."""
    h = make_harness(tmp_path)

    def spec(who: Member, goal: str, content: str) -> dict[str, Any]:
        return {"sender": who, "where": "goal topic", "goal": goal, "topic": "x",
                "content": content}  # fmt: skip

    first = 20_000
    events = [message_event(h, spec(BEN, "polonius", "TL;DR: first plan"), first)]
    filler = [spec(CHLOE, "async", f"details {i}") for i in range(STORE_SLICE + 10)]
    events += [message_event(h, f, first + 1 + i) for i, f in enumerate(filler)]
    edit_at = int(NOW.timestamp()) + 60
    events.append({"type": "update_message", "message_id": first, "message_ids": [first],
                   "content": "TL;DR: second plan", "edit_timestamp": edit_at})  # fmt: skip
    more = [spec(CHLOE, "async", f"more {i}") for i in range(STORE_SLICE)]
    start = first + 2 + len(filler)
    events += [message_event(h, f, start + i) for i, f in enumerate(more)]
    follow_up = start + len(more)
    events.append(message_event(h, spec(BEN, "polonius", "and it works"), follow_up))
    h.bot.process_events(events)
    with h.db.read() as s:
        tldr = s.execute(select(Update.tldr).where(Update.zulip_message_id == follow_up)).scalar()
    assert tldr == "second plan"


def test_a_follow_up_after_the_window_or_a_deleted_update_carries_nothing(tmp_path: Path) -> None:
    h = make_harness(tmp_path)
    window = timedelta(minutes=h.bot.config.update_window_minutes)

    def post(mid: int, who: Member, goal: str, content: str, at: timedelta) -> None:
        spec = {
            "sender": who,
            "where": "goal topic",
            "goal": goal,
            "topic": "x",
            "content": content,
        }
        event = message_event(h, spec, mid)
        event["message"]["timestamp"] = int((NOW + at).timestamp())
        h.bot.process_events([event])

    post(7_001, BEN, "polonius", "TL;DR: first", timedelta(0))
    post(7_002, BEN, "polonius", "too late to be a follow-up", window + timedelta(minutes=1))
    post(7_011, CHLOE, "async", "TL;DR: deleted soon", timedelta(0))
    h.bot.process_events([{"type": "delete_message", "message_id": 7_011}])
    post(7_012, CHLOE, "async", "after the delete", timedelta(minutes=1))
    post(7_013, CHLOE, "async", "a follow-up of that", timedelta(minutes=2))
    with h.db.read() as s:
        tldrs = dict(s.execute(select(Update.zulip_message_id, Update.tldr)).all())
    assert tldrs == {7_001: "first", 7_002: None, 7_011: "deleted soon", 7_012: None, 7_013: None}


# ============================================================================ catching up


def _stored(mid: int, *, edited: int | None = None, topic: str = "Polonius") -> StoredMessage:
    at = datetime.fromtimestamp(edited, tz=UTC) if edited is not None else None
    return StoredMessage(mid, at, "project-goals", topic, f"text {mid}")


def _seen(
    mid: int, *, edited: int | None = None, topic: str = "Polonius", text: str = ""
) -> dict[str, Any]:
    message = {"id": mid, "type": "stream", "display_recipient": "project-goals",
               "stream_id": 7, "subject": topic, "content": text or f"text {mid}"}  # fmt: skip
    if edited is not None:
        message["last_edit_timestamp"] = edited
    return message


def test_catching_up_replays_only_what_changed() -> None:
    stored = [_stored(1), _stored(2, edited=100), _stored(3), _stored(4), _stored(5)]
    seen = {
        1: _seen(1, edited=200, text="new text"),  # edited while away
        2: _seen(2, edited=100, text="seen live"),  # this edit was followed live already
        3: _seen(3, edited=300, topic="elsewhere"),  # moved (a move sets the edit time too)
        5: _seen(5),
    }  # 4 is gone
    found = reconcile(stored, seen, covered_through=5, max_deleted_share=0.5)
    assert found.events == [
        {"type": "update_message", "message_id": 1, "message_ids": [1], "content": "new text",
         "edit_timestamp": 200},
        {"type": "update_message", "message_id": 3, "message_ids": [3], "subject": "elsewhere",
         "stream_id": 7},
        {"type": "delete_message", "message_ids": [4]},
    ]  # fmt: skip
    assert (found.edited, found.moved, found.deleted, found.withheld) == (1, 1, 1, [])


def test_catching_up_holds_back_mass_deletions_and_ignores_what_it_did_not_cover() -> None:
    stored = [_stored(i) for i in range(1, 7)]
    found = reconcile(stored, {6: _seen(6)}, covered_through=6, max_deleted_share=0.5)
    assert found.events == [] and found.withheld == [1, 2, 3, 4, 5]
    # Messages after the last one Zulip returned were not looked at: not missing.
    found = reconcile(stored, {1: _seen(1), 2: _seen(2)}, covered_through=2, max_deleted_share=0.5)
    assert found.events == [] and found.withheld == []


@pytest.mark.parametrize("owners", [2, FEW_PEOPLE + 4])
def test_unnamed_dms_from_many_owners_at_once_go_to_each_owners_goal(
    tmp_path: Path, owners: int
) -> None:
    """A batch from a few senders asks for their goals by id, one from many reads every owner:
    both file each owner's unnamed DM with that owner's only active goal, never an ended one."""
    h = make_harness(tmp_path)
    members = [Member(100 + i, f"Owner {i}", f"owner{i}@example.com") for i in range(owners)]
    goal_of: dict[int, int] = {}
    for i, m in enumerate(members):
        goal = add_goal(h.db, f"goal-{i}", f"Goal {i}", [(m.user_id, m.email, m.full_name)])
        goal_of[m.user_id] = goal.id
        ended = add_goal(h.db, f"old-{i}", f"Old goal {i}", [(m.user_id, m.email, m.full_name)])
        with h.db.write() as s:
            s.execute(update(Goal).where(Goal.id == ended.id).values(active=False))
    events = [
        message_event(h, {"sender": m, "where": "dm", "goal": "", "topic": "",
                          "content": f"TL;DR: step {i} done"}, 9_000 + i)
        for i, m in enumerate(members)
    ]  # fmt: skip
    h.bot.process_events(events)
    with h.db.read() as s:
        filed = dict(
            s.execute(
                select(Person.zulip_user_id, Update.goal_id)
                .join(Person, Person.id == Update.author_id)
                .where(Update.zulip_message_id >= 9_000, Update.kind == UpdateKind.UPDATE)
            ).all()
        )
    assert filed == goal_of


def test_a_batch_knows_new_senders_and_follows_renamed_ones(tmp_path: Path) -> None:
    h = make_harness(tmp_path)
    renamed = Member(BEN.user_id, "Ben Renamed", BEN.email)
    newcomer = Member(555, "New Person", "new@example.com")
    h.bot.process_events(
        [
            message_event(h, {"sender": renamed, "where": "goal topic", "goal": "polonius",
                              "topic": "", "content": "TL;DR: renamed"}, 9_100),
            message_event(h, {"sender": newcomer, "where": "goal topic", "goal": "polonius",
                              "topic": "", "content": "nice work"}, 9_101),
        ]
    )  # fmt: skip
    with h.db.read() as s:
        names = dict(s.execute(select(Person.zulip_user_id, Person.full_name)).all())
        authors = dict(
            s.execute(
                select(Update.zulip_message_id, Person.zulip_user_id)
                .join(Person, Person.id == Update.author_id)
                .where(Update.zulip_message_id >= 9_100)
            ).all()
        )
    assert names[BEN.user_id] == "Ben Renamed"
    assert names[555] == "New Person"
    assert authors == {9_100: BEN.user_id, 9_101: 555}
