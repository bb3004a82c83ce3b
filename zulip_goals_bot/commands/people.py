"""People in chat commands: finding them from @-mentions, emails and handles, and naming them.

Linking a handle to an account (``I am``, ``map``) is ``linking.link``; this module only finds
the Person rows a command names and shows them without pinging anyone.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from zulip_goals_bot.commands.call import Call
from zulip_goals_bot.commands.effects import NewPerson, Who
from zulip_goals_bot.commands.grammar import PersonRef
from zulip_goals_bot.db.models import Goal, GoalOwner, Person, goal_is_listed
from zulip_goals_bot.db.queries import person_view
from zulip_goals_bot.domain.markdown import safe
from zulip_goals_bot.domain.views import PersonView
from zulip_goals_bot.errors import CommandError

# Someone a command names: a row the bot has, or one its effects will create.
Named = Person | NewPerson


def owned_names(session: Session, person_ids: Collection[int]) -> list[str]:
    """The goals these rows own (once each), named without pinging anyone."""
    rows = session.execute(
        select(Goal.title, Goal.short_title)
        .where(
            Goal.id.in_(
                select(GoalOwner.goal_id).where(GoalOwner.person_id.in_(sorted(person_ids)))
            ),
            goal_is_listed(),
        )
        .order_by(Goal.id)
    )
    return [f"**{safe(short or title)}**" for title, short in rows]


def _people_where(session: Session, column: Any, values: Sequence[Any]) -> list[Person]:
    """People whose ``column`` is one of ``values``, in one statement (none for no values)."""
    if not values:
        return []
    return list(session.execute(select(Person).where(column.in_(list(values)))).scalars())


def find_people(call: Call, refs: Sequence[PersonRef], *, create: bool) -> list[Named]:
    """The people a command names, in order (set-based: one query per kind of name).

    Unknown @github handles and Zulip mentions with an id are ``NewPerson`` values when
    ``create`` (the command's effects create their rows); nothing is written here.
    """
    s = call.session
    ids = [int(r.value) for r in refs if r.kind == "zulip" and r.value]
    names = [r.name.lower() for r in refs if r.kind == "zulip" and not r.value]
    emails = [r.value for r in refs if r.kind == "email"]
    handles = [r.value for r in refs if r.kind == "github"]
    by_id = {p.zulip_user_id: p for p in _people_where(s, Person.zulip_user_id, ids)}
    by_name: dict[str, list[Person]] = {}
    for p in _people_where(s, func.lower(Person.full_name), names):
        if p.zulip_user_id is not None:
            by_name.setdefault((p.full_name or "").lower(), []).append(p)
    by_email = {
        (p.email or "").lower(): p for p in _people_where(s, func.lower(Person.email), emails)
    }
    by_handle = {p.github: p for p in _people_where(s, Person.github, handles)}
    out: list[Named] = []
    for r in refs:
        found: Named | None = None
        match r.kind:
            case "zulip" if r.value:
                found = by_id.get(int(r.value))
                if found is None and create:
                    found = NewPerson(zulip_user_id=int(r.value), full_name=r.name)
            case "zulip":
                matches = by_name.get(r.name.lower(), [])
                if len(matches) != 1:
                    raise CommandError(
                        f"I can't tell which Zulip user '{r.shown()}' is; pick them from the "
                        "@-mention typeahead so the mention carries their id."
                    )
                found = matches[0]
            case "email":
                found = by_email.get(r.value)
                if found is None:
                    raise CommandError(
                        f"I don't know a Zulip user with the email {r.shown()} yet; use an "
                        "@-mention instead."
                    )
            case _:
                found = by_handle.get(r.value)
                if found is None and create:
                    found = NewPerson(github=r.value)
        if found is None:
            raise CommandError(f"I don't know {r.shown()}.")
        if found not in out:
            out.append(found)
    return out


def who_of(p: Named) -> Who:
    return p.id if isinstance(p, Person) else p


def named_view(p: Named) -> PersonView:
    """Someone named in a command as the views show people (a new one has no row id yet)."""
    if isinstance(p, Person):
        return person_view(p)
    return PersonView(
        person_id=0,
        zulip_user_id=p.zulip_user_id,
        full_name=p.full_name,
        email=None,
        github=p.github,
        timezone=None,
        away_until=None,
        is_active=True,
    )


def person_text(p: Named) -> str:
    """Someone named without pinging them: a silent mention, else the @github handle."""
    view = named_view(p)
    if view.user is not None:
        return view.user.mention(silent=True)
    if view.github:
        return f"@{view.github}"
    return safe(view.full_name or view.email or f"person {view.person_id}")
