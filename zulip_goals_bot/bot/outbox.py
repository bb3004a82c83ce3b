"""Exactly-once sending: claim a delivery in the database, send it, mark it sent.

A delivery is unique per (kind, target, period). The claim is committed before anything goes to
Zulip, so a second process, a restart or a double-fired job finds the claim and sends nothing. A
crash between claim and send leaves a CLAIMED row; ``recover`` finishes it on start-up, first
looking in Zulip for a message that did go out, so it is not sent twice.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from zulip_goals_bot.bot.zulip_io import Sender
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import PART_SEPARATOR, Delivery, id_list
from zulip_goals_bot.domain.states import DeliveryKind, DeliveryState
from zulip_goals_bot.errors import ZulipError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Destination:
    """A stream topic or a set of DM recipients."""

    stream: str | None = None
    topic: str | None = None
    user_ids: tuple[int, ...] = ()

    @classmethod
    def to_topic(cls, stream: str, topic: str) -> Destination:
        return cls(stream=stream, topic=topic)

    @classmethod
    def to_users(cls, user_ids: Sequence[int]) -> Destination:
        return cls(user_ids=tuple(sorted(set(user_ids))))

    def send(self, sender: Sender, content: str) -> int:
        if self.stream is not None and self.topic is not None:
            return sender.send_stream(self.stream, self.topic, content)
        return sender.send_dm(list(self.user_ids), content)

    def describe(self) -> str:
        if self.stream is not None:
            return f"#{self.stream} > {self.topic}"
        return "DM to " + ", ".join(str(u) for u in self.user_ids)


class Outcome(enum.StrEnum):
    SENT = "sent"
    ALREADY = "already claimed"  # another run, process or fire got there first
    FAILED = "failed"  # kept; retried on the next tick while its period lasts


@dataclass(frozen=True, slots=True)
class Request:
    kind: DeliveryKind
    target: str
    period: str
    destination: Destination
    parts: tuple[str, ...]
    goal_id: int | None = None
    person_id: int | None = None


def claim(db: Database, req: Request, now: datetime) -> int | None:
    """Record the intent to send; None when it is already claimed or sent."""
    try:
        with db.write() as session:
            existing = session.execute(
                select(Delivery).where(
                    Delivery.kind == req.kind,
                    Delivery.target == req.target,
                    Delivery.period == req.period,
                )
            ).scalar_one_or_none()
            if existing is not None:
                if existing.state is not DeliveryState.FAILED:
                    return None
                # A failed delivery may be tried again; the state change is the new claim.
                existing.state = DeliveryState.CLAIMED
                existing.claimed_at = now
                return existing.id
            row = Delivery(
                kind=req.kind,
                target=req.target,
                period=req.period,
                goal_id=req.goal_id,
                person_id=req.person_id,
                state=DeliveryState.CLAIMED,
                stream=req.destination.stream,
                topic=req.destination.topic,
                recipients=",".join(str(u) for u in req.destination.user_ids) or None,
                content=PART_SEPARATOR.join(req.parts),
                claimed_at=now,
            )
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        return None


def _send_parts(
    db: Database,
    sender: Sender,
    delivery_id: int,
    destination: Destination,
    parts: Sequence[str],
    already: list[int],
    now: Callable[[], datetime],
) -> Outcome:
    ids = list(already)
    try:
        for part in parts[len(ids) :]:
            ids.append(destination.send(sender, part))
            with db.write() as session:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == delivery_id)
                    .values(zulip_message_ids=",".join(map(str, ids)))
                )
    except ZulipError as exc:
        log.error("delivery %s to %s failed: %s", delivery_id, destination.describe(), exc)
        with db.write() as session:
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(state=DeliveryState.FAILED, error=str(exc)[:500])
            )
        return Outcome.FAILED
    with db.write() as session:
        # The ids again: one that ``recover`` found in Zulip was not recorded by the loop above.
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id)
            .values(
                state=DeliveryState.SENT,
                sent_at=now(),
                error=None,
                zulip_message_ids=",".join(map(str, ids)),
            )
        )
    log.info("delivery %s sent to %s as %s", delivery_id, destination.describe(), ids)
    return Outcome.SENT


def deliver(db: Database, sender: Sender, req: Request, now: Callable[[], datetime]) -> Outcome:
    delivery_id = claim(db, req, now())
    if delivery_id is None:
        return Outcome.ALREADY
    return _send_parts(db, sender, delivery_id, req.destination, req.parts, [], now)


FindSent = Callable[[Destination, str], int | None]


def _recorded_ids(db: Database, targets: set[str]) -> set[int]:
    """Zulip message ids already recorded by the deliveries to these targets."""
    if not targets:
        return set()
    with db.read() as session:
        rows = session.execute(
            select(Delivery.zulip_message_ids).where(
                Delivery.target.in_(targets), Delivery.zulip_message_ids.is_not(None)
            )
        ).scalars()
        return {i for row in rows for i in id_list(row)}


def recover(
    db: Database,
    sender: Sender,
    find_sent: FindSent,
    now: Callable[[], datetime],
    still_wanted: Callable[[Delivery], bool] = lambda d: True,
) -> int:
    """Finish deliveries left CLAIMED by a crash; returns how many were completed."""
    with db.read() as session:
        pending = list(
            session.execute(select(Delivery).where(Delivery.state == DeliveryState.CLAIMED))
            .scalars()
            .all()
        )
    recorded = _recorded_ids(db, {d.target for d in pending})
    done = 0
    for d in pending:
        dest = Destination(
            stream=d.stream,
            topic=d.topic,
            user_ids=tuple(id_list(d.recipients)),
        )
        parts = d.content.split(PART_SEPARATOR)
        ids = id_list(d.zulip_message_ids)
        # The part after the last recorded one may have reached Zulip before the crash.
        if len(ids) < len(parts):
            found = find_sent(dest, parts[len(ids)])
            # An earlier delivery's message with the same text (last period's "no update yet"
            # prompt) is no proof that this one went out.
            if found is not None and found not in recorded:
                ids.append(found)
        if len(ids) < len(parts) and not still_wanted(d):
            log.info("delivery %s is no longer wanted; marking it failed", d.id)
            with db.write() as session:
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == d.id)
                    .values(state=DeliveryState.FAILED, error="abandoned after a restart")
                )
            continue
        if _send_parts(db, sender, d.id, dest, parts, ids, now) is Outcome.SENT:
            done += 1
    return done
