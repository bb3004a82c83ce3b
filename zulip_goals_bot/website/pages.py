"""The whole website as files in memory: pages, feeds, goals.json, the stylesheet.

``compose_site`` is pure apart from reading the package's templates: the same data, states and
settings give the same bytes (everything is sorted, no build time is written, dates come from the
data), so a site kept in git shows only real changes.  Every link between files is relative, so
the folder works from any path and from disk.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ..digest import goal_groups
from ..markdown import message_link
from ..queries import GoalView
from . import charts, feeds, goals_json
from .data import SiteData
from .health import Health
from .text import LINK_REL, ZulipMarkdown, plain
from .views import (
    FEEDS_DIR,
    GOALS_DIR,
    Group,
    SiteSettings,
    UpdateItem,
    anchor,
    badge_class,
    rows,
    summary,
    topic_link,
)
from .views import (
    cards as make_cards,
)
from .views import (
    items as make_items,
)

INDEX = "index.html"
ALL_FEED = "updates.atom"
DATA_FILE = "goals.json"
STATIC = ("style.css", "favicon.svg")
# Written into every built folder: a build only ever replaces a folder that has it.
MARKER = ".zulip-goals-site"
MARKER_TEXT = (
    "Built by `zulip-goals-bot site build`. Each build replaces everything in this folder except\n"
    "entries whose names start with a dot (such as .git) and a CNAME file.\n"
)
# Feeds hold the newest entries only, as feed readers expect: the program's latest 50 updates and
# each goal's latest 10 (the pages and goals.json have them all).
FEED_ENTRIES = 50
GOAL_FEED_ENTRIES = 10
# A feed entry's title is the TL;DR, or the start of the update, cut to this many characters.
ENTRY_TITLE_CHARS = 100
# Metadata rows of a goal file that the goal page shows by name (matched on the start of the key).
CHAMPION_KEYS: tuple[str, ...] = ("champion",)
ROADMAP_KEYS: tuple[str, ...] = ("roadmap",)


@dataclass(frozen=True, slots=True)
class Site:
    """The built site: file paths (relative, with /) to their bytes, and what it holds."""

    files: Mapping[str, bytes]
    period: str
    goals: int
    updates: int


# -- templates and feeds --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("zulip_goals_bot.website", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["link_rel"] = LINK_REL
    env.filters["badge"] = badge_class
    return env


def _render(template: str, **values: Any) -> bytes:
    return _environment().get_template(template).render(**values).encode()


def _static(name: str) -> bytes:
    return resources.files("zulip_goals_bot.website").joinpath("static", name).read_bytes()


def _entry(goal: GoalView, item: UpdateItem, page: str, settings: SiteSettings) -> feeds.Entry:
    u = item.update
    text = " ".join(plain(u.tldr or u.content).split())
    if len(text) > ENTRY_TITLE_CHARS:
        text = text[: ENTRY_TITLE_CHARS - 1].rstrip() + "…"
    zulip = settings.zulip_url
    return feeds.Entry(
        id=message_link(zulip, u.message_id) if zulip else feeds.name_id("msg", str(u.message_id)),
        title=f"{goal.name}: {text}" if text else goal.name,
        author=u.author or "someone",
        published=u.sent_at,
        updated=u.changed_at,
        html=item.body,
        link=item.link,
        goal_link=page,
    )


def program_id(settings: SiteSettings, period: str) -> str:
    return feeds.name_id(settings.zulip_url or "", settings.stream, period)


# -- the site -------------------------------------------------------------------------------------


def compose_site(data: SiteData, health: Health, settings: SiteSettings, md: ZulipMarkdown) -> Site:
    """Every file of the site, keyed by its relative path."""
    md.start_build()
    cards = make_cards(data, health, md, settings.timezone)
    groups = [
        Group(title=title, anchor=anchor(title), cards=tuple(group))
        for title, group in goal_groups(cards)
    ]
    helping = sorted((c for c in cards if c.help_wanted), key=lambda c: (c.name.casefold(), c.file))
    bars = [
        charts.WeekBar(label=w.week.key, updated=w.updated, due=w.due, overdue=w.overdue)
        for w in health.program
    ]
    common = {"settings": settings, "health": health, "period": data.period}
    files: dict[str, bytes] = {
        INDEX: _render(
            "index.html.j2",
            **common,
            root="",
            feed=ALL_FEED,
            groups=groups,
            helping=helping,
            summary=summary(cards),
            total=len(cards),
            chart=Markup(charts.health_chart(bars)),
        )
    }
    items: dict[int, list[UpdateItem]] = {}
    for card in cards:
        g = card.goal
        items[g.id] = make_items(data.updates_of(g.id), md, settings)
        page = f"../{GOALS_DIR}/{card.file}"
        extra = data.extra.get(g.id, {})
        files[f"{GOALS_DIR}/{card.file}"] = _render(
            "goal.html.j2",
            **common,
            root="../",
            feed=f"../{FEEDS_DIR}/{card.feed}",
            card=card,
            goal=g,
            timeline=Markup("".join(i.html for i in items[g.id])),
            champions=rows(extra, CHAMPION_KEYS, md),
            roadmaps=rows(extra, ROADMAP_KEYS, md),
            topic_url=topic_link(g, settings),
        )
        files[f"{FEEDS_DIR}/{card.feed}"] = feeds.render_feed(
            feeds.Feed(
                id=feeds.name_id(program_id(settings, data.period), g.slug),
                title=f"{g.name} · {settings.title}",
                subtitle=f"Progress updates on {g.title}",
                self_href=card.feed,
                page_href=page,
                fallback_updated=data.modified.get(g.id, g.created_at),
                entries=[_entry(g, i, page, settings) for i in items[g.id][:GOAL_FEED_ENTRIES]],
            )
        )
    by_id = {c.goal.id: c for c in cards}
    newest = heapq.nlargest(
        FEED_ENTRIES,
        (i for group in items.values() for i in group),
        key=lambda i: (i.update.sent_at, i.update.message_id),
    )
    files[ALL_FEED] = feeds.render_feed(
        feeds.Feed(
            id=program_id(settings, data.period),
            title=f"{settings.title} · {data.period}",
            subtitle=f"Progress updates on the goals of {data.period}",
            self_href=ALL_FEED,
            page_href=INDEX,
            fallback_updated=max(data.modified.values(), default=health.week.start),
            entries=[
                _entry(
                    by_id[i.update.goal_id].goal,
                    i,
                    f"{GOALS_DIR}/{by_id[i.update.goal_id].file}",
                    settings,
                )
                for i in newest
            ],
        )
    )
    files[DATA_FILE] = goals_json.render(
        goals_json.document(data, cards, items, health, settings)
    ).encode()
    for name in STATIC:
        files[name] = _static(name)
    files[MARKER] = MARKER_TEXT.encode()
    return Site(
        files=dict(sorted(files.items())),
        period=data.period,
        goals=len(cards),
        updates=sum(len(v) for v in data.updates.values()),
    )
