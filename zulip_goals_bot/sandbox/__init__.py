"""``zulip-goals-bot sandbox``: the real bot against an embedded Zulip, driven from the terminal.

Nothing is faked on the bot's side: the emulator (``fakezulip``) serves a small organisation on
localhost, the goals are imported with the same code as ``goals import``, and ``GoalsBot`` runs
its event loop and sender threads against the emulator's URL with a real ``ZulipIO``.  The only
thing the sandbox owns is time: the bot, the database and the emulator share one ``FrozenClock``
that moves when you say ``/advance``, and the sandbox then ticks the bot's scheduler itself, once
per hour of skipped time, so a week of prompts, reminders and digests plays in seconds.

The modules, pure ones first:

- ``timing``: durations, ``--start``, printed times, the steps of an ``/advance``;
- ``lines``: a typed line (``/command`` or text), where it goes, who a typed name means;
- ``display``: messages and reactions as terminal lines, and the threads that print them;
- ``world``: the demo organisation, the sample goals, the bot's configuration, what a kept
  ``--database`` remembers;
- ``commands``: one function per ``/command`` and the table naming them (add new ones there);
- ``session``: the ``Sandbox``, which runs a line, waits for the bot, and runs scripts;
- ``main``: ``sandbox_command``, which starts and stops it all.
"""

from zulip_goals_bot.sandbox.display import plain_text, render_message
from zulip_goals_bot.sandbox.lines import (
    Line,
    Member,
    Outcome,
    Place,
    UserMatch,
    match_person,
    message_text,
    script_lines,
)
from zulip_goals_bot.sandbox.main import sandbox_command
from zulip_goals_bot.sandbox.timing import (
    format_delta,
    format_time,
    hour_steps,
    parse_duration,
    parse_start,
)

__all__ = [
    "Line",
    "Member",
    "Outcome",
    "Place",
    "UserMatch",
    "format_delta",
    "format_time",
    "hour_steps",
    "match_person",
    "message_text",
    "parse_duration",
    "parse_start",
    "plain_text",
    "render_message",
    "sandbox_command",
    "script_lines",
]
