"""The GitHub sync at program scale, against the GitHub emulator over HTTP (in-process bot code).

A program of 50 goals, then one of ``goals`` (1,000 in the full run), each with a tracking issue
holding three comments of its owner.  The first sync reads everything; the figures are of the
sync after the bot has caught up (the issues unchanged): the requests it sends, how many GitHub
answered 304, the rate-limit units it spent (``X-RateLimit-Remaining`` before minus after), and
its time.  Then one new comment on one issue: what one change costs.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from bench.core import Figure, Sizes, at_most, exactly
from bench.data import a_friday_evening, build_program, fresh_database, synthetic_owners
from bench.profiling import Profile
from fakegithub import FakeGitHub
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Person
from zulip_goals_bot.github.client import GitHubClient, TokenAuth
from zulip_goals_bot.github.sync import sync

REPO = "rust-lang/rust-project-goals"
TOKEN = "ghp_bench00000000000000000000000000000000"
# Above a real token's 5,000 an hour: the first sync of 1,000 goals may use more than that.
TOKEN_RATE_LIMIT = 1_000_000
COMMENTS_PER_ISSUE = 3
SMALL = 50
# Per unchanged issue: the issue and its comments `since`, both conditional.
REQUESTS_PER_ISSUE = 2


def figures(sizes: Sizes) -> dict[str, Figure]:
    small = min(SMALL, sizes.goals)
    out: dict[str, Figure] = {}
    for n, tag in ((small, "small"), (sizes.goals, "large")):
        out[f"requests_{tag}"] = Figure(
            f"requests_{tag}",
            f"GitHub sync, {n:,} unchanged issues: requests",
            "requests",
            at_most(REQUESTS_PER_ISSUE * n),
        )
        out[f"not_modified_{tag}"] = Figure(
            f"not_modified_{tag}", f"GitHub sync, {n:,} unchanged issues: answered 304", "requests"
        )
        out[f"units_{tag}"] = Figure(
            f"units_{tag}",
            f"GitHub sync, {n:,} unchanged issues: rate-limit units",
            "units",
            exactly(0),
        )
        out[f"seconds_{tag}"] = Figure(
            f"seconds_{tag}", f"GitHub sync, {n:,} unchanged issues: time", "s"
        )
    out["one_change"] = Figure(
        "one_change",
        f"GitHub sync, one new comment among {sizes.goals:,} issues: rate-limit units",
        "units",
        at_most(3),
    )
    return out


def _program(tmp: Path, gh: FakeGitHub, goals: int, name: str) -> tuple[Database, str, list[int]]:
    """A database of ``goals`` goals and their tracking issues on the emulator."""
    now = a_friday_evening()
    db = fresh_database(str(tmp / f"github-{name}.sqlite3"))
    program = build_program(
        db, goals=goals, owners=synthetic_owners(goals), updates=0, now=now - timedelta(days=1)
    )
    with db.write() as session:
        people = session.execute(select(Person)).scalars().all()
        for person in people:
            person.github = f"owner-{person.id}"
        handle = {p.zulip_user_id: p.github for p in people}
    repo = f"{REPO}-{name}"
    gh.add_repo(repo)
    issues = []
    for i in range(goals):
        number = 100 + i
        gh.add_issue(repo, number, f"Goal {i}", "* [x] one\n* [ ] two\n")
        owner = program.owners[program.owner_of_goal[i]]
        for c in range(COMMENTS_PER_ISSUE):
            gh.add_comment(repo, number, str(handle[owner.zulip_user_id]), f"Update {c} of {i}.")
        issues.append(number)
    return db, repo, issues


def run(sizes: Sizes, tmp: Path, out: dict[str, Figure], profile: Profile) -> None:
    clock = FrozenClock(a_friday_evening())
    with FakeGitHub(clock=clock.now) as gh:
        gh.add_token(TOKEN, "bench", rate_limit=TOKEN_RATE_LIMIT)
        small = min(SMALL, sizes.goals)
        for n, tag in ((small, "small"), (sizes.goals, "large")):
            db, repo, issues = _program(tmp, gh, n, f"{tag}-{time.monotonic_ns()}")
            with GitHubClient(gh.url, TokenAuth(TOKEN), clock=clock.now) as client:
                sync(db, client, repo, now=clock.now)
                sync(db, client, repo, now=clock.now)  # the answers after the first carry ETags
                before = gh.rate_limit_remaining(TOKEN)
                started = time.perf_counter()
                with profile.in_process(f"github-{tag}"):
                    report = sync(db, client, repo, now=clock.now)
                out[f"seconds_{tag}"].add(time.perf_counter() - started)
                out[f"requests_{tag}"].add(report.requests)
                out[f"not_modified_{tag}"].add(report.not_modified)
                out[f"units_{tag}"].add(before - gh.rate_limit_remaining(TOKEN))
                if tag == "large":
                    clock.advance(timedelta(minutes=1))
                    gh.add_comment(repo, issues[len(issues) // 2], "someone", "A question.")
                    before = gh.rate_limit_remaining(TOKEN)
                    sync(db, client, repo, now=clock.now)
                    out["one_change"].add(before - gh.rate_limit_remaining(TOKEN))
            db.dispose()
