"""Owner replies become updates, end to end: the bot as a subprocess against the emulator."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from fakezulip import FakeZulip, Realm
from tests.support import BotProcess, add_goal, database_for, wait_until, write_conf
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Goal

STREAM = "project-goals"
# Prompts and digests would add the bot's own messages; these tests look at replies only.
QUIET = "[schedule]\nenabled = false\n[digest]\nenabled = false\n"


@dataclass
class World:
    server: FakeZulip
    db: Database
    bot: BotProcess
    users: dict[str, Any]
    goals: dict[str, Goal]

    def rows(self, where: str = "1=1", **params: Any) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            result = conn.execute(
                text(
                    "SELECT zulip_message_id, goal_id, kind, source, content, tldr, help_wanted, "
                    f"edited_at, deleted, author_id FROM updates WHERE {where} "
                    "ORDER BY zulip_message_id"
                ),
                params,
            )
            return [dict(r._mapping) for r in result]

    def row(self, message_id: int) -> dict[str, Any]:
        found = self.rows("zulip_message_id = :m", m=message_id)
        assert len(found) == 1, found
        return found[0]

    def wait_row(self, message_id: int, **expected: Any) -> dict[str, Any]:
        def ok() -> bool:
            found = self.rows("zulip_message_id = :m", m=message_id)
            return bool(found) and all(found[0][k] == v for k, v in expected.items())

        assert wait_until(ok), (self.rows(), self.bot.log()[-3000:])
        return self.row(message_id)

    def reacted(self, message_id: int) -> bool:
        return bool(self.server.message(message_id)["reactions"])

    def dms_to(self, name: str) -> list[str]:
        bot_id = self.users["bot"].user_id
        return [
            m["content"]
            for m in self.server.direct_messages_to(self.users[name])
            if m["sender_id"] == bot_id
        ]


# The demo realm's people these worlds use, by short name.
PEOPLE = {"ben": "Ben Owner", "chloe": "Chloé Owner", "eve": "Eve Lead"}
# (slug, title, owner, tracking issue) of the goals of ``world``.
GoalSpec = tuple[str, str, str, int]
GOALS: tuple[GoalSpec, ...] = (
    ("polonius", "Scale Polonius", "ben", 118),
    ("async", "Async closures", "chloe", 105),
    ("docs", "Better docs", "chloe", 120),
)


@contextmanager
def running_world(tmp_path: Path, goals: Iterable[GoalSpec]) -> Iterator[World]:
    """The emulator with the demo realm, these goals in a fresh database, and the bot running
    against them (schedule and digest off)."""
    realm = Realm.demo()
    with FakeZulip(realm, heartbeat_seconds=2.0) as server:
        users = {"bot": realm.user_by_email("goals-bot@example.com")}
        users.update((key, realm.user_by_name(name)) for key, name in PEOPLE.items())
        conf = write_conf(tmp_path, server, users["bot"], extra=QUIET)
        db = database_for(conf)
        made = {}
        for slug, title, who, issue in goals:
            u = users[who]
            assert u is not None
            made[slug] = add_goal(db, slug, title, [(u.user_id, u.email, u.full_name)], issue=issue)
        with BotProcess(conf) as bot:
            yield World(server, db, bot, users, made)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with running_world(tmp_path, GOALS) as w:
        yield w


def post(w: World, who: str, goal: str, content: str) -> int:
    return w.server.send_stream_message(w.users[who], STREAM, w.goals[goal].zulip_topic, content)


def dm(w: World, who: str, content: str) -> int:
    return w.server.send_direct_message(w.users[who], [w.users["bot"]], content)


def test_topic_reply_is_an_update_with_tldr_and_help_wanted(world: World) -> None:
    mid = post(
        world,
        "ben",
        "polonius",
        "Good progress this month.\n\nTL;DR: the new solver passes the test suite.\n\n"
        "**Help wanted:** reviewers for the liveness PR\n- Help wanted: a perf run",
    )
    row = world.wait_row(mid)
    assert row["goal_id"] == world.goals["polonius"].id
    assert row["kind"] == "update" and row["source"] == "topic"
    assert row["tldr"] == "the new solver passes the test suite."
    assert row["help_wanted"] == "reviewers for the liveness PR\na perf run"
    assert wait_until(lambda: world.reacted(mid))
    reaction = world.server.message(mid)["reactions"][0]
    assert reaction["emoji_name"] == "check"
    assert reaction["user_id"] == world.users["bot"].user_id


def test_message_by_someone_else_is_a_comment_not_acknowledged(world: World) -> None:
    mid = post(world, "eve", "polonius", "Great news! Can I help?")
    row = world.wait_row(mid)
    assert row["kind"] == "comment" and row["goal_id"] == world.goals["polonius"].id
    later = post(world, "ben", "polonius", "update after the comment")
    world.wait_row(later, kind="update")
    assert wait_until(lambda: world.reacted(later))
    assert not world.reacted(mid)


def test_resolved_topic_still_belongs_to_its_goal(world: World) -> None:
    topic = "✔ " + world.goals["polonius"].zulip_topic
    mid = world.server.send_stream_message(world.users["ben"], STREAM, topic, "wrapped up")
    row = world.wait_row(mid)
    assert (row["goal_id"], row["kind"]) == (world.goals["polonius"].id, "update")


def test_dm_from_owner_of_one_goal_is_an_update(world: World) -> None:
    mid = dm(world, "ben", "TL;DR: on track\n\nLanded the location-insensitive pass.")
    row = world.wait_row(mid)
    assert (row["goal_id"], row["kind"], row["source"]) == (
        world.goals["polonius"].id,
        "update",
        "dm",
    )
    assert row["tldr"] == "on track"
    assert wait_until(lambda: world.reacted(mid))


def test_dm_from_owner_of_several_goals_asks_once_and_keeps_the_text(world: World) -> None:
    first = dm(world, "chloe", "Wrote the RFC draft and got feedback.")
    second = dm(world, "chloe", "Also fixed two ICEs.")
    world.wait_row(first, kind="pending", goal_id=None)
    world.wait_row(second, kind="pending", goal_id=None)
    assert wait_until(lambda: len(world.dms_to("chloe")) == 1)
    question = world.dms_to("chloe")[0]
    assert "which goal" in question
    assert "1. Async closures" in question and "2. Better docs" in question
    assert not world.reacted(first)

    answer = dm(world, "chloe", "2")
    world.wait_row(first, kind="update", goal_id=world.goals["docs"].id)
    world.wait_row(second, kind="update", goal_id=world.goals["docs"].id)
    assert wait_until(lambda: world.reacted(first) and world.reacted(second))
    assert world.rows("zulip_message_id = :m", m=answer) == []  # the answer is not an update


def test_dm_update_prefix_names_the_goal(world: World) -> None:
    mid = dm(world, "chloe", "update async: TL;DR: closures are in nightly")
    row = world.wait_row(mid)
    assert row["goal_id"] == world.goals["async"].id
    assert row["content"] == "TL;DR: closures are in nightly"
    assert row["tldr"] == "closures are in nightly"


def test_dm_update_for_a_goal_one_does_not_own_is_refused(world: World) -> None:
    mid = dm(world, "ben", "update async: I did it all")
    assert wait_until(lambda: len(world.dms_to("ben")) == 1), world.bot.log()
    assert "only the goal's owners" in world.dms_to("ben")[0]
    assert world.rows("zulip_message_id = :m", m=mid) == []


def test_dm_command_is_answered_not_stored(world: World) -> None:
    mid = dm(world, "ben", "status polonius")
    assert wait_until(lambda: len(world.dms_to("ben")) == 1), world.bot.log()
    assert "Scale Polonius" in world.dms_to("ben")[0]
    assert world.rows("zulip_message_id = :m", m=mid) == []


def test_edits_moves_and_deletes_are_followed(world: World) -> None:
    w = world
    edited = post(w, "ben", "polonius", "first draft")
    w.wait_row(edited)
    w.server.edit_message(w.users["ben"], edited, content="TL;DR: final words")
    row = w.wait_row(edited, content="TL;DR: final words")
    assert row["tldr"] == "final words" and row["edited_at"] is not None

    # Move one message to another goal's topic: it follows; a non-owner there makes it a comment.
    moved = post(w, "ben", "polonius", "posted in the wrong topic")
    w.wait_row(moved)
    w.server.edit_message(w.users["ben"], moved, topic=w.goals["async"].zulip_topic)
    w.wait_row(moved, goal_id=w.goals["async"].id, kind="comment")

    # Move a whole topic elsewhere: its updates are detached from the goal.
    a = post(w, "chloe", "docs", "docs one")
    b = post(w, "chloe", "docs", "docs two")
    w.wait_row(b)
    w.server.edit_message(w.users["chloe"], a, topic="random chatter", propagate_mode="change_all")
    w.wait_row(a, goal_id=None)
    w.wait_row(b, goal_id=None)

    gone = post(w, "ben", "polonius", "oops, wrong text")
    w.wait_row(gone)
    w.server.delete_message(gone)
    w.wait_row(gone, deleted=True)


def test_killed_with_sigkill_while_messages_arrive_stores_everything_once(world: World) -> None:
    w = world
    sent: list[int] = []
    for i in range(150):
        sent.append(post(w, "ben", "polonius", f"update {i}"))
        if i == 60:
            w.bot.kill()
    for i in range(20):
        sent.append(dm(w, "ben", f"dm update {i}"))
    restarted = BotProcess(w.bot.conf).start()
    try:
        assert wait_until(lambda: len(w.rows()) == len(sent), timeout=30), restarted.log()[-2000:]
        stored = [r["zulip_message_id"] for r in w.rows()]
        assert stored == sorted(sent)  # every message exactly once, compared id by id
        with w.db.engine.connect() as conn:
            handled = conn.execute(text("SELECT COUNT(*) FROM handled_messages")).scalar()
        assert handled == len(sent)
    finally:
        restarted.kill()


def test_follow_up_within_the_window_keeps_the_summary(world: World) -> None:
    first = post(
        world, "ben", "polonius", "TL;DR: borrowck is 2x faster\n\nHelp wanted: benchmarks"
    )
    second = post(world, "ben", "polonius", "Forgot to say: thanks to everyone who reviewed.")
    row = world.wait_row(second)
    assert row["tldr"] == "borrowck is 2x faster"
    assert row["help_wanted"] == "benchmarks"
    assert world.row(first)["tldr"] == "borrowck is 2x faster"
    other = dm(world, "chloe", "update async: no summary here")
    assert world.wait_row(other)["tldr"] is None  # another goal and author: nothing carried


def test_edits_moves_and_deletes_made_while_the_bot_was_down_are_caught_up(world: World) -> None:
    w = world
    edited = post(w, "ben", "polonius", "TL;DR: first draft")
    moved = post(w, "ben", "polonius", "meant for another topic")
    gone = post(w, "ben", "polonius", "TL;DR: never mind")
    kept = dm(w, "chloe", "update async: TL;DR: untouched")
    for mid in (edited, moved, gone, kept):
        w.wait_row(mid)
    assert w.bot.terminate() == 0

    w.server.edit_message(w.users["ben"], edited, content="TL;DR: the final words")
    w.server.edit_message(w.users["ben"], moved, topic="random chatter")
    w.server.delete_message(gone)

    restarted = BotProcess(w.bot.conf).start()
    try:
        w.wait_row(edited, content="TL;DR: the final words", tldr="the final words")
        w.wait_row(moved, goal_id=None)
        w.wait_row(gone, deleted=True)
        assert w.row(kept)["tldr"] == "untouched" and w.row(kept)["edited_at"] is None
        assert "1 edited, 1 moved, 1 deleted" in restarted.log()
        assert restarted.terminate() == 0
    finally:
        if restarted.alive():
            restarted.kill()
    # Caught up once: the next start finds nothing left to replay.
    again = BotProcess(w.bot.conf).start()
    try:
        assert again.terminate() == 0
        assert "caught up" not in again.log()
    finally:
        if again.alive():
            again.kill()


# -- intent before storage, and saying where an inferred update went ------------------------------


def answers(w: World, who: str, n: int) -> list[str]:
    """The first ``n`` DMs the bot sent ``who``, waiting for them."""
    assert wait_until(lambda: len(w.dms_to(who)) >= n), (w.dms_to(who), w.bot.log()[-3000:])
    return w.dms_to(who)[:n]


def test_short_command_like_dms_are_answered_and_not_stored(world: World) -> None:
    asked = [
        ("list foo", "I can't list 'foo'"),
        ("@**all** status async", "**Async closures**"),
        ("stauts polonius", "Did you mean `status polonius`?"),
    ]
    ids = []
    for n, (typed, expected) in enumerate(asked, 1):
        ids.append(dm(world, "chloe", typed))
        assert expected in answers(world, "chloe", n)[-1]
    # Each was answered (the signal that it was handled), and none became an update.
    assert world.rows() == []
    assert not any(world.reacted(mid) for mid in ids)
    # The wildcard was not repeated as a mention.
    assert "@**all**" not in "".join(world.dms_to("chloe"))


def test_an_unsure_update_is_stored_with_a_way_to_undo_it(world: World) -> None:
    mid = dm(world, "ben", "Status is good, the solver passes all the tests now")
    world.wait_row(mid, kind="update", goal_id=world.goals["polonius"].id)
    (note,) = answers(world, "ben", 1)
    assert "Saved as an update of **Scale Polonius**" in note and "`undo`" in note
    dm(world, "ben", "undo")
    assert "Removed your update of **Scale Polonius**" in answers(world, "ben", 2)[-1]
    assert world.row(mid)["deleted"] in (True, 1)
    dm(world, "ben", "undo")
    assert "Nothing to undo" in answers(world, "ben", 3)[-1]


def test_a_follow_up_dm_goes_to_the_goal_just_updated_and_can_be_moved(world: World) -> None:
    # Chloé owns two goals, both waiting for an update: she answers one in its topic...
    topic = post(world, "chloe", "docs", "TL;DR: the guide is drafted")
    world.wait_row(topic, goal_id=world.goals["docs"].id)
    # ...then adds a line by DM that names no goal: a follow-up of the goal she just updated.
    mid = dm(world, "chloe", "Also, forgot to say: that PR got merged")
    world.wait_row(mid, kind="update", goal_id=world.goals["docs"].id, source="dm")
    assert wait_until(lambda: world.reacted(mid))
    (note,) = answers(world, "chloe", 1)
    assert note == (
        "Saved as an update of **Better docs** (you updated it moments ago). "
        "Another goal? Say `move to <goal>`."
    )
    dm(world, "chloe", "move to async closures")
    moved = answers(world, "chloe", 2)[-1]
    assert moved.startswith("Moved your update (“Also, forgot to say: that PR got merged”) to ")
    assert world.row(mid)["goal_id"] == world.goals["async"].id
    assert world.row(mid)["tldr"] is None  # the summary of the docs update stays with docs
    dm(world, "eve", "status async")
    status = answers(world, "eve", 1)[0]
    assert "that PR got merged" in status and "up to date" in status


@pytest.mark.parametrize("state", ["paused", "completed"])
def test_an_owners_reply_in_a_paused_or_completed_goal_is_still_an_update(
    world: World, state: str
) -> None:
    """In a goal's topic its owner is its owner whatever the state: pausing only stops the
    prompts, and a closing note after completion is news too, not a bystander's comment."""
    with world.db.engine.begin() as conn:
        conn.execute(
            text("UPDATE goals SET state = :s WHERE id = :g"),
            {"s": state, "g": world.goals["polonius"].id},
        )
    mid = post(world, "ben", "polonius", "one more note on the solver")
    row = world.wait_row(mid)
    assert (row["goal_id"], row["kind"]) == (world.goals["polonius"].id, "update")
    assert wait_until(lambda: world.reacted(mid))
