"""The realm as an import sees it: Zulip's users and profile fields, fetched once.

Goals and people imports link GitHub handles to Zulip accounts from the users' profile fields.
They run beside the bot, from a terminal, so Zulip may be out of reach or the zuliprc missing:
then the import still runs (mapping by the people file only) and says why in one line.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from zulip_goals_bot.config import Config
from zulip_goals_bot.errors import ConfigError, ZulipError

if TYPE_CHECKING:
    from zulip_goals_bot.bot.zulip_io import ZulipIO


def open_zulip(config: Config) -> tuple[ZulipIO | None, str | None]:
    """A Zulip connection from the zuliprc, or None and a one-line reason there is none."""
    from zulip_goals_bot.bot.zulip_io import ZulipIO

    if not config.zuliprc.exists() and not os.environ.get("ZULIP_API_KEY"):
        return None, f"Zulip: no zuliprc at {config.zuliprc}"
    try:
        return ZulipIO(config.zuliprc), None
    except ConfigError as exc:
        return None, f"Zulip: cannot use the zuliprc ({exc})"
    except ZulipError as exc:
        return None, f"Zulip not reachable ({exc})"


def fetch_realm(
    config: Config, io: ZulipIO | None = None
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None, str | None]:
    """Zulip users and profile fields for mapping owners, or a one-line reason there are none."""
    fallback = "owners were mapped by the people file only"
    why: str | None = None
    if io is None:
        io, why = open_zulip(config)
    if io is None:
        return None, None, f"{why}; {fallback}."
    try:
        return io.users(), io.profile_fields(), None
    except ZulipError as exc:
        return None, None, f"Zulip not reachable ({exc}); {fallback}."
