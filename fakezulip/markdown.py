"""Just enough of Zulip's Markdown dialect: mentions (which drive message flags) and HTML.

Mention detection must match the server's, because flags such as ``mentioned`` are what
bots react to, so the flags come from the rendering itself, as on the real server: a mention
counts only where the renderer made one (not in code, silenced inside quotes, and inside a
``#**stream>topic**`` link exactly as Zulip 8.0 parses it; see the recorded transcript 29).
The rest of the HTML only needs to be plausible: it fills ``rendered_content`` and the
``apply_markdown=true`` variants of messages.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from fakezulip import emoji

# What may precede an "@" or a "#**" link: start, whitespace, quotes, brackets, slash or "<".
_BEFORE = r"(?<![^\s'\"(\{\[/<])"
USER_MENTION_RE = re.compile(_BEFORE + r"@(_?)\*\*([^*]+)\*\*")
GROUP_MENTION_RE = re.compile(_BEFORE + r"@(_?)\*([^*]+)\*")
TOPIC_LINK_RE = re.compile(_BEFORE + r"#\*\*([^*>]+)>([^*]+)\*\*")
STREAM_LINK_RE = re.compile(_BEFORE + r"#\*\*([^*]+)\*\*")
# A fence: three or more backticks or tildes, then an optional language word.
FENCE_RE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
QUOTE_LANGS = frozenset({"quote", "quoted"})
CODE_SPAN_RE = re.compile(r"`([^`\n]+)`")
LINK_RE = re.compile(r"\[([^\]\n]+)\]\((https?://[^)\s]+|/[^)\s]*|#[^)\s]*)\)")
AUTOLINK_RE = re.compile(r"(?<![\w\"=/])(https?://[^\s<]+[^\s<.,:;\"')\]])")
EMOJI_RE = re.compile(r"(?<![\w:]):([a-z0-9_+-]+):(?![\w:])")
BOLD_RE = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
ITALIC_RE = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
STRIKE_RE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
# Python-Markdown's placeholder for an inline element already rendered.  Its exact form matters:
# a placeholder inside a topic link's topic ends up in the link's URL, as on the real server.
PLACEHOLDER = "\x02klzzwxh:{:04d}\x03"
PLACEHOLDER_RE = re.compile("\x02klzzwxh:(\\d{4})\x03")

STREAM_WILDCARDS = frozenset({"all", "everyone", "stream"})
TOPIC_WILDCARD = "topic"


@dataclass(frozen=True)
class Mention:
    """One ``@**...**`` in a message.  ``target`` is the text between the asterisks."""

    silent: bool
    target: str

    @property
    def name(self) -> str:
        return self.target.split("|", 1)[0]

    @property
    def user_id(self) -> int | None:
        if "|" in self.target:
            tail = self.target.rsplit("|", 1)[1]
            if tail.isdigit():
                return int(tail)
        return None


@dataclass
class Rendered:
    """A message's HTML and whom it notifies, as the server's renderer reports them."""

    html: str = ""
    user_ids: set[int] = field(default_factory=set)  # loud @**user** mentions
    group_ids: set[int] = field(default_factory=set)  # loud @*group* mentions
    stream_wildcard: bool = False  # a loud @**all** / @**everyone** / @**stream**
    topic_wildcard: bool = False  # a loud @**topic**


def silence(line: str) -> str:
    """What the server does to every quoted line: each mention becomes a silent one."""
    line = USER_MENTION_RE.sub(lambda m: f"@_**{m.group(2)}**", line)
    return GROUP_MENTION_RE.sub(lambda m: f"@_*{m.group(2)}*", line)


def strip_code(content: str) -> str:
    """Remove fenced blocks and code spans: mentions inside them are not mentions.

    A quote fence (```quote) is removed too: the server silences every mention in it.
    """
    out: list[str] = []
    fence: str | None = None
    for line in content.split("\n"):
        m = FENCE_RE.match(line)
        if fence is None and m:
            fence = m.group(1)
            continue
        if fence is not None:
            if line.strip() == fence:
                fence = None
            continue
        out.append(line)
    return CODE_SPAN_RE.sub("", "\n".join(out))


def find_mentions(content: str) -> list[Mention]:
    """All user/wildcard mentions outside code, in order."""
    if "@" not in content:
        return []
    text = strip_code(content)
    return [
        Mention(silent=m.group(1) == "_", target=m.group(2)) for m in USER_MENTION_RE.finditer(text)
    ]


def hash_encode(text: str) -> str:
    """Zulip's URL-fragment encoding (percent-encoding with "." as the escape)."""
    return urllib.parse.quote(text, safe="").replace(".", "%2E").replace("%", ".")


def stream_slug(stream_id: int, name: str) -> str:
    return f"{stream_id}-{hash_encode(name.replace(' ', '-'))}"


def topic_narrow_path(stream_id: int, stream_name: str, topic: str) -> str:
    return f"#narrow/stream/{stream_slug(stream_id, stream_name)}/topic/{hash_encode(topic)}"


UserResolver = Callable[[Mention], "tuple[int, str] | None"]
StreamResolver = Callable[[str], "tuple[int, str] | None"]
GroupResolver = Callable[[str], "tuple[int, str] | None"]
# A custom emoji's name to its image URL, for the realm's active custom emoji only.
EmojiResolver = Callable[[str], "str | None"]


class _Pass:
    """One message being rendered: the stashed inline fragments and the mentions found."""

    def __init__(self) -> None:
        self.frags: list[str] = []
        self.result = Rendered()

    def keep(self, fragment: str) -> str:
        self.frags.append(fragment)
        return PLACEHOLDER.format(len(self.frags) - 1)

    def restore(self, text: str) -> str:
        while PLACEHOLDER_RE.search(text):
            text = PLACEHOLDER_RE.sub(lambda m: self.frags[int(m.group(1))], text)
        return text


class Renderer:
    """Render message Markdown to HTML, resolving users, streams, groups and custom emoji."""

    def __init__(
        self,
        resolve_user: UserResolver,
        resolve_stream: StreamResolver,
        resolve_group: GroupResolver | None = None,
        resolve_emoji: EmojiResolver | None = None,
    ) -> None:
        self._resolve_user = resolve_user
        self._resolve_stream = resolve_stream
        self._resolve_group: GroupResolver = resolve_group or (lambda _name: None)
        self._resolve_emoji: EmojiResolver = resolve_emoji or (lambda _name: None)

    def render(self, content: str) -> str:
        return self.render_message(content).html

    def render_message(self, content: str) -> Rendered:
        """The HTML of ``content`` and the mentions that notify someone."""
        state = _Pass()
        state.result.html = self._blocks(content, state)
        return state.result

    def _blocks(self, content: str, state: _Pass) -> str:
        blocks: list[str] = []
        lines = content.split("\n")
        i = 0
        para: list[str] = []

        def flush_para() -> None:
            if para:
                blocks.append("<p>" + "<br>\n".join(self.inline(p, state) for p in para) + "</p>")
                para.clear()

        while i < len(lines):
            line = lines[i]
            fence = FENCE_RE.match(line)
            if fence:
                flush_para()
                marker, lang = fence.group(1), fence.group(2).lower()
                body: list[str] = []
                i += 1
                while i < len(lines) and lines[i].strip() != marker:
                    body.append(lines[i])
                    i += 1
                i += 1
                if lang in QUOTE_LANGS:  # the server turns it into "> " lines
                    inner = self._blocks("\n".join(silence(b) for b in body), state)
                    blocks.append(f"<blockquote>\n{inner}\n</blockquote>")
                    continue
                code = html.escape("\n".join(body), quote=False)
                blocks.append(
                    f'<div class="codehilite"><pre><span></span><code>{code}\n</code></pre></div>'
                )
                continue
            stripped = line.strip()
            if not stripped:
                flush_para()
                i += 1
                continue
            heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
            if heading:
                flush_para()
                level = len(heading.group(1))
                blocks.append(f"<h{level}>{self.inline(heading.group(2), state)}</h{level}>")
                i += 1
                continue
            if re.match(r"^[*+-]\s+", stripped) or re.match(r"^\d+[.)]\s+", stripped):
                flush_para()
                ordered = bool(re.match(r"^\d", stripped))
                items: list[str] = []
                pattern = r"^\d+[.)]\s+" if ordered else r"^[*+-]\s+"
                while i < len(lines) and re.match(pattern, lines[i].strip()):
                    items.append(re.sub(pattern, "", lines[i].strip(), count=1))
                    i += 1
                tag = "ol" if ordered else "ul"
                inner = "\n".join(f"<li>{self.inline(item, state)}</li>" for item in items)
                blocks.append(f"<{tag}>\n{inner}\n</{tag}>")
                continue
            if stripped.startswith(">"):
                flush_para()
                quoted: list[str] = []
                while i < len(lines) and lines[i].strip().startswith(">"):
                    quoted.append(silence(lines[i].strip()[1:].lstrip()))
                    i += 1
                inner = self._blocks("\n".join(quoted), state)
                blocks.append(f"<blockquote>\n{inner}\n</blockquote>")
                continue
            para.append(line)
            i += 1
        flush_para()
        return "\n".join(blocks)

    def inline(self, text: str, state: _Pass | None = None) -> str:
        """Inline Markdown of one line, in the server's order: code spans, user mentions, topic
        and stream links, group mentions, links, then emphasis; each result is stashed."""
        state = state or _Pass()
        keep = state.keep
        text = CODE_SPAN_RE.sub(
            lambda m: keep(f"<code>{html.escape(m.group(1), quote=False)}</code>"), text
        )
        text = USER_MENTION_RE.sub(lambda m: self._mention(m, state), text)
        text = TOPIC_LINK_RE.sub(lambda m: self._topic_link(m, keep), text)
        text = STREAM_LINK_RE.sub(lambda m: self._stream_link(m, keep), text)
        text = GROUP_MENTION_RE.sub(lambda m: self._group_mention(m, state), text)
        text = LINK_RE.sub(
            lambda m: keep(
                f'<a href="{html.escape(m.group(2))}">{html.escape(m.group(1), quote=False)}</a>'
            ),
            text,
        )
        text = AUTOLINK_RE.sub(
            lambda m: keep(f'<a href="{html.escape(m.group(1))}">{html.escape(m.group(1))}</a>'),
            text,
        )
        text = EMOJI_RE.sub(lambda m: self._emoji(m, keep), text)
        text = html.escape(text, quote=False)
        text = BOLD_RE.sub(r"<strong>\1</strong>", text)
        text = STRIKE_RE.sub(r"<del>\1</del>", text)
        text = ITALIC_RE.sub(r"<em>\1</em>", text)
        return state.restore(text)

    def _mention(self, m: re.Match[str], state: _Pass) -> str:
        mention = Mention(silent=m.group(1) == "_", target=m.group(2))
        name = mention.name
        silent = " silent" if mention.silent else ""
        shown_name = name if mention.silent else f"@{name}"
        if name in STREAM_WILDCARDS and mention.user_id is None:
            state.result.stream_wildcard |= not mention.silent
            return state.keep(
                f'<span class="user-mention{silent}" data-user-id="*">{shown_name}</span>'
            )
        if name == TOPIC_WILDCARD and mention.user_id is None:
            state.result.topic_wildcard |= not mention.silent
            return state.keep(f'<span class="topic-mention{silent}">{shown_name}</span>')
        found = self._resolve_user(mention)
        if found is None:
            return m.group(0)
        user_id, full_name = found
        if not mention.silent:
            state.result.user_ids.add(user_id)
        shown = html.escape(full_name if mention.silent else f"@{full_name}", quote=False)
        return state.keep(
            f'<span class="user-mention{silent}" data-user-id="{user_id}">{shown}</span>'
        )

    def _group_mention(self, m: re.Match[str], state: _Pass) -> str:
        silent = m.group(1) == "_"
        found = self._resolve_group(m.group(2))
        if found is None:
            return m.group(0)
        group_id, name = found
        if not silent:
            state.result.group_ids.add(group_id)
        shown = html.escape(name if silent else f"@{name}", quote=False)
        css = "user-group-mention silent" if silent else "user-group-mention"
        return state.keep(f'<span class="{css}" data-user-group-id="{group_id}">{shown}</span>')

    def _topic_link(self, m: re.Match[str], keep: Callable[[str], str]) -> str:
        found = self._resolve_stream(m.group(1))
        if found is None:
            return m.group(0)
        stream_id, name = found
        topic = m.group(2)
        href = "/" + topic_narrow_path(stream_id, name, topic)
        return keep(
            f'<a class="stream-topic" data-stream-id="{stream_id}" href="{html.escape(href)}">'
            f"#{html.escape(name, quote=False)} &gt; {html.escape(topic, quote=False)}</a>"
        )

    def _stream_link(self, m: re.Match[str], keep: Callable[[str], str]) -> str:
        found = self._resolve_stream(m.group(1))
        if found is None:
            return m.group(0)
        stream_id, name = found
        slug = stream_slug(stream_id, name)
        return keep(
            f'<a class="stream" data-stream-id="{stream_id}" href="/#narrow/stream/{slug}">'
            f"#{html.escape(name, quote=False)}</a>"
        )

    def _emoji(self, m: re.Match[str], keep: Callable[[str], str]) -> str:
        name = m.group(1)
        custom = self._resolve_emoji(name)
        if custom is not None:  # a realm's custom emoji shadows a built-in one of that name
            return keep(
                f'<img alt=":{name}:" class="emoji" src="{html.escape(custom)}" title="{name}">'
            )
        found = emoji.lookup(name)
        if found is None:
            return m.group(0)
        code, _kind = found
        label = name.replace("_", " ")
        return keep(
            f'<span aria-label="{label}" class="emoji emoji-{code}" role="img" title="{label}">'
            f":{name}:</span>"
        )
