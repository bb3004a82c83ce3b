"""Catching up with edits, moves and deletes made on Zulip while the bot was not listening."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from zulip_goals_bot.domain.health import REACTION_HEALTH


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """What the database holds of a message, to compare with what Zulip holds now."""

    zulip_message_id: int
    edited_at: datetime | None
    stream: str | None
    topic: str | None
    content: str


@dataclass
class Reconciliation:
    """Events that replay what changed on Zulip unseen, and deletions held back as suspicious."""

    events: list[dict[str, Any]] = field(default_factory=list)
    edited: int = 0
    moved: int = 0
    deleted: int = 0
    withheld: list[int] = field(default_factory=list)


def reconcile(
    stored: Sequence[StoredMessage],
    seen: Mapping[int, Mapping[str, Any]],
    covered_through: int,
    *,
    max_deleted_share: float,
) -> Reconciliation:
    """Synthesize ``update_message``/``delete_message`` events for what Zulip changed unseen.

    ``seen`` holds the messages Zulip returned for every id up to ``covered_through``; a stored
    message in that range that Zulip no longer returns was deleted (or moved out of sight).
    When more than ``max_deleted_share`` of them seem gone at once, the cause is more likely the
    bot losing access to a stream than people deleting, so those deletions are held back.
    """
    out = Reconciliation()
    missing: list[int] = []
    for row in stored:
        message = seen.get(row.zulip_message_id)
        if message is None:
            if row.zulip_message_id <= covered_through:
                missing.append(row.zulip_message_id)
            continue
        event: dict[str, Any] = {
            "type": "update_message",
            "message_id": row.zulip_message_id,
            "message_ids": [row.zulip_message_id],
        }
        edited = message.get("last_edit_timestamp")
        content = str(message.get("content", ""))
        # A move also sets the edit time; only a changed text is an edit.
        if (
            edited is not None
            and (row.edited_at is None or row.edited_at.timestamp() < int(edited))
            and content != row.content
        ):
            event |= {"content": content, "edit_timestamp": int(edited)}
            out.edited += 1
        if message.get("type") == "stream" and (
            row.topic != message.get("subject") or row.stream != message.get("display_recipient")
        ):
            event |= {"subject": message.get("subject"), "stream_id": message.get("stream_id")}
            out.moved += 1
        if len(event) > 3:
            out.events.append(event)
    if missing and len(missing) > max_deleted_share * len(stored):
        out.withheld = missing
    elif missing:
        out.events.append({"type": "delete_message", "message_ids": missing})
        out.deleted = len(missing)
    return out


def missed_reactions(
    prompts: Mapping[int, Mapping[str, Any]], stored: Collection[tuple[int, int, str]]
) -> list[dict[str, Any]]:
    """Reaction events for the health reactions added to or removed from these prompt messages
    (as Zulip shows them now) while nobody listened; ``stored`` holds (message id, user id,
    emoji name) as the database has them. Only messages Zulip showed are compared."""
    events: list[dict[str, Any]] = []
    for message_id, message in prompts.items():
        now = {
            (message_id, int(r["user_id"]), str(r["emoji_name"]))
            for r in message.get("reactions") or ()
            if r.get("emoji_name") in REACTION_HEALTH and "user_id" in r
        }
        before = {key for key in stored if key[0] == message_id}
        for op, keys in (("add", now - before), ("remove", before - now)):
            events += [
                {"type": "reaction", "op": op, "message_id": mid, "user_id": uid,
                 "emoji_name": name}
                for mid, uid, name in sorted(keys)
            ]  # fmt: skip
    return events
