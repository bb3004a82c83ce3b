"""The program's team records: a folder of per-person TOML files, as the Rust project keeps them.

Each file describes one person (``name``, ``github``, ``github-id``, ``zulip-id``, ``email``, and
keys the bot does not need).  They become people-file entries, linked by the same code as the
people file (``linking.map_people``), so ``people import`` (``peopleimport``) can be run again
and again: it changes only what changed and never creates a person twice.  ``people_file`` in
bot.conf may name such a folder too, and every goals import then maps new owners from it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from zulip_goals_bot.errors import ConfigError
from zulip_goals_bot.people.files import PeopleEntry, github_handle

# A team repository keeps the files in people/; given the repository itself, look there.
PEOPLE_SUBFOLDER = "people"


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
