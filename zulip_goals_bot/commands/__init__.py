"""Chat commands: what people can ask the bot, by mentioning it in a stream or by DM.

The command language (``grammar``) turns a message into a ``Command``; ``dispatch.handle`` runs
it in one database transaction and returns a ``Reply``. Handlers are grouped by who may use
them (``readers``, ``owners``, ``admins``); ``answers`` renders what they say; ``bot_handler``
is the zulip_bots handler the running bot calls.
"""

from __future__ import annotations

from ..grammar import SPECS, Command, is_command, parse
from .answers import Reply
from .dispatch import handle

__all__ = ["SPECS", "Command", "Reply", "handle", "is_command", "parse"]
