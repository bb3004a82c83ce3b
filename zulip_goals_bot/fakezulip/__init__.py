"""A faithful local emulator of a Zulip 8.0 server for tests and the sandbox.

>>> from zulip_goals_bot.fakezulip import FakeZulip, Realm
>>> with FakeZulip(Realm.demo()) as server:          # doctest: +SKIP
...     bot = server.realm.user_by_name("Goals Bot")
...     client = server.client_for(bot)              # a real zulip.Client
"""

from .engine import ApiError
from .realm import (
    BOT_TYPE_GENERIC,
    FIELD_EXTERNAL_ACCOUNT,
    FIELD_LONG_TEXT,
    FIELD_SHORT_TEXT,
    FIELD_URL,
    ROLE_ADMINISTRATOR,
    ROLE_GUEST,
    ROLE_MEMBER,
    ROLE_MODERATOR,
    ROLE_OWNER,
    Realm,
    Stream,
    User,
)
from .server import FakeZulip, Faults, FiredFault

__all__ = [
    "BOT_TYPE_GENERIC",
    "FIELD_EXTERNAL_ACCOUNT",
    "FIELD_LONG_TEXT",
    "FIELD_SHORT_TEXT",
    "FIELD_URL",
    "ROLE_ADMINISTRATOR",
    "ROLE_GUEST",
    "ROLE_MEMBER",
    "ROLE_MODERATOR",
    "ROLE_OWNER",
    "ApiError",
    "FakeZulip",
    "Faults",
    "FiredFault",
    "Realm",
    "Stream",
    "User",
]
