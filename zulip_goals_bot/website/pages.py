"""The whole website as files: pages, feeds, goals.json, the stylesheet.

``site_files`` is pure apart from reading the package's templates: the same data, states and
settings give the same bytes (everything is sorted, no build time is written, dates come from the
data), so a site kept in git shows only real changes.  Every link between files is relative, so
the folder works from any path and from disk.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from zulip_goals_bot.domain.markdown import message_link
from zulip_goals_bot.domain.views import GoalView
from zulip_goals_bot.goals.grouping import goal_groups
from zulip_goals_bot.website import charts, feeds, goal_health, goals_json
from zulip_goals_bot.website.content import SiteData, SiteUpdate
from zulip_goals_bot.website.health import Health
from zulip_goals_bot.website.progress import program_progress
from zulip_goals_bot.website.text import LINK_REL, ZulipMarkdown, plain
from zulip_goals_bot.website.views import (
    FEEDS_DIR,
    GOALS_DIR,
    Card,
    Group,
    SiteSettings,
    UpdateItem,
    anchor,
    badge_class,
    rows,
    summary,
    topic_link,
)
from zulip_goals_bot.website.views import (
    cards as make_cards,
)
from zulip_goals_bot.website.views import (
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
# The calls chart's segments, bottom up, as goal_health.ORDER and then the goals that never said.
CALL_SERIES = (
    *(charts.Series(goal_health.css_class(s), s.label) for s in goal_health.ORDER),
    charts.Series(goal_health.css_class(None), "not said"),
)
# Metadata rows of a goal file that the goal page shows by name (matched on the start of the key).
CHAMPION_KEYS: tuple[str, ...] = ("champion",)
ROADMAP_KEYS: tuple[str, ...] = ("roadmap",)


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


def _entry_id(u: SiteUpdate, zulip: str | None) -> str:
    """A feed entry's permanent id: the message's (or comment's) URL, else a tag name."""
    if u.message_id is None:
        return u.url or feeds.name_id("update", str(u.update_id))
    return message_link(zulip, u.message_id) if zulip else feeds.name_id("msg", str(u.message_id))


def _entry(goal: GoalView, item: UpdateItem, page: str, settings: SiteSettings) -> feeds.Entry:
    u = item.update
    text = " ".join(plain(u.tldr or u.content).split())
    if len(text) > ENTRY_TITLE_CHARS:
        text = text[: ENTRY_TITLE_CHARS - 1].rstrip() + "…"
    zulip = settings.zulip_url
    return feeds.Entry(
        id=_entry_id(u, zulip),
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


def site_files(
    data: SiteData, health: Health, settings: SiteSettings, md: ZulipMarkdown
) -> Iterator[tuple[str, bytes]]:
    """Every file of the site with its relative path, one at a time.

    A program's site can be over 100 MB: written as they come, its files are never all in
    memory at once (the bot rebuilds it while it runs).
    """
    md.start_build()
    cards = sorted(make_cards(data, health, md, settings), key=lambda c: c.file)
    groups = [
        Group(title=g.title, anchor=anchor(g.title), cards=g.items)
        for g in goal_groups(cards, lambda c: c.goal)
    ]
    helping = sorted((c for c in cards if c.help_wanted), key=lambda c: (c.name.casefold(), c.file))
    bars = [
        charts.WeekBar(label=w.week.key, updated=w.updated, due=w.due, overdue=w.overdue)
        for w in health.program
    ]
    calls = [
        charts.WeekStack(
            label=w.week.key, values=tuple(w.count(s) for s in (*goal_health.ORDER, None))
        )
        for w in health.calls
    ]
    common = {
        "settings": settings,
        "health": health,
        "period": data.period,
        "call_series": CALL_SERIES,
    }
    progress = program_progress(data.progress_days, health.weeks, health.now, settings.timezone)
    yield (
        INDEX,
        _render(
            "index.html.j2",
            **common,
            root="",
            feed=ALL_FEED,
            groups=groups,
            helping=helping,
            summary=summary(cards),
            total=len(cards),
            chart=Markup(charts.health_chart(bars)),
            progress=progress,
            # The owners' calls, once any goal made one (before that, every goal is "not said").
            calls_chart=(
                Markup(charts.calls_chart(calls, CALL_SERIES))
                if any(g.health is not None for g in data.goals)
                else None
            ),
            calls=calls,
        ),
    )
    goal_lines: list[str] = []
    newest: list[tuple[Card, UpdateItem]] = []  # the program's latest updates so far
    for card in cards:
        g = card.goal
        items = make_items(data.updates_of(g.id), md, settings)
        page = f"../{GOALS_DIR}/{card.file}"
        extra = data.extra.get(g.id, {})
        yield (
            f"{GOALS_DIR}/{card.file}",
            _render(
                "goal.html.j2",
                **common,
                root="../",
                feed=f"../{FEEDS_DIR}/{card.feed}",
                card=card,
                goal=g,
                timeline=Markup("".join(i.html for i in items)),
                champions=rows(extra, CHAMPION_KEYS, md),
                roadmaps=rows(extra, ROADMAP_KEYS, md),
                topic_url=topic_link(g, settings),
            ),
        )
        yield (
            f"{FEEDS_DIR}/{card.feed}",
            feeds.render_feed(
                feeds.Feed(
                    id=feeds.name_id(program_id(settings, data.period), g.slug),
                    title=f"{g.name} · {settings.title}",
                    subtitle=f"Progress updates on {g.title}",
                    self_href=card.feed,
                    page_href=page,
                    fallback_updated=data.modified.get(g.id, g.created_at),
                    entries=[_entry(g, i, page, settings) for i in items[:GOAL_FEED_ENTRIES]],
                )
            ),
        )
        goal_lines.append(goals_json.goal_line(card, items, data, health, settings))
        # Updates are newest first: only a goal's first few can be among the program's latest.
        newest = heapq.nlargest(
            FEED_ENTRIES,
            newest + [(card, i) for i in items[:FEED_ENTRIES]],
            key=lambda pair: (pair[1].update.sent_at, pair[1].update.update_id),
        )
    yield (
        ALL_FEED,
        feeds.render_feed(
            feeds.Feed(
                id=program_id(settings, data.period),
                title=f"{settings.title} · {data.period}",
                subtitle=f"Progress updates on the goals of {data.period}",
                self_href=ALL_FEED,
                page_href=INDEX,
                fallback_updated=max(data.modified.values(), default=health.week.start),
                entries=[_entry(c.goal, i, f"{GOALS_DIR}/{c.file}", settings) for c, i in newest],
            )
        ),
    )
    yield DATA_FILE, goals_json.render(data, cards, health, settings, goal_lines).encode()
    for name in STATIC:
        yield name, _static(name)
    yield MARKER, MARKER_TEXT.encode()
