"""Planning a goals import: what to create, update, retire and end, field by field; pure.

``plan_import`` compares what the goal files of one period say (``GoalFields``) with what the
database holds (``StoredGoal``) and returns an ``ImportPlan``; ``importstore`` loads the stored
goals and writes a plan, ``goals.importer`` runs the whole import.  Planning twice from the same
files gives an empty plan; a goal that leaves the source folder is retired, never deleted; and a
goal keeps the Zulip topic it was given first, whatever later happens to its title.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from zulip_goals_bot.domain.states import RUNNING_STATES, GoalState, OwnerRole
from zulip_goals_bot.domain.views import RoadmapRef
from zulip_goals_bot.errors import GoalsBotError
from zulip_goals_bot.goals.continuation import continued_goal
from zulip_goals_bot.goals.files import GoalDoc, GoalStatus
from zulip_goals_bot.goals.import_report import show_value
from zulip_goals_bot.goals.topics import goal_topic

# Column sizes of the goals table (models.Goal), so a long cell cannot fail the whole import.
SLUG_MAX = 200
_STATUS_MAX = 40
_FLAGSHIP_MAX = 200
PERIOD_MAX = 40
_HIGHLIGHT_MAX = 200

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
    roadmaps: tuple[RoadmapRef, ...] = ()
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
        return self.state in RUNNING_STATES


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
        slug=doc.slug[:SLUG_MAX],
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
        roadmaps=doc.roadmaps,
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
    incoming = {doc.slug[:SLUG_MAX] for _, doc in docs}
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


def parse_statuses(text: str) -> tuple[str, ...]:
    """``--status Accepted,Proposed``: the statuses, each once; an error for an empty list."""
    statuses = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    if not statuses:
        raise GoalsBotError(
            f"--status {text!r} names no status; expected a list like Accepted,Proposed"
        )
    return statuses
