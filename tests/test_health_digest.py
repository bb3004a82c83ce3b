"""Health in the weekly digest: the order it opens with, each goal's line, "Needs attention",
and champions' digests that put their goals needing help first.

A small program in a real database, the digest at its Monday slot (``DIGEST_AT``, 2025-03-17
09:00 UTC). With prompts every second Thursday 14:00 the current period started 2025-03-13
14:00 and the one before on 2025-02-27, so a call made on 2025-03-14 has held for one period
and one made on 2025-03-01 for two.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from tests.mentions import contains_unsafe_mention
from tests.test_digest import (
    CREATED,
    DIGEST_AT,
    GOALS_STREAM,
    SITE,
    STREAM,
    ZWSP,
    RecordingSender,
    at,
    compose_for,
    make_ctx,
    make_db,
)
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.db.models import (
    DigestSubscription,
    Goal,
    GoalChampion,
    GoalOwner,
    HealthReaction,
    Person,
    Update,
)
from zulip_goals_bot.digest.delivery import CHAMPION_TITLE, load_digest_data, send_digest
from zulip_goals_bot.domain.health import Health
from zulip_goals_bot.domain.markdown import topic_link
from zulip_goals_bot.domain.states import GoalState, OwnerRole, UpdateKind

CHAMPION_ID = 500


@dataclass(frozen=True)
class G:
    """A goal of the program: its name, its owner's updates (when, health, TL;DR), its state."""

    name: str
    updates: tuple[tuple[datetime, Health | None, str], ...] = ()
    state: GoalState = GoalState.ACTIVE
    reaction: tuple[datetime, Health] | None = None  # a health reaction on the prompt
    championed: bool = False


GOALS = (
    # Turned at risk this week (in the current period only): listed after the blocked one.
    G("Async closures", ((at("2025-03-14", 15), Health.AT_RISK, "the RFC needs a new author"),)),
    # Was on track, turned blocked this week, one period so far; its words try to ping everyone.
    G(
        "Borrow checker",
        (
            (at("2025-02-20"), Health.ON_TRACK, "prototype passes the test suite"),
            (at("2025-03-15"), Health.BLOCKED, "waiting on @**all** for the design review"),
        ),
    ),
    # Blocked since 1 March, said again by a reaction on the 14th: two periods, not news.
    G(
        "Zeta linker",
        ((at("2025-03-01"), Health.BLOCKED, "the new ABI breaks the linker scripts"),),
        reaction=(at("2025-03-14"), Health.BLOCKED),
        championed=True,
    ),
    G(
        "Alpha parser",
        ((at("2025-03-12"), Health.ON_TRACK, "the grammar is complete"),),
        championed=True,
    ),
    # Never said a health, though it has an update.
    G("Formatting", ((at("2025-03-14"), None, "rustfmt config moved to the new parser"),)),
    # The owner says done; the goal is still active (only `complete` ends it).
    G("Garbage collector", ((at("2025-03-15"), Health.DONE, "all tasks are merged"),)),
    # Done and completed: nothing left to confirm.
    G(
        "Hashing",
        ((at("2025-03-05"), Health.DONE, "shipped in 1.86"),),
        state=GoalState.COMPLETED,
    ),
)


def owner_id(i: int) -> int:
    return 100 + i


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    db = make_db(tmp_path)
    message_id = 7000
    with db.write() as session:
        champion = Person(
            zulip_user_id=CHAMPION_ID, full_name="Cham", github="cham", created_at=CREATED
        )
        session.add(champion)
        session.flush()
        session.add(DigestSubscription(person_id=champion.id, created_at=CREATED, scope="champion"))
        for i, g in enumerate(GOALS):
            slug = g.name.lower().replace(" ", "-")
            owner = Person(
                zulip_user_id=owner_id(i),
                full_name=f"Owner {i}",
                github=f"owner{i}",
                created_at=CREATED,
            )
            goal = Goal(
                period="2025h1",
                slug=slug,
                title=g.name,
                zulip_topic=g.name,
                teams="compiler",
                state=g.state,
                created_at=CREATED,
                updated_at=CREATED,
            )
            goal.owners.append(GoalOwner(person=owner, role=OwnerRole.POINT_OF_CONTACT))
            session.add(goal)
            session.flush()
            for sent_at, health, tldr in g.updates:
                message_id += 1
                session.add(
                    Update(
                        zulip_message_id=message_id,
                        goal_id=goal.id,
                        author_id=owner.id,
                        kind=UpdateKind.UPDATE,
                        content=f"TL;DR: {tldr}\n\nMore details follow.",
                        tldr=tldr,
                        health=health,
                        stream=STREAM,
                        topic=g.name,
                        sent_at=sent_at,
                    )
                )
            if g.reaction is not None:
                reacted_at, health = g.reaction
                session.add(
                    HealthReaction(
                        goal_id=goal.id,
                        zulip_message_id=9000 + i,
                        zulip_user_id=owner_id(i),
                        person_id=owner.id,
                        emoji_name="red_circle",
                        health=health,
                        reacted_at=reacted_at,
                    )
                )
            if g.championed:
                session.add(GoalChampion(goal_id=goal.id, team="compiler", github="cham"))
    yield make_ctx(db, FrozenClock(DIGEST_AT))
    db.dispose()


def digest(ctx: Context) -> str:
    return "\n\n".join(compose_for(ctx, DIGEST_AT))


def section(text: str, title: str) -> list[str]:
    """The lines under ``title`` (a heading or an italic list title), to the next blank line."""
    start = text.index(title)
    return text[start:].split("\n\n", 1)[0].splitlines()[1:]


def goal_line(text: str, name: str) -> str:
    """The first line of a goal's block in the goal list (the due state's mark opens it)."""
    found = re.findall(rf"^:[a-z_]+: \*\*{re.escape(name)}\*\* · .*$", text, re.M)
    assert len(found) == 1, (name, found)
    return str(found[0])


def topic(name: str) -> str:
    """The goal's topic link, as every list in the digest writes it."""
    return topic_link(GOALS_STREAM, name)


def test_digest_opens_with_the_goals_that_turned_this_week(ctx: Context) -> None:
    text = digest(ctx)
    header, summary, blank, opening_title, *_rest = text.split("\n")
    assert header == "**Weekly goals digest** · 2025-03-10 to 2025-03-17"
    assert summary.startswith("**7 goals** · ")
    assert (blank, opening_title) == ("", "**Turned at risk or blocked this week**")
    # Blocked first, though the at-risk goal turned a day earlier and sorts first by name.
    assert section(text, "**Turned at risk or blocked this week**") == [
        f"- :red_circle: **Borrow checker** · blocked since 15 Mar 2025 (yesterday) · Owner 1: "
        f"waiting on @{ZWSP}**all** for the design review ([view message]({SITE}/#narrow/id/7003))",
        "- :yellow_circle: **Async closures** · at risk since 14 Mar 2025 (2 days ago) · "
        f"Owner 0: the RFC needs a new author ([view message]({SITE}/#narrow/id/7001))",
    ]
    # Blocked for a fortnight is not this week's news; on track and done are not news at all.
    opening = "\n".join(section(text, "**Turned at risk or blocked this week**"))
    for name in ("Zeta linker", "Alpha parser", "Garbage collector", "Formatting"):
        assert name not in opening


def test_owner_words_in_the_digest_ping_nobody(ctx: Context) -> None:
    text = digest(ctx)
    assert f"waiting on @{ZWSP}**all** for the design review" in text
    assert "@**all**" not in text
    assert not contains_unsafe_mention(text)


def test_goal_lines_show_health_and_none_when_never_said(ctx: Context) -> None:
    text = digest(ctx)
    assert goal_line(text, "Async closures") == (
        ":check: **Async closures** · :yellow_circle: at risk since 14 Mar 2025 (2 days ago) · "
        + topic("Async closures")
    )
    assert goal_line(text, "Zeta linker") == (
        ":hourglass: **Zeta linker** · :red_circle: blocked since 1 Mar 2025 "
        "(last said 2 days ago) · " + topic("Zeta linker")
    )
    assert ":green_circle: on track since 12 Mar 2025" in goal_line(text, "Alpha parser")
    # Never said: the line says nothing about health, and no health is guessed.
    assert goal_line(text, "Formatting") == ":check: **Formatting** · " + topic("Formatting")
    block = text[text.index(goal_line(text, "Formatting")) :].split("\n\n", 1)[0]
    assert "since" not in block and "circle" not in block


def test_needs_attention_lists_goals_blocked_for_two_periods(ctx: Context) -> None:
    text = digest(ctx)
    attention = text[text.index("**Needs attention**") :]
    assert section(attention, "_Blocked or at risk for 2 periods or more (1):_") == [
        f"- {topic('Zeta linker')}: :red_circle: blocked since 1 Mar 2025 (last said 2 days ago), "
        f"for 2 periods · @_**Owner 2|{owner_id(2)}**"
    ]
    # Blocked (and at risk) for one period only: this week's news, not yet needing attention.
    assert "Borrow checker" not in attention
    assert "Async closures" not in attention


def test_needs_attention_lists_goals_said_done_but_still_active(ctx: Context) -> None:
    text = digest(ctx)
    attention = text[text.index("**Needs attention**") :]
    title = "_Owners say done; still active (1):_ an owner can confirm with `complete <goal>`"
    assert section(attention, title) == [
        f"- {topic('Garbage collector')}: :tada: done since 15 Mar 2025 (yesterday) · "
        f"@_**Owner 5|{owner_id(5)}**"
    ]
    # The completed goal's "done" needs no one.
    assert "Hashing" not in attention
    # Saying done does not complete the goal: it is still listed as an active goal.
    assert goal_line(text, "Garbage collector").startswith(":check: **Garbage collector** · ")


def test_champion_digest_puts_the_blocked_goal_first(ctx: Context) -> None:
    sender = RecordingSender()
    report = send_digest(ctx, sender)
    assert report.failed == 0
    sent = dict(sender.sent)
    mine = sent[f"dm:{CHAMPION_ID}"]
    whole = sent[f"#{STREAM}>weekly digest"]
    assert mine.startswith(f"**{CHAMPION_TITLE}**")

    def order(text: str) -> list[str]:
        return re.findall(r"^:[a-z_]+: \*\*(Alpha parser|Zeta linker)\*\* · ", text, re.M)

    # The whole digest keeps its usual order (by name within the team) ...
    assert order(whole) == ["Alpha parser", "Zeta linker"]
    # ... the champion's puts the goal that needs help first, under a heading of its own.
    assert order(mine) == ["Zeta linker", "Alpha parser"]
    assert "**Blocked or at risk**\n\n:hourglass: **Zeta linker** · :red_circle: blocked" in mine
    assert mine.index("**Blocked or at risk**") < mine.index("**Team compiler**")
    assert mine.index("**Team compiler**") < mine.index("**Alpha parser** · ")
    # Only the champion's goals.
    assert "Borrow checker" not in mine and "Garbage collector" not in mine


def test_health_adds_no_statement_to_the_digest(ctx: Context) -> None:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    event.listen(ctx.db.engine, "before_cursor_execute", count)
    try:
        with ctx.db.read() as session:
            data = load_digest_data(session, ctx, DIGEST_AT - timedelta(days=7), DIGEST_AT)
    finally:
        event.remove(ctx.db.engine, "before_cursor_execute", count)
    assert len(statements) <= 7, statements
    assert sum(1 for g in data.goals if g.health is not None) == 6
