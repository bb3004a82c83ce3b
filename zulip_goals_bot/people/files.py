"""People files: GitHub handles and the Zulip accounts they belong to, as a program writes them.

A TOML ``[people]`` table (``handle = 12345`` or ``handle = "user@example.com"``, or per-person
tables with ``zulip-id``), a CSV file with a ``github,zulip`` header, or a folder of team records
(``people.teams``).  Parsing is pure and strict: a bad line is a ``ConfigError`` naming the file and
the line, so a typo never links the wrong person.
"""

from __future__ import annotations

import csv
import io
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from zulip_goals_bot.errors import ConfigError

# GitHub's rules: letters, digits, single inner hyphens, at most 39 characters.
_HANDLE_RE = re.compile(r"@?([A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})")
_GITHUB_URL_RE = re.compile(
    r"(?:https?://)?(?:www\.)?github\.com/([A-Za-z0-9-]{1,39})/?(?:[?#].*)?", re.I
)
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def github_handle(text: str) -> str | None:
    """The lower-case handle in ``handle``, ``@handle`` or a github.com profile URL, else None."""
    text = text.strip()
    m = _GITHUB_URL_RE.fullmatch(text)
    if m is not None:
        text = m.group(1)
    m = _HANDLE_RE.fullmatch(text)
    return m.group(1).lower() if m is not None else None


@dataclass(frozen=True, slots=True)
class PeopleEntry:
    """One line of the people file: a GitHub handle and the Zulip account it belongs to."""

    github: str  # lower case
    zulip_user_id: int | None
    email: str | None
    line: int

    @property
    def target(self) -> str:
        return str(self.zulip_user_id) if self.zulip_user_id is not None else str(self.email)


def _zulip_value(value: object) -> tuple[int | None, str | None] | None:
    """A Zulip id or email from a people-file value; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return (value, None) if value > 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() and int(text) > 0:
            return int(text), None
        if _EMAIL_RE.fullmatch(text):
            return None, text.lower()
    return None


# Keys of a per-person table, mirroring the Rust `team` repository's people files.
_ID_KEY = "zulip-id"
_EMAIL_KEY = "zulip-email"


def _toml_line(text: str, key: str) -> int:
    """The line where ``key`` is defined in the [people] table (0 when it cannot be found)."""
    k = re.escape(key)
    pattern = re.compile(
        rf"^[ \t]*(?:\[[ \t]*people[ \t]*\.[ \t]*)?(?:{k}|\"{k}\"|'{k}')[ \t]*(?:=|\])", re.M
    )
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m is not None else 0


def parse_people_toml(text: str, name: str) -> tuple[PeopleEntry, ...]:
    """Entries of a TOML people file; raises ConfigError naming the file and line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{name}: not valid TOML: {exc}") from exc
    for key in data:
        if key != "people":
            raise ConfigError(
                f"{name}, line {_top_line(text, key)}: unknown table or key {key!r}; "
                "expected only a [people] table"
            )
    people = data.get("people")
    if not isinstance(people, dict):
        raise ConfigError(
            f"{name}: no [people] table; expected lines like 'handle = 12345' or "
            "'handle = \"user@example.com\"' under [people]"
        )
    entries: list[PeopleEntry] = []
    seen: dict[str, int] = {}
    for key, value in people.items():
        line = _toml_line(text, key)
        where = f"{name}, line {line}" if line else f"{name}, [people] {key}"
        handle = github_handle(key)
        if handle is None or key.startswith("@"):
            raise ConfigError(f"{where}: {key!r} is not a GitHub handle")
        if handle in seen:
            raise ConfigError(f"{where}: @{handle} is listed twice (also line {seen[handle]})")
        seen[handle] = line
        if isinstance(value, dict):
            unknown = [k for k in value if "zulip" in k.lower() and k not in (_ID_KEY, _EMAIL_KEY)]
            if unknown:
                raise ConfigError(
                    f"{where}: unknown key {unknown[0]!r}; expected {_ID_KEY!r} or {_EMAIL_KEY!r}"
                )
            if _ID_KEY in value:
                parsed = _zulip_value(value[_ID_KEY])
                if parsed is None or parsed[0] is None:
                    raise ConfigError(f"{where}: {_ID_KEY} must be a Zulip user id (a number)")
            elif _EMAIL_KEY in value:
                parsed = _zulip_value(value[_EMAIL_KEY])
                if parsed is None or parsed[1] is None:
                    raise ConfigError(f"{where}: {_EMAIL_KEY} must be an email address")
            else:
                continue  # a person without a Zulip account: nothing to map
        else:
            parsed = _zulip_value(value)
            if parsed is None:
                raise ConfigError(
                    f"{where}: {value!r} is neither a Zulip user id (a number) nor an email"
                )
        entries.append(PeopleEntry(handle, parsed[0], parsed[1], line))
    return tuple(entries)


def _top_line(text: str, key: str) -> int:
    k = re.escape(key)
    m = re.search(rf"^[ \t]*\[?[ \t]*(?:{k}|\"{k}\")[ \t]*[\].=]", text, re.M)
    return text.count("\n", 0, m.start()) + 1 if m is not None else 1


def parse_people_csv(text: str, name: str) -> tuple[PeopleEntry, ...]:
    """Entries of a CSV people file with a ``github,zulip`` header; ConfigError on a bad line."""
    reader = csv.reader(io.StringIO(text))
    columns: tuple[int, int] | None = None
    entries: list[PeopleEntry] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            cells = [c.strip() for c in row]
            if not any(cells) or cells[0].startswith("#"):
                continue
            if columns is None:
                lowered = [c.lower() for c in cells]
                if "github" not in lowered or "zulip" not in lowered:
                    raise ConfigError(
                        f"{name}, line {line}: expected a header line 'github,zulip', "
                        f"found {','.join(cells)!r}"
                    )
                columns = (lowered.index("github"), lowered.index("zulip"))
                continue
            gh_cell = cells[columns[0]] if columns[0] < len(cells) else ""
            zu_cell = cells[columns[1]] if columns[1] < len(cells) else ""
            handle = github_handle(gh_cell)
            if handle is None:
                raise ConfigError(f"{name}, line {line}: {gh_cell!r} is not a GitHub handle")
            if handle in seen:
                raise ConfigError(
                    f"{name}, line {line}: @{handle} is listed twice (also line {seen[handle]})"
                )
            seen[handle] = line
            if not zu_cell:
                continue  # known to have no Zulip account
            parsed = _zulip_value(zu_cell)
            if parsed is None:
                raise ConfigError(
                    f"{name}, line {line}: {zu_cell!r} is neither a Zulip user id (a number) "
                    "nor an email"
                )
            entries.append(PeopleEntry(handle, parsed[0], parsed[1], line))
    except csv.Error as exc:
        raise ConfigError(f"{name}, line {reader.line_num}: not valid CSV ({exc})") from exc
    if columns is None:
        raise ConfigError(f"{name}: empty; expected a header line 'github,zulip' and rows")
    return tuple(entries)


def load_people_file(path: Path) -> tuple[PeopleEntry, ...]:
    """Read the people file named in bot.conf (``.toml`` or ``.csv``), or a folder of
    per-person TOML files as the Rust team repository keeps them (see ``people.teams``)."""
    if path.is_dir():
        from zulip_goals_bot.people.teams import read_team_folder

        return read_team_folder(path).entries()
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".csv"):
        raise ConfigError(f"{path}: people file must end in .toml or .csv")
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: people file not found; fix [goals] people_file in bot.conf"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the people file ({exc})") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {line}: not UTF-8 text") from exc
    if suffix == ".toml":
        return parse_people_toml(text, str(path))
    return parse_people_csv(text, str(path))
