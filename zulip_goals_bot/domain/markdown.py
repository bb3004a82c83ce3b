"""Zulip Markdown that the bot writes: mentions, links, dates, and text made safe to echo.

Everything the bot repeats from stored text (titles, updates) goes through ``neutralize`` so it can
never ping anyone, and every answer goes through ``split_blocks``/``shorten`` so it fits Zulip's
10,000-character limit.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

# Zulip's message size limit (the server's MAX_MESSAGE_LENGTH): a longer message is refused.
MAX_MESSAGE_LENGTH = 10_000
# Room left under the limit for a "(continued)" line and similar framing.
SAFE_LENGTH = MAX_MESSAGE_LENGTH - 200

# @**name**, @_**name**, @*group*, @_*group*, with optional |id: every Zulip mention form.
_MENTION = re.compile(r"@(_?)(\*\*?)")
_ZWSP = "\u200b"


def neutralize(text: str) -> str:
    """Break every mention and wildcard in ``text`` so that echoing it pings nobody.

    A zero-width space after the ``@`` keeps the text readable but stops Zulip's mention parser.
    """
    return _MENTION.sub(lambda m: "@" + _ZWSP + m.group(1) + m.group(2), text)


def safe(text: str) -> str:
    """Stored or typed text, made unable to ping and unable to break our bold marks."""
    return neutralize(text).replace("**", "")


@dataclass(frozen=True, slots=True)
class ZulipUser:
    """A Zulip account as the bot names it."""

    user_id: int
    full_name: str

    def mention(self, *, silent: bool = False) -> str:
        name = self.full_name.replace("*", "").replace("|", "") or "user"
        return f"@{'_' if silent else ''}**{name}|{self.user_id}**"


@dataclass(frozen=True, slots=True)
class StreamRef:
    """A stream as links name it: its name, and its id once the bot has looked it up.

    Links name a stream by id (they keep working after a rename); without an id (a dry run that
    does not connect to Zulip) they name it by its name alone, which Zulip resolves too.
    """

    name: str
    stream_id: int | None = None


def stream_ref(name: str, known: Iterable[StreamRef]) -> StreamRef:
    """The stream called ``name`` (Zulip ignores case), with its id if ``known`` has it."""
    lowered = name.lower()
    return next((s for s in known if s.name.lower() == lowered), StreamRef(name))


def narrow_encode(text: str) -> str:
    """One part of a Zulip narrow URL: percent-encoding with "." as the escape, as Zulip 8.0
    writes it, so that the part holds no Markdown and no character that ends a link."""
    return quote(text, safe="").replace(".", "%2E").replace("%", ".")


def _stream_slug(stream: StreamRef) -> str:
    if stream.stream_id is None:
        return narrow_encode(stream.name)
    return f"{stream.stream_id}-{narrow_encode(stream.name.replace(' ', '-'))}"


def topic_narrow(stream: StreamRef, topic: str) -> str:
    """The in-app address of a topic, relative to the server (Zulip renders it as a link)."""
    return f"#narrow/stream/{_stream_slug(stream)}/topic/{narrow_encode(topic)}"


# Two stars or two dollars in a row start Zulip syntax (mentions, #** links, bold-italic, TeX)
# that the server parses even inside a link's text; a zero-width space between them stops it.
_DOUBLED = re.compile(r"([*$])(?=[*$])")


def link_text(text: str) -> str:
    """``text`` made plain inside the brackets of a Markdown link: no mention, no link syntax,
    no code span, and no bracket that would end the link early."""
    text = " ".join(text.split())
    text = text.replace("`", "'").replace("[", "(").replace("]", ")")
    return neutralize(_DOUBLED.sub(lambda m: m.group(1) + _ZWSP, text))


def topic_link(stream: StreamRef, topic: str) -> str:
    """A link to a topic that no topic name can turn into Markdown.

    Zulip's own ``#**stream>topic**`` syntax parses the topic: a topic holding ``@*group*``
    breaks the link and pings the whole group (seen on a real Zulip 8.0 server).  Here the
    topic only appears encoded in the URL and as inert link text.
    """
    return f"[{link_text(f'#{stream.name} > {topic}')}]({topic_narrow(stream, topic)})"


def stream_link(stream: StreamRef) -> str:
    """A link to a stream, written like ``topic_link``."""
    return f"[{link_text('#' + stream.name)}](#narrow/stream/{_stream_slug(stream)})"


def message_link(site: str, message_id: int) -> str:
    return f"{site.rstrip('/')}/#narrow/id/{message_id}"


def time_tag(when: datetime) -> str:
    """Zulip's global time syntax, shown in each reader's own timezone."""
    return f"<time:{when.isoformat(timespec='seconds')}>"


def days_ago(when: datetime, now: datetime) -> str:
    days = (now - when).days
    if days <= 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"{days} days ago"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _balanced(text: str) -> str:
    """Drop a trailing construct that the cut left open (code fence, code span, bold, link)."""
    if text.count("```") % 2:
        text = text[: text.rfind("```")].rstrip()
    lines = text.split("\n")
    last = lines[-1]
    if last.count("`") % 2:
        last = last[: last.rfind("`")]
    if last.count("**") % 2:
        last = last[: last.rfind("**")]
    opened = last.rfind("[")
    if opened > last.rfind("]") or last.rfind("](") > last.rfind(")"):
        last = last[: max(opened, 0)] if opened >= 0 else last
    if last.count("<") > last.count(">"):
        last = last[: last.rfind("<")]
    lines[-1] = last.rstrip()
    return "\n".join(lines).rstrip()


def shorten(text: str, limit: int, *, max_lines: int | None = None) -> str:
    """Cut ``text`` to at most ``limit`` characters at a clean boundary, ending with an ellipsis."""
    text = text.strip()
    lines = text.split("\n")
    if max_lines is not None and len(lines) > max_lines:
        text = "\n".join(lines[:max_lines])
    elif len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    if len(text) > limit - 1:
        for sep in ("\n\n", "\n", ". ", " "):
            pos = cut.rfind(sep)
            if pos > limit // 3:
                cut = cut[:pos]
                break
    cut = _balanced(cut)
    return (cut + " …").strip() if cut else "…"


def quote_block(text: str) -> str:
    """A Zulip quote block around text, with a fence that the text itself cannot close."""
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}quote\n{text}\n{fence}"


def split_blocks(blocks: Iterable[str], limit: int = SAFE_LENGTH, sep: str = "\n") -> list[str]:
    """Join blocks into messages of at most ``limit`` characters, never splitting a block.

    A single block longer than the limit is shortened on its own.
    """
    messages: list[str] = []
    current = ""
    for block in blocks:
        if len(block) > limit:
            block = shorten(block, limit)
        candidate = f"{current}{sep}{block}" if current else block
        if len(candidate) > limit and current:
            messages.append(current)
            current = block
        else:
            current = candidate
    if current:
        messages.append(current)
    return messages


def limit_items(items: list[str], limit: int, sep: str = "\n") -> str:
    """Join as many items as fit in ``limit``, then say "and N more"."""
    out: list[str] = []
    used = 0
    for i, item in enumerate(items):
        extra = len(item) + len(sep)
        tail = len(f"{sep}… and {len(items) - i} more")
        if used + extra + tail > limit:
            out.append(f"… and {len(items) - i} more")
            break
        out.append(item)
        used += extra
    return sep.join(out)


# A fenced code block's opening line, and an inline code span: text inside them is shown as typed.
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")


def outside_code(
    text: str, change: re.Pattern[str], replace: Callable[[re.Match[str]], str]
) -> str:
    """Apply ``change.sub(replace, ...)`` to the text outside code blocks and code spans."""
    out: list[str] = []
    fence: str | None = None
    for line in text.split("\n"):
        m = _FENCE.match(line)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            out.append(line)
            continue
        if m:
            fence = m.group(1)
            out.append(line)
            continue
        pieces: list[str] = []
        pos = 0
        for span in _CODE_SPAN.finditer(line):
            pieces.append(change.sub(replace, line[pos : span.start()]))
            pieces.append(span.group(0))
            pos = span.end()
        pieces.append(change.sub(replace, line[pos:]))
        out.append("".join(pieces))
    return "\n".join(out)
