"""The sync from tracking issues, over HTTP against the GitHub emulator, into a real database.

Every test ends by comparing what the emulated GitHub holds with what the database holds:
each comment of an owner is one live update, each other comment one live comment, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from fakegithub import FakeGitHub
from tests.dbs import new_database
from tests.support import add_goal
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import GitHubIssue, GitHubProgress, Goal, Update
from zulip_goals_bot.db.queries import load_goals
from zulip_goals_bot.domain.states import UpdateKind, UpdateSource
from zulip_goals_bot.github.client import GitHubClient, TokenAuth
from zulip_goals_bot.github.issues import MASS_DELETION_MIN
from zulip_goals_bot.github.sync import SyncReport, sync

REPO = "rust-lang/rust-project-goals"
TOKEN = "ghp_synctesttoken0000000000000000000000"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
NOTICE = (
    "This issue is intended for status updates only.\n\nFor general questions or comments, "
    "please contact the owner(s) directly."
)
BODY = """| Metadata | |
| --- | --- |
| Point of contact | @nikomatsakis |

**Tasks and status**

* [x] RFC accepted
* [x] Nightly implementation
* [ ] Stabilization report
* [ ] Documentation

**Comments:** This issue is intended for status updates only."""


@dataclass
class World:
    gh: FakeGitHub
    db: Database
    clock: FrozenClock
    client: GitHubClient
    goal_id: int
    delays: list[float]

    def sync(self, **kw: object) -> SyncReport:
        return sync(self.db, self.client, REPO, now=self.clock.now, **kw)  # type: ignore[arg-type]

    def comment(self, author: str, body: str, number: int = 263) -> int:
        self.clock.advance(timedelta(minutes=5))
        return self.gh.add_comment(REPO, number, author, body)

    def stored(self, goal_id: int | None = None) -> dict[int, tuple[UpdateKind, str, bool]]:
        with self.db.read() as s:
            rows = s.execute(
                select(Update).where(
                    Update.goal_id == (goal_id or self.goal_id),
                    Update.source == UpdateSource.GITHUB,
                )
            ).scalars()
            return {int(u.github_comment_id or 0): (u.kind, u.content, u.deleted) for u in rows}

    def assert_in_step(self, number: int = 263, goal_id: int | None = None) -> None:
        """0 lost, 0 duplicated: each human comment on GitHub is one live stored row."""
        owners = {"nikomatsakis", "tmandry"}
        on_github = {
            c["id"]: (
                UpdateKind.UPDATE if c["user"]["login"].lower() in owners else UpdateKind.COMMENT,
                c["body"],
            )
            for c in self.gh.comments(REPO, number)
            if c["user"]["type"] != "Bot" and "status updates only" not in c["body"]
        }
        live = {
            cid: (kind, body)
            for cid, (kind, body, deleted) in self.stored(goal_id).items()
            if not deleted
        }
        assert live == on_github


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FrozenClock(START)
    gh = FakeGitHub(clock=clock.now).start()
    gh.add_repo(REPO)
    gh.add_token(TOKEN, "goals-bot-operator")
    gh.add_issue(REPO, 263, "Stabilize async closures", BODY, author="nikomatsakis")
    db = new_database(tmp_path)
    goal = add_goal(db, "async-closures", "Stabilize async closures", issue=263,
                    github=["nikomatsakis", "tmandry"])  # fmt: skip
    delays: list[float] = []
    client = GitHubClient(gh.url, TokenAuth(TOKEN), clock=clock.now, sleep=delays.append)
    try:
        yield World(gh, db, clock, client, goal.id, delays)
    finally:
        client.close()
        gh.stop()


def test_first_sync_imports_updates_comments_and_progress(world: World) -> None:
    world.comment("rust-lang-owner-bot[bot]", NOTICE)
    world.comment("rustbot", NOTICE)
    update = world.comment(
        "nikomatsakis", "TL;DR: RFC accepted, nightly next.\n\nHelp wanted: reviewers for #123."
    )
    remark = world.comment("curious-user", "Will this work with closures in traits?")
    report = world.sync()
    assert report.issues[0].plan.changes == 2
    assert len(report.issues[0].plan.skipped) == 2
    stored = world.stored()
    assert stored[update][0] is UpdateKind.UPDATE and stored[remark][0] is UpdateKind.COMMENT
    with world.db.read() as s:
        row = s.execute(select(Update).where(Update.github_comment_id == update)).scalar_one()
        assert row.tldr == "RFC accepted, nightly next."
        assert row.help_wanted is not None and "reviewers" in row.help_wanted
        assert row.url is not None and row.url.endswith(f"#issuecomment-{update}")
        assert row.author_login == "nikomatsakis" and row.author_id is not None
        [view] = load_goals(s, goal_ids=[world.goal_id])
        assert view.last_update is not None
        assert view.last_update.source is UpdateSource.GITHUB
        assert view.last_update.link("https://zulip.example") == row.url
        assert view.last_update.author is not None
        assert view.last_update.author.display == "@nikomatsakis"
        progress = load_goals(s, goal_ids=[world.goal_id])[0].progress
        days = s.execute(select(GitHubProgress)).scalars().all()
    assert progress is not None and str(progress) == "2 of 4 tasks done"
    assert progress.open_tasks == ("Stabilization report", "Documentation")
    assert [(d.done, d.total) for d in days] == [(2, 4)]
    text = "\n".join(report.lines())
    assert "async-closures (rust-lang/rust-project-goals#263): 2 new, 0 edited, 0 deleted" in text
    assert "progress 2 of 4 tasks done" in text
    world.assert_in_step()


def test_an_unchanged_issue_costs_only_304s(world: World) -> None:
    world.comment("nikomatsakis", "First update.")
    world.sync()
    world.sync()  # the answer after a change has no ETag yet; from now on every answer is 304
    before = world.gh.rate_limit_remaining(TOKEN)
    world.gh.clear_requests()
    world.clock.advance(timedelta(minutes=15))
    report = world.sync()
    assert report.changes == 0
    with world.db.read() as s:
        row = s.get(GitHubIssue, world.goal_id)
        assert row is not None and row.synced_at == world.clock.now()  # seen, though unchanged
    assert report.requests == 2 and report.not_modified == 2
    assert [r.status for r in world.gh.requests] == [304, 304]
    assert world.gh.rate_limit_remaining(TOKEN) == before
    world.assert_in_step()


def test_new_edited_and_deleted_comments_follow(world: World) -> None:
    first = world.comment("nikomatsakis", "First update.")
    second = world.comment("tmandry", "Second update.")
    world.sync()
    world.sync()
    world.clock.advance(timedelta(hours=1))
    world.gh.edit_comment(first, "First update, corrected.")
    third = world.comment("nikomatsakis", "Third update.")
    report = world.sync()
    assert (len(report.issues[0].plan.new), len(report.issues[0].plan.edited)) == (1, 1)
    assert world.stored()[first][1] == "First update, corrected."
    world.gh.delete_comment(second)
    report = world.sync()
    assert [k.comment_id for k in report.issues[0].plan.deleted] == [second]
    assert world.stored()[second][2] is True
    assert world.stored()[third][2] is False
    with world.db.read() as s:
        [view] = load_goals(s, goal_ids=[world.goal_id])
    assert view.last_update is not None and view.last_update.content == "Third update."
    world.assert_in_step()
    # A deletion and a new comment at once: the count alone does not change, the ids do.
    world.gh.delete_comment(third)
    fourth = world.comment("nikomatsakis", "Fourth update.")
    world.sync()
    assert world.stored()[third][2] is True and world.stored()[fourth][2] is False
    world.assert_in_step()


def test_task_list_changes_are_progress_over_time(world: World) -> None:
    world.sync()
    world.clock.advance(timedelta(days=3))
    world.gh.edit_issue_body(REPO, 263, BODY.replace("* [ ] Stabilization", "* [x] Stabilization"))
    report = world.sync()
    assert report.issues[0].progress_changed
    with world.db.read() as s:
        days = [(d.day.isoformat(), d.done) for d in s.execute(select(GitHubProgress)).scalars()]
        assert str(load_goals(s, goal_ids=[world.goal_id])[0].progress) == "3 of 4 tasks done"
    assert days == [("2026-11-02", 2), ("2026-11-05", 3)]


def test_mass_deletion_is_withheld(world: World) -> None:
    ids = [world.comment("nikomatsakis", f"Update {i}.") for i in range(MASS_DELETION_MIN + 1)]
    world.sync()
    for cid in ids:
        world.gh.delete_comment(cid)
    report = world.sync()
    assert len(report.issues[0].plan.withheld) == len(ids)
    assert "deletions withheld" in "\n".join(report.lines())
    assert all(not deleted for _k, _b, deleted in world.stored().values())


def test_dry_run_stores_nothing_and_since_reads_history(world: World) -> None:
    world.comment("nikomatsakis", "Old news.")
    world.clock.advance(timedelta(days=40))
    recent = world.comment("nikomatsakis", "Recent news.")
    dry = world.sync(dry_run=True)
    assert dry.changes == 2 and world.stored() == {}
    assert dry.lines()[0].startswith("Dry run, nothing stored")
    report = world.sync(since=START + timedelta(days=30))
    assert set(world.stored()) == {recent} and report.changes == 1
    world.sync()  # a later normal sync reads the rest (the first full listing)
    world.assert_in_step()


def test_an_unreadable_issue_is_reported_and_others_go_on(world: World) -> None:
    other = add_goal(world.db, "missing", "Missing issue", issue=999, github=["someone"])
    world.comment("nikomatsakis", "Fine here.")
    report = world.sync()
    errors = {r.slug: r.error for r in report.issues}
    assert errors["missing"] is not None and "404" in errors["missing"]
    assert errors["async-closures"] is None
    with world.db.read() as s:
        row = s.get(GitHubIssue, other.id)
        assert row is not None and row.error is not None
    world.assert_in_step()


def test_faults_lose_and_duplicate_nothing(world: World) -> None:
    for i in range(3):
        world.comment("nikomatsakis", f"Update {i}.")
    # A 503 and a dropped connection are retried with backoff within the sync.
    world.gh.faults.fail_next(503, method="GET", path=f"/repos/{REPO}/issues/263/comments")
    world.gh.faults.cut_next(method="GET", path=f"/repos/{REPO}/issues/263")
    world.sync()
    assert world.gh.faults.fired == {"fail": 1, "cut": 1}
    assert world.delays == [1, 1]
    world.assert_in_step()
    # A secondary rate limit stops the sync where it is; the next sync finishes, once.
    world.comment("tmandry", "During the limit.")
    world.gh.faults.fail_next(403, secondary=True, retry_after=120, method="GET")
    stopped = world.sync()
    assert world.gh.faults.fired["fail"] == 2
    assert stopped.retry_at == world.clock.now() + timedelta(seconds=120)
    assert "asked to wait" in "\n".join(stopped.lines())
    world.clock.advance(timedelta(minutes=3))
    world.sync()
    world.sync()
    world.assert_in_step()
    assert len(world.stored()) == 4


def test_a_goal_that_names_another_repository(world: World) -> None:
    world.gh.add_repo("rust-lang/rust")
    world.gh.add_issue("rust-lang/rust", 123, "Tracking issue for X", "* [ ] one")
    with world.db.write() as s:
        goal = s.get(Goal, world.goal_id)
        assert goal is not None
        goal.tracking_url = "https://github.com/rust-lang/rust/issues/123"
    world.clock.advance(timedelta(minutes=1))
    cid = world.gh.add_comment("rust-lang/rust", 123, "tmandry", "Elsewhere.")
    report = world.sync()
    assert str(report.issues[0].ref) == "rust-lang/rust#123"
    assert set(world.stored()) == {cid}


def test_the_blog_export_has_progress_and_the_comments_as_github_shows_them(
    world: World,
) -> None:
    from zulip_goals_bot.digest.blog import compose_blog, load_blog_data

    kept = world.comment("nikomatsakis", "TL;DR: the RFC is accepted.")
    gone = world.comment("nikomatsakis", "A note I took back.")
    world.sync()
    world.gh.delete_comment(gone)
    world.sync()
    with world.db.read() as s:
        goals, updates = load_blog_data(s, START - timedelta(days=1), START + timedelta(days=1))
    post = compose_blog(goals, updates, START.date(), START.date() + timedelta(days=1))
    assert "**Progress:** 2 of 4 tasks done (50%)" in post
    assert f"([on GitHub](https://github.com/{REPO}/issues/263#issuecomment-{kept}))" in post
    assert "the RFC is accepted" in post and "took back" not in post


def test_a_listing_cut_at_its_page_limit_deletes_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zulip_goals_bot.github.sync as github_sync

    first, _second, third = (world.comment("nikomatsakis", f"Update {i}.") for i in range(3))
    world.sync()
    world.gh.delete_comment(first)
    # One comment a page, one page at most: the whole list can no longer be read.
    monkeypatch.setattr(github_sync, "PER_PAGE", 1)
    monkeypatch.setattr(github_sync, "MAX_PAGES", 1)
    report = world.sync()
    assert report.issues[0].plan.deleted == ()
    assert world.stored()[third][2] is False  # never reached, so never taken for deleted
