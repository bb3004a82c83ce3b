"""The rules of linking a GitHub handle to a Zulip account; pure.

Goal files name owners by GitHub handle; prompts need Zulip accounts.  A link comes from one of
four sources, strongest first: the people file and an admin's ``map`` (the same authority), a
Zulip profile field holding the handle, and a self-service claim (``I am @handle``).  A weaker
source never undoes what a stronger one decided, and a claim never takes a handle another
account holds nor replaces the handle an account has.

``plan_links`` applies wanted links, in order, to plain rows and returns a ``LinkPlan``: the
final columns of the rows it touches, which goal ownerships move, which placeholder rows (a
handle without an account) are merged away, and one ``LinkOutcome`` per link.
``linking.link`` loads the rows, calls it, and writes the plan.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


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


class Conflict(enum.StrEnum):
    """Why a link was refused (a CONFLICT outcome changes nothing)."""

    HAS_HANDLE = "the account has another handle"
    HANDLE_TAKEN = "another account holds the handle"


@dataclass(frozen=True, slots=True)
class LinkOutcome:
    """What became of one wanted link, with what a person needs to be told about it."""

    link: WantedLink
    result: LinkResult
    detail: str = ""  # why not, for a CONFLICT
    conflict: Conflict | None = None
    replaced: str | None = None  # the handle the account had before (it keeps its goals)
    taken_from: int | None = None  # the Person id of the account that held the handle before

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

    def ownerships_at(self, person_id: int) -> frozenset[int]:
        """The rows whose goal ownerships sit on ``person_id`` once the moves are made, in
        order (an account's old handle takes its goals away before a new one brings others)."""
        at: dict[int, set[int]] = {}
        for src, dst in self.moves:
            at.setdefault(dst, {dst}).update(at.pop(src, {src}))
            at[src] = set()
        return frozenset(at.get(person_id, {person_id}))

    @property
    def merges(self) -> dict[int, int]:
        """Each deleted placeholder and the row that takes over its records."""
        gone = set(self.deleted)
        return {src: dst for src, dst in self.moves if src in gone}


@dataclass(slots=True)
class _Slot:
    id: int
    zulip_user_id: int | None
    github: str | None
    mapped_via: str | None
    email: str | None
    full_name: str | None


def may_take(old_via: str | None, new: MappedVia) -> bool:
    """May ``new`` take a handle away from the Zulip account another source linked it to?

    Claims never take a handle another account holds; other sources need at least the same
    rank (so a corrected people file or profile wins over what it said before).
    """
    if new is MappedVia.CLAIM:
        return False
    return _rank(old_via) <= new.rank


def may_relink(old_via: str | None, new: MappedVia) -> bool:
    """May ``new`` give a Zulip account that has a handle a different one?

    A claim never replaces a handle (an admin's ``map`` fixes a wrong one).
    """
    if new is MappedVia.CLAIM:
        return False
    return _rank(old_via) <= new.rank


def plan_links(
    people: Sequence[PersonRow], wanted: Sequence[WantedLink], *, create_missing: bool = False
) -> LinkPlan:
    """Apply ``wanted`` links, in order, to a copy of ``people``; pure.

    A handle held by a github-only placeholder row is merged into the row with the Zulip id.
    A handle taken from another account leaves that account its row, without the handle; an
    account's previous handle stays with its goals, on a placeholder of its own.  Links for
    which neither the handle nor the Zulip user has a row are skipped unless ``create_missing``
    (a claim creates its row; a people file listing thousands of people should not).
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

    def refuse(w: WantedLink, conflict: Conflict, detail: str, via: str | None) -> None:
        outcomes.append(
            LinkOutcome(w, LinkResult.CONFLICT, f"{detail} by the {_via_label(via)}", conflict)
        )

    for w in wanted:
        held = by_github.get(w.github)
        user = by_user.get(w.zulip_user_id)
        if held is not None and held is user:
            if w.via.rank > _rank(held.mapped_via):
                held.mapped_via = w.via.value
            outcomes.append(LinkOutcome(w, LinkResult.ALREADY))
            continue
        if user is not None and user.github is not None and not may_relink(user.mapped_via, w.via):
            why = f"that Zulip user is linked to @{user.github}"
            refuse(w, Conflict.HAS_HANDLE, why, user.mapped_via)
            continue
        taken = held is not None and held.zulip_user_id is not None
        if held is not None and taken and not may_take(held.mapped_via, w.via):
            why = f"@{w.github} is linked to Zulip user {held.zulip_user_id}"
            refuse(w, Conflict.HANDLE_TAKEN, why, held.mapped_via)
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
        replaced = user.github
        if user.github is not None:  # the user's old handle keeps its goals, on a placeholder
            old = new_slot(None, None)
            old.github = user.github
            by_github[user.github] = old
            moves.append((user.id, old.id))
            user.github = None
        taken_from: int | None = None
        if held is not None:
            moves.append((held.id, user.id))
            if held.zulip_user_id is None:
                deleted.append(held.id)
                del slots[held.id]
            else:
                taken_from = held.id
            held.github = None
            held.mapped_via = None
        user.github = w.github
        user.mapped_via = w.via.value
        by_github[w.github] = user
        outcomes.append(LinkOutcome(w, LinkResult.LINKED, replaced=replaced, taken_from=taken_from))

    before = {p.id: p for p in people}
    changed: list[PersonRow] = []
    for s in slots.values():
        row = PersonRow(s.id, s.zulip_user_id, s.github, s.mapped_via, s.email, s.full_name)
        if before.get(s.id) != row:
            changed.append(row)
    return LinkPlan(tuple(changed), tuple(moves), tuple(deleted), tuple(outcomes))
