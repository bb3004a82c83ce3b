"""``zulip-goals-bot doctor``: is the bot set up to work on this Zulip, and if not, what to do.

The checks are pure functions from plain facts to report lines, one each with ✓ / ! / ✗ and,
for every problem, the exact fix; reading the facts and ``--fix`` are the shell around them:

- ``facts``: what is known about the install, as plain data;
- ``permissions``: Zulip's rules on who may post and who may subscribe others;
- ``checks``: the checks, in the order of the report (``run_checks``);
- ``report``: a ``Check``, the exit status, the text and JSON output;
- ``problems``: the problems ``run`` stores at start-up for the digest's "Needs attention";
- ``gather``: reading the facts from the files, the database and Zulip (never writes);
- ``commands``: ``doctor [--json] [--fix]`` and ``run``'s start-up checks.
"""

from zulip_goals_bot.doctor.commands import apply_fixes, doctor_command, startup_checks
from zulip_goals_bot.doctor.permissions import may_subscribe_others, post_refusal
from zulip_goals_bot.doctor.problems import attention_lines, load_problems, store_problems
from zulip_goals_bot.doctor.report import Check, Report, Status, exit_status

__all__ = [
    "Check",
    "Report",
    "Status",
    "apply_fixes",
    "attention_lines",
    "doctor_command",
    "exit_status",
    "load_problems",
    "may_subscribe_others",
    "post_refusal",
    "startup_checks",
    "store_problems",
]
