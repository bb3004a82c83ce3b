"""Read the Rust project's goal Markdown files into plain records.

The goal files are written by hand over several years, so the parser is lenient: it keeps
what it does not understand (``GoalDoc.extra``), notes oddities in ``GoalDoc.warnings`` and
only refuses a file when it cannot tell what the goal is (no title, no metadata table, no
readable ``Status``).  Everything here works on text; only :func:`read_goal_files` touches
the file system, so the bot can be tested without a checkout of the goals repository.
"""

from __future__ import annotations

import enum
import itertools
import pathlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "GoalDoc",
    "GoalFileError",
    "GoalStatus",
    "Problem",
    "ProblemKind",
    "handles_in",
    "is_index_page",
    "parse_goal",
    "read_goal_files",
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
        key = _squash(text)
        for member in cls:
            if member is not cls.OTHER and _squash(member.value) == key:
                return member
        return cls.OTHER


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

    @property
    def is_flagship(self) -> bool:
        """True for flagship goals, whichever row said so."""
        return self.flagship is not None


class ProblemKind(enum.Enum):
    """Why a file did not become a :class:`GoalDoc`."""

    NOT_A_GOAL = "not a goal"
    NO_METADATA = "no metadata table"
    MALFORMED_ROW = "malformed metadata row"
    NOT_UTF8 = "not UTF-8"
    NO_TITLE = "no title"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class Problem:
    """A file that was not loaded, with a sentence the operator can act on."""

    path: str
    kind: ProblemKind
    detail: str

    @property
    def is_skip(self) -> bool:
        """Index pages are expected in a goals folder: report them as skipped, not as errors."""
        return self.kind is ProblemKind.NOT_A_GOAL


class GoalFileError(Exception):
    """Raised by :func:`parse_goal` when the text cannot be read as a goal."""

    def __init__(self, kind: ProblemKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


# ---------------------------------------------------------------------------------------------
# Small text helpers

_INDEX_NAMES = frozenset(
    {
        "readme",
        "summary",
        "index",
        "goals",
        "accepted",
        "candidates",
        "flagship",
        "not_accepted",
        "notes",
        "template",
    }
)
_DIRECTIVE_RE = re.compile(r"\(\(\(\s*#?[A-Z][A-Z0-9 _-]*\)\)\)")
_HANDLE_RE = re.compile(
    r"(?<![\w@/.])@([A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})(?![\w/@-])"
)
_ATX_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*))?$")
_SETEXT_RE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SEPARATOR_RE = re.compile(r"^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$")
_META_HEADER_RE = re.compile(r"^\s*\|?\s*(?:\*\*|__)?\s*metadata\s*(?:\*\*|__)?\s*\|", re.I)
_REFDEF_RE = re.compile(r"^ {0,3}\[([^\]]+)\]:\s*<?([^\s>]+)>?")
_LINK_RE = re.compile(
    r"(!?)\[([^\[\]]*)\](?:\(\s*<?([^()\s<>]*)>?(?:\s+\"[^\"]*\")?\s*\)|\[([^\[\]]*)\])?"
)
_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_TEMPLATE_RE = re.compile(r"\{\{.*?(?:\}\}|\Z)", re.S)
_STRIKE_RE = re.compile(r"~~.*?~~", re.S)
_URL_RE = re.compile(r"https?://[^\s<>()\[\]]+")
_GITHUB_ISSUE_URL_RE = re.compile(
    r"github\.com/([\w.-]+)/([\w.-]+)/(?:issues|pull)/(\d{1,9})(?!\d)", re.I
)
_ISSUE_REF_RE = re.compile(r"(?:(?<![\w./-])([\w.-]{1,100}/[\w.-]{1,100}))?#(\d{1,9})(?!\d)")
_TEAM_BADGE_RE = re.compile(r"!\[\s*team(?:\s+ask)?\s*\](?:\[\]|\([^()]*\))?", re.I)
_TEAMS_TOKEN_RE = re.compile(
    r"(!?)\[([^\[\]]*)\](?:\([^()]*\)|\[[^\[\]]*\])?|\([^()]*\)|[^\s,;/\[\]()]+"
)
_TEAM_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_OWNER_LINE_RE = re.compile(r"^\s*(\*\*|__)\s*owners?\b.*?\1(.*)$", re.I)
_NOT_APPLICABLE_RE = re.compile(r"^(?:n/?a|none|tbd|todo|pending|-+|—)(?:\W|$)", re.I)
_NOT_TEAMS = frozenset({"and", "or", "tbd", "n/a", "none", "team", "teams", "todo"})
_YES = frozenset({"yes", "y", "true", "x", "✓", "✔"})
_NO = frozenset({"", "no", "n", "false", "na", "none"})

_OWNER_KEYS = ("point of contact", "points of contact", "poc", "owner", "owners", "owner(s)")
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
}


def _squash(text: str) -> str:
    """Lower-case letters and digits only, so 'Not  accepted' == 'not-accepted'."""
    return re.sub(r"[\W_]+", "", text.casefold())


def _dedup(items: Iterable[str], *, skip: Iterable[str] = ()) -> tuple[str, ...]:
    """Keep the first spelling of each item, comparing case-insensitively (GitHub does)."""
    seen = {s.casefold() for s in skip}
    out: list[str] = []
    for item in items:
        key = item.casefold()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return tuple(out)


def _strip_noise(text: str) -> str:
    """Drop HTML comments, ``{{ ... }}`` template calls and ~~struck-out~~ text.

    Struck-out names belong to finished or abandoned work, so nobody should be pinged for them.
    """
    text = _COMMENT_RE.sub(" ", text)
    text = _TEMPLATE_RE.sub(" ", text)
    return _STRIKE_RE.sub(" ", text)


def _plain(text: str) -> str:
    """Cell text with comments, links and bold markers reduced to words; backticks are kept."""
    text = _COMMENT_RE.sub(" ", text)
    text = _TEMPLATE_RE.sub(" ", text)
    text = _LINK_RE.sub(lambda m: m.group(2), text)
    text = re.sub(r"\*\*|__", "", text)
    return " ".join(text.split())


def _heading(masked_line: str) -> tuple[int, str] | None:
    """Level and text of an ATX heading line, or None."""
    m = _ATX_RE.match(masked_line)
    if m is None:
        return None
    body = re.sub(r"(?:^|[ \t]+)#+[ \t]*$", "", m.group(2) or "")
    return len(m.group(1)), body.strip()


def _mask(lines: list[str]) -> list[str]:
    """Blank out HTML comments and fenced code, keeping every line's length.

    Goal files comment out whole template sections (headings and tables included); masking
    rather than deleting keeps line numbers and column positions aligned with the original.
    """
    out: list[str] = []
    in_comment = False
    fence: str | None = None
    for line in lines:
        if fence is not None:
            stripped = line.strip()
            if stripped.startswith(fence) and set(stripped) <= {fence[0]}:
                fence = None
            out.append(" " * len(line))
            continue
        if not in_comment:
            fm = _FENCE_RE.match(line)
            if fm is not None:
                fence = fm.group(1)
                out.append(" " * len(line))
                continue
        chars = list(line)
        pos = 0
        while pos < len(line):
            if in_comment:
                end = line.find("-->", pos)
                stop = len(line) if end < 0 else end + 3
                chars[pos:stop] = " " * (stop - pos)
                pos = stop
                in_comment = end < 0
            else:
                start = line.find("<!--", pos)
                if start < 0:
                    break
                in_comment = True
                pos = start
        out.append("".join(chars))
    return out


def _split_row(line: str, masked: str) -> tuple[list[str], bool, bool]:
    """Cells of a table line, split at pipes that are neither escaped nor inside comments."""
    pipes = [i for i, ch in enumerate(masked) if ch == "|" and (i == 0 or masked[i - 1] != "\\")]
    body = masked.strip()
    lead = body.startswith("|")
    trail = len(body) > 1 and body.endswith("|") and pipes[-1:] == [len(masked.rstrip()) - 1]
    bounds = [-1, *pipes, len(line)]
    cells = [line[a + 1 : b].replace("\\|", "|").strip() for a, b in itertools.pairwise(bounds)]
    if lead:
        cells = cells[1:]
    if trail:
        cells = cells[:-1]
    return cells, lead, trail


def _ref_definitions(masked: list[str]) -> dict[str, str]:
    """Markdown reference definitions (``[label]: url``); the first definition wins."""
    defs: dict[str, str] = {}
    for line in masked:
        m = _REFDEF_RE.match(line)
        if m is not None:
            defs.setdefault(" ".join(m.group(1).casefold().split()), m.group(2))
    return defs


def _link_target(m: re.Match[str], defs: dict[str, str]) -> str | None:
    """Where a matched link points: inline URL, else its (shortcut) reference definition."""
    if m.group(3):
        return m.group(3)
    label = m.group(4) or m.group(2)
    return defs.get(" ".join(label.casefold().split()))


def _team_name(text: str) -> str | None:
    """Normalise 'T-Lang' or '`lang`' to 'lang'; None when it does not look like a team."""
    name = text.strip().strip("`*_").casefold()
    name = name.removeprefix("@rust-lang/").removeprefix("t-")
    if name in _NOT_TEAMS or not _TEAM_NAME_RE.match(name):
        return None
    return name


# ---------------------------------------------------------------------------------------------
# Public functions


def handles_in(text: str) -> tuple[str, ...]:
    """GitHub handles written as ``@handle`` (also inside ``[@handle](...)``), first spelling kept.

    Follows GitHub's rules (letters, digits, single inner hyphens, at most 39 characters) and
    ignores e-mail addresses, URL paths and ``@org/team`` mentions.
    """
    return _dedup(m.group(1) for m in _HANDLE_RE.finditer(text))


def is_index_page(slug: str, text: str) -> bool:
    """True for the book's index pages, which share the folder with the goals.

    A page counts as an index page when its name is one of the book's index names (README,
    goals, accepted, ...), or when it uses mdbook-goals directives such as ``(((GOALS)))`` and
    has no metadata table.
    """
    if slug.casefold().replace("-", "_") in _INDEX_NAMES:
        return True
    masked = _mask(text.removeprefix("\ufeff").splitlines())
    if not any(_DIRECTIVE_RE.search(line) for line in masked):
        return False
    return _find_metadata(masked) is None


def _find_metadata(masked: list[str]) -> int | None:
    """Index of the metadata table's header line.

    Normally the header reads ``| Metadata | |``; failing that, the first table with a
    ``Status`` row is accepted so a renamed header does not lose the goal.
    """
    for i, line in enumerate(masked):
        if _META_HEADER_RE.match(line):
            return i
    start: int | None = None
    for i, line in enumerate(masked):
        if line.strip().startswith("|"):
            if start is None:
                start = i
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 2 and _squash(cells[0]) == "status":
                return start
        else:
            start = None
    return None


def _find_title(masked: list[str], before: int) -> str | None:
    """Text of the first level-1 or level-2 heading above the metadata table."""
    for i in range(before):
        line = masked[i]
        head = _heading(line)
        if head is not None:
            if head[0] <= 2 and head[1]:
                return head[1]
            continue
        if (
            i + 1 < before
            and line.strip()
            and not line.lstrip().startswith(("|", ">", "-", "*", "+"))
            and _SETEXT_RE.match(masked[i + 1])
        ):
            return line.strip()
    return None


@dataclass(slots=True)
class _Row:
    key: str
    value: str


def _metadata_rows(
    lines: list[str], masked: list[str], header: int, warnings: list[str]
) -> tuple[list[_Row], int]:
    """Key/value rows of the metadata table and the count of lines that were not rows."""
    rows: list[_Row] = []
    malformed = 0
    i = header + 1
    if i < len(masked) and _SEPARATOR_RE.match(masked[i]) and "-" in masked[i]:
        i += 1
    else:
        warnings.append("the metadata table has no '|---|---|' line under its header")
    while i < len(masked):
        line, mline = lines[i], masked[i]
        if not mline.strip() or "|" not in mline or _heading(mline) is not None:
            break
        i += 1
        if _SEPARATOR_RE.match(mline) and "-" in mline:
            warnings.append(f"line {i}: extra separator line in the metadata table")
            continue
        cells, lead, trail = _split_row(line, mline)
        if len(cells) < 2 or not _plain(cells[0]):
            if any(c for c in cells):
                malformed += 1
                warnings.append(
                    f"line {i}: malformed metadata row {line.strip()!r}; expected '| Key | Value |'"
                )
            continue
        key = _plain(cells[0])
        if not (lead and trail):
            warnings.append(f"row '{key}' is missing a leading or closing '|'")
        if any(cells[2:]):
            warnings.append(f"row '{key}' has {len(cells)} cells; only the first two are used")
        if not cells[1]:
            warnings.append(f"row '{key}' has no value")
        rows.append(_Row(key, cells[1]))
    return rows, malformed


def _tracking(
    value: str, defs: dict[str, str], warnings: list[str]
) -> tuple[int | None, str | None]:
    """Issue number and URL from a Tracking issue cell (link, reference, bare URL or ``o/r#N``)."""
    text = _COMMENT_RE.sub(" ", value)
    found: list[tuple[int, int, str | None]] = []

    def from_ref(pos: int, ref_text: str, url: str | None) -> bool:
        m = _ISSUE_REF_RE.search(ref_text)
        u = _GITHUB_ISSUE_URL_RE.search(url) if url else None
        if m is not None:
            number = int(m.group(2))
            if u is not None and int(u.group(3)) != number:
                warnings.append(
                    f"'Tracking issue' text says #{number} but its link points to #{u.group(3)}"
                )
            if url is None and m.group(1):
                url = f"https://github.com/{m.group(1)}/issues/{number}"
        elif u is not None:
            number = int(u.group(3))
        else:
            return False
        found.append((pos, number, url if url and url.startswith("http") else None))
        return True

    for m in _LINK_RE.finditer(text):
        if not m.group(1) and from_ref(m.start(), m.group(2), _link_target(m, defs)):
            text = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]
    for m in _URL_RE.finditer(text):
        url = m.group().rstrip(".,;:")
        if from_ref(m.start(), "", url):
            text = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]
    for m in _ISSUE_REF_RE.finditer(text):
        from_ref(m.start(), m.group(), None)
    if not found:
        plain = _plain(value)
        if plain and not _NOT_APPLICABLE_RE.match(plain):
            warnings.append(f"no issue number found in 'Tracking issue' ({plain!r})")
        return None, None
    found.sort(key=lambda item: item[0])
    if len({number for _, number, _ in found}) > 1:
        warnings.append("'Tracking issue' names several issues; the first one is used")
    return found[0][1], found[0][2]


def _zulip(value: str, defs: dict[str, str]) -> tuple[str | None, str | None]:
    """Channel name and URL; None for 'N/A' and empty cells."""
    plain = _plain(value)
    if not plain or _NOT_APPLICABLE_RE.match(plain):
        return None, None
    text = _COMMENT_RE.sub(" ", value)
    for m in _LINK_RE.finditer(text):
        if m.group(1):
            continue
        target = _link_target(m, defs)
        url = target if target and target.startswith("http") else None
        name = " ".join(m.group(2).split()) or url
        if name:
            return name, url
    m2 = _URL_RE.search(text)
    if m2 is not None:
        return m2.group(), m2.group()
    return plain, None


def _teams_row(value: str) -> list[str]:
    """Team names from a Teams cell: ``[lang], [compiler]`` links or plain 'lang, compiler'."""
    words: list[str] = []
    for m in _TEAMS_TOKEN_RE.finditer(_strip_noise(value)):
        if m.group(1) or m.group().startswith("("):
            continue  # an image badge or a remark in parentheses
        words.append(m.group(2) if m.group(2) is not None else m.group())
    return [name for name in map(_team_name, words) if name]


def _teams_in_cell(cell: str, defs: dict[str, str]) -> list[str]:
    """Teams asked for in an ownership-table cell.

    After a ``![Team][]`` badge every reference is a team.  Without a badge only references
    with no definition in the file count: the book defines team links itself, while people
    and groups (``[RustNL]``) are defined in the goal file.
    """
    badge = _TEAM_BADGE_RE.search(cell)
    names: list[str] = []
    for m in _LINK_RE.finditer(cell):
        if m.group(1):
            continue
        if badge is not None and m.start() >= badge.end():
            pass
        elif m.group(3) or _link_target(m, defs) is not None:
            continue
        name = _team_name(m.group(2))
        if name:
            names.append(name)
    return names


def _ownership(
    masked: list[str], lines: list[str], start: int, defs: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Handles and team names from the 'Ownership and team asks' section(s).

    Only the owner column of its tables and ``**Owner:**`` lines are read: the prose around
    them quotes and thanks people who are not doing the work.
    """
    handles: list[str] = []
    teams: list[str] = []
    level: int | None = None
    owner_col: int | None = None
    i = start
    while i < len(masked):
        mline = masked[i]
        head = _heading(mline)
        if head is not None:
            if level is not None and head[0] <= level:
                level = None
            if level is None and re.search(r"ownership|team asks", head[1], re.I):
                level = head[0]
            owner_col = None
            i += 1
            continue
        if level is None:
            i += 1
            continue
        if not mline.strip().startswith("|"):
            owner_col = None
            m = _OWNER_LINE_RE.match(mline)
            if m is not None:
                handles.extend(handles_in(_strip_noise(m.group(2))))
            i += 1
            continue
        cells, _, _ = _split_row(lines[i], mline)
        if i + 1 < len(masked) and _SEPARATOR_RE.match(masked[i + 1]) and "-" in masked[i + 1]:
            owner_col = next(
                (n for n, c in enumerate(cells) if re.search(r"owner|team|who", c, re.I)), None
            )
            i += 2
            continue
        if owner_col is not None and owner_col < len(cells):
            cell = _strip_noise(cells[owner_col])
            handles.extend(handles_in(cell))
            teams.extend(_teams_in_cell(cell, defs))
        i += 1
    return handles, teams


def parse_goal(text: str, slug: str) -> GoalDoc:
    """Parse one goal file; raise :class:`GoalFileError` if the text is not a goal."""
    text = text.removeprefix("\ufeff")
    if is_index_page(slug, text):
        raise GoalFileError(
            ProblemKind.NOT_A_GOAL,
            f"'{slug}' is an index page of the goals book, not a goal; skipped.",
        )
    lines = text.splitlines()
    masked = _mask(lines)
    header = _find_metadata(masked)
    if header is None:
        raise GoalFileError(
            ProblemKind.NO_METADATA,
            f"'{slug}' has no metadata table; expected a '| Metadata | |' table under the title.",
        )
    title = _find_title(masked, header)
    if title is None:
        raise GoalFileError(
            ProblemKind.NO_TITLE,
            f"'{slug}' has no title; expected a '# Title' heading above the metadata table.",
        )
    warnings: list[str] = []
    if not _META_HEADER_RE.match(masked[header]):
        warnings.append("the metadata table's header does not say 'Metadata'")
    rows, malformed = _metadata_rows(lines, masked, header, warnings)
    defs = _ref_definitions(masked)

    fields: dict[str, str] = {}
    owner_rows: list[_Row] = []
    extra: dict[str, str] = {}
    seen: set[str] = set()
    for row in rows:
        norm = " ".join(row.key.casefold().split())
        if norm in seen:
            warnings.append(f"duplicate row '{row.key}'; the first one is used")
            continue
        seen.add(norm)
        kind = _KNOWN_KEYS.get(norm)
        if kind == "owners":
            owner_rows.append(row)
        elif kind is not None:
            fields[kind] = row.value
        else:
            extra[row.key] = row.value

    status_text = fields.get("status", "")
    if not _plain(status_text):
        why = f"{malformed} malformed row(s) and " if malformed else ""
        raise GoalFileError(
            ProblemKind.MALFORMED_ROW,
            f"'{slug}' metadata table has {why}no readable Status; "
            "expected a row like '| Status | Accepted |'.",
        )
    status = GoalStatus.parse(_plain(status_text))
    if status is GoalStatus.OTHER:
        warnings.append(f"unknown Status {status_text!r}")

    flagship: str | None = None
    if "flagship" in fields:
        value = _plain(fields["flagship"])
        if value.casefold() in _YES:
            flagship = "Yes"
        elif _squash(value) not in _NO:
            flagship = value
    if status is GoalStatus.FLAGSHIP and flagship is None:
        if "flagship" in fields and _plain(fields["flagship"]):
            warnings.append("Status is Flagship but the Flagship row says otherwise")
        flagship = "Yes"

    owners: list[str] = []
    for row in owner_rows:
        found = handles_in(_strip_noise(row.value))
        if not found and _plain(row.value):
            warnings.append(f"'{row.key}' names no GitHub @handle: {_plain(row.value)!r}")
        owners.extend(found)
    if not owner_rows:
        warnings.append("no 'Point of contact' row")
    owner_handles = _dedup(owners)

    section_handles, section_teams = _ownership(masked, lines, header, defs)
    row_handles = handles_in(_strip_noise(fields.get("task_owners", "")))
    task_owners = _dedup([*row_handles, *section_handles], skip=owner_handles)
    teams = _dedup([*_teams_row(fields.get("teams", "")), *section_teams])

    number, url = _tracking(fields.get("tracking", ""), defs, warnings)
    channel, channel_url = _zulip(fields.get("zulip", ""), defs)
    short_title = _plain(fields.get("short_title", "")) or None

    return GoalDoc(
        slug=slug,
        title=title,
        short_title=short_title,
        status=status,
        status_text=status_text,
        flagship=flagship,
        owners=owner_handles,
        owners_text="; ".join(row.value for row in owner_rows),
        task_owners=task_owners,
        teams=teams,
        tracking_issue=number,
        tracking_url=url,
        zulip_channel=channel,
        extra=extra,
        warnings=tuple(warnings),
        zulip_url=channel_url,
    )


def read_goal_files(
    paths: Iterable[pathlib.Path],
) -> tuple[list[tuple[pathlib.Path, GoalDoc]], list[Problem]]:
    """Parse goal files and folders (``*.md``, not recursive, by name); never raises per file.

    Index pages come back as skip problems, so a caller can load a whole half-year folder and
    show the operator one list of what was left out and why.
    """
    docs: list[tuple[pathlib.Path, GoalDoc]] = []
    problems: list[Problem] = []
    for given in paths:
        path = pathlib.Path(given)
        try:
            if path.is_dir():
                files = sorted(
                    (p for p in path.iterdir() if p.suffix.lower() == ".md" and p.is_file()),
                    key=lambda p: p.name,
                )
            elif path.exists():
                files = [path]
            else:
                problems.append(
                    Problem(
                        str(path),
                        ProblemKind.UNREADABLE,
                        f"{path} does not exist; expected a goal .md file or a folder of them.",
                    )
                )
                continue
        except OSError as exc:
            problems.append(Problem(str(path), ProblemKind.UNREADABLE, f"{path}: {exc}."))
            continue
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as exc:
                problems.append(
                    Problem(str(file), ProblemKind.UNREADABLE, f"cannot read {file}: {exc}.")
                )
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(
                    Problem(
                        str(file),
                        ProblemKind.NOT_UTF8,
                        f"byte {exc.start} of {file.name} is not valid UTF-8; "
                        "expected a UTF-8 encoded Markdown file.",
                    )
                )
                continue
            try:
                docs.append((file, parse_goal(text, file.stem)))
            except GoalFileError as exc:
                problems.append(Problem(str(file), exc.kind, exc.detail))
    return docs, problems
