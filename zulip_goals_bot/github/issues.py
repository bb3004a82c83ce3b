"""Tracking issues as plain values: which issue a goal names, its task list as progress, and
what a sync should do with the comments GitHub shows (the plan; ``sync`` applies it).

Nothing here does I/O: it takes GitHub's JSON and the database's rows as values and returns
decisions, so every rule of the bridge is tested on plain data.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..domain.markdown import outside_code
from ..domain.progress import Progress
from ..domain.states import UpdateKind

# A deletion of this many comments or more, being more than half of those the bot knows, is
# withheld: a token that lost access or a truncated listing looks like a mass deletion, and an
# owner's record must not vanish on a misread (the same guard as Zulip's catch-up).
MASS_DELETION_MIN = 3

# GitHub's web pages for issues; an issue's JSON carries its own ``html_url`` (GitHub Enterprise
# has another host), this is only for issues named by number before any sync has read them.
GITHUB_WEB = "https://github.com"

# Hidden in every comment the bot posts from Zulip: the sync recognises its own comments by it
# even when a crash lost the comment's id, so nothing the bot wrote comes back as an update.
MIRROR_MARKER = "<!-- zulip-goals-bot update {update_id} -->"
_MARKER_RE = re.compile(r"<!-- zulip-goals-bot update (\d+) -->")

# The sentences programs post on tracking issues that are not anyone's progress: the Rust
# program's "this issue is intended for status updates only" note and its kin.
BOILERPLATE_PATTERNS = (
    re.compile(r"^\W*this issue is (intended|reserved) for status updates only", re.I),
    re.compile(r"^\W*please (do not|don't) (comment|post) (here|on this issue)", re.I),
)

_REPO_NAME = r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+"
_URL_RE = re.compile(rf"https?://[^/\s]+/({_REPO_NAME})/issues/(\d+)")
_SHORT_RE = re.compile(rf"^\s*\[?({_REPO_NAME})#(\d+)\]?\s*$")
# GitHub's mentions: @ after a non-word character, a handle, optionally /team.
_GITHUB_MENTION = re.compile(r"(^|[^\w`@/])@([A-Za-z0-9][A-Za-z0-9-]*(?:/[\w.-]+)?)")
_TASK_RE = re.compile(r"^\[([ xX])\]\s+(.*)$", re.S)


@dataclass(frozen=True, slots=True, order=True)
class IssueRef:
    """An issue of a repository: ``rust-lang/rust-project-goals#263``."""

    repository: str
    number: int

    def __str__(self) -> str:
        return f"{self.repository}#{self.number}"

    @property
    def api_path(self) -> str:
        return f"/repos/{self.repository}/issues/{self.number}"

    @property
    def comments_path(self) -> str:
        return f"{self.api_path}/comments"

    @property
    def html_url(self) -> str:
        return f"{GITHUB_WEB}/{self.repository}/issues/{self.number}"


def parse_issue_ref(
    tracking_issue: int | None, tracking_url: str | None, default_repository: str
) -> IssueRef | None:
    """The issue a goal's ``Tracking issue`` row names: a URL or ``owner/name#N`` may point into
    another repository; a bare number is in the configured one. None when it names none."""
    text = (tracking_url or "").strip()
    if match := _URL_RE.search(text):
        return IssueRef(match.group(1), int(match.group(2)))
    if match := _SHORT_RE.match(text):
        return IssueRef(match.group(1), int(match.group(2)))
    if tracking_issue and default_repository:
        return IssueRef(default_repository, tracking_issue)
    return None


def parse_task_list(body: str | None) -> Progress:
    """Read GitHub's task-list items from Markdown: list items whose text starts ``[ ]`` or
    ``[x]``. Parsed, not grepped, so a ``- [ ]`` inside a code block is not a task."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(body or "")
    done = 0
    open_tasks: list[str] = []
    depth = 0
    first_inline = False
    for token in tokens:
        if token.type == "list_item_open":
            depth += 1
            first_inline = True
        elif token.type == "list_item_close":
            depth -= 1
            first_inline = False
        elif token.type == "inline" and depth and first_inline:
            first_inline = False
            match = _TASK_RE.match(token.content.strip())
            if match is None:
                continue
            text = " ".join(match.group(2).split())
            if match.group(1) == " ":
                open_tasks.append(text)
            else:
                done += 1
    return Progress(done, done + len(open_tasks), tuple(open_tasks))


def _time(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Comment:
    """An issue comment as the sync needs it (GitHub's JSON has fifty more fields)."""

    id: int
    author: str  # login, lower case
    author_is_bot: bool
    body: str
    created_at: datetime
    updated_at: datetime
    html_url: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Comment:
        user = data.get("user") or {}
        login = str(user.get("login") or "ghost")
        return cls(
            id=int(data["id"]),
            author=login.lower(),
            author_is_bot=user.get("type") == "Bot"
            or login.endswith("[bot]")
            or data.get("performed_via_github_app") is not None,
            body=str(data.get("body") or ""),
            created_at=_time(data["created_at"]),
            updated_at=_time(data.get("updated_at") or data["created_at"]),
            html_url=str(data.get("html_url") or ""),
        )


def mirror_marker(update_id: int) -> str:
    return MIRROR_MARKER.format(update_id=update_id)


def marked_update_id(body: str) -> int | None:
    """The update a comment was mirrored from, when the bot posted it."""
    match = _MARKER_RE.search(body)
    return int(match.group(1)) if match else None


def mirror_body(update_id: int, author: str, link: str, text: str) -> str:
    """The comment that carries a Zulip update to its tracking issue, attributed and linked.

    ``author`` is ``@handle`` when the owner's GitHub handle is known, else their name.
    """
    head = f"**Update from Zulip by {author}** ([message]({link}))"
    return f"{mirror_marker(update_id)}\n{head}\n\n{quiet_mentions(text)}"


def quiet_mentions(text: str) -> str:
    """``@handle`` and ``@org/team`` as GitHub shows them without notifying anyone: an update
    copied from Zulip must not ping people its author addressed in another place."""
    return outside_code(text, _GITHUB_MENTION, lambda m: f"{m.group(1)}@<!-- -->{m.group(2)}")


def boilerplate_reason(comment: Comment) -> str | None:
    """Why a comment is nobody's update or comment (a bot's, empty, the program's notice)."""
    if marked_update_id(comment.body) is not None:
        return "posted by this bot from Zulip"
    if comment.author_is_bot:
        return "written by a bot"
    if not comment.body.strip():
        return "empty"
    if any(pattern.search(comment.body) for pattern in BOILERPLATE_PATTERNS):
        return "the issue's notice, not an update"
    return None


class CommentKind(enum.StrEnum):
    """What a comment is to the goal: it decides the stored update's kind."""

    UPDATE = "update"  # by one of the goal's owners: a progress update
    COMMENT = "comment"  # by anyone else: shown with the goal's history, never counted


def comment_kind(comment: Comment, owners: frozenset[str]) -> CommentKind:
    return CommentKind.UPDATE if comment.author in owners else CommentKind.COMMENT


def update_kind(kind: CommentKind) -> UpdateKind:
    return UpdateKind.UPDATE if kind is CommentKind.UPDATE else UpdateKind.COMMENT


@dataclass(frozen=True, slots=True)
class Known:
    """A comment the database already holds as an update."""

    comment_id: int
    update_id: int
    updated_at: datetime | None  # the comment's ``updated_at`` when last stored
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class CommentPlan:
    """What one sync does with one issue's comments."""

    new: tuple[tuple[Comment, CommentKind], ...] = ()
    edited: tuple[tuple[Known, Comment], ...] = ()
    deleted: tuple[Known, ...] = ()
    skipped: tuple[tuple[Comment, str], ...] = ()
    # Deletions not applied because they looked like lost access (MASS_DELETION_MIN).
    withheld: tuple[Known, ...] = field(default=())

    @property
    def changes(self) -> int:
        return len(self.new) + len(self.edited) + len(self.deleted)


def plan_comments(
    fetched: Sequence[Comment],
    known: Iterable[Known],
    *,
    owners: frozenset[str],
    complete: bool,
    own_comment_ids: frozenset[int] = frozenset(),
) -> CommentPlan:
    """Compare the comments GitHub shows with the updates stored from them.

    ``complete`` says ``fetched`` is the issue's whole list as GitHub shows it now; only then can
    a stored comment that is missing be deleted (a ``since=`` answer lists changed ones only).
    """
    by_id = {k.comment_id: k for k in known}
    new: list[tuple[Comment, CommentKind]] = []
    edited: list[tuple[Known, Comment]] = []
    skipped: list[tuple[Comment, str]] = []
    seen: set[int] = set()
    for comment in fetched:
        if comment.id in seen:
            continue  # pages shift when comments arrive mid-listing
        seen.add(comment.id)
        stored = by_id.get(comment.id)
        if stored is not None:
            if (
                stored.deleted
                or stored.updated_at is None
                or comment.updated_at > stored.updated_at
            ):
                edited.append((stored, comment))
            continue
        if comment.id in own_comment_ids:
            skipped.append((comment, "posted by this bot from Zulip"))
            continue
        reason = boilerplate_reason(comment)
        if reason is not None:
            skipped.append((comment, reason))
            continue
        new.append((comment, comment_kind(comment, owners)))
    missing: tuple[Known, ...] = ()
    if complete:
        missing = tuple(k for k in by_id.values() if k.comment_id not in seen and not k.deleted)
    live = sum(1 for k in by_id.values() if not k.deleted)
    if len(missing) >= MASS_DELETION_MIN and 2 * len(missing) > live:
        return CommentPlan(tuple(new), tuple(edited), (), tuple(skipped), missing)
    return CommentPlan(tuple(new), tuple(edited), missing, tuple(skipped))
