"""How goals are grouped wherever they are listed: highlights, flagship themes, teams, the rest.

The digest, the blog export, ``list flagship`` (and any later page) call :func:`goal_groups`, so
a goal sits under the same heading everywhere.  Highlighted goals come first under their
highlight's name, then flagship goals by theme (a theme spelled slightly differently in one file
still joins its group), then one group per team, then the others.  Pure functions only.
"""

from __future__ import annotations

import enum
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from zulip_goals_bot.domain.views import GoalView, RoadmapPage

T = TypeVar("T")

# Flagship rows that only say "this is a flagship goal", without naming a theme.
_PLAIN_FLAGSHIP = frozenset({"yes", "true", "y", "x", "✓", "✔", "flagship"})
# Two theme spellings whose letters and digits are this similar (rapidfuzz ratio, 0-100) are one
# theme: "Flexible, fast(er) compilation" and "Flexible faster compilation", or a typo.
THEME_SIMILARITY = 88
FLAGSHIP_GOALS = "Flagship goals"
OTHER_GOALS = "Other goals"


class GroupKind(enum.StrEnum):
    HIGHLIGHT = "highlight"
    FLAGSHIP = "flagship"
    TEAM = "team"
    OTHER = "other"

    @property
    def is_flagship_like(self) -> bool:
        """Highlights and flagship themes: shown first, and in ``list flagship``."""
        return self in (GroupKind.HIGHLIGHT, GroupKind.FLAGSHIP)


@dataclass(frozen=True, slots=True)
class Group(Generic[T]):
    """A heading and the items under it."""

    kind: GroupKind
    name: str | None  # the highlight, theme or team; None for plain flagship and other goals
    items: tuple[T, ...]

    @property
    def title(self) -> str:
        match self.kind:
            case GroupKind.HIGHLIGHT:
                return f"Highlight: {self.name}"
            case GroupKind.FLAGSHIP:
                return f"Flagship: {self.name}" if self.name else FLAGSHIP_GOALS
            case GroupKind.TEAM:
                return f"Team {self.name}"
            case _:
                return OTHER_GOALS


def _letters(name: str) -> str:
    return re.sub(r"[\W_]+", "", name.casefold())


def canonical_names(names: Iterable[str]) -> dict[str, str]:
    """Each spelling mapped to the spelling its group uses; spellings group when their letters
    match or nearly match."""
    from rapidfuzz import fuzz

    given = [n for n in names if n and n.strip()]
    counts = Counter(" ".join(n.split()) for n in given)
    clusters: list[list[str]] = []
    keys: list[str] = []
    # The most common spelling names the group; on a tie the longer one, which keeps the code
    # marks and punctuation the program's own pages use ("Beyond the `&`").
    for name in sorted(counts, key=lambda n: (-counts[n], -len(n), n.casefold())):
        letters = _letters(name)
        for i, key in enumerate(keys):
            if letters == key or (letters and fuzz.ratio(letters, key) >= THEME_SIMILARITY):
                clusters[i].append(name)
                break
        else:
            clusters.append([name])
            keys.append(letters)
    out = {name: cluster[0] for cluster in clusters for name in cluster}
    return out | {n: out[" ".join(n.split())] for n in given}


def theme_of(goal: GoalView) -> str | None:
    """The flagship theme a goal names, or None for a plain "Yes" (or no flagship at all)."""
    if goal.flagship is None or goal.flagship.strip().casefold() in _PLAIN_FLAGSHIP:
        return None
    return goal.flagship.strip()


def goal_groups(
    items: Sequence[T],
    goal: Callable[[T], GoalView],
    *,
    by_team: bool = True,
    sort_key: Callable[[GoalView], str] | None = None,
) -> list[Group[T]]:
    """Highlights, flagship goals (plain first, then by theme), teams (a goal's first team),
    then the rest; each goal once, in the first group that wants it.

    ``by_team=False`` puts every goal that is neither highlighted nor flagship in one "Other
    goals" group.  Items are sorted by ``sort_key`` (the goal's name by default).
    """
    key = sort_key or (lambda g: g.name.casefold())
    highlights = canonical_names(g.highlight for g in map(goal, items) if g.highlight)
    themes = canonical_names(t for g in map(goal, items) if (t := theme_of(g)))
    buckets: dict[tuple[GroupKind, str | None], list[T]] = defaultdict(list)
    for item in items:
        g = goal(item)
        if g.highlight:
            buckets[(GroupKind.HIGHLIGHT, highlights[g.highlight.strip()])].append(item)
        elif g.is_flagship:
            theme = theme_of(g)
            buckets[(GroupKind.FLAGSHIP, themes[theme] if theme else None)].append(item)
        elif by_team and g.teams:
            buckets[(GroupKind.TEAM, g.teams[0])].append(item)
        else:
            buckets[(GroupKind.OTHER, None)].append(item)
    order = list(GroupKind)

    def rank(bucket: tuple[GroupKind, str | None]) -> tuple[int, int, str]:
        kind, name = bucket
        return order.index(kind), name is not None, (name or "").casefold()

    return [
        Group(kind, name, tuple(sorted(buckets[(kind, name)], key=lambda i: key(goal(i)))))
        for kind, name in sorted(buckets, key=rank)
    ]


@dataclass(frozen=True, slots=True)
class RoadmapGroup:
    """A roadmap and its goals; ``page`` when the folder has a page for it."""

    name: str
    page: RoadmapPage | None
    goals: tuple[GoalView, ...]


def roadmap_groups(goals: Sequence[GoalView], pages: Sequence[RoadmapPage]) -> list[RoadmapGroup]:
    """Every roadmap (pages, and names goals give without a page) with the goals naming it.

    A goal's Roadmap row finds its page by the page it links to, else by name (the page's short
    title or title, spelled about the same); names without a page group among themselves.
    Pages come newest period first, so a name used by two periods finds the newest page.
    """
    by_slug: dict[str, RoadmapPage] = {}
    for p in pages:
        by_slug.setdefault(p.slug.casefold(), p)
    page_names = {_letters(p.name): p for p in reversed(by_slug.values())}
    page_names |= {
        _letters(p.title): p for p in by_slug.values() if _letters(p.title) not in page_names
    }
    loose = canonical_names(
        [r.name for g in goals for r in g.roadmaps] + [p.name for p in by_slug.values()]
    )
    members: dict[str, list[GoalView]] = defaultdict(list)
    found: dict[str, RoadmapPage | None] = {}
    for g in goals:
        for ref in g.roadmaps:
            page: RoadmapPage | None = by_slug.get((ref.slug or "").casefold())
            page = page or page_names.get(_letters(ref.name))
            if page is None:
                page = page_names.get(_letters(loose.get(ref.name, ref.name)))
            key = page.name if page is not None else loose.get(ref.name, ref.name)
            found.setdefault(key, page)
            if all(m.id != g.id for m in members[key]):
                members[key].append(g)
    for p in by_slug.values():
        found.setdefault(p.name, p)
    return [
        RoadmapGroup(
            name, found[name], tuple(sorted(members.get(name, []), key=lambda g: g.name.casefold()))
        )
        for name in sorted(found, key=str.casefold)
    ]
