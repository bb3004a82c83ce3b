"""Will a goal be asked for updates, and if not, why not and what one change would include it.

The import summary and ``goals list`` answer this for every goal.  The answer comes from the due
rule itself (``Program.standing``: the goal's state as if it were past its grace period with no
update yet), so what is left is what stops it from ever being prompted.
"""

from __future__ import annotations

import enum
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.schedule import DueState
from zulip_goals_bot.domain.views import GoalView, OwnerContact

# How many goals a reason lists by name before saying "and N more".
SHOWN_GOALS = 12


class Reason(enum.StrEnum):
    """Why a goal is not (or not yet) prompted."""

    STATUS = "status not prompted"
    NO_OWNER = "no point of contact"
    PAUSED = "paused"
    COMPLETED = "completed"
    ENDED = "ended with its period"
    RETIRED = "retired"
    NOT_ON_ZULIP = "no owner linked to Zulip"
    AWAY = "every owner away"

    @property
    def blocks(self) -> bool:
        """True when the goal is never prompted as things are; False when it only waits for
        its owners (linked to Zulip, or back from holidays)."""
        return self not in (Reason.NOT_ON_ZULIP, Reason.AWAY)


@dataclass(frozen=True, slots=True)
class Outlook:
    goal: GoalView
    reason: Reason | None  # None: prompted as things are

    @property
    def prompted(self) -> bool:
        return self.reason is None or not self.reason.blocks

    def label(self) -> str:
        """A few words for a table column: 'yes', 'no: status Proposed', 'waiting: ...'."""
        if self.reason is None:
            return "yes"
        if not self.reason.blocks:
            return f"waiting: {self.reason.value}"
        if self.reason is Reason.STATUS:
            return f"no: status {self.goal.status}"
        return f"no: {self.reason.value}"


def outlook(goal: GoalView, now: datetime, program: Program) -> Outlook:
    """Whether ``goal`` is prompted, from the due rule, and the reason when it is not."""
    today = program.today(now)
    state = program.standing(goal, now)
    match state:
        case DueState.INACTIVE:
            reason: Reason | None = Reason.STATUS
        case DueState.PAUSED:
            reason = Reason.PAUSED
        case DueState.COMPLETED:
            reason = Reason.ENDED if goal.ended_in else Reason.COMPLETED
        case DueState.RETIRED:
            reason = Reason.RETIRED
        case DueState.NO_OWNERS:
            reason = Reason.NO_OWNER
        case DueState.AWAY:
            away = any(p.contact(today) is OwnerContact.AWAY for p in goal.prompted_owners())
            reason = Reason.AWAY if away else Reason.NOT_ON_ZULIP
        case _:
            reason = None
    return Outlook(goal, reason)


@dataclass(frozen=True, slots=True)
class ReasonGroup:
    """The goals not prompted for one reason (for STATUS: one status), and how to include them."""

    reason: Reason
    status: str | None
    slugs: tuple[str, ...]
    hint: str

    def render(self) -> list[str]:
        what = (
            f'status "{self.status}" is not one of the prompted statuses'
            if self.reason is Reason.STATUS
            else self.reason.value
        )
        shown = ", ".join(self.slugs[:SHOWN_GOALS])
        if len(self.slugs) > SHOWN_GOALS:
            shown += f", … and {len(self.slugs) - SHOWN_GOALS} more"
        n = len(self.slugs)
        return [f"  {what}: {n} goal{'s' if n != 1 else ''} ({shown})", f"    → {self.hint}"]


def _hint(reason: Reason, status: str | None, statuses: Sequence[str], command: str) -> str:
    match reason:
        case Reason.STATUS:
            wanted = ",".join(dict.fromkeys([*statuses, status or ""]))
            return (
                f"to prompt them: {command} --status {shlex.quote(wanted)}  "
                f"(or active_statuses = {wanted.replace(',', ', ')} in bot.conf)"
            )
        case Reason.NO_OWNER:
            return (
                "add a '| Point of contact | @handle |' row to the file and import again, or say "
                "`owners add <goal> @handle` to the bot"
            )
        case Reason.PAUSED:
            return "say `resume <goal>` to the bot"
        case Reason.COMPLETED:
            return "say `resume <goal>` to the bot to prompt it again"
        case Reason.ENDED:
            return "a goal of a new period continues it when it has the same tracking issue"
        case Reason.RETIRED:
            return "put its file back in the folder and import again"
        case Reason.NOT_ON_ZULIP:
            return (
                "link the owners: `zulip-goals-bot people import PATH`, the people file, or "
                "`map @handle @user` in chat"
            )
        case _:
            return "prompts resume when an owner is back (`back`)"


def reason_groups(
    outlooks: Iterable[Outlook], statuses: Sequence[str], command: str
) -> list[ReasonGroup]:
    """The goals that are not prompted, grouped by reason (and by status), with their hint.

    ``statuses`` are the prompted statuses in force; ``command`` is how the operator imports,
    for the hint that adds a status.
    """
    groups: dict[tuple[Reason, str | None], list[str]] = {}
    for o in outlooks:
        if o.reason is not None:
            status = o.goal.status if o.reason is Reason.STATUS else None
            groups.setdefault((o.reason, status), []).append(o.goal.slug)
    order = list(Reason)
    return [
        ReasonGroup(reason, status, tuple(sorted(slugs)), _hint(reason, status, statuses, command))
        for (reason, status), slugs in sorted(
            groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1] or "")
        )
    ]
