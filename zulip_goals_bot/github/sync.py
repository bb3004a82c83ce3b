"""Reading the tracking issues into the bot: fetch what changed, plan, store (one writer).

Per issue, an unchanged issue costs two conditional requests answered 304 (free of GitHub's
rate limit): the issue (its body is the task list, its ``comments`` count reveals deletions)
and its comments ``since`` the newest one seen. Only when the count disagrees with what the bot
knows is the whole comment list read, and only a whole list may delete (``issues.plan_comments``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..bot.replies import extract_help_wanted, extract_tldr
from ..db.engine import Database
from ..db.models import (
    GitHubIssue,
    GitHubMirror,
    GitHubProgress,
    Goal,
    GoalOwner,
    Person,
    Update,
    goal_is_running,
)
from ..domain.health import parse_health
from ..domain.progress import Progress
from ..domain.states import UpdateKind, UpdateSource
from ..errors import GitHubError
from .client import GitHubClient
from .issues import (
    Comment,
    CommentKind,
    CommentPlan,
    IssueRef,
    Known,
    parse_issue_ref,
    parse_task_list,
    plan_comments,
    update_kind,
)

log = logging.getLogger(__name__)

# GitHub's largest page: a 300-comment issue is read in three requests.
PER_PAGE = 100
# Goals stored per write transaction: a first sync of 1,000 issues commits 20 times, not 1,000,
# and one cut off midway keeps all but the last few.
STORE_BATCH = 50
# A listing longer than this many pages is cut (a runaway ``Link`` chain must not loop).
MAX_PAGES = 100


@dataclass(frozen=True, slots=True)
class Seen:
    """What the last sync stored of one tracking issue."""

    issue_etag: str | None = None
    since: datetime | None = None
    comments_etag: str | None = None
    comment_ids: frozenset[int] = frozenset()
    progress: Progress | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """A running goal with a tracking issue, and what the bot holds of it."""

    goal_id: int
    slug: str
    ref: IssueRef
    owners: frozenset[str]  # GitHub handles, lower case
    seen: Seen | None
    known: tuple[Known, ...] = ()
    own_comment_ids: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Fetched:
    """What GitHub showed of one issue in this sync (``comments`` empty when unchanged)."""

    target: Target
    title: str | None = None
    state: str | None = None
    issue_etag: str | None = None
    progress: Progress | None = None  # None: the issue answered 304, progress unchanged
    comments: tuple[Comment, ...] = ()
    complete: bool = False  # ``comments`` is the issue's whole list as GitHub shows it now
    since: datetime | None = None
    comments_etag: str | None = None
    comment_ids: frozenset[int] = frozenset()
    error: str | None = None

    @property
    def progress_changed(self) -> bool:
        """The task list differs from what the last sync stored (none stored: 0 of 0)."""
        seen = self.target.seen
        before = seen.progress if seen is not None and seen.progress is not None else Progress(0, 0)
        return self.progress is not None and self.progress != before


@dataclass(frozen=True, slots=True)
class IssueReport:
    """One goal's line of the sync's report."""

    slug: str
    ref: IssueRef
    plan: CommentPlan = field(default_factory=CommentPlan)
    progress: Progress | None = None
    progress_changed: bool = False
    error: str | None = None

    def __str__(self) -> str:
        if self.error:
            return f"{self.slug} ({self.ref}): not synced: {self.error}"
        p = self.plan
        parts = [f"{len(p.new)} new", f"{len(p.edited)} edited", f"{len(p.deleted)} deleted"]
        if p.skipped:
            parts.append(f"{len(p.skipped)} skipped")
        if p.withheld:
            parts.append(f"{len(p.withheld)} deletions withheld (lost access, not mass deletion?)")
        line = f"{self.slug} ({self.ref}): " + ", ".join(parts)
        if self.progress is not None and self.progress.total:
            line += f"; progress {self.progress}" + (" (changed)" if self.progress_changed else "")
        return line

    def details(self) -> list[str]:
        """The comments behind the counts, one line each, for ``--dry-run``."""
        out = [
            f"  new {kind.value}: {c.html_url or c.id} by @{c.author}" for c, kind in self.plan.new
        ]
        out += [f"  edited: {c.html_url or c.id}" for _k, c in self.plan.edited]
        out += [f"  deleted: comment {k.comment_id}" for k in self.plan.deleted]
        out += [f"  skipped ({why}): {c.html_url or c.id}" for c, why in self.plan.skipped]
        if self.progress is not None and self.progress.open_tasks:
            out += [f"  open task: {task}" for task in self.progress.open_tasks]
        return out


@dataclass(slots=True)
class SyncReport:
    """What one sync found and did, per goal, and what it cost."""

    issues: list[IssueReport] = field(default_factory=list)
    requests: int = 0
    not_modified: int = 0
    rate_remaining: int | None = None
    retry_at: datetime | None = None  # GitHub asked us to wait: the rest waits for next time
    stopped: str | None = None  # why the sync stopped before the last issue (rate limit, outage)
    dry_run: bool = False

    @property
    def changes(self) -> int:
        return sum(r.plan.changes for r in self.issues)

    def lines(self, *, details: bool = False) -> list[str]:
        head = "Dry run, nothing stored: " if self.dry_run else ""
        out = [
            f"{head}{len(self.issues)} tracking issues, {self.changes} changes; "
            f"{self.requests} requests ({self.not_modified} answered 304, not counted)"
            + (
                f", rate limit {self.rate_remaining} left"
                if self.rate_remaining is not None
                else ""
            )
        ]
        for report in self.issues:
            out.append(str(report))
            if details:
                out.extend(report.details())
        if self.retry_at is not None:
            out.append(
                f"GitHub asked to wait until {self.retry_at:%Y-%m-%d %H:%M} UTC; rest later."
            )
        elif self.stopped is not None:
            out.append(f"Stopped: {self.stopped}; the rest is read next time.")
        return out


def load_targets(
    session: Session, default_repository: str, *, slug: str | None = None
) -> list[Target]:
    """The running goals with a tracking issue, in five statements whatever their number."""
    query = select(Goal.id, Goal.slug, Goal.tracking_issue, Goal.tracking_url).where(
        goal_is_running()
    )
    if slug is not None:
        query = query.where(Goal.slug == slug)
    refs: dict[int, tuple[str, IssueRef]] = {}
    for goal_id, goal_slug, number, url in session.execute(query.order_by(Goal.slug)):
        ref = parse_issue_ref(number, url, default_repository)
        if ref is not None:
            refs[goal_id] = (goal_slug, ref)
    if not refs:
        return []
    ids = list(refs)
    owners: dict[int, set[str]] = defaultdict(set)
    for goal_id, handle in session.execute(
        select(GoalOwner.goal_id, Person.github)
        .join(Person, Person.id == GoalOwner.person_id)
        .where(GoalOwner.goal_id.in_(ids), Person.github.is_not(None))
    ):
        owners[goal_id].add(str(handle).lower())
    seen: dict[int, Seen] = {}
    for row in session.execute(select(GitHubIssue).where(GitHubIssue.goal_id.in_(ids))).scalars():
        if (row.repository, row.number) != (
            refs[row.goal_id][1].repository,
            refs[row.goal_id][1].number,
        ):
            continue  # the goal now names another issue: start afresh
        seen[row.goal_id] = Seen(
            issue_etag=row.issue_etag,
            since=row.since,
            comments_etag=row.comments_etag,
            comment_ids=frozenset(row.comment_ids or ()),
            progress=Progress(row.tasks_done, row.tasks_total, tuple(row.open_tasks or ())),
        )
    known: dict[int, list[Known]] = defaultdict(list)
    for uid, update_goal, comment_id, sent, edited, deleted in session.execute(
        select(
            Update.id,
            Update.goal_id,
            Update.github_comment_id,
            Update.sent_at,
            Update.edited_at,
            Update.deleted,
        ).where(Update.goal_id.in_(ids), Update.github_comment_id.is_not(None))
    ):
        if update_goal is not None and comment_id is not None:
            known[update_goal].append(Known(comment_id, uid, edited or sent, deleted))
    own: dict[int, set[int]] = defaultdict(set)
    for mirrored_goal, mirrored_id in session.execute(
        select(Update.goal_id, GitHubMirror.comment_id)
        .join(Update, Update.id == GitHubMirror.update_id)
        .where(Update.goal_id.in_(ids), GitHubMirror.comment_id.is_not(None))
    ):
        if mirrored_goal is not None and mirrored_id is not None:
            own[mirrored_goal].add(mirrored_id)
    return [
        Target(
            goal_id=goal_id,
            slug=goal_slug,
            ref=ref,
            owners=frozenset(owners.get(goal_id, ())),
            seen=seen.get(goal_id),
            known=tuple(known.get(goal_id, ())),
            own_comment_ids=frozenset(own.get(goal_id, ())),
        )
        for goal_id, (goal_slug, ref) in refs.items()
    ]


def _github_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Listing:
    """An issue's comments as one listing read them (``comments`` None: 304, unchanged)."""

    comments: list[Comment] | None
    etag: str | None  # the first page's, when the listing is one page (a later one's would not
    # describe it)
    cut: bool = False  # more than MAX_PAGES pages: the rest was not read


def list_comments(
    client: GitHubClient,
    ref: IssueRef,
    *,
    since: datetime | None = None,
    etag: str | None = None,
) -> Listing:
    """Every comment of an issue (changed ``since``), following the ``Link`` pages."""
    params: dict[str, str | int] = {"per_page": PER_PAGE}
    if since is not None:
        params["since"] = _github_time(since)
    answer = client.get(ref.comments_path, params, etag=etag)
    if answer.status == 304:
        return Listing(None, etag)
    first_etag = answer.etag if answer.next_url is None else None
    comments = [Comment.from_json(c) for c in answer.data or ()]
    pages = 1
    while answer.next_url is not None:
        if pages >= MAX_PAGES:
            return Listing(comments, None, cut=True)
        answer = client.get(answer.next_url)
        comments += [Comment.from_json(c) for c in answer.data or ()]
        pages += 1
    return Listing(comments, first_etag)


def fetch(client: GitHubClient, target: Target, *, since: datetime | None = None) -> Fetched:
    """Ask GitHub what changed on one issue; ``since`` (``--since``) lists from then instead.

    Raises GitHubError only for a rate limit (the sync stops there); any other failure is the
    issue's ``error`` and the sync goes on to the next goal.
    """
    seen = target.seen
    try:
        issue = client.get(target.ref.api_path, etag=seen.issue_etag if seen else None)
        out = Fetched(target, issue_etag=issue.etag)
        count: int | None = None
        if issue.status != 304:
            data: dict[str, Any] = issue.data
            body = data.get("body")
            out = replace(
                out,
                title=data.get("title"),
                state=data.get("state"),
                progress=parse_task_list(body if isinstance(body, str) else None),
            )
            count = int(data.get("comments") or 0)
        elif seen is not None:
            count = len(seen.comment_ids)
        if since is not None:
            comments = list_comments(client, target.ref, since=since).comments
            ids = (seen.comment_ids if seen else frozenset()) | {c.id for c in comments or ()}
            newest = max(
                [c.updated_at for c in comments or ()]
                + ([seen.since] if seen and seen.since else []),
                default=None,
            )
            # Not the whole list: forget the issue's ETag, so the next sync reads its comment
            # count, sees the comments before ``since`` it does not know, and reads them all.
            return replace(
                out,
                issue_etag=None,
                comments=tuple(comments or ()),
                since=newest,
                comment_ids=ids,
            )
        if seen is not None and seen.since is not None:
            changes = list_comments(client, target.ref, since=seen.since, etag=seen.comments_etag)
            listed, etag = changes.comments, changes.etag
            changed = listed or []
            ids = seen.comment_ids | {c.id for c in changed}
            if count is None or count == len(ids):
                newest = max([c.updated_at for c in changed] + [seen.since])
                return replace(
                    out,
                    comments=tuple(changed),
                    since=newest,
                    comments_etag=etag if newest == seen.since else None,
                    comment_ids=ids,
                )
        # First sync, or the count says something was deleted: read the whole list.
        whole = list_comments(client, target.ref)
        everything = whole.comments or []
        newest_seen = max((c.updated_at for c in everything), default=None)
        return replace(
            out,
            comments=tuple(everything),
            complete=not whole.cut,  # a cut listing must not delete what it did not reach
            since=newest_seen or (seen.since if seen else None),
            comments_etag=None,
            comment_ids=frozenset(c.id for c in everything),
        )
    except GitHubError as exc:
        if exc.retry_at is not None or exc.status == 0:
            raise  # rate-limited or unreachable: the other issues would fare no better
        return Fetched(target, error=str(exc))


def plan(fetched: Fetched) -> CommentPlan:
    t = fetched.target
    return plan_comments(
        fetched.comments,
        t.known,
        owners=t.owners,
        complete=fetched.complete,
        own_comment_ids=t.own_comment_ids,
    )


def _content_fields(comment: Comment, kind: UpdateKind) -> dict[str, Any]:
    is_update = kind is UpdateKind.UPDATE
    return {
        "content": comment.body,
        "tldr": extract_tldr(comment.body) if is_update else None,
        "help_wanted": extract_help_wanted(comment.body) if is_update else None,
        "health": parse_health(comment.body) if is_update else None,
        "edited_at": comment.updated_at if comment.updated_at > comment.created_at else None,
    }


def store(session: Session, fetched: Fetched, comment_plan: CommentPlan, now: datetime) -> None:
    """Apply one issue's plan and remember what was seen (the progress by day when it changed)."""
    t = fetched.target
    handles = {c.author for c, _kind in comment_plan.new}
    people: dict[str, int] = {}
    if handles:
        for handle, person_id in session.execute(
            select(Person.github, Person.id).where(Person.github.in_(sorted(handles)))
        ):
            people[str(handle)] = person_id
    new = [(c, kind) for c, kind in comment_plan.new]
    if new:
        # Another process may have stored some since targets were loaded: exactly once.
        stored = set(
            session.execute(
                select(Update.github_comment_id).where(
                    Update.github_comment_id.in_([c.id for c, _ in new])
                )
            ).scalars()
        )
        new = [(c, kind) for c, kind in new if c.id not in stored]
    for comment, kind in new:
        ukind = update_kind(kind)
        session.add(
            Update(
                github_comment_id=comment.id,
                url=comment.html_url or None,
                author_login=comment.author,
                author_id=people.get(comment.author),
                goal_id=t.goal_id,
                kind=ukind,
                source=UpdateSource.GITHUB,
                sent_at=comment.created_at,
                deleted=False,
                **_content_fields(comment, ukind),
            )
        )
    rows = (
        {
            u.id: u
            for u in session.execute(
                select(Update).where(
                    Update.id.in_(
                        [k.update_id for k, _c in comment_plan.edited]
                        + [k.update_id for k in comment_plan.deleted]
                    )
                )
            ).scalars()
        }
        if comment_plan.edited or comment_plan.deleted
        else {}
    )
    for known, comment in comment_plan.edited:
        row = rows.get(known.update_id)
        if row is None:
            continue
        for key, value in _content_fields(comment, row.kind).items():
            setattr(row, key, value)
        row.deleted = False
    for known in comment_plan.deleted:
        if (row := rows.get(known.update_id)) is not None:
            row.deleted = True
    issue = session.get(GitHubIssue, t.goal_id)
    if issue is None or (issue.repository, issue.number) != (t.ref.repository, t.ref.number):
        if issue is not None:
            session.delete(issue)
            session.flush()
        issue = GitHubIssue(goal_id=t.goal_id, repository=t.ref.repository, number=t.ref.number)
        session.add(issue)
    if fetched.progress is not None:
        p = fetched.progress
        issue.tasks_done, issue.tasks_total, issue.open_tasks = p.done, p.total, list(p.open_tasks)
        issue.title, issue.state = fetched.title, fetched.state
        if fetched.progress_changed or session.get(GitHubProgress, (t.goal_id, now.date())) is None:
            _record_progress(session, t.goal_id, now.date(), p)
    issue.issue_etag = fetched.issue_etag
    issue.since = fetched.since
    issue.comments_etag = fetched.comments_etag
    issue.comment_ids = sorted(fetched.comment_ids)
    issue.synced_at = now
    issue.error = None


def _unchanged(fetched: Fetched, comment_plan: CommentPlan) -> bool:
    """Nothing to store: both answers were 304 (or the listing brought nothing new) and the
    ETags, ``since`` and the comment ids are what the database holds already."""
    seen = fetched.target.seen
    return (
        seen is not None
        and fetched.progress is None
        and not comment_plan.changes
        and not comment_plan.withheld
        and fetched.issue_etag == seen.issue_etag
        and fetched.comments_etag == seen.comments_etag
        and fetched.since == seen.since
        and fetched.comment_ids == seen.comment_ids
    )


def _record_progress(session: Session, goal_id: int, day: date, p: Progress) -> None:
    row = session.get(GitHubProgress, (goal_id, day))
    if row is None:
        session.add(GitHubProgress(goal_id=goal_id, day=day, done=p.done, total=p.total))
    else:
        row.done, row.total = p.done, p.total


def _record_error(session: Session, target: Target, error: str, now: datetime) -> None:
    issue = session.get(GitHubIssue, target.goal_id)
    if issue is None:
        issue = GitHubIssue(
            goal_id=target.goal_id, repository=target.ref.repository, number=target.ref.number
        )
        session.add(issue)
    issue.error = error
    issue.synced_at = now


def sync(
    db: Database,
    client: GitHubClient,
    repository: str,
    *,
    now: Callable[[], datetime],
    slug: str | None = None,
    since: datetime | None = None,
    dry_run: bool = False,
) -> SyncReport:
    """Fetch → plan → store, goal by goal, stored STORE_BATCH goals to a transaction (so a sync
    cut off midway keeps what it stored, and GitHub still has the rest for next time)."""
    with db.read() as session:
        targets = load_targets(session, repository, slug=slug)
    report = SyncReport(dry_run=dry_run)
    sent_before, not_modified_before = client.requests_sent, client.not_modified
    untouched: list[int] = []  # goals whose issue nothing changed on
    pending: list[tuple[Fetched, CommentPlan]] = []
    failed: list[tuple[Target, str]] = []

    def flush() -> None:
        if dry_run or not (pending or failed):
            return
        with db.write() as session:
            at = now()
            for fetched, comment_plan in pending:
                store(session, fetched, comment_plan, at)
            for target, error in failed:
                _record_error(session, target, error, at)
        pending.clear()
        failed.clear()

    for target in targets:
        try:
            fetched = fetch(client, target, since=since)
        except GitHubError as exc:
            report.retry_at = exc.retry_at
            report.stopped = str(exc)
            log.warning("github sync stopped at %s: %s", target.ref, exc)
            break
        if fetched.error is not None:
            log.warning("github sync of %s (%s) failed: %s", target.slug, target.ref, fetched.error)
            report.issues.append(IssueReport(target.slug, target.ref, error=fetched.error))
            failed.append((target, fetched.error))
            continue
        comment_plan = plan(fetched)
        changed = fetched.progress_changed
        if _unchanged(fetched, comment_plan):
            untouched.append(target.goal_id)
        else:
            pending.append((fetched, comment_plan))
            if len(pending) >= STORE_BATCH:
                flush()
        progress = fetched.progress or (target.seen.progress if target.seen else None)
        report.issues.append(IssueReport(target.slug, target.ref, comment_plan, progress, changed))
        if comment_plan.changes or comment_plan.withheld:
            log.info(
                "github sync of %s (%s): %d new, %d edited, %d deleted, %d withheld",
                target.slug,
                target.ref,
                len(comment_plan.new),
                len(comment_plan.edited),
                len(comment_plan.deleted),
                len(comment_plan.withheld),
            )
    flush()
    if untouched and not dry_run:
        # Issues GitHub answered 304 for: one statement marks them all seen now.
        with db.write() as session:
            session.execute(
                update(GitHubIssue)
                .where(GitHubIssue.goal_id.in_(untouched))
                .values(synced_at=now(), error=None)
            )
    report.requests = client.requests_sent - sent_before
    report.not_modified = client.not_modified - not_modified_before
    limit = client.rate_limit
    report.rate_remaining = limit.remaining if limit is not None else None
    return report


__all__ = [
    "CommentKind",
    "Fetched",
    "IssueReport",
    "SyncReport",
    "Target",
    "fetch",
    "load_targets",
    "plan",
    "store",
    "sync",
]
