"""Posting owners' Zulip updates to their goals' tracking issues (``[github] mirror = to-github``
or ``both``): each update becomes one comment, and the comment follows the update.

A reconciler rather than a queue: every run compares what each update should be on GitHub with
what its ``github_mirror`` row says is there, and takes one step at a time towards agreement. So
a crash, a restart, an outage or a retry costs nothing but a later run: the row is claimed in a
committed write before the comment is posted, and a claim whose answer was lost is settled by
looking for the comment's hidden marker before anything is posted again. Nothing is posted twice.

Two rules keep an issue's history where it is. A comment moves (or goes) when its update left
the goal: another goal still names the issue it is on. When the goal itself changes or loses
its issue (a goal continued into a new period with a new tracking issue, or none yet), or stops
running, its comments stay: they are the record of that period.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..db.engine import Database
from ..db.models import BotState, GitHubMirror, Goal, Person, Update, goal_is_listed
from ..domain.markdown import message_link, neutralize
from ..domain.states import ZULIP_SOURCES, MirrorState, UpdateKind, is_listed
from ..errors import GitHubAmbiguous, GitHubError, GoalsBotError
from .client import GitHubClient
from .issues import Comment, IssueRef, marked_update_id, mirror_body, parse_issue_ref
from .sync import MAX_PAGES, PER_PAGE, list_comments

__all__ = [
    "CLAIM_SETTLE",
    "MIRROR_SINCE_KEY",
    "Candidate",
    "MirrorReport",
    "Mirrored",
    "Planned",
    "Step",
    "body_hash",
    "comment_author",
    "load_candidates",
    "mirror",
    "next_step",
    "plan",
]

log = logging.getLogger(__name__)

# BotState: when the mirror first ran (ISO 8601). Updates sent before it are not back-posted, so
# switching the mirror on does not flood the tracking issues with a period's worth of comments.
MIRROR_SINCE_KEY = "github_mirror_since"
# A claim younger than this may be another run's post still in flight (the client's own retries
# of a POST that never connected take about two minutes): it is left alone, not looked at, so two
# processes never both conclude "not posted" and post it twice.
CLAIM_SETTLE = timedelta(minutes=5)
# Steps one update may take in one run (look, then move: delete and post): a bound, not a budget.
MAX_STEPS = 4
# The attribution when an update's author is not known at all (their person row was removed).
UNKNOWN_AUTHOR = "a goal owner"


class Step(enum.StrEnum):
    """What one update needs next to agree with GitHub."""

    NOTHING = "nothing"  # in step
    WAIT = "wait"  # claimed moments ago: another run may be posting it right now
    POST = "post"  # claim the target, then post the comment
    LOOK = "look"  # a claim whose answer was lost: find the comment by its marker first
    PATCH = "patch"  # the update was edited: the comment follows
    MOVE = "move"  # the update moved to another goal: delete the comment, post it there
    DELETE = "delete"  # the update was deleted or left its goal: the comment goes
    FORGET = "forget"  # claimed, never posted, and now not wanted: nothing to undo


@dataclass(frozen=True, slots=True)
class Mirrored:
    """What an update's ``github_mirror`` row says is on GitHub."""

    id: int
    ref: IssueRef  # the issue the comment is (or was claimed to be) on
    comment_id: int | None  # None: claimed, the answer never recorded
    state: MirrorState
    body_hash: str | None  # of the body GitHub holds
    claimed_at: datetime
    looked: bool = False  # this run listed ``ref``'s comments and the update's was not there


@dataclass(frozen=True, slots=True)
class Candidate:
    """An update as the mirror needs it: what its comment should be, and where."""

    update_id: int
    goal_id: int | None
    live: bool  # an owner's update written in Zulip, not deleted: it should have a comment
    target: IssueRef | None  # the issue its goal names now (None: none, or the goal is retired)
    body: str  # the comment it makes now
    row: Mirrored | None = None


@dataclass(frozen=True, slots=True)
class Planned:
    """One update's next step, as ``plan`` decided it."""

    candidate: Candidate
    step: Step

    def describe(self) -> str:
        """One line with ids only, for the dry run and the log (never the update's text)."""
        c, row = self.candidate, self.candidate.row
        update = f"update {c.update_id}"
        if row is None:
            return f"post {update} on {c.target}"
        comment = f"{update}'s comment {row.comment_id}" if row.comment_id else f"{update}"
        lines = {
            Step.WAIT: f"wait: {update} was claimed on {row.ref} moments ago",
            Step.POST: f"post {update} on {c.target}",
            Step.LOOK: f"look on {row.ref} for {update}'s comment before posting it",
            Step.PATCH: f"edit {comment} on {row.ref}",
            Step.MOVE: f"move {comment} from {row.ref} to {c.target}",
            Step.DELETE: f"delete {comment} on {row.ref}",
            Step.FORGET: f"forget the claim of {update} on {row.ref}: never posted, not wanted",
        }
        return lines.get(self.step, f"nothing for {update}")


def body_hash(body: str) -> str:
    """What ``github_mirror.body_hash`` holds: an edit shows as a different hash."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def comment_author(github: str | None, full_name: str | None) -> str:
    """``@handle`` links the owner on GitHub; a name is written so that it pings nobody."""
    if github:
        return f"@{github}"
    if full_name and full_name.strip():
        return neutralize(full_name.strip())
    return UNKNOWN_AUTHOR


def _needs_edit(row: Mirrored, body: str) -> bool:
    return row.state is MirrorState.STALE or row.body_hash != body_hash(body)


def next_step(c: Candidate, now: datetime, issue_goals: Mapping[IssueRef, frozenset[int]]) -> Step:
    """The one step that brings ``c`` closer to GitHub; ``issue_goals`` says which goals name
    each issue (an update whose comment is on an issue another goal names has left that goal)."""
    row = c.row
    wanted = c.target if c.live else None
    if row is None:
        return Step.POST if wanted is not None else Step.NOTHING
    if row.state is MirrorState.GONE:
        return Step.NOTHING  # removed (by us or on GitHub): never posted again
    if row.comment_id is None:  # claimed: posted or not, nobody knows yet
        if not row.looked:
            return Step.WAIT if now < row.claimed_at + CLAIM_SETTLE else Step.LOOK
        return Step.POST if wanted is not None else Step.FORGET
    if not c.live or row.state is MirrorState.DELETED:
        return Step.DELETE
    if c.target == row.ref:
        return Step.PATCH if _needs_edit(row, c.body) else Step.NOTHING
    if issue_goals.get(row.ref, frozenset()) - {c.goal_id}:
        return Step.MOVE if c.target is not None else Step.DELETE
    # Its own goal changed or lost its issue: the comment stays there as history, and still
    # follows edits of its update.
    return Step.PATCH if _needs_edit(row, c.body) else Step.NOTHING


def plan(
    candidates: Iterable[Candidate],
    now: datetime,
    issue_goals: Mapping[IssueRef, frozenset[int]],
) -> list[Planned]:
    """The updates that need a step, by update id (the dry run's list, the run's first steps)."""
    steps = [Planned(c, next_step(c, now, issue_goals)) for c in candidates]
    return sorted(
        (p for p in steps if p.step is not Step.NOTHING), key=lambda p: p.candidate.update_id
    )


# --- reading the database --------------------------------------------------------------------


def _since(db: Database, now: Callable[[], datetime], *, dry_run: bool) -> datetime:
    """MIRROR_SINCE_KEY, recorded on the first run (a dry run only pretends)."""
    with db.read() as session:
        stored = session.get(BotState, MIRROR_SINCE_KEY)
        value = stored.value if stored is not None else None
    if value is None:
        if dry_run:
            return now()
        with db.write() as session:
            stored = session.get(BotState, MIRROR_SINCE_KEY)
            if stored is None:  # no other process recorded it in the meantime
                when = now()
                session.add(BotState(key=MIRROR_SINCE_KEY, value=when.isoformat(), updated_at=when))
                log.info("github mirror: mirroring updates sent from %s on", when.isoformat())
                return when
            value = stored.value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise GoalsBotError(
            f"bot_state {MIRROR_SINCE_KEY} = {value!r} is not an ISO 8601 time: set it to when "
            "the mirror should start (e.g. 2026-07-01T00:00:00+00:00), or delete it."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _row_value(row: GitHubMirror) -> Mirrored | None:
    """The row as a value; None (left alone) for a state this version does not know."""
    try:
        state = MirrorState(row.state)
    except ValueError:
        log.warning("github mirror: row %d has unknown state %r: left alone", row.id, row.state)
        return None
    return Mirrored(
        row.id,
        IssueRef(row.repository, row.number),
        row.comment_id if state is not MirrorState.CLAIMED else None,
        state,
        row.body_hash,
        row.claimed_at,
    )


def load_candidates(
    session: Session, default_repository: str, *, site: str, since: datetime
) -> tuple[list[Candidate], dict[IssueRef, frozenset[int]]]:
    """Every update the mirror may act on, and which goals name each issue: three statements
    whatever the number of goals and updates.

    The updates are those sent since ``since`` with no mirror row yet (owners' updates from
    Zulip in a goal with a tracking issue), and every mirror row not yet GONE, whatever its
    update has become since (edited, deleted, moved, no longer an update).
    """
    targets: dict[int, IssueRef] = {}
    listed: set[int] = set()
    issue_goals: dict[IssueRef, set[int]] = defaultdict(set)
    for gid, number, url, active, state in session.execute(
        select(Goal.id, Goal.tracking_issue, Goal.tracking_url, Goal.active, Goal.state)
    ):
        ref = parse_issue_ref(number, url, default_repository)
        if ref is None:
            continue
        targets[gid] = ref
        issue_goals[ref].add(gid)
        if is_listed(active, state):
            listed.add(gid)

    def candidate(
        update_id: int,
        goal_id: int | None,
        live: bool,
        message_id: int | None,
        content: str,
        github: str | None,
        full_name: str | None,
        row: Mirrored | None,
    ) -> Candidate:
        body = ""
        if message_id is not None:
            link = message_link(site, message_id)
            body = mirror_body(update_id, comment_author(github, full_name), link, content)
        target = targets.get(goal_id) if goal_id is not None and goal_id in listed else None
        return Candidate(update_id, goal_id, live, target, body, row)

    out: list[Candidate] = []
    new = (
        select(
            Update.id,
            Update.goal_id,
            Update.zulip_message_id,
            Update.content,
            Person.github,
            Person.full_name,
        )
        .join(Goal, Goal.id == Update.goal_id)
        .outerjoin(GitHubMirror, GitHubMirror.update_id == Update.id)
        .outerjoin(Person, Person.id == Update.author_id)
        .where(
            GitHubMirror.id.is_(None),
            Update.kind == UpdateKind.UPDATE,
            Update.source.in_(sorted(ZULIP_SOURCES)),
            Update.zulip_message_id.is_not(None),
            Update.deleted.is_(False),
            Update.sent_at >= since,
            goal_is_listed(),
            or_(Goal.tracking_issue.is_not(None), Goal.tracking_url.is_not(None)),
        )
    )
    for uid, goal_id, message_id, content, github, full_name in session.execute(new):
        if goal_id in targets:
            out.append(candidate(uid, goal_id, True, message_id, content, github, full_name, None))
    rows = (
        select(GitHubMirror, Update, Person.github, Person.full_name)
        .join(Update, Update.id == GitHubMirror.update_id)
        .outerjoin(Person, Person.id == Update.author_id)
        .where(GitHubMirror.state != MirrorState.GONE.value)
    )
    for mirror_row, update, github, full_name in session.execute(rows):
        value = _row_value(mirror_row)
        if value is None:
            continue
        live = (
            update.goal_id is not None
            and update.kind is UpdateKind.UPDATE
            and update.source in ZULIP_SOURCES
            and not update.deleted
            and update.zulip_message_id is not None
        )
        out.append(
            candidate(
                update.id,
                update.goal_id,
                live,
                update.zulip_message_id,
                update.content,
                github,
                full_name,
                value,
            )
        )
    out.sort(key=lambda c: c.update_id)
    return out, {ref: frozenset(ids) for ref, ids in issue_goals.items()}


# --- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MirrorReport:
    """What one run did (or, in a dry run, would do) on GitHub."""

    posted: int = 0
    edited: int = 0
    moved: int = 0
    deleted: int = 0
    failed: int = 0  # steps GitHub refused: recorded on the row, tried again next run
    retry_at: datetime | None = None  # GitHub asked us to wait: the rest waits for next time
    adopted: int = 0  # comments a lost answer had posted, found by their marker and recorded
    vanished: int = 0  # comments someone removed on GitHub: nothing more is owed
    waiting: int = 0  # claims too recent to look at (see CLAIM_SETTLE)
    dry_run: bool = False
    steps: tuple[str, ...] = field(default=())  # what each update got, ids only

    @property
    def changes(self) -> int:
        return self.posted + self.edited + self.moved + self.deleted

    def lines(self, *, details: bool = False) -> list[str]:
        head = "Dry run, nothing sent or stored: would " if self.dry_run else ""
        counts = [
            f"{self.posted} posted",
            f"{self.edited} edited",
            f"{self.moved} moved",
            f"{self.deleted} deleted",
        ]
        counts += [
            f"{n} {label}"
            for n, label in (
                (self.adopted, "found after a lost answer"),
                (self.vanished, "removed on GitHub"),
                (self.waiting, "waiting for a recent claim to settle"),
                (self.failed, "failed"),
            )
            if n
        ]
        out = [f"{head}mirror to GitHub: " + ", ".join(counts)]
        if details or self.dry_run:
            out += [f"  {step}" for step in self.steps]
        if self.retry_at is not None:
            out.append(
                f"GitHub asked to wait until {self.retry_at:%Y-%m-%d %H:%M} UTC; rest later."
            )
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


class _Superseded(Exception):
    """The row changed under us (another run took a step first): leave it to the next run."""


@dataclass
class _Run:
    """One run's connections, counters, and the comment listings it has read."""

    db: Database
    client: GitHubClient
    now: Callable[[], datetime]
    issue_goals: Mapping[IssueRef, frozenset[int]]
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    steps: list[str] = field(default_factory=list)
    listings: dict[IssueRef, list[Comment]] = field(default_factory=dict)
    row: Mirrored | None = None  # the row of the update being reconciled, as it stands now

    def reconcile(self, c: Candidate) -> None:
        """Step ``c`` until it agrees with GitHub; GitHub's errors propagate to ``mirror``."""
        self.row = c.row
        for _ in range(MAX_STEPS):
            c = replace(c, row=self.row)
            step = next_step(c, self.now(), self.issue_goals)
            if step is Step.NOTHING:
                return
            self.steps.append(Planned(c, step).describe())
            if step is Step.WAIT:
                self.counts["waiting"] += 1
                return
            if step is Step.POST:
                self._post(c)
                self.counts["posted"] += 1
            elif step is Step.LOOK:
                self._look(c)
            elif step is Step.PATCH:
                self._patch(c)
            elif step is Step.MOVE:
                self._move(c)
                self.counts["moved"] += 1
            elif step is Step.DELETE:
                self._delete(c)
                self.counts["deleted"] += 1
            elif step is Step.FORGET:
                self._store(c.row, state=MirrorState.GONE, error=None)
        log.warning("github mirror: update %d did not settle in %d steps", c.update_id, MAX_STEPS)

    # --- the steps ---------------------------------------------------------------------------

    def _post(self, c: Candidate) -> None:
        """Claim (committed) before posting, so a lost answer is looked for, not posted again."""
        target = c.target
        assert target is not None  # next_step posts only what has a target
        claimed = self._claim(c, target)
        answer = self.client.post(target.comments_path, {"body": c.body})
        data = answer.data if isinstance(answer.data, dict) else {}
        comment_id = data.get("id")
        if not isinstance(comment_id, int):
            raise GitHubAmbiguous(
                f"GitHub's answer to POST {target.comments_path} has no comment id: the comment "
                "may exist, so the next run looks for it before posting."
            )
        self._store(
            claimed,
            state=MirrorState.POSTED,
            comment_id=comment_id,
            body_hash=body_hash(c.body),
            sent_at=self.now(),
            error=None,
        )
        log.info(
            "github mirror: posted update %d as comment %d on %s", c.update_id, comment_id, target
        )

    def _claim(self, c: Candidate, target: IssueRef) -> Mirrored:
        now = self.now()
        with self.db.write() as session:
            if c.row is None:
                if session.execute(
                    select(GitHubMirror.id).where(GitHubMirror.update_id == c.update_id)
                ).first():
                    raise _Superseded
                found = GitHubMirror(
                    update_id=c.update_id,
                    repository=target.repository,
                    number=target.number,
                    state=MirrorState.CLAIMED.value,
                    claimed_at=now,
                )
                session.add(found)
            else:
                found = self._locked(session, c.row)
                found.repository, found.number = target.repository, target.number
                found.comment_id = found.body_hash = found.sent_at = found.error = None
                found.state = MirrorState.CLAIMED.value
                found.claimed_at = now
            session.flush()
            row_id = found.id
        self.row = Mirrored(row_id, target, None, MirrorState.CLAIMED, None, now, looked=True)
        return self.row

    def _look(self, c: Candidate) -> None:
        """Settle a claim whose answer was lost: adopt the comment if GitHub has it."""
        row = c.row
        assert row is not None
        found = self._find(row.ref, c.update_id)
        if found is None:
            log.info("github mirror: update %d is not on %s: posting it", c.update_id, row.ref)
            self.row = replace(row, looked=True)
            return
        in_step = c.live and row.ref == c.target and found.body == c.body
        self._store(
            row,
            state=MirrorState.POSTED if in_step else MirrorState.STALE,
            comment_id=found.id,
            body_hash=body_hash(found.body),
            sent_at=found.created_at,
            error=None,
        )
        self.counts["adopted"] += 1
        log.info(
            "github mirror: found update %d's comment %d on %s after a lost answer",
            c.update_id,
            found.id,
            row.ref,
        )

    def _find(self, ref: IssueRef, update_id: int) -> Comment | None:
        listing = self.listings.get(ref)
        if listing is None:
            read = list_comments(self.client, ref)
            if read.cut:
                # "Not found" in a cut listing could post a second comment.
                raise GitHubError(
                    f"{ref} has more than {MAX_PAGES * PER_PAGE} comments: the mirror cannot "
                    "look through them for a comment whose answer was lost."
                )
            listing = read.comments or []
            self.listings[ref] = listing
        found = sorted(
            (c for c in listing if marked_update_id(c.body) == update_id), key=lambda c: c.id
        )
        if len(found) > 1:
            log.warning(
                "github mirror: update %d has %d comments on %s (%s): keeping %d",
                update_id,
                len(found),
                ref,
                ", ".join(str(c.id) for c in found),
                found[0].id,
            )
        return found[0] if found else None

    def _patch(self, c: Candidate) -> None:
        row = c.row
        assert row is not None and row.comment_id is not None
        path = f"/repos/{row.ref.repository}/issues/comments/{row.comment_id}"
        try:
            self.client.patch(path, {"body": c.body})
        except GitHubError as exc:
            if exc.status != 404 or not self._issue_visible(row.ref):
                raise
            self._store(row, state=MirrorState.GONE, error=None)
            self.counts["vanished"] += 1
            log.info(
                "github mirror: comment %d of update %d was removed on %s: not posting it again",
                row.comment_id,
                c.update_id,
                row.ref,
            )
            return
        self._store(row, state=MirrorState.POSTED, body_hash=body_hash(c.body), error=None)
        self.counts["edited"] += 1
        log.info(
            "github mirror: edited comment %d of update %d on %s",
            row.comment_id,
            c.update_id,
            row.ref,
        )

    def _remove(self, c: Candidate) -> None:
        """DELETE the row's comment; one already gone (404 on a visible issue) is done too."""
        row = c.row
        assert row is not None and row.comment_id is not None
        try:
            self.client.delete(f"/repos/{row.ref.repository}/issues/comments/{row.comment_id}")
        except GitHubError as exc:
            if exc.status != 404 or not self._issue_visible(row.ref):
                raise
        log.info(
            "github mirror: deleted comment %d of update %d on %s",
            row.comment_id,
            c.update_id,
            row.ref,
        )

    def _delete(self, c: Candidate) -> None:
        self._remove(c)
        self._store(c.row, state=MirrorState.GONE, error=None)

    def _move(self, c: Candidate) -> None:
        """Delete first: a crash before the new claim leaves a row the next run moves again
        (its DELETE then answers 404), never two comments."""
        self._remove(c)
        self._post(c)

    def _issue_visible(self, ref: IssueRef) -> bool:
        """A 404 for a comment means it is gone only if its issue can still be seen: a token
        that lost access answers 404 for everything, and nothing may be written off for that."""
        try:
            self.client.get(ref.api_path)
        except GitHubError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # --- the rows ----------------------------------------------------------------------------

    @staticmethod
    def _locked(session: Session, row: Mirrored) -> GitHubMirror:
        """The row inside a write, still as this run last saw it, else ``_Superseded``."""
        found = session.get(GitHubMirror, row.id)
        if found is None or (
            found.repository,
            found.number,
            found.state,
            found.comment_id if row.state is not MirrorState.CLAIMED else None,
            found.body_hash,
        ) != (row.ref.repository, row.ref.number, row.state.value, row.comment_id, row.body_hash):
            raise _Superseded
        return found

    def _store(
        self,
        row: Mirrored | None,
        *,
        state: MirrorState,
        comment_id: int | None = None,
        body_hash: str | None = None,
        sent_at: datetime | None = None,
        error: str | None,
    ) -> None:
        assert row is not None
        with self.db.write() as session:
            found = self._locked(session, row)
            found.state = state.value
            if comment_id is not None:
                found.comment_id = comment_id
            if body_hash is not None:
                found.body_hash = body_hash
            if sent_at is not None:
                found.sent_at = sent_at
            found.error = error
        self.row = replace(
            row,
            state=state,
            comment_id=comment_id if comment_id is not None else row.comment_id,
            body_hash=body_hash if body_hash is not None else row.body_hash,
        )

    def record_error(self, update_id: int, error: str) -> None:
        """Keep why the update's step failed on its row (a row it has, claimed or not)."""
        if self.row is None:
            return
        with self.db.write() as session:
            found = session.get(GitHubMirror, self.row.id)
            if found is not None:
                found.error = error


def mirror(
    db: Database,
    client: GitHubClient,
    repository: str,
    *,
    site: str,
    now: Callable[[], datetime],
    dry_run: bool = False,
) -> MirrorReport:
    """Bring every tracking issue in step with the owners' Zulip updates, one update at a time.

    A rate limit stops the run (``retry_at``); any other refusal is recorded on the update's
    row, counted ``failed``, and the run goes on; whatever is not done now a later run does,
    once. ``dry_run`` sends and stores nothing and reports each update's next step.
    """
    since = _since(db, now, dry_run=dry_run)
    with db.read() as session:
        candidates, issue_goals = load_candidates(session, repository, site=site, since=since)
    planned = plan(candidates, now(), issue_goals)
    if dry_run:
        return _dry_report(planned)
    run = _Run(db, client, now, issue_goals)
    retry_at: datetime | None = None
    for p in planned:
        try:
            run.reconcile(p.candidate)
        except _Superseded:
            log.info("github mirror: update %d changed under us: next run", p.candidate.update_id)
        except GitHubError as exc:
            if exc.retry_at is not None:
                retry_at = exc.retry_at
                log.warning("github mirror paused at update %d: %s", p.candidate.update_id, exc)
                break
            run.counts["failed"] += 1
            run.record_error(p.candidate.update_id, str(exc))
            log.warning("github mirror of update %d failed: %s", p.candidate.update_id, exc)
    k = run.counts
    return MirrorReport(
        posted=k["posted"],
        edited=k["edited"],
        moved=k["moved"],
        deleted=k["deleted"],
        failed=k["failed"],
        retry_at=retry_at,
        adopted=k["adopted"],
        vanished=k["vanished"],
        waiting=k["waiting"],
        steps=tuple(run.steps),
    )


def _dry_report(planned: Sequence[Planned]) -> MirrorReport:
    def count(*steps: Step) -> int:
        return sum(1 for p in planned if p.step in steps)

    return MirrorReport(
        posted=count(Step.POST),
        edited=count(Step.PATCH),
        moved=count(Step.MOVE),
        deleted=count(Step.DELETE),
        waiting=count(Step.WAIT),
        dry_run=True,
        steps=tuple(p.describe() for p in planned),
    )
