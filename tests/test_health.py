"""The owner's health call: how people write it, what an update without one keeps, periods."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from zulip_goals_bot.commands.grammar import command_in, parse
from zulip_goals_bot.domain.health import (
    AlertReason,
    Health,
    HealthCall,
    HealthSource,
    alert_reason,
    describe,
    goal_health,
    health_word,
    parse_health,
    periods_held,
    reaction_legend,
    turned,
)
from zulip_goals_bot.domain.schedule import Slot, period_at

LONG = (
    "We landed the new trait solver behind a flag this week and ran crater twice.\n\n"
    "- fixed 14 regressions\n- two are left, both in the coherence checker\n\n"
    "```rust\n// Status: blocked (this is code, not the owner speaking)\n```\n\n"
    "> Status: on track — quoting last month's update\n\n"
    "Next: the remaining regressions, then a call for testing.\n\n"
    "Status: at risk (the coherence fixes need a lang decision)\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a labelled line, as people write it: case, bold, list items, hyphens, punctuation
        ("Status: at risk", Health.AT_RISK),
        ("status: AT RISK", Health.AT_RISK),
        ("**Status:** Blocked", Health.BLOCKED),
        ("**Health**: on-track.", Health.ON_TRACK),
        ("- Status - on track", Health.ON_TRACK),
        ("Health = blocked - waiting on the lang team", Health.BLOCKED),
        ("Status: on track (finally)", Health.ON_TRACK),
        ("Landed the parser.\n\nStatus: done", Health.DONE),
        # typos
        ("Status: blokced", Health.BLOCKED),
        ("Status: at rsik", Health.AT_RISK),
        ("health: on trak", Health.ON_TRACK),
        ("Status: ontrack", Health.ON_TRACK),
        # a leading bracket
        ("[blocked] waiting for the review of #1234", Health.BLOCKED),
        ("**[At Risk]** the CI budget ran out", Health.AT_RISK),
        ("(on track) all good this week", Health.ON_TRACK),
        # a word after the TL;DR
        ("TL;DR: on track, the parser is merged", Health.ON_TRACK),
        ("**TL;DR:** at risk - two regressions left", Health.AT_RISK),
        ("TLDR: Blocked. Need a lang decision.", Health.BLOCKED),
        ("TL;DR [blocked] waiting for review", Health.BLOCKED),
        ("TL;DR: done!", Health.DONE),
        # a long update: code and quotes do not count, the owner's own line does
        (LONG, Health.AT_RISK),
        # words that name no health
        ("Status: in progress", None),
        ("Status: landed the PR", None),
        ("TL;DR: blocked on review, but moving", None),
        ("TL;DR: done with the parser, next the solver", None),
        ("TL;DR: good progress, merged two PRs", None),
        ("We are blocked on the lang team.", None),
        ("```\nStatus: blocked\n```", None),
        ("> Status: blocked", None),
        ("[link](https://example.com) to the PR", None),
        ("Status: read the RFC first", None),
        ("", None),
    ],
)
def test_each_way_of_writing_a_health(text: str, expected: Health | None) -> None:
    assert parse_health(text) is expected


def test_short_words_must_be_exact() -> None:
    assert health_word("red") is Health.BLOCKED
    assert health_word("read") is None  # one letter from "red", not a typo of it
    assert health_word("none") is None  # one letter from "done"
    assert health_word("gone") is None
    assert health_word("off track") is Health.AT_RISK


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("~~~\nStatus: blocked\n~~~", None),  # a tilde fence is a code block too
        ("- the log:\n  ```\n  Status: blocked\n  ```", None),  # a fence inside a list item
        # The update opens after a quote of someone else: its first own line is the bracket.
        ("> How is it going?\n\n[blocked] waiting for review", Health.BLOCKED),
        ("  > How is it going?\n[at risk] the CI budget ran out", Health.AT_RISK),
    ],
)
def test_code_and_quotes_are_skipped_however_they_are_indented(
    text: str, expected: Health | None
) -> None:
    assert parse_health(text) is expected


@pytest.mark.parametrize(
    "text",
    [
        "Status: unblocked",
        "Status: not on track",
        "Status: Not-On-Track",
        "[incomplete] two PRs left",
        "TL;DR: unfinished, two PRs left",
        "Health: uncompleted",
    ],
)
def test_a_negated_health_word_is_not_a_typo_of_it(text: str) -> None:
    # Each scores 80 or more against the word it negates: read as a typo, it said the opposite.
    assert parse_health(text) is None


def test_a_typo_is_a_misspelt_word_not_a_phrase_that_holds_one() -> None:
    assert health_word("yelow") is Health.AT_RISK  # five letters: the shortest typo taken
    assert health_word("stuk") is None  # four: only exact words
    # A health word inside a longer value is not a typo of it (it may say the opposite).
    assert parse_health("Status: on track to slip") is None
    assert health_word("**done**.") is Health.DONE  # emphasis and punctuation around the word


def test_a_health_in_text_reads_as_its_label() -> None:
    assert f"{Health.AT_RISK}" == "at risk" and Health.AT_RISK.value == "at-risk"
    assert f"[{Health.ON_TRACK:>10}]" == "[  on track]"


def test_the_prompt_names_its_three_reactions() -> None:
    assert reaction_legend() == (
        ":green_circle: on track, :yellow_circle: at risk, :red_circle: blocked"
    )


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def call(day: int, health: Health, hour: int = 12) -> HealthCall:
    return HealthCall(goal_id=1, health=health, said_at=at(day, hour), words=f"said on {day}")


def test_a_goal_that_never_said_has_no_health() -> None:
    assert goal_health([]) is None
    assert alert_reason(None, ()) is None
    assert not turned(None, at(1))


def test_the_latest_call_wins_and_since_is_the_start_of_its_run() -> None:
    # at risk on the 2nd, blocked on the 9th and again on the 16th (in whatever order loaded)
    calls = [call(16, Health.BLOCKED), call(2, Health.AT_RISK), call(9, Health.BLOCKED)]
    health = goal_health(calls)
    assert health is not None
    assert health.health is Health.BLOCKED
    assert health.since == at(9) and health.said_at == at(16)
    assert health.first.words == "said on 9" and health.latest.words == "said on 16"
    assert health.at(at(5)) is Health.AT_RISK
    assert health.at(at(1)) is None
    text = describe(health, at(20))
    assert text.startswith(":red_circle: blocked since 9 Nov 2026")
    assert "(last said 4 days ago)" in text


def test_an_update_without_a_health_keeps_the_last_one_and_says_how_old() -> None:
    health = goal_health([call(2, Health.AT_RISK)])
    assert health is not None
    # Later updates said nothing about health: the call is the one of the 2nd, 18 days old.
    assert describe(health, at(20)) == ":yellow_circle: at risk since 2 Nov 2026 (18 days ago)"


def test_a_call_made_now_or_later_shows_no_age() -> None:
    health = goal_health([call(20, Health.AT_RISK)])
    assert health is not None
    assert describe(health, at(20)) == ":yellow_circle: at risk since 20 Nov 2026"
    assert describe(health, at(19)) == ":yellow_circle: at risk since 20 Nov 2026"


def test_the_words_shown_are_the_runs_newest_or_its_first_and_a_reaction_has_none() -> None:
    def reaction(day: int, health: Health) -> HealthCall:
        return HealthCall(1, health, at(day), source=HealthSource.REACTION, message_id=day)

    calls = [
        call(2, Health.AT_RISK),
        call(9, Health.BLOCKED),
        reaction(12, Health.BLOCKED),
        call(16, Health.BLOCKED),
        reaction(18, Health.BLOCKED),
    ]
    health = goal_health(calls)
    assert health is not None
    assert [c.said_at.day for c in health.run] == [9, 12, 16, 18]
    assert health.voiced().words == "said on 16"  # the newest words, not the newer reaction
    assert health.voiced(first=True).words == "said on 9"  # what started the run
    # Turned blocked by a reaction: no words of this run, and never the at-risk words before it.
    reacted = goal_health([call(2, Health.AT_RISK), reaction(9, Health.BLOCKED)])
    assert reacted is not None
    assert reacted.voiced() is reacted.latest and reacted.voiced(first=True) is reacted.latest
    assert reacted.latest.link_text == "view prompt"


SLOT = Slot(weekday=3, at=time(14), tz=ZoneInfo("UTC"))  # Thursdays 14:00


def weekly(until: datetime, n: int) -> list:  # type: ignore[type-arg]
    period = period_at(until, 1, SLOT)
    found = [period]
    for _ in range(n - 1):
        period = period.previous(1, SLOT)
        found.append(period)
    return list(reversed(found))


def test_blocked_for_two_periods_needs_attention_and_one_does_not() -> None:
    now = at(20)  # Friday 20 Nov; periods start Thursdays 14:00 (12 and 19 Nov)
    periods = weekly(now, 4)
    this_week = goal_health([call(19, Health.BLOCKED, 15)])  # turned blocked in this period
    before_it = goal_health([call(19, Health.BLOCKED, 13)])  # an hour before it began
    assert before_it is not None and periods_held(before_it, periods) == 2
    assert this_week is not None
    assert periods_held(this_week, periods) == 1
    since_last_week = goal_health([call(13, Health.BLOCKED)])  # Friday of the last period
    assert since_last_week is not None
    assert periods_held(since_last_week, periods) == 2
    assert turned(this_week, periods[-1].start) and not turned(since_last_week, periods[-1].start)


def test_a_call_at_the_instant_a_period_starts_counts_from_that_period() -> None:
    periods = weekly(at(20), 4)
    assert periods[-1].start == at(19, 14)  # the prompt instant: the previous period's end
    risky = goal_health([call(19, Health.AT_RISK, 14)])
    assert risky is not None
    assert periods_held(risky, periods) == 1
    assert alert_reason(risky, periods) is None  # not yet two periods at risk
    assert turned(risky, periods[-1].start)  # this period's news


def test_champions_hear_of_blocked_at_once_and_of_at_risk_in_its_second_period() -> None:
    now = at(20)
    periods = weekly(now, 4)
    blocked = goal_health([call(19, Health.BLOCKED, 15)])
    risky_new = goal_health([call(19, Health.AT_RISK, 15)])
    risky_old = goal_health([call(13, Health.AT_RISK), call(19, Health.AT_RISK, 15)])
    fine = goal_health([call(13, Health.BLOCKED), call(19, Health.ON_TRACK, 15)])
    assert alert_reason(blocked, periods) is AlertReason.BLOCKED
    assert alert_reason(risky_new, periods) is None
    assert alert_reason(risky_old, periods) is AlertReason.AT_RISK
    assert alert_reason(fine, periods) is None
    # One change, one key: the same run gives the same key however often it is asked.
    assert blocked is not None and risky_old is not None
    assert AlertReason.BLOCKED.key(blocked.since) == "blocked@2026-11-19T15:00"
    assert AlertReason.AT_RISK.key(risky_old.since) == "at-risk@2026-11-13T12:00"
    assert len(AlertReason.AT_RISK.key(risky_old.since)) <= 40  # the deliveries.period column


@pytest.mark.parametrize(
    ("text", "sub"),
    [
        ("list at risk", "at-risk"),
        ("list At-Risk", "at-risk"),
        ("list blocked", "blocked"),
        ("list blokced", "blocked"),
        ("list on track", "on-track"),
        ("list done", "done"),
        ("list done.", "done"),
        ("list due", "due"),
        ("list paused", "paused"),
    ],
)
def test_list_takes_a_health_however_it_is_written(text: str, sub: str) -> None:
    assert parse(text).sub == sub
    assert None is not command_in(text, "Goals Bot")


def test_a_status_line_in_a_dm_is_an_update_not_the_status_command() -> None:
    assert None is command_in("Status: blocked", "Goals Bot")
    assert None is command_in("[blocked] waiting on review", "Goals Bot")


def test_health_call_links_to_its_message_or_comment() -> None:
    zulip = HealthCall(1, Health.BLOCKED, at(2), message_id=42)
    github = HealthCall(1, Health.BLOCKED, at(2), url="https://github.com/o/r/issues/1#c")
    assert zulip.link("https://chat.example") == "https://chat.example/#narrow/id/42"
    assert github.link("https://chat.example") == "https://github.com/o/r/issues/1#c"
    assert (zulip.link_text, github.link_text) == ("view message", "view comment")
    assert HealthCall(1, Health.BLOCKED, at(2)).link("https://chat.example") == ""  # nowhere
    assert at(2) - timedelta(days=1) < zulip.said_at
