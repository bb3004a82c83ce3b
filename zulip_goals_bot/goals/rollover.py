"""A new period of the program: which goals continue, and one closing note for those that end.

Importing the next period with ``--rollover`` keeps a goal that continues (same tracking issue,
or a "continuation of" link to the earlier goal) as the same goal: its topic, history, cadence
and skips stay, it only moves to the new period.  Goals of the earlier period that do not
continue are completed, never deleted, and get exactly one note in their topic saying so.  The
note goes through the outbox under a key of its own (closing, goal, period), so whether the
import command or the running bot sends it, and however often either runs, it is sent once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from zulip_goals_bot.bot import outbox
from zulip_goals_bot.bot.zulip_io import Sender
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Delivery, Goal
from zulip_goals_bot.domain.markdown import neutralize
from zulip_goals_bot.domain.states import DeliveryKind, DeliveryState

log = logging.getLogger(__name__)


# -- the closing note ---------------------------------------------------------------------------


def compose_closing_note(title: str, slug: str, period: str, next_period: str | None) -> str:
    """The note in an ended goal's topic: what happened, that nothing is lost, where to look."""
    after = f" The goals of **{_plain(next_period)}** have their own topics." if next_period else ""
    return (
        f":checkered_flag: **{_plain(title)}** ended with period **{_plain(period)}**: "
        "it did not continue into the next one, so I will not ask for updates here any more. "
        f"Its history stays, and `status {slug.replace('`', '')}` still answers.{after}"
    )


def _plain(text: str) -> str:
    """Stored text inside bold marks: unable to ping, unable to end the bold early."""
    return neutralize(text).replace("*", "")


@dataclass(frozen=True, slots=True)
class ClosingNote:
    goal_id: int
    topic: str
    period: str
    text: str

    @property
    def target(self) -> str:
        return f"goal:{self.goal_id}"


def owed_closing_notes(db: Database) -> list[ClosingNote]:
    """Ended goals whose closing note is neither sent nor being sent, in two statements.

    A note whose sending failed is owed again (the outbox retries a failed delivery); one
    claimed by a process that crashed is finished by that bot's recovery, not here.
    """
    with db.read() as session:
        claimed = {
            (goal_id, period)
            for goal_id, period in session.execute(
                select(Delivery.goal_id, Delivery.period).where(
                    Delivery.kind == DeliveryKind.CLOSING,
                    Delivery.state != DeliveryState.FAILED,
                )
            )
        }
        rows = session.execute(
            select(Goal.id, Goal.title, Goal.short_title, Goal.slug, Goal.period, Goal.zulip_topic,
                   Goal.ended_in)
            .where(Goal.ended_in.is_not(None))
            .order_by(Goal.id)
        ).all()  # fmt: skip
    return [
        ClosingNote(gid, topic, period, compose_closing_note(short or title, slug, period, ended))
        for gid, title, short, slug, period, topic, ended in rows
        if (gid, period) not in claimed
    ]


def send_closing_notes(
    db: Database, sender: Sender, stream: str, now: Callable[[], datetime],
    notes: Iterable[ClosingNote] | None = None,
) -> int:  # fmt: skip
    """Post every owed closing note once (claimed first, like every message the bot owes)."""
    sent = 0
    for note in owed_closing_notes(db) if notes is None else notes:
        outcome = outbox.deliver(
            db,
            sender,
            outbox.Request(
                kind=DeliveryKind.CLOSING,
                target=note.target,
                period=note.period,
                destination=outbox.Destination.to_topic(stream, note.topic),
                parts=(note.text,),
                goal_id=note.goal_id,
            ),
            now,
        )
        if outcome is outbox.Outcome.SENT:
            sent += 1
    if sent:
        log.info("posted %d closing note(s) for goals that ended with their period", sent)
    return sent
