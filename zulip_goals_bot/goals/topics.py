"""Goal topics: one per goal in the goals stream, assigned once and then kept.

Zulip cuts topics at 60 characters, so a topic is built to fit: the short title (or title), then
``(goals#N)`` when the goal has a tracking issue, which also keeps same-named goals apart.
"""

from __future__ import annotations

from collections.abc import Collection

# Zulip's maximum topic length; longer topics are cut by the server with "...".
MAX_TOPIC_LENGTH = 60


def _plain(text: str) -> str:
    """Topic-safe text: no Markdown emphasis or code marks, single spaces."""
    for mark in ("`", "**", "__"):
        text = text.replace(mark, "")
    return " ".join(text.split())


def goal_topic(
    title: str, short_title: str | None, tracking_issue: int | None, taken: Collection[str]
) -> str:
    """A topic of at most 60 characters, different (case-insensitively) from every ``taken`` one."""
    base = _plain(short_title or title) or "goal"
    suffix = f" (goals#{tracking_issue})" if tracking_issue is not None else ""
    lowered = {t.lower() for t in taken}
    n = 1
    while True:
        extra = suffix if n == 1 else f"{suffix} ({n})"
        room = MAX_TOPIC_LENGTH - len(extra)
        head = base if len(base) <= room else base[: room - 1].rstrip() + "…"
        candidate = head + extra
        if candidate.lower() not in lowered:
            return candidate
        n += 1
