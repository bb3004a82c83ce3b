"""What the pages show, as plain values: a card per goal, an item per update.

Built once per build and shared by the pages, the feeds and goals.json, so that each update's
text is rendered once.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import NamedTuple
from zoneinfo import ZoneInfo

from markupsafe import Markup

from zulip_goals_bot.domain.health import Health as HealthState
from zulip_goals_bot.domain.health import HealthSource
from zulip_goals_bot.domain.markdown import StreamRef, message_link, topic_narrow
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.schedule import DueState
from zulip_goals_bot.domain.states import OwnerRole
from zulip_goals_bot.domain.views import GoalView, PersonView
from zulip_goals_bot.website import charts, goal_health
from zulip_goals_bot.website.content import SiteData, SiteUpdate
from zulip_goals_bot.website.goal_health import HealthCell
from zulip_goals_bot.website.health import Health
from zulip_goals_bot.website.text import LINK_REL, ZulipMarkdown

GOALS_DIR = "goals"
FEEDS_DIR = "feeds"
# States listed in the index's summary, in this order.
SUMMARY_ORDER = (
    DueState.UP_TO_DATE,
    DueState.DUE,
    DueState.OVERDUE,
    DueState.GRACE,
    DueState.SKIPPED,
    DueState.AWAY,
    DueState.NO_OWNERS,
    DueState.PAUSED,
    DueState.COMPLETED,
    DueState.INACTIVE,
    DueState.RETIRED,
)


@dataclass(frozen=True, slots=True)
class SiteSettings:
    """What the site needs besides the data: its title, where Zulip is, the schedule."""

    title: str
    zulip_url: str | None  # the Zulip server, for topic and message links
    stream: str  # the goals stream, where each goal has its topic
    timezone: ZoneInfo  # dates are shown in the program's timezone
    program: Program  # judges each goal's state, as for the digest


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    github: str | None

    @property
    def github_url(self) -> str | None:
        return f"https://github.com/{self.github}" if self.github else None


def person(p: PersonView) -> Person:
    return Person(p.full_name or (f"@{p.github}" if p.github else "someone"), p.github)


class UpdateItem(NamedTuple):
    """One update, rendered once and used by its goal's page, its feeds and goals.json.

    A named tuple: a build makes 100,000 of them, and a frozen dataclass is slower to make.
    """

    update: SiteUpdate
    stamp: str  # when it was sent, ISO 8601
    link: str | None  # the message in Zulip, when readers can open it
    body: str  # the text as sanitized HTML
    html: Markup  # the whole <article> of the goal page's timeline


@dataclass(frozen=True, slots=True)
class HealthView:
    """A goal's health as its card and page show it: the owners' latest call, or none."""

    state: HealthState | None
    label: str  # the badge's text: "at risk", or goal_health.NO_HEALTH
    css: str  # the badge's class
    since: str | None  # local date the current health was first said
    said: str | None  # local date of the latest call
    author: str | None  # who made it (a display name, never a mention)
    words: Markup | None  # what they wrote with it
    anchor: str | None  # the update that made it, on the goal's page
    link: str | None  # where readers can open it: the message in Zulip or the comment on GitHub
    link_text: str
    reaction: bool  # made with a reaction on the bot's prompt
    cells: tuple[HealthCell, ...]  # the goal's reporting periods, oldest first
    strip: Markup


@dataclass(frozen=True, slots=True)
class Card:
    """A goal as the index and its own page show it."""

    goal: GoalView
    file: str  # e.g. "polonius.html", in GOALS_DIR
    state: DueState
    owners: tuple[Person, ...]  # points of contact
    task_owners: tuple[Person, ...]
    last_update: str | None
    tldr: Markup | None
    help_wanted: Markup | None
    strip: Markup
    updates: int
    health: HealthView

    @property
    def name(self) -> str:
        return self.goal.name

    @property
    def badge(self) -> str:
        return badge_class(self.state)

    @property
    def feed(self) -> str:
        return self.file.removesuffix(".html") + ".atom"


@dataclass(frozen=True, slots=True)
class Group:
    title: str
    anchor: str
    cards: tuple[Card, ...]


def badge_class(state: DueState) -> str:
    return "state-" + state.name.lower().replace("_", "-")


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.casefold()).strip("-") or "section"


def file_names(goals: Sequence[GoalView]) -> dict[int, str]:
    """A safe, unique file name per goal, from its slug (ASCII letters, digits, - and _)."""
    out: dict[int, str] = {}
    taken: set[str] = set()
    for g in sorted(goals, key=lambda g: (g.slug, g.id)):
        base = re.sub(r"[^a-z0-9_-]+", "-", g.slug.casefold()).strip("-") or f"goal-{g.id}"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        out[g.id] = f"{name}.html"
    return out


def _date(when: datetime, tz: ZoneInfo) -> str:
    return when.astimezone(tz).date().isoformat()


def stamp(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def message_url(u: SiteUpdate, settings: SiteSettings) -> str | None:
    """Where readers can open the update: its comment on GitHub, or its message in Zulip."""
    if u.on_github:
        return u.url
    if settings.zulip_url is None or not u.in_topic or u.message_id is None:
        return None
    return message_link(settings.zulip_url, u.message_id)


def topic_link(goal: GoalView, settings: SiteSettings) -> str | None:
    if settings.zulip_url is None:
        return None
    narrow = topic_narrow(StreamRef(settings.stream), goal.zulip_topic)
    return f"{settings.zulip_url.rstrip('/')}/{narrow}"


def _call_update(goal: GoalView, ups: Sequence[SiteUpdate]) -> SiteUpdate | None:
    """The update that made the goal's latest health call, when an update made it."""
    if goal.health is None or goal.health.latest.source is not HealthSource.UPDATE:
        return None
    call = goal.health.latest
    for u in ups:
        if call.message_id is not None and u.message_id == call.message_id:
            return u
        if call.message_id is None and call.url is not None and u.url == call.url:
            return u
    return None


def strip_summary(name: str, cells: Sequence[HealthCell]) -> str:
    """What a health strip shows, in words: ``Health of X per period, the last 4: ...``."""
    count = Counter(c.state for c in cells)
    states = [*goal_health.ORDER, None]
    said = ", ".join(f"{goal_health.label(s)} in {count[s]}" for s in states if count[s])
    periods = f"the last {len(cells)}" if len(cells) != 1 else "the current one"
    return f"Health of {name} per period, {periods}: {said}"


def health_view(
    goal: GoalView,
    ups: Sequence[SiteUpdate],
    cells: tuple[HealthCell, ...],
    md: ZulipMarkdown,
    settings: SiteSettings,
) -> HealthView:
    strip = Markup(
        charts.health_strip(
            [charts.StripCell(goal_health.css_class(c.state), c.title) for c in cells],
            summary=strip_summary(goal.name, cells),
        )
    )
    gh = goal.health
    if gh is None:
        return HealthView(
            state=None,
            label=goal_health.NO_HEALTH,
            css=goal_health.css_class(None),
            since=None,
            said=None,
            author=None,
            words=None,
            anchor=None,
            link=None,
            link_text="",
            reaction=False,
            cells=cells,
            strip=strip,
        )
    call = gh.latest
    made_by = _call_update(goal, ups)
    tz = settings.timezone
    return HealthView(
        state=gh.health,
        label=goal_health.label(gh.health),
        css=goal_health.css_class(gh.health),
        since=_date(gh.since, tz),
        said=_date(gh.said_at, tz),
        author=call.author,
        words=Markup(md.inline(call.words)) if call.words else None,
        anchor=made_by.ident if made_by is not None else None,
        link=message_url(made_by, settings) if made_by is not None else None,
        link_text="view on GitHub"
        if made_by is not None and made_by.on_github
        else "view in Zulip",
        reaction=call.source is HealthSource.REACTION,
        cells=cells,
        strip=strip,
    )


def cards(data: SiteData, health: Health, md: ZulipMarkdown, settings: SiteSettings) -> list[Card]:
    tz = settings.timezone
    names = file_names(data.goals)
    labels = [f"week of {w.key}" for w in health.weeks]
    out = []
    for g in data.goals:
        ups = data.updates_of(g.id)
        last = ups[0] if ups else None
        out.append(
            Card(
                goal=g,
                file=names[g.id],
                state=health.states[g.id],
                owners=tuple(person(p) for p in g.poc),
                task_owners=tuple(
                    person(o.person)
                    for o in g.owners
                    if o.role is OwnerRole.TASK and o.person not in g.poc
                ),
                last_update=_date(last.sent_at, tz) if last else None,
                tldr=Markup(md.inline(last.tldr)) if last and last.tldr else None,
                help_wanted=(
                    Markup(md.inline(last.help_wanted)) if last and last.help_wanted else None
                ),
                strip=Markup(
                    charts.activity_strip(
                        health.activity[g.id], labels, name=f"Updates of {g.name} per week"
                    )
                ),
                updates=len(ups),
                health=health_view(g, ups, health.cells[g.id], md, settings),
            )
        )
    return out


def _article(
    u: SiteUpdate, date: str, when: str, link: str | None, body: str, md: ZulipMarkdown
) -> Markup:
    """An update in its goal's timeline.

    Written here rather than in the template: a program has 100,000 updates, and a template
    loop, which escapes and wraps each value on its own, costs three times as much per update.
    """
    ident = u.ident
    parts = [
        f'<article class="update" id="{ident}">\n<h3><a class="permalink" href="#{ident}">'
        f'<time datetime="{when}">{date}</time></a> · '
        f'<span class="author">{escape(u.author or "someone")}</span>'
        + (' <span class="edited">(edited)</span>' if u.edited_at is not None else "")
        + "</h3>\n"
    ]
    # A TL;DR carried over from an earlier message is shown; one the text itself has is not.
    if u.tldr and u.tldr not in u.content:
        parts.append(f'<p class="tldr"><strong>TL;DR:</strong> {md.inline(u.tldr)}</p>\n')
    if u.help_wanted:
        parts.append(
            f'<p class="help"><strong>Help wanted:</strong> {md.inline(u.help_wanted)}</p>\n'
        )
    parts.append(f'<div class="body">{body}</div>\n')
    if link:
        parts.append(
            f'<p class="source"><a href="{escape(link)}" rel="{LINK_REL}">'
            + ("View on GitHub" if u.on_github else "View in Zulip")
            + "</a></p>\n"
        )
    parts.append("</article>\n")
    return Markup("".join(parts))


def items(
    updates: Sequence[SiteUpdate], md: ZulipMarkdown, settings: SiteSettings
) -> list[UpdateItem]:
    out = []
    tz = settings.timezone
    for u in updates:
        when = u.sent_at.isoformat(timespec="seconds")
        link = message_url(u, settings)
        body = md.message(u.ident, u.content)
        html = _article(u, _date(u.sent_at, tz), when, link, body, md)
        out.append(UpdateItem(u, when, link, body, html))
    return out


def rows(extra: Mapping[str, str], keys: tuple[str, ...], md: ZulipMarkdown) -> list[Markup]:
    return [
        Markup(md.inline(value))
        for key, value in sorted(extra.items())
        if key.casefold().startswith(keys) and value.strip()
    ]


def summary(cards: Sequence[Card]) -> list[tuple[DueState, int]]:
    count = Counter(c.state for c in cards)
    return [(s, count[s]) for s in SUMMARY_ORDER if count[s]]
