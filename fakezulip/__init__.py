"""A faithful local emulator of a Zulip 8.0 server for the tests, the sandbox and the benchmarks.

>>> from fakezulip import FakeZulip, Realm
>>> with FakeZulip(Realm.demo()) as server:          # doctest: +SKIP
...     bot = server.realm.user_by_name("Goals Bot")
...     client = server.client_for(bot)              # a real zulip.Client

The public surface, which is all that code outside this package uses:

- ``Realm`` builds an organisation before it is served (``Realm.demo()``, ``add_user``,
  ``add_stream``, ``subscribe``, ``add_profile_field``, ``add_user_group``, ...).  Once a
  ``FakeZulip`` serves it, ``server.realm`` is for lookups (``user_by_name``, ``user_by_email``,
  ``user_by_id``, ``stream_by_name``, ``user_group_by_name``, ``group_members``, and the
  ``users``, ``streams`` and ``profile_fields`` it holds); changes go through ``FakeZulip``.
- ``FakeZulip`` runs the server: ``start``, ``stop``, ``running``, ``restart``, ``base_url``;
  ``client_for`` and ``write_zuliprc`` give a user's credentials.
- The clock is the ``clock`` callable given to ``FakeZulip`` (seconds since the epoch): message
  timestamps and ``Date`` headers read it, so a test advances time by moving its own clock
  (``FrozenClock``, ``FileClock``), the same one the bot reads.
- Acting as people: ``send_stream_message``, ``send_direct_message``, ``edit_message``,
  ``delete_message``, ``add_reaction``, ``remove_reaction``, ``mark_read``, ``subscribe``,
  ``unsubscribe``.
- Changing the organisation while it is served: ``add_user``, ``deactivate_user``,
  ``add_stream``, ``add_profile_field``, ``set_profile_value``, ``add_user_group``,
  ``add_custom_emoji``, ``deactivate_custom_emoji``, ``set_stream_post_policy``,
  ``set_private_message_policy``, ``set_invite_to_stream_policy``.
- Inspecting: ``messages``, ``messages_in``, ``direct_messages_to``, ``message``, ``flags``,
  ``notified``, ``iter_users``, ``stream_subscribers``, ``request_log``, ``count_requests``,
  ``connections_opened``, ``http_date``, ``last_message_id``; event queues with ``queue_ids``,
  ``queues_of``, ``queue_status`` (``QueueStatus``: pending events, long-polls) and
  ``is_listening``;
  ``wait_for`` polls a condition, waking on server activity.
- Controlling delivery: ``hold`` (a block whose events reach clients as one batch),
  ``inject_event``, ``expire_queue``, ``expire_all_queues``, ``reserve_message_ids``.
- Breaking it: ``server.faults`` (``Faults``: ``fail_next``, ``drop_next``, ``delay_next``,
  ``cut_next``, ``every_nth_429``, ``clear``, and ``fired``, which counts the faults that hit a
  request)
  and the ``rate_limit_per_minute`` of the constructor.
- ``markdown`` has Zulip's Markdown rules as the emulator applies them (``find_mentions``,
  ``hash_encode``, ``topic_narrow_path``), for tests that check what a message would do.
- ``harness`` runs the bot itself against the emulator, as a subprocess: ``write_bot_conf``,
  ``BotProcess``.

Everything else (``engine``, the HTTP handler, names starting with ``_``) is internal.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fakezulip.engine import ApiError
    from fakezulip.realm import (
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
    from fakezulip.server import FakeZulip, Faults, FiredFault, QueueStatus

# Where each public name lives. Imported on first use (PEP 562): ``python -m fakezulip.launch``,
# which starts the bot under test, must not load the emulator into the bot's process.
_HOMES = {
    "ApiError": "fakezulip.engine",
    **dict.fromkeys(
        (
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
            "Realm",
            "Stream",
            "User",
        ),
        "fakezulip.realm",
    ),
    **dict.fromkeys(("FakeZulip", "Faults", "FiredFault", "QueueStatus"), "fakezulip.server"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'fakezulip' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


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
    "QueueStatus",
    "Realm",
    "Stream",
    "User",
]
