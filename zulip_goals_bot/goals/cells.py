"""What a cell of a goal page says: its words, the people and teams it names, its links.

A *cell* is a table cell or a paragraph as markdown-it-py tokenised it.  The functions here read
those tokens the way the goals book means them: struck-out names are finished work, ``[lang]``
without a definition in the file is a team the book links, ``rust-lang/goals#12`` is an issue.
They are pure and know nothing about files or the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it.token import Token

_TEMPLATE_RE = re.compile(r"\{\{.*?(?:\}\}|\Z)", re.S)
_URL_RE = re.compile(r"https?://[^\s<>()\[\]]+")
_GITHUB_ISSUE_URL_RE = re.compile(
    r"github\.com/([\w.-]+)/([\w.-]+)/(?:issues|pull)/(\d{1,9})(?!\d)", re.I
)
_ISSUE_REF_RE = re.compile(r"(?:(?<![\w./-])([\w.-]{1,100}/[\w.-]{1,100}))?#(\d{1,9})(?!\d)")
# Reference-style brackets that stayed text because the book, not the file, defines them:
# ``[lang]``, ``[types][]``, and image badges such as ``![Team][]``.
_BRACKET_RE = re.compile(r"(!?)\[([^\[\]]*)\](?:\[\])?")
_TEAM_BADGE_RE = re.compile(r"^\s*team(?:\s+ask)?\s*$", re.I)
_TEAM_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_WORD_SPLIT_RE = re.compile(r"[\s,;/\[\]]+")
_REMARK_RE = re.compile(r"\([^()]*\)")
_NOT_APPLICABLE_RE = re.compile(r"^(?:n/?a|none|tbd|todo|pending|-+|—)(?:\W|$)", re.I)
_NOT_TEAMS = frozenset({"and", "or", "tbd", "n/a", "none", "team", "teams", "todo"})
_PAGE_HREF_RE = re.compile(r"^(?:[a-z]+://[^/]+)?(?P<path>[^?#]*?)(?P<ext>\.md|\.html)(?:[?#].*)?$")


def squash(text: str) -> str:
    """Lower-case letters and digits only, so 'Not  accepted' == 'not-accepted'."""
    return re.sub(r"[\W_]+", "", text.casefold())


@dataclass(frozen=True, slots=True)
class Cell:
    """A table cell or a paragraph: its source text and its inline tokens."""

    raw: str
    tokens: tuple[Token, ...]


def _skip_struck(tokens: Iterable[Token]) -> Iterator[Token]:
    """Tokens outside ~~struck-out~~ text: struck names belong to finished or abandoned work."""
    depth = 0
    for tok in tokens:
        if tok.type == "s_open":
            depth += 1
        elif tok.type == "s_close":
            depth = max(depth - 1, 0)
        elif depth == 0:
            yield tok


def plain(cell: Cell) -> str:
    """Words of a cell: links and images reduced to their text, comments and emphasis dropped.

    Code spans keep their backticks (a theme is called "Beyond the `&`").
    """
    parts: list[str] = []
    for tok in cell.tokens:
        if tok.type == "text":
            parts.append(tok.content)
        elif tok.type == "code_inline":
            parts.append(f"{tok.markup}{tok.content}{tok.markup}")
        elif tok.type == "image":
            parts.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return " ".join(_TEMPLATE_RE.sub(" ", "".join(parts)).split())


def text_of(cell: Cell) -> str:
    """The text and code of a cell, without comments: what a reader of the page sees."""
    return "".join(t.content for t in cell.tokens if t.type in ("text", "code_inline"))


def visible(cell: Cell) -> str:
    """Text that names people: no struck-out text, comments or ``{{ template }}`` calls."""
    parts: list[str] = []
    for tok in _skip_struck(cell.tokens):
        if tok.type == "text" or tok.type == "code_inline":
            parts.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak", "html_inline", "image"):
            parts.append(" ")
    return _TEMPLATE_RE.sub(" ", "".join(parts))


def links(cell: Cell) -> list[tuple[str, str]]:
    """(text, href) of every link of a cell, in order (images are not links)."""
    out: list[tuple[str, str]] = []
    current: list[str] | None = None
    href = ""
    for tok in cell.tokens:
        if tok.type == "link_open":
            current, href = [], str(tok.attrs.get("href", ""))
        elif tok.type == "link_close" and current is not None:
            out.append((" ".join("".join(current).split()), href))
            current = None
        elif current is not None and tok.type == "text":
            current.append(tok.content)
        elif current is not None and tok.type == "code_inline":
            current.append(f"{tok.markup}{tok.content}{tok.markup}")
    return out


def dedup(items: Iterable[str], *, skip: Iterable[str] = ()) -> tuple[str, ...]:
    """Keep the first spelling of each item, comparing case-insensitively (GitHub does)."""
    seen = {s.casefold() for s in skip}
    out: list[str] = []
    for item in items:
        key = item.casefold()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return tuple(out)


def team_name(text: str) -> str | None:
    """Normalise 'T-Lang' or '`lang`' to 'lang'; None when it does not look like a team."""
    name = text.strip().strip("`*_").casefold()
    name = name.removeprefix("@rust-lang/").removeprefix("t-")
    if name in _NOT_TEAMS or not _TEAM_NAME_RE.match(name):
        return None
    return name


def teams_in_list(cell: Cell) -> list[str]:
    """Team names of a Teams cell: ``[lang], [compiler]`` (links or not) or 'lang, compiler'."""
    words: list[str] = []
    in_link = False
    for tok in _skip_struck(cell.tokens):
        if tok.type == "link_open":
            in_link = True
            words.append("")
        elif tok.type == "link_close":
            in_link = False
        elif in_link and tok.type in ("text", "code_inline"):
            words[-1] += tok.content
        elif tok.type == "text":
            text = _BRACKET_RE.sub(lambda m: " " if m.group(1) else f" {m.group(2)} ", tok.content)
            words += _WORD_SPLIT_RE.split(_REMARK_RE.sub(" ", _TEMPLATE_RE.sub(" ", text)))
        elif tok.type == "code_inline":
            words.append(tok.content)
    return [name for name in map(team_name, words) if name]


def teams_in_owner_cell(cell: Cell) -> list[str]:
    """Teams asked for in an ownership-table cell.

    After a ``![Team][]`` badge every reference is a team.  Without a badge only references the
    file does not define count: the book defines team links itself, while people and groups
    (``[RustNL]``) are defined in the goal file, so the parser turned those into links.
    """
    names: list[str] = []
    badge = False
    in_link = False
    link_text = ""
    for tok in _skip_struck(cell.tokens):
        if tok.type == "image":
            badge = badge or bool(_TEAM_BADGE_RE.match(tok.content))
        elif tok.type == "link_open":
            in_link, link_text = True, ""
        elif tok.type == "link_close":
            in_link = False
            if badge and (name := team_name(link_text)):
                names.append(name)
        elif in_link and tok.type == "text":
            link_text += tok.content
        elif tok.type == "text":
            for m in _BRACKET_RE.finditer(_TEMPLATE_RE.sub(" ", tok.content)):
                if m.group(1):
                    badge = badge or bool(_TEAM_BADGE_RE.match(m.group(2)))
                elif name := team_name(m.group(2)):
                    names.append(name)
    return names


def tracking(cell: Cell, warnings: list[str]) -> tuple[int | None, str | None]:
    """Issue number and URL from a Tracking issue cell (link, reference, bare URL or ``o/r#N``)."""
    found: list[tuple[int, str | None]] = []

    def add(ref_text: str, url: str | None) -> bool:
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
        found.append((number, url if url and url.startswith("http") else None))
        return True

    link_texts = iter(links(cell))
    for tok in cell.tokens:
        if tok.type == "link_open":
            text, href = next(link_texts)
            add(text, href)
        elif tok.type == "text" and not _inside_link(cell.tokens, tok):
            text = tok.content
            for m in _URL_RE.finditer(text):
                if add("", m.group().rstrip(".,;:")):
                    text = text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]
            for m in _ISSUE_REF_RE.finditer(text):
                add(m.group(), None)
    if not found:
        shown = plain(cell)
        if shown and not _NOT_APPLICABLE_RE.match(shown):
            warnings.append(f"no issue number found in 'Tracking issue' ({shown!r})")
        return None, None
    if len({number for number, _ in found}) > 1:
        warnings.append("'Tracking issue' names several issues; the first one is used")
    return found[0]


def _inside_link(tokens: Sequence[Token], target: Token) -> bool:
    depth = 0
    for tok in tokens:
        if tok is target:
            return depth > 0
        if tok.type == "link_open":
            depth += 1
        elif tok.type == "link_close":
            depth -= 1
    return False


def zulip_channel(cell: Cell) -> tuple[str | None, str | None]:
    """Channel name and URL; None for 'N/A' and empty cells."""
    shown = plain(cell)
    if not shown or _NOT_APPLICABLE_RE.match(shown):
        return None, None
    for text, href in links(cell):
        url = href if href.startswith("http") else None
        name = text or url
        if name:
            return name, url
    for tok in cell.tokens:
        if tok.type == "text" and (m := _URL_RE.search(tok.content)) is not None:
            return m.group(), m.group()
        if tok.type == "text" and (b := _BRACKET_RE.search(tok.content)) and not b.group(1):
            return " ".join(b.group(2).split()) or shown, None  # a reference the file lacks
    return shown, None


def not_applicable(text: str) -> bool:
    """'N/A', 'none', 'TBD' and the like: a cell that says there is nothing."""
    return bool(_NOT_APPLICABLE_RE.match(text))


def page_ref(href: str) -> tuple[str | None, str] | None:
    """(period, slug) of a link to another page of the book, or None for other links."""
    m = _PAGE_HREF_RE.match(href.strip())
    if m is None:
        return None
    parts = [p for p in m.group("path").split("/") if p]
    if not parts:
        return None
    before = parts[-2] if len(parts) > 1 else None
    period = before if before not in (None, ".", "..", "src") else None
    return period, parts[-1]
