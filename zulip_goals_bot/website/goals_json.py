"""goals.json: the site's data for others to build on.

The layout is described by ``docs/goals.schema.json`` (a JSON Schema the tests validate every
built file against) and by the README.  Times are ISO 8601 in UTC; texts are as posted, with
Zulip's mentions, stream links and times turned into plain words, so that nothing copied from
here can ping anyone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from zulip_goals_bot.website.content import SiteData
from zulip_goals_bot.website.health import Health
from zulip_goals_bot.website.text import plain
from zulip_goals_bot.website.views import (
    FEEDS_DIR,
    GOALS_DIR,
    Card,
    SiteSettings,
    UpdateItem,
    person,
    stamp,
    summary,
    topic_link,
)

# Which layout the file follows; docs/goals.schema.json describes this one.
VERSION = 1


def goal_line(
    card: Card,
    items: Sequence[UpdateItem],
    data: SiteData,
    health: Health,
    settings: SiteSettings,
) -> str:
    """One goal, with all its updates, as one line of the file."""
    g = card.goal
    return _compact(
        {
            "slug": g.slug,
            "title": g.title,
            "short_title": g.short_title,
            "status": g.status,
            "flagship": g.flagship,
            "teams": list(g.teams),
            "state": card.state.value,
            "owners": [
                {"name": person(o.person).name, "github": o.person.github, "role": o.role}
                for o in g.owners
            ],
            "metadata": dict(sorted(data.extra.get(g.id, {}).items())),
            "tracking_issue": g.tracking_issue,
            "tracking_url": g.tracking_url,
            "zulip_topic": g.zulip_topic,
            "zulip_url": topic_link(g, settings),
            "page": f"{GOALS_DIR}/{card.file}",
            "feed": f"{FEEDS_DIR}/{card.feed}",
            "last_update": items[0].stamp if items else None,
            "updates_per_week": list(health.activity[g.id]),
            "progress": (
                {"done": p.done, "total": p.total, "open_tasks": list(p.open_tasks)}
                if (p := g.progress) is not None and p.total
                else None
            ),
            "health": _health(card),
            "health_history": [
                {
                    "period": c.period.key,
                    "start": stamp(c.period.start),
                    "end": stamp(c.period.end),
                    "state": c.state.value if c.state is not None else None,
                }
                for c in card.health.cells
            ],
            "updates": [_update(i) for i in items],
        }
    )


def _health(card: Card) -> dict[str, Any] | None:
    """The owners' latest call, or None when they never made one."""
    gh = card.goal.health
    if gh is None:
        return None
    words = gh.latest.words
    return {
        "state": gh.health.value,
        "label": gh.health.label,
        "since": stamp(gh.since),
        "said_at": stamp(gh.said_at),
        "words": plain(words) if words else None,
        "link": card.health.link,
    }


def render(
    data: SiteData,
    cards: Sequence[Card],
    health: Health,
    settings: SiteSettings,
    goal_lines: Sequence[str],
) -> str:
    """The file: the program's fields, then one goal per line (``goal_line``, by file name).

    Compact, so the encoder written in C does the work (ten times faster than an indented one),
    and a site kept in git still diffs goal by goal.
    """
    head = {
        "version": VERSION,
        "title": settings.title,
        "period": data.period,
        "week": {"start": stamp(health.week.start), "end": stamp(health.week.end)},
        "zulip": settings.zulip_url,
        "states": {state.value: n for state, n in summary(cards)},
        "weeks": [
            {
                "start": stamp(w.week.start),
                "goals": w.goals,
                "updated": w.updated,
                "due": w.due,
                "overdue": w.overdue,
            }
            for w in health.program
        ],
        "health_weeks": [
            {"start": stamp(w.week.start), "goals": w.goals, **w.counts} for w in health.calls
        ],
    }
    body = ",\n".join(goal_lines)
    return _compact(head)[:-1] + ',"goals":[' + (f"\n{body}\n" if body else "") + "]}\n"


def _update(item: UpdateItem) -> dict[str, Any]:
    u = item.update
    return {
        "id": u.message_id,
        "source": "github" if u.on_github else "zulip",
        "author": u.author,
        "sent_at": item.stamp,
        "edited_at": stamp(u.edited_at) if u.edited_at else None,
        "tldr": plain(u.tldr) if u.tldr else None,
        "help_wanted": plain(u.help_wanted) if u.help_wanted else None,
        "text": plain(u.content),
        "url": item.link,
    }


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
