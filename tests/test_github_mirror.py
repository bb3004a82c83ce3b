"""The mirror from Zulip to the tracking issues, over HTTP against the GitHub emulator, with a
real database; and its planning rule on plain values.

Every test against the emulator ends by comparing GitHub with the database: each live update is
exactly one comment (0 lost, 0 duplicated), and no comment is left for an update that is gone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from fakegithub import FakeGitHub
from tests.dbs import new_database
from tests.support import add_goal
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import BotState, GitHubMirror, Goal, Person, Update
from zulip_goals_bot.domain.markdown import message_link
from zulip_goals_bot.domain.states import GoalState, MirrorState, UpdateKind, UpdateSource
from zulip_goals_bot.github.client import GitHubClient, TokenAuth
from zulip_goals_bot.github.issues import IssueRef, marked_update_id, mirror_body
from zulip_goals_bot.github.mirror import (
    CLAIM_SETTLE,
    MIRROR_SINCE_KEY,
    Candidate,
    Mirrored,
    MirrorReport,
    Planned,
    Step,
    body_hash,
    comment_author,
    mirror,
    next_step,
    plan,
)
from zulip_goals_bot.github.sync import sync

REPO = "rust-lang/rust-project-goals"
TOKEN = "ghp_mirrortesttoken00000000000000000000"
# A token of one of the goal's owners: the comments it posts are an owner's, the loop risk.
OWNER_TOKEN = "ghp_mirrorownertoken0000000000000000000"
SITE = "https://rust-lang.zulipchat.com"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# Past the settling time of a claim: the next run looks at it.
SETTLED = CLAIM_SETTLE + timedelta(minutes=1)
ISSUES = (263, 264)


@dataclass
class World:
    gh: FakeGitHub
    db: Database
    clock: FrozenClock
    client: GitHubClient
    goal_id: int
    other_id: int  # a second goal, on issue 264
    author_id: int  # nikomatsakis, an owner of both
    delays: list[float]
    message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(7_000_001))

    def mirror(self, client: GitHubClient | None = None, **kw: Any) -> MirrorReport:
        return mirror(self.db, client or self.client, REPO, site=SITE, now=self.clock.now, **kw)

    def update(self, text: str, goal_id: int | None = None, *, at: datetime | None = None) -> int:
        """An owner's update written in the goal's Zulip topic, as the bot stores it."""
        self.clock.advance(timedelta(minutes=1))
        with self.db.write() as s:
            row = Update(
                zulip_message_id=next(self.message_ids),
                goal_id=goal_id or self.goal_id,
                author_id=self.author_id,
                kind=UpdateKind.UPDATE,
                source=UpdateSource.TOPIC,
                content=text,
                sent_at=at or self.clock.now(),
                deleted=False,
            )
            s.add(row)
            s.flush()
            return row.id

    def change(self, update_id: int, **values: Any) -> None:
        self.clock.advance(timedelta(minutes=1))
        with self.db.write() as s:
            row = s.get(Update, update_id)
            assert row is not None
            for key, value in values.items():
                setattr(row, key, value)

    def change_goal(self, goal_id: int, **values: Any) -> None:
        with self.db.write() as s:
            goal = s.get(Goal, goal_id)
            assert goal is not None
            for key, value in values.items():
                setattr(goal, key, value)

    def body(self, update_id: int) -> str:
        with self.db.read() as s:
            row = s.get(Update, update_id)
            assert row is not None and row.zulip_message_id is not None
            link = message_link(SITE, row.zulip_message_id)
            return mirror_body(update_id, "@nikomatsakis", link, row.content)

    def sent(self, method: str, *, status: int | None = None) -> int:
        """Requests of ``method`` the emulator answered (with ``status``, when given)."""
        return sum(
            1
            for r in self.gh.requests
            if r.method == method and (status is None or r.status == status)
        )

    def marked(self) -> dict[int, list[tuple[int, int, str]]]:
        """Comments carrying the bot's marker, by update id: (issue, comment id, body)."""
        out: dict[int, list[tuple[int, int, str]]] = {}
        for number in ISSUES:
            for c in self.gh.comments(REPO, number):
                uid = marked_update_id(c["body"])
                if uid is not None:
                    out.setdefault(uid, []).append((number, c["id"], c["body"]))
        return out

    def rows(self) -> dict[int, GitHubMirror]:
        with self.db.read() as s:
            return {r.update_id: r for r in s.execute(select(GitHubMirror)).scalars()}

    def assert_in_step(self, *, unposted: frozenset[int] = frozenset()) -> None:
        """0 lost, 0 duplicated: every live update since the mirror started (but ``unposted``)
        is one comment holding its text, recorded on its row; nothing else carries a marker."""
        with self.db.read() as s:
            live = set(
                s.execute(
                    select(Update.id).where(
                        Update.source == UpdateSource.TOPIC,
                        Update.kind == UpdateKind.UPDATE,
                        Update.deleted.is_(False),
                        Update.goal_id.is_not(None),
                        Update.sent_at >= START,
                    )
                ).scalars()
            ) - set(unposted)
        on_github = self.marked()
        rows = self.rows()
        assert set(on_github) == live
        for uid in live:
            [(number, cid, body)] = on_github[uid]
            assert body == self.body(uid)
            row = rows[uid]
            assert (row.state, row.comment_id, row.number) == (MirrorState.POSTED, cid, number)
            assert row.body_hash == body_hash(body)


def _world(tmp_path: Path) -> Iterator[World]:
    clock = FrozenClock(START)
    gh = FakeGitHub(clock=clock.now).start()
    gh.add_repo(REPO)
    gh.add_token(TOKEN, "goals-bot-operator")
    gh.add_token(OWNER_TOKEN, "nikomatsakis")
    gh.add_issue(REPO, 263, "Stabilize async closures", "* [ ] RFC", author="nikomatsakis")
    gh.add_issue(REPO, 264, "Polonius on nightly", "* [ ] alpha", author="nikomatsakis")
    db = new_database(tmp_path)
    goal = add_goal(db, "async-closures", "Stabilize async closures", issue=263,
                    github=["nikomatsakis", "tmandry"])  # fmt: skip
    other = add_goal(db, "polonius", "Polonius on nightly", issue=264)
    with db.write() as s:
        author = s.execute(select(Person).where(Person.github == "nikomatsakis")).scalar_one()
        author_id = author.id
    delays: list[float] = []
    client = GitHubClient(gh.url, TokenAuth(TOKEN), clock=clock.now, sleep=delays.append)
    try:
        yield World(gh, db, clock, client, goal.id, other.id, author_id, delays)
    finally:
        client.close()
        gh.stop()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[World]:
    """The mirror not switched on yet."""
    yield from _world(tmp_path)


@pytest.fixture
def world(fresh: World) -> World:
    """The mirror switched on at START (its first run records MIRROR_SINCE_KEY)."""
    report = fresh.mirror()
    assert report.changes == 0 and not fresh.gh.requests
    return fresh


# --- the planning rule, on plain values ------------------------------------------------------

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
A = IssueRef(REPO, 263)
B = IssueRef(REPO, 264)
BODY = "<!-- zulip-goals-bot update 5 -->\n**Update from Zulip by @x**\n\nv2"
# Goal 1 names A, goal 2 names B.
NAMED = {A: frozenset({1}), B: frozenset({2})}


def row(
    state: MirrorState = MirrorState.POSTED,
    *,
    ref: IssueRef = A,
    comment: int | None = 900,
    body: str = BODY,
    claimed: datetime = NOW - timedelta(hours=1),
    looked: bool = False,
) -> Mirrored:
    return Mirrored(7, ref, comment, state, body_hash(body), claimed, looked)


# A claim this run looked for and did not find on GitHub.
LOOKED = row(MirrorState.CLAIMED, comment=None, looked=True)


def cand(
    mirrored: Mirrored | None = None,
    *,
    live: bool = True,
    goal: int | None = 1,
    target: IssueRef | None = A,
) -> Candidate:
    return Candidate(5, goal, live, target, BODY, mirrored)


@pytest.mark.parametrize(
    ("candidate", "named", "expected"),
    [
        # No row yet: posted when it has an issue to go to.
        (cand(), NAMED, Step.POST),
        (cand(target=None), NAMED, Step.NOTHING),
        (cand(live=False), NAMED, Step.NOTHING),
        # In step, edited, or adopted with another body.
        (cand(row()), NAMED, Step.NOTHING),
        (cand(row(body="v1")), NAMED, Step.PATCH),
        (cand(row(MirrorState.STALE)), NAMED, Step.PATCH),
        # A claim: left to settle, then looked for, then posted or forgotten.
        (cand(row(MirrorState.CLAIMED, comment=None, claimed=NOW)), NAMED, Step.WAIT),
        (cand(row(MirrorState.CLAIMED, comment=None, claimed=NOW - SETTLED)), NAMED, Step.LOOK),
        (cand(LOOKED), NAMED, Step.POST),
        (cand(LOOKED, live=False), NAMED, Step.FORGET),
        # A claim that somehow lost its id is looked for, not trusted.
        (cand(row(MirrorState.POSTED, comment=None)), NAMED, Step.LOOK),
        # Deleted, or no longer an owner's update: the comment goes.
        (cand(row(), live=False), NAMED, Step.DELETE),
        (cand(row(MirrorState.DELETED)), NAMED, Step.DELETE),
        # Moved to goal 2: goal 1 still names A, so the update left it.
        (cand(row(), goal=2, target=B), NAMED, Step.MOVE),
        (cand(row(), goal=2, target=None), NAMED, Step.DELETE),
        # Goal 1 itself now names B (a new period's issue) or none: its history stays on A,
        # and still follows edits.
        (cand(row(), target=B), {B: frozenset({1})}, Step.NOTHING),
        (cand(row(), target=None), {}, Step.NOTHING),
        (cand(row(body="v1"), target=B), {B: frozenset({1})}, Step.PATCH),
        # Removed, by us or on GitHub: never posted again.
        (cand(row(MirrorState.GONE)), NAMED, Step.NOTHING),
        (cand(row(MirrorState.GONE), goal=2, target=B), NAMED, Step.NOTHING),
    ],
)
def test_next_step(
    candidate: Candidate, named: dict[IssueRef, frozenset[int]], expected: Step
) -> None:
    assert next_step(candidate, NOW, named) is expected


def test_plan_keeps_the_steps_in_update_order() -> None:
    later = Candidate(9, 1, True, A, BODY, None)
    done = Candidate(3, 1, True, A, BODY, row())
    edited = Candidate(4, 1, True, A, BODY, row(body="v1"))
    planned = plan([later, done, edited], NOW, NAMED)
    assert [(p.candidate.update_id, p.step) for p in planned] == [(4, Step.PATCH), (9, Step.POST)]
    lines = [p.describe() for p in planned]
    assert lines == ["edit update 4's comment 900 on " + str(A), f"post update 9 on {A}"]
    assert not any("v2" in line for line in lines)  # ids only, never the text


def test_describe_moves_and_claims() -> None:
    moved = Planned(cand(row(), goal=2, target=B), Step.MOVE)
    assert moved.describe() == f"move update 5's comment 900 from {A} to {B}"
    claim = Planned(cand(row(MirrorState.CLAIMED, comment=None)), Step.LOOK)
    assert claim.describe() == f"look on {A} for update 5's comment before posting it"


def test_comment_author() -> None:
    assert comment_author("nikomatsakis", "Niko Matsakis") == "@nikomatsakis"
    assert comment_author(None, "@**all** Niko") == "@\u200b**all** Niko"
    assert comment_author(None, "  ") == comment_author(None, None) == "a goal owner"


def test_report_lines() -> None:
    report = MirrorReport(posted=2, edited=1, failed=1, retry_at=NOW, steps=("post update 1",))
    assert report.lines() == [
        "mirror to GitHub: 2 posted, 1 edited, 0 moved, 0 deleted, 1 failed",
        "GitHub asked to wait until 2026-11-02 12:00 UTC; rest later.",
    ]
    assert str(MirrorReport(dry_run=True, posted=1, steps=("post update 1",))).splitlines() == [
        "Dry run, nothing sent or stored: would mirror to GitHub: 1 posted, 0 edited, 0 moved, "
        "0 deleted",
        "  post update 1",
    ]


# --- against the emulator --------------------------------------------------------------------


def test_each_update_is_posted_once_attributed_and_linked(world: World) -> None:
    first = world.update("TL;DR: the RFC was accepted.")
    second = world.update("Nightly implementation landed.")
    report = world.mirror()
    assert (report.posted, report.failed, report.retry_at) == (2, 0, None)
    comments = world.gh.comments(REPO, 263)
    assert [marked_update_id(c["body"]) for c in comments] == [first, second]
    head = comments[0]["body"].splitlines()[1]
    with world.db.read() as s:
        message = s.get(Update, first)
        assert message is not None and message.zulip_message_id is not None
        link = message_link(SITE, message.zulip_message_id)
    assert head == f"**Update from Zulip by @nikomatsakis** ([message]({link}))"
    assert comments[0]["body"].endswith("TL;DR: the RFC was accepted.")
    world.assert_in_step()
    # A second run finds everything in step and sends nothing at all.
    before = len(world.gh.requests)
    again = world.mirror()
    assert again.changes == 0 and len(world.gh.requests) == before
    assert world.sent("POST") == 2
    world.assert_in_step()


def test_the_first_run_records_when_the_mirror_started(fresh: World) -> None:
    fresh.clock.advance(timedelta(hours=1))
    old = fresh.update("Written before the mirror was switched on.")
    fresh.clock.advance(timedelta(minutes=1))
    switched_on = fresh.clock.now()
    assert fresh.mirror().posted == 0
    with fresh.db.read() as s:
        since = s.get(BotState, MIRROR_SINCE_KEY)
        assert since is not None and datetime.fromisoformat(since.value) == switched_on
    new = fresh.update("Written after.")
    assert fresh.mirror().posted == 1
    assert set(fresh.marked()) == {new}
    assert old not in fresh.rows()
    # Later runs keep the first instant.
    fresh.mirror()
    with fresh.db.read() as s:
        since = s.get(BotState, MIRROR_SINCE_KEY)
        assert since is not None and datetime.fromisoformat(since.value) == switched_on


def test_an_update_sent_before_the_mirror_started_is_not_posted(world: World) -> None:
    world.update("From last week.", at=START - timedelta(days=7))
    assert world.mirror().posted == 0
    assert world.sent("POST") == 0 and not world.marked()
    world.assert_in_step()


def test_an_edit_patches_the_comment(world: World) -> None:
    uid = world.update("First draft.")
    world.mirror()
    world.change(uid, content="Second draft, with the link fixed.", edited_at=world.clock.now())
    report = world.mirror()
    assert (report.edited, report.posted) == (1, 0)
    assert world.sent("PATCH") == 1 and world.sent("POST") == 1
    [(_, _, body)] = world.marked()[uid]
    assert body.endswith("Second draft, with the link fixed.")
    world.assert_in_step()
    assert world.mirror().changes == 0 and world.sent("PATCH") == 1


def test_a_deleted_update_removes_its_comment(world: World) -> None:
    kept = world.update("Stays.")
    gone = world.update("Sent by mistake.")
    world.mirror()
    world.change(gone, deleted=True)
    report = world.mirror()
    assert report.deleted == 1
    assert set(world.marked()) == {kept}
    assert world.rows()[gone].state == MirrorState.GONE
    world.assert_in_step()
    assert world.mirror().changes == 0 and world.sent("DELETE") == 1


def test_an_update_that_stops_being_an_update_removes_its_comment(world: World) -> None:
    uid = world.update("Moved out of the goals stream.")
    world.mirror()
    world.change(uid, goal_id=None)
    assert world.mirror().deleted == 1
    assert not world.marked()
    world.assert_in_step()


def test_a_moved_update_moves_its_comment(world: World) -> None:
    uid = world.update("This was about Polonius.")
    world.mirror()
    world.change(uid, goal_id=world.other_id)
    report = world.mirror()
    assert (report.moved, report.posted, report.deleted) == (1, 0, 0)
    [(number, _, _)] = world.marked()[uid]
    assert number == 264
    assert not [c for c in world.gh.comments(REPO, 263) if marked_update_id(c["body"])]
    assert world.sent("DELETE") == 1 and world.sent("POST") == 2
    world.assert_in_step()
    assert world.mirror().changes == 0


def test_a_goal_that_changes_its_issue_keeps_its_history(world: World) -> None:
    """A goal continued into a new period with a new tracking issue (or none yet), or ended:
    its comments stay where they are; its new updates go to its new issue."""
    old = world.update("Last period's update.")
    world.mirror()
    sent = len(world.gh.requests)
    world.change_goal(world.goal_id, tracking_issue=None)
    assert world.mirror().changes == 0
    world.change_goal(world.goal_id, state=GoalState.COMPLETED)
    assert world.mirror().changes == 0
    world.change_goal(world.goal_id, tracking_issue=265, state=GoalState.ACTIVE)
    world.gh.add_issue(REPO, 265, "Stabilize async closures (2027h1)")
    assert world.mirror().changes == 0 and len(world.gh.requests) == sent
    # The old comment still follows an edit, where it is; a new update goes to the new issue.
    world.change(old, content="Last period's update, corrected.")
    new = world.update("This period's first update.")
    report = world.mirror()
    assert (report.edited, report.posted, report.moved) == (1, 1, 0)
    [(number, _, body)] = world.marked()[old]
    assert number == 263 and body.endswith("corrected.")
    assert [marked_update_id(c["body"]) for c in world.gh.comments(REPO, 265)] == [new]


def test_a_crash_after_github_created_the_comment_is_adopted(world: World) -> None:
    uid = world.update("Posted, but the answer was lost.")
    world.gh.faults.cut_after_commit_next(method="POST")
    lost = world.mirror()
    assert world.gh.faults.fired == {"cut_after_commit": 1}
    assert (lost.posted, lost.failed) == (0, 1)
    row = world.rows()[uid]
    assert row.state == MirrorState.CLAIMED and row.comment_id is None and row.error
    assert len(world.marked()[uid]) == 1  # GitHub has it; the bot does not know
    # Right after, the claim may still be another run's post in flight: left alone.
    sent = len(world.gh.requests)
    assert world.mirror().waiting == 1 and len(world.gh.requests) == sent
    world.clock.advance(SETTLED)
    found = world.mirror()
    assert (found.adopted, found.posted) == (1, 0)
    assert world.sent("POST") == 1
    assert world.rows()[uid].error is None
    world.assert_in_step()


def test_an_edit_during_a_lost_answer_is_followed_after_adoption(world: World) -> None:
    uid = world.update("v1")
    world.gh.faults.cut_after_commit_next(method="POST")
    world.mirror()
    assert world.gh.faults.fired == {"cut_after_commit": 1}
    world.change(uid, content="v2")
    world.clock.advance(SETTLED)
    report = world.mirror()
    assert (report.adopted, report.edited, report.posted) == (1, 1, 0)
    assert world.sent("POST") == 1
    world.assert_in_step()


def test_a_503_on_post_is_posted_once_later(world: World) -> None:
    uid = world.update("GitHub is having a moment.")
    world.gh.faults.fail_next(503, method="POST")
    failed = world.mirror()
    assert world.gh.faults.fired == {"fail": 1}
    assert failed.failed == 1 and world.delays == []  # a POST is never retried blindly
    assert not world.marked()
    world.assert_in_step(unposted=frozenset({uid}))  # owed, claimed, not lost
    world.clock.advance(SETTLED)
    report = world.mirror()
    assert (report.posted, report.adopted, report.failed) == (1, 0, 0)
    assert world.sent("POST", status=201) == 1
    world.assert_in_step()


def test_a_secondary_rate_limit_stops_the_run_and_a_later_run_completes(world: World) -> None:
    ids = [world.update(f"Update {i}.") for i in range(3)]
    world.gh.faults.fail_next(403, secondary=True, retry_after=120, method="POST")
    stopped = world.mirror()
    assert world.gh.faults.fired == {"fail": 1}
    assert stopped.retry_at == world.clock.now() + timedelta(seconds=120)
    assert (stopped.posted, stopped.failed) == (0, 0)
    assert "asked to wait" in str(stopped)
    assert world.sent("POST") == 1  # the run stopped at the first refusal
    world.assert_in_step(unposted=frozenset(ids))
    world.clock.advance(timedelta(minutes=3))
    resumed = world.mirror()
    assert (resumed.posted, resumed.waiting) == (2, 1)  # the claimed one settles first
    world.clock.advance(SETTLED)
    assert world.mirror().posted == 1
    assert world.sent("POST", status=201) == 3
    world.assert_in_step()


def test_a_refusal_is_recorded_and_the_others_go_on(world: World) -> None:
    missing = add_goal(world.db, "missing", "An issue GitHub does not have", issue=999)
    refused = world.update("Nowhere to go.", missing.id)
    fine = world.update("Fine.")
    report = world.mirror()
    assert (report.failed, report.posted) == (1, 1)
    row = world.rows()[refused]
    assert row.state == MirrorState.CLAIMED and row.error is not None and "404" in row.error
    assert set(world.marked()) == {fine}
    assert world.rows()[fine].state == MirrorState.POSTED


def test_a_comment_removed_on_github_is_not_posted_again(world: World) -> None:
    uid = world.update("Someone will delete this comment.")
    world.mirror()
    [(_, cid, _)] = world.marked()[uid]
    world.gh.delete_comment(cid)
    world.change(uid, content="Edited after its comment was removed.")
    report = world.mirror()
    assert (report.vanished, report.edited, report.posted) == (1, 0, 0)
    assert world.rows()[uid].state == MirrorState.GONE
    world.change(uid, content="And again.")
    assert world.mirror().changes == 0
    assert world.sent("POST") == 1 and not world.marked()


def test_lost_access_is_not_taken_for_a_removed_comment(world: World) -> None:
    world.gh.add_repo("rust-lang/private-goals", private=True)
    world.gh.add_issue("rust-lang/private-goals", 5, "Private goal")
    private = add_goal(world.db, "private", "A private goal")
    world.change_goal(
        private.id, tracking_url="https://github.com/rust-lang/private-goals/issues/5"
    )
    uid = world.update("Written while the token could see it.", private.id)
    world.mirror()
    assert world.rows()[uid].state == MirrorState.POSTED
    # The token now sees only the public repository: every answer there is a 404.
    world.gh.add_token(TOKEN, "goals-bot-operator", repos=[REPO])
    world.change(uid, content="Edited after access was lost.")
    report = world.mirror()
    assert (report.failed, report.vanished) == (1, 0)
    row = world.rows()[uid]
    assert row.state == MirrorState.POSTED and row.error is not None


def test_dry_run_sends_and_stores_nothing(world: World) -> None:
    uid = world.update("Would be posted.")
    report = world.mirror(dry_run=True)
    assert report.dry_run and report.posted == 1
    assert f"  post update {uid} on {REPO}#263" in report.lines()
    assert not world.gh.requests and not world.rows()


def test_dry_run_does_not_switch_the_mirror_on(fresh: World) -> None:
    fresh.mirror(dry_run=True)
    with fresh.db.read() as s:
        assert s.get(BotState, MIRROR_SINCE_KEY) is None


def test_the_sync_does_not_import_the_bots_comments(world: World) -> None:
    """Posted with an owner's own token, each comment is an owner's: only its marker (and its
    recorded id) keep the sync from importing it back as an update from GitHub."""
    owner = GitHubClient(world.gh.url, TokenAuth(OWNER_TOKEN), clock=world.clock.now,
                         sleep=world.delays.append)  # fmt: skip
    try:
        lost = world.update("Its answer is lost, so its id is not recorded.")
        posted = world.update("Posted with the owner's token.")
        world.gh.faults.cut_after_commit_next(method="POST", path="/issues/263/comments")
        world.mirror(owner)
        assert world.gh.faults.fired == {"cut_after_commit": 1}
        assert {c["user"]["login"] for c in world.gh.comments(REPO, 263)} == {"nikomatsakis"}
        assert world.rows()[lost].comment_id is None
        report = sync(world.db, world.client, REPO, now=world.clock.now)
        assert report.changes == 0
        assert len(report.issues[0].plan.skipped) == 2
        world.clock.advance(SETTLED)
        world.mirror(owner)
        sync(world.db, world.client, REPO, now=world.clock.now)
    finally:
        owner.close()
    with world.db.read() as s:
        imported = s.execute(select(Update).where(Update.source == UpdateSource.GITHUB)).all()
    assert imported == []
    assert set(world.marked()) == {posted, lost}
    world.assert_in_step()


def test_loading_costs_the_same_statements_for_more_goals(world: World) -> None:
    world.update("One goal.")
    world.mirror()

    def statements() -> int:
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(str(args[2]))

        event.listen(world.db.engine, "before_cursor_execute", count)
        try:
            world.mirror(dry_run=True)
        finally:
            event.remove(world.db.engine, "before_cursor_execute", count)
        return len(seen)

    few = statements()
    for n in range(4):
        world.gh.add_issue(REPO, 300 + n, f"Goal {n}")
        goal = add_goal(world.db, f"goal-{n}", f"Goal {n}", issue=300 + n)
        world.update(f"Update for goal {n}.", goal.id)
    world.mirror()
    assert world.mirror().changes == 0
    assert statements() == few
