"""The sandbox's slash commands, one function each, and the table that names them.

A new command is a function ``(sandbox, argument) -> Outcome`` here plus one ``Command`` row
in ``COMMANDS``: the row gives its name, its aliases and its ``/help`` lines, so the help text
always lists exactly the commands there are.  Bad input gets a note and ``Outcome.REFUSED``
and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from zulip_goals_bot.domain.markdown import plural
from zulip_goals_bot.errors import GoalsBotError
from zulip_goals_bot.sandbox.display import GoalRow, plain_text, render_goals, render_people
from zulip_goals_bot.sandbox.lines import Outcome, Place, match_person
from zulip_goals_bot.sandbox.timing import format_delta, format_time, hour_steps, parse_duration

if TYPE_CHECKING:
    from zulip_goals_bot.sandbox.session import Sandbox

# `/advance` refuses more than this: replaying months hour by hour is slow and rarely meant.
MAX_ADVANCE = timedelta(weeks=12)


def cmd_say(sb: Sandbox, arg: str) -> Outcome:
    if not arg:
        sb.console.note("Usage: /say TEXT")
        return Outcome.REFUSED
    return sb.post(arg)


def cmd_react(sb: Sandbox, arg: str) -> Outcome:
    """React to the bot's latest message in the current topic (its prompt, usually)."""
    from fakezulip import ApiError

    emoji = arg.strip().strip(":")
    if not emoji or sb.place.stream is None or sb.place.topic is None:
        sb.console.note(
            "Usage: /react EMOJI in a goal's topic (/topic GOAL first), e.g. /react red_circle"
        )
        return Outcome.REFUSED
    bot_id = sb.bot.bot_user_id
    mine = [m for m in sb.server.messages_in(sb.place.stream, sb.place.topic)
            if m["sender_id"] == bot_id]  # fmt: skip
    if not mine:
        sb.console.note(f"The bot has not posted in {sb.where()} yet (try /prompt).")
        return Outcome.REFUSED
    try:
        sb.server.add_reaction(sb.me, int(mine[-1]["id"]), emoji)
    except ApiError as exc:
        sb.console.note(f"Zulip refused the reaction: {exc}")
        return Outcome.REFUSED
    sb.console.note(f"You reacted :{emoji}: to the bot's latest message here.")
    sb.show()
    return Outcome.DONE


def cmd_as(sb: Sandbox, arg: str) -> Outcome:
    match = match_person(arg, sb.people())
    if match.person is None:
        sb.console.note(match.problem() if arg else "Usage: /as NAME (see /who)")
        return Outcome.REFUSED
    sb.me = match.person.user_id
    sb.console.note(f"You are {match.person.full_name}, in {sb.where()}.")
    return Outcome.DONE


def cmd_dm(sb: Sandbox, arg: str) -> Outcome:
    sb.place = Place()
    sb.console.note(f"Lines go to the {sb.where()}.")
    return Outcome.DONE


def cmd_topic(sb: Sandbox, arg: str) -> Outcome:
    from zulip_goals_bot.db.queries import goal_names
    from zulip_goals_bot.goals.matching import MatchKind, match_goal

    if not arg:
        sb.console.note("Usage: /topic GOAL (a name, slug or #issue) or /topic STREAM > TOPIC")
        return Outcome.REFUSED
    if ">" in arg:
        stream_name, _, topic = (part.strip() for part in arg.partition(">"))
        stream = sb.server.realm.stream_by_name(stream_name.lstrip("#"))
        if stream is None or not topic:
            names = ", ".join(f"#{s.name}" for s in sb.server.realm.streams.values())
            sb.console.note(f"Usage: /topic STREAM > TOPIC, with a stream among {names}.")
            return Outcome.REFUSED
        sb.place = Place(stream.name, topic)
    else:
        with sb.db.read() as session:
            result = match_goal(arg, goal_names(session))
        if result.kind is MatchKind.AMBIGUOUS:
            sb.console.note(plain_text(result.message()))
            return Outcome.REFUSED
        if result.kind is MatchKind.FOUND and result.goal is not None:
            sb.place = Place(sb.config.stream, result.goal.zulip_topic)
        else:
            sb.place = Place(sb.config.stream, arg)
            sb.console.note(f"No goal matches {arg!r}: this is a topic of its own.")
    sb.console.note(f"Lines go to {sb.where()}.")
    return Outcome.DONE


def cmd_who(sb: Sandbox, arg: str) -> Outcome:
    sb.console.say(render_people(sb.people(), sb.me, sb.config.stream))
    return Outcome.DONE


def cmd_goals(sb: Sandbox, arg: str) -> Outcome:
    from zulip_goals_bot.db.queries import load_goals

    now = sb.clock.now()
    program = sb.bot.ctx.program
    with sb.db.read() as session:
        goals = load_goals(session)
    rows = [
        GoalRow(
            g.slug,
            g.zulip_topic,
            ", ".join(p.display for p in g.poc) or "-",
            program.state(g, now).value,
        )
        for g in sorted(goals, key=lambda g: g.slug)
    ]
    sb.console.say(render_goals(rows))
    return Outcome.DONE


def cmd_time(sb: Sandbox, arg: str) -> Outcome:
    sb.console.note(
        f"It is {format_time(sb.clock.now())}. Next prompt time: "
        f"{format_time(sb.next_prompt())}; next digest: {format_time(sb.next_digest())}."
    )
    return Outcome.DONE


def cmd_advance(sb: Sandbox, arg: str) -> Outcome:
    now = sb.clock.now()
    word = arg.strip().lower()
    try:
        if word == "prompt":
            target = sb.next_prompt()
        elif word == "digest":
            target = sb.next_digest()
        else:
            target = now + parse_duration(arg)
    except ValueError as exc:
        sb.console.note(f"{exc}; try /advance 3d, 12h, 30m, 1w, 1d12h, prompt or digest.")
        return Outcome.REFUSED
    if target <= now:
        sb.console.note("The clock only moves forward; try /advance 1h.")
        return Outcome.REFUSED
    if target - now > MAX_ADVANCE:
        sb.console.note(f"At most {MAX_ADVANCE.days // 7} weeks at a time, please.")
        return Outcome.REFUSED
    sb.console.note(f"Clock: {format_time(target)} (+{format_delta(target - now)}).")
    sb.console.shown_time = int(target.timestamp())
    for instant in hour_steps(now, target):
        sb.clock.set(instant)
        sb.bot.tick()
    sb.show()
    return Outcome.DONE


def cmd_prompt(sb: Sandbox, arg: str) -> Outcome:
    from zulip_goals_bot.bot.prompts import send_due

    subscribers = frozenset(sb.bot.sender.stream_subscribers(sb.config.stream))
    report = send_due(sb.bot.ctx, sb.bot.sender, subscribers)
    sb.show()
    if report.planned:
        sb.console.note(report.render())
    else:
        sb.console.note(
            f"Nothing is due now. The next prompt time is {format_time(sb.next_prompt())}"
            " (/advance prompt goes there)."
        )
    return Outcome.DONE


def cmd_digest(sb: Sandbox, arg: str) -> Outcome:
    from zulip_goals_bot.digest.delivery import send_digest

    report = send_digest(sb.bot.ctx, sb.bot.sender, force=True)
    sb.show()
    sb.console.note(report.render())
    return Outcome.DONE


def cmd_site(sb: Sandbox, arg: str) -> Outcome:
    """Build the goals website from the sandbox's database and serve it on localhost."""
    from zulip_goals_bot.website.build import build_site, site_settings
    from zulip_goals_bot.website.serve import Preview

    if arg:
        folder = Path(arg).expanduser()
    elif sb.workdir is not None:
        folder = sb.workdir / "site"
    else:
        sb.console.note("Usage: /site FOLDER")
        return Outcome.REFUSED
    settings = site_settings(sb.config, sb.server.base_url)
    try:
        report = build_site(sb.db, settings, folder, sb.clock.now())
        if sb.preview is None or sb.preview.directory != folder:
            if sb.preview is not None:
                sb.preview.stop()
            sb.preview = Preview(folder, 0).start()
    except GoalsBotError as exc:
        sb.console.note(f"No site: {exc}")
        return Outcome.REFUSED
    sb.console.note(
        f"Built the goals site of {report.period}: {plural(report.goals, 'goal')}, "
        f"{plural(report.updates, 'update')}, in {folder}.\n"
        f"Open {sb.preview.url} (served until /quit)."
    )
    return Outcome.DONE


def cmd_help(sb: Sandbox, arg: str) -> Outcome:
    sb.console.say(HELP)
    return Outcome.DONE


def cmd_quit(sb: Sandbox, arg: str) -> Outcome:
    return Outcome.QUIT


@dataclass(frozen=True, slots=True)
class Command:
    """A slash command: its name, its /help entry, what it runs, and other names it answers to."""

    name: str
    usage: str  # e.g. "/as NAME"
    help: str  # a new line in it continues the entry on a line of its own
    run: Callable[[Sandbox, str], Outcome]
    aliases: tuple[str, ...] = ()


# In /help order.
COMMANDS: tuple[Command, ...] = (
    Command("as", "/as NAME", "act as someone (a prefix of the name is enough: /as ben)", cmd_as),
    Command(
        "topic",
        "/topic GOAL",
        "post in a goal's topic in the goals stream (or /topic STREAM > TOPIC)",
        cmd_topic,
    ),
    Command(
        "dm",
        "/dm",
        "post as direct messages to the bot (questions like `status trait errors`)",
        cmd_dm,
    ),
    Command(
        "say",
        "/say TEXT",
        "post TEXT (for text starting with / or #); in any text \\n starts a new line",
        cmd_say,
    ),
    Command(
        "react",
        "/react EMOJI",
        "react to the bot's latest message in this topic (:red_circle: on a prompt: blocked)",
        cmd_react,
    ),
    Command("who", "/who", "the people, their timezones and GitHub handles", cmd_who),
    Command("goals", "/goals", "the goals, their topics, owners and due state", cmd_goals),
    Command(
        "advance",
        "/advance DURATION",
        "move the clock (3d, 12h, 30m, 1w, 1d12h) and let the bot catch up;\n"
        "/advance prompt or /advance digest jumps to the next prompt or digest time",
        cmd_advance,
    ),
    Command(
        "prompt",
        "/prompt",
        "send the prompts and reminders due now (like `zulip-goals-bot prompt`)",
        cmd_prompt,
    ),
    Command("digest", "/digest", "post the digest now (like `zulip-goals-bot digest`)", cmd_digest),
    Command("time", "/time", "the clock and the next scheduled times", cmd_time),
    Command(
        "site",
        "/site [FOLDER]",
        "build the goals website (into FOLDER to keep it) and serve it locally",
        cmd_site,
    ),
    Command("help", "/help", "this text", cmd_help),
    Command("quit", "/quit", "stop (Ctrl-D and Ctrl-C too)", cmd_quit, aliases=("exit",)),
)

_BY_NAME = {name: c for c in COMMANDS for name in (c.name, *c.aliases)}
# Width of the usage column in /help.
_USAGE_WIDTH = max(len(c.usage) for c in COMMANDS) + 2


def command_named(name: str) -> Command | None:
    """The command ``/name`` runs (names are lower case), or None."""
    return _BY_NAME.get(name)


def _help_text() -> str:
    lines = ["Type a line to post it where you are (see the prompt); commands start with a slash:"]
    for c in COMMANDS:
        first, *rest = c.help.splitlines()
        lines.append(f"  {c.usage:<{_USAGE_WIDTH}}{first}")
        lines += [" " * (2 + _USAGE_WIDTH) + more for more in rest]
    lines.append("In a stream, start a line with @bot to address the bot (`@bot status`).")
    return "\n".join(lines)


HELP = _help_text()
