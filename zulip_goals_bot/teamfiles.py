"""The program's team records: a folder of per-person TOML files, as the Rust project keeps them.

Each file describes one person (``name``, ``github``, ``github-id``, ``zulip-id``, ``email``, and
keys the bot does not need).  They become people-file entries, linked by the same code as the
people file (``people.map_people``), so ``people import`` can be run again and again: it changes
only what changed and never creates a person twice.  ``people_file`` in bot.conf may name such
a folder too, and every goals import then maps new owners from it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from .errors import ConfigError
from .people import PeopleEntry, github_handle

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from .config import Config
    from .people import MappingReport

# A team repository keeps the files in people/; given the repository itself, look there.
PEOPLE_SUBFOLDER = "people"
# People without a zulip-id are listed by handle up to this many (goal people always).
SHOWN_WITHOUT_ZULIP = 30


@dataclass(frozen=True, slots=True)
class TeamPerson:
    """One person file: what the bot uses of it."""

    file: str
    github: str  # lower case
    name: str | None
    github_id: int | None
    zulip_id: int | None
    email: str | None


@dataclass(frozen=True, slots=True)
class TeamFolder:
    """Every readable person file of a folder, and the files that could not be read."""

    people: tuple[TeamPerson, ...] = ()
    problems: tuple[str, ...] = ()

    def entries(self) -> tuple[PeopleEntry, ...]:
        """People-file entries: a Zulip id when the file has one, else its email (which links
        the person only if it is their Zulip account's address)."""
        return tuple(
            PeopleEntry(p.github, p.zulip_id, p.email.lower() if p.email else None, 0)
            for p in self.people
            if p.zulip_id is not None or p.email
        )

    def without_zulip(self) -> tuple[TeamPerson, ...]:
        return tuple(p for p in self.people if p.zulip_id is None)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return None


def parse_person(text: str, name: str) -> TeamPerson:
    """One person file; ``name`` is the file's name (its stem is the handle when the file lacks
    a ``github`` key).  Raises ConfigError naming the file and what is wrong."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from exc
    raw = data.get("github", Path(name).stem)
    handle = github_handle(str(raw)) if isinstance(raw, str) else None
    if handle is None:
        raise ConfigError(f"{name}: 'github' must be a GitHub handle, found {raw!r}")
    zulip = data.get("zulip-id")
    zulip_id = _int(zulip)
    if zulip is not None and zulip_id is None:
        raise ConfigError(f"{name}: 'zulip-id' must be a Zulip user id (a number), found {zulip!r}")
    person_name = data.get("name")
    email = data.get("email")
    return TeamPerson(
        file=name,
        github=handle,
        name=" ".join(person_name.split()) or None if isinstance(person_name, str) else None,
        github_id=_int(data.get("github-id")),
        zulip_id=zulip_id,
        email=email.strip() or None if isinstance(email, str) and "@" in email else None,
    )


def read_team_folder(path: Path) -> TeamFolder:
    """Every ``*.toml`` of the folder (or of its ``people/`` subfolder); never raises per file.

    Two files naming the same handle are a problem; the first (by file name) is kept.
    """
    folder = path / PEOPLE_SUBFOLDER if (path / PEOPLE_SUBFOLDER).is_dir() else path
    if not folder.is_dir():
        raise ConfigError(f"{path}: not a folder of per-person .toml files")
    people: dict[str, TeamPerson] = {}
    problems: list[str] = []
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".toml" and p.is_file())
    if not files:
        raise ConfigError(f"{folder}: no per-person .toml files in this folder")
    for file in files:
        try:
            person = parse_person(file.read_text(encoding="utf-8-sig"), file.name)
        except (ConfigError, OSError, UnicodeDecodeError) as exc:
            problems.append(str(exc) if isinstance(exc, ConfigError) else f"{file.name}: {exc}")
            continue
        if person.github in people:
            problems.append(
                f"{file.name}: @{person.github} is also in {people[person.github].file}; "
                "the first one is used"
            )
            continue
        people[person.github] = person
    return TeamFolder(tuple(people.values()), tuple(problems))


# -- the command ------------------------------------------------------------------------------


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


class _DryRun(Exception):
    """Raised inside the write transaction so that a dry run rolls everything back."""


def _fill_names(session: Session, people: Iterable[TeamPerson]) -> int:
    """Give people the bot knows only by handle the name their record has (one statement)."""
    from .models import Person

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
    from .models import GoalChampion, GoalOwner, Person

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


def people_import_command(config: Config, path: Path, *, dry_run: bool = False) -> int:
    """``zulip-goals-bot people import PATH``: link handles from team records (or a people
    file) and the realm's profiles, exactly as a goals import does; print the report."""
    from .clock import default_clock
    from .db import Database
    from .people import load_people_file, map_people
    from .registry import fetch_realm

    folder = read_team_folder(path) if path.is_dir() else None
    if folder is None:
        load_people_file(path)  # a people file: fail early, before touching anything
    members, profile_fields, note = fetch_realm(config)
    now = default_clock().now()
    db = Database(config.database_url)
    report: PeopleImportReport | None = None
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
                raise _DryRun
    except _DryRun:
        pass
    finally:
        db.dispose()
    assert report is not None
    print(report.render())
    return report.exit_code
