"""Is a direct message a request for the bot or an owner's update?

Pure cases of ``command_in`` and ``intent_of_prose``, the two steps routing takes.
"""

from __future__ import annotations

import pytest

from zulip_goals_bot.commands.grammar import Intent, command_in, intent_of_prose, near_command

BOT = "Goals Bot"

# Realistic updates that begin with a command word or one like it: all stored.
UPDATES = [
    "Status: the new solver passes the test suite and is behind a flag now.",
    "Status update: landed the liveness PR, next is the location-sensitive part.",
    "Help wanted: reviewers for rust-lang/rust#12345, it is a big one.",
    "Help wanted - someone to run the perf suite on the new solver",
    "List of what landed this month:\n- the solver\n- the docs",
    "Listed the open questions in the design doc, waiting on lang feedback.",
    "Completed the refactor.",
    "Completed the migration of all the tests to the new harness",
    "Resumed work after the conference; the prototype builds again.",
    "Paused the work while I travel, back in two weeks with more time.",
    "Skipped the meeting, but the PR is up: https://github.com/rust-lang/rust/pull/1",
    "Mine is a short one this time: nothing new, still reviewing.",
    "Back from RustConf! We discussed the design with the lang team and agreed on a plan.",
    "History of the design is now in the RFC, and the implementation follows it.",
    "About halfway there: the parser is done, the type checker is next.",
    "Overdue, sorry: the solver now handles coinduction and the tests are green.",
    "Map of the crates is in the repo; the split follows it and the build got faster.",
    "Goal is on track. Two PRs merged, one in review.",
    "Owners of the subsystems agreed on the plan at the meeting yesterday afternoon.",
    "Retired the old code path behind the flag, so nightly uses the new one everywhere.",
]

# Requests, typos of requests, and short command-like lines: answered, never stored.
ANSWERED = [
    "status polonius",
    "list",
    "list foo",
    "stauts polonius",
    "histroy polonius 3",
    "@**all** status async",
    "@**Goals Bot** hello there",
    "help",
    "undo",
    "move to polonius",
    "subscribe",
    "overdeu",
]


def classify(text: str, bot_name: str) -> Intent | None:
    """What routing makes of a DM: a command (None here), else what the prose asks for."""
    return None if command_in(text, bot_name) is not None else intent_of_prose(text, bot_name)


@pytest.mark.parametrize("text", UPDATES)
def test_realistic_updates_are_stored(text: str) -> None:
    assert classify(text, BOT) in (Intent.UPDATE, Intent.UNSURE)


def test_most_realistic_updates_are_stored_without_a_doubt() -> None:
    sure = [t for t in UPDATES if classify(t, BOT) is Intent.UPDATE]
    assert len(sure) >= 15, [t for t in UPDATES if t not in sure]


@pytest.mark.parametrize("text", ANSWERED)
def test_requests_and_near_misses_are_answered(text: str) -> None:
    assert classify(text, BOT) in (None, Intent.NEAR_COMMAND)


def test_a_medium_line_starting_with_a_command_word_is_stored_with_a_doubt() -> None:
    assert classify("Status is good, the solver passes all the tests now", BOT) is Intent.UNSURE


@pytest.mark.parametrize(
    ("word", "command"),
    [("stauts", "status"), ("histroy", "history"), ("overdeu", "overdue"), ("Status:", "status"),
     ("completed", None), ("last", None), ("main", None), ("lists", None), ("unpause", "resume")],
)  # fmt: skip
def test_near_misses(word: str, command: str | None) -> None:
    assert near_command(word) == command
