"""The database schema, as SQLAlchemy 2.0 typed ORM classes.

Every timestamp is stored as naive UTC and handed back timezone-aware (``UTCDateTime``), so that
SQLite and PostgreSQL behave the same.  Uniqueness constraints carry the "exactly once" promises:
one update per Zulip message, one delivery per (kind, target, period).
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from zulip_goals_bot.domain.health import Health
from zulip_goals_bot.domain.states import (
    LISTED_STATES,
    PROMPTED_STATES,
    RUNNING_STATES,
    DeliveryKind,
    DeliveryState,
    GoalState,
    OwnerRole,
    UpdateKind,
    UpdateSource,
)

# Stable constraint names so that Alembic batch migrations on SQLite can find them again.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as naive UTC; return them aware (UTC) on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


class Goal(Base):
    __tablename__ = "goals"
    __table_args__ = (UniqueConstraint("period", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(40))
    slug: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text)
    short_title: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(40), default="Accepted")
    flagship: Mapped[str | None] = mapped_column(String(200))
    tracking_issue: Mapped[int | None] = mapped_column(Integer)
    tracking_url: Mapped[str | None] = mapped_column(Text)
    zulip_channel: Mapped[str | None] = mapped_column(Text)
    zulip_topic: Mapped[str] = mapped_column(String(60), unique=True)
    teams: Mapped[str] = mapped_column(Text, default="")  # comma-separated, lower case
    state: Mapped[GoalState] = mapped_column(_enum(GoalState), default=GoalState.ACTIVE)
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # imported with a prompted status
    cadence_weeks: Mapped[int | None] = mapped_column(Integer)  # None: the configured default
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    highlight: Mapped[str | None] = mapped_column(String(200))  # the Highlight row's name
    summary: Mapped[str | None] = mapped_column(Text)  # the "What and why" row
    # The goal's Roadmap rows as written: [{"name": ..., "slug": page slug or ""}].
    roadmaps: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    # The period whose import ended this goal (it did not continue there); None while it runs.
    ended_in: Mapped[str | None] = mapped_column(String(40))

    owners: Mapped[list[GoalOwner]] = relationship(
        back_populates="goal", cascade="all, delete-orphan", order_by="GoalOwner.position"
    )

    @property
    def team_list(self) -> list[str]:
        return [t for t in self.teams.split(",") if t]


# The "live goal" filters, one per meaning (domain.states says which states each admits); a goal
# that is not ``active`` (gone from its files) is never live.
def goal_is_prompted() -> ColumnElement[bool]:
    """SQL: the goal is asked for updates."""
    return and_(Goal.active.is_(True), Goal.state.in_(sorted(PROMPTED_STATES)))


def goal_is_running() -> ColumnElement[bool]:
    """SQL: the goal is still running (active or paused): its owners' replies are updates."""
    return and_(Goal.active.is_(True), Goal.state.in_(sorted(RUNNING_STATES)))


def goal_is_listed() -> ColumnElement[bool]:
    """SQL: the goal shows in lists and answers (anything but retired)."""
    return and_(Goal.active.is_(True), Goal.state.in_(sorted(LISTED_STATES)))


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    zulip_user_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    full_name: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str | None] = mapped_column(String(64))
    github: Mapped[str | None] = mapped_column(String(40), unique=True)  # lower case
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)  # realm admin/owner role
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    away_until: Mapped[date | None] = mapped_column(Date)
    mapped_via: Mapped[str | None] = mapped_column(String(20))  # file / profile / claim / admin
    claimed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class GoalOwner(Base):
    __tablename__ = "goal_owners"

    goal_id: Mapped[int] = mapped_column(
        ForeignKey("goals.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[int] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[OwnerRole] = mapped_column(_enum(OwnerRole), default=OwnerRole.OWNER)
    position: Mapped[int] = mapped_column(Integer, default=0)

    goal: Mapped[Goal] = relationship(back_populates="owners")
    person: Mapped[Person] = relationship(lazy="joined")


class GoalChampion(Base):
    """A ``| [team] champion | @handle |`` row of a goal file, by GitHub handle.

    Keyed by handle rather than by person, so linking a handle to a Zulip account (however it
    happens) is all it takes for the champion's `mine` and digest to find the goal.
    """

    __tablename__ = "goal_champions"

    goal_id: Mapped[int] = mapped_column(
        ForeignKey("goals.id", ondelete="CASCADE"), primary_key=True
    )
    team: Mapped[str] = mapped_column(String(100), primary_key=True)  # "" when none is named
    github: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)  # lower case
    position: Mapped[int] = mapped_column(Integer, default=0)


class GoalPastPeriod(Base):
    """A period a goal belonged to before it continued into a later one (with its old slug)."""

    __tablename__ = "goal_past_periods"

    goal_id: Mapped[int] = mapped_column(
        ForeignKey("goals.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[str] = mapped_column(String(40), primary_key=True)
    slug: Mapped[str] = mapped_column(String(200))


class Roadmap(Base):
    """A roadmap page of a goals folder: a theme that groups goals, with its point of contact."""

    __tablename__ = "roadmaps"
    __table_args__ = (UniqueConstraint("period", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(40))
    slug: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text)
    short_title: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    owners: Mapped[str] = mapped_column(Text, default="")  # comma-separated GitHub handles
    source_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Update(Base):
    """A message about a goal: an owner's update, a comment, or a DM waiting for its goal."""

    __tablename__ = "updates"
    # Covers "the live owner updates of a goal by time" (latest per goal, carried summaries), so
    # the digest's newest-update-per-goal reads the index alone instead of 100,000 table rows.
    __table_args__ = (
        Index("ix_updates_goal_kind_sent", "goal_id", "kind", "deleted", "sent_at"),
        # The few updates stating a health, found without reading the goals' other updates.
        Index("ix_updates_health", "health", "goal_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Where it was written: a Zulip message, or (source GITHUB) a comment on the tracking issue.
    zulip_message_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    github_comment_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    url: Mapped[str | None] = mapped_column(Text)  # the comment's page, for GitHub updates
    author_login: Mapped[str | None] = mapped_column(String(40))  # GitHub author, lower case
    goal_id: Mapped[int | None] = mapped_column(ForeignKey("goals.id", ondelete="SET NULL"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    kind: Mapped[UpdateKind] = mapped_column(_enum(UpdateKind), default=UpdateKind.UPDATE)
    source: Mapped[UpdateSource] = mapped_column(_enum(UpdateSource), default=UpdateSource.TOPIC)
    content: Mapped[str] = mapped_column(Text)
    tldr: Mapped[str | None] = mapped_column(Text)
    help_wanted: Mapped[str | None] = mapped_column(Text)
    # The owner's own call of how the goal is going, when the update states one.
    health: Mapped[Health | None] = mapped_column(_enum(Health))
    stream: Mapped[str | None] = mapped_column(Text)
    topic: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime]
    edited_at: Mapped[datetime | None]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    goal: Mapped[Goal | None] = relationship()
    author: Mapped[Person | None] = relationship()


class HealthReaction(Base):
    """An owner's health reaction on the bot's prompt of a goal (one of ``REACTION_HEALTH``);
    removed with the reaction."""

    __tablename__ = "health_reactions"
    __table_args__ = (UniqueConstraint("zulip_message_id", "zulip_user_id", "emoji_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    goal_id: Mapped[int] = mapped_column(ForeignKey("goals.id", ondelete="CASCADE"))
    zulip_message_id: Mapped[int] = mapped_column(BigInteger)  # the prompt or reminder
    zulip_user_id: Mapped[int] = mapped_column(BigInteger)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    emoji_name: Mapped[str] = mapped_column(String(60))
    health: Mapped[Health] = mapped_column(_enum(Health))
    reacted_at: Mapped[datetime]


class GitHubIssue(Base):
    """What the last sync saw of a goal's tracking issue: enough to ask GitHub "changed?" cheaply
    (the issue's and each comment page's ETag) and its task list as progress."""

    __tablename__ = "github_issues"

    goal_id: Mapped[int] = mapped_column(
        ForeignKey("goals.id", ondelete="CASCADE"), primary_key=True
    )
    repository: Mapped[str] = mapped_column(String(200))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str | None] = mapped_column(String(20))
    issue_etag: Mapped[str | None] = mapped_column(Text)
    # The newest comment time seen: the next sync asks for comments updated since then, with
    # the ETag of that answer, so an issue nobody touched answers 304 (free of rate limit).
    since: Mapped[datetime | None]
    comments_etag: Mapped[str | None] = mapped_column(Text)
    # Every comment on the issue as last seen (updates, others' comments and boilerplate alike):
    # when the issue's comment count differs, something was deleted and the whole list is read.
    comment_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    tasks_done: Mapped[int] = mapped_column(Integer, default=0)
    tasks_total: Mapped[int] = mapped_column(Integer, default=0)
    open_tasks: Mapped[list[str]] = mapped_column(JSON, default=list)
    synced_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)  # why the last sync of this issue failed


class GitHubProgress(Base):
    """A goal's task list on each day it changed: the program's progress over time."""

    __tablename__ = "github_progress"

    goal_id: Mapped[int] = mapped_column(
        ForeignKey("goals.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    done: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)


class GitHubMirror(Base):
    """A Zulip update posted to its tracking issue: claimed before the comment is posted, so a
    crash or a retry never posts it twice."""

    __tablename__ = "github_mirror"

    id: Mapped[int] = mapped_column(primary_key=True)
    update_id: Mapped[int] = mapped_column(
        ForeignKey("updates.id", ondelete="CASCADE"), unique=True
    )
    repository: Mapped[str] = mapped_column(String(200))
    number: Mapped[int] = mapped_column(Integer)
    comment_id: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(20))  # MirrorState
    body_hash: Mapped[str | None] = mapped_column(String(64))  # of the body GitHub holds
    claimed_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class HandledMessage(Base):
    """Every Zulip message the bot has dealt with, recorded in the transaction of its effect."""

    __tablename__ = "handled_messages"

    zulip_message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(40))
    handled_at: Mapped[datetime]


class Delivery(Base):
    """A message the bot owes: claimed before it is sent, so nothing goes out twice."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("kind", "target", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[DeliveryKind] = mapped_column(_enum(DeliveryKind))
    target: Mapped[str] = mapped_column(String(200))  # "goal:12", "person:5", "stream:s>t"
    period: Mapped[str] = mapped_column(String(40))  # start date of the period, ISO
    goal_id: Mapped[int | None] = mapped_column(ForeignKey("goals.id", ondelete="SET NULL"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState))
    # Where it goes: a stream topic, or the DM recipients (comma-separated Zulip user ids).
    stream: Mapped[str | None] = mapped_column(Text)
    topic: Mapped[str | None] = mapped_column(Text)
    recipients: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)  # parts separated by PART_SEPARATOR
    zulip_message_ids: Mapped[str | None] = mapped_column(Text)  # comma-separated
    error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class Skip(Base):
    """An owner said "skip" for one period of one goal."""

    __tablename__ = "skips"
    __table_args__ = (UniqueConstraint("goal_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    goal_id: Mapped[int] = mapped_column(ForeignKey("goals.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(40))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]


class DigestSubscription(Base):
    __tablename__ = "digest_subscriptions"

    person_id: Mapped[int] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime]
    # "all": the whole digest; "champion": only the goals the subscriber champions.
    scope: Mapped[str] = mapped_column(String(20), default="all", server_default="all")

    person: Mapped[Person] = relationship(lazy="joined")


class BotState(Base):
    """Small key/value facts that must survive restarts (the high-water message id, the lease)."""

    __tablename__ = "bot_state"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class ChangeStamp(Base):
    """A value the database itself sets anew (a random number) on every write to a table, by
    triggers (migration 0004): a process keeps that table's rows in memory and knows when anyone,
    in any process, changed them. Random rather than counted, so that a rolled-back write's value
    never comes back."""

    __tablename__ = "change_stamps"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    stamp: Mapped[int] = mapped_column(BigInteger)


# The change stamp of the goals table (see ``queries.goal_names``).
GOALS_STAMP = "goals"


# Outcomes (``handled_messages.outcome``) of a message whose acknowledgement is owed (set in its
# batch's transaction) and done (set once the reaction is on Zulip); start-up reacts to the owed
# ones, so a crash between the commit and the reaction loses no acknowledgement.
ACK_OWED = "ack owed"
ACK_DONE = "acknowledged"
# A command's message is stored with routing's outcome ("command") until its answer is sent;
# start-up answers those still waiting.
COMMAND_ANSWERED = "command answered"


HIGH_WATER_KEY = "high_water_message_id"
# When `run` first started on this database (ISO 8601): a new install owes no digest for the week
# it started in.
FIRST_START_KEY = "first_started_at"
# Separates the messages of a delivery that had to be split under Zulip's size limit.
PART_SEPARATOR = "\n\x1e\n"


def id_list(value: str | None) -> list[int]:
    """The ids a comma-separated column holds (``zulip_message_ids``, ``recipients``)."""
    return [int(i) for i in (value or "").split(",") if i]
