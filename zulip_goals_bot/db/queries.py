"""Set-based reads that turn the database into plain, immutable views.

Commands, prompts, the digest and the blog export all work on these views (the functional core),
and each loader issues a fixed number of SQL statements however many goals there are.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, and_, func, select
from sqlalchemy.orm import Session

from zulip_goals_bot.db.models import (
    GOALS_STAMP,
    ChangeStamp,
    Goal,
    GoalChampion,
    GoalOwner,
    GoalPastPeriod,
    GoalState,
    OwnerRole,
    Person,
    Roadmap,
    Skip,
    Update,
    UpdateKind,
)
from zulip_goals_bot.domain.markdown import ZulipUser
from zulip_goals_bot.domain.schedule import GoalFacts
from zulip_goals_bot.errors import UnknownPeriod


class OwnerContact(enum.StrEnum):
    """Whether the bot can reach an owner, and if not, why (the digest lists the others)."""

    REACHABLE = "reachable"
    MISSING_ZULIP_ID = "no Zulip account mapped"
    AWAY = "away"
    DEACTIVATED = "deactivated"


@dataclass(frozen=True, slots=True)
class PersonView:
    person_id: int
    zulip_user_id: int | None
    full_name: str | None
    email: str | None
    github: str | None
    timezone: str | None
    away_until: date | None
    is_active: bool

    @property
    def user(self) -> ZulipUser | None:
        if self.zulip_user_id is None:
            return None
        return ZulipUser(self.zulip_user_id, self.full_name or self.email or "user")

    @property
    def display(self) -> str:
        """A name to print without pinging: full name, else @github handle."""
        if self.full_name:
            return self.full_name
        if self.github:
            return f"@{self.github}"
        return self.email or f"person {self.person_id}"

    def silent(self) -> str:
        """A silent mention when we know the Zulip account, else the plain display name."""
        user = self.user
        return user.mention(silent=True) if user is not None else self.display

    def contact(self, today: date) -> OwnerContact:
        if self.zulip_user_id is None:
            return OwnerContact.MISSING_ZULIP_ID
        if not self.is_active:
            return OwnerContact.DEACTIVATED
        if self.away_until is not None and self.away_until >= today:
            return OwnerContact.AWAY
        return OwnerContact.REACHABLE


@dataclass(frozen=True, slots=True)
class OwnerView:
    person: PersonView
    role: OwnerRole


@dataclass(frozen=True, slots=True)
class ChampionView:
    """A team's champion of a goal, by GitHub handle; ``person`` once the handle is known."""

    github: str
    team: str | None
    person: PersonView | None = None
    role: OwnerRole = OwnerRole.CHAMPION

    def silent(self) -> str:
        """A silent mention when the handle is linked to Zulip, else ``@handle``."""
        if self.person is not None and self.person.user is not None:
            return self.person.silent()
        return f"@{self.github}"


@dataclass(frozen=True, slots=True)
class RoadmapRef:
    """A roadmap a goal belongs to, as its Roadmap row names it (slug: the linked page)."""

    name: str
    slug: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateView:
    id: int
    zulip_message_id: int
    goal_id: int | None
    author: PersonView | None
    kind: UpdateKind
    content: str
    tldr: str | None
    help_wanted: str | None
    sent_at: datetime
    edited_at: datetime | None


@dataclass(frozen=True, slots=True)
class GoalView:
    id: int
    period: str
    slug: str
    title: str
    short_title: str | None
    status: str
    flagship: str | None
    tracking_issue: int | None
    tracking_url: str | None
    zulip_topic: str
    teams: tuple[str, ...]
    state: GoalState
    active: bool
    cadence_weeks: int | None
    created_at: datetime
    owners: tuple[OwnerView, ...] = ()
    last_update: UpdateView | None = None
    skipped_periods: frozenset[str] = field(default_factory=frozenset)
    highlight: str | None = None
    summary: str | None = None  # "What and why"
    roadmaps: tuple[RoadmapRef, ...] = ()
    ended_in: str | None = None  # the period whose import ended this goal

    @property
    def name(self) -> str:
        return self.short_title or self.title

    @property
    def is_flagship(self) -> bool:
        return self.flagship is not None

    @property
    def poc(self) -> tuple[PersonView, ...]:
        """Points of contact; when the file named none, every owner."""
        main = tuple(o.person for o in self.owners if o.role is not OwnerRole.TASK)
        return main or tuple(o.person for o in self.owners)

    def prompted_owners(self) -> tuple[PersonView, ...]:
        """Who is asked for updates: points of contact (task owners only if there are none)."""
        return self.poc

    def facts(self, default_cadence: int, today: date) -> GoalFacts:
        asked = self.prompted_owners()
        return GoalFacts(
            goal_id=self.id,
            state=self.state.value,
            active=self.active,
            created_at=self.created_at,
            cadence_weeks=self.cadence_weeks or default_cadence,
            last_update_at=self.last_update.sent_at if self.last_update else None,
            owners_total=len(asked),
            owners_reachable=sum(1 for p in asked if p.contact(today) is OwnerContact.REACHABLE),
            skipped_periods=self.skipped_periods,
        )


def person_view(p: Person) -> PersonView:
    return PersonView(
        person_id=p.id,
        zulip_user_id=p.zulip_user_id,
        full_name=p.full_name,
        email=p.email,
        github=p.github,
        timezone=p.timezone,
        away_until=p.away_until,
        is_active=p.is_active,
    )


def update_view(u: Update, author: Person | None) -> UpdateView:
    return UpdateView(
        id=u.id,
        zulip_message_id=u.zulip_message_id,
        goal_id=u.goal_id,
        author=person_view(author) if author is not None else None,
        kind=u.kind,
        content=u.content,
        tldr=u.tldr,
        help_wanted=u.help_wanted,
        sent_at=u.sent_at,
        edited_at=u.edited_at,
    )


def _goal_view(g: Goal, owners: Sequence[OwnerView], last: UpdateView | None,
               skips: frozenset[str]) -> GoalView:  # fmt: skip
    return GoalView(
        id=g.id,
        period=g.period,
        slug=g.slug,
        title=g.title,
        short_title=g.short_title,
        status=g.status,
        flagship=g.flagship,
        tracking_issue=g.tracking_issue,
        tracking_url=g.tracking_url,
        zulip_topic=g.zulip_topic,
        teams=tuple(g.team_list),
        state=g.state,
        active=g.active,
        cadence_weeks=g.cadence_weeks,
        created_at=g.created_at,
        owners=tuple(owners),
        last_update=last,
        skipped_periods=skips,
        highlight=g.highlight,
        summary=g.summary,
        roadmaps=tuple(
            RoadmapRef(str(r.get("name", "")), str(r.get("slug") or "") or None)
            for r in (g.roadmaps or [])
            if r.get("name")
        ),
        ended_in=g.ended_in,
    )


def latest_updates(
    session: Session, goal_ids: Iterable[int] | None = None
) -> dict[int, UpdateView]:
    """The newest owner update of each goal, in one statement."""
    newest = (
        select(Update.goal_id, func.max(Update.sent_at).label("sent_at"))
        .where(Update.kind == UpdateKind.UPDATE, Update.deleted.is_(False))
        .group_by(Update.goal_id)
    )
    if goal_ids is not None:
        newest = newest.where(Update.goal_id.in_(list(goal_ids)))
    sub = newest.subquery()
    rows = session.execute(
        select(Update, Person)
        .join(sub, and_(Update.goal_id == sub.c.goal_id, Update.sent_at == sub.c.sent_at))
        .outerjoin(Person, Person.id == Update.author_id)
        .where(Update.kind == UpdateKind.UPDATE, Update.deleted.is_(False))
        .order_by(Update.id)
    ).all()
    out: dict[int, UpdateView] = {}
    for u, author in rows:
        assert u.goal_id is not None
        out[u.goal_id] = update_view(u, author)  # ties: the highest id wins
    return out


def load_goals(
    session: Session,
    *,
    goal_ids: Sequence[int] | None = None,
    include_inactive: bool = False,
) -> list[GoalView]:
    """Goals with owners, latest update and skips: four statements whatever the number of goals."""
    query = select(Goal).order_by(Goal.period.desc(), Goal.slug)
    if goal_ids is not None:
        query = query.where(Goal.id.in_(list(goal_ids)))
    if not include_inactive:
        query = query.where(Goal.active.is_(True), Goal.state != GoalState.RETIRED)
    goals = list(session.execute(query).scalars())
    if not goals:
        return []
    ids = [g.id for g in goals]
    owners: dict[int, list[OwnerView]] = defaultdict(list)
    for goal_id, role, _pos, person in session.execute(
        select(GoalOwner.goal_id, GoalOwner.role, GoalOwner.position, Person)
        .join(Person, Person.id == GoalOwner.person_id)
        .where(GoalOwner.goal_id.in_(ids))
        .order_by(GoalOwner.goal_id, GoalOwner.position)
    ):
        owners[goal_id].append(OwnerView(person_view(person), role))
    latest = latest_updates(session, ids if goal_ids is not None else None)
    skips: dict[int, set[str]] = defaultdict(set)
    for goal_id, period in session.execute(
        select(Skip.goal_id, Skip.period).where(Skip.goal_id.in_(ids))
    ):
        skips[goal_id].add(period)
    return [
        _goal_view(g, owners.get(g.id, []), latest.get(g.id), frozenset(skips.get(g.id, ())))
        for g in goals
    ]


def load_champions(
    session: Session, goal_ids: Iterable[int] | None = None, *, github: str | None = None
) -> dict[int, tuple[ChampionView, ...]]:
    """Champions by goal, with the person each handle is linked to, in one statement.

    ``github`` keeps only the goals that handle champions (for `mine` and champion digests).
    """
    query = (
        select(GoalChampion.goal_id, GoalChampion.github, GoalChampion.team, Person)
        .outerjoin(Person, Person.github == GoalChampion.github)
        .order_by(GoalChampion.goal_id, GoalChampion.position)
    )
    if goal_ids is not None:
        query = query.where(GoalChampion.goal_id.in_(list(goal_ids)))
    if github is not None:
        query = query.where(GoalChampion.github == github.lower())
    out: dict[int, list[ChampionView]] = defaultdict(list)
    for goal_id, handle, team, person in session.execute(query):
        view = person_view(person) if person is not None else None
        out[goal_id].append(ChampionView(handle, team or None, view))
    return {k: tuple(v) for k, v in out.items()}


# Period name of goals added by hand (`goal add`) rather than imported: they belong to every
# period, so the digest, the blog and the website always show them.
MANUAL_PERIOD = "manual"


def goals_of_period(
    session: Session, goals: Sequence[GoalView], period: str | None
) -> tuple[list[GoalView], str | None]:
    """The goals one period shows, and that period's name: the newest period when ``period`` is
    None, plus the goals added by hand. Naming an earlier period also finds the goals that
    continued from it since (one more statement). Raises ``UnknownPeriod``.
    """
    chosen = period or newest_period(goals, ignore=(MANUAL_PERIOD,))
    if chosen is None:
        return list(goals), None
    moved = moved_from(session, chosen) if period is not None else set()
    found = {g.id for g in goals_in_period(goals, chosen, moved)}
    if period is not None and not found:
        known = sorted({g.period for g in goals} - {MANUAL_PERIOD})
        raise UnknownPeriod(
            f"--period {period!r}: no goals in that period (periods: {', '.join(known) or 'none'})"
        )
    return [g for g in goals if g.id in found or g.period == MANUAL_PERIOD], chosen


def goals_in_period(
    goals: Sequence[GoalView], period: str, moved: Iterable[int] = ()
) -> list[GoalView]:
    """The goals of one period: those in it now, and ``moved`` (continued from it since)."""
    earlier = set(moved)
    return [g for g in goals if g.period == period or g.id in earlier]


def moved_from(session: Session, period: str) -> set[int]:
    """Goals that were part of ``period`` and continued into a later one."""
    return set(
        session.execute(
            select(GoalPastPeriod.goal_id).where(GoalPastPeriod.period == period)
        ).scalars()
    )


@dataclass(frozen=True, slots=True)
class RoadmapPage:
    """A roadmap page as imported: its name, what and why, and point(s) of contact."""

    period: str
    slug: str
    title: str
    short_title: str | None
    summary: str | None
    owners: tuple[str, ...]  # GitHub handles

    @property
    def name(self) -> str:
        return self.short_title or self.title


def load_roadmaps(session: Session) -> list[RoadmapPage]:
    """Every imported roadmap page, newest period first, in one statement."""
    rows = session.execute(
        select(Roadmap).order_by(Roadmap.created_at.desc(), Roadmap.period.desc(), Roadmap.slug)
    ).scalars()
    return [
        RoadmapPage(r.period, r.slug, r.title, r.short_title, r.summary,
                    tuple(h for h in r.owners.split(",") if h))
        for r in rows
    ]  # fmt: skip


def newest_period(goals: Iterable[GoalView], *, ignore: Iterable[str] = ()) -> str | None:
    """The period imported last: the one whose first goal was created most recently.

    Names are no guide (``2025h2`` and ``2026`` sort well, ``manual`` does not), so the
    creation times decide, and the name only breaks ties.
    """
    skip = set(ignore)
    first: dict[str, datetime] = {}
    for g in goals:
        if g.period not in skip and (g.period not in first or g.created_at < first[g.period]):
            first[g.period] = g.created_at
    if not first:
        return None
    return max(first, key=lambda p: (first[p], p))


def updates_for_goal(
    session: Session, goal_id: int, limit: int, *, include_comments: bool = True
) -> list[UpdateView]:
    """The newest ``limit`` messages stored for a goal, newest first."""
    kinds = [UpdateKind.UPDATE, UpdateKind.COMMENT] if include_comments else [UpdateKind.UPDATE]
    rows = session.execute(
        select(Update, Person)
        .outerjoin(Person, Person.id == Update.author_id)
        .where(Update.goal_id == goal_id, Update.deleted.is_(False), Update.kind.in_(kinds))
        .order_by(Update.sent_at.desc(), Update.id.desc())
        .limit(limit)
    ).all()
    return [update_view(u, p) for u, p in rows]


def updates_between(session: Session, since: datetime, until: datetime) -> list[UpdateView]:
    """Every owner update in [since, until), oldest first, in one statement."""
    rows = session.execute(
        select(Update, Person)
        .outerjoin(Person, Person.id == Update.author_id)
        .where(
            Update.kind == UpdateKind.UPDATE,
            Update.deleted.is_(False),
            Update.goal_id.is_not(None),
            Update.sent_at >= since,
            Update.sent_at < until,
        )
        .order_by(Update.sent_at, Update.id)
    ).all()
    return [update_view(u, p) for u, p in rows]


class GoalName(NamedTuple):
    """The few columns needed to match what a user typed to a goal.

    A named tuple, not a dataclass: every command builds 1,000 of them and hashes them for the
    matcher's cache, and tuples do both in C.
    """

    id: int
    slug: str
    title: str
    short_title: str | None
    tracking_issue: int | None
    zulip_topic: str
    active: bool

    @property
    def name(self) -> str:
        return self.short_title or self.title


def goal_names(session: Session, *, include_inactive: bool = False) -> list[GoalName]:
    # Exactly GoalName's fields in its order: every command reads all goals, so rows are
    # unpacked positionally (named access on 1,000 rows costs as much as the query).
    query = select(
        Goal.id,
        Goal.slug,
        Goal.title,
        Goal.short_title,
        Goal.tracking_issue,
        Goal.zulip_topic,
        Goal.active,
    )
    if not include_inactive:
        query = query.where(Goal.active.is_(True), Goal.state != GoalState.RETIRED)
    # Core rows: the ORM's result machinery would double the cost of reading plain columns.
    # Core does not autoflush, so goals added in this session are flushed first.
    session.flush()
    conn = session.connection()
    stamp = conn.execute(
        select(ChangeStamp.stamp).where(ChangeStamp.name == GOALS_STAMP)
    ).scalar_one_or_none()
    cache = _NAMES_CACHE.setdefault(conn.engine, {})
    kept = cache.get(include_inactive)
    if stamp is not None and kept is not None and kept[0] == stamp:
        return list(kept[1])
    names = tuple(GoalName._make(row) for row in conn.execute(query.order_by(Goal.id)))
    if stamp is not None:
        cache[include_inactive] = (stamp, names)
    return list(names)


# The goals' names as last read, per database and with or without inactive goals, with the change
# stamp they were read at: every command naming a goal needs all of them, and reading 1,000 rows
# was most of what `status` cost. The database sets a new stamp on every write to goals (in any
# process: `goals import` beside the bot), so one small read says whether they are still current.
_NAMES_CACHE: WeakKeyDictionary[Engine, dict[bool, tuple[int, tuple[GoalName, ...]]]] = (
    WeakKeyDictionary()
)
