"""People: Zulip accounts the bot knows, and the GitHub handles goal files name them by."""

from __future__ import annotations

import csv
import enum
import io
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from .errors import ConfigError
from .models import Goal, GoalOwner, GoalState, OwnerRole, Person

# Zulip role values (GET /users "role"): 100 owner, 200 administrator.
ADMIN_ROLES = frozenset({100, 200})


@dataclass(frozen=True, slots=True)
class SenderInfo:
    """Who sent a message, as the message event tells it."""

    user_id: int
    email: str
    full_name: str
    is_realm_admin: bool = False


def ensure_people(
    session: Session, senders: Iterable[SenderInfo], now: datetime
) -> dict[int, Person]:
    """Person rows for these Zulip users, created on first sight; one SELECT for all of them."""
    wanted = {s.user_id: s for s in senders}
    if not wanted:
        return {}
    found = {
        p.zulip_user_id: p
        for p in session.execute(
            select(Person).where(Person.zulip_user_id.in_(list(wanted)))
        ).scalars()
        if p.zulip_user_id is not None
    }
    for uid, info in wanted.items():
        person = found.get(uid)
        if person is None:
            person = Person(
                zulip_user_id=uid,
                email=info.email,
                full_name=info.full_name,
                is_admin=info.is_realm_admin,
                created_at=now,
            )
            session.add(person)
            found[uid] = person
        elif info.full_name and person.full_name != info.full_name:
            person.full_name = info.full_name
    session.flush()
    return found


def sync_users(
    session: Session,
    members: Iterable[Mapping[str, Any]],
    now: datetime,
) -> dict[int, Person]:
    """Refresh name, email, timezone, role and active flag of every Zulip user we already know,
    and add the ones we do not; returns all of them by Zulip id."""
    by_id = {int(m["user_id"]): m for m in members}
    existing = {
        p.zulip_user_id: p
        for p in session.execute(select(Person).where(Person.zulip_user_id.is_not(None))).scalars()
        if p.zulip_user_id is not None
    }
    for uid, m in by_id.items():
        person = existing.get(uid)
        if person is None:
            person = Person(zulip_user_id=uid, created_at=now)
            session.add(person)
            existing[uid] = person
        person.email = str(m.get("email") or person.email or "")
        person.full_name = str(m.get("full_name") or person.full_name or "")
        person.timezone = str(m.get("timezone") or "") or None
        person.is_active = bool(m.get("is_active", True))
        person.is_bot = bool(m.get("is_bot", False))
        person.is_admin = int(m.get("role", 400)) in ADMIN_ROLES
    session.flush()
    return {uid: p for uid, p in existing.items() if uid in by_id}


# ---------------------------------------------------------------------------------------------
# GitHub handles -> Zulip users
#
# Goal files name owners by GitHub handle; prompts need Zulip accounts.  Links come from three
# sources, strongest first: the people file (and an admin's `map` command, which is the same
# authority), a Zulip custom profile field holding the handle, and self-service claims.  A
# weaker source never replaces a link made by a stronger one.


class MappedVia(enum.StrEnum):
    """Where a Person's GitHub handle link came from (``Person.mapped_via``)."""

    FILE = "file"
    ADMIN = "admin"
    PROFILE = "profile"
    CLAIM = "claim"

    @property
    def rank(self) -> int:
        return _RANK[self.value]

    @property
    def label(self) -> str:
        return _LABELS[self]


# Strength of each source; an unlinked row (mapped_via None) has rank 0.
_RANK = {"file": 3, "admin": 3, "profile": 2, "claim": 1}
_LABELS = {
    MappedVia.FILE: "people file",
    MappedVia.ADMIN: "admin",
    MappedVia.PROFILE: "Zulip profile",
    MappedVia.CLAIM: "claim",
}


def _rank(via: str | None) -> int:
    return _RANK.get(via or "", 0)


def _via_label(via: str | None) -> str:
    if via is None or via not in _RANK:
        return "an earlier import"
    return _LABELS[MappedVia(via)]


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
    per-person TOML files as the Rust team repository keeps them (see ``teamfiles``)."""
    if path.is_dir():
        from .teamfiles import read_team_folder

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


# --- the functional core of linking ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonRow:
    """The columns of a Person that linking looks at (new rows in a plan have negative ids)."""

    id: int
    zulip_user_id: int | None
    github: str | None
    mapped_via: str | None
    email: str | None = None
    full_name: str | None = None


@dataclass(frozen=True, slots=True)
class WantedLink:
    """A source says this GitHub handle belongs to this Zulip user."""

    github: str
    zulip_user_id: int
    via: MappedVia
    source: str  # where it was read, for messages: "people.toml line 3"


class LinkResult(enum.StrEnum):
    LINKED = "linked"
    ALREADY = "already linked"
    CONFLICT = "conflict"
    SKIPPED = "not needed"  # neither the handle nor the user is known to the bot


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    link: WantedLink
    result: LinkResult
    detail: str = ""

    def render(self, names: Mapping[int, str] | None = None) -> str:
        who = (names or {}).get(self.link.zulip_user_id) or f"Zulip user {self.link.zulip_user_id}"
        if self.result is LinkResult.CONFLICT:
            return f"@{self.link.github} → {who} ({self.link.source}): not linked, {self.detail}"
        return f"@{self.link.github} → {who} ({self.link.via.label})"


@dataclass(frozen=True, slots=True)
class LinkPlan:
    """What linking changes: final columns of touched rows, owner moves, deleted placeholders."""

    rows: tuple[PersonRow, ...]  # changed or new rows, in their final state
    moves: tuple[tuple[int, int], ...]  # goal ownerships of the first row go to the second
    deleted: tuple[int, ...]  # placeholder rows merged into the row with the Zulip id
    outcomes: tuple[LinkOutcome, ...]

    @property
    def is_empty(self) -> bool:
        return not (self.rows or self.moves or self.deleted)


@dataclass(slots=True)
class _Slot:
    id: int
    zulip_user_id: int | None
    github: str | None
    mapped_via: str | None
    email: str | None
    full_name: str | None


def _may_take(old_via: str | None, new: MappedVia) -> bool:
    """May ``new`` take a handle away from the user another source linked it to?

    Claims never take a handle somebody else holds; other sources need at least the same rank
    (so a corrected people file or profile wins over what it said before).
    """
    if new is MappedVia.CLAIM:
        return _rank(old_via) == 0
    return _rank(old_via) <= new.rank


def _may_relink(old_via: str | None, new: MappedVia) -> bool:
    """May ``new`` give a Zulip user a different handle than the one it has?"""
    return _rank(old_via) <= new.rank


def plan_links(
    people: Sequence[PersonRow], wanted: Sequence[WantedLink], *, create_missing: bool = False
) -> LinkPlan:
    """Apply ``wanted`` links, in order, to a copy of ``people``; pure.

    A handle held by a github-only placeholder row is merged into the row with the Zulip id.
    Links for which neither the handle nor the Zulip user has a row are skipped unless
    ``create_missing`` (a claim creates its row; a people file listing thousands of people
    should not).
    """
    slots = {p.id: _Slot(p.id, p.zulip_user_id, p.github, p.mapped_via, p.email, p.full_name)
             for p in people}  # fmt: skip
    by_github = {s.github: s for s in slots.values() if s.github}
    by_user = {s.zulip_user_id: s for s in slots.values() if s.zulip_user_id is not None}
    moves: list[tuple[int, int]] = []
    deleted: list[int] = []
    outcomes: list[LinkOutcome] = []
    next_id = -1

    def new_slot(zulip_user_id: int | None, github: str | None) -> _Slot:
        nonlocal next_id
        slot = _Slot(next_id, zulip_user_id, github, None, None, None)
        next_id -= 1
        slots[slot.id] = slot
        if github:
            by_github[github] = slot
        if zulip_user_id is not None:
            by_user[zulip_user_id] = slot
        return slot

    for w in wanted:
        held = by_github.get(w.github)
        user = by_user.get(w.zulip_user_id)
        if held is not None and held is user:
            if w.via.rank > _rank(held.mapped_via):
                held.mapped_via = w.via.value
            outcomes.append(LinkOutcome(w, LinkResult.ALREADY))
            continue
        if (
            held is not None
            and held.zulip_user_id is not None
            and not _may_take(held.mapped_via, w.via)
        ):
            why = f"@{w.github} is linked to Zulip user {held.zulip_user_id}"
            outcomes.append(
                LinkOutcome(w, LinkResult.CONFLICT, f"{why} by the {_via_label(held.mapped_via)}")
            )
            continue
        if user is not None and user.github is not None and not _may_relink(user.mapped_via, w.via):
            why = f"that Zulip user is linked to @{user.github}"
            outcomes.append(
                LinkOutcome(w, LinkResult.CONFLICT, f"{why} by the {_via_label(user.mapped_via)}")
            )
            continue
        if held is None and user is None:
            if not create_missing:
                outcomes.append(LinkOutcome(w, LinkResult.SKIPPED))
                continue
            user = new_slot(w.zulip_user_id, None)
        if user is None:
            assert held is not None
            if held.zulip_user_id is None:  # a placeholder simply learns its Zulip id
                held.zulip_user_id = w.zulip_user_id
                held.mapped_via = w.via.value
                by_user[w.zulip_user_id] = held
                outcomes.append(LinkOutcome(w, LinkResult.LINKED))
                continue
            user = new_slot(w.zulip_user_id, None)
        if user.github is not None:  # the user's old handle keeps its goals, on a placeholder
            old = new_slot(None, None)
            old.github = user.github
            by_github[user.github] = old
            moves.append((user.id, old.id))
            user.github = None
        if held is not None:
            moves.append((held.id, user.id))
            if held.zulip_user_id is None:
                deleted.append(held.id)
                del slots[held.id]
            held.github = None
            held.mapped_via = None
        user.github = w.github
        user.mapped_via = w.via.value
        by_github[w.github] = user
        outcomes.append(LinkOutcome(w, LinkResult.LINKED))

    before = {p.id: p for p in people}
    changed: list[PersonRow] = []
    for s in slots.values():
        row = PersonRow(s.id, s.zulip_user_id, s.github, s.mapped_via, s.email, s.full_name)
        if before.get(s.id) != row:
            changed.append(row)
    return LinkPlan(tuple(changed), tuple(moves), tuple(deleted), tuple(outcomes))


@dataclass(frozen=True, slots=True)
class LinkChoice:
    """The links worth trying, after picking one source per handle and one handle per user."""

    wanted: tuple[WantedLink, ...]
    conflicts: tuple[str, ...]
    unresolved: tuple[str, ...]
    notes: tuple[str, ...]
    profile_field_id: str | None = None  # the realm's field holding handles, when found


def _profile_value(raw: object) -> str:
    if isinstance(raw, Mapping):
        return str(raw.get("value") or "")
    return str(raw or "")


def choose_links(
    people: Sequence[PersonRow],
    *,
    entries: Sequence[PeopleEntry] = (),
    source_name: str = "people file",
    members: Sequence[Mapping[str, Any]] | None = None,
    profile_fields: Sequence[Mapping[str, Any]] | None = None,
    profile_field_name: str = "GitHub",
) -> LinkChoice:
    """Turn the people file and the realm's profiles into links; pure.

    Only handles and users the bot has a row for are considered, so a people file copied from a
    large organisation maps the goal owners without filling the database with everyone.
    """
    known_handles = {p.github for p in people if p.github}
    known_users = {p.zulip_user_id for p in people if p.zulip_user_id is not None}
    member_ids = {int(m["user_id"]) for m in members or ()}
    by_email: dict[str, int] = {}
    for p in people:
        if p.email and p.zulip_user_id is not None:
            by_email.setdefault(p.email.lower(), p.zulip_user_id)
    for m in members or ():
        for key in ("delivery_email", "email"):
            if m.get(key):
                by_email[str(m[key]).lower()] = int(m["user_id"])
    names = {int(m["user_id"]): str(m.get("full_name") or "") for m in members or ()}

    candidates: list[WantedLink] = []
    unresolved: list[str] = []
    notes: list[str] = []
    field_id: str | None = None
    for e in entries:
        where = f"{source_name} line {e.line}" if e.line else source_name
        uid = e.zulip_user_id
        if uid is None:
            uid = by_email.get(str(e.email))
            if uid is None:
                if e.github in known_handles:
                    unresolved.append(f"@{e.github} ({where}): no Zulip user with email {e.email}")
                continue
        elif members is not None and uid not in member_ids:
            if e.github in known_handles:
                unresolved.append(f"@{e.github} ({where}): no Zulip user with id {uid}")
            continue
        candidates.append(WantedLink(e.github, uid, MappedVia.FILE, where))

    if profile_fields is not None and members is not None:
        wanted_name = profile_field_name.strip().casefold()
        field_ids = [
            str(f["id"]) for f in profile_fields if str(f.get("name", "")).casefold() == wanted_name
        ]
        if not field_ids:
            notes.append(f"the realm has no {profile_field_name!r} profile field")
        else:
            field_id = field_ids[0]
            for m in members:
                if m.get("is_bot"):
                    continue
                data = m.get("profile_data") or {}
                raw = data.get(field_id, data.get(int(field_id)))
                value = _profile_value(raw).strip()
                if not value:
                    continue
                handle = github_handle(value)
                uid = int(m["user_id"])
                if handle is None:
                    if uid in known_users:
                        notes.append(
                            f"{names.get(uid) or uid}: profile field {profile_field_name!r} "
                            f"holds {value!r}, not a GitHub handle"
                        )
                    continue
                where = f"Zulip profile of {names.get(uid) or uid}"
                candidates.append(WantedLink(handle, uid, MappedVia.PROFILE, where))

    relevant = [
        c for c in candidates if c.github in known_handles or c.zulip_user_id in known_users
    ]
    conflicts: list[str] = []
    by_handle: dict[str, list[WantedLink]] = {}
    for c in relevant:
        by_handle.setdefault(c.github, []).append(c)
    per_handle: list[WantedLink] = []
    for handle, options in by_handle.items():
        best = max(o.via.rank for o in options)
        top = [o for o in options if o.via.rank == best]
        if len({o.zulip_user_id for o in top}) > 1:
            conflicts.append(
                f"@{handle} is claimed by several Zulip users ("
                + ", ".join(o.source for o in top)
                + "); not linked"
            )
            continue
        per_handle.append(top[0])
    by_user: dict[int, list[WantedLink]] = {}
    for c in per_handle:
        by_user.setdefault(c.zulip_user_id, []).append(c)
    chosen: list[WantedLink] = []
    for uid, options in by_user.items():
        ordered = sorted(options, key=lambda o: -o.via.rank)  # stable: source order on ties
        chosen.append(ordered[0])
        for other in ordered[1:]:
            conflicts.append(
                f"@{other.github} ({other.source}) and @{ordered[0].github} "
                f"({ordered[0].source}) name the same Zulip user {names.get(uid) or uid}; "
                f"a Zulip account has one GitHub handle, kept @{ordered[0].github}"
            )
    order = {id(c): i for i, c in enumerate(candidates)}
    chosen.sort(key=lambda c: order[id(c)])
    return LinkChoice(tuple(chosen), tuple(conflicts), tuple(unresolved), tuple(notes), field_id)


# --- the imperative shell ----------------------------------------------------------------------


# Which role survives when two ownerships of one goal land on the same person.
_ROLE_STRENGTH = {OwnerRole.POINT_OF_CONTACT: 0, OwnerRole.OWNER: 1, OwnerRole.TASK: 2}


def _fill_from_member(person: Person, m: Mapping[str, Any]) -> None:
    """Copy what Zulip says about a user onto a row that has just learnt its Zulip id."""
    person.email = str(m.get("email") or person.email or "") or None
    person.full_name = str(m.get("full_name") or person.full_name or "") or None
    person.timezone = str(m.get("timezone") or "") or person.timezone
    person.is_active = bool(m.get("is_active", True))
    person.is_bot = bool(m.get("is_bot", False))
    person.is_admin = int(m.get("role", 400)) in ADMIN_ROLES


def apply_links(
    session: Session,
    plan: LinkPlan,
    persons: Mapping[int, Person],
    now: datetime,
    members: Mapping[int, Mapping[str, Any]] | None = None,
) -> None:
    """Write a LinkPlan; ``persons`` holds the loaded rows of every existing id in the plan.

    Steps are flushed in an order that keeps the UNIQUE columns valid at every statement:
    handles are first cleared, then ownerships move, placeholders go, and handles are set last.
    """
    if plan.is_empty:
        return
    final = {r.id: r for r in plan.rows}
    for row in plan.rows:
        person = persons.get(row.id)
        if person is not None and person.github is not None and person.github != row.github:
            person.github = None
    for pid in plan.deleted:
        if pid in persons:
            persons[pid].github = None
    session.flush()

    ids: dict[int, int] = {pid: pid for pid in persons}
    created: dict[int, Person] = {}
    for row in plan.rows:
        if row.id < 0:
            person = Person(zulip_user_id=row.zulip_user_id, created_at=now)
            session.add(person)
            created[row.id] = person
    session.flush()
    ids.update({key: p.id for key, p in created.items()})

    if plan.moves:
        involved = {ids[k] for move in plan.moves for k in move if k in ids}
        loaded = session.execute(
            select(
                GoalOwner.goal_id, GoalOwner.person_id, GoalOwner.role, GoalOwner.position
            ).where(GoalOwner.person_id.in_(sorted(involved)))
        ).all()
        real_to_key = {real: key for key, real in ids.items()}
        rows: dict[tuple[int, int], tuple[OwnerRole, int]] = {
            (g, real_to_key.get(p, p)): (role, pos) for g, p, role, pos in loaded
        }
        for src, dst in plan.moves:
            for (goal_id, key), value in sorted(rows.items()):
                if key != src:
                    continue
                del rows[(goal_id, key)]
                other = rows.get((goal_id, dst))
                if other is None or _ROLE_STRENGTH[value[0]] < _ROLE_STRENGTH[other[0]]:
                    rows[(goal_id, dst)] = value
        result = {(g, ids[k]): v for (g, k), v in rows.items()}
        before = {(g, p): (role, pos) for g, p, role, pos in loaded}
        if result != before:
            session.execute(
                delete(GoalOwner).where(GoalOwner.person_id.in_(sorted(involved))),
                execution_options={"synchronize_session": "fetch"},
            )
            session.add_all(
                GoalOwner(goal_id=g, person_id=p, role=role, position=pos)
                for (g, p), (role, pos) in sorted(result.items())
            )
            session.flush()

    for pid in plan.deleted:
        if pid in persons:
            session.delete(persons[pid])
    session.flush()

    for key, row in final.items():
        person = created.get(key) or persons.get(key)
        if person is None:
            continue
        gained_id = row.zulip_user_id is not None and person.zulip_user_id != row.zulip_user_id
        if key < 0 or gained_id:
            person.zulip_user_id = row.zulip_user_id
            member = (members or {}).get(row.zulip_user_id or 0)
            if member is not None:
                _fill_from_member(person, member)
        if person.github != row.github:
            person.github = row.github
        if person.mapped_via != row.mapped_via:
            person.mapped_via = row.mapped_via
    for outcome in plan.outcomes:
        if outcome.result is LinkResult.LINKED and outcome.link.via is MappedVia.CLAIM:
            for key, row in final.items():
                if row.github == outcome.link.github:
                    target = created.get(key) or persons.get(key)
                    if target is not None:
                        target.claimed_at = now
    session.flush()


def _row(p: Person) -> PersonRow:
    return PersonRow(p.id, p.zulip_user_id, p.github, p.mapped_via, p.email, p.full_name)


@dataclass(frozen=True, slots=True)
class MappingReport:
    """What map_people did, for the import report."""

    outcomes: tuple[LinkOutcome, ...] = ()
    conflicts: tuple[str, ...] = ()
    unresolved: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    names: tuple[tuple[int, str], ...] = ()  # Zulip id -> full name, for rendering
    sources: tuple[str, ...] = ()  # what was read: "people.toml", "Zulip profile field 'GitHub'"

    def _with(self, result: LinkResult) -> list[LinkOutcome]:
        return [o for o in self.outcomes if o.result is result]

    @property
    def linked(self) -> list[LinkOutcome]:
        return self._with(LinkResult.LINKED)

    @property
    def all_conflicts(self) -> list[str]:
        names = dict(self.names)
        return [*self.conflicts, *(o.render(names) for o in self._with(LinkResult.CONFLICT))]

    def render(self) -> str:
        names = dict(self.names)
        linked = self.linked
        already = len(self._with(LinkResult.ALREADY))
        by_via: dict[str, int] = {}
        for o in linked:
            by_via[o.link.via.label] = by_via.get(o.link.via.label, 0) + 1
        how = ", ".join(f"{label} {n}" for label, n in by_via.items())
        if not self.sources:
            lines = [
                "People: no people file ([goals] people_file in bot.conf) and no Zulip profile "
                "field to read; owners were not mapped."
            ]
        else:
            lines = [
                f"People (from {' and '.join(self.sources)}): {len(linked)} newly linked to "
                f"Zulip users{f' ({how})' if how else ''}, {already} already linked."
            ]
        lines += [f"  {o.render(names)}" for o in linked]
        conflicts = self.all_conflicts
        if conflicts:
            lines.append("Mapping conflicts (nothing changed for these):")
            lines += [f"  {c}" for c in conflicts]
        if self.unresolved:
            lines.append("People file entries that match no Zulip user:")
            lines += [f"  {u}" for u in self.unresolved]
        lines += [f"Note: {n}." for n in self.notes]
        return "\n".join(lines)


def map_people(
    session: Session,
    *,
    members: Sequence[Mapping[str, Any]] | None,
    profile_fields: Sequence[Mapping[str, Any]] | None,
    people_file: Path | None,
    now: datetime,
    profile_field_name: str = "GitHub",
) -> MappingReport:
    """Link Person rows (GitHub handles) to Zulip users from the people file and profiles.

    Loads every person once, decides in memory (``choose_links``, ``plan_links``) and writes
    only what changes, so running it again is a no-op.
    """
    entries = load_people_file(people_file) if people_file is not None else ()
    persons = {p.id: p for p in session.execute(select(Person)).scalars()}
    rows = [_row(p) for p in persons.values()]
    choice = choose_links(
        rows,
        entries=entries,
        source_name=people_file.name if people_file is not None else "people file",
        members=members,
        profile_fields=profile_fields,
        profile_field_name=profile_field_name,
    )
    plan = plan_links(rows, choice.wanted)
    by_id = {int(m["user_id"]): m for m in members or ()}
    apply_links(session, plan, persons, now, by_id)
    sources = [people_file.name] if people_file is not None else []
    if choice.profile_field_id is not None:
        sources.append(f"Zulip profile field {profile_field_name!r}")
    names = {uid: str(m.get("full_name") or "") for uid, m in by_id.items()}
    names.update({p.zulip_user_id: p.full_name for p in persons.values()
                  if p.zulip_user_id is not None and p.full_name})  # fmt: skip
    wanted_users = {w.zulip_user_id for w in choice.wanted}
    return MappingReport(
        outcomes=tuple(o for o in plan.outcomes if o.result is not LinkResult.SKIPPED),
        conflicts=choice.conflicts,
        unresolved=choice.unresolved,
        notes=choice.notes,
        names=tuple(sorted((u, n) for u, n in names.items() if u in wanted_users and n)),
        sources=tuple(sources),
    )


def link_github(
    session: Session, *, github: str, zulip_user_id: int, via: MappedVia, now: datetime
) -> LinkOutcome:
    """Link one handle to one Zulip user (a claim, or an admin's ``map``), merging rows.

    Returns CONFLICT, changing nothing, when a stronger source already decided otherwise.
    """
    handle = github_handle(github)
    if handle is None:
        raise ValueError(f"{github!r} is not a GitHub handle")
    persons = {
        p.id: p
        for p in session.execute(
            select(Person).where(
                or_(Person.github == handle, Person.zulip_user_id == zulip_user_id)
            )
        ).scalars()
    }
    wanted = WantedLink(handle, zulip_user_id, via, via.label)
    plan = plan_links([_row(p) for p in persons.values()], [wanted], create_missing=True)
    apply_links(session, plan, persons, now)
    return plan.outcomes[0]


def unmapped_owners(session: Session) -> list[str]:
    """GitHub handles of owners of active goals that have no Zulip account linked."""
    query = (
        select(Person.github)
        .join(GoalOwner, GoalOwner.person_id == Person.id)
        .join(Goal, Goal.id == GoalOwner.goal_id)
        .where(
            Goal.active.is_(True),
            Goal.state.in_([GoalState.ACTIVE, GoalState.PAUSED]),
            Person.zulip_user_id.is_(None),
            Person.github.is_not(None),
        )
        .distinct()
        .order_by(Person.github)
    )
    return [h for h in session.execute(query).scalars() if h]
