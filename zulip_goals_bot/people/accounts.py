"""People: the Zulip accounts the bot knows, kept in step with the realm.

A Person row stands for one Zulip account (``zulip_user_id``) or, until someone is linked, for a
GitHub handle only (a placeholder).  Linking handles to accounts is ``linking``; reading people
files is ``people.files``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from zulip_goals_bot.db.models import Goal, GoalOwner, Person, goal_is_running
from zulip_goals_bot.domain.views import ADMIN_ROLES, SenderInfo


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


def person_ids(session: Session, senders: Iterable[SenderInfo], now: datetime) -> dict[int, int]:
    """Person ids of these Zulip users (created on first sight, renamed when their name
    changed), by Zulip user id: what storing a backlog needs, read as plain rows.

    The same as ``ensure_people`` but without loading a Person object per sender, which was a
    tenth of the time spent storing a backlog from 1,500 owners.
    """
    wanted = {s.user_id: s for s in senders}
    if not wanted:
        return {}
    table = Person.metadata.tables[Person.__tablename__]
    found: dict[int, int] = {}
    renamed: list[dict[str, Any]] = []
    for uid, pid, name in session.execute(
        select(table.c.zulip_user_id, table.c.id, table.c.full_name).where(
            table.c.zulip_user_id.in_(list(wanted))
        )
    ):
        found[uid] = pid
        new_name = wanted[uid].full_name
        if new_name and new_name != name:
            renamed.append({"pid": pid, "name": new_name})
    if renamed:
        session.execute(
            update(table).where(table.c.id == bindparam("pid")).values(full_name=bindparam("name")),
            renamed,
        )
    missing = [info for uid, info in wanted.items() if uid not in found]
    if missing:
        for uid, person in ensure_people(session, missing, now).items():
            found[uid] = person.id
    return found


def sync_users(session: Session, members: Iterable[Mapping[str, Any]], now: datetime) -> None:
    """Refresh name, email, timezone, role and active flag of every Zulip user we already know,
    and add the ones we do not.

    Read and written as plain rows, and only the users whose details changed are written: at
    start-up a ``Person`` object for each of 1,500 users was the largest part of the bot's
    memory peak.  (Objects already in ``session`` are not refreshed; ``run`` calls this first.)
    """
    table = Person.metadata.tables[Person.__tablename__]
    known: dict[int, tuple[int, tuple[Any, ...]]] = {
        uid: (pid, tuple(details))
        for uid, pid, *details in session.execute(
            select(table.c.zulip_user_id, table.c.id, *(table.c[c] for c in _SYNCED)).where(
                table.c.zulip_user_id.is_not(None)
            )
        )
    }
    added: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for uid, m in {int(m["user_id"]): m for m in members}.items():
        pid, old = known.get(uid, (None, (None,) * len(_SYNCED)))
        new = (
            str(m.get("email") or old[0] or ""),
            str(m.get("full_name") or old[1] or ""),
            str(m.get("timezone") or "") or None,
            bool(m.get("is_active", True)),
            bool(m.get("is_bot", False)),
            int(m.get("role", 400)) in ADMIN_ROLES,
        )
        values = dict(zip(_SYNCED, new, strict=True))
        if pid is None:
            added.append({"zulip_user_id": uid, "created_at": now, **values})
        elif new != old:
            changed.append({"pid": pid, **{f"new_{c}": v for c, v in values.items()}})
    if changed:
        session.execute(
            update(table)
            .where(table.c.id == bindparam("pid"))
            .values({c: bindparam(f"new_{c}") for c in _SYNCED}),
            changed,
        )
    if added:
        session.execute(insert(table), added)


# The columns ``sync_users`` keeps in step with Zulip, in the order it compares them.
_SYNCED = ("email", "full_name", "timezone", "is_active", "is_bot", "is_admin")


def unmapped_owners(session: Session) -> list[str]:
    """GitHub handles of owners of active goals that have no Zulip account linked."""
    query = (
        select(Person.github)
        .join(GoalOwner, GoalOwner.person_id == Person.id)
        .join(Goal, Goal.id == GoalOwner.goal_id)
        .where(
            goal_is_running(),
            Person.zulip_user_id.is_(None),
            Person.github.is_not(None),
        )
        .distinct()
        .order_by(Person.github)
    )
    return [h for h in session.execute(query).scalars() if h]
