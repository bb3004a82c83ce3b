"""The tests' own judge of whether a message would notify someone, kept apart from the code
that escapes mentions, so that the two cannot share a mistake."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A mention as Zulip's Markdown reads it: `@**Name**`, `@**Name|id**`, silent `@_**Name**`.
_MENTION = re.compile(r"@(_?)\*\*([^*]+?)\*\*")
# A user group mention: `@*group*`.
_GROUP = re.compile(r"@\*[^*]+\*")


def contains_unsafe_mention(text: str, allowed_ids: Iterable[int] = ()) -> bool:
    """True when ``text`` would notify anyone other than ``allowed_ids`` (wildcards included)."""
    allowed = {str(i) for i in allowed_ids}
    for m in _MENTION.finditer(text):
        if m.group(1):  # silent mention: notifies nobody
            continue
        name = m.group(2)
        ident = name.rsplit("|", 1)[1] if "|" in name else None
        if ident is None or ident not in allowed:
            return True
    return bool(_GROUP.search(text))
