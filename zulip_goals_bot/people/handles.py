"""GitHub handles (``@ferris``) in text people wrote: found, and shown as the reader expects.

Goal files and updates name people by GitHub handle.  On Zulip a handle linked to an account is
shown as that person's *silent* mention (it names them without notifying anyone); in the blog
export, which is read on the web, it links to the GitHub profile.  :func:`render_handles` is the
one place that does this, for the digest, ``status`` and the blog export.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from zulip_goals_bot.domain.markdown import ZulipUser, outside_code

# GitHub's rules for a login: letters, digits, single inner hyphens, at most 39 characters; not
# part of an e-mail address, a URL path or an ``@org/team`` mention.
HANDLE_RE = re.compile(
    r"(?<![\w@/.])@([A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38})(?![\w/@-])"
)
GITHUB = "https://github.com/"
# A fence line (``` or ~~~) opens or closes a code block; code spans are `...` on one line.


def handles_in(text: str) -> tuple[str, ...]:
    """GitHub handles written as ``@handle``, each once (first spelling kept), in order."""
    seen: set[str] = set()
    out: list[str] = []
    for m in HANDLE_RE.finditer(text):
        if m.group(1).casefold() not in seen:
            seen.add(m.group(1).casefold())
            out.append(m.group(1))
    return tuple(out)


def handles_of(texts: Iterable[str | None]) -> set[str]:
    """Every handle (lower case) in some texts, for looking their people up in one query."""
    return {h.lower() for t in texts if t for h in handles_in(t)}


def render_handles(
    text: str, people: Mapping[str, ZulipUser] | None = None, *, web: bool = False
) -> str:
    """``text`` with its ``@handle``s shown for the reader; never a notifying mention.

    On Zulip (``web=False``) a handle in ``people`` (lower-case handle -> Zulip account) becomes
    the silent mention ``@_**Name|id**``; others stay as written.  For the web every handle links
    to its GitHub profile.  Code and handles already written as a link are left alone.
    """
    known = people or {}

    def zulip(m: re.Match[str]) -> str:
        user = known.get(m.group(1).lower())
        return user.mention(silent=True) if user is not None else m.group(0)

    def github(m: re.Match[str]) -> str:
        before = m.string[m.start() - 1] if m.start() > 0 else ""
        after = m.string[m.end()] if m.end() < len(m.string) else ""
        if before == "[" and after == "]":
            return m.group(0)  # already the text of a link
        return f"[@{m.group(1)}]({GITHUB}{m.group(1)})"

    return outside_code(text, HANDLE_RE, github if web else zulip)
