"""The goals registry: import goal files into the database, and list what is there.

The import is a plan computed from plain data (``plan_import``: what to create, update and
retire, field by field) and a small imperative step that writes it (``apply_plan``).  Running
it twice changes nothing; a goal that leaves the source folder is retired, never deleted, so
its stored updates stay; and a goal keeps the Zulip topic it was given first, whatever later
happens to its title.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from .config import Config
from .db import Database
from .errors import ConfigError, GoalsBotError, ZulipError
from .goalfiles import GoalDoc, GoalStatus, Problem, RoadmapDoc, read_pages
from .importreport import FileNote, PeriodStatuses, RoadmapCounts, show_value
from .importreport import ImportReport as ImportReport
from .models import (
    BotState,
    Goal,
    GoalChampion,
    GoalOwner,
    GoalPastPeriod,
    GoalState,
    OwnerRole,
    Person,
    Roadmap,
)
from .outlook import Outlook, Reason, outlook, reason_groups
from .people import map_people, unmapped_owners
from .program import Program
from .queries import MANUAL_PERIOD, ChampionView, GoalView, load_champions, load_goals
from .rollover import continued_goal
from .topics import goal_topic

if TYPE_CHECKING:
    from .zulip_io import ZulipIO

# Column sizes of the goals table (models.Goal), so a long cell cannot fail the whole import.
_SLUG_MAX = 200
_STATUS_MAX = 40
_FLAGSHIP_MAX = 200
_PERIOD_MAX = 40
_HIGHLIGHT_MAX = 200
# bot_state key under which `--status` is remembered for one period (it applies to re-imports).
STATUSES_KEY = "prompted_statuses:{period}"


# ---------------------------------------------------------------------------------------------
# Plain data


@dataclass(frozen=True, slots=True)
class OwnerSpec:
    """One owner of a goal as the file names them: a lower-case GitHub handle and a role."""

    github: str
    role: OwnerRole

    def render(self) -> str:
        return f"@{self.github}" + (" (task)" if self.role is OwnerRole.TASK else "")


@dataclass(frozen=True, slots=True)
class ChampionSpec:
    """A champion row of a goal file: a GitHub handle (lower case) and its team ("" if none)."""

    team: str
    github: str

    def __str__(self) -> str:
        return f"@{self.github}" + (f" ({self.team})" if self.team else "")


@dataclass(frozen=True, slots=True)
class RoadmapSpec:
    """A Roadmap row: the roadmap's name and the slug of the page it links to ("" if none)."""

    name: str
    slug: str = ""

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class GoalFields:
    """Everything an import sets on a goal (the topic and the admin's settings are not here)."""

    slug: str
    title: str
    short_title: str | None
    status: str
    flagship: str | None
    tracking_issue: int | None
    tracking_url: str | None
    zulip_channel: str | None
    teams: tuple[str, ...]
    active: bool
    extra: tuple[tuple[str, str], ...]
    source_path: str | None
    owners: tuple[OwnerSpec, ...]
    highlight: str | None = None
    summary: str | None = None
    roadmaps: tuple[RoadmapSpec, ...] = ()
    champions: tuple[ChampionSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredGoal:
    """A goal as the database has it, in the same shape as what a file gives."""

    id: int
    period: str
    fields: GoalFields
    state: GoalState
    zulip_topic: str
    ended_in: str | None = None  # the period whose rollover ended it

    # What rollover.continued_goal looks at.
    @property
    def slug(self) -> str:
        return self.fields.slug

    @property
    def tracking_issue(self) -> int | None:
        return self.fields.tracking_issue

    @property
    def is_live(self) -> bool:
        """Still asked for updates (or only paused): a rollover ends it unless it continues."""
        return self.state in (GoalState.ACTIVE, GoalState.PAUSED)


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of one goal that an import changes, with both values shown for a person."""

    name: str
    old: str
    new: str

    def render(self) -> str:
        return f"{self.name}: {self.old} → {self.new}"


@dataclass(frozen=True, slots=True)
class GoalCreate:
    period: str
    fields: GoalFields
    topic: str


@dataclass(frozen=True, slots=True)
class GoalChange:
    goal_id: int
    period: str
    old_slug: str
    fields: GoalFields
    changes: tuple[FieldChange, ...]
    revive: bool  # it had been retired by an import and is back in the source
    moved_from: str | None = None  # the earlier period it continues from (rollover)

    @property
    def owners_changed(self) -> bool:
        return any(c.name == "owners" for c in self.changes)


@dataclass(frozen=True, slots=True)
class GoalRetire:
    goal_id: int
    period: str
    slug: str
    title: str


@dataclass(frozen=True, slots=True)
class GoalEnd:
    """A goal of an earlier period that the new period does not continue: it is completed."""

    goal_id: int
    period: str
    slug: str
    title: str


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """What importing one period's files does to the database."""

    period: str
    creates: tuple[GoalCreate, ...] = ()
    changes: tuple[GoalChange, ...] = ()
    unchanged: tuple[str, ...] = ()
    retires: tuple[GoalRetire, ...] = ()
    kept: tuple[str, ...] = ()  # missing, but their file has problems: not retired
    duplicates: tuple[str, ...] = ()  # files whose slug another file of the period already used
    ends: tuple[GoalEnd, ...] = ()  # earlier goals that end with this rollover
    moved_on: tuple[str, ...] = ()  # files of goals that continued into a later period

    @property
    def is_empty(self) -> bool:
        return not (self.creates or self.changes or self.retires or self.ends)

    @property
    def continued(self) -> tuple[GoalChange, ...]:
        return tuple(c for c in self.changes if c.moved_from is not None)


# ---------------------------------------------------------------------------------------------
# The functional core


def _squash(text: str) -> str:
    return " ".join(text.casefold().split())


def _plain_cell(text: str) -> str:
    """A metadata cell without HTML comments, emphasis marks or extra spaces."""
    text = re.sub(r"<!--.*?(?:-->|\Z)", " ", text, flags=re.S)
    text = text.replace("**", "").replace("__", "")
    return " ".join(text.split())


def status_name(doc: GoalDoc) -> str:
    """The status to store: the canonical spelling when known, else the file's own words."""
    if doc.status is not GoalStatus.OTHER:
        return str(doc.status.value)
    return (_plain_cell(doc.status_text) or GoalStatus.OTHER.value)[:_STATUS_MAX]


def is_prompted_status(doc: GoalDoc, active_statuses: Collection[str]) -> bool:
    """Whether a goal with this status is asked for updates (``active_statuses`` in bot.conf).

    Flagship goals whose Status says "Flagship" count as Accepted.
    """
    wanted = {_squash(s) for s in active_statuses}
    names = {_squash(_plain_cell(doc.status_text))}
    if doc.status is not GoalStatus.OTHER:
        names.add(_squash(doc.status.value))
    if doc.status is GoalStatus.FLAGSHIP:
        names.add(_squash(GoalStatus.ACCEPTED.value))
    return bool(names & wanted)


def owner_specs(doc: GoalDoc) -> tuple[OwnerSpec, ...]:
    """Points of contact in file order, then task owners; each handle once, lower case."""
    seen: set[str] = set()
    out: list[OwnerSpec] = []
    groups = ((doc.owners, OwnerRole.POINT_OF_CONTACT), (doc.task_owners, OwnerRole.TASK))
    for handles, role in groups:
        for handle in handles:
            key = handle.lower()
            if key not in seen:
                seen.add(key)
                out.append(OwnerSpec(key, role))
    return tuple(out)


def fields_from_doc(
    doc: GoalDoc, source_path: str | None, active_statuses: Collection[str]
) -> GoalFields:
    """What a parsed goal file says the goal's row should hold."""
    return GoalFields(
        slug=doc.slug[:_SLUG_MAX],
        title=doc.title,
        short_title=doc.short_title,
        status=status_name(doc),
        flagship=doc.flagship[:_FLAGSHIP_MAX] if doc.flagship is not None else None,
        tracking_issue=doc.tracking_issue,
        tracking_url=doc.tracking_url,
        zulip_channel=doc.zulip_channel,
        teams=tuple(t.lower() for t in doc.teams),
        active=is_prompted_status(doc, active_statuses),
        extra=tuple(sorted(doc.extra.items())),
        source_path=source_path,
        owners=owner_specs(doc),
        highlight=doc.highlight[:_HIGHLIGHT_MAX] if doc.highlight else None,
        summary=doc.summary,
        roadmaps=tuple(RoadmapSpec(r.name, r.slug or "") for r in doc.roadmaps),
        champions=tuple(ChampionSpec(c.team or "", c.github.lower()) for c in doc.champions),
    )


# The fields compared between a file and the database, in the order the report shows them.
_COMPARED = (
    "slug",
    "title",
    "short_title",
    "status",
    "active",
    "flagship",
    "tracking_issue",
    "tracking_url",
    "zulip_channel",
    "teams",
    "owners",
    "highlight",
    "summary",
    "roadmaps",
    "champions",
    "extra",
    "source_path",
)


def diff_fields(old: GoalFields, new: GoalFields) -> tuple[FieldChange, ...]:
    """The fields that differ, each with its old and new value written for a person."""
    changes: list[FieldChange] = []
    for name in _COMPARED:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            changes.append(FieldChange(name, show_value(before), show_value(after)))
    return tuple(changes)


def plan_import(
    existing: Sequence[StoredGoal],
    docs: Sequence[tuple[Path, GoalDoc]],
    period: str,
    active_statuses: Collection[str],
    *,
    taken_topics: Collection[str] = (),
    retire_missing: bool = True,
    keep_slugs: Collection[str] = (),
    earlier: Sequence[StoredGoal] = (),
    moved_on: Collection[str] = (),
) -> ImportPlan:
    """Decide what importing ``docs`` into ``period`` does; pure.

    ``existing`` are the period's stored goals, ``taken_topics`` every topic in use (all
    periods).  A goal is found by slug, else (a renamed file) by its tracking issue when the
    old slug is gone from the import.  With ``retire_missing`` (a whole folder was read), stored
    goals that are not in ``docs`` are retired, except ``keep_slugs`` (files that failed to
    parse: a broken file must not retire its goal).

    ``earlier`` (a rollover) are the goals of the periods this one follows: a new file that
    continues one of them moves it into this period, keeping its topic and history, and the live
    ones nobody continues end (``ImportPlan.ends``).  ``moved_on`` are slugs of this period's
    goals that have continued into a later period since: their files change nothing.
    """
    by_slug = {g.fields.slug: g for g in existing}
    by_issue: dict[int, list[StoredGoal]] = defaultdict(list)
    for g in sorted(existing, key=lambda g: g.id):
        if g.fields.tracking_issue is not None:
            by_issue[g.fields.tracking_issue].append(g)
    incoming = {doc.slug[:_SLUG_MAX] for _, doc in docs}
    taken = {t.lower() for t in taken_topics} | {g.zulip_topic.lower() for g in existing}
    matched: set[int] = set()
    seen: set[str] = set()
    creates: list[GoalCreate] = []
    changes: list[GoalChange] = []
    unchanged: list[str] = []
    duplicates: list[str] = []
    left: list[str] = []

    for path, doc in docs:
        fields = fields_from_doc(doc, str(path), active_statuses)
        if fields.slug in seen:
            duplicates.append(str(path))
            continue
        seen.add(fields.slug)
        stored = by_slug.get(fields.slug)
        if stored is None and fields.slug in moved_on:
            left.append(fields.slug)
            continue
        if stored is None and fields.tracking_issue is not None:
            stored = next(
                (
                    g
                    for g in by_issue.get(fields.tracking_issue, [])
                    if g.fields.slug not in incoming and g.id not in matched
                ),
                None,
            )
        moved_from: str | None = None
        if stored is None and earlier:
            found = continued_goal(doc, earlier, matched)
            stored = next((g for g in earlier if found is not None and g.id == found.id), None)
            moved_from = stored.period if stored is not None else None
        if stored is None:
            topic = goal_topic(fields.title, fields.short_title, fields.tracking_issue, taken)
            taken.add(topic.lower())
            creates.append(GoalCreate(period, fields, topic))
            continue
        matched.add(stored.id)
        diffs = list(diff_fields(stored.fields, fields))
        revive = stored.state is GoalState.RETIRED and not stored.fields.active
        if revive:
            diffs.insert(0, FieldChange("state", "retired", "active"))
        if moved_from is not None and stored.ended_in is not None:
            # It had ended with its period, and a later period takes it up again.
            revive = True
            diffs.insert(0, FieldChange("state", "ended", "active"))
        if moved_from is not None:
            diffs.insert(0, FieldChange("period", moved_from, period))
        if diffs:
            changes.append(
                GoalChange(
                    stored.id, period, stored.fields.slug, fields, tuple(diffs), revive, moved_from
                )
            )
        else:
            unchanged.append(fields.slug)

    retires: list[GoalRetire] = []
    kept: list[str] = []
    if retire_missing:
        for g in sorted(existing, key=lambda g: g.fields.slug):
            if g.id in matched:
                continue
            if g.state is GoalState.RETIRED and not g.fields.active:
                continue  # retired already
            if g.fields.slug in keep_slugs:
                kept.append(g.fields.slug)
                continue
            retires.append(GoalRetire(g.id, period, g.fields.slug, g.fields.title))
    ends = tuple(
        GoalEnd(g.id, g.period, g.fields.slug, g.fields.title)
        for g in sorted(earlier, key=lambda g: (g.period, g.fields.slug))
        if g.id not in matched and g.is_live
    )
    return ImportPlan(
        period=period,
        creates=tuple(creates),
        changes=tuple(changes),
        unchanged=tuple(unchanged),
        retires=tuple(retires),
        kept=tuple(kept),
        duplicates=tuple(duplicates),
        ends=ends,
        moved_on=tuple(left),
    )


# ---------------------------------------------------------------------------------------------
# The imperative shell: database


def load_period(session: Session, period: str) -> list[StoredGoal]:
    """The stored goals of one period with their owners and champions, in three statements."""
    return load_stored(session, Goal.period == period)


def load_earlier(session: Session, period: str) -> list[StoredGoal]:
    """Goals a rollover into ``period`` may continue or end: those imported into other periods
    (goals added by hand are left alone)."""
    return load_stored(
        session,
        (Goal.period != period) & (Goal.period != MANUAL_PERIOD) & Goal.source_path.is_not(None),
    )


def load_stored(session: Session, where: ColumnElement[bool]) -> list[StoredGoal]:
    """Stored goals matching ``where``, with owners and champions, in three statements."""
    goals = list(session.execute(select(Goal).where(where)).scalars())
    owners: dict[int, list[OwnerSpec]] = defaultdict(list)
    for goal_id, role, person_id, github in session.execute(
        select(GoalOwner.goal_id, GoalOwner.role, Person.id, Person.github)
        .join(Person, Person.id == GoalOwner.person_id)
        .join(Goal, Goal.id == GoalOwner.goal_id)
        .where(where)
        .order_by(GoalOwner.goal_id, GoalOwner.position)
    ):
        # An owner without a handle cannot come from a file: it shows as a difference.
        owners[goal_id].append(OwnerSpec(github or f"#person{person_id}", role))
    champions: dict[int, list[ChampionSpec]] = defaultdict(list)
    for goal_id, team, github in session.execute(
        select(GoalChampion.goal_id, GoalChampion.team, GoalChampion.github)
        .join(Goal, Goal.id == GoalChampion.goal_id)
        .where(where)
        .order_by(GoalChampion.goal_id, GoalChampion.position)
    ):
        champions[goal_id].append(ChampionSpec(team, github))
    return [
        StoredGoal(
            id=g.id,
            period=g.period,
            fields=GoalFields(
                slug=g.slug,
                title=g.title,
                short_title=g.short_title,
                status=g.status,
                flagship=g.flagship,
                tracking_issue=g.tracking_issue,
                tracking_url=g.tracking_url,
                zulip_channel=g.zulip_channel,
                teams=tuple(t for t in g.teams.split(",") if t),
                active=g.active,
                extra=tuple(sorted((str(k), str(v)) for k, v in (g.extra or {}).items())),
                source_path=g.source_path,
                owners=tuple(owners.get(g.id, ())),
                highlight=g.highlight,
                summary=g.summary,
                roadmaps=tuple(
                    RoadmapSpec(str(r.get("name", "")), str(r.get("slug") or ""))
                    for r in (g.roadmaps or [])
                ),
                champions=tuple(champions.get(g.id, ())),
            ),
            state=g.state,
            zulip_topic=g.zulip_topic,
            ended_in=g.ended_in,
        )
        for g in goals
    ]


def all_topics(session: Session) -> set[str]:
    return set(session.execute(select(Goal.zulip_topic)).scalars())


def _people_for(session: Session, handles: Collection[str], now: datetime) -> dict[str, int]:
    """Person ids for GitHub handles; github-only placeholders for the ones never seen."""
    if not handles:
        return {}
    found = {
        github: pid
        for pid, github in session.execute(
            select(Person.id, Person.github).where(Person.github.in_(sorted(handles)))
        )
        if github is not None
    }
    missing = [Person(github=h, created_at=now) for h in sorted(set(handles) - set(found))]
    if missing:
        session.add_all(missing)
        session.flush()
        found.update({p.github: p.id for p in missing if p.github is not None})
    return found


def _set_fields(goal: Goal, f: GoalFields) -> None:
    goal.slug = f.slug
    goal.title = f.title
    goal.short_title = f.short_title
    goal.status = f.status
    goal.flagship = f.flagship
    goal.tracking_issue = f.tracking_issue
    goal.tracking_url = f.tracking_url
    goal.zulip_channel = f.zulip_channel
    goal.teams = ",".join(f.teams)
    goal.active = f.active
    goal.extra = dict(f.extra)
    goal.source_path = f.source_path
    goal.highlight = f.highlight
    goal.summary = f.summary
    goal.roadmaps = [{"name": r.name, "slug": r.slug} for r in f.roadmaps] or None


def _champion_rows(goal_id: int, f: GoalFields) -> list[GoalChampion]:
    return [
        GoalChampion(goal_id=goal_id, team=c.team, github=c.github, position=i)
        for i, c in enumerate(f.champions)
    ]


def _owner_rows(goal_id: int, f: GoalFields, people: Mapping[str, int]) -> list[GoalOwner]:
    return [
        GoalOwner(goal_id=goal_id, person_id=people[o.github], role=o.role, position=i)
        for i, o in enumerate(f.owners)
    ]


def apply_plan(session: Session, plan: ImportPlan, now: datetime) -> dict[str, int]:
    """Write an ImportPlan; returns the ids of the goals it created, by slug.

    Goals that did not change are not written at all, and updates are never touched.
    """
    owner_changes = [c for c in plan.changes if c.owners_changed]
    handles = {o.github for c in plan.creates for o in c.fields.owners}
    handles |= {o.github for c in owner_changes for o in c.fields.owners}
    # Champions get a row too, so that mapping the handle to a Zulip account (people file,
    # `people import`, profiles) finds them before they ever talk to the bot.
    fields = [c.fields for c in plan.creates] + [c.fields for c in plan.changes]
    handles |= {ch.github for f in fields for ch in f.champions}
    people = _people_for(session, handles, now)

    created: dict[str, Goal] = {}
    for c in plan.creates:
        goal = Goal(
            period=c.period,
            zulip_topic=c.topic,
            state=GoalState.ACTIVE,
            created_at=now,
            updated_at=now,
        )
        _set_fields(goal, c.fields)
        session.add(goal)
        created[c.fields.slug] = goal
    if plan.changes:
        ids = [c.goal_id for c in plan.changes]
        goals = {g.id: g for g in session.execute(select(Goal).where(Goal.id.in_(ids))).scalars()}
        for change in plan.changes:
            goal = goals[change.goal_id]
            if change.moved_from is not None:
                # Remembered so that the old period's digest and export still show the goal, and
                # a re-import of the old folder finds it instead of creating it again.
                session.merge(GoalPastPeriod(goal_id=goal.id, period=goal.period, slug=goal.slug))
                goal.period = change.period
            _set_fields(goal, change.fields)
            if change.revive:
                goal.state = GoalState.ACTIVE
                goal.ended_in = None
            goal.updated_at = now
    session.flush()
    champion_changes = [c for c in plan.changes if any(d.name == "champions" for d in c.changes)]
    if champion_changes:
        session.execute(
            delete(GoalChampion).where(
                GoalChampion.goal_id.in_([c.goal_id for c in champion_changes])
            ),
            execution_options={"synchronize_session": False},
        )
    session.add_all(
        [r for c in plan.creates for r in _champion_rows(created[c.fields.slug].id, c.fields)]
        + [r for c in champion_changes for r in _champion_rows(c.goal_id, c.fields)]
    )
    if owner_changes:
        session.execute(
            delete(GoalOwner).where(GoalOwner.goal_id.in_([c.goal_id for c in owner_changes])),
            execution_options={"synchronize_session": "fetch"},
        )
    rows = [
        r for c in plan.creates for r in _owner_rows(created[c.fields.slug].id, c.fields, people)
    ]
    rows += [r for c in owner_changes for r in _owner_rows(c.goal_id, c.fields, people)]
    session.add_all(rows)
    if plan.retires:
        session.execute(
            update(Goal)
            .where(Goal.id.in_([r.goal_id for r in plan.retires]))
            .values(state=GoalState.RETIRED, active=False, updated_at=now),
            execution_options={"synchronize_session": False},
        )
    if plan.ends:
        session.execute(
            update(Goal)
            .where(Goal.id.in_([e.goal_id for e in plan.ends]))
            .values(state=GoalState.COMPLETED, ended_in=plan.period, updated_at=now),
            execution_options={"synchronize_session": False},
        )
    session.flush()
    return {slug: g.id for slug, g in created.items()}


# ---------------------------------------------------------------------------------------------
# Commands


@dataclass(frozen=True, slots=True)
class _Source:
    path: Path
    period: str
    whole_folder: bool
    docs: list[tuple[Path, GoalDoc]] = field(default_factory=list)
    roadmaps: list[tuple[Path, RoadmapDoc]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def period_of(path: Path, explicit: str | None) -> str:
    """The period a path imports into: ``--period``, else the folder's name."""
    if explicit is not None:
        name = explicit.strip()
    else:
        resolved = path.resolve()
        is_file = path.is_file() or (not path.exists() and path.suffix.lower() == ".md")
        name = resolved.parent.name if is_file else resolved.name
    if not name:
        raise GoalsBotError(f"cannot tell the period of {path}; pass --period, e.g. 2025h1")
    if len(name) > _PERIOD_MAX:
        raise GoalsBotError(
            f"period {name!r} is longer than {_PERIOD_MAX} characters; pass a shorter --period"
        )
    return name


def _read_sources(paths: Sequence[Path], period: str | None) -> list[_Source]:
    sources: list[_Source] = []
    for path in paths:
        pages = read_pages([path])
        sources.append(
            _Source(
                path, period_of(path, period), path.is_dir(), pages.goals, pages.roadmaps,
                pages.problems,
            )
        )  # fmt: skip
    return sources


class _DryRun(Exception):
    """Raised inside the write transaction so that a dry run rolls everything back."""


def parse_statuses(text: str) -> tuple[str, ...]:
    """``--status Accepted,Proposed``: the statuses, each once; an error for an empty list."""
    statuses = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not statuses:
        raise GoalsBotError(
            f"--status {text!r} names no status; expected a list like Accepted,Proposed"
        )
    return statuses


def prompted_statuses(
    session: Session, period: str, given: Sequence[str] | None, configured: Sequence[str]
) -> PeriodStatuses:
    """The statuses prompted in ``period``: ``--status`` (remembered for the next imports of the
    period), else what an earlier ``--status`` chose for it, else bot.conf's ``active_statuses``.
    """
    key = STATUSES_KEY.format(period=period)
    if given:
        return PeriodStatuses(period, tuple(given), "--status")
    row = session.get(BotState, key)
    if row is not None and row.value.strip():
        return PeriodStatuses(period, parse_statuses(row.value), "remembered")
    return PeriodStatuses(period, tuple(configured), "bot.conf")


def _remember_statuses(session: Session, chosen: PeriodStatuses, now: datetime) -> None:
    if chosen.source == "--status":
        key = STATUSES_KEY.format(period=chosen.period)
        session.merge(BotState(key=key, value=",".join(chosen.statuses), updated_at=now))


def import_roadmaps(
    session: Session, period: str, roadmaps: Sequence[tuple[Path, RoadmapDoc]], now: datetime
) -> RoadmapCounts:
    """Create or update the roadmap pages of a period (by slug); never deletes one."""
    if not roadmaps:
        return RoadmapCounts(period)
    stored = {
        r.slug: r
        for r in session.execute(select(Roadmap).where(Roadmap.period == period)).scalars()
    }
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    for path, doc in roadmaps:
        values = {
            "title": doc.title,
            "short_title": doc.short_title,
            "summary": doc.summary,
            "owners": ",".join(h.lower() for h in doc.owners),
            "source_path": str(path),
        }
        row = stored.get(doc.slug[:_SLUG_MAX])
        if row is None:
            row = Roadmap(period=period, slug=doc.slug[:_SLUG_MAX], created_at=now, updated_at=now,
                          **values)  # fmt: skip
            session.add(row)
            stored[row.slug] = row
            created.append(doc.slug)
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = now
            updated.append(doc.slug)
        else:
            unchanged.append(doc.slug)
    session.flush()
    return RoadmapCounts(period, tuple(created), tuple(updated), tuple(unchanged))


def import_goals(
    db: Database,
    paths: Sequence[Path],
    *,
    now: datetime,
    period: str | None = None,
    dry_run: bool = False,
    active_statuses: Collection[str] = ("Accepted",),
    statuses: Sequence[str] | None = None,
    rollover: bool = False,
    people_file: Path | None = None,
    members: Sequence[Mapping[str, Any]] | None = None,
    profile_fields: Sequence[Mapping[str, Any]] | None = None,
    profile_field_name: str = "GitHub",
    zulip_note: str | None = None,
    program: Program | None = None,
) -> ImportReport:
    """Import goal files and map their owners, in one transaction (rolled back on a dry run).

    ``statuses`` (``--status``) chooses the prompted statuses of the imported periods instead of
    ``active_statuses``; ``rollover`` makes the (one) imported period follow the earlier ones:
    goals continue or end (see ``rollover``).
    """
    sources = _read_sources(paths, period)
    problems: list[FileNote] = []
    skipped: list[FileNote] = []
    warnings: list[FileNote] = []
    unknown: list[FileNote] = []
    notes: list[str] = []
    by_period: dict[str, list[_Source]] = defaultdict(list)
    for s in sources:
        by_period[s.period].append(s)
    many = len(by_period) > 1
    if rollover and many:
        raise GoalsBotError(
            "--rollover imports one new period at a time; got "
            + ", ".join(by_period)
            + " (import the earlier ones first, without --rollover)"
        )

    def label(s: _Source, file: Path) -> str:
        """A file's name, with its period when several periods are imported at once."""
        return f"{s.period}/{file.name}" if many else file.name

    for s in sources:
        for p in s.problems:
            note = FileNote(label(s, Path(p.path)), p.detail)
            (skipped if p.is_skip else problems).append(note)
        pages: list[tuple[Path, GoalDoc | RoadmapDoc]] = [*s.docs, *s.roadmaps]
        for file, doc in pages:
            warnings += [FileNote(label(s, file), w) for w in doc.warnings]
            if doc.extra:
                keys = ", ".join(repr(k) for k in doc.extra)
                unknown.append(FileNote(label(s, file), keys))
        if s.whole_folder and not s.docs:
            notes.append(f"No goal files found in {s.path}; nothing was retired.")

    report: ImportReport | None = None
    try:
        with db.write() as session:
            plans: list[ImportPlan] = []
            chosen: list[PeriodStatuses] = []
            roadmaps: list[RoadmapCounts] = []
            for name, group in by_period.items():
                docs = [d for s in group for d in s.docs]
                broken = {Path(p.path).stem for s in group for p in s.problems if not p.is_skip}
                statuses_here = prompted_statuses(session, name, statuses, list(active_statuses))
                _remember_statuses(session, statuses_here, now)
                chosen.append(statuses_here)
                roadmaps.append(
                    import_roadmaps(session, name, [r for s in group for r in s.roadmaps], now)
                )
                plan = plan_import(
                    load_period(session, name),
                    docs,
                    name,
                    statuses_here.statuses,
                    taken_topics=all_topics(session),
                    retire_missing=any(s.whole_folder and s.docs for s in group),
                    keep_slugs=broken,
                    earlier=load_earlier(session, name) if rollover else (),
                    moved_on=set(
                        session.execute(
                            select(GoalPastPeriod.slug).where(GoalPastPeriod.period == name)
                        ).scalars()
                    ),
                )
                apply_plan(session, plan, now)
                plans.append(plan)
                problems += [
                    FileNote(
                        f"{name}/{Path(d).name}" if many else Path(d).name,
                        "another file of this period has the same name; not imported",
                    )
                    for d in plan.duplicates
                ]
            mapping = map_people(
                session,
                members=members,
                profile_fields=profile_fields,
                people_file=people_file,
                now=now,
                profile_field_name=profile_field_name,
            )
            ids = list(
                session.execute(select(Goal.id).where(Goal.period.in_(list(by_period)))).scalars()
            )
            outlooks = tuple(
                outlook(g, now, program or Program.default())
                for g in load_goals(session, goal_ids=ids, include_inactive=True)
            )
            command = "zulip-goals-bot goals import " + shlex.join(str(s.path) for s in sources)
            in_force = list(dict.fromkeys(st for c in chosen for st in c.statuses))
            report = ImportReport(
                plans=tuple(plans),
                sources=tuple((s.period, str(s.path)) for s in sources),
                problems=tuple(problems),
                skipped=tuple(skipped),
                warnings=tuple(warnings),
                unknown_rows=tuple(unknown),
                notes=tuple(notes),
                mapping=mapping,
                zulip_note=zulip_note,
                unmapped=tuple(unmapped_owners(session)),
                dry_run=dry_run,
                outlooks=outlooks,
                statuses=tuple(c for c in chosen if c.source != "bot.conf" or many),
                reasons=tuple(reason_groups(outlooks, in_force, command)),
                roadmaps=tuple(roadmaps),
                champions=session.execute(
                    select(func.count())
                    .select_from(GoalChampion)
                    .where(GoalChampion.goal_id.in_(ids))
                ).scalar_one()
                if ids
                else 0,
            )
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    assert report is not None
    return report


def open_zulip(config: Config) -> tuple[ZulipIO | None, str | None]:
    """A Zulip connection from the zuliprc, or None and a one-line reason there is none."""
    from .zulip_io import ZulipIO

    if not config.zuliprc.exists() and not os.environ.get("ZULIP_API_KEY"):
        return None, f"Zulip: no zuliprc at {config.zuliprc}"
    try:
        return ZulipIO(config.zuliprc), None
    except ConfigError as exc:
        return None, f"Zulip: cannot use the zuliprc ({exc})"
    except ZulipError as exc:
        return None, f"Zulip not reachable ({exc})"


def fetch_realm(
    config: Config, io: ZulipIO | None = None
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None, str | None]:
    """Zulip users and profile fields for mapping owners, or a one-line reason there are none."""
    fallback = "owners were mapped by the people file only"
    why: str | None = None
    if io is None:
        io, why = open_zulip(config)
    if io is None:
        return None, None, f"{why}; {fallback}."
    try:
        return io.users(), io.profile_fields(), None
    except ZulipError as exc:
        return None, None, f"Zulip not reachable ({exc}); {fallback}."


def post_closing_notes(config: Config, db: Database, io: ZulipIO | None) -> str | None:
    """Post the closing notes owed for ended goals, or say who will; None when none is owed."""
    from .clock import default_clock
    from .rollover import owed_closing_notes, send_closing_notes

    owed = owed_closing_notes(db)
    if not owed:
        return None
    later = f"the running bot posts the {len(owed)} closing note(s) on its next tick"
    if io is None:
        return f"No Zulip connection here: {later}."
    try:
        sent = send_closing_notes(db, io, config.stream, default_clock().now, owed)
    except ZulipError as exc:
        return f"Zulip not reachable ({exc}): {later}."
    return f"{sent} closing note(s) posted in #{config.stream}."


def import_command(
    config: Config,
    paths: list[Path],
    *,
    period: str | None,
    dry_run: bool,
    statuses: str | None = None,
    rollover: bool = False,
) -> int:
    """``zulip-goals-bot goals import``: print the report, return the exit code."""
    from .clock import default_clock

    chosen = parse_statuses(statuses) if statuses is not None else None
    io, why = open_zulip(config)
    members, fields, note = fetch_realm(config, io) if io is not None else (None, None, None)
    if io is None:
        note = f"{why}; owners were mapped by the people file only."
    elif members is None:
        io = None  # not reachable: do not try again for the closing notes
    db = Database(config.database_url)
    try:
        db.upgrade()
        report = import_goals(
            db,
            paths,
            now=default_clock().now(),
            period=period,
            dry_run=dry_run,
            active_statuses=config.active_statuses,
            statuses=chosen,
            rollover=rollover,
            people_file=config.people_file,
            members=members,
            profile_fields=fields,
            profile_field_name=config.github_profile_field,
            zulip_note=note,
            program=Program.from_config(config),
        )
        if not dry_run:
            report = replace(report, closing_note=post_closing_notes(config, db, io))
    finally:
        db.dispose()
    print(report.render())
    return report.exit_code


def _state_label(o: Outlook) -> str:
    g = o.goal
    if g.state is GoalState.ACTIVE and not g.active:
        return "inactive"
    if g.state is GoalState.COMPLETED and g.ended_in:
        return "ended"
    if g.state is GoalState.ACTIVE and o.reason is Reason.NO_OWNER:
        return "active, no owner"
    return g.state.value


def _owners_label(g: GoalView) -> str:
    names = [f"@{o.person.github}" if o.person.github else o.person.display
             for o in g.owners if o.role is not OwnerRole.TASK]  # fmt: skip
    tasks = sum(1 for o in g.owners if o.role is OwnerRole.TASK)
    return ", ".join(names) + (f" +{tasks} task" if tasks else "")


def goal_json(
    g: GoalView, o: Outlook | None = None, champions: Sequence[ChampionView] = ()
) -> dict[str, Any]:
    """One goal as ``goals list --json`` prints it."""
    return {
        "id": g.id,
        "period": g.period,
        "slug": g.slug,
        "title": g.title,
        "short_title": g.short_title,
        "status": g.status,
        "state": g.state.value,
        "active": g.active,
        "prompted": o.prompted if o is not None else None,
        "not_prompted_because": o.reason.value if o is not None and o.reason else None,
        "flagship": g.flagship,
        "highlight": g.highlight,
        "what_and_why": g.summary,
        "roadmaps": [r.name for r in g.roadmaps],
        "ended_in": g.ended_in,
        "tracking_issue": g.tracking_issue,
        "tracking_url": g.tracking_url,
        "topic": g.zulip_topic,
        "teams": list(g.teams),
        "owners": [
            {
                "github": o.person.github,
                "role": o.role.value,
                "zulip_user_id": o.person.zulip_user_id,
                "full_name": o.person.full_name,
            }
            for o in g.owners
        ],
        "champions": [
            {
                "github": c.github,
                "team": c.team,
                "role": c.role.value,
                "zulip_user_id": c.person.zulip_user_id if c.person else None,
            }
            for c in champions
        ],
    }


# Widest title and owners columns in `goals list`; the rest of a cell is cut with "…".
_TITLE_COLUMN = 40
_OWNERS_COLUMN = 32


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_goal_table(outlooks: Sequence[Outlook], *, prompted_column: bool = False) -> str:
    """The goals as aligned columns for a terminal (``prompted_column``: why not, per goal)."""
    header: tuple[str, ...] = ("period", "slug", "title", "state", "flagship", "owners", "topic")
    header += ("prompted",) if prompted_column else ()
    rows = [
        (
            o.goal.period,
            o.goal.slug,
            _cut(o.goal.title, _TITLE_COLUMN),
            _state_label(o),
            _cut(o.goal.flagship or "", 12),
            _cut(_owners_label(o.goal), _OWNERS_COLUMN),
            o.goal.zulip_topic,
            *((o.label(),) if prompted_column else ()),
        )
        for o in outlooks
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]  # fmt: skip
    return "\n".join(lines)


def list_command(config: Config, *, show_all: bool, as_json: bool) -> int:
    """``zulip-goals-bot goals list``: active goals (``--all``: every goal, and whether it is
    prompted), or JSON."""
    from .clock import default_clock

    now = default_clock().now()
    db = Database(config.database_url)
    try:
        db.upgrade()
        with db.read() as session:
            goals = load_goals(session, include_inactive=show_all)
            hidden = [] if goals or show_all else load_goals(session, include_inactive=True)
            champions = load_champions(session, [g.id for g in goals]) if as_json else {}
    finally:
        db.dispose()
    program = Program.from_config(config)
    outlooks = [outlook(g, now, program) for g in goals]
    if as_json:
        rows = [goal_json(o.goal, o, champions.get(o.goal.id, ())) for o in outlooks]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif hidden:
        reasons = reason_groups(
            [outlook(g, now, program) for g in hidden],
            config.active_statuses,
            "zulip-goals-bot goals import PATH",
        )
        print(f"No active goals: none of the {len(hidden)} imported goals is prompted.")
        print("\n".join(line for r in reasons for line in r.render()))
        print("`goals list --all` shows them all.")
    elif not goals:
        print(
            "No goals."
            if show_all
            else "No active goals. Import some with "
            "`zulip-goals-bot goals import PATH`, or use --all to see inactive ones."
        )
    else:
        print(render_goal_table(outlooks, prompted_column=show_all))
        prompted = sum(1 for o in outlooks if o.prompted)
        print(f"\n{len(goals)} goals" + ("" if show_all else " (--all shows inactive ones)"))
        print(f"{prompted} of them prompted" + ("" if show_all else " (--all says why not)"))
    return 0
