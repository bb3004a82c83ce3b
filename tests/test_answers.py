"""What a person means by a short DM after the bot guessed: pure cases of ``route``.

An owner of three goals answers the bot: with a goal's name (right after the bot filed a DM:
move it there; otherwise: `status` of that goal), with "no" or "wrong goal" (ask which goal),
with thanks, ok, yes or an emoji (nothing to store).  None of these is ever an update.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.mentions import contains_unsafe_mention
from zulip_goals_bot.bot.replies import (
    IncomingMessage,
    Route,
    RoutingFacts,
    ShortReply,
    moved_text,
    route,
    short_reply,
    which_goal_text,
)
from zulip_goals_bot.config import Config
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.views import GoalName
from zulip_goals_bot.goals.matching import names_goal

BOT_ID, OWNER_ID = 2, 4
SETTING = Setting(
    Config(path=None, zuliprc=Path("zuliprc"), stream="project-goals"),
    "https://zulip.example.com",
    BOT_ID,
    "Goals Bot",
)
RFL, POLONIUS, ASYNC, CARGO = 1, 2, 3, 4
NAMES = (
    GoalName(RFL, "rfl", "Rust for Linux", None, 116, "Rust for Linux (goals#116)", True),
    GoalName(POLONIUS, "polonius", "Scale Polonius", "Polonius", 118, "Polonius (goals#118)", True),
    GoalName(ASYNC, "async-closures", "Async closures", None, 105, "Async closures (goals#105)",
             True),
    GoalName(CARGO, "cargo-script", "Stabilize cargo-script", None, 119,
             "cargo-script (goals#119)", True),
)  # fmt: skip
OWNED = (RFL, POLONIUS, ASYNC)  # the sender owns three goals; cargo-script is someone else's


def dm(text: str) -> IncomingMessage:
    return IncomingMessage(
        id=50,
        sender_id=OWNER_ID,
        sender_email="chloe@example.com",
        sender_name="Chloé Owner",
        is_stream=False,
        stream=None,
        topic=None,
        content=text,
        sent_at=datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
        recipient_ids=(BOT_ID, OWNER_ID),
    )


def facts(
    *, filed: int | None = None, pending: bool = False, owned: tuple[int, ...] = OWNED
) -> RoutingFacts:
    """``filed``: the bot filed a DM of the sender under that goal within the update window."""
    return RoutingFacts(
        setting=SETTING,
        topic_goal_id=None,
        owned_goal_ids=owned,
        waiting_goal_ids=(),
        recent_goal_id=filed,
        has_pending=pending,
        goal_names=NAMES,
        filed_goal_id=filed,
    )


# Stored: the update itself (or kept until the owner says which goal, with several goals).
STORED = (Route.UPDATE, Route.ASK_GOAL)

# The twenty short DMs: (text, what it is when nothing was just filed, what it is right after
# the bot filed a DM under Polonius, and the goal meant, if any).
SHORT_DMS = [
    ("rust for linux", Route.COMMAND, Route.MOVE_FILED, RFL),
    ("Rust for Linux.", Route.COMMAND, Route.MOVE_FILED, RFL),
    ("rust for linx", Route.COMMAND, Route.MOVE_FILED, RFL),  # a typo
    ("#116", Route.COMMAND, Route.MOVE_FILED, RFL),
    ("rfl", Route.COMMAND, Route.MOVE_FILED, RFL),  # the slug
    ("linux", Route.COMMAND, Route.MOVE_FILED, RFL),  # a word of the title
    ("async", Route.COMMAND, Route.MOVE_FILED, ASYNC),
    ("polonius", Route.COMMAND, Route.MOVE_FILED, POLONIUS),  # the short title
    ("no, it's for rust for linux", Route.COMMAND, Route.MOVE_FILED, RFL),
    ("thanks", Route.CHAT, Route.CHAT, None),
    ("Thank you!", Route.CHAT, Route.CHAT, None),
    ("ok", Route.CHAT, Route.CHAT, None),
    ("OK, thanks", Route.CHAT, Route.CHAT, None),
    ("yes", Route.CHAT, Route.CHAT, None),
    ("no", Route.CHAT, Route.WRONG_GOAL, None),
    ("Nope.", Route.CHAT, Route.WRONG_GOAL, None),
    ("wrong goal", Route.CHAT, Route.WRONG_GOAL, None),
    ("no thanks", Route.CHAT, Route.CHAT, None),
    ("👍", Route.CHAT, Route.CHAT, None),
    (":tada: :tada:", Route.CHAT, Route.CHAT, None),
]

# Short DMs that are news: stored whatever the bot said before.
SHORT_UPDATES = [
    "Merged the PR.",
    "Another note: the PR is merged.",
    "async closures stabilized",
    "ok so the PR is merged",
    "no progress this week",
    "thanks to Ralf the PR landed",
    "done",
    "cargo-script",  # someone else's goal: not the name of one of the sender's
]


def test_the_table_has_twenty_short_dms() -> None:
    assert len(SHORT_DMS) == 20


@pytest.mark.parametrize(("text", "fresh", "after_filing", "goal"), SHORT_DMS)
def test_short_dms_land_where_a_person_expects(
    text: str, fresh: Route, after_filing: Route, goal: int | None
) -> None:
    nothing_filed = route(dm(text), facts())
    assert nothing_filed.route is fresh
    just_filed = route(dm(text), facts(filed=POLONIUS))
    assert just_filed.route is after_filing
    assert nothing_filed.route not in STORED and just_filed.route not in STORED
    if goal is not None:
        assert just_filed.goal_id == goal
        # With nothing just filed, a goal's name asks for its status, by its unambiguous slug.
        slug = next(g.slug for g in NAMES if g.id == goal)
        assert nothing_filed.body == f"status {slug}"


@pytest.mark.parametrize("text", SHORT_UPDATES)
def test_short_news_is_still_an_update(text: str) -> None:
    assert route(dm(text), facts()).route in STORED
    after = route(dm(text), facts(filed=POLONIUS))
    assert (after.route, after.goal_id) == (Route.UPDATE, POLONIUS)  # a follow-up


def test_a_goal_named_as_a_label_is_still_an_update_of_that_goal() -> None:
    decision = route(dm("Polonius: merged the PR"), facts(filed=RFL))
    assert (decision.route, decision.goal_id) == (Route.UPDATE, POLONIUS)


def test_while_the_bot_waits_for_which_goal_a_name_or_number_answers_it() -> None:
    for text, goal in [("rust for linux", RFL), ("rust for linx", RFL), ("2", POLONIUS),
                       ("it's the async one", ASYNC), ("#116", RFL)]:  # fmt: skip
        decision = route(dm(text), facts(pending=True))
        assert (decision.route, decision.goal_id) == (Route.ANSWER_PENDING, goal), text
    # "No" asks again; "thanks" leaves the question open; news is kept as well.
    assert route(dm("no"), facts(pending=True)).route is Route.WRONG_GOAL
    assert route(dm("thanks"), facts(pending=True)).route is Route.CHAT
    assert route(dm("Also fixed two ICEs."), facts(pending=True)).route is Route.ASK_GOAL


def test_wrong_goal_names_the_update_just_filed_and_the_choices() -> None:
    decision = route(dm("wrong goal"), facts(filed=POLONIUS))
    assert decision.goal_id == POLONIUS and decision.candidates == OWNED


def test_the_owner_of_one_goal_gets_its_status_for_its_name_not_an_update() -> None:
    decision = route(dm("polonius"), facts(owned=(POLONIUS,)))
    assert (decision.route, decision.body) == (Route.COMMAND, "status polonius")
    # Any other short text is an update of the only goal, as before.
    decision = route(dm("merged it"), facts(owned=(POLONIUS,)))
    assert (decision.route, decision.goal_id) == (Route.UPDATE, POLONIUS)


def test_someone_who_owns_nothing_is_answered_as_before_but_thanks_is_not_a_command() -> None:
    assert route(dm("polonius"), facts(owned=())).route is Route.COMMAND
    assert route(dm("polonius"), facts(owned=())).body is None
    assert route(dm("thanks!"), facts(owned=())).route is Route.CHAT
    assert route(dm("hello"), facts(owned=())).route is Route.COMMAND  # the help answers it


def test_commands_stay_commands() -> None:
    for text in ("status polonius", "move to rust for linux", "undo", "help", "list"):
        assert route(dm(text), facts(filed=POLONIUS)).route is Route.COMMAND, text


@pytest.mark.parametrize(
    ("text", "kind"),
    [("thanks", ShortReply.ACK), ("ok :+1:", ShortReply.ACK), ("🙏", ShortReply.ACK),
     ("sounds good!", ShortReply.ACK), ("no", ShortReply.WRONG),
     ("no, wrong goal", ShortReply.WRONG), ("oops, not that one", ShortReply.WRONG),
     ("that's the wrong goal", ShortReply.WRONG),
     ("hello", ShortReply.GREETING), ("no progress", None), ("ok so the PR is merged", None),
     ("", None)],
)  # fmt: skip
def test_short_replies(text: str, kind: ShortReply | None) -> None:
    assert short_reply(text) is kind


@pytest.mark.parametrize(
    ("typed", "goal"),
    [("rust for linux", RFL), ("Rust-for-Linux", RFL), ("rsut for linux", RFL), ("#116", RFL),
     ("goals#116", RFL), ("polnoius", POLONIUS), ("async closures", ASYNC),
     ("async closures stabilized", None), ("merged the PR", None), ("2", None), ("116", None)],
)  # fmt: skip
def test_names_goal_takes_a_name_as_a_whole_not_a_sentence_about_it(
    typed: str, goal: int | None
) -> None:
    owned = [g for g in NAMES if g.id in OWNED]
    found = names_goal(typed, owned)
    assert (found.id if found else None) == goal


def test_the_answers_can_not_ping_anyone() -> None:
    evil = "@**all** and **bold**"
    assert not contains_unsafe_mention(moved_text("@**everyone** look", evil))
    question = which_goal_text([(1, evil), (2, "Polonius")], "@**all** news", taken_off=evil)
    assert not contains_unsafe_mention(question)
    assert "1. " in question and "2. Polonius" in question
