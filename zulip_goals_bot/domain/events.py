"""Zulip's event kinds and stream names as the bot reads them, each rule in one place."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from zulip_goals_bot.domain.health import REACTION_HEALTH

# The events that change a message already stored: an edit (content, topic or stream) or a
# delete. Both the ingest and the website's rebuild follow exactly these.
MESSAGE_CHANGE_EVENTS = frozenset({"update_message", "delete_message"})

# A reaction added or removed: an owner's health reaction on a goal's prompt is a health call.
REACTION_EVENT = "reaction"

# What the bot registers its event queue for: new messages, the changes above, reactions.
REGISTERED_EVENTS = ("message", *sorted(MESSAGE_CHANGE_EVENTS), REACTION_EVENT)


def is_health_reaction(event: Mapping[str, Any]) -> bool:
    """A reaction event with one of the health emoji (which the store may take as a call)."""
    return event.get("type") == REACTION_EVENT and event.get("emoji_name") in REACTION_HEALTH


def is_goals_stream(stream: str | None, goals_stream: str) -> bool:
    """Whether a message's stream is the goals stream: Zulip stream names are unique without
    regard to case, so ``#Project-Goals`` is the same stream."""
    return stream is not None and stream.casefold() == goals_stream.casefold()


def changes_updates(events: Sequence[Mapping[str, Any]], stored: int) -> bool:
    """Whether a stored slice of events may have changed the stored updates (new ones stored,
    or messages edited, moved or deleted, or a health reaction): what the site and the GitHub
    mirror follow."""
    return stored > 0 or any(
        e.get("type") in MESSAGE_CHANGE_EVENTS or is_health_reaction(e) for e in events
    )
