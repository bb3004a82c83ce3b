"""What the website is made from, read from the database in a fixed number of statements.

``load_site_data`` returns plain, immutable values: the goals of one period as the rest of the bot
sees them (``queries.GoalView``), every live owner update of those goals, and the few goal columns
that only the website shows (metadata rows such as champions and roadmaps).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from zulip_goals_bot.db.models import GitHubProgress, Goal, Person, Update
from zulip_goals_bot.db.queries import goals_of_period, load_goals
from zulip_goals_bot.domain.states import UpdateKind
from zulip_goals_bot.website.content import SiteData, SiteError, SiteUpdate

_UPDATE_COLUMNS = (
    Update.zulip_message_id,
    Update.goal_id,
    Person.full_name,
    Person.github,
    Update.content,
    Update.tldr,
    Update.help_wanted,
    Update.sent_at,
    Update.edited_at,
    Update.source,
    Update.url,
    Update.author_login,
    Update.id,
)


def load_site_data(session: Session, period: str | None) -> SiteData:
    """The goals of ``period`` (the newest by default, as the digest chooses: ``goals_of_period``;
    four statements, one more for an earlier period), their extra columns (one) and all their
    updates (one)."""
    if not (everything := load_goals(session)):
        raise SiteError("no goals yet; import them with `zulip-goals-bot goals import`")
    chosen, name = goals_of_period(session, everything, period)
    goals = tuple(chosen)
    ids = [g.id for g in goals]
    extra: dict[int, Mapping[str, str]] = {}
    modified: dict[int, datetime] = {}
    updates: dict[int, list[SiteUpdate]] = defaultdict(list)
    days: dict[int, list[tuple[date, int, int]]] = defaultdict(list)
    if ids:
        for goal_id, day, done, total in session.execute(
            select(GitHubProgress.goal_id, GitHubProgress.day, GitHubProgress.done,
                   GitHubProgress.total)
            .where(GitHubProgress.goal_id.in_(ids))
            .order_by(GitHubProgress.goal_id, GitHubProgress.day)
        ):  # fmt: skip
            days[goal_id].append((day, done, total))
        for goal_id, rows, changed in session.execute(
            select(Goal.id, Goal.extra, Goal.updated_at).where(Goal.id.in_(ids))
        ):
            extra[goal_id] = _text_rows(rows)
            modified[goal_id] = changed
        query = (
            select(*_UPDATE_COLUMNS)
            .outerjoin(Person, Person.id == Update.author_id)
            .join(Goal, Goal.id == Update.goal_id)
            .where(
                Update.goal_id.in_(ids),
                Update.kind == UpdateKind.UPDATE,
                Update.deleted.is_(False),
            )
            .order_by(Update.goal_id, Update.sent_at.desc(), Update.id.desc())
        )
        wanted = set(ids)
        # Core rows on the session's connection: the ORM's result machinery would double the
        # cost of reading plain columns (as in ``queries.goal_names``).
        for row in session.connection().execute(query):
            update = SiteUpdate._make(row)
            if update.goal_id in wanted:
                updates[update.goal_id].append(update)
    return SiteData(
        period=name or "",
        goals=goals,
        updates={k: tuple(v) for k, v in updates.items()},
        extra=extra,
        modified=modified,
        progress_days={k: tuple(v) for k, v in days.items()},
    )


def _text_rows(rows: Any) -> dict[str, str]:
    if not isinstance(rows, dict):
        return {}
    return {str(k): str(v) for k, v in rows.items() if isinstance(v, str | int | float)}
