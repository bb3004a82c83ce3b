"""One page of a goals book, read with a Markdown parser: its title, metadata table and sections.

The pages are written by hand over several years, so this module is lenient: markdown-it-py gives
the structure (headings, tables, paragraphs, links, code and comments, each with its line
number), and the few things a Markdown parser does not report (a row missing its closing ``|``,
a row with one cell) are read from the row's own source line and become warnings.  Nothing here
decides what a page *is*; ``goals.files`` does that with the ``Page`` this module returns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

from zulip_goals_bot.goals.cells import (
    Cell,
    links,
    page_ref,
    plain,
    squash,
    teams_in_owner_cell,
    text_of,
    visible,
)
from zulip_goals_bot.people.handles import handles_in

__all__ = ["Block", "Page", "Row", "ownership", "parse_page"]

# A reference definition (``[label]: url``).  In the goal files one often follows the metadata
# table on the next line, where a Markdown parser reads it as one more table row.
_REFDEF_RE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*\S")
# The header line of a metadata table, for tables a parser does not see (no '|---|' line).
_META_LINE_RE = re.compile(r"^\s*\|?\s*(?:\*\*|__)?\s*metadata\s*(?:\*\*|__)?\s*\|", re.I)
_SEPARATOR_CELL_RE = re.compile(r"^\s*:?-+:?\s*$")
# mdbook-goals directives such as ``(((GOALS)))`` or ``(((ROADMAP GOALS: Beyond the `&`)))``.
_DIRECTIVE_RE = re.compile(r"\(\(\(\s*#?[A-Z][A-Z0-9 _-]*(?::[^)]*)?\)\)\)")


@cache
def _parser() -> MarkdownIt:
    """CommonMark with GitHub tables and strikethrough, as the goals book (mdbook) reads it."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


# ---------------------------------------------------------------------------------------------
# Plain data


@dataclass(frozen=True, slots=True)
class Row:
    """One ``| Key | Value |`` row of the metadata table."""

    key: str  # plain text of the first cell
    key_cell: Cell
    value: Cell
    line: int  # 1-based, in the file as written


@dataclass(frozen=True, slots=True)
class Block:
    """A heading, paragraph or table of the page, in document order."""

    kind: str  # "heading", "paragraph" or "table"
    line: int  # 1-based first line
    level: int = 0  # headings only
    cell: Cell | None = None  # headings and paragraphs
    header: tuple[Cell, ...] = ()  # tables only
    rows: tuple[tuple[int, tuple[Cell, ...]], ...] = ()  # tables: (line, cells)


@dataclass(slots=True)
class Page:
    """What ``parse_page`` read; ``rows`` is empty when there is no metadata table."""

    blocks: list[Block]
    title: str | None = None
    has_metadata: bool = False
    header_says_metadata: bool = True
    rows: list[Row] = field(default_factory=list)
    malformed: int = 0
    warnings: list[str] = field(default_factory=list)
    metadata_block: int = -1  # index in ``blocks`` of the table (or paragraph) holding it

    def has_directive(self) -> bool:
        """True when the page uses mdbook-goals directives outside code blocks and comments."""
        cells = [c for b in self.blocks for c in ([b.cell] if b.cell else [*b.header])]
        return any(_DIRECTIVE_RE.search(text_of(c)) for c in cells)

    def after_metadata(self) -> list[Block]:
        return self.blocks[self.metadata_block + 1 :] if self.metadata_block >= 0 else []


# ---------------------------------------------------------------------------------------------
# Reading a page


def _prepare(text: str) -> tuple[list[str], list[int]]:
    """Lines to parse, with a blank line where the goal files rely on a line starting a block.

    Hand-written pages put a reference definition or a table right under a line of text, where
    CommonMark reads it as more of that text; mdbook's readers (and the goals' authors) see a
    definition or a table.  Returns the lines and, for each, its 1-based number in the file
    (0 for an added blank line).
    """
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    numbers: list[int] = []
    for n, line in enumerate(lines, start=1):
        previous = out[-1] if out else ""
        starts_table = (
            line.lstrip().startswith("|")
            and "|" not in previous
            and n < len(lines)
            and _is_separator(lines[n])
        )
        if previous.strip() and (_REFDEF_RE.match(line) or starts_table):
            out.append("")
            numbers.append(0)
        out.append(line)
        numbers.append(n)
    return out, numbers


def _blocks(tokens: Sequence[Token], numbers: Sequence[int]) -> list[Block]:
    """Headings, paragraphs and tables in document order (code and HTML blocks are left out)."""
    blocks: list[Block] = []
    i = 0

    def line_of(tok: Token) -> int:
        start = tok.map[0] if tok.map else 0
        return numbers[min(start, len(numbers) - 1)]

    def cell_of(tok: Token) -> Cell:
        return Cell(tok.content, tuple(tok.children or ()))

    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            blocks.append(Block("heading", line_of(tok), int(tok.tag[1:]), cell_of(tokens[i + 1])))
            i += 3
        elif tok.type == "paragraph_open":
            blocks.append(Block("paragraph", line_of(tok), cell=cell_of(tokens[i + 1])))
            i += 3
        elif tok.type == "table_open":
            header: list[Cell] = []
            rows: list[tuple[int, tuple[Cell, ...]]] = []
            row: list[Cell] = []
            row_line = 0
            in_head = False
            j = i + 1
            while j < len(tokens) and tokens[j].type != "table_close":
                t = tokens[j]
                if t.type == "thead_open":
                    in_head = True
                elif t.type == "thead_close":
                    in_head = False
                elif t.type == "tr_open":
                    row, row_line = [], line_of(t)
                elif t.type == "inline":
                    row.append(cell_of(t))
                elif t.type == "tr_close":
                    if in_head:
                        header = row
                    else:
                        rows.append((row_line, tuple(row)))
                j += 1
            blocks.append(Block("table", line_of(tok), header=tuple(header), rows=tuple(rows)))
            i = j + 1
        else:
            i += 1
    return blocks


def _row_line(lines: Sequence[str], numbers: Sequence[int], line: int) -> str:
    """The source line with 1-based number ``line``."""
    return lines[numbers.index(line)] if line in numbers else ""


def _raw_cells(line: str) -> tuple[list[str], bool, bool]:
    """The cells of a table line as the parser splits them, and whether it has outer pipes."""
    from markdown_it.rules_block.table import escapedSplit

    body = line.strip()
    cells = [c.strip() for c in escapedSplit(body)]
    lead = body.startswith("|")
    trail = len(body) > 1 and body.endswith("|") and not body.endswith("\\|")
    if lead and cells:
        cells = cells[1:]
    if trail and cells:
        cells = cells[:-1]
    return cells, lead, trail


def _is_separator(line: str) -> bool:
    cells, _, _ = _raw_cells(line)
    return bool(cells) and all(_SEPARATOR_CELL_RE.match(c) for c in cells) and "-" in line


def _table_rows(
    page: Page, found: Sequence[tuple[int, Sequence[Cell]]], lines: Sequence[str],
    numbers: Sequence[int],
) -> None:  # fmt: skip
    """Key/value rows from table rows; what a parser pads or drops is read from the source."""
    for line_no, cells in found:
        source = _row_line(lines, numbers, line_no)
        if "|" not in source:
            break  # prose right under the table: the table has ended
        if _is_separator(source):
            page.warnings.append(f"line {line_no}: extra separator line in the metadata table")
            continue
        raw, lead, trail = _raw_cells(source)
        key = plain(cells[0]) if cells else ""
        if len(raw) < 2 or not key:
            if any(raw):
                page.malformed += 1
                page.warnings.append(
                    f"line {line_no}: malformed metadata row {source.strip()!r}; "
                    "expected '| Key | Value |'"
                )
            continue
        if not (lead and trail):
            page.warnings.append(f"row '{key}' is missing a leading or closing '|'")
        if any(raw[2:]):
            page.warnings.append(f"row '{key}' has {len(raw)} cells; only the first two are used")
        value = cells[1] if len(cells) > 1 else Cell("", ())
        if not raw[1]:
            page.warnings.append(f"row '{key}' has no value")
        page.rows.append(Row(key, cells[0], value, line_no))


def _loose_rows(
    source_lines: Sequence[tuple[int, str]], env: dict[str, Any]
) -> list[tuple[int, list[Cell]]]:
    """Rows of a table the parser did not see (no '|---|' line), each parsed on its own."""
    out: list[tuple[int, list[Cell]]] = []
    for line_no, line in source_lines:
        if "|" not in line:
            break
        width = max(2, len(_raw_cells(line)[0]))
        head = "|" + " x |" * width + "\n|" + " - |" * width + "\n"
        tokens = _parser().parse(head + line, dict(env))
        cells = [
            Cell(t.content, tuple(t.children or ()))
            for t in tokens
            if t.type == "inline" and t.map and t.map[0] == 2
        ]
        out.append((line_no, cells or [Cell(line, ())]))
    return out


def _is_status_line(line: str) -> bool:
    cells = _raw_cells(line)[0] if "|" in line else []
    return len(cells) >= 2 and squash(cells[0]) == "status"


def _locate(
    page: Page, numbers: Sequence[int], matches: Callable[[str], bool], *, header: bool
) -> tuple[int, int] | None:
    """The first table (or table-like lines of a paragraph) that ``matches`` picks out.

    Returns the block's index and, for a paragraph, the index of the table's header line in it
    (-1 for a table).  With ``header`` the header line must match; otherwise any line of the
    table may, and the table starts at the first of the lines with pipes around it.
    """
    for index, block in enumerate(page.blocks):
        if block.kind == "table":
            if header:
                hit = bool(block.header) and squash(plain(block.header[0])) == "metadata"
            else:
                hit = any(squash(plain(cells[0])) == "status" for _, cells in block.rows if cells)
            if hit:
                return index, -1
        elif block.kind == "paragraph" and block.cell is not None:
            raw = block.cell.raw.split("\n")
            for k, line in enumerate(raw):
                if matches(line):
                    while not header and k > 0 and raw[k - 1].lstrip().startswith("|"):
                        k -= 1
                    return index, k
    return None


def parse_page(text: str) -> Page:
    """Read a page: blocks, title, metadata rows and the warnings found on the way."""
    lines, numbers = _prepare(text)
    env: dict[str, Any] = {}
    tokens = _parser().parse("\n".join(lines), env)
    page = Page(_blocks(tokens, numbers))

    # The metadata table: the first "| Metadata |" header (with or without its '|---|' line);
    # failing that, the first table with a Status row, so a renamed header does not lose it.
    found = _locate(page, numbers, lambda line: bool(_META_LINE_RE.match(line)), header=True)
    if found is None:
        found = _locate(page, numbers, _is_status_line, header=False)
        page.header_says_metadata = False
    index = -1
    if found is not None:
        index, k = found
        block = page.blocks[index]
        if block.cell is None:
            _table_rows(page, block.rows, lines, numbers)
        else:
            first = numbers.index(block.line)
            rest = [(numbers[first + n], s) for n, s in enumerate(block.cell.raw.split("\n"))]
            rest = rest[k + 1 :]
            if rest and _is_separator(rest[0][1]):
                rest = rest[1:]
            else:
                page.warnings.append("the metadata table has no '|---|---|' line under its header")
            _table_rows(page, _loose_rows(rest, env), lines, numbers)
    if found is not None:
        page.has_metadata = True
        page.metadata_block = index
        for block in page.blocks[:index]:
            if block.kind == "heading" and block.cell is not None:
                name = " ".join(block.cell.raw.split())
                if block.level <= 2 and name:
                    page.title = name
                    break
    return page


# ---------------------------------------------------------------------------------------------
# Reading sections


def sibling_links(page: Page) -> int:
    """How many links point at other pages of the same folder."""
    count = 0
    for block in page.blocks:
        cells = [block.cell] if block.cell else [c for _, row in block.rows for c in row]
        for cell in cells:
            for _text, href in links(cell):
                ref = page_ref(href)
                if ref is not None and ref[0] is None and "://" not in href:
                    count += 1
    return count


def _owner_lines(cell: Cell) -> list[str]:
    """Handles on ``**Owner:** @a and @b`` lines of a paragraph."""
    lines: list[list[Token]] = [[]]
    for tok in cell.tokens:
        if tok.type in ("softbreak", "hardbreak"):
            lines.append([])
        elif not (tok.type == "text" and not tok.content):
            lines[-1].append(tok)
    found: list[str] = []
    for line in lines:
        if len(line) < 3 or line[0].type != "strong_open":
            continue
        close = next((i for i, t in enumerate(line) if t.type == "strong_close"), 0)
        label = "".join(t.content for t in line[1:close])
        if close and re.match(r"^\s*owners?\b", label, re.I):
            found += handles_in(visible(Cell("", tuple(line[close + 1 :]))))
    return found


def ownership(blocks: Iterable[Block]) -> tuple[list[str], list[str]]:
    """Handles and team names from the 'Ownership and team asks' section(s).

    Only the owner column of its tables and ``**Owner:**`` lines are read: the prose around
    them quotes and thanks people who are not doing the work.
    """
    handles: list[str] = []
    teams: list[str] = []
    level: int | None = None
    for block in blocks:
        if block.kind == "heading" and block.cell is not None:
            if level is not None and block.level <= level:
                level = None
            if level is None and re.search(r"ownership|team asks", block.cell.raw, re.I):
                level = block.level
        elif level is None:
            continue
        elif block.kind == "table":
            column = next(
                (
                    n
                    for n, c in enumerate(block.header)
                    if re.search(r"owner|team|who", c.raw, re.I)
                ),
                None,
            )
            for _line, cells in block.rows:
                if column is not None and column < len(cells):
                    handles += handles_in(visible(cells[column]))
                    teams += teams_in_owner_cell(cells[column])
        elif block.cell is not None:
            handles += _owner_lines(block.cell)
    return handles, teams
