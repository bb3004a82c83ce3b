"""Linking GitHub handles to Zulip accounts: the one function every path calls, and its writes.

``link`` is the only way a handle changes hands.  The goals and people imports (``map_people``:
the people file and the realm's profiles), ``I am @handle`` in chat (a claim) and an admin's
``map`` all call it; ``link_rules.plan_links`` decides, here the decision is written.  Linking can

- give a Zulip account a handle nobody holds, or that a placeholder row holds (the placeholder
  is merged into the account: its goal ownerships, updates, skips, deliveries and digest
  subscription move over, and the placeholder row goes);
- move a handle from one account to another (an admin, a people file or a profile may; a
  claim may not), with the goals it owns; the old account keeps its own history;
- leave an account's previous handle, with its goals, on a placeholder of its own.

Champion rows are kept by handle (``GoalChampion.github``), so they follow the handle as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.orm import Session

from zulip_goals_bot.db.models import Delivery, DigestSubscription, GoalOwner, Person, Skip, Update
from zulip_goals_bot.domain.states import OwnerRole
from zulip_goals_bot.domain.views import ADMIN_ROLES
from zulip_goals_bot.people.files import load_people_file
from zulip_goals_bot.people.link_rules import (
    LinkOutcome,
    LinkPlan,
    LinkResult,
    MappedVia,
    PersonRow,
    WantedLink,
    plan_links,
)
from zulip_goals_bot.people.link_sources import MappingReport, choose_links


def link(
    session: Session,
    wanted: Sequence[WantedLink],
    *,
    now: datetime,
    create_missing: bool = True,
    members: Mapping[int, Mapping[str, Any]] | None = None,
) -> tuple[LinkOutcome, ...]:
    """Link each wanted handle to its Zulip account, in order; one outcome per link.

    Loads the people involved in one statement, plans in memory and writes only what changes,
    so linking again is a no-op.  A refused link (CONFLICT) changes nothing.
    ``create_missing``: a link whose handle and account are both unknown creates the account's
    row (chat), rather than being skipped (imports, which only link people the bot has met).
    ``members``: Zulip's users by id, to fill in a row that learns its account.
    """
    if not wanted:
        return ()
    persons, plan = _plan(session, wanted, create_missing)
    apply_links(session, plan, persons, now, members)
    return plan.outcomes


def plan_link(session: Session, wanted: WantedLink) -> LinkPlan:
    """What ``link`` would do for one link typed in chat (the account's row made if missing),
    written nowhere: a command answers from it and returns the link as an effect."""
    return _plan(session, [wanted], True)[1]


def _plan(
    session: Session, wanted: Sequence[WantedLink], create_missing: bool
) -> tuple[dict[int, Person], LinkPlan]:
    """The people the links involve (one statement) and the plan for them."""
    handles = sorted({w.github for w in wanted})
    users = sorted({w.zulip_user_id for w in wanted})
    query = select(Person).where(or_(Person.github.in_(handles), Person.zulip_user_id.in_(users)))
    persons = {p.id: p for p in session.execute(query).scalars()}
    rows = [person_row(p) for p in persons.values()]
    return persons, plan_links(rows, wanted, create_missing=create_missing)


def person_row(p: Person) -> PersonRow:
    """The plain columns of a Person that planning looks at."""
    return PersonRow(p.id, p.zulip_user_id, p.github, p.mapped_via, p.email, p.full_name)


def map_people(
    session: Session,
    *,
    members: Sequence[Mapping[str, Any]] | None,
    profile_fields: Sequence[Mapping[str, Any]] | None,
    people_file: Path | None,
    now: datetime,
    profile_field_name: str = "GitHub",
) -> MappingReport:
    """Link the people the bot knows from the people file and the realm's profiles.

    Only handles and accounts the bot has a row for are linked (``choose_links``), so a people
    file copied from a large organisation maps the goal owners without adding everyone.
    """
    entries = load_people_file(people_file) if people_file is not None else ()
    columns = (Person.id, Person.zulip_user_id, Person.github, Person.mapped_via, Person.email,
               Person.full_name)  # fmt: skip
    rows = [PersonRow(*r) for r in session.execute(select(*columns))]
    choice = choose_links(
        rows,
        entries=entries,
        source_name=people_file.name if people_file is not None else "people file",
        members=members,
        profile_fields=profile_fields,
        profile_field_name=profile_field_name,
    )
    by_id = {int(m["user_id"]): m for m in members or ()}
    outcomes = link(session, choice.wanted, now=now, create_missing=False, members=by_id)
    sources = [people_file.name] if people_file is not None else []
    if choice.profile_field_id is not None:
        sources.append(f"Zulip profile field {profile_field_name!r}")
    names = {uid: str(m.get("full_name") or "") for uid, m in by_id.items()}
    names.update({r.zulip_user_id: r.full_name for r in rows
                  if r.zulip_user_id is not None and r.full_name})  # fmt: skip
    wanted_users = {w.zulip_user_id for w in choice.wanted}
    return MappingReport(
        outcomes=tuple(o for o in outcomes if o.result is not LinkResult.SKIPPED),
        conflicts=choice.conflicts,
        unresolved=choice.unresolved,
        notes=choice.notes,
        names=tuple(sorted((u, n) for u, n in names.items() if u in wanted_users and n)),
        sources=tuple(sources),
    )


# ---------------------------------------------------------------------------------------------
# Writing a plan


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

    _move_ownerships(session, plan.moves, ids)
    merges = {pid: ids[dst] for pid, dst in plan.merges.items() if pid in persons}
    _move_records(session, merges)

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


def _move_ownerships(
    session: Session, moves: Sequence[tuple[int, int]], ids: Mapping[int, int]
) -> None:
    """Move goal ownerships between rows, in order (``ids``: plan keys to real ids).

    A goal both rows own keeps one ownership, with the stronger role.  All of the rows'
    ownerships are loaded in one statement and rewritten in two, and only if they changed.
    """
    if not moves:
        return
    involved = {ids[k] for move in moves for k in move if k in ids}
    loaded = session.execute(
        select(GoalOwner.goal_id, GoalOwner.person_id, GoalOwner.role, GoalOwner.position).where(
            GoalOwner.person_id.in_(sorted(involved))
        )
    ).all()
    real_to_key = {real: key for key, real in ids.items()}
    rows: dict[tuple[int, int], tuple[OwnerRole, int]] = {
        (g, real_to_key.get(p, p)): (role, pos) for g, p, role, pos in loaded
    }
    for src, dst in moves:
        for (goal_id, key), value in sorted(rows.items()):
            if key != src:
                continue
            del rows[(goal_id, key)]
            other = rows.get((goal_id, dst))
            if other is None or _ROLE_STRENGTH[value[0]] < _ROLE_STRENGTH[other[0]]:
                rows[(goal_id, dst)] = value
    result = {(g, ids[k]): v for (g, k), v in rows.items()}
    before = {(g, p): (role, pos) for g, p, role, pos in loaded}
    if result == before:
        return
    session.execute(
        delete(GoalOwner).where(GoalOwner.person_id.in_(sorted(involved))),
        execution_options={"synchronize_session": "fetch"},
    )
    session.add_all(
        GoalOwner(goal_id=g, person_id=p, role=role, position=pos)
        for (g, p), (role, pos) in sorted(result.items())
    )
    session.flush()


def _move_records(session: Session, merges: Mapping[int, int]) -> None:
    """Give the rows that absorb placeholders the placeholders' updates, skips, deliveries and
    digest subscription (one statement per table for all merges), before the placeholders go.
    """
    if not merges:
        return
    sources = sorted(merges)
    for column in (Update.author_id, Skip.person_id, Delivery.person_id):
        session.execute(
            update(column.class_)
            .where(column.in_(sources))
            .values({column.key: case(merges, value=column)})
        )
    # One subscription per person: a target that has its own keeps it.
    taken = select(DigestSubscription.person_id).where(
        DigestSubscription.person_id.in_(sorted(set(merges.values())))
    )
    session.execute(
        delete(DigestSubscription).where(
            DigestSubscription.person_id.in_(sources),
            case(merges, value=DigestSubscription.person_id).in_(taken),
        )
    )
    session.execute(
        update(DigestSubscription)
        .where(DigestSubscription.person_id.in_(sources))
        .values(person_id=case(merges, value=DigestSubscription.person_id))
    )
