"""Which links the people file and the realm's profiles ask for, and the report of mapping them.

``choose_links`` turns a people file's entries and the Zulip users' GitHub profile field into
``WantedLink``s, one source per handle and one handle per user, and says what it could not use;
pure.  ``linking.map_people`` gives the chosen links to ``linking.link`` and returns a
``MappingReport`` for the import reports and the bot's log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zulip_goals_bot.people.files import PeopleEntry, github_handle
from zulip_goals_bot.people.link_rules import (
    LinkOutcome,
    LinkResult,
    MappedVia,
    PersonRow,
    WantedLink,
)


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
