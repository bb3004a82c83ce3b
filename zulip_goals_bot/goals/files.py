"""What each page of a goals folder is (a goal, a roadmap or an index page), as plain records.

The goal files are written by hand over several years, so reading them is lenient: what is not
understood is kept (``GoalDoc.extra``), oddities become ``GoalDoc.warnings``, and a file is only
refused when it cannot be told what the goal is (no title, no metadata table, no readable
``Status``).  Parsing the Markdown is ``goalpage``'s job; this module classifies pages and builds
the records.  Only :func:`read_pages` touches the file system.
"""

from __future__ import annotations

import enum
import pathlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zulip_goals_bot.domain.views import RoadmapRef
from zulip_goals_bot.goals.cells import (
    Cell,
    dedup,
    links,
    not_applicable,
    page_ref,
    plain,
    squash,
    team_name,
    teams_in_list,
    tracking,
    visible,
    zulip_channel,
)
from zulip_goals_bot.goals.page import Block, Page, Row, ownership, parse_page, sibling_links
from zulip_goals_bot.people.handles import handles_in

if TYPE_CHECKING:
    pass

__all__ = [
    "Champion",
    "ContinuesRef",
    "GoalDoc",
    "GoalFileError",
    "GoalStatus",
    "PageSet",
    "Problem",
    "ProblemKind",
    "RoadmapDoc",
    "RoadmapRef",
    "handles_in",
    "is_index_page",
    "parse_goal",
    "parse_page_doc",
    "read_goal_files",
    "read_pages",
]


class GoalStatus(enum.Enum):
    """The ``Status`` row of a goal; anything unrecognised becomes ``OTHER``."""

    ACCEPTED = "Accepted"
    PROPOSED = "Proposed"
    NOT_ACCEPTED = "Not accepted"
    FLAGSHIP = "Flagship"
    OTHER = "Other"

    @classmethod
    def parse(cls, text: str) -> GoalStatus:
        """Map a Status cell to a member, ignoring case, spaces and punctuation."""
        key = squash(text)
        for member in cls:
            if member is not cls.OTHER and squash(member.value) == key:
                return member
        return cls.OTHER


@dataclass(frozen=True, slots=True)
class Champion:
    """A ``| [team] champion | @handle |`` row: a team member who supports the goal."""

    team: str | None
    github: str


@dataclass(frozen=True, slots=True)
class ContinuesRef:
    """An earlier goal this one continues: a page (period and slug) or a tracking issue."""

    period: str | None = None
    slug: str | None = None
    issue: int | None = None


@dataclass(frozen=True, slots=True)
class GoalDoc:
    """One goal file, reduced to what the bot needs to chase owners for updates."""

    slug: str
    title: str
    short_title: str | None
    status: GoalStatus
    status_text: str
    flagship: str | None
    owners: tuple[str, ...]
    owners_text: str
    task_owners: tuple[str, ...]
    teams: tuple[str, ...]
    tracking_issue: int | None
    tracking_url: str | None
    zulip_channel: str | None
    extra: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    zulip_url: str | None = None
    highlight: str | None = None
    summary: str | None = None  # the "What and why" row
    roadmaps: tuple[RoadmapRef, ...] = ()
    champions: tuple[Champion, ...] = ()
    continues: tuple[ContinuesRef, ...] = ()

    @property
    def is_flagship(self) -> bool:
        """True for flagship goals, whichever row said so."""
        return self.flagship is not None


@dataclass(frozen=True, slots=True)
class RoadmapDoc:
    """A roadmap page: metadata (short title, what and why, point of contact) but no Status."""

    slug: str
    title: str
    short_title: str | None
    summary: str | None
    owners: tuple[str, ...]
    extra: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.short_title or self.title


class ProblemKind(enum.Enum):
    """Why a file did not become a :class:`GoalDoc`."""

    NOT_A_GOAL = "not a goal"
    ROADMAP = "roadmap page"
    NO_METADATA = "no metadata table"
    MALFORMED_ROW = "malformed metadata row"
    NOT_UTF8 = "not UTF-8"
    NO_TITLE = "no title"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class Problem:
    """A file that was not loaded as a goal, with a sentence the operator can act on."""

    path: str
    kind: ProblemKind
    detail: str

    @property
    def is_skip(self) -> bool:
        """Index and roadmap pages are expected in a goals folder: skipped, not errors."""
        return self.kind in (ProblemKind.NOT_A_GOAL, ProblemKind.ROADMAP)


class GoalFileError(Exception):
    """Raised by :func:`parse_goal` when the text cannot be read as a goal."""

    def __init__(self, kind: ProblemKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


# ---------------------------------------------------------------------------------------------
# Names of rows and pages

# Pages of a goals book that list or explain goals rather than being one (compared without
# case, '-' and '_'): the half-year books and the annual ones (highlights, roadmaps, ...).
_INDEX_NAMES = frozenset(
    squash(name)
    for name in (
        "readme", "summary", "index", "goals", "accepted", "candidates", "flagship", "flagships",
        "not_accepted", "notes", "template", "highlights", "roadmaps", "help-wanted",
        "contributors", "funding", "faq", "champions", "reports", "updates", "overview", "about",
        "themes", "proposed", "invited", "welcome", "how-to", "changelog",
    )
)  # fmt: skip
# An index page without a known name still links to the goals it lists.
_INDEX_MIN_SIBLING_LINKS = 3
_YES = frozenset({"yes", "y", "true", "x", "✓", "✔"})
_NO = frozenset({"", "no", "n", "false", "na", "none"})

_OWNER_KEYS = (
    "point of contact", "points of contact", "point(s) of contact", "poc", "owner", "owners",
    "owner(s)", "contact", "contacts",
)  # fmt: skip
_KNOWN_KEYS: dict[str, str] = dict.fromkeys(_OWNER_KEYS, "owners") | {
    "status": "status",
    "flagship": "flagship",
    "short title": "short_title",
    "tracking issue": "tracking",
    "tracking issues": "tracking",
    "zulip channel": "zulip",
    "zulip stream": "zulip",
    "zulip": "zulip",
    "teams": "teams",
    "team": "teams",
    "team(s)": "teams",
    "task owners": "task_owners",
    "task owner(s)": "task_owners",
    "highlight": "highlight",
    "highlights": "highlight",
    "what and why": "summary",
    "what & why": "summary",
    "roadmap": "roadmap",
    "roadmaps": "roadmap",
    "continuation of": "continues",
    "continues": "continues",
    "previous goal": "continues",
    "previous goals": "continues",
}
# Rows that may appear several times (one per roadmap, champion, ...) without a warning.
_REPEATABLE = frozenset({"roadmap", "highlight", "continues", "champion", "application area"})
# `| [cargo] champion | @ehuss |`, `| lang team champion | ... |`, `| Champions | ... |`
_CHAMPION_KEY_RE = re.compile(r"^(?:\[?(?P<team>[^\[\]]+?)\]?\s+)?(?:team\s+)?champions?$", re.I)
# Prose saying this goal carries on an earlier one ("a continuation of the 2025h1 goal").
_CONTINUES_RE = re.compile(
    r"\b(?:continuation|continues|continuing|follow[- ]?up|carr(?:y|ies|ied) over|successor)\b",
    re.I,
)
_ISSUE_RE = re.compile(r"(?:(?P<repo>[\w.-]+/[\w.-]+))?#(?P<number>\d{1,9})(?!\d)")
_GITHUB_ISSUE_RE = re.compile(
    r"github\.com/(?P<repo>[\w.-]+/[\w.-]+)/issues/(?P<number>\d{1,9})(?!\d)", re.I
)


def _key(row: Row) -> str:
    return " ".join(row.key.casefold().split())


def _kind(row: Row) -> str | None:
    norm = _key(row)
    if norm in _KNOWN_KEYS:
        return _KNOWN_KEYS[norm]
    if _CHAMPION_KEY_RE.match(norm):
        return "champion"
    return None


def _is_index(slug: str, page: Page) -> bool:
    if squash(slug) in _INDEX_NAMES:
        return True
    if page.has_metadata:
        return False
    return page.has_directive() or sibling_links(page) >= _INDEX_MIN_SIBLING_LINKS


def is_index_page(slug: str, text: str) -> bool:
    """True for the book's index and help pages, which share the folder with the goals.

    A page counts as one when its name is one of the book's page names (README, goals,
    highlights, roadmaps, faq, ...), or when it has no metadata table and uses mdbook-goals
    directives such as ``(((GOALS)))`` or links to several other pages of the folder.
    """
    return _is_index(slug, parse_page(text))


# ---------------------------------------------------------------------------------------------
# Building the records


def _continues(rows: Iterable[Row], blocks: Iterable[Block]) -> tuple[ContinuesRef, ...]:
    """Earlier goals named by a 'Continuation of' row, or by prose saying so with a link.

    Prose often links to other issues (``rust-lang/rust#123``); there only issues of a goals
    repository count, so an unrelated issue number never takes over an earlier goal.
    """
    cells = [(r.value, False) for r in rows]
    cells += [(b.cell, True) for b in blocks if b.kind == "paragraph" and b.cell is not None
              and _CONTINUES_RE.search(plain(b.cell))]  # fmt: skip
    out: list[ContinuesRef] = []
    for cell, prose in cells:
        refs = [*links(cell), (plain(cell), "")]
        for text, href in refs:
            page = page_ref(href) if href else None
            if page is not None:
                out.append(ContinuesRef(period=page[0], slug=page[1]))
                continue
            for m in [*_GITHUB_ISSUE_RE.finditer(href), *_ISSUE_RE.finditer(text)]:
                repo = m.group("repo") or ""
                if not prose or "goals" in repo.casefold():
                    out.append(ContinuesRef(issue=int(m.group("number"))))
    return tuple(dict.fromkeys(out))


def _roadmaps(rows: Iterable[Row]) -> tuple[RoadmapRef, ...]:
    out: list[RoadmapRef] = []
    for row in rows:
        found = links(row.value)
        if found:
            for text, href in found:
                page = page_ref(href)
                out.append(
                    RoadmapRef(text or (page[1] if page else href), page[1] if page else None)
                )
        elif (name := plain(row.value)) and not not_applicable(name):
            out.append(RoadmapRef(name))
    return tuple(dict.fromkeys(out))


def _champions(rows: Iterable[Row]) -> tuple[Champion, ...]:
    out: list[Champion] = []
    for row in rows:
        m = _CHAMPION_KEY_RE.match(_key(row))
        team = team_name(m.group("team")) if m is not None and m.group("team") else None
        out += [Champion(team, h.lower()) for h in handles_in(visible(row.value))]
    return tuple(dict.fromkeys(out))


def _flagship(fields: dict[str, Row], status: GoalStatus, warnings: list[str]) -> str | None:
    flagship: str | None = None
    if "flagship" in fields:
        value = plain(fields["flagship"].value)
        if value.casefold() in _YES:
            flagship = "Yes"
        elif squash(value) not in _NO:
            flagship = value
    if status is GoalStatus.FLAGSHIP and flagship is None:
        if "flagship" in fields and plain(fields["flagship"].value):
            warnings.append("Status is Flagship but the Flagship row says otherwise")
        flagship = "Yes"
    return flagship


def _optional(fields: dict[str, Row], kind: str) -> str | None:
    value = plain(fields[kind].value) if kind in fields else ""
    return value if value and not not_applicable(value) and squash(value) not in _NO else None


def parse_page_doc(text: str, slug: str) -> GoalDoc | RoadmapDoc:
    """Read one page as a goal or a roadmap; raise :class:`GoalFileError` for anything else."""
    page = parse_page(text)
    if _is_index(slug, page):
        raise GoalFileError(
            ProblemKind.NOT_A_GOAL,
            f"'{slug}' is an index page of the goals book, not a goal; skipped.",
        )
    if not page.has_metadata:
        raise GoalFileError(
            ProblemKind.NO_METADATA,
            f"'{slug}' has no metadata table; expected a '| Metadata | |' table under the title.",
        )
    if page.title is None:
        raise GoalFileError(
            ProblemKind.NO_TITLE,
            f"'{slug}' has no title; expected a '# Title' heading above the metadata table.",
        )
    warnings = list(page.warnings)
    if not page.header_says_metadata:
        warnings.append("the metadata table's header does not say 'Metadata'")
    fields: dict[str, Row] = {}
    grouped: dict[str, list[Row]] = {}
    extra: dict[str, str] = {}
    seen: set[str] = set()
    for row in page.rows:
        norm, kind = _key(row), _kind(row)
        group = kind or norm
        if norm in seen and group not in _REPEATABLE:
            warnings.append(f"duplicate row '{row.key}'; the first one is used")
            continue
        if norm in seen and kind is None:
            first = next(k for k in extra if " ".join(k.casefold().split()) == norm)
            extra[first] += ", " + row.value.raw
            continue
        seen.add(norm)
        grouped.setdefault(group, []).append(row)
        if kind is None:
            extra[row.key] = row.value.raw
        else:
            fields.setdefault(kind, row)

    owner_rows = grouped.get("owners", [])
    if (
        "status" not in fields
        and not page.malformed
        and ("short_title" in fields or "summary" in fields or squash(slug).startswith("roadmap"))
    ):
        return RoadmapDoc(
            slug=slug,
            title=page.title,
            short_title=_optional(fields, "short_title"),
            summary=_optional(fields, "summary"),
            owners=dedup(h for r in owner_rows for h in handles_in(visible(r.value))),
            extra=extra,
            warnings=tuple(warnings),
        )
    status_text = fields["status"].value.raw if "status" in fields else ""
    if not plain(fields["status"].value if "status" in fields else Cell("", ())):
        why = f"{page.malformed} malformed row(s) and " if page.malformed else ""
        raise GoalFileError(
            ProblemKind.MALFORMED_ROW,
            f"'{slug}' metadata table has {why}no readable Status; "
            "expected a row like '| Status | Accepted |'.",
        )
    status = GoalStatus.parse(plain(fields["status"].value))
    if status is GoalStatus.OTHER:
        warnings.append(f"unknown Status {status_text!r}")
    flagship = _flagship(fields, status, warnings)

    owners: list[str] = []
    for row in owner_rows:
        found = handles_in(visible(row.value))
        if not found and plain(row.value):
            warnings.append(f"'{row.key}' names no GitHub @handle: {plain(row.value)!r}")
        owners.extend(found)
    if not owner_rows:
        warnings.append("no 'Point of contact' row")
    owner_handles = dedup(owners)

    after = page.after_metadata()
    section_handles, section_teams = ownership(after)
    task_cell = fields["task_owners"].value if "task_owners" in fields else Cell("", ())
    task_owners = dedup([*handles_in(visible(task_cell)), *section_handles], skip=owner_handles)
    teams_cell = fields["teams"].value if "teams" in fields else Cell("", ())
    teams = dedup([*teams_in_list(teams_cell), *section_teams])
    number, url = tracking(fields["tracking"].value, warnings) if "tracking" in fields else (
        None, None)  # fmt: skip
    channel, channel_url = zulip_channel(fields["zulip"].value) if "zulip" in fields else (
        None, None)  # fmt: skip
    return GoalDoc(
        slug=slug,
        title=page.title,
        short_title=_optional(fields, "short_title"),
        status=status,
        status_text=status_text,
        flagship=flagship,
        owners=owner_handles,
        owners_text="; ".join(row.value.raw for row in owner_rows),
        task_owners=task_owners,
        teams=teams,
        tracking_issue=number,
        tracking_url=url,
        zulip_channel=channel,
        extra=extra,
        warnings=tuple(warnings),
        zulip_url=channel_url,
        highlight=_optional(fields, "highlight"),
        summary=_optional(fields, "summary"),
        roadmaps=_roadmaps(grouped.get("roadmap", [])),
        champions=_champions(grouped.get("champion", [])),
        continues=_continues(grouped.get("continues", []), page.blocks),
    )


def parse_goal(text: str, slug: str) -> GoalDoc:
    """Parse one goal file; raise :class:`GoalFileError` if the text is not a goal."""
    doc = parse_page_doc(text, slug)
    if isinstance(doc, RoadmapDoc):
        raise GoalFileError(
            ProblemKind.ROADMAP, f"'{slug}' is a roadmap page (no Status row), not a goal."
        )
    return doc


# ---------------------------------------------------------------------------------------------
# Reading folders


@dataclass(slots=True)
class PageSet:
    """Every page of the given files and folders: goals, roadmaps, and what was left out."""

    goals: list[tuple[pathlib.Path, GoalDoc]] = field(default_factory=list)
    roadmaps: list[tuple[pathlib.Path, RoadmapDoc]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def _files(path: pathlib.Path, problems: list[Problem]) -> list[pathlib.Path]:
    try:
        if path.is_dir():
            return sorted(
                (p for p in path.iterdir() if p.suffix.lower() == ".md" and p.is_file()),
                key=lambda p: p.name,
            )
        if path.exists():
            return [path]
        problems.append(
            Problem(
                str(path),
                ProblemKind.UNREADABLE,
                f"{path} does not exist; expected a goal .md file or a folder of them.",
            )
        )
    except OSError as exc:
        problems.append(Problem(str(path), ProblemKind.UNREADABLE, f"{path}: {exc}."))
    return []


def read_pages(paths: Iterable[pathlib.Path]) -> PageSet:
    """Parse goal files and folders (``*.md``, not recursive, by name); never raises per file.

    Index pages come back as skip problems, so a caller can load a whole folder and show the
    operator one list of what was left out and why.
    """
    out = PageSet()
    for given in paths:
        for file in _files(pathlib.Path(given), out.problems):
            try:
                data = file.read_bytes()
            except OSError as exc:
                out.problems.append(
                    Problem(str(file), ProblemKind.UNREADABLE, f"cannot read {file}: {exc}.")
                )
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                out.problems.append(
                    Problem(
                        str(file),
                        ProblemKind.NOT_UTF8,
                        f"byte {exc.start} of {file.name} is not valid UTF-8; "
                        "expected a UTF-8 encoded Markdown file.",
                    )
                )
                continue
            try:
                doc = parse_page_doc(text, file.stem)
            except GoalFileError as exc:
                out.problems.append(Problem(str(file), exc.kind, exc.detail))
                continue
            if isinstance(doc, RoadmapDoc):
                out.roadmaps.append((file, doc))
            else:
                out.goals.append((file, doc))
    return out


def read_goal_files(
    paths: Iterable[pathlib.Path],
) -> tuple[list[tuple[pathlib.Path, GoalDoc]], list[Problem]]:
    """The goals of :func:`read_pages`; roadmap pages are reported as skipped."""
    pages = read_pages(paths)
    roadmaps = [
        Problem(str(path), ProblemKind.ROADMAP, f"'{doc.slug}' is a roadmap page, not a goal.")
        for path, doc in pages.roadmaps
    ]
    return pages.goals, [*pages.problems, *roadmaps]
