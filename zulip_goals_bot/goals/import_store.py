"""The database side of a goals import: the stored goals a plan is made from, and writing it.

``load_period``/``load_earlier`` read what ``import_plan.plan_import`` compares the files with, in
a fixed number of statements; ``apply_plan`` writes a plan (goals that did not change are not
written at all, and updates are never touched); roadmap pages and the statuses chosen with
``--status`` are stored here too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.orm import Session

from zulip_goals_bot.db.models import (
    BotState,
    Goal,
    GoalChampion,
    GoalOwner,
    GoalPastPeriod,
    Person,
    Roadmap,
)
from zulip_goals_bot.db.queries import MANUAL_PERIOD
from zulip_goals_bot.domain.states import GoalState
from zulip_goals_bot.domain.views import RoadmapRef
from zulip_goals_bot.goals.files import RoadmapDoc
from zulip_goals_bot.goals.import_plan import (
    SLUG_MAX,
    ChampionSpec,
    GoalFields,
    ImportPlan,
    OwnerSpec,
    StoredGoal,
    parse_statuses,
)
from zulip_goals_bot.goals.import_report import PeriodStatuses, RoadmapCounts

# bot_state key under which `--status` is remembered for one period (it applies to re-imports).
STATUSES_KEY = "prompted_statuses:{period}"


def load_period(session: Session, period: str) -> list[StoredGoal]:
    """The stored goals of one period with their owners and champions, in three statements."""
    return load_stored(session, Goal.period == period)


def load_earlier(session: Session, period: str) -> list[StoredGoal]:
    """Goals a rollover into ``period`` may continue or end: those imported into other periods
    (goals added by hand are left alone)."""
    return load_stored(
        session,
        (Goal.period != period) & (Goal.period != MANUAL_PERIOD) & Goal.source_path.is_not(None),
    )


def load_stored(session: Session, where: ColumnElement[bool]) -> list[StoredGoal]:
    """Stored goals matching ``where``, with owners and champions, in three statements."""
    goals = list(session.execute(select(Goal).where(where)).scalars())
    owners: dict[int, list[OwnerSpec]] = defaultdict(list)
    for goal_id, role, person_id, github in session.execute(
        select(GoalOwner.goal_id, GoalOwner.role, Person.id, Person.github)
        .join(Person, Person.id == GoalOwner.person_id)
        .join(Goal, Goal.id == GoalOwner.goal_id)
        .where(where)
        .order_by(GoalOwner.goal_id, GoalOwner.position)
    ):
        # An owner without a handle cannot come from a file: it shows as a difference.
        owners[goal_id].append(OwnerSpec(github or f"#person{person_id}", role))
    champions: dict[int, list[ChampionSpec]] = defaultdict(list)
    for goal_id, team, github in session.execute(
        select(GoalChampion.goal_id, GoalChampion.team, GoalChampion.github)
        .join(Goal, Goal.id == GoalChampion.goal_id)
        .where(where)
        .order_by(GoalChampion.goal_id, GoalChampion.position)
    ):
        champions[goal_id].append(ChampionSpec(team, github))
    return [
        StoredGoal(
            id=g.id,
            period=g.period,
            fields=GoalFields(
                slug=g.slug,
                title=g.title,
                short_title=g.short_title,
                status=g.status,
                flagship=g.flagship,
                tracking_issue=g.tracking_issue,
                tracking_url=g.tracking_url,
                zulip_channel=g.zulip_channel,
                teams=tuple(g.team_list),
                active=g.active,
                extra=tuple(sorted((str(k), str(v)) for k, v in (g.extra or {}).items())),
                source_path=g.source_path,
                owners=tuple(owners.get(g.id, ())),
                highlight=g.highlight,
                summary=g.summary,
                roadmaps=RoadmapRef.from_stored(g.roadmaps),
                champions=tuple(champions.get(g.id, ())),
            ),
            state=g.state,
            zulip_topic=g.zulip_topic,
            ended_in=g.ended_in,
        )
        for g in goals
    ]


def all_topics(session: Session) -> set[str]:
    """Every topic a goal holds, in any period: a new goal's topic must differ from them."""
    return set(session.execute(select(Goal.zulip_topic)).scalars())


def _people_for(session: Session, handles: Collection[str], now: datetime) -> dict[str, int]:
    """Person ids for GitHub handles; github-only placeholders for the ones never seen."""
    if not handles:
        return {}
    found = {
        github: pid
        for pid, github in session.execute(
            select(Person.id, Person.github).where(Person.github.in_(sorted(handles)))
        )
        if github is not None
    }
    missing = [Person(github=h, created_at=now) for h in sorted(set(handles) - set(found))]
    if missing:
        session.add_all(missing)
        session.flush()
        found.update({p.github: p.id for p in missing if p.github is not None})
    return found


def _set_fields(goal: Goal, f: GoalFields) -> None:
    goal.slug = f.slug
    goal.title = f.title
    goal.short_title = f.short_title
    goal.status = f.status
    goal.flagship = f.flagship
    goal.tracking_issue = f.tracking_issue
    goal.tracking_url = f.tracking_url
    goal.zulip_channel = f.zulip_channel
    goal.teams = ",".join(f.teams)
    goal.active = f.active
    goal.extra = dict(f.extra)
    goal.source_path = f.source_path
    goal.highlight = f.highlight
    goal.summary = f.summary
    goal.roadmaps = [r.stored() for r in f.roadmaps] or None


def _champion_rows(goal_id: int, f: GoalFields) -> list[GoalChampion]:
    return [
        GoalChampion(goal_id=goal_id, team=c.team, github=c.github, position=i)
        for i, c in enumerate(f.champions)
    ]


def _owner_rows(goal_id: int, f: GoalFields, people: Mapping[str, int]) -> list[GoalOwner]:
    return [
        GoalOwner(goal_id=goal_id, person_id=people[o.github], role=o.role, position=i)
        for i, o in enumerate(f.owners)
    ]


def apply_plan(session: Session, plan: ImportPlan, now: datetime) -> dict[str, int]:
    """Write an ImportPlan; returns the ids of the goals it created, by slug.

    Goals that did not change are not written at all, and updates are never touched.
    """
    owner_changes = [c for c in plan.changes if c.owners_changed]
    handles = {o.github for c in plan.creates for o in c.fields.owners}
    handles |= {o.github for c in owner_changes for o in c.fields.owners}
    # Champions get a row too, so that mapping the handle to a Zulip account (people file,
    # `people import`, profiles) finds them before they ever talk to the bot.
    fields = [c.fields for c in plan.creates] + [c.fields for c in plan.changes]
    handles |= {ch.github for f in fields for ch in f.champions}
    people = _people_for(session, handles, now)

    created: dict[str, Goal] = {}
    for c in plan.creates:
        goal = Goal(
            period=c.period,
            zulip_topic=c.topic,
            state=GoalState.ACTIVE,
            created_at=now,
            updated_at=now,
        )
        _set_fields(goal, c.fields)
        session.add(goal)
        created[c.fields.slug] = goal
    if plan.changes:
        ids = [c.goal_id for c in plan.changes]
        goals = {g.id: g for g in session.execute(select(Goal).where(Goal.id.in_(ids))).scalars()}
        for change in plan.changes:
            goal = goals[change.goal_id]
            if change.moved_from is not None:
                # Remembered so that the old period's digest and export still show the goal, and
                # a re-import of the old folder finds it instead of creating it again.
                session.merge(GoalPastPeriod(goal_id=goal.id, period=goal.period, slug=goal.slug))
                goal.period = change.period
            _set_fields(goal, change.fields)
            if change.revive:
                goal.state = GoalState.ACTIVE
                goal.ended_in = None
            goal.updated_at = now
    session.flush()
    champion_changes = [c for c in plan.changes if any(d.name == "champions" for d in c.changes)]
    if champion_changes:
        session.execute(
            delete(GoalChampion).where(
                GoalChampion.goal_id.in_([c.goal_id for c in champion_changes])
            ),
            execution_options={"synchronize_session": False},
        )
    session.add_all(
        [r for c in plan.creates for r in _champion_rows(created[c.fields.slug].id, c.fields)]
        + [r for c in champion_changes for r in _champion_rows(c.goal_id, c.fields)]
    )
    if owner_changes:
        session.execute(
            delete(GoalOwner).where(GoalOwner.goal_id.in_([c.goal_id for c in owner_changes])),
            execution_options={"synchronize_session": "fetch"},
        )
    rows = [
        r for c in plan.creates for r in _owner_rows(created[c.fields.slug].id, c.fields, people)
    ]
    rows += [r for c in owner_changes for r in _owner_rows(c.goal_id, c.fields, people)]
    session.add_all(rows)
    if plan.retires:
        session.execute(
            update(Goal)
            .where(Goal.id.in_([r.goal_id for r in plan.retires]))
            .values(state=GoalState.RETIRED, active=False, updated_at=now),
            execution_options={"synchronize_session": False},
        )
    if plan.ends:
        session.execute(
            update(Goal)
            .where(Goal.id.in_([e.goal_id for e in plan.ends]))
            .values(state=GoalState.COMPLETED, ended_in=plan.period, updated_at=now),
            execution_options={"synchronize_session": False},
        )
    session.flush()
    return {slug: g.id for slug, g in created.items()}


def prompted_statuses(
    session: Session, period: str, given: Sequence[str] | None, configured: Sequence[str]
) -> PeriodStatuses:
    """The statuses prompted in ``period``: ``--status`` (remembered for the next imports of the
    period), else what an earlier ``--status`` chose for it, else bot.conf's ``active_statuses``.
    """
    key = STATUSES_KEY.format(period=period)
    if given:
        return PeriodStatuses(period, tuple(given), "--status")
    row = session.get(BotState, key)
    if row is not None and row.value.strip():
        return PeriodStatuses(period, parse_statuses(row.value), "remembered")
    return PeriodStatuses(period, tuple(configured), "bot.conf")


def count_champions(session: Session, goal_ids: Sequence[int]) -> int:
    """How many champion rows these goals have (the report counts them)."""
    if not goal_ids:
        return 0
    query = select(func.count()).select_from(GoalChampion)
    return session.execute(query.where(GoalChampion.goal_id.in_(list(goal_ids)))).scalar_one()


def moved_on(session: Session, period: str) -> set[str]:
    """Slugs of ``period``'s goals that continued into a later period (their files are old)."""
    query = select(GoalPastPeriod.slug).where(GoalPastPeriod.period == period)
    return set(session.execute(query).scalars())


def remember_statuses(session: Session, chosen: PeriodStatuses, now: datetime) -> None:
    """Keep ``--status`` for the period, so that its next imports prompt the same statuses."""
    if chosen.source == "--status":
        key = STATUSES_KEY.format(period=chosen.period)
        session.merge(BotState(key=key, value=",".join(chosen.statuses), updated_at=now))


def import_roadmaps(
    session: Session, period: str, roadmaps: Sequence[tuple[Path, RoadmapDoc]], now: datetime
) -> RoadmapCounts:
    """Create or update the roadmap pages of a period (by slug); never deletes one."""
    if not roadmaps:
        return RoadmapCounts(period)
    stored = {
        r.slug: r
        for r in session.execute(select(Roadmap).where(Roadmap.period == period)).scalars()
    }
    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    for path, doc in roadmaps:
        values = {
            "title": doc.title,
            "short_title": doc.short_title,
            "summary": doc.summary,
            "owners": ",".join(h.lower() for h in doc.owners),
            "source_path": str(path),
        }
        row = stored.get(doc.slug[:SLUG_MAX])
        if row is None:
            row = Roadmap(period=period, slug=doc.slug[:SLUG_MAX], created_at=now, updated_at=now,
                          **values)  # fmt: skip
            session.add(row)
            stored[row.slug] = row
            created.append(doc.slug)
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at = now
            updated.append(doc.slug)
        else:
            unchanged.append(doc.slug)
    session.flush()
    return RoadmapCounts(period, tuple(created), tuple(updated), tuple(unchanged))
