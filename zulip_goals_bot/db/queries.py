"""Set-based reads that turn the database into plain, immutable views.

Commands, prompts, the digest and the blog export all work on these views (the functional core),
and each loader issues a fixed number of SQL statements however many goals there are.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, and_, func, literal, null, select, union_all
from sqlalchemy.orm import Session

from zulip_goals_bot.db.models import (
    GOALS_STAMP,
    ChangeStamp,
    GitHubIssue,
    Goal,
    GoalChampion,
    GoalOwner,
    GoalPastPeriod,
    HealthReaction,
    Person,
    Roadmap,
    Skip,
    Update,
    goal_is_listed,
)
from zulip_goals_bot.domain.health import (
    GoalHealth,
    Health,
    HealthCall,
    HealthSource,
    goal_health,
)
from zulip_goals_bot.domain.progress import Progress
from zulip_goals_bot.domain.states import UpdateKind
from zulip_goals_bot.domain.views import (
    ChampionView,
    GoalName,
    GoalOutline,
    GoalView,
    OwnerView,
    PersonView,
    RoadmapPage,
    RoadmapRef,
    UpdateView,
)
from zulip_goals_bot.errors import UnknownPeriod


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
        author=person_view(author) if author is not None else _github_author(u.author_login),
        kind=u.kind,
        content=u.content,
        tldr=u.tldr,
        help_wanted=u.help_wanted,
        sent_at=u.sent_at,
        edited_at=u.edited_at,
        source=u.source,
        url=u.url,
    )


def _github_author(login: str | None) -> PersonView | None:
    """A GitHub commenter nobody linked to Zulip: shown by handle (person id 0: no row)."""
    if not login:
        return None
    return PersonView(person_id=0, zulip_user_id=None, full_name=None, email=None,
                      github=login, timezone=None, away_until=None, is_active=True)  # fmt: skip


def _goal_view(g: Goal, owners: Sequence[OwnerView], last: UpdateView | None,
               skips: frozenset[str], progress: Progress | None = None,
               health: GoalHealth | None = None) -> GoalView:  # fmt: skip
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
        roadmaps=RoadmapRef.from_stored(g.roadmaps),
        ended_in=g.ended_in,
        progress=progress,
        health=health,
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
    with_health: bool = True,
) -> list[GoalView]:
    """Goals with owners, latest update, skips and health: five statements whatever the number
    of goals."""
    # The tracking issue's task list rides along (an outer join, not a fifth statement).
    query = (
        select(Goal, GitHubIssue.tasks_done, GitHubIssue.tasks_total, GitHubIssue.open_tasks)
        .outerjoin(GitHubIssue, GitHubIssue.goal_id == Goal.id)
        .order_by(Goal.period.desc(), Goal.slug)
    )
    if goal_ids is not None:
        query = query.where(Goal.id.in_(list(goal_ids)))
    if not include_inactive:
        query = query.where(goal_is_listed())
    goals: list[Goal] = []
    progress: dict[int, Progress] = {}
    for g, done, total, open_tasks in session.execute(query):
        goals.append(g)
        if total:
            progress[g.id] = Progress(done, total, tuple(open_tasks or ()))
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
    # Storing a batch needs no health (only whether goals are due): it skips the statement.
    health = load_health(session, ids if goal_ids is not None else None) if with_health else {}
    return [
        _goal_view(
            g,
            owners.get(g.id, []),
            latest.get(g.id),
            frozenset(skips.get(g.id, ())),
            progress.get(g.id),
            health.get(g.id),
        )
        for g in goals
    ]


def load_outlines(session: Session) -> list[GoalOutline]:
    """The listed goals as the set-up checks judge them (``GoalOutline``), in three statements
    of plain columns (rows fetched at once), no ORM objects.

    ``run``'s start-up checks need nothing more of the goals.  At 1,000 goals, loading them as
    ``load_goals`` views took 10 MB and 0.2 s of the start-up; this takes 3.5 MB (2 of them
    SQLite's page cache, which ingest fills anyway) and 50 ms.
    """
    newest = (
        select(func.max(Update.sent_at))
        .where(
            Update.goal_id == Goal.id, Update.kind == UpdateKind.UPDATE, Update.deleted.is_(False)
        )
        .scalar_subquery()  # a seek per goal in ix_updates_goal_kind_sent, not a GROUP BY
    )
    conn = session.connection()
    goals = conn.execute(
        select(
            Goal.id,
            Goal.slug,
            Goal.title,
            Goal.short_title,
            Goal.state,
            Goal.active,
            Goal.cadence_weeks,
            Goal.created_at,
            Goal.tracking_issue,
            Goal.tracking_url,
            newest.label("last_update_at"),
        )
        .where(goal_is_listed())
        .order_by(Goal.period.desc(), Goal.slug)
    ).all()
    if not goals:
        return []
    people: dict[int, PersonView] = {}
    owners: dict[int, list[OwnerView]] = defaultdict(list)
    for goal_id, role, pid, zulip_id, name, email, github, tz, away, is_active in conn.execute(
        select(
            GoalOwner.goal_id,
            GoalOwner.role,
            Person.id,
            Person.zulip_user_id,
            Person.full_name,
            Person.email,
            Person.github,
            Person.timezone,
            Person.away_until,
            Person.is_active,
        )
        .join(Person, Person.id == GoalOwner.person_id)
        .join(Goal, Goal.id == GoalOwner.goal_id)
        .where(goal_is_listed())
        .order_by(GoalOwner.goal_id, GoalOwner.position)
    ).all():
        person = people.get(pid)
        if person is None:  # one view per person, however many goals they own
            person = people[pid] = PersonView(
                pid, zulip_id, name, email, github, tz, away, is_active
            )
        owners[goal_id].append(OwnerView(person, role))
    skips: dict[int, set[str]] = defaultdict(set)
    for goal_id, period in conn.execute(
        select(Skip.goal_id, Skip.period)
        .join(Goal, Goal.id == Skip.goal_id)
        .where(goal_is_listed())
    ).all():
        skips[goal_id].add(period)
    # The columns are labelled as GoalOutline's fields, so each row is its keyword arguments.
    return [
        GoalOutline(
            **row._mapping,
            owners=tuple(owners.get(row.id, ())),
            skipped_periods=frozenset(skips.get(row.id, ())),
        )
        for row in goals
    ]


# The words a health call shows beside it (the TL;DR, else the update's opening): a DM to a
# champion quotes them, the site shows them in a tooltip.
CALL_WORDS = 300


def load_health(session: Session, goal_ids: Sequence[int] | None) -> dict[int, GoalHealth]:
    """The health calls of these goals (``None``: of every goal), updates stating one and
    health reactions on prompts, in one statement, and what they add up to. The updates are
    found by ``ix_updates_health`` (few of 100,000 updates state a health)."""
    if goal_ids is not None and not goal_ids:
        return {}
    author = func.coalesce(Person.full_name, Update.author_login, Person.github)
    stated = (
        select(
            Update.goal_id,
            Update.health,
            Update.sent_at.label("said_at"),
            literal(HealthSource.UPDATE.value).label("source"),
            func.coalesce(Update.tldr, func.substr(Update.content, 1, CALL_WORDS)).label("words"),
            Update.zulip_message_id,
            Update.url,
            author.label("author"),
        )
        .outerjoin(Person, Person.id == Update.author_id)
        .where(
            Update.health.in_(list(Health)),
            Update.kind == UpdateKind.UPDATE,
            Update.deleted.is_(False),
        )
    )
    reacted = select(
        HealthReaction.goal_id,
        HealthReaction.health,
        HealthReaction.reacted_at,
        literal(HealthSource.REACTION.value),
        null(),
        HealthReaction.zulip_message_id,
        null(),
        func.coalesce(Person.full_name, Person.github),
    ).outerjoin(Person, Person.id == HealthReaction.person_id)
    if goal_ids is not None:
        stated = stated.where(Update.goal_id.in_(list(goal_ids)))
        reacted = reacted.where(HealthReaction.goal_id.in_(list(goal_ids)))
    calls: dict[int, list[HealthCall]] = defaultdict(list)
    row: Any
    for row in session.execute(union_all(stated, reacted)):
        goal_id, value, said_at, source, words, message_id, url, name = row
        calls[goal_id].append(
            HealthCall(
                goal_id=int(goal_id),
                health=Health(value),
                said_at=_aware(said_at),
                source=HealthSource(source),
                words=_opening(words),
                message_id=message_id,
                url=url,
                author=name,
            )
        )
    out: dict[int, GoalHealth] = {}
    for goal_id, found in calls.items():
        health = goal_health(found)
        if health is not None:
            out[goal_id] = health
    return out


def goals_with_calls(session: Session, healths: Collection[Health], since: datetime) -> set[int]:
    """The goals with a call of one of ``healths`` made at or after ``since``, in one statement
    (``ix_updates_health``): the few a tick must look at closely, not all of them."""
    stated = select(Update.goal_id).where(
        Update.health.in_(list(healths)),
        Update.kind == UpdateKind.UPDATE,
        Update.deleted.is_(False),
        Update.sent_at >= since,
    )
    reacted = select(HealthReaction.goal_id).where(
        HealthReaction.health.in_(list(healths)), HealthReaction.reacted_at >= since
    )
    return {int(g) for g in session.execute(union_all(stated, reacted)).scalars() if g is not None}


def _aware(when: datetime) -> datetime:
    """A union's columns lose their column type: times come back naive UTC (SQLite), or aware."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _opening(words: str | None) -> str | None:
    """The first paragraph of what an owner wrote, at most ``CALL_WORDS`` characters."""
    if not words:
        return None
    first = words.strip().split("\n\n", 1)[0].strip()
    return first[:CALL_WORDS] or None


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
        query = query.where(goal_is_listed())
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
