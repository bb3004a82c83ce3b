"""``zulip-goals-bot goals import``: read goal files, plan, write, and report, in one transaction.

The steps have a module each: ``goals.files`` reads the Markdown, ``goals.import_plan`` decides what
changes (pure), ``importstore`` loads and writes the database, ``linking`` maps the owners to
Zulip accounts, ``importreport`` says what happened.  A dry run does exactly the same work in the
same transaction and then rolls it back explicitly, so its report is the real one.
"""

from __future__ import annotations

import shlex
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zulip_goals_bot.clock import SYSTEM_CLOCK, Clock
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Goal
from zulip_goals_bot.db.queries import load_goals
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.errors import GoalsBotError, ZulipError
from zulip_goals_bot.goals.files import GoalDoc, Problem, RoadmapDoc, read_pages
from zulip_goals_bot.goals.import_plan import PERIOD_MAX, ImportPlan, parse_statuses, plan_import
from zulip_goals_bot.goals.import_report import (
    FileNote,
    ImportReport,
    PeriodStatuses,
    RoadmapCounts,
)
from zulip_goals_bot.goals.import_store import (
    all_topics,
    apply_plan,
    count_champions,
    import_roadmaps,
    load_earlier,
    load_period,
    moved_on,
    prompted_statuses,
    remember_statuses,
)
from zulip_goals_bot.goals.outlook import outlook, reason_groups
from zulip_goals_bot.people.accounts import unmapped_owners
from zulip_goals_bot.people.linking import map_people
from zulip_goals_bot.people.realm import fetch_realm, open_zulip

if TYPE_CHECKING:
    from zulip_goals_bot.bot.zulip_io import ZulipIO


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
    if len(name) > PERIOD_MAX:
        raise GoalsBotError(
            f"period {name!r} is longer than {PERIOD_MAX} characters; pass a shorter --period"
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


@dataclass(frozen=True, slots=True)
class _FileNotes:
    """What the report says about the files themselves, before anything is planned."""

    problems: tuple[FileNote, ...]
    skipped: tuple[FileNote, ...]
    warnings: tuple[FileNote, ...]
    unknown: tuple[FileNote, ...]
    notes: tuple[str, ...]


def _file_notes(sources: Sequence[_Source], many: bool) -> _FileNotes:
    """Problems, skipped pages, warnings and unknown rows of the files read; pure."""
    problems: list[FileNote] = []
    skipped: list[FileNote] = []
    warnings: list[FileNote] = []
    unknown: list[FileNote] = []
    notes: list[str] = []

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
    return _FileNotes(
        tuple(problems), tuple(skipped), tuple(warnings), tuple(unknown), tuple(notes)
    )


def _plan_period(
    session: Session,
    name: str,
    group: Sequence[_Source],
    statuses: Sequence[str],
    *,
    rollover: bool,
) -> ImportPlan:
    """Load what one period holds and plan importing its files into it."""
    return plan_import(
        load_period(session, name),
        [d for s in group for d in s.docs],
        name,
        statuses,
        taken_topics=all_topics(session),
        retire_missing=any(s.whole_folder and s.docs for s in group),
        # A file that failed to parse must not retire its goal.
        keep_slugs={Path(p.path).stem for s in group for p in s.problems if not p.is_skip},
        earlier=load_earlier(session, name) if rollover else (),
        moved_on=moved_on(session, name),
    )


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
    notes = _file_notes(sources, many)
    problems = list(notes.problems)

    with db.write() as session:
        plans: list[ImportPlan] = []
        chosen: list[PeriodStatuses] = []
        roadmaps: list[RoadmapCounts] = []
        for name, group in by_period.items():
            statuses_here = prompted_statuses(session, name, statuses, list(active_statuses))
            remember_statuses(session, statuses_here, now)
            chosen.append(statuses_here)
            roadmaps.append(
                import_roadmaps(session, name, [r for s in group for r in s.roadmaps], now)
            )
            plan = _plan_period(session, name, group, statuses_here.statuses, rollover=rollover)
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
            skipped=notes.skipped,
            warnings=notes.warnings,
            unknown_rows=notes.unknown,
            notes=notes.notes,
            mapping=mapping,
            zulip_note=zulip_note,
            unmapped=tuple(unmapped_owners(session)),
            dry_run=dry_run,
            outlooks=outlooks,
            statuses=tuple(c for c in chosen if c.source != "bot.conf" or many),
            reasons=tuple(reason_groups(outlooks, in_force, command)),
            roadmaps=tuple(roadmaps),
            champions=count_champions(session, ids),
        )
        if dry_run:
            session.rollback()  # the report is built; nothing of it is kept
    return report


def post_closing_notes(
    config: Config, db: Database, io: ZulipIO | None, clock: Clock = SYSTEM_CLOCK
) -> str | None:
    """Post the closing notes owed for ended goals, or say who will; None when none is owed."""
    from zulip_goals_bot.goals.rollover import owed_closing_notes, send_closing_notes

    owed = owed_closing_notes(db)
    if not owed:
        return None
    later = f"the running bot posts the {len(owed)} closing note(s) on its next tick"
    if io is None:
        return f"No Zulip connection here: {later}."
    try:
        sent = send_closing_notes(db, io, config.stream, clock.now, owed)
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
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """``zulip-goals-bot goals import``: print the report, return the exit code."""
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
            now=clock.now(),
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
            report = replace(report, closing_note=post_closing_notes(config, db, io, clock))
    finally:
        db.dispose()
    print(report.render())
    return report.exit_code
