"""Update text as the website shows it: Zulip Markdown rendered to HTML that cannot do harm.

Updates are written by people in Zulip, so the text is untrusted.  It is parsed with markdown-it
(raw HTML off: a ``<script>`` is text), with inline rules for what Zulip adds to Markdown:
mentions render as the person's name in plain text (a wildcard such as ``@**all**`` is just
"@all"), stream and topic links as their names, ``<time:...>`` as a date.  The HTML then goes
through nh3, an allow-list sanitizer, as a second line of defence: no script, no event handler,
no style, no image (which would load from outside the site), only http(s) and mailto links, each
with ``rel="nofollow noopener"``.  Relative links in a message point into Zulip, so they are made
absolute against the Zulip server's URL (or dropped when it is unknown).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import nh3
from linkify_it import LinkifyIt
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

# Every Zulip mention form: @**name**, @**name|id**, silent @_**name**, groups @*name*, @_*name*.
_MENTION = re.compile(r"@_?(?:\*\*([^*\n]+?)\*\*|\*([^*\n]+?)\*)")
# A stream, topic or message link: #**stream**, #**stream>topic**, #**stream>topic@id**.
_STREAM = re.compile(r"#\*\*([^*\n>]+)(?:>([^*\n]+?))?\*\*")
# Zulip's global time: <time:2025-03-06T14:00:00+00:00>.
_TIME = re.compile(r"<time:([^>\s]+)>")
# Link schemes a reader's browser may follow from an update; anything else is dropped.
_SCHEMES = frozenset({"http", "https", "mailto"})
# An update's own headings sit under the page's h1 (title), h2 (sections) and h3 (the update).
_HEADING_SHIFT = 3
_DEEPEST_HEADING = 6
# Tags the sanitizer keeps: what markdown-it produces for the Zulip subset, nothing more.
_TAGS = frozenset(
    {
        "p", "br", "strong", "em", "del", "s", "code", "pre", "blockquote", "hr",
        "ul", "ol", "li", "a", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td",
        "span", "time", "details", "summary",
    }
)  # fmt: skip
_ATTRIBUTES = {"a": {"href"}, "ol": {"start"}, "time": {"datetime"}}
# Class names are filtered apart from other attributes (nh3 refuses "class" in both).
_CLASSES = {"span": {"mention", "stream"}}
LINK_REL = "nofollow noopener"
Options = OptionsDict
# Text that needs no Markdown parser: none of the characters that start Markdown or Zulip syntax
# ("@" mentions, "#" headings and stream links, "<" HTML and times, "&" entities, "|" tables,
# emphasis, code, links, escapes), no tab or carriage return, no link for linkify to find, and
# no line that could open a list, a quote, a rule or an indented block.  Its HTML is paragraphs
# with a <br> per line, which the tests check against the parser's on generated texts.
_SPECIAL = re.compile(r"[\\`*_\[\]<>&#|~@\t\r\x00]")
_BLOCK_START = re.compile(r"^(?:[ \-+=]|\d{1,9}[.)])", re.MULTILINE)
_BLANK = re.compile(r"\n(?: *\n)+")
_LINE_BREAK = re.compile(r" *\n *")


def plain_paragraphs(text: str) -> str | None:
    """The HTML of a text without any Markdown in it, or None if it may have some."""
    if _SPECIAL.search(text) or _BLOCK_START.search(text):
        return None
    if "://" in text:
        return None
    folded = text.lower()
    if "www." in folded or "mailto:" in folded:
        return None
    out = []
    for block in _BLANK.split(text):
        if not block.strip(" \n"):
            continue
        # As the parser does: a paragraph is stripped of all white space around it, and of the
        # spaces around each line break inside it.
        para = block.strip()
        if "\n" in para:
            para = _LINE_BREAK.sub("<br>\n", para)
        if "\xa0" in para:
            para = para.replace("\xa0", "&nbsp;")
        out.append(f"<p>{para}</p>\n")
    return "".join(out)


class _SchemeLinks(LinkifyIt):  # type: ignore[misc]
    """linkify-it for links with a scheme or "www." (as Zulip links them), skipping its costly
    regular expression for text that has neither."""

    def pretest(self, text: str) -> bool:
        if "://" not in text and "www." not in text.lower() and "mailto:" not in text.lower():
            return False
        return bool(super().pretest(text))


def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(_TAGS),
        attributes={k: set(v) for k, v in _ATTRIBUTES.items()},
        allowed_classes={k: set(v) for k, v in _CLASSES.items()},
        url_schemes=set(_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
    )


def _mention_name(m: re.Match[str]) -> str:
    return (m.group(1) or m.group(2) or "").rsplit("|", 1)[0].strip() or "someone"


def _stream_text(m: re.Match[str]) -> str:
    # A message link ends with @id, which says nothing to a reader.
    stream, topic = m.group(1).strip(), re.sub(r"@\d+$", "", m.group(2) or "").strip()
    return f"#{stream} › {topic}" if topic else f"#{stream}"


def _parse_time(m: re.Match[str]) -> datetime | None:
    try:
        when = datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).astimezone(UTC)


def _time_text(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _replacing(
    marker: str, pattern: re.Pattern[str], kind: str, text: Callable[[re.Match[str]], str]
) -> Callable[[StateInline, bool], bool]:
    """An inline rule that turns ``pattern``, starting at ``marker``, into one ``kind`` token
    holding ``text`` of the match (mentions and stream links are shown, never followed)."""

    def rule(state: StateInline, silent: bool) -> bool:
        if state.src[state.pos] != marker:
            return False
        m = pattern.match(state.src, state.pos)
        if m is None:
            return False
        if not silent:
            token = state.push(kind, "", 0)
            token.content = text(m)
        state.pos = m.end()
        return True

    return rule


_mention_rule = _replacing("@", _MENTION, "zulip_mention", _mention_name)
_stream_rule = _replacing("#", _STREAM, "zulip_stream", _stream_text)


def _time_rule(state: StateInline, silent: bool) -> bool:
    if state.src[state.pos] != "<":
        return False
    m = _TIME.match(state.src, state.pos)
    if m is None:
        return False
    when = _parse_time(m)
    if when is None:
        return False
    if not silent:
        token = state.push("zulip_time", "", 0)
        token.content = _time_text(when)
        token.meta = {"datetime": when.isoformat(timespec="seconds")}
    state.pos = m.end()
    return True


def _render_mention(_r: Any, tokens: Sequence[Token], idx: int, _o: Options, _e: EnvType) -> str:
    return f'<span class="mention">@{escapeHtml(tokens[idx].content)}</span>'


def _render_stream(_r: Any, tokens: Sequence[Token], idx: int, _o: Options, _e: EnvType) -> str:
    return f'<span class="stream">{escapeHtml(tokens[idx].content)}</span>'


def _render_time(_r: Any, tokens: Sequence[Token], idx: int, _o: Options, _e: EnvType) -> str:
    token = tokens[idx]
    stamp = escapeHtml(str(token.meta["datetime"]))
    return f'<time datetime="{stamp}">{escapeHtml(token.content)}</time>'


class ZulipMarkdown:
    """Renders Zulip Markdown to sanitized HTML; one instance per Zulip server URL.

    Rendered updates are kept by message id and a digest of their text, so the bot's rebuilds
    only render what is new or edited (identical texts of different messages are rendered
    each, so a cold build costs what it costs).
    """

    def __init__(self, zulip_url: str | None) -> None:
        self.zulip_url = zulip_url.rstrip("/") + "/" if zulip_url else None
        self._cleaner = _cleaner()
        self._cache: dict[tuple[int | str, int, int], str] = {}
        self._used: dict[tuple[int | str, int, int], str] = {}
        md = MarkdownIt(
            "zero", {"breaks": True, "html": False, "linkify": True, "typographer": False}
        )
        md.enable(
            [
                "fence", "code", "blockquote", "hr", "list", "heading", "table", "paragraph",
                "newline", "escape", "backticks", "strikethrough", "emphasis", "link",
                "autolink", "entity", "linkify",
            ]
        )  # fmt: skip
        md.linkify = _SchemeLinks(options={"fuzzy_link": False, "fuzzy_email": False})
        md.inline.ruler.before("emphasis", "zulip_mention", _mention_rule)
        md.inline.ruler.before("emphasis", "zulip_stream", _stream_rule)
        md.inline.ruler.before("autolink", "zulip_time", _time_rule)
        md.core.ruler.push("zulip_links", self._fix_links)
        md.add_render_rule("zulip_mention", _render_mention)
        md.add_render_rule("zulip_stream", _render_stream)
        md.add_render_rule("zulip_time", _render_time)
        md.add_render_rule("fence", lambda _r, tokens, idx, _o, env: self._fence(tokens[idx], env))
        self._md = md

    # -- rules that need the instance ------------------------------------------------------------

    def _fix_links(self, state: StateCore) -> None:
        """Make relative links absolute in Zulip; shift headings under the page's own."""
        for token in state.tokens:
            if token.type in ("heading_open", "heading_close"):
                level = min(int(token.tag[1]) + _HEADING_SHIFT, _DEEPEST_HEADING)
                token.tag = f"h{level}"
            for child in token.children or ():
                if child.type == "link_open":
                    href = str(child.attrGet("href") or "")
                    fixed = self.absolute(href)
                    if fixed is None:
                        child.attrs.pop("href", None)
                    else:
                        child.attrSet("href", fixed)

    def absolute(self, href: str) -> str | None:
        """An update's link as the site can show it, or None when it cannot be followed."""
        scheme = urlsplit(href).scheme.lower()
        if scheme:
            return href if scheme in _SCHEMES else None
        if self.zulip_url is None or not href:
            return None
        return urljoin(self.zulip_url, href)

    def _fence(self, token: Token, env: EnvType) -> str:
        """Zulip's ```quote and ```spoiler blocks hold Markdown; other fences are code."""
        word, _, rest = token.info.strip().partition(" ")
        if word == "quote":
            return f"<blockquote>{self._md.render(token.content, env)}</blockquote>\n"
        if word == "spoiler":
            head = escapeHtml(rest.strip() or "Spoiler")
            body = self._md.render(token.content, env)
            return f"<details><summary>{head}</summary>{body}</details>\n"
        return f"<pre><code>{escapeHtml(token.content)}</code></pre>\n"

    # -- rendering -------------------------------------------------------------------------------

    def block(self, text: str) -> str:
        """A whole message as sanitized HTML."""
        html = plain_paragraphs(text)
        if html is not None:
            return html  # no "<" or "&" in the text: no markup can come out of it
        return self._cleaner.clean(self._md.render(text))

    def parsed(self, text: str) -> str:
        """``block`` always through the Markdown parser (what ``plain_paragraphs`` must equal)."""
        return self._cleaner.clean(self._md.render(text))

    def inline(self, text: str) -> str:
        """One line (a TL;DR, a help-wanted line, a metadata cell) as sanitized inline HTML."""
        return self._cleaner.clean(self._md.renderInline(text.strip()))

    def message(self, message_id: int | str, text: str) -> str:
        """``block`` for a stored message, remembered for the next build while it is unchanged.

        Keyed by the message and its text's length and hash: the cache lives in one process,
        and an edit that kept both the length and the 64-bit hash is not a practical worry.
        """
        key = (message_id, len(text), hash(text))
        html = self._cache.get(key)
        if html is None:
            html = self.block(text)
        self._used[key] = html
        return html

    def start_build(self) -> None:
        """Forget what the last build did not use (edited, deleted or moved messages)."""
        self._cache = self._used or self._cache
        self._used = {}


def plain(text: str) -> str:
    """A Zulip text as plain words: mentions as "@Name", links to streams as their names, times
    as dates.  For feed titles and goals.json, where no Markdown is rendered."""
    if "@" not in text and "#" not in text and "<" not in text:
        return text  # nothing to change (most updates): skip the three searches
    text = _MENTION.sub(lambda m: "@" + _mention_name(m), text)
    text = _STREAM.sub(_stream_text, text)

    def time_text(m: re.Match[str]) -> str:
        when = _parse_time(m)
        return _time_text(when) if when is not None else m.group(0)

    return _TIME.sub(time_text, text)
