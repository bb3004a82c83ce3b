"""The tracking-issue rules on plain values: references, task lists, comment plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from zulip_goals_bot.domain.progress import Progress
from zulip_goals_bot.github.issues import (
    MASS_DELETION_MIN,
    Comment,
    CommentKind,
    IssueRef,
    Known,
    boilerplate_reason,
    marked_update_id,
    mirror_body,
    parse_issue_ref,
    parse_task_list,
    plan_comments,
    quiet_mentions,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
REPO = "rust-lang/rust-project-goals"


def comment(cid: int, author: str = "nikomatsakis", body: str = "Progress!", *,
            minutes: int = 0, edited: int | None = None, bot: bool = False) -> Comment:  # fmt: skip
    created = T0 + timedelta(minutes=minutes)
    updated = created + timedelta(minutes=edited) if edited is not None else created
    return Comment(cid, author, bot, body, created, updated, f"https://github.com/x/y#c{cid}")


def test_issue_references_of_every_shape() -> None:
    assert parse_issue_ref(263, None, REPO) == IssueRef(REPO, 263)
    assert parse_issue_ref(None, "https://github.com/rust-lang/rust/issues/123", REPO) == IssueRef(
        "rust-lang/rust", 123
    )
    assert parse_issue_ref(116, "[rust-lang/goals#116]", REPO) == IssueRef("rust-lang/goals", 116)
    assert parse_issue_ref(None, None, REPO) is None
    assert parse_issue_ref(7, None, "") is None  # no repository configured: a number is nothing
    ref = IssueRef(REPO, 263)
    assert str(ref) == "rust-lang/rust-project-goals#263"
    assert ref.api_path == "/repos/rust-lang/rust-project-goals/issues/263"
    assert ref.comments_path.endswith("/issues/263/comments")


def test_task_list_is_parsed_not_grepped() -> None:
    body = """**Summary**

* [x] RFC accepted
* [X] Nightly implementation
* [ ] Stabilization report
  * [ ] nested: docs written
- plain item, not a task

```
- [ ] inside a code block: not a task
```
"""
    progress = parse_task_list(body)
    assert (progress.done, progress.total) == (2, 4)
    assert progress.open_tasks == ("Stabilization report", "nested: docs written")
    assert str(progress) == "2 of 4 tasks done"
    assert progress.percent == 50
    assert str(parse_task_list(None)) == "no task list"
    assert parse_task_list("no tasks here").total == 0
    assert Progress(5, 8).percent == 62


def test_boilerplate_and_own_comments_are_not_updates() -> None:
    assert boilerplate_reason(comment(1, bot=True)) == "written by a bot"
    assert boilerplate_reason(comment(2, body="  ")) == "empty"
    notice = "This issue is intended for status updates only. For questions, contact the owners."
    assert boilerplate_reason(comment(3, body=notice)) is not None
    mirrored = mirror_body(41, "@nikomatsakis", "https://zulip.example/#narrow/id/9", "Done.")
    assert marked_update_id(mirrored) == 41
    assert boilerplate_reason(comment(4, body=mirrored)) == "posted by this bot from Zulip"
    assert boilerplate_reason(comment(5, body="We landed the RFC.")) is None


def test_plan_sorts_new_edited_deleted_and_skipped() -> None:
    owners = frozenset({"nikomatsakis"})
    fetched = [
        comment(10, minutes=1),
        comment(11, author="someone-else", minutes=2),
        comment(12, minutes=3, edited=30),
        comment(13, bot=True, body="beep", author="rustbot"),
        comment(14, minutes=4),
        comment(10, minutes=1),  # pages shifted: listed twice
    ]
    known = [
        Known(12, 500, T0 + timedelta(minutes=3)),
        Known(14, 501, T0 + timedelta(minutes=4)),
        Known(15, 502, T0),
    ]
    plan = plan_comments(fetched, known, owners=owners, complete=True, own_comment_ids=frozenset())
    assert [(c.id, kind) for c, kind in plan.new] == [
        (10, CommentKind.UPDATE),
        (11, CommentKind.COMMENT),
    ]
    assert [(k.update_id, c.id) for k, c in plan.edited] == [(500, 12)]
    assert [k.update_id for k in plan.deleted] == [502]
    assert [(c.id, why) for c, why in plan.skipped] == [(13, "written by a bot")]
    assert plan.changes == 4


def test_a_partial_listing_never_deletes() -> None:
    known = [Known(15, 502, T0)]
    plan = plan_comments([], known, owners=frozenset(), complete=False)
    assert plan.deleted == () and plan.withheld == ()


def test_own_comment_ids_are_skipped_even_without_marker() -> None:
    plan = plan_comments(
        [comment(20, body="edited away the marker")],
        [],
        owners=frozenset({"nikomatsakis"}),
        complete=True,
        own_comment_ids=frozenset({20}),
    )
    assert plan.new == () and plan.skipped[0][1] == "posted by this bot from Zulip"


def test_mass_deletion_is_withheld_but_a_few_deletions_are_not() -> None:
    known = [Known(100 + i, 600 + i, T0) for i in range(MASS_DELETION_MIN + 1)]
    nothing = plan_comments([], known, owners=frozenset(), complete=True)
    assert nothing.deleted == () and len(nothing.withheld) == MASS_DELETION_MIN + 1
    # The same number of deletions among many known comments is believed.
    many = known + [Known(200 + i, 700 + i, T0) for i in range(10)]
    kept = [comment(200 + i) for i in range(10)]
    believed = plan_comments(kept, many, owners=frozenset(), complete=True)
    assert len(believed.deleted) == MASS_DELETION_MIN + 1 and believed.withheld == ()
    # Two of two deleted: below the minimum, believed.
    two = plan_comments([], known[:2], owners=frozenset(), complete=True)
    assert len(two.deleted) == 2


def test_comment_from_githubs_json() -> None:
    data = {
        "id": 2690000003,
        "user": {"login": "Nadrieril", "type": "User"},
        "body": "TL;DR: done",
        "created_at": "2026-11-02T09:00:00Z",
        "updated_at": "2026-11-02T10:00:00Z",
        "html_url": "https://github.com/o/r/issues/1#issuecomment-2690000003",
        "performed_via_github_app": None,
    }
    c = Comment.from_json(data)
    assert c.author == "nadrieril" and not c.author_is_bot
    assert c.updated_at - c.created_at == timedelta(hours=1)
    assert Comment.from_json({**data, "user": {"login": "rustbot", "type": "Bot"}}).author_is_bot
    assert Comment.from_json({**data, "user": None}).author == "ghost"


def test_mirrored_text_does_not_ping_anyone_on_github() -> None:
    text = "Thanks @nikomatsakis and @rust-lang/types! Mail me at a@b.org.\n\n```\n@keep\n```"
    quiet = quiet_mentions(text)
    assert "@<!-- -->nikomatsakis" in quiet and "@<!-- -->rust-lang/types" in quiet
    assert "a@b.org" in quiet and "\n@keep\n" in quiet  # e-mail and code untouched
