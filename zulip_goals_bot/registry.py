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
import textwrap
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from .config import Config
from .db import Database
from .errors import ConfigError, GoalsBotError, ZulipError
from .goalfiles import GoalDoc, GoalStatus, Problem, read_goal_files
from .models import Goal, GoalOwner, GoalState, OwnerRole, Person
from .people import MappingReport, map_people, unmapped_owners
from .queries import GoalView, load_goals
from .topics import goal_topic

# Column sizes of the goals table (models.Goal), so a long cell cannot fail the whole import.
_SLUG_MAX = 200
_STATUS_MAX = 40
_FLAGSHIP_MAX = 200
_PERIOD_MAX = 40
# How much of a changed value the report shows; the file has the rest.
_SHOWN_VALUE = 50
# Width of the wrapped lists (owners, created goals) in the terminal report.
_REPORT_WIDTH = 96


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


@dataclass(frozen=True, slots=True)
class StoredGoal:
    """A goal as the database has it, in the same shape as what a file gives."""

    id: int
    period: str
    fields: GoalFields
    state: GoalState
    zulip_topic: str


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
class ImportPlan:
    """What importing one period's files does to the database."""

    period: str
    creates: tuple[GoalCreate, ...] = ()
    changes: tuple[GoalChange, ...] = ()
    unchanged: tuple[str, ...] = ()
    retires: tuple[GoalRetire, ...] = ()
    kept: tuple[str, ...] = ()  # missing, but their file has problems: not retired
    duplicates: tuple[str, ...] = ()  # files whose slug another file of the period already used

    @property
    def is_empty(self) -> bool:
        return not (self.creates or self.changes or self.retires)


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
    )


def _show(value: object) -> str:
    if value is None or value == ():
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple) and all(isinstance(v, OwnerSpec) for v in value):
        return ", ".join(v.render() for v in value)
    if isinstance(value, tuple) and all(isinstance(v, tuple) for v in value):
        return ", ".join(f"{k}={v!r}" for k, v in value)
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, int):
        return f"#{value}"
    text = str(value)
    if len(text) > _SHOWN_VALUE:
        text = text[: _SHOWN_VALUE - 1] + "…"
    return f'"{text}"'


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
    "extra",
    "source_path",
)


def diff_fields(old: GoalFields, new: GoalFields) -> tuple[FieldChange, ...]:
    """The fields that differ, each with its old and new value written for a person."""
    changes: list[FieldChange] = []
    for name in _COMPARED:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            changes.append(FieldChange(name, _show(before), _show(after)))
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
) -> ImportPlan:
    """Decide what importing ``docs`` into ``period`` does; pure.

    ``existing`` are the period's stored goals, ``taken_topics`` every topic in use (all
    periods).  A goal is found by slug, else (a renamed file) by its tracking issue when the
    old slug is gone from the import.  With ``retire_missing`` (a whole folder was read), stored
    goals that are not in ``docs`` are retired, except ``keep_slugs`` (files that failed to
    parse: a broken file must not retire its goal).
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

    for path, doc in docs:
        fields = fields_from_doc(doc, str(path), active_statuses)
        if fields.slug in seen:
            duplicates.append(str(path))
            continue
        seen.add(fields.slug)
        stored = by_slug.get(fields.slug)
        if stored is None and fields.tracking_issue is not None:
            stored = next(
                (
                    g
                    for g in by_issue.get(fields.tracking_issue, [])
                    if g.fields.slug not in incoming and g.id not in matched
                ),
                None,
            )
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
        if diffs:
            changes.append(
                GoalChange(stored.id, period, stored.fields.slug, fields, tuple(diffs), revive)
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
    return ImportPlan(
        period=period,
        creates=tuple(creates),
        changes=tuple(changes),
        unchanged=tuple(unchanged),
        retires=tuple(retires),
        kept=tuple(kept),
        duplicates=tuple(duplicates),
    )


# ---------------------------------------------------------------------------------------------
# The imperative shell: database


def load_period(session: Session, period: str) -> list[StoredGoal]:
    """The stored goals of one period with their owners, in two statements."""
    goals = list(session.execute(select(Goal).where(Goal.period == period)).scalars())
    owners: dict[int, list[OwnerSpec]] = defaultdict(list)
    for goal_id, role, person_id, github in session.execute(
        select(GoalOwner.goal_id, GoalOwner.role, Person.id, Person.github)
        .join(Person, Person.id == GoalOwner.person_id)
        .join(Goal, Goal.id == GoalOwner.goal_id)
        .where(Goal.period == period)
        .order_by(GoalOwner.goal_id, GoalOwner.position)
    ):
        # An owner without a handle cannot come from a file: it shows as a difference.
        owners[goal_id].append(OwnerSpec(github or f"#person{person_id}", role))
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
            ),
            state=g.state,
            zulip_topic=g.zulip_topic,
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
            _set_fields(goal, change.fields)
            if change.revive:
                goal.state = GoalState.ACTIVE
            goal.updated_at = now
    session.flush()
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
    session.flush()
    return {slug: g.id for slug, g in created.items()}


# ---------------------------------------------------------------------------------------------
# The report


@dataclass(frozen=True, slots=True)
class FileNote:
    """A file and what to say about it."""

    file: str
    text: str

    def render(self) -> str:
        return f"{self.file}: {self.text}"


@dataclass(frozen=True, slots=True)
class ImportReport:
    """Everything an import run has to tell the operator; ``render`` is for a terminal."""

    plans: tuple[ImportPlan, ...]
    sources: tuple[tuple[str, str], ...] = ()  # (period, path as given)
    problems: tuple[FileNote, ...] = ()
    skipped: tuple[FileNote, ...] = ()
    warnings: tuple[FileNote, ...] = ()
    unknown_rows: tuple[FileNote, ...] = ()
    notes: tuple[str, ...] = ()
    mapping: MappingReport | None = None
    zulip_note: str | None = None
    unmapped: tuple[str, ...] = ()
    dry_run: bool = False

    @property
    def created(self) -> int:
        return sum(len(p.creates) for p in self.plans)

    @property
    def updated(self) -> int:
        return sum(len(p.changes) for p in self.plans)

    @property
    def unchanged(self) -> int:
        return sum(len(p.unchanged) for p in self.plans)

    @property
    def retired(self) -> int:
        return sum(len(p.retires) for p in self.plans)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "retired": self.retired,
            "skipped": len(self.skipped),
            "problems": len(self.problems),
        }

    @property
    def exit_code(self) -> int:
        """0 when every goal file was read; 1 when some were reported as problems."""
        return 1 if self.problems else 0

    def render(self) -> str:
        periods = ", ".join(dict.fromkeys(p.period for p in self.plans)) or "no period"
        head = f"Goals import into {periods}"
        if self.dry_run:
            head += " (dry run: nothing was written; a real run would do this)"
        lines = [head, ""]
        counts = self.counts
        width = max(len(k) for k in counts)
        for key, n in counts.items():
            note = ""
            if key == "skipped" and n:
                note = "  (index pages)"
            lines.append(f"  {key:<{width}}  {n:>4}{note}")
        many = len({p.period for p in self.plans}) > 1

        def name(period: str, slug: str) -> str:
            return f"{period}/{slug}" if many else slug

        if self.problems:
            lines += ["", "Problems (these files were not imported):"]
            lines += [f"  {n.render()}" for n in self.problems]
        if self.skipped:
            lines += [
                "",
                "Skipped (index pages of the goals book, expected in a goals folder):",
                *_wrap(", ".join(n.file for n in self.skipped)),
            ]
        created = [name(c.period, c.fields.slug) for p in self.plans for c in p.creates]
        if created:
            lines += ["", "Created:", *_wrap(", ".join(created))]
        changed = [c for p in self.plans for c in p.changes]
        if changed:
            lines += ["", "Updated:"]
            for c in changed:
                lines.append(f"  {name(c.period, c.old_slug)}")
                lines += [f"    {d.render()}" for d in c.changes]
        retired = [r for p in self.plans for r in p.retires]
        if retired:
            lines += ["", "Retired (no longer in the source folder; kept with their updates):"]
            lines += [f"  {name(r.period, r.slug)}  {_show(r.title)}" for r in retired]
        kept = [name(p.period, s) for p in self.plans for s in p.kept]
        if kept:
            lines += ["", "Not retired because their file has problems:", *_wrap(", ".join(kept))]
        if self.warnings:
            lines += ["", "Warnings (imported anyway):"]
            lines += [f"  {n.render()}" for n in self.warnings]
        if self.unknown_rows:
            lines += ["", "Unrecognised metadata rows (kept with the goal, not used):"]
            lines += [f"  {n.render()}" for n in self.unknown_rows]
        if self.notes:
            lines += ["", *self.notes]
        if self.mapping is not None or self.zulip_note:
            lines.append("")
        if self.zulip_note:
            lines.append(self.zulip_note)
        if self.mapping is not None:
            lines.append(self.mapping.render())
        lines.append("")
        if self.unmapped:
            lines.append(
                f"Owners of active goals without a Zulip account ({len(self.unmapped)}); "
                "add them to the people file:"
            )
            lines += _wrap(", ".join(f"@{h}" for h in self.unmapped))
        else:
            lines.append("Every owner of an active goal has a Zulip account.")
        return "\n".join(lines)


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(
        text, _REPORT_WIDTH, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
    )


# ---------------------------------------------------------------------------------------------
# Commands


@dataclass(frozen=True, slots=True)
class _Source:
    path: Path
    period: str
    whole_folder: bool
    docs: list[tuple[Path, GoalDoc]] = field(default_factory=list)
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
        docs, problems = read_goal_files([path])
        sources.append(_Source(path, period_of(path, period), path.is_dir(), docs, problems))
    return sources


class _DryRun(Exception):
    """Raised inside the write transaction so that a dry run rolls everything back."""


def import_goals(
    db: Database,
    paths: Sequence[Path],
    *,
    now: datetime,
    period: str | None = None,
    dry_run: bool = False,
    active_statuses: Collection[str] = ("Accepted",),
    people_file: Path | None = None,
    members: Sequence[Mapping[str, Any]] | None = None,
    profile_fields: Sequence[Mapping[str, Any]] | None = None,
    profile_field_name: str = "GitHub",
    zulip_note: str | None = None,
) -> ImportReport:
    """Import goal files and map their owners, in one transaction (rolled back on a dry run)."""
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

    def label(s: _Source, file: Path) -> str:
        """A file's name, with its period when several periods are imported at once."""
        return f"{s.period}/{file.name}" if many else file.name

    for s in sources:
        for p in s.problems:
            note = FileNote(label(s, Path(p.path)), p.detail)
            (skipped if p.is_skip else problems).append(note)
        for file, doc in s.docs:
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
            for name, group in by_period.items():
                docs = [d for s in group for d in s.docs]
                broken = {Path(p.path).stem for s in group for p in s.problems if not p.is_skip}
                plan = plan_import(
                    load_period(session, name),
                    docs,
                    name,
                    active_statuses,
                    taken_topics=all_topics(session),
                    retire_missing=any(s.whole_folder and s.docs for s in group),
                    keep_slugs=broken,
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
            )
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    assert report is not None
    return report


def fetch_realm(
    config: Config,
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None, str | None]:
    """Zulip users and profile fields for mapping owners, or a one-line reason there are none."""
    from .zulip_io import ZulipIO

    fallback = "owners were mapped by the people file only"
    if not config.zuliprc.exists() and not os.environ.get("ZULIP_API_KEY"):
        return None, None, f"Zulip: no zuliprc at {config.zuliprc}; {fallback}."
    try:
        io = ZulipIO(config.zuliprc)
        return io.users(), io.profile_fields(), None
    except ConfigError as exc:
        return None, None, f"Zulip: cannot use the zuliprc ({exc}); {fallback}."
    except ZulipError as exc:
        return None, None, f"Zulip not reachable ({exc}); {fallback}."


def import_command(config: Config, paths: list[Path], *, period: str | None, dry_run: bool) -> int:
    """``zulip-goals-bot goals import``: print the report, return the exit code."""
    from .clock import default_clock

    members, fields, note = fetch_realm(config)
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
            people_file=config.people_file,
            members=members,
            profile_fields=fields,
            profile_field_name=config.github_profile_field,
            zulip_note=note,
        )
    finally:
        db.dispose()
    print(report.render())
    return report.exit_code


def _state_label(g: GoalView) -> str:
    if g.state is GoalState.ACTIVE and not g.active:
        return "inactive"
    return g.state.value


def _owners_label(g: GoalView) -> str:
    names = [f"@{o.person.github}" if o.person.github else o.person.display
             for o in g.owners if o.role is not OwnerRole.TASK]  # fmt: skip
    tasks = sum(1 for o in g.owners if o.role is OwnerRole.TASK)
    return ", ".join(names) + (f" +{tasks} task" if tasks else "")


def goal_json(g: GoalView) -> dict[str, Any]:
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
        "flagship": g.flagship,
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
    }


# Widest title and owners columns in `goals list`; the rest of a cell is cut with "…".
_TITLE_COLUMN = 40
_OWNERS_COLUMN = 32


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_goal_table(goals: Sequence[GoalView]) -> str:
    """The goals as aligned columns for a terminal."""
    header = ("period", "slug", "title", "state", "flagship", "owners", "topic")
    rows = [
        (
            g.period,
            g.slug,
            _cut(g.title, _TITLE_COLUMN),
            _state_label(g),
            _cut(g.flagship or "", 12),
            _cut(_owners_label(g), _OWNERS_COLUMN),
            g.zulip_topic,
        )
        for g in goals
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in [header, *rows]]  # fmt: skip
    return "\n".join(lines)


def list_command(config: Config, *, show_all: bool, as_json: bool) -> int:
    """``zulip-goals-bot goals list``: active goals (``--all``: every goal), or JSON."""
    db = Database(config.database_url)
    try:
        db.upgrade()
        with db.read() as session:
            goals = load_goals(session, include_inactive=show_all)
    finally:
        db.dispose()
    if as_json:
        print(json.dumps([goal_json(g) for g in goals], indent=2, ensure_ascii=False))
    elif not goals:
        print(
            "No goals."
            if show_all
            else "No active goals. Import some with "
            "`zulip-goals-bot goals import PATH`, or use --all to see inactive ones."
        )
    else:
        print(render_goal_table(goals))
        print(f"\n{len(goals)} goals" + ("" if show_all else " (--all shows inactive ones)"))
    return 0
