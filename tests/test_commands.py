"""Chat commands as people see them: parsing, goal matching, answers, permissions, and limits."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect, select, text
from zulip_bots.test_lib import StubBotHandler

from tests.dbs import new_database
from tests.mentions import contains_unsafe_mention
from zulip_goals_bot import __version__
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.commands import dispatch
from zulip_goals_bot.commands.answers import Reply
from zulip_goals_bot.commands.bot_handler import GoalsBotHandler
from zulip_goals_bot.commands.call import Call
from zulip_goals_bot.commands.dispatch import handle
from zulip_goals_bot.commands.effects import Answer
from zulip_goals_bot.commands.execute import HandlerWroteError
from zulip_goals_bot.commands.grammar import (
    HISTORY_MAX,
    SPECS,
    Command,
    command_in,
    parse,
    parse_away,
    parse_people,
)
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import DigestSubscription, Goal, GoalOwner, Person, Skip, Update
from zulip_goals_bot.domain.markdown import MAX_MESSAGE_LENGTH, StreamRef
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.states import GoalState, OwnerRole, UpdateKind
from zulip_goals_bot.domain.views import GoalName, SenderInfo
from zulip_goals_bot.goals.files import GoalStatus, read_goal_files
from zulip_goals_bot.goals.matching import MatchKind, match_goal
from zulip_goals_bot.goals.topics import goal_topic

GOALS_DATA = Path(__file__).resolve().parent / "data" / "rust-project-goals"

# Monday 2025-03-10 12:00 UTC.  With the default schedule (every 2nd Thursday 14:00 UTC) the
# current period started Thursday 2025-02-27 14:00 and the next prompt is 2025-03-13 14:00.
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
PERIOD_START = datetime(2025, 2, 27, 14, 0, tzinfo=UTC)
NEXT_PROMPT = "<time:2025-03-13T14:00:00+00:00>"
LONG_AGO = NOW - timedelta(days=90)  # goals older than the grace period
SITE = "https://zulip.example.com"
STREAM = "project-goals"
STREAM_ID = 7  # links name the goals stream by this id, as the running bot looks it up

ADA = SenderInfo(1, "ada@example.com", "Ada Admin")  # admin by bot.conf
BEN = SenderInfo(12, "ben@example.com", "Ben Owner")
CHLOE = SenderInfo(13, "chloe@example.com", "Chloé Owner")
EVE = SenderInfo(15, "eve@example.com", "Eve Lead")  # owns nothing
RITA = SenderInfo(16, "rita@example.com", "Rita Realm", is_realm_admin=True)


# --------------------------------------------------------------------------------------------
# Fixtures: a migrated database per test (tests/dbs.py: SQLite, or PostgreSQL on request).


@dataclass
class World:
    ctx: Context
    clock: FrozenClock
    db: Database
    message_ids: Iterator[int] = field(default_factory=lambda: iter(range(1000, 10**9)))

    # -- building data through the ORM ---------------------------------------------------------

    def person(
        self,
        name: str | None = None,
        *,
        zulip: SenderInfo | None = None,
        github: str | None = None,
        is_admin: bool = False,
        away_until: date | None = None,
    ) -> int:
        with self.db.write() as s:
            p = Person(
                zulip_user_id=zulip.user_id if zulip else None,
                email=zulip.email if zulip else None,
                full_name=zulip.full_name if zulip else name,
                github=github,
                is_admin=is_admin,
                away_until=away_until,
                mapped_via="file" if github else None,
                created_at=LONG_AGO,
            )
            s.add(p)
            s.flush()
            return p.id

    def goal(
        self,
        slug: str,
        title: str,
        *,
        owners: Sequence[int] = (),
        short_title: str | None = None,
        issue: int | None = None,
        flagship: str | None = None,
        teams: Sequence[str] = (),
        state: GoalState = GoalState.ACTIVE,
        period: str = "2025h1",
        created_at: datetime = LONG_AGO,
        roles: Sequence[OwnerRole] = (),
    ) -> int:
        with self.db.write() as s:
            taken = set(s.execute(select(Goal.zulip_topic)).scalars())
            g = Goal(
                period=period,
                slug=slug,
                title=title,
                short_title=short_title,
                status="Accepted",
                flagship=flagship,
                tracking_issue=issue,
                tracking_url=(
                    f"https://github.com/rust-lang/rust-project-goals/issues/{issue}"
                    if issue
                    else None
                ),
                zulip_topic=goal_topic(title, short_title, issue, taken),
                teams=",".join(teams),
                state=state,
                active=True,
                extra={},
                created_at=created_at,
                updated_at=created_at,
            )
            s.add(g)
            s.flush()
            for i, pid in enumerate(owners):
                role = roles[i] if i < len(roles) else OwnerRole.POINT_OF_CONTACT
                s.add(GoalOwner(goal_id=g.id, person_id=pid, role=role, position=i))
            return g.id

    def update(
        self,
        goal_id: int,
        author_id: int,
        content: str,
        sent_at: datetime,
        *,
        kind: UpdateKind = UpdateKind.UPDATE,
        tldr: str | None = None,
        help_wanted: str | None = None,
    ) -> int:
        with self.db.write() as s:
            mid = next(self.message_ids)
            s.add(
                Update(
                    zulip_message_id=mid,
                    goal_id=goal_id,
                    author_id=author_id,
                    kind=kind,
                    content=content,
                    tldr=tldr,
                    help_wanted=help_wanted,
                    sent_at=sent_at,
                )
            )
            return mid

    # -- asking ---------------------------------------------------------------------------------

    def reply(
        self, text: str, sender: SenderInfo = BEN, in_topic: tuple[str, str] | None = None
    ) -> Reply:
        reply = handle(self.ctx, sender, parse(text, bot_name="Goals Bot"), in_topic=in_topic)
        for message in reply.messages:
            assert 0 < len(message) < MAX_MESSAGE_LENGTH
        return reply

    def ask(
        self, text: str, sender: SenderInfo = BEN, in_topic: tuple[str, str] | None = None
    ) -> str:
        return "\n---\n".join(self.reply(text, sender, in_topic).messages)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table: to show that a refused command changed nothing."""
        tables = sorted(inspect(self.db.engine).get_table_names())
        with self.db.engine.connect() as conn:
            return {
                t: [tuple(r) for r in conn.execute(text(f'SELECT * FROM "{t}" ORDER BY 1'))]
                for t in tables
            }

    def topic_of(self, goal_id: int) -> tuple[str, str]:
        with self.db.read() as s:
            goal = s.get(Goal, goal_id)
            assert goal is not None
            return STREAM, goal.zulip_topic


def make_world(
    tmp_path: Path, name: str = "goals", *, admins: frozenset[str] = frozenset({"ada@example.com"})
) -> World:
    db = new_database(tmp_path, name)
    clock = FrozenClock(NOW)
    config = Config(path=None, zuliprc=tmp_path / "zuliprc", stream=STREAM, admins=admins)
    ctx = Context(
        Setting(
            config,
            SITE,
            bot_user_id=99,
            bot_name="Goals Bot",
            streams=(StreamRef(STREAM, STREAM_ID),),
        ),
        db,
        clock,
    )
    return World(ctx, clock, db)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path)
    yield w
    w.db.dispose()


@dataclass
class Cast:
    ada: int
    ben: int
    chloe: int
    lqd: int  # an owner from the goal files, not linked to Zulip yet
    polonius: int
    script: int
    allhands: int


@pytest.fixture
def cast(world: World) -> Cast:
    ada = world.person(zulip=ADA)
    ben = world.person(zulip=BEN, github="ben-gh")
    chloe = world.person(zulip=CHLOE)
    lqd = world.person(github="lqd")
    polonius = world.goal(
        "Polonius",
        "Scalable Polonius support on nightly",
        owners=[ben, lqd],
        issue=118,
        teams=["types"],
    )
    script = world.goal(
        "cargo-script", "Stabilize cargo-script", owners=[chloe], issue=119, teams=["cargo", "lang"]
    )
    allhands = world.goal(
        "all-hands",
        "Organize Rust All-Hands 2025",
        owners=[ben],
        issue=263,
        flagship="Yes",
        teams=["leadership-council"],
    )
    return Cast(ada, ben, chloe, lqd, polonius, script, allhands)


# --------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    "text",
    [
        "@**Goals Bot** status polonius",
        "@**Goals Bot|99** status polonius",
        "@_**Goals Bot|99**   status polonius",
        "@**goals bot**: status polonius",
        "status polonius",
        "  Status   polonius ",
    ],
)
def test_parse_strips_the_bot_mention(text: str) -> None:
    command = parse(text, bot_name="Goals Bot")
    assert (command.name, command.text) == ("status", "polonius")


def test_parse_shapes() -> None:
    assert parse("").name == "help"
    assert parse("@**Goals Bot**").name == "help"
    assert parse("I am @Ferris") == Command("iam", text="@Ferris", typed="I am")
    assert parse("iam ferris").name == "iam"
    assert parse("i am ferris").text == "ferris"
    assert parse("list team compiler") == Command("list", sub="team", text="compiler", typed="list")
    assert parse("owners add polonius @lqd").sub == "add"
    assert parse("goal add x Title here") == Command(
        "goal", sub="add", text="x Title here", typed="goal"
    )
    assert parse("frobnicate the goals") == Command("unknown", text="the goals", typed="frobnicate")
    assert parse("help?").name == "help"


@pytest.mark.parametrize(
    "text",
    [
        "status polonius",
        "@**Goals Bot** status polonius",
        "history polonius 10",
        "skip",
        "skip polonius",
        "help",
        "mine",
        "list",
        "list due",
        "list team compiler",
        "subscribe digest",
        "away for 2 weeks",
        "away until 2026-12-15",
        "back",
        "I am @ferris",
        "owners add polonius @lqd",
        "",
    ],
)
def test_is_command_accepts_commands(text: str) -> None:
    assert None is not command_in(text, "Goals Bot")


@pytest.mark.parametrize(
    "text",
    [
        "Made progress on the borrow checker this week.",
        "Status: landed the PR for location-sensitive analysis",
        "status update: landed the PR",
        "Back from holidays, here is what happened: the PR landed",
        "help wanted: reviewers for the new solver",
        "skip\nand here is why: nothing happened",
        "update polonius: landed the PR",
        "mine is going well",
        "List of things done: a, b",
        "I am happy to report that we finished",
    ],
)
def test_is_command_leaves_updates_alone(text: str) -> None:
    assert None is command_in(text, "Goals Bot")


def test_parse_away_dates() -> None:
    today = date(2025, 3, 10)
    assert parse_away("until 2025-04-01", today) == date(2025, 4, 1)
    assert parse_away("for 2 weeks", today) == date(2025, 3, 24)
    assert parse_away("for 3 days", today) == date(2025, 3, 13)
    for bad, says in [
        ("until 2025-03-01", "not in the future"),
        ("until 2025-03-10", "not in the future"),
        ("until tomorrow", "not a date I can read"),
        ("next week", "I didn't understand"),
        ("for 0 days", "no time at all"),
        ("until 2027-01-01", "more than a year"),
    ]:
        with pytest.raises(Exception, match=says):
            parse_away(bad, today)


def test_parse_people_splits_goal_from_people() -> None:
    goal, refs = parse_people("cargo script @epage, @**Ben Owner|12** and ben@example.com")
    assert goal == "cargo script"
    assert [(r.kind, r.value) for r in refs] == [
        ("github", "epage"),
        ("zulip", "12"),
        ("email", "ben@example.com"),
    ]


# --------------------------------------------------------------------------------------------
# Goal matching (pure)


def _names() -> list[GoalName]:
    rows = [
        ("Polonius", "Scalable Polonius support on nightly", None, 118),
        ("cargo-script", "Stabilize cargo-script", None, 119),
        ("cargo-plumbing", 'Prototype a new set of Cargo "plumbing" commands', None, 264),
        ("cargo-semver-checks", "Continue resolving `cargo-semver-checks` blockers", None, 104),
        ("rfl", "Stabilize tooling needed by Rust for Linux", "Rust-for-Linux", 116),
        ("all-hands", "Organize Rust All-Hands 2025", None, 263),
        ("next-solver", "Next-generation trait solver", None, 113),
        ("const-trait", "Prepare const traits for stabilization", None, 106),
        (
            "min_generic_const_arguments",
            '"Stabilizable" prototype for expanded const generics',
            None,
            100,
        ),
        ("async", "Bring the Async Rust experience closer to parity with sync Rust", "Async", 105),
        ("annotate-snippets", "Use annotate-snippets for rustc diagnostic output", None, 123),
    ]
    taken: set[str] = set()
    out = []
    for i, (slug, title, short, issue) in enumerate(rows, 1):
        topic = goal_topic(title, short, issue, taken)
        taken.add(topic)
        out.append(GoalName(i, slug, title, short, issue, topic, True))
    return out


@pytest.mark.parametrize(
    ("query", "slug"),
    [
        ("polonius", "Polonius"),  # slug, any case
        ("POLONIUS", "Polonius"),
        ("polonious", "Polonius"),  # typo
        ("polnius", "Polonius"),  # typo
        ("cargo scirpt", "cargo-script"),  # typo in one of two shared words
        ("cargo-script", "cargo-script"),
        ("Stabilize cargo-script", "cargo-script"),  # the title
        ("Rust-for-Linux", "rfl"),  # the short title
        ("linux", "rfl"),  # one word of the title
        ("trait solver", "next-solver"),  # words of the title
        ("semver", "cargo-semver-checks"),
        ("annotate snipets", "annotate-snippets"),
        ("#263", "all-hands"),
        ("goals#263", "all-hands"),
        ("rust-lang/rust-project-goals#263", "all-hands"),
        ("https://github.com/rust-lang/rust-project-goals/issues/118", "Polonius"),
        ("263", "all-hands"),
        ("Polonius (goals#118)", "Polonius"),  # the topic name
        ("`polonius`", "Polonius"),
        ("const generics", "min_generic_const_arguments"),
    ],
)
def test_match_finds_one_goal(query: str, slug: str) -> None:
    result = match_goal(query, _names())
    assert result.kind is MatchKind.FOUND, result
    assert result.goal is not None and result.goal.slug == slug


def test_match_ambiguous_lists_candidates() -> None:
    result = match_goal("cargo", _names())
    assert result.kind is MatchKind.AMBIGUOUS
    assert {g.slug for g in result.candidates} == {
        "cargo-script",
        "cargo-plumbing",
        "cargo-semver-checks",
    }
    text = result.message("status")
    assert text.startswith("'cargo' could be several goals. Did you mean:\n1. **")
    assert "`status cargo-script`" in text
    assert "2. " in text and "3. " in text

    const = match_goal("const", _names())
    assert const.kind is MatchKind.AMBIGUOUS
    assert {g.slug for g in const.candidates} == {"const-trait", "min_generic_const_arguments"}


def test_match_none_says_closest() -> None:
    result = match_goal("xylophone orchestra", _names())
    assert result.kind is MatchKind.NONE
    text = result.message()
    assert text.startswith("No goal matches 'xylophone orchestra'. Closest: **")
    assert text.endswith("Say `list` to see every goal.")
    assert match_goal("#999", _names()).kind is MatchKind.NONE
    assert match_goal("", _names()).kind is MatchKind.NONE
    assert match_goal("polonius", []).kind is MatchKind.NONE


def test_match_message_never_pings() -> None:
    result = match_goal("@**all** @*everyone* blah", _names())
    assert result.kind is MatchKind.NONE
    assert not contains_unsafe_mention(result.message())


def test_match_every_real_goal_by_slug_title_and_issue() -> None:
    docs, _problems = read_goal_files([GOALS_DATA / "2025h1"])
    accepted = [d for _p, d in docs if d.status is not GoalStatus.NOT_ACCEPTED]
    taken: set[str] = set()
    names = []
    for i, d in enumerate(accepted, 1):
        topic = goal_topic(d.title, d.short_title, d.tracking_issue, taken)
        taken.add(topic)
        names.append(GoalName(i, d.slug, d.title, d.short_title, d.tracking_issue, topic, True))
    assert len(names) > 30
    for n in names:
        queries = [n.slug, n.title, n.zulip_topic]
        if n.tracking_issue is not None:
            queries += [f"#{n.tracking_issue}", f"goals#{n.tracking_issue}"]
        for q in queries:
            result = match_goal(q, names)
            assert result.found and result.goal == n, (q, result)


# --------------------------------------------------------------------------------------------
# status


def test_status_shows_everything_a_reader_needs(world: World, cast: Cast) -> None:
    mid = world.update(
        cast.polonius,
        cast.ben,
        "TL;DR: location-sensitive analysis landed.\n\nLong details follow here.",
        NOW - timedelta(days=12),
        tldr="location-sensitive analysis landed.",
        help_wanted="reviewers for the new solver",
    )
    text = world.ask("status polonius", sender=EVE)
    assert text.startswith(
        ":hourglass: **Scalable Polonius support on nightly** — an update is due"
    )
    assert "**Status**: Accepted (bot: active) · `Polonius` · 2025h1" in text
    assert "**Owners**: @_**Ben Owner|12**, @lqd (not linked to Zulip yet)" in text
    assert "**Teams**: types" in text
    assert (
        "**Tracking issue**: [goals#118](https://github.com/rust-lang/rust-project-goals/issues/118)"
        in text
    )
    assert (
        "**Topic**: [#project-goals > Scalable Polonius support on nightly (goals#118)]"
        "(#narrow/stream/7-project-goals/topic/"
        "Scalable.20Polonius.20support.20on.20nightly.20.28goals.23118.29)"
    ) in text
    assert (
        "**Latest update**: by @_**Ben Owner|12**, <time:2025-02-26T12:00:00+00:00> (12 days ago)"
        f" — [view message]({SITE}/#narrow/id/{mid})"
    ) in text
    assert "```quote\nlocation-sensitive analysis landed.\n```" in text
    assert "Long details" not in text  # the TL;DR stands for the update
    assert "**Help wanted**: reviewers for the new solver" in text
    assert f"**Next prompt**: {NEXT_PROMPT} (every 2 weeks)" in text
    assert not contains_unsafe_mention(text)


def test_status_without_updates_and_flagship(world: World, cast: Cast) -> None:
    text = world.ask("status #263", sender=EVE)
    assert "**Organize Rust All-Hands 2025**" in text
    assert "**Flagship goal**" in text
    assert "**Latest update**: none yet." in text
    # created 90 days ago and never updated: overdue
    assert text.startswith(":warning:") and "overdue" in text


def test_status_up_to_date_and_first_lines_when_no_tldr(world: World, cast: Cast) -> None:
    lines = "\n".join(f"line {i}" for i in range(1, 30))
    world.update(cast.polonius, cast.ben, lines, PERIOD_START + timedelta(hours=1))
    text = world.ask("status polonius")
    assert text.startswith(":check: **Scalable Polonius support on nightly** — up to date")
    assert "line 1\n" in text and "line 29" not in text


def test_status_in_a_goal_topic_needs_no_name(world: World, cast: Cast) -> None:
    text = world.ask("status", sender=EVE, in_topic=world.topic_of(cast.script))
    assert "**Stabilize cargo-script**" in text


def test_status_resolved_topic_still_names_the_goal(world: World, cast: Cast) -> None:
    stream, topic = world.topic_of(cast.script)
    text = world.ask("status", sender=EVE, in_topic=(stream, "✔ " + topic))
    assert "**Stabilize cargo-script**" in text


def test_status_for_an_unknown_or_ambiguous_goal(world: World, cast: Cast) -> None:
    world.goal("cargo-plumbing", "Prototype Cargo plumbing commands", issue=264)
    assert world.ask("status cargo").startswith("'cargo' could be several goals. Did you mean:")
    text = world.ask("status zzzzqqq")
    assert text.startswith("No goal matches 'zzzzqqq'.")
    assert world.ask("status", sender=EVE) == (
        "Which goal? Name it, for example: `status polonius`."
    )


def test_status_of_a_retired_goal_is_still_found(world: World, cast: Cast) -> None:
    world.goal("old-goal", "An old retired goal", state=GoalState.RETIRED, period="2024h2")
    text = world.ask("status old-goal")
    assert text.startswith(":file_cabinet: **An old retired goal** — retired")
    assert "Next prompt" not in text


def _bulk_goals(world: World, n: int) -> int:
    with world.db.write() as s:
        people = [
            Person(full_name=f"Owner {i}", github=f"owner-{i}", created_at=LONG_AGO)
            for i in range(n)
        ]
        s.add_all(people)
        s.flush()
        goals = [
            Goal(
                period="2025h1",
                slug=f"goal-{i}",
                title=f"Goal number {i}",
                status="Accepted",
                tracking_issue=5000 + i,
                zulip_topic=f"Goal number {i} (goals#{5000 + i})",
                teams="compiler" if i % 2 else "lang",
                extra={},
                created_at=LONG_AGO,
                updated_at=LONG_AGO,
            )
            for i in range(n)
        ]
        s.add_all(goals)
        s.flush()
        for g, p in zip(goals, people, strict=True):
            s.add(GoalOwner(goal_id=g.id, person_id=p.id, role=OwnerRole.POINT_OF_CONTACT))
            s.add(
                Update(
                    zulip_message_id=next(world.message_ids),
                    goal_id=g.id,
                    author_id=p.id,
                    content=f"progress on goal {g.id}",
                    sent_at=NOW - timedelta(days=3),
                )
            )
        return goals[0].id


def _status_statements(tmp_path: Path, goals: int) -> list[int]:
    """SQL statements issued by `status` (by slug, then by issue) with ``goals`` goals."""
    world = make_world(tmp_path, f"goals{goals}")
    _bulk_goals(world, goals)
    world.person(zulip=EVE)
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    counts = []
    event.listen(world.db.engine, "before_cursor_execute", count)
    try:
        for query in ("goal-3", "#5003"):
            seen.clear()
            assert "**Goal number 3**" in world.ask(f"status {query}", sender=EVE)
            counts.append(len(seen))
    finally:
        event.remove(world.db.engine, "before_cursor_execute", count)
        world.db.dispose()
    return counts


def test_status_uses_the_same_number_of_statements_for_10_or_500_goals(tmp_path: Path) -> None:
    small = _status_statements(tmp_path, 10)
    large = _status_statements(tmp_path, 500)
    assert small == large
    assert max(small) <= 11  # the goal (five, health included), champions, people, …


# --------------------------------------------------------------------------------------------
# history


def test_history_newest_first_with_comments(world: World, cast: Cast) -> None:
    for day in range(1, 8):
        world.update(cast.polonius, cast.ben, f"update number {day}", NOW - timedelta(days=day))
    world.update(
        cast.polonius,
        cast.chloe,
        "a question from Chloé",
        NOW - timedelta(hours=2),
        kind=UpdateKind.COMMENT,
    )
    text = world.ask("history polonius")
    assert "the last 5 messages, newest first" in text
    first = text.index("a question from Chloé")
    assert text.index("update number 1") > first
    assert text.index("update number 4") > text.index("update number 1")
    assert "update number 5" not in text
    assert "Comment by @_**Chloé Owner|13**, <time:2025-03-10T10:00:00+00:00> (today)" in text
    assert "**Update** by @_**Ben Owner|12**, <time:2025-03-09T12:00:00+00:00> (yesterday)" in text

    three = world.ask("history polonius 3")
    assert "the last 3 messages" in three and "update number 3" not in three


def test_history_is_capped_and_split_under_the_limit(world: World, cast: Cast) -> None:
    long_text = "\n\n".join("word " * 80 for _ in range(10))
    for i in range(60):
        world.update(cast.polonius, cast.ben, f"#{i} {long_text}", NOW - timedelta(hours=i + 1))
    reply = world.reply("history polonius 500")
    assert len(reply.messages) > 1
    assert all(len(m) < MAX_MESSAGE_LENGTH for m in reply.messages)
    joined = "\n".join(reply.messages)
    assert f"the last {HISTORY_MAX} messages (at most {HISTORY_MAX})" in joined
    assert joined.count("**Update** by") == HISTORY_MAX


def test_history_of_a_goal_without_messages(world: World, cast: Cast) -> None:
    assert world.ask("history cargo-script") == (
        "No updates or comments for **Stabilize cargo-script** yet."
    )


# --------------------------------------------------------------------------------------------
# list, mine, overdue


def test_list_and_its_filters(world: World, cast: Cast) -> None:
    world.update(cast.polonius, cast.ben, "done", PERIOD_START + timedelta(days=1))
    world.update(cast.script, cast.chloe, "last period", PERIOD_START - timedelta(days=2))
    paused = world.goal("paused-goal", "A paused goal", state=GoalState.PAUSED, teams=["lang"])
    assert paused

    everything = world.ask("list")
    assert everything.startswith("Goals (4):")
    assert (
        "- :check: **Scalable Polonius support on nightly** (`Polonius`, goals#118) — up to date;"
        " Ben Owner, @lqd; last update 9 days ago"
    ) in everything

    flagship = world.ask("list flagship")
    assert flagship.startswith("Flagship goals (1):") and "All-Hands" in flagship

    team = world.ask("list team lang")
    assert "Goals of team lang (2):" in team and "cargo-script" in team and "paused" in team
    assert world.ask("list team t-cargo").startswith("Goals of team cargo (1):")
    unknown_team = world.ask("list team compilr")
    assert unknown_team.startswith("No goal names the team 'compilr'. Teams: ")
    assert "leadership-council" in unknown_team

    due = world.ask("list due")
    assert due.startswith("Goals waiting for an update (2):")
    assert "cargo-script" in due and "all-hands" in due and "Polonius" not in due

    overdue = world.ask("overdue")
    assert overdue == world.ask("list overdue")
    assert overdue.startswith("Overdue goals (1):") and "all-hands" in overdue

    assert world.ask("list paused").startswith("Paused goals (1):")
    assert world.ask("list bananas").startswith("I can't list 'bananas'.")


def test_list_of_a_thousand_goals_fits_one_message(world: World) -> None:
    _bulk_goals(world, 1000)
    reply = world.reply("list")
    assert len(reply.messages) == 1
    text = reply.messages[0]
    assert text.startswith("Goals (1000):")
    assert "more" in text.splitlines()[-2] or "more" in text
    assert "… and " in text
    assert len(text) < MAX_MESSAGE_LENGTH


def test_mine_says_what_i_owe(world: World, cast: Cast) -> None:
    world.update(cast.polonius, cast.ben, "done", PERIOD_START + timedelta(days=1))
    text = world.ask("mine", sender=BEN)
    assert text.startswith("You own 2 goals:")
    assert "**Scalable Polonius support on nightly** (`Polonius`): up to date" in text
    assert "**Organize Rust All-Hands 2025** (`all-hands`): overdue" in text
    assert "**you owe an update**" in text
    assert "say `skip <goal>`" in text

    nothing = world.ask("mine", sender=EVE)
    assert nothing.startswith("You don't own any goal that I know of.")
    assert "`I am @your-handle`" in nothing


# --------------------------------------------------------------------------------------------
# help, about, unknown


def test_help_lists_every_command_with_an_example(world: World) -> None:
    text = world.ask("help", sender=EVE)
    for spec in SPECS:
        assert f"- `{spec.syntax}`" in text
        assert f"`{spec.example}`" in text
    assert "**Admins only** :lock:" in text
    assert "- `retire <goal>` :lock:" in text
    assert "- `status <goal>` —" in text
    assert world.ask("", sender=EVE) == text
    assert not contains_unsafe_mention(text)


def test_about(world: World, cast: Cast) -> None:
    text = world.ask("about", sender=EVE)
    assert f"**Goals Bot** {__version__}:" in text
    assert "every 2 weeks (some goals differ) on Thursday at 14:00 (UTC)" in text
    assert "one reminder 3 days later" in text
    assert f"Next prompts: {NEXT_PROMPT}" in text
    assert (
        "every Monday at 09:00 (UTC) in [#project-goals > weekly digest]"
        "(#narrow/stream/7-project-goals/topic/weekly.20digest)"
    ) in text
    assert "in each goal's topic in [#project-goals](#narrow/stream/7-project-goals)" in text
    assert "Bot admins: @_**Ada Admin|1**." in text


def test_about_names_realm_admins_without_configured_ones(tmp_path: Path) -> None:
    world = make_world(tmp_path, admins=frozenset())
    world.person(zulip=RITA, is_admin=True)
    assert "Bot admins: @_**Rita Realm|16**." in world.ask("about", sender=EVE)
    world.db.dispose()


def test_unknown_command_gets_help_not_silence(world: World) -> None:
    text = world.ask("frobnicate polonius", sender=EVE)
    assert text.startswith("I don't know the command 'frobnicate'. Here is what I can do:")
    assert "`status <goal>`" in text


# --------------------------------------------------------------------------------------------
# Echoed text never pings


def test_titles_updates_and_queries_are_quoted_harmlessly(world: World) -> None:
    ben = world.person(zulip=BEN)
    gid = world.goal("evil", "@**all** help", owners=[ben], issue=7)
    world.update(
        gid,
        ben,
        "TL;DR: @*everyone* look @**Chloé Owner|13** and @**all**",
        NOW - timedelta(days=1),
        tldr="@*everyone* look @**Chloé Owner|13**",
        help_wanted="@**all** please",
    )
    answers = [
        world.ask("status evil"),
        world.ask("history evil"),
        world.ask("list"),
        world.ask("mine"),
        world.ask("status @**all**"),
        world.ask("@**all** frobnicate"),
        world.ask("status @*everyone* nothing like this"),
        world.ask("list team @**all**"),
        world.ask("I am @**all**"),
    ]
    for answer in answers:
        assert not contains_unsafe_mention(answer), answer
    assert "**@\u200ball help**" in answers[0]
    assert "@\u200b*everyone*" in answers[0]


# --------------------------------------------------------------------------------------------
# Owners: skip, away, back, pause, resume, complete


def test_skip_in_the_goal_topic(world: World, cast: Cast) -> None:
    text = world.ask("skip", sender=BEN, in_topic=world.topic_of(cast.polonius))
    assert text == (
        "OK: no update needed for **Scalable Polonius support on nightly** this period. "
        f"I'll ask again {NEXT_PROMPT}."
    )
    with world.db.read() as s:
        skips = s.execute(select(Skip.goal_id, Skip.period, Skip.person_id)).all()
    assert skips == [(cast.polonius, "2025-02-27", cast.ben)]
    assert "skipped this period" in world.ask("status polonius")
    again = world.ask("skip polonius", sender=BEN)
    assert again.startswith("**Scalable Polonius support on nightly** is already skipped")


def test_skip_by_dm_needs_the_goal_when_owning_several(world: World, cast: Cast) -> None:
    assert world.ask("skip", sender=BEN) == "Which goal? Name it, for example: `skip polonius`."
    assert world.ask("skip", sender=CHLOE).startswith("OK: no update needed for **Stabilize")
    assert world.ask("skip this week", sender=BEN).startswith("Which goal?")


def test_skip_by_someone_else_is_refused(world: World, cast: Cast) -> None:
    before = world.snapshot()
    text = world.ask("skip polonius", sender=CHLOE)
    assert text.startswith("Only the owners of **Scalable Polonius support on nightly**")
    assert "nothing was changed" in text
    assert world.snapshot() == before


def test_admin_may_skip_any_goal(world: World, cast: Cast) -> None:
    assert world.ask("skip polonius", sender=ADA).startswith("OK: no update needed")


def test_away_and_back(world: World, cast: Cast) -> None:
    text = world.ask("away until 2025-04-01", sender=BEN)
    assert text.startswith("Got it: you are away until Tuesday 2025-04-01.")
    with world.db.read() as s:
        assert s.execute(select(Person.away_until).where(Person.id == cast.ben)).scalar() == date(
            2025, 4, 1
        )
    assert "@_**Ben Owner|12** (away until 2025-04-01)" in world.ask("status all-hands")
    assert "You are away until 2025-04-01" in world.ask("mine", sender=BEN)
    assert world.ask("away until 2025-03-01", sender=BEN).startswith(
        "2025-03-01 is not in the future"
    )
    assert world.ask("back", sender=BEN).startswith("Welcome back!")
    with world.db.read() as s:
        assert s.execute(select(Person.away_until).where(Person.id == cast.ben)).scalar() is None
    assert world.ask("back", sender=BEN).startswith("You weren't marked away")
    assert world.ask("away for 2 weeks", sender=EVE).startswith(
        "Got it: you are away until Monday 2025-03-24."
    )


def test_a_handler_that_writes_itself_is_refused_and_changes_nothing(
    world: World, cast: Cast, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commands change rows only through the effects they return: a handler that sets a
    column itself trips the check before anything is committed."""

    def rogue(call: Call, command: Command) -> Answer:
        call.me.away_until = date(2025, 4, 1)
        return Answer.say("Got it.")

    monkeypatch.setitem(dispatch.WRITERS, "away", rogue)  # type: ignore[index]
    before = world.snapshot()
    with pytest.raises(HandlerWroteError, match="`away` wrote rows"):
        world.ask("away until 2025-04-01", sender=BEN)
    assert world.snapshot() == before


def test_a_refused_writing_command_returns_no_effects(world: World, cast: Cast) -> None:
    """The answer is decided before anything is written: the same request, refused for
    permission, leaves every table as it was."""
    before = world.snapshot()
    assert "Only the owners" in world.ask("pause polonius", sender=CHLOE)
    assert "only bot admins" in world.ask("retire polonius", sender=BEN)
    assert world.snapshot() == before


def _state(world: World, goal_id: int) -> GoalState:
    with world.db.read() as s:
        goal = s.get(Goal, goal_id)
        assert goal is not None
        return goal.state


def test_pause_resume_complete_by_an_owner(world: World, cast: Cast) -> None:
    assert world.ask("pause polonius", sender=BEN) == (
        "**Scalable Polonius support on nightly** is paused: no prompts until someone says "
        "`resume Polonius`."
    )
    assert _state(world, cast.polonius) is GoalState.PAUSED
    assert world.ask("pause polonius", sender=BEN).endswith("is already paused; nothing to change.")
    assert "paused: owners are not asked" in world.ask("status polonius")
    resumed = world.ask("resume polonius", sender=BEN)
    assert resumed.endswith("is active again: owners will be prompted from the next period.")
    completed = world.ask("complete polonius", sender=BEN)
    assert completed.endswith("Congratulations! :tada: No more prompts.")
    assert _state(world, cast.polonius) is GoalState.COMPLETED
    assert world.ask("pause polonius", sender=BEN).startswith(
        "**Scalable Polonius support on nightly** is completed, so it can't be paused"
    )


def test_pause_by_a_non_owner_changes_nothing(world: World, cast: Cast) -> None:
    before = world.snapshot()
    for command in ("pause polonius", "complete polonius", "resume polonius"):
        assert world.ask(command, sender=CHLOE).startswith("Only the owners of")
    assert world.snapshot() == before
    assert world.ask("pause polonius", sender=ADA).endswith("`resume Polonius`.")


# --------------------------------------------------------------------------------------------
# Digest subscriptions


def _subscribers(world: World) -> list[int]:
    with world.db.read() as s:
        return list(s.execute(select(DigestSubscription.person_id)).scalars())


def test_subscribe_and_unsubscribe_are_idempotent(world: World, cast: Cast) -> None:
    assert world.ask("subscribe digest", sender=CHLOE).startswith(
        "Subscribed: I'll DM you the weekly digest."
    )
    assert world.ask("subscribe digest", sender=CHLOE).startswith("You are already subscribed")
    assert _subscribers(world) == [cast.chloe]
    assert world.ask("subscribers", sender=ADA) == (
        "1 subscriber to the digest by DM:\n- @_**Chloé Owner|13**"
    )
    assert world.ask("unsubscribe digest", sender=CHLOE).startswith("Unsubscribed")
    assert world.ask("unsubscribe digest", sender=CHLOE).startswith("You weren't subscribed")
    assert _subscribers(world) == []
    assert world.ask("subscribe newsletter", sender=CHLOE).startswith(
        "The weekly digest is the only thing to subscribe to"
    )
    assert world.ask("subscribers", sender=ADA) == "Nobody is subscribed to the digest by DM."


def test_first_sight_creates_the_person(world: World) -> None:
    newcomer = SenderInfo(77, "new@example.com", "New Person")
    world.ask("subscribe digest", sender=newcomer)
    with world.db.read() as s:
        p = s.execute(select(Person).where(Person.zulip_user_id == 77)).scalar_one()
        assert (p.email, p.full_name) == ("new@example.com", "New Person")
        assert s.get(DigestSubscription, p.id) is not None


# --------------------------------------------------------------------------------------------
# Identity: I am @handle, map


def _owners(world: World, goal_id: int) -> list[int]:
    with world.db.read() as s:
        return list(
            s.execute(
                select(GoalOwner.person_id)
                .where(GoalOwner.goal_id == goal_id)
                .order_by(GoalOwner.position)
            ).scalars()
        )


def test_claiming_an_imported_handle_merges_the_placeholder(world: World, cast: Cast) -> None:
    lqd = SenderInfo(20, "remy@example.com", "Rémy Rakic")
    world.update(cast.polonius, cast.lqd, "an imported update", NOW - timedelta(days=20))
    text = world.ask("I am @LQD", sender=lqd)
    assert text == (
        "Thanks! GitHub @lqd is now linked to your Zulip account. You own: "
        "**Scalable Polonius support on nightly**."
    )
    with world.db.read() as s:
        me = s.execute(select(Person).where(Person.zulip_user_id == 20)).scalar_one()
        assert (me.github, me.mapped_via, me.claimed_at) == ("lqd", "claim", NOW)
        assert s.get(Person, cast.lqd) is None  # the placeholder is gone
        authors = set(s.execute(select(Update.author_id)).scalars())
    assert _owners(world, cast.polonius) == [cast.ben, me.id]
    assert authors == {me.id}
    assert "@_**Rémy Rakic|20**" in world.ask("status polonius")
    assert world.ask("mine", sender=lqd).startswith("You own 1 goal:")
    assert world.ask("iam lqd", sender=lqd) == "You are already linked to GitHub @lqd."


def test_claiming_a_fresh_handle(world: World, cast: Cast) -> None:
    assert world.ask("i am newbie", sender=EVE) == (
        "Thanks! GitHub @newbie is now linked to your Zulip account. No goal lists that handle yet."
    )
    assert world.ask("iam @other", sender=EVE).startswith(
        "Your Zulip account is already linked to GitHub @newbie."
    )


def test_a_handle_of_another_zulip_user_cannot_be_taken(world: World, cast: Cast) -> None:
    before = world.snapshot()
    text = world.ask("I am @ben-gh", sender=EVE)
    assert text.startswith("GitHub @ben-gh is already linked to another Zulip account")
    assert "ask a bot admin" in text
    assert "Ben" not in text and "ben@example.com" not in text
    assert world.snapshot() == before
    assert world.ask("I am --nope", sender=EVE).startswith("'--nope' is not a GitHub")


def test_admin_map_reassigns_a_handle(world: World, cast: Cast) -> None:
    world.person(zulip=EVE)
    text = world.ask("map @ben-gh @**Eve Lead|15**", sender=ADA)
    assert text == (
        "GitHub @ben-gh is now linked to @_**Eve Lead|15** (moved from @_**Ben Owner|12**, "
        "with its goals)."
    )
    with world.db.read() as s:
        eve = s.execute(select(Person).where(Person.zulip_user_id == 15)).scalar_one()
        ben = s.get(Person, cast.ben)
        assert ben is not None
        assert (eve.github, eve.mapped_via, ben.github) == ("ben-gh", "admin", None)
    assert _owners(world, cast.allhands) == [eve.id]
    assert world.ask("map @lqd chloe@example.com", sender=ADA) == (
        "GitHub @lqd is now linked to @_**Chloé Owner|13**."
    )
    assert _owners(world, cast.polonius) == [eve.id, cast.chloe]


# --------------------------------------------------------------------------------------------
# Admin commands


ADMIN_COMMANDS = [
    "goal add faster-builds Faster incremental builds",
    "owners set polonius @someone",
    "owners add polonius @**Chloé Owner|13**",
    "owners remove polonius @lqd",
    "cadence polonius 4",
    "retire polonius",
    "map @lqd @**Eve Lead|15**",
    "subscribers",
]


@pytest.mark.parametrize("command", ADMIN_COMMANDS)
def test_admin_commands_refuse_others_and_change_nothing(
    world: World, cast: Cast, command: str
) -> None:
    before = world.snapshot()
    for sender in (BEN, EVE):
        text = world.ask(command, sender=sender)
        assert text.startswith("Sorry, only bot admins can use `")
        assert "nothing was changed" in text
    assert world.snapshot() == before


def test_realm_admins_and_admin_people_are_admins(world: World, cast: Cast) -> None:
    assert world.ask("subscribers", sender=RITA) == "Nobody is subscribed to the digest by DM."
    world.person(zulip=EVE, is_admin=True)
    assert world.ask("subscribers", sender=EVE) == "Nobody is subscribed to the digest by DM."


def test_goal_add(world: World, cast: Cast) -> None:
    text = world.ask("goal add faster-builds Faster incremental builds", sender=ADA)
    assert text == (
        "Added **Faster incremental builds** (`faster-builds`, period manual); its topic is "
        "[#project-goals > Faster incremental builds]"
        "(#narrow/stream/7-project-goals/topic/Faster.20incremental.20builds). Add owners with "
        "`owners add faster-builds @github-handle`."
    )
    assert world.ask("goal add faster-builds Again", sender=ADA) == (
        "There is already a goal `faster-builds` in period manual."
    )
    assert world.ask("goal add x --period 2025h2 Same title", sender=ADA).startswith(
        "Added **Same title** (`x`, period 2025h2)"
    )
    world.ask("goal add dup Faster incremental builds", sender=ADA)
    with world.db.read() as s:
        rows = s.execute(
            select(Goal.slug, Goal.period, Goal.zulip_topic, Goal.state)
            .where(Goal.slug.in_(["faster-builds", "x", "dup"]))
            .order_by(Goal.id)
        ).all()
    assert rows == [
        ("faster-builds", "manual", "Faster incremental builds", GoalState.ACTIVE),
        ("x", "2025h2", "Same title", GoalState.ACTIVE),
        ("dup", "manual", "Faster incremental builds (2)", GoalState.ACTIVE),
    ]
    assert world.ask("goal add", sender=ADA).startswith("A goal needs a slug and a title")
    assert world.ask("goal add bad/slug Title", sender=ADA).startswith("'bad/slug' can't be a slug")
    assert "status faster-builds" and "Faster incremental builds" in world.ask(
        "status faster-builds"
    )


def test_owners_set_add_remove(world: World, cast: Cast) -> None:
    added = world.ask("owners add cargo-script @epage @**Ben Owner|12**", sender=ADA)
    assert added == (
        "Owners of **Stabilize cargo-script**: @_**Chloé Owner|13**, @epage (not linked to "
        "Zulip yet), @_**Ben Owner|12**."
    )
    removed = world.ask("owners remove cargo-script @epage", sender=ADA)
    assert removed == (
        "Owners of **Stabilize cargo-script**: @_**Chloé Owner|13**, @_**Ben Owner|12**."
    )
    assert world.ask("owners remove cargo-script @epage", sender=ADA).startswith(
        "@epage is not an owner of **Stabilize cargo-script**; nothing was changed."
    )
    replaced = world.ask("owners set cargo-script @lqd, eve@example.com", sender=ADA)
    assert replaced.startswith("I don't know a Zulip user with the email eve@example.com")
    world.person(zulip=EVE)
    replaced = world.ask("owners set cargo-script @lqd, eve@example.com", sender=ADA)
    assert replaced == (
        "Owners of **Stabilize cargo-script**: @lqd (not linked to Zulip yet), @_**Eve Lead|15**."
    )
    assert world.ask("owners add cargo-script", sender=ADA).startswith("Whom?")
    assert world.ask("owners frob cargo-script @x", sender=ADA).startswith("Say `owners set")


def test_cadence_and_retire(world: World, cast: Cast) -> None:
    assert world.ask("cadence polonius 4", sender=ADA) == (
        "**Scalable Polonius support on nightly** is now prompted every 4 weeks. "
        "Next prompt: <time:2025-03-27T14:00:00+00:00>."
    )
    assert "(every 4 weeks)" in world.ask("status polonius")
    assert world.ask("cadence polonius default", sender=ADA).startswith(
        "**Scalable Polonius support on nightly** is now prompted every 2 weeks (the default)."
    )
    assert world.ask("cadence polonius 3", sender=ADA).startswith("'3' is not a cadence.")
    assert world.ask("retire polonius", sender=ADA).startswith(
        "**Scalable Polonius support on nightly** is retired"
    )
    assert _state(world, cast.polonius) is GoalState.RETIRED
    assert "Polonius" not in world.ask("list")
    assert world.ask("resume polonius", sender=BEN).endswith(
        "is retired; only a bot admin can bring it back."
    )


# --------------------------------------------------------------------------------------------
# The zulip_bots handler protocol


def _message(
    content: str, sender: SenderInfo, *, stream: str | None = None, topic: str = ""
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "sender_id": sender.user_id,
        "sender_email": sender.email,
        "sender_full_name": sender.full_name,
        "content": content,
    }
    if stream is None:
        msg.update(type="private", display_recipient=[{"id": sender.user_id}, {"id": 99}])
    else:
        msg.update(type="stream", display_recipient=stream, subject=topic)
    return msg


def test_stub_bot_handler_gets_replies(world: World, cast: Cast) -> None:
    bot = GoalsBotHandler(world.ctx)
    assert "status <goal>" in bot.usage()
    stub = StubBotHandler()
    bot.initialize(stub)

    bot.handle_message(
        _message("@**Goals Bot** status polonius", EVE, stream="general", topic="chat"), stub
    )
    reply = stub.unique_reply()
    assert reply["content"].startswith(":warning: **Scalable Polonius support on nightly**")

    stub.reset_transcript()
    _stream, topic = world.topic_of(cast.allhands)
    bot.handle_message(_message("skip", BEN, stream=STREAM, topic=topic), stub)
    assert stub.unique_reply()["content"].startswith(
        "OK: no update needed for **Organize Rust All-Hands 2025**"
    )

    stub.reset_transcript()
    bot.handle_message(_message("", EVE), stub)
    assert "**Admins only** :lock:" in stub.unique_reply()["content"]


def test_stub_bot_handler_with_zulip_bots_default_message(world: World, cast: Cast) -> None:
    """zulip_bots' own test messages carry a string sender id and no type."""
    bot = GoalsBotHandler(world.ctx)
    stub = StubBotHandler()
    message = {
        "display_recipient": "foo_stream",
        "sender_email": "foo@example.com",
        "sender_full_name": "Foo Test User",
        "sender_id": "123",
        "content": "history polonius",
    }
    bot.handle_message(message, stub)
    assert stub.unique_reply()["content"] == (
        "No updates or comments for **Scalable Polonius support on nightly** yet."
    )


# --------------------------------------------------------------------------------------------
# The real 2025h1 goals


def test_commands_over_the_real_2025h1_goals(world: World) -> None:
    docs, _problems = read_goal_files([GOALS_DATA / "2025h1"])
    with world.db.write() as s:
        taken: set[str] = set()
        people: dict[str, Person] = {}
        for _path, d in docs:
            if d.status is GoalStatus.NOT_ACCEPTED:
                continue
            topic = goal_topic(d.title, d.short_title, d.tracking_issue, taken)
            taken.add(topic)
            g = Goal(
                period="2025h1",
                slug=d.slug,
                title=d.title,
                short_title=d.short_title,
                status=d.status_text,
                flagship=d.flagship,
                tracking_issue=d.tracking_issue,
                tracking_url=d.tracking_url,
                zulip_topic=topic,
                teams=",".join(d.teams),
                extra={},
                created_at=LONG_AGO,
                updated_at=LONG_AGO,
            )
            s.add(g)
            s.flush()
            for i, handle in enumerate(d.owners):
                key = handle.lower()
                if key not in people:
                    people[key] = Person(github=key, mapped_via="file", created_at=LONG_AGO)
                    s.add(people[key])
                    s.flush()
                s.add(GoalOwner(goal_id=g.id, person_id=people[key].id, position=i))
    text = world.ask("status all hands", sender=EVE)
    assert text.startswith(":palm_tree: **Organize Rust All-Hands 2025** — waiting: every owner")
    assert "**Owners**: @m-ou-se (not linked to Zulip yet)" in text
    flagship = world.ask("list flagship", sender=EVE)
    assert "Rust-for-Linux" in flagship and "Async" in flagship
    assert world.ask("status rust-for-linux", sender=EVE).startswith(
        ":palm_tree: **Rust-for-Linux**"
    )
    claimed = world.ask("I am @epage", sender=EVE)
    assert claimed.startswith("Thanks! GitHub @epage is now linked to your Zulip account. You own:")
    assert "**Stabilize cargo-script**" in claimed
    assert world.ask("mine", sender=EVE).startswith("You own ")
