"""Synthetic programs for the benchmarks: goals, owners and updates written straight into SQLite.

Rows go in with SQLAlchemy Core ``executemany`` (one transaction per table), because building a
program of 1,000 goals and 100,000 updates through the ORM would take longer than the benchmarks.
Everything is derived from a seeded ``random.Random``, so every run measures the same data.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert

from zulip_goals_bot.bot.replies import extract_help_wanted, extract_tldr
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import (
    FIRST_START_KEY,
    Base,
    BotState,
    Goal,
    GoalOwner,
    Person,
    Update,
)
from zulip_goals_bot.domain.states import GoalState, OwnerRole, UpdateKind, UpdateSource
from zulip_goals_bot.goals.topics import goal_topic

# Historical updates get message ids far above anything the emulator hands out in a run, so
# they never collide with the replies a benchmark posts.
HISTORY_ID_BASE = 1_000_000_000
# Distinct update texts generated once and reused: composing 100,000 texts would dominate setup.
TEXT_POOL = 240
# Goals are old enough to be out of their grace period whatever "now" a benchmark picks.
GOAL_AGE = timedelta(days=400)
# Rows per executemany call: large enough to be fast, small enough to keep memory flat.
CHUNK = 5_000

TEAMS = ("compiler", "lang", "libs", "cargo", "types", "rustdoc", "infra", "release", "docs")
TIMEZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "America/Los_Angeles")
_VERBS = ("Stabilize", "Prototype", "Finish", "Ship", "Explore", "Scale", "Rewrite", "Document")
_THINGS = (
    "async closures",
    "the new trait solver",
    "incremental builds",
    "cargo script",
    "const generics",
    "parallel front end",
    "lint catalogue",
    "borrow checker diagnostics",
    "build-std",
    "public dependencies",
    "rustdoc search",
    "pattern types",
)
_SENTENCES = (
    "Reviewed the open pull requests and merged two of them.",
    "The design meeting agreed on the remaining open questions.",
    "Benchmarks show a clear improvement on large workspaces.",
    "We found a soundness issue and are working on a fix.",
    "The RFC is in final comment period.",
    "Crater run came back with three regressions, all understood.",
    "Next: write the stabilization report and update the reference.",
    "Blocked on a review from the types team this week.",
    "Documentation for the new flag is drafted.",
    "Most of the work this period went into test coverage.",
)


@dataclass(frozen=True, slots=True)
class Owner:
    """A goal owner as both the database and the emulated realm know them."""

    zulip_user_id: int
    email: str
    full_name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class Program:
    """What was built: enough for benchmarks to post as owners and name goals."""

    goal_ids: tuple[int, ...]
    slugs: tuple[str, ...]
    topics: tuple[str, ...]
    owners: tuple[Owner, ...]
    owner_of_goal: tuple[int, ...]  # index into ``owners`` of each goal's first owner
    updates: int


def synthetic_owners(count: int, first_user_id: int = 10_000) -> list[Owner]:
    """Owners without an emulated realm (in-process benchmarks): ids are just numbers."""
    return [
        Owner(
            first_user_id + i,
            f"owner{i:04d}@example.com",
            f"Owner {i:04d}",
            TIMEZONES[i % len(TIMEZONES)],
        )
        for i in range(count)
    ]


def update_text(rng: random.Random) -> str:
    """An owner's reply: a few sentences, often a TL;DR, sometimes a help-wanted line."""
    body = " ".join(rng.sample(_SENTENCES, rng.randint(2, 5)))
    parts = []
    if rng.random() < 0.5:
        parts.append("TL;DR: " + rng.choice(_SENTENCES))
    parts.append(body)
    if rng.random() < 0.1:
        parts.append("Help wanted: reviewers for the " + rng.choice(_THINGS) + " PR")
    return "\n\n".join(parts)


def goal_title(i: int) -> str:
    return f"{_VERBS[i % len(_VERBS)]} {_THINGS[(i // len(_VERBS)) % len(_THINGS)]} {i + 1}"


def build_program(
    db: Database,
    *,
    goals: int,
    owners: Sequence[Owner],
    updates: int,
    now: datetime,
    updates_until: datetime | None = None,
    seed: int = 1,
) -> Program:
    """Insert ``goals`` goals owned by ``owners`` and ``updates`` owner updates before ``now``.

    Every owner owns at least one goal: goal ``g`` is owned by owner ``g``, and, while owners
    remain, also by owner ``goals + g``.  Updates are spread over the half year before
    ``updates_until`` (default ``now``), evenly across goals.
    """
    rng = random.Random(seed)
    created = now - GOAL_AGE
    until = updates_until or now
    goal_rows: list[dict[str, Any]] = []
    for i in range(goals):
        title = goal_title(i)
        issue = 100 + i
        goal_rows.append(
            {
                "id": i + 1,
                "period": "2026h1",
                "slug": f"goal-{i + 1:04d}",
                "title": title,
                "short_title": None,
                "status": "Accepted",
                "flagship": "yes" if i % 20 == 0 else None,
                "tracking_issue": issue,
                "tracking_url": None,
                "zulip_channel": None,
                "zulip_topic": goal_topic(title, None, issue, ()),
                "teams": TEAMS[i % len(TEAMS)],
                "state": GoalState.ACTIVE,
                "active": True,
                "cadence_weeks": None,
                "extra": {},
                "source_path": None,
                "created_at": created,
                "updated_at": created,
            }
        )
    people_rows = [
        {
            "id": i + 1,
            "zulip_user_id": o.zulip_user_id,
            "email": o.email,
            "full_name": o.full_name,
            "timezone": o.timezone,
            "github": f"gh-{o.full_name.lower().replace(' ', '-')}",
            "is_active": True,
            "is_admin": False,
            "is_bot": False,
            "away_until": None,
            "mapped_via": "file",
            "claimed_at": None,
            "created_at": created,
        }
        for i, o in enumerate(owners)
    ]
    owner_rows: list[dict[str, Any]] = []
    owner_of_goal: list[int] = []
    for g in range(goals):
        first = g % len(owners)
        owner_of_goal.append(first)
        owned = [first]
        if goals + g < len(owners):
            owned.append(goals + g)
        for position, o in enumerate(owned):
            owner_rows.append(
                {
                    "goal_id": g + 1,
                    "person_id": o + 1,
                    "role": OwnerRole.POINT_OF_CONTACT,
                    "position": position,
                }
            )
    pool = [update_text(rng) for _ in range(TEXT_POOL)]
    summaries = [(extract_tldr(t), extract_help_wanted(t)) for t in pool]
    span = timedelta(days=182).total_seconds()
    update_rows: list[dict[str, Any]] = []
    for n in range(updates):
        g = n % goals if goals else 0
        k = rng.randrange(TEXT_POOL)
        tldr, help_wanted = summaries[k]
        update_rows.append(
            {
                "zulip_message_id": HISTORY_ID_BASE + n,
                "goal_id": g + 1,
                "author_id": owner_of_goal[g] + 1,
                "kind": UpdateKind.UPDATE,
                "source": UpdateSource.TOPIC,
                "content": pool[k],
                "tldr": tldr,
                "help_wanted": help_wanted,
                "stream": "project-goals",
                "topic": goal_rows[g]["zulip_topic"],
                "sent_at": until - timedelta(seconds=rng.random() * span),
                "edited_at": None,
                "deleted": False,
            }
        )
    # The program has been running since its goals were created: this week's digest is owed.
    state_rows = [{"key": FIRST_START_KEY, "value": created.isoformat(), "updated_at": created}]
    with db.engine.begin() as conn:
        for table, rows in (
            (table_of(Goal), goal_rows),
            (table_of(Person), people_rows),
            (table_of(GoalOwner), owner_rows),
            (table_of(Update), update_rows),
            (table_of(BotState), state_rows),
        ):
            for start in range(0, len(rows), CHUNK):
                conn.execute(insert(table), rows[start : start + CHUNK])
    return Program(
        goal_ids=tuple(r["id"] for r in goal_rows),
        slugs=tuple(r["slug"] for r in goal_rows),
        topics=tuple(r["zulip_topic"] for r in goal_rows),
        owners=tuple(owners),
        owner_of_goal=tuple(owner_of_goal),
        updates=updates,
    )


def table_of(model: type[Base]) -> Table:
    """A model's Core table (typed as one, for ``insert`` and ``select``)."""
    return Base.metadata.tables[model.__tablename__]


def fresh_database(path: str) -> Database:
    """An empty, migrated SQLite database at ``path``."""
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    return db


def a_friday_evening() -> datetime:
    """A fixed "now": Friday 20:00 UTC, after Thursday's prompt slot and every owner's DM hour."""
    return datetime(2026, 3, 13, 20, 0, tzinfo=UTC)
