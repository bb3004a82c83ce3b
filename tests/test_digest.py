"""The weekly digest: golden output on the 2025h1 goals, the size split, exactly-once delivery.

The data set (``build_program``) is the real 2025h1 goal files plus updates written here in the
style of the monthly blog posts; ``tests/test_blog.py`` reuses it.  Golden files live in
``tests/golden/``; regenerate them with ``UPDATE_GOLDEN=1`` and review the diff by eye.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, insert, select

from tests.dbs import new_database
from tests.mentions import contains_unsafe_mention
from zulip_goals_bot.bot import outbox
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.config import Config, DigestConfig, ScheduleConfig
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Delivery, DigestSubscription, Goal, GoalOwner, Person, Update
from zulip_goals_bot.digest.compose import DigestData, compose_digest
from zulip_goals_bot.digest.delivery import (
    digest_due,
    load_digest_data,
    run_due_digest,
    send_digest,
)
from zulip_goals_bot.domain.markdown import MAX_MESSAGE_LENGTH, StreamRef
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.states import (
    DeliveryKind,
    DeliveryState,
    GoalState,
    OwnerRole,
    UpdateKind,
    UpdateSource,
)
from zulip_goals_bot.domain.views import GoalView, OwnerView, PersonView, UpdateView
from zulip_goals_bot.errors import ZulipError
from zulip_goals_bot.goals.files import GoalDoc, GoalStatus, read_goal_files
from zulip_goals_bot.goals.topics import goal_topic

GOALS_2025H1 = Path(__file__).resolve().parent / "data" / "rust-project-goals"
GOALS_2025H1 = GOALS_2025H1 / "2025h1"
GOLDEN = Path(__file__).resolve().parent / "golden"
SITE = "https://rust-lang.zulipchat.example"
STREAM = "project-goals"
GOALS_STREAM = StreamRef(STREAM, 7)  # links name the stream by this id, as the bot looks it up
# Monday 2025-03-17 09:00 UTC: the digest slot of the week the golden files show.
DIGEST_AT = datetime(2025, 3, 17, 9, 0, tzinfo=UTC)
CREATED = datetime(2025, 2, 1, 12, 0, tzinfo=UTC)
ZWSP = "\u200b"
# The default schedule (every 2nd Thursday 14:00, 7 days of grace) in UTC.
UTC_PROGRAM = Program(ScheduleConfig(), ZoneInfo("UTC"))


# -- the data set ----------------------------------------------------------------------------------


def at(day: str, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(date.fromisoformat(day), time(hour, minute), tzinfo=UTC)


@dataclass(frozen=True)
class U:
    """An update to store: goal slug, author's GitHub handle, when, text, parsed fields."""

    slug: str
    author: str
    sent_at: datetime
    content: str
    tldr: str | None = None
    help_wanted: str | None = None


UPDATES: tuple[U, ...] = (
    U(
        "async",
        "eholk",
        at("2025-03-03", 16),
        "Quick note from the async working group sync:\n\n"
        "* The `iter!` macro experiment has an open PR; the open question is whether it should "
        "accept blocks as well as closures.\n"
        "* `dynosaur` 0.2 shipped with two bug fixes and one breaking change.",
    ),
    U(
        "async",
        "tmandry",
        at("2025-03-14", 15, 30),
        "**TL;DR:** `iter!` is now on nightly behind a feature gate; dynosaur is heading for a "
        "0.3 release that we will treat as a 1.0 candidate.\n\n"
        "**Generators.** The macro landed last week. The design meeting leaned towards closures "
        "with an empty argument list implementing `IntoIterator`; notes are in the meeting doc.\n\n"
        "**Pin ergonomics.** The `&pin mut self` sugar is implemented; a follow-up PR applies "
        "the syntax to borrow expressions. There is an ongoing discussion about `&pin mut T` "
        "versus `&mut pin T`.\n\n"
        "**Blockers:** none right now.",
        tldr="`iter!` is now on nightly behind a feature gate; dynosaur is heading for a 0.3 "
        "release that we will treat as a 1.0 candidate.",
    ),
    U(
        "rfl",
        "nikomatsakis",
        at("2025-03-15", 10),
        "TL;DR: the ABI-modifying flags RFC is close to FCP, and the doctest export prototype is "
        "being integrated by the kernel.\n\n"
        "Notes from this week's sync:\n\n"
        "* The kernel asked for a review of the `-Zfixed-x18` stabilization PR; davidtwco will "
        "take it.\n"
        "* `-Zbinary-dep-info` may not be needed after all, the build system can emulate it.\n"
        "* The rustdoc JSON output for doctests works end to end in the prototype.\n"
        "* A pre-RFC for stable Clippy configuration was posted for feedback.\n\n"
        "Help wanted: someone from T-cargo to review the build-std design doc draft.",
        tldr="the ABI-modifying flags RFC is close to FCP, and the doctest export prototype is "
        "being integrated by the kernel.",
        help_wanted="someone from T-cargo to review the build-std design doc draft.",
    ),
    U(
        "all-hands",
        "m-ou-se",
        at("2025-03-04", 9, 15),
        "Hey @**all** attendees: the registration form closes on Friday, please fill it in "
        "even if you already told me you are coming.\n\n"
        "* Guest invitations went out to about twenty people; two of them asked for travel "
        "funding, which fits in the existing budget.\n"
        "* The call for talks for the project track is open until the end of the month.",
    ),
    U(
        "parallel-front-end",
        "sparrowlii",
        at("2025-03-12", 3, 40),
        "* **Key developments:** two long-standing deadlocks were fixed, and the new test suite "
        "for the parallel front end now runs in CI.\n"
        "* **Blockers:** none.\n"
        "* **Help wanted:** run `-Zthreads=8` on large workspaces and report any hang with a "
        "backtrace.",
        help_wanted="run `-Zthreads=8` on large workspaces and report any hang with a backtrace.",
    ),
    U(
        "pub-priv",
        "epage",
        at("2025-03-11", 20),
        "- Key developments: the lint for exported private dependencies got a fix for re-exports "
        "through `pub use`, which unblocks one of the two main issues.\n"
        "- Blockers: the remaining compiler issue about type aliases.\n"
        "- Help wanted: T-compiler reviewers familiar with the privacy checker.",
        help_wanted="T-compiler reviewers familiar with the privacy checker.",
    ),
    U(
        "annotate-snippets",
        "muscraft",
        at("2025-03-16", 18),
        "Progress has been good even with limited time. `annotate-snippets` now matches rustc's "
        "emitter closely enough that rustc can use it as its only renderer behind a flag. Of "
        "the UI tests, all but about thirty pass:\n\n"
        "```\n"
        "test result: FAILED. 18410 passed; 31 failed; 190 ignored; 0 measured\n"
        "```\n\n"
        "The remaining failures come from number alignment, several suggestions on one span, "
        "and coloured labels.",
    ),
    U(
        "next-solver",
        "lcnr",
        at("2025-03-13", 15),
        "**TL;DR:** bootstrap with the new solver gets past `core` and `alloc`; most remaining "
        "failures are in coherence.\n\n"
        "We fixed the hang in projection caching and landed the opaque type handling rework. "
        "A crater run is scheduled for next week.",
        tldr="bootstrap with the new solver gets past `core` and `alloc`; most remaining "
        "failures are in coherence.",
    ),
    U(
        "Polonius",
        "lqd",
        at("2025-02-20", 14),
        "The location-sensitive prototype passes the test suite with the new loan liveness "
        "computation. Next is performance: the first numbers are about 2x slower than NLL on "
        "the worst crates, which we want to bring down before asking for wider testing.",
    ),
    U(
        "cargo-script",
        "epage",
        at("2025-03-10", 19),
        "The frontmatter syntax RFC was merged. Implementation of the `---` fence in the lexer is "
        "under review, and the cargo side now reads the manifest from it.",
    ),
    U(
        "perf-improvements",
        "kobzol",
        at("2025-03-05", 11),
        "The new benchmark collector ran on the second machine for a week. Results:\n\n"
        "<details><summary>Benchmark results</summary>\n\n"
        "| crate | old | new |\n|---|---|---|\n| syn | 1.00 | 0.97 |\n| serde | 1.00 | 0.99 |\n\n"
        "</details>\n\n"
        "Next: run both collectors in parallel for a month and compare noise. A stray `<br>` "
        "in a code span stays as it is.",
    ),
    U(
        "stabilize-project-goal-program",
        "nikomatsakis",
        at("2025-02-28", 17),
        "The February blog post is out and the bot that collects updates is being tested on a "
        "staging Zulip.",
    ),
    U(
        "const-trait",
        "oli-obk",
        at("2025-03-16", 9),
        "TL;DR: the RFC draft is ready for the lang team's design meeting.\n\n"
        "We settled on `[const] Trait` bounds in the draft and rewrote the standard library "
        "experiments to use them; the old `~const` syntax keeps working on nightly for now.",
        tldr="the RFC draft is ready for the lang team's design meeting.",
    ),
    U(
        "ergonomic-rc",
        "spastorino",
        at("2025-02-10", 13),
        "The experimental `use` closures are implemented on nightly; the next step is the "
        "`UseCloned` trait and an evaluation of the generated code.",
    ),
    U(
        "rust-vision-doc",
        "nikomatsakis",
        at("2025-03-07", 16),
        "We finished the first round of interviews and started clustering the answers by theme. "
        "Help wanted: we are looking for people who maintain Rust in safety-critical or embedded "
        "settings for a second round.",
        help_wanted="people who maintain Rust in safety-critical or embedded settings, for a "
        "second round of interviews.",
    ),
    U(
        "cargo-semver-checks",
        "obi1kenobi",
        at("2025-03-17", 8),
        "Type-checking lints are now behind a flag: 12 new lints landed, and the rustdoc JSON "
        "format v40 is supported.",
    ),
)

# GitHub handles (lower case) whose owners have no Zulip account mapped, are deactivated, away.
UNMAPPED = frozenset({"zusez4", "1c3t3a", "walterhpearce"})
DEACTIVATED = frozenset({"yaahc"})
AWAY = {"jswrenn": date(2025, 3, 31)}
# Goal slugs in special states.
PAUSED = frozenset({"eii"})
COMPLETED = frozenset({"cargo-plumbing"})
NEW_GOALS = {"spec-fls-publish": at("2025-03-12", 8)}  # still in the grace period
OWNERLESS = frozenset({"restrictions"})
SUBSCRIBERS = ("tmandry", "epage")


def program_config(db_url: str, *, digest_topic: str = "weekly digest") -> Config:
    """The program of the data set: prompts every 2nd Thursday 14:00, digest Monday 09:00."""
    return Config(
        path=None,
        zuliprc=Path("zuliprc"),
        stream=STREAM,
        database_url=db_url,
        schedule=ScheduleConfig(weekday=3, at=time(14), cadence_weeks=2, grace_days=7),
        digest=DigestConfig(stream=STREAM, topic=digest_topic, weekday=0, at=time(9)),
    )


def make_db(tmp_path: Path) -> Database:
    return new_database(tmp_path)


def make_ctx(db: Database, clock: FrozenClock, **kwargs: Any) -> Context:
    config = program_config(db.url, **kwargs)
    return Context(Setting(config, SITE, 1, "Goals Bot", (GOALS_STREAM,)), db, clock)


def goal_docs() -> list[GoalDoc]:
    docs, _problems = read_goal_files([GOALS_2025H1])
    return [doc for _path, doc in docs]


def user_id_of(handle: str) -> int:
    """Deterministic Zulip ids for the data set's people (stable golden files)."""
    return 1000 + sum((i + 1) * ord(c) for i, c in enumerate(handle)) % 9000


def build_program(db: Database, subscribers: Sequence[str] = SUBSCRIBERS) -> dict[str, int]:
    """Insert the 2025h1 goals, their owners and the updates; returns person ids by handle."""
    docs = goal_docs()
    handles = sorted({h.lower() for d in docs for h in (*d.owners, *d.task_owners)})
    with db.write() as session:
        people: dict[str, Person] = {}
        for h in handles:
            p = Person(
                zulip_user_id=None if h in UNMAPPED else user_id_of(h),
                email=None if h in UNMAPPED else f"{h}@example.com",
                full_name=None if h in UNMAPPED else h,
                github=h,
                is_active=h not in DEACTIVATED,
                away_until=AWAY.get(h),
                mapped_via=None if h in UNMAPPED else "file",
                created_at=CREATED,
            )
            session.add(p)
            people[h] = p
        people["lqd"].mapped_via = "claim"
        people["lqd"].claimed_at = at("2025-03-14", 10)
        taken: set[str] = set()
        goals: dict[str, Goal] = {}
        for d in docs:
            topic = goal_topic(d.title, d.short_title, d.tracking_issue, taken)
            taken.add(topic)
            state = GoalState.ACTIVE
            if d.slug in PAUSED:
                state = GoalState.PAUSED
            elif d.slug in COMPLETED:
                state = GoalState.COMPLETED
            created = NEW_GOALS.get(d.slug, CREATED)
            goal = Goal(
                period="2025h1",
                slug=d.slug,
                title=d.title,
                short_title=d.short_title,
                status=d.status_text,
                flagship=d.flagship,
                tracking_issue=d.tracking_issue,
                tracking_url=d.tracking_url,
                zulip_topic=topic,
                teams=",".join(t.lower() for t in d.teams),
                state=state,
                active=d.status in (GoalStatus.ACCEPTED, GoalStatus.FLAGSHIP),
                created_at=created,
                updated_at=created,
            )
            if d.slug not in OWNERLESS:
                roles = [(h, OwnerRole.POINT_OF_CONTACT) for h in d.owners]
                roles += [(h, OwnerRole.TASK) for h in d.task_owners]
                seen: set[str] = set()
                for pos, (h, role) in enumerate(roles):
                    if h.lower() not in seen:
                        seen.add(h.lower())
                        goal.owners.append(
                            GoalOwner(person=people[h.lower()], role=role, position=pos)
                        )
            session.add(goal)
            goals[d.slug] = goal
        session.flush()
        for i, u in enumerate(UPDATES):
            g = goals[u.slug]
            session.add(
                Update(
                    zulip_message_id=5000 + i,
                    goal_id=g.id,
                    author_id=people[u.author].id,
                    kind=UpdateKind.UPDATE,
                    source=UpdateSource.TOPIC,
                    content=u.content,
                    tldr=u.tldr,
                    help_wanted=u.help_wanted,
                    stream=STREAM,
                    topic=g.zulip_topic,
                    sent_at=u.sent_at,
                )
            )
        # A comment by someone else is not an update: it must not count as one.
        session.add(
            Update(
                zulip_message_id=4999,
                goal_id=goals["Polonius"].id,
                author_id=people["nikomatsakis"].id,
                kind=UpdateKind.COMMENT,
                content="Looking forward to the numbers!",
                sent_at=at("2025-03-16", 8),
            )
        )
        session.add(
            Delivery(
                kind=DeliveryKind.DM_PROMPT,
                target=f"person:{people['veluca93'].id}",
                period="2025-03-13",
                person_id=people["veluca93"].id,
                state=DeliveryState.FAILED,
                recipients=str(user_id_of("veluca93")),
                content="Time for an update on your goal …",
                error="POST messages: You are not allowed to send direct messages to this user.",
                claimed_at=at("2025-03-13", 14, 1),
            )
        )
        for h in subscribers:
            session.add(DigestSubscription(person_id=people[h].id, created_at=CREATED))
        session.flush()
        return {h: p.id for h, p in people.items()}


# -- golden files ----------------------------------------------------------------------------------


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/<name>; UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing; run the tests with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs (UPDATE_GOLDEN=1 to accept)"


# The separator the golden file shows between the Zulip messages of one digest.
GOLDEN_PART_BREAK = "\n\n<!-- next message -->\n\n"


def compose_for(ctx: Context, now: datetime) -> list[str]:
    with ctx.db.read() as session:
        data = load_digest_data(session, ctx, now - timedelta(days=7), now)
    return compose_digest(
        data,
        stream=ctx.setting.stream(STREAM),
        program=ctx.program,
        site=ctx.setting.site,
    )


@pytest.fixture
def program(tmp_path: Path) -> Iterator[tuple[Context, FrozenClock, dict[str, int]]]:
    db = make_db(tmp_path)
    people = build_program(db)
    clock = FrozenClock(DIGEST_AT)
    yield make_ctx(db, clock), clock, people
    db.dispose()


def test_digest_golden(program: tuple[Context, FrozenClock, dict[str, int]]) -> None:
    ctx, clock, _people = program
    parts = compose_for(ctx, clock.now())
    check_golden("digest_2025-03-17.md", GOLDEN_PART_BREAK.join(parts))
    text = "\n".join(parts)
    assert all(len(p) < MAX_MESSAGE_LENGTH for p in parts)
    # 40 accepted goals (the two not accepted ones are not tracked), 9 updated since 03-10 09:00;
    # "paused/away": 1 paused + 5 whose owners cannot be reached (unmapped, deactivated, away).
    assert parts[0].splitlines()[1] == (
        "**40 goals** · 9 updated this week · 7 due · 18 overdue · 6 paused/away · 1 in grace"
    )
    assert f"@{ZWSP}**all** attendees" in text  # echoed, but pings nobody
    assert "@**all**" not in text
    assert not contains_unsafe_mention(text)
    # Flagship goals first, then teams in order, then goals without a team.
    headings = re.findall(r"^\*\*(Flagship goals|Team [a-z-]+|Other goals)\*\*$", text, re.M)
    assert headings[0] == "Flagship goals"
    assert headings[1:] == sorted(headings[1:])
    assert "**Needs attention**" in text
    assert f"@_**tmandry|{user_id_of('tmandry')}**" in text  # owners: silent mentions
    assert f"@**tmandry|{user_id_of('tmandry')}**" not in text


def test_digest_needs_attention(program: tuple[Context, FrozenClock, dict[str, int]]) -> None:
    ctx, clock, _people = program
    text = "\n".join(compose_for(ctx, clock.now()))
    attention = text[text.index("**Needs attention**") :]
    # Polonius was last updated 2025-02-20: more than a whole period ago.
    assert (
        "- [#project-goals > Scalable Polonius support on nightly (goals#118)]"
        "(#narrow/stream/7-project-goals/topic/"
        "Scalable.20Polonius.20support.20on.20nightly.20.28goals.23118.29): "
        f"no update for 24 days · @_**lqd|{user_id_of('lqd')}**" in attention
    )
    assert "_Goals without an owner (1):_\n- [#project-goals > Implement restrictions" in attention
    assert "- @zusez4 (no Zulip account mapped): owner of **Expose experimental LLVM" in attention
    assert "- @yaahc (deactivated): owner of **Metrics Initiative**" in attention
    assert (
        f"- DM prompt to @_**veluca93|{user_id_of('veluca93')}** (period 2025-03-13): "
        "POST messages: You are not allowed to send direct messages to this user." in attention
    )
    assert f"- @lqd claimed by @_**lqd|{user_id_of('lqd')}**" in attention
    # The paused goal and the goal in grace are not "needing attention".
    assert "Externally Implementable Items" not in attention
    assert "Publish first rust-lang-owned release" not in attention


def test_digest_goal_lines(program: tuple[Context, FrozenClock, dict[str, int]]) -> None:
    ctx, clock, _people = program
    text = "\n".join(compose_for(ctx, clock.now()))
    tm = user_id_of("tmandry")
    assert (
        ":check: **Async** · [#project-goals > Async (goals#105)]"
        "(#narrow/stream/7-project-goals/topic/Async.20.28goals.23105.29)\n"
        f"@_**tmandry|{tm}** · updated 2 days ago ([latest update]({SITE}/#narrow/id/5001))\n"
        "> `iter!` is now on nightly behind a feature gate;" in text
    )
    assert (
        "**Help wanted:** run `-Zthreads=8` on large workspaces and report any hang with a "
        "backtrace." in text
    )
    assert ":pause: **Externally Implementable Items**" in text
    assert ":seedling: **Publish first rust-lang-owned release" in text
    assert ":palm_tree: **Unsafe Fields**" in text
    assert ":tada: **Prototype a new set of Cargo" in text
    assert "no update yet" in text
    # The excerpt of a long update stops at a clean point, outside the code fence.
    snippet = text[text.index("**Use annotate-snippets") :]
    snippet = snippet[: snippet.index("\n\n")]
    assert snippet.count("```") % 2 == 0
    assert snippet.rstrip().endswith("…")


def _goal(i: int, *, content: str, team: str | None) -> GoalView:
    person = PersonView(i, 10_000 + i, f"Owner {i}", None, f"owner{i}", None, None, True)
    update = UpdateView(
        id=i,
        zulip_message_id=90_000 + i,
        goal_id=i,
        author=person,
        kind=UpdateKind.UPDATE,
        content=content,
        tldr=None,
        help_wanted="reviewers for the next PR" if i % 3 == 0 else None,
        sent_at=DIGEST_AT - timedelta(days=i % 20),
        edited_at=None,
    )
    return GoalView(
        id=i,
        period="2025h1",
        slug=f"goal-{i}",
        title=f"Goal number {i} with a reasonably long descriptive title",
        short_title=None,
        status="Accepted",
        flagship="yes" if i % 17 == 0 else None,
        tracking_issue=i,
        tracking_url=None,
        zulip_topic=f"Goal number {i} (goals#{i})",
        teams=(team,) if team else (),
        state=GoalState.ACTIVE,
        active=True,
        cadence_weeks=None,
        created_at=CREATED,
        owners=(OwnerView(person, OwnerRole.POINT_OF_CONTACT),),
        last_update=update,
    )


def test_long_digest_is_split_between_goals() -> None:
    body = " ".join(["The refactoring moved forward and the review is nearly done."] * 12)
    goals = tuple(
        _goal(i, content=body, team=("compiler", "lang", "types", None)[i % 4])
        for i in range(1, 121)
    )
    data = DigestData(goals=goals, since=DIGEST_AT - timedelta(days=7), now=DIGEST_AT)
    parts = compose_digest(data, stream=GOALS_STREAM, program=UTC_PROGRAM, site=SITE)
    assert len(parts) >= 4
    assert all(len(p) < MAX_MESSAGE_LENGTH for p in parts)
    assert parts[1].startswith(f"_(digest, part 2 of {len(parts)})_\n\n")
    for i in range(1, 121):
        header = f"**Goal number {i} with a reasonably long descriptive title** · "
        holders = [p for p in parts if header in p]
        assert len(holders) == 1, f"goal {i} appears {len(holders)} times"
        # The goal's whole block (header to the end of its excerpt) is in that one message.
        part = holders[0]
        block = part[part.index(header) :].split("\n\n")[0]
        assert block.count("\n") >= 2 and block.rstrip().endswith("…")
    # The order survives the split: flagship goals, then teams, then goals without a team.
    joined = "\n".join(parts)
    order = ("**Flagship goals**", "**Team compiler**", "**Team lang**", "**Team types**")
    positions = [joined.index(h) for h in (*order, "**Other goals**")]
    assert positions == sorted(positions)


def test_empty_program_digest() -> None:
    data = DigestData(goals=(), since=DIGEST_AT - timedelta(days=7), now=DIGEST_AT)
    parts = compose_digest(
        data,
        stream=GOALS_STREAM,
        program=UTC_PROGRAM,
        site=SITE,
    )
    assert parts == [
        "**Weekly goals digest** · 2025-03-10 to 2025-03-17\n"
        "**0 goals** · 0 updated this week · 0 due · 0 overdue · 0 paused/away · 0 in grace\n\n"
        "_No goals are being tracked yet._\n\n"
        "**Needs attention**\nNothing this week. :tada:"
    ]


# -- statements ------------------------------------------------------------------------------------


def test_load_digest_data_uses_at_most_six_statements(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    n_goals, n_updates = 1_000, 10_000
    with db.write() as session:
        session.execute(
            insert(Person),
            [
                {
                    "zulip_user_id": 100 + i,
                    "full_name": f"Person {i}",
                    "github": f"person{i}",
                    "created_at": CREATED,
                    "claimed_at": DIGEST_AT - timedelta(days=1) if i < 3 else None,
                }
                for i in range(n_goals)
            ],
        )
        person_ids = list(session.execute(select(Person.id).order_by(Person.id)).scalars())
        session.execute(
            insert(Goal),
            [
                {
                    "period": "2025h1",
                    "slug": f"goal-{i}",
                    "title": f"Goal {i}",
                    "zulip_topic": f"Goal {i}",
                    "teams": "compiler",
                    "created_at": CREATED,
                    "updated_at": CREATED,
                }
                for i in range(n_goals)
            ],
        )
        goal_ids = list(session.execute(select(Goal.id).order_by(Goal.id)).scalars())
        session.execute(
            insert(GoalOwner),
            [
                {"goal_id": g, "person_id": p, "role": OwnerRole.POINT_OF_CONTACT, "position": 0}
                for g, p in zip(goal_ids, person_ids, strict=True)
            ],
        )
        session.execute(
            insert(Update),
            [
                {
                    "zulip_message_id": 1 + i,
                    "goal_id": goal_ids[i % n_goals],
                    "author_id": person_ids[i % n_goals],
                    "content": f"update {i}",
                    # Each goal's newest update is a few hours old, older ones days older.
                    "sent_at": DIGEST_AT - timedelta(hours=(i // n_goals) * 20 + i % 7),
                }
                for i in range(n_updates)
            ],
        )
        session.add(
            Delivery(
                kind=DeliveryKind.PROMPT,
                target=f"goal:{goal_ids[0]}",
                period="2025-03-13",
                goal_id=goal_ids[0],
                state=DeliveryState.FAILED,
                content="x",
                error="boom",
                claimed_at=DIGEST_AT - timedelta(days=1),
            )
        )
    ctx = make_ctx(db, FrozenClock(DIGEST_AT))
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.read() as session:
            data = load_digest_data(session, ctx, DIGEST_AT - timedelta(days=7), DIGEST_AT)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    # Goals, owners, latest updates, skips, health; failed deliveries; claims and named people.
    assert len(statements) <= 7, statements
    assert len(data.goals) == n_goals
    assert len(data.updated_ids) == n_goals
    assert len(data.failed) == 1 and data.failed[0].goal_name == "Goal 0"
    assert [c.github for c in data.claims] == ["person0", "person1", "person2"]
    parts = compose_digest(data, stream=GOALS_STREAM, program=ctx.program, site=SITE)
    assert all(len(p) < MAX_MESSAGE_LENGTH for p in parts)
    assert sum(p.count("· [#project-goals > Goal ") for p in parts) == n_goals


# -- exactly once ----------------------------------------------------------------------------------


@dataclass
class RecordingSender:
    """A Sender that keeps what it was asked to send; ``fail_dm``/``crash`` inject faults."""

    sent: list[tuple[str, str]] = field(default_factory=list)  # (destination, content)
    fail_dm: bool = False
    crash_after_send: bool = False
    crash_before_send: bool = False

    def _record(self, where: str, content: str) -> int:
        if self.crash_before_send:
            raise RuntimeError("the process died before the request left")
        self.sent.append((where, content))
        if self.crash_after_send:
            raise RuntimeError("the process died after Zulip stored the message")
        return len(self.sent)

    def send_stream(self, stream: str, topic: str, content: str) -> int:
        return self._record(f"#{stream}>{topic}", content)

    def send_dm(self, user_ids: Sequence[int], content: str) -> int:
        if self.fail_dm:
            raise ZulipError("POST messages: user not found", code="BAD_REQUEST")
        return self._record("dm:" + ",".join(map(str, sorted(user_ids))), content)

    def add_reaction(self, message_id: int, emoji_name: str) -> None:
        raise AssertionError("the digest never reacts")

    def find(self, dest: outbox.Destination, content: str) -> int | None:
        where = (
            f"#{dest.stream}>{dest.topic}"
            if dest.stream is not None
            else "dm:" + ",".join(map(str, dest.user_ids))
        )
        for i, (w, c) in enumerate(self.sent, start=1):
            if w == where and c == content:
                return i
        return None

    def destinations(self) -> list[str]:
        return [w for w, _c in self.sent]


TOPIC = f"#{STREAM}>weekly digest"


@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[Context, FrozenClock, list[str]]]:
    """Three goals, two subscribers; the clock at the digest slot."""
    db = make_db(tmp_path)
    with db.write() as session:
        owners = [
            Person(zulip_user_id=uid, full_name=name, github=name.lower(), created_at=CREATED)
            for uid, name in ((11, "Ben"), (12, "Chloe"), (13, "Dev"))
        ]
        for i, p in enumerate(owners):
            g = Goal(
                period="2025h1",
                slug=f"g{i}",
                title=f"Goal {i}",
                zulip_topic=f"Goal {i}",
                teams="compiler",
                created_at=CREATED,
                updated_at=CREATED,
            )
            g.owners.append(GoalOwner(person=p, role=OwnerRole.POINT_OF_CONTACT))
            session.add(g)
        session.flush()
        for p in owners[:2]:
            session.add(DigestSubscription(person_id=p.id, created_at=CREATED))
    clock = FrozenClock(DIGEST_AT)
    yield make_ctx(db, clock), clock, [TOPIC, "dm:11", "dm:12"]
    db.dispose()


def test_digest_twice_in_a_week_posts_once_then_again_next_week(
    small: tuple[Context, FrozenClock, list[str]],
) -> None:
    ctx, clock, everyone = small
    sender = RecordingSender()
    assert digest_due(ctx, clock.now()) == (True, "2025-03-17")
    report = send_digest(ctx, sender)
    assert (report.period, report.sent, report.already, report.failed) == ("2025-03-17", 3, 0, 0)
    assert sorted(sender.destinations()) == everyone
    assert digest_due(ctx, clock.now()) == (False, "2025-03-17")
    # A restart later in the week (same database, new process): nothing goes out again.
    clock.advance(timedelta(days=2, hours=5))
    again = send_digest(replace(ctx), sender)
    assert (again.sent, again.already) == (0, 3)
    assert run_due_digest(ctx, sender) is None
    assert len(sender.sent) == 3
    # One minute before the next slot: still this week.
    clock.set(DIGEST_AT + timedelta(days=7, minutes=-1))
    assert digest_due(ctx, clock.now())[0] is False
    clock.advance(timedelta(minutes=1))
    assert digest_due(ctx, clock.now()) == (True, "2025-03-24")
    next_week = run_due_digest(ctx, sender)
    assert next_week is not None and next_week.sent == 3
    assert sorted(sender.destinations()) == sorted(everyone * 2)
    assert "2025-03-17 to 2025-03-24" in sender.sent[-1][1]


def test_missed_while_down_posts_once_on_return(
    small: tuple[Context, FrozenClock, list[str]],
) -> None:
    ctx, clock, everyone = small
    sender = RecordingSender()
    clock.set(DIGEST_AT - timedelta(days=1))
    assert digest_due(ctx, clock.now()) == (True, "2025-03-10")  # last week's, never sent
    # The bot was down from before the slot until three days after it.
    clock.set(DIGEST_AT + timedelta(days=3, hours=4))
    assert digest_due(ctx, clock.now()) == (True, "2025-03-17")
    report = run_due_digest(ctx, sender)
    assert report is not None and report.period == "2025-03-17" and report.sent == 3
    for _ in range(3):
        clock.advance(timedelta(minutes=1))
        assert run_due_digest(ctx, sender) is None
    assert sorted(sender.destinations()) == everyone


def test_subscribing_mid_week_waits_for_the_next_slot(
    small: tuple[Context, FrozenClock, list[str]],
) -> None:
    ctx, clock, everyone = small
    sender = RecordingSender()
    assert run_due_digest(ctx, sender) is not None
    assert sorted(sender.destinations()) == everyone
    # Dev subscribes on Wednesday: nothing at once, nor on later ticks of this week.
    clock.advance(timedelta(days=2))
    with ctx.db.write() as session:
        dev = session.execute(select(Person).where(Person.zulip_user_id == 13)).scalar_one()
        session.add(DigestSubscription(person_id=dev.id, created_at=clock.now()))
    assert digest_due(ctx, clock.now())[0] is False
    clock.advance(timedelta(days=1))
    assert run_due_digest(ctx, sender) is None
    assert "dm:13" not in sender.destinations()
    # A digest posted by hand reaches every subscriber, Dev included.
    manual = send_digest(ctx, sender, force=True)
    assert manual.sent == 4
    assert sender.destinations().count("dm:13") == 1
    # The next weekly digest goes to Dev like everyone else.
    clock.set(DIGEST_AT + timedelta(days=7))
    report = run_due_digest(ctx, sender)
    assert report is not None and report.sent == 4
    assert sender.destinations().count("dm:13") == 2


def test_crash_after_zulip_stored_the_digest_is_not_sent_twice(
    small: tuple[Context, FrozenClock, list[str]],
) -> None:
    ctx, _clock, everyone = small
    sender = RecordingSender(crash_after_send=True)
    with pytest.raises(RuntimeError):
        send_digest(ctx, sender)
    with ctx.db.read() as session:
        states = [tuple(r) for r in session.execute(select(Delivery.target, Delivery.state))]
    assert states == [("stream:project-goals>weekly digest", DeliveryState.CLAIMED)]
    # The restart: recover finds the message in Zulip and only marks it sent.
    sender.crash_after_send = False
    assert outbox.recover(ctx.db, sender, sender.find, ctx.clock.now) == 1
    assert sender.destinations() == [TOPIC]
    # The scheduled tick then sends what is still owed: the subscribers' DMs, once.
    report = run_due_digest(ctx, sender)
    assert report is not None and (report.sent, report.already) == (2, 1)
    assert run_due_digest(ctx, sender) is None
    assert sorted(sender.destinations()) == everyone


def test_crash_before_the_digest_left_is_sent_by_recover(
    small: tuple[Context, FrozenClock, list[str]],
) -> None:
    ctx, _clock, everyone = small
    sender = RecordingSender(crash_before_send=True)
    with pytest.raises(RuntimeError):
        send_digest(ctx, sender)
    sender.crash_before_send = False
    assert digest_due(ctx, ctx.clock.now())[0] is True  # the DMs are still owed
    assert outbox.recover(ctx.db, sender, sender.find, ctx.clock.now) == 1
    assert sender.destinations() == [TOPIC]
    report = send_digest(ctx, sender)
    assert (report.sent, report.already) == (2, 1)
    assert sorted(sender.destinations()) == everyone


def test_failed_dm_is_retried_while_the_week_lasts(
    small: tuple[Context, FrozenClock, list[str]],
) -> None:
    ctx, clock, everyone = small
    sender = RecordingSender(fail_dm=True)
    report = send_digest(ctx, sender)
    assert (report.sent, report.failed) == (1, 2)
    assert "1 sent, 0 already sent, 2 failed" in report.render()
    assert digest_due(ctx, clock.now())[0] is True  # failures are retried while the week lasts
    sender.fail_dm = False
    clock.advance(timedelta(minutes=5))
    report2 = run_due_digest(ctx, sender)
    assert report2 is not None and (report2.sent, report2.already) == (2, 1)
    assert sorted(sender.destinations()) == everyone
    # The digest does not list its own failed deliveries (the retry would report itself).
    assert "Messages that failed" not in sender.sent[-1][1]


def test_failed_prompts_and_dms_of_the_week_need_attention(
    small: tuple[Context, FrozenClock, list[str]],
) -> None:
    ctx, _clock, _everyone = small
    with ctx.db.write() as session:
        goal = session.execute(select(Goal).where(Goal.slug == "g1")).scalar_one()
        ben = session.execute(select(Person).where(Person.zulip_user_id == 11)).scalar_one()
        for kind, target, days, gid, pid in (
            (DeliveryKind.PROMPT, f"goal:{goal.id}", 2, goal.id, None),
            (DeliveryKind.DM_REMINDER, f"person:{ben.id}", 3, None, ben.id),
            (DeliveryKind.DM_PROMPT, f"person:{ben.id}", 9, None, ben.id),  # last week's
        ):
            session.add(
                Delivery(
                    kind=kind,
                    target=target,
                    period="2025-03-13",
                    goal_id=gid,
                    person_id=pid,
                    state=DeliveryState.FAILED,
                    content="…",
                    error="POST messages: Stream 'project-goals' does not exist @**all**",
                    claimed_at=DIGEST_AT - timedelta(days=days),
                )
            )
    report = send_digest(ctx, RecordingSender(), dry_run=True)
    assert (
        "_Messages that failed (2):_\n"
        "- DM reminder to @_**Ben|11** (period 2025-03-13): "
        f"POST messages: Stream 'project-goals' does not exist @{ZWSP}**all**\n"
        "- prompt for **Goal 1** (period 2025-03-13): "
        f"POST messages: Stream 'project-goals' does not exist @{ZWSP}**all**"
    ) in report.text


def test_topic_empty_means_dms_only(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    with db.write() as session:
        p = Person(zulip_user_id=21, full_name="Eve", created_at=CREATED)
        session.add(p)
        session.flush()
        session.add(DigestSubscription(person_id=p.id, created_at=CREATED))
        # Subscribers without a Zulip account or deactivated get nothing.
        q = Person(full_name="Nobody", github="nobody", created_at=CREATED)
        r = Person(zulip_user_id=22, full_name="Gone", is_active=False, created_at=CREATED)
        session.add_all([q, r])
        session.flush()
        session.add_all(
            [
                DigestSubscription(person_id=q.id, created_at=CREATED),
                DigestSubscription(person_id=r.id, created_at=CREATED),
            ]
        )
    ctx = make_ctx(db, FrozenClock(DIGEST_AT), digest_topic="")
    sender = RecordingSender()
    report = send_digest(ctx, sender)
    assert sender.destinations() == ["dm:21"]
    assert report.destinations == ("DM to 21",)


def test_no_destination_means_not_due(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    ctx = make_ctx(db, FrozenClock(DIGEST_AT), digest_topic="")
    assert digest_due(ctx, DIGEST_AT) == (False, "2025-03-17")
    disabled = replace(
        ctx,
        setting=replace(
            ctx.setting,
            config=replace(ctx.config, digest=replace(ctx.config.digest, enabled=False)),
        ),
    )
    assert digest_due(disabled, DIGEST_AT)[0] is False


def test_manual_digest_neither_blocks_nor_repeats_the_scheduled_one(
    small: tuple[Context, FrozenClock, list[str]],
) -> None:
    ctx, clock, _everyone = small
    sender = RecordingSender()
    clock.set(DIGEST_AT - timedelta(hours=1))  # Monday 08:00: last week's digest is sent
    assert send_digest(ctx, sender).sent == 3
    manual = send_digest(ctx, sender, force=True)
    assert manual.period == "manual-20250317T0800" and manual.sent == 3
    assert send_digest(ctx, sender, force=True).already == 3  # same minute: not twice
    clock.set(DIGEST_AT)
    report = run_due_digest(ctx, sender)  # the scheduled one still goes out at the slot
    assert report is not None and report.period == "2025-03-17" and report.sent == 3
    assert len(sender.sent) == 9


def test_dry_run_sends_nothing_and_renders_the_text(
    small: tuple[Context, FrozenClock, list[str]],
) -> None:
    ctx, clock, _everyone = small
    sender = RecordingSender()
    report = send_digest(ctx, sender, dry_run=True, since=DIGEST_AT - timedelta(days=30))
    assert sender.sent == []
    out = report.render()
    assert out.startswith("**Weekly goals digest** · 2025-02-15 to 2025-03-17\n**3 goals**")
    assert out.endswith(
        "(dry run: would post to #project-goals > weekly digest, DM to 11, DM to 12)"
    )
    assert digest_due(ctx, clock.now())[0] is True


# -- end to end: the real ZulipIO against the emulator -------------------------------------------


def test_digest_end_to_end_topic_and_two_subscribers(tmp_path: Path) -> None:
    from fakezulip import FakeZulip, Realm
    from zulip_goals_bot.bot.app import look_up_streams
    from zulip_goals_bot.bot.zulip_io import ZulipIO

    clock = FrozenClock(DIGEST_AT + timedelta(minutes=2))
    db = make_db(tmp_path)
    build_program(db, subscribers=())
    realm = Realm.demo()
    goals_stream_id = realm.stream_by_name(STREAM).stream_id  # type: ignore[union-attr]
    ben = realm.user_by_name("Ben Owner")
    chloe = realm.user_by_name("Chloé Owner")
    dev = realm.user_by_name("Dev Owner")
    bot = realm.user_by_name("Goals Bot")
    assert ben and chloe and dev and bot
    with db.write() as session:
        for user in (ben, chloe, dev):
            person = Person(
                zulip_user_id=user.user_id,
                email=user.email,
                full_name=user.full_name,
                created_at=CREATED,
            )
            session.add(person)
            session.flush()
            if user is not dev:
                session.add(DigestSubscription(person_id=person.id, created_at=CREATED))
    with FakeZulip(realm, clock=clock.timestamp) as server:
        io = ZulipIO(server.write_zuliprc(tmp_path / "zuliprc", bot), sleep=lambda _s: None)
        config = program_config(db.url)
        streams = look_up_streams(io, config)
        assert streams == (StreamRef(STREAM, goals_stream_id),)
        ctx = Context(Setting(config, io.site, bot.user_id, bot.full_name, streams), db, clock)
        assert io.site == server.base_url  # message links point at the server, not its API
        expected = compose_for(ctx, clock.now())
        assert len(expected) == 2  # the realistic program needs two messages
        assert f"]({server.base_url}/#narrow/id/5001)" in expected[0]

        report = run_due_digest(ctx, io)
        assert report is not None and (report.sent, report.failed) == (3, 0)
        in_topic = server.messages_in(STREAM, "weekly digest")
        assert [m["content"] for m in in_topic] == expected
        assert all(m["sender_id"] == bot.user_id for m in in_topic)
        for user in (ben, chloe):
            assert [m["content"] for m in server.direct_messages_to(user)] == expected
        assert server.direct_messages_to(dev) == []
        # Nobody was pinged by the echoed @**all**, and owners were mentioned silently.
        joined = "\n".join(expected)
        assert f"@{ZWSP}**all** attendees" in joined
        for m in in_topic:
            for user in (ben, chloe, dev):
                flags = server.flags(user, m["id"])
                assert "mentioned" not in flags and "wildcard_mentioned" not in flags

        # More ticks in the same week, and a restart (new ZulipIO, same database): no new post.
        posted = len(server.messages)
        clock.advance(timedelta(hours=6))
        assert run_due_digest(ctx, io) is None
        io2 = ZulipIO(tmp_path / "zuliprc", sleep=lambda _s: None)
        assert send_digest(ctx, io2).already == 3
        assert len(server.messages) == posted

        # Next week's slot: one more digest everywhere, and a reply lost on the way back
        # (Zulip stored the message) still gives one message, not two.
        clock.set(DIGEST_AT + timedelta(days=7))
        server.faults.drop_next(1, path_prefix="messages", method="POST", after_processing=True)
        report = run_due_digest(ctx, io2)
        assert report is not None and report.sent == 3
        assert len(server.messages_in(STREAM, "weekly digest")) == 4
        assert len(server.direct_messages_to(ben)) == 4
        assert len(server.direct_messages_to(chloe)) == 4
    db.dispose()
