"""``zulip-goals-bot people import PATH``: link handles from team records or a people file.

The records are read by ``people.teams`` (or ``people.files``) and linked by ``linking.map_people``,
exactly as a goals import links them; the report lists who was linked and who has no Zulip
account, the people owning or championing a goal first.  A dry run does the same work and rolls
it back explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from zulip_goals_bot.clock import SYSTEM_CLOCK, Clock
from zulip_goals_bot.db.models import GoalChampion, GoalOwner, Person
from zulip_goals_bot.people.files import load_people_file
from zulip_goals_bot.people.teams import TeamPerson, read_team_folder

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from zulip_goals_bot.config import Config
    from zulip_goals_bot.people.link_sources import MappingReport

# People without a zulip-id are listed by handle up to this many (goal people always).
SHOWN_WITHOUT_ZULIP = 30


@dataclass(frozen=True, slots=True)
class PeopleImportReport:
    """What ``people import`` did, for the terminal."""

    source: str
    people: int
    mapping: MappingReport
    problems: tuple[str, ...] = ()
    renamed: int = 0  # people not on Zulip whose name was filled in or updated
    without_zulip: tuple[TeamPerson, ...] = ()
    goal_people: frozenset[str] = field(default_factory=frozenset)  # handles owning/championing
    zulip_note: str | None = None
    dry_run: bool = False

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0

    def render(self) -> str:
        head = f"People import from {self.source}: {self.people} people"
        if self.dry_run:
            head += " (dry run: nothing was written; a real run would do this)"
        lines = [head, ""]
        if self.zulip_note:
            lines.append(self.zulip_note)
        lines.append(self.mapping.render())
        if self.renamed:
            names = "a person" if self.renamed == 1 else f"{self.renamed} people"
            lines.append(f"Names filled in for {names} not linked to Zulip.")
        if self.problems:
            lines += ["", "Files that could not be read (skipped):"]
            lines += [f"  {p}" for p in self.problems]
        if self.without_zulip:
            ordered = sorted(
                self.without_zulip, key=lambda p: (p.github not in self.goal_people, p.github)
            )
            lines += ["", f"People without a zulip-id ({len(ordered)}); the bot cannot reach them:"]
            for p in ordered[: max(SHOWN_WITHOUT_ZULIP, len(self.goal_people))]:
                note = "  (owns or champions a goal)" if p.github in self.goal_people else ""
                lines.append(f"  @{p.github}" + (f" ({p.name})" if p.name else "") + note)
            rest = len(ordered) - max(SHOWN_WITHOUT_ZULIP, len(self.goal_people))
            if rest > 0:
                lines.append(f"  … and {rest} more, none of them owning or championing a goal")
        return "\n".join(lines)


def _fill_names(session: Session, people: Iterable[TeamPerson]) -> int:
    """Give people the bot knows only by handle the name their record has (one statement)."""
    names = {p.github: p.name for p in people if p.name}
    if not names:
        return 0
    changed = 0
    for person in session.execute(
        select(Person).where(Person.github.in_(sorted(names)), Person.zulip_user_id.is_(None))
    ).scalars():
        wanted = names.get(person.github or "")
        if wanted and person.full_name != wanted:
            person.full_name = wanted
            changed += 1
    return changed


def _goal_handles(session: Session, handles: Sequence[str]) -> frozenset[str]:
    """Which of these handles own or champion a goal (two statements)."""
    if not handles:
        return frozenset()
    owners = session.execute(
        select(Person.github)
        .join(GoalOwner, GoalOwner.person_id == Person.id)
        .where(Person.github.in_(sorted(handles)))
    ).scalars()
    champions = session.execute(
        select(GoalChampion.github).where(GoalChampion.github.in_(sorted(handles)))
    ).scalars()
    return frozenset(h for h in [*owners, *champions] if h)


def people_import_command(
    config: Config, path: Path, *, dry_run: bool = False, clock: Clock = SYSTEM_CLOCK
) -> int:
    """``zulip-goals-bot people import PATH``: link handles from team records (or a people
    file) and the realm's profiles, exactly as a goals import does; print the report."""
    from zulip_goals_bot.db.engine import Database
    from zulip_goals_bot.people.linking import map_people
    from zulip_goals_bot.people.realm import fetch_realm

    folder = read_team_folder(path) if path.is_dir() else None
    if folder is None:
        load_people_file(path)  # a people file: fail early, before touching anything
    members, profile_fields, note = fetch_realm(config)
    now = clock.now()
    db = Database(config.database_url)
    try:
        db.upgrade()
        with db.write() as session:
            mapping = map_people(
                session,
                members=members,
                profile_fields=profile_fields,
                people_file=path,
                now=now,
                profile_field_name=config.github_profile_field,
            )
            people = folder.people if folder is not None else ()
            without = folder.without_zulip() if folder is not None else ()
            report = PeopleImportReport(
                source=str(path),
                people=len(people) if folder is not None else len(load_people_file(path)),
                mapping=mapping,
                problems=folder.problems if folder is not None else (),
                renamed=_fill_names(session, people),
                without_zulip=without,
                goal_people=_goal_handles(session, [p.github for p in without]),
                zulip_note=note,
                dry_run=dry_run,
            )
            if dry_run:
                session.rollback()  # the report is built; nothing of it is kept
    finally:
        db.dispose()
    print(report.render())
    return report.exit_code
