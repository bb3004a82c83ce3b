"""The states and kinds a goal, an owner, an update and a delivery can be in.

Plain enums with no database behind them: the core decides with these, and the schema stores
their values (``db.models`` maps them to columns).
"""

from __future__ import annotations

import enum


class GoalState(enum.StrEnum):
    """Lifecycle of a goal as the bot sees it; only ACTIVE goals are prompted."""

    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    RETIRED = "retired"  # gone from the source files or retired by an admin; kept, never deleted


class OwnerRole(enum.StrEnum):
    POINT_OF_CONTACT = "poc"
    OWNER = "owner"
    TASK = "task"
    # A team's champion of a goal: never prompted, sees the goal in `mine`.  Champions are kept
    # in ``goal_champions`` (one row per team and handle), not in ``goal_owners``: a point of
    # contact may champion their own goal for their team.
    CHAMPION = "champion"


class UpdateKind(enum.StrEnum):
    UPDATE = "update"  # an owner's progress update
    COMMENT = "comment"  # someone else's message in the goal's topic
    PENDING = "pending"  # a DM whose goal is not known yet; kept until the owner says which


class UpdateSource(enum.StrEnum):
    TOPIC = "topic"
    DM = "dm"
    IMPORT = "import"
    GITHUB = "github"  # a comment on the goal's tracking issue


# Written in Zulip: these updates have a message there (catch-up compares them with Zulip's).
ZULIP_SOURCES = frozenset({UpdateSource.TOPIC, UpdateSource.DM})


class MirrorState(enum.StrEnum):
    """Where a Zulip update stands on its way to the tracking issue (``github_mirror.state``)."""

    CLAIMED = "claimed"  # recorded before posting: a crash leaves it here, and the bot looks first
    POSTED = "posted"  # the comment exists and holds the update's current text
    STALE = "stale"  # the update was edited or moved: the comment must follow
    DELETED = "deleted"  # the update was deleted: the comment must go (then the row is done)
    GONE = "gone"  # the comment was removed; nothing is owed


class DeliveryKind(enum.StrEnum):
    PROMPT = "prompt"  # topic message asking for an update
    REMINDER = "reminder"  # topic reminder to silent owners
    DM_PROMPT = "dm_prompt"  # one DM per owner listing all their due goals
    DM_REMINDER = "dm_reminder"
    DIGEST = "digest"  # weekly digest to a stream topic or a subscriber
    CLOSING = "closing"  # the one note in a goal's topic when its period ended without it
    HEALTH_ALERT = "health_alert"  # a champion's or lead's DM: the goal turned blocked


class DeliveryState(enum.StrEnum):
    CLAIMED = "claimed"  # recorded before sending: a crash leaves it here
    SENT = "sent"
    FAILED = "failed"


# What a goal's state means for the bot, each decided here once.
# Asked for updates on schedule (and by `prompt --now`).
PROMPTED_STATES = frozenset({GoalState.ACTIVE})
# Still running: its owners still own it (their replies are updates, a rollover ends it unless
# it continues), though a paused goal is not asked.
RUNNING_STATES = frozenset({GoalState.ACTIVE, GoalState.PAUSED})
# Shown in lists and answered about: everything but a retired goal.
LISTED_STATES = frozenset(set(GoalState) - {GoalState.RETIRED})


# A goal gone from its files (not ``active``) is never live, whatever its state.  The SQL
# filters of the same names (``db.models.goal_is_prompted`` ...) say the same of a row.
def is_prompted(active: bool, state: GoalState) -> bool:
    return active and state in PROMPTED_STATES


def is_running(active: bool, state: GoalState) -> bool:
    return active and state in RUNNING_STATES


def is_listed(active: bool, state: GoalState) -> bool:
    return active and state in LISTED_STATES
