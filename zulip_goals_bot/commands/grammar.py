"""The chat command language: which commands exist, how a message parses, and argument parsers.

Pure functions over text, shared by routing (is this DM a command or an update?) and the
command handlers.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from zulip_goals_bot.domain.health import Health, health_word
from zulip_goals_bot.domain.markdown import safe
from zulip_goals_bot.errors import CommandError
from zulip_goals_bot.goals.matching import echo

# `history` shows this many messages unless asked for another number, and never more than MAX.
HISTORY_DEFAULT = 5
HISTORY_MAX = 50
# A DM longer than this, or on several lines, is an update, never a command.
MAX_COMMAND_CHARS = 300
# A goal named in a command is at most this long (longer text in a DM is an update).
MAX_GOAL_QUERY = 120
MAX_GOAL_WORDS = 8
# `away` for longer than this is almost certainly a typo in the date.
MAX_AWAY_DAYS = 366
# The GitHub login rules: letters, digits and single hyphens, at most 39 characters.
GITHUB_HANDLE = re.compile(r"^[a-z\d](?:[a-z\d]|-(?=[a-z\d])){0,38}$", re.I)


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    syntax: str
    summary: str
    example: str
    group: str  # "anyone", "owners" or "admins"


ANYONE, OWNERS, ADMINS = "anyone", "owners", "admins"
# Zulip's wildcard mentions (a regular-expression alternation).
WILDCARDS = "all|everyone|channel|stream|topic"


SPECS: tuple[Spec, ...] = (
    Spec("status", "status <goal>", "owners, latest update, and what is due", "status polonius",
         ANYONE),
    Spec("history", "history <goal> [N]", f"the last N updates and comments (default "
         f"{HISTORY_DEFAULT}, at most {HISTORY_MAX})", "history polonius 10", ANYONE),
    Spec("list", "list [flagship | roadmap <name> | team <name> | due | overdue | paused | "
         "on-track | at-risk | blocked | done]",
         "goals at a glance", "list team compiler", ANYONE),
    Spec("mine", "mine", "the goals you own or champion, and whether you owe an update", "mine",
         ANYONE),
    Spec("overdue", "overdue", "goals that have missed more than one update", "overdue",
         ANYONE),
    Spec("subscribe", "subscribe digest [champion]", "get the weekly digest by DM (`champion`: "
         "only the goals you champion)", "subscribe digest", ANYONE),
    Spec("unsubscribe", "unsubscribe digest", "stop the digest DMs", "unsubscribe digest",
         ANYONE),
    Spec("iam", "I am @github-handle", "link the GitHub handle that goal files name you by",
         "I am @ferris", ANYONE),
    Spec("about", "about", "version, schedule, and who runs this bot", "about", ANYONE),
    Spec("help", "help", "this list", "help", ANYONE),
    Spec("skip", "skip [<goal>]", "no update needed this period (in a goal's topic, that goal)",
         "skip polonius", OWNERS),
    Spec("away", "away until <YYYY-MM-DD> | away for <N> days/weeks",
         "no prompts while you are away", "away for 2 weeks", OWNERS),
    Spec("back", "back", "you are back: prompts resume", "back", OWNERS),
    Spec("pause", "pause <goal>", "stop prompts for a goal until `resume`", "pause polonius",
         OWNERS),
    Spec("resume", "resume <goal>", "prompt a paused or completed goal again",
         "resume polonius", OWNERS),
    Spec("complete", "complete <goal>", "mark a goal done: no more prompts",
         "complete polonius", OWNERS),
    Spec("undo", "undo", "remove the update you just sent by DM (within the update window)",
         "undo", OWNERS),
    Spec("move", "move to <goal>", "file the update you last sent by DM under another goal",
         "move to polonius", OWNERS),
    Spec("goal", "goal add <slug> <title> [--period <name>]", "add a goal by hand",
         "goal add faster-builds Faster incremental builds", ADMINS),
    Spec("owners", "owners set|add|remove <goal> <@github-handles, @-mentions or emails>",
         "change who owns a goal", "owners add polonius @lqd", ADMINS),
    Spec("cadence", "cadence <goal> 1|2|4|default", "weeks between prompts for one goal",
         "cadence polonius 4", ADMINS),
    Spec("retire", "retire <goal>", "stop tracking a goal (its history stays)", "retire polonius",
         ADMINS),
    Spec("map", "map @github-handle <@-mention or email>",
         "link (or move) a GitHub handle to a Zulip user", "map @ferris ferris@example.com",
         ADMINS),
    Spec("subscribers", "subscribers", "who gets the digest by DM", "subscribers", ADMINS),
)  # fmt: skip


SPEC_BY_NAME: Mapping[str, Spec] = {s.name: s for s in SPECS}


UNKNOWN = "unknown"


# Other words people use for the same commands.
ALIASES: Mapping[str, str] = {
    "?": "help",
    "commands": "help",
    "version": "about",
    "i'm": "iam",
    "im": "iam",
    "unpause": "resume",
}


_GOAL_FILTERS = ("flagship", "roadmap", "team", "due", "overdue", "paused", "all")
# ... and `list at-risk`, `list blocked`: the goals whose owners' latest call is that health.
LIST_FILTERS = (*_GOAL_FILTERS, *(h.value for h in Health))
# `list` filters that take a name after them.
_NAMED_FILTERS = frozenset({"team", "roadmap"})


OWNERS_ACTIONS = ("set", "add", "remove")


# What may follow `subscribe`: only the digest can be subscribed to.
DIGEST_WORDS = frozenset({"", "digest", "to digest", "the digest", "to the digest"})
# ... and for only the goals one champions (`subscribe digest champion`).
CHAMPION_DIGEST_WORDS = frozenset(
    {"digest champion", "champion digest", "digest champions", "champion", "digest as champion"}
)


# Commands that take no argument: only the bare word is a command (in a DM, "back from
# holidays, here is what happened" is an update, not `back`).
_BARE = frozenset({"help", "about", "mine", "overdue", "back", "subscribers", "undo"})


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed request: the command's name, a sub-command word, and the rest as typed."""

    name: str  # a Spec name, or "unknown"
    sub: str = ""  # `list` filter, `owners` action, `goal` action
    text: str = ""  # the arguments, as typed (goal names have spaces, mentions too)
    typed: str = ""  # the command word as typed, to quote it back when unknown

    @property
    def args(self) -> tuple[str, ...]:
        return tuple(self.text.split())


def strip_mention(text: str, bot_name: str) -> str:
    """The text without leading mentions of the bot (``@**Name**``, ``@_**Name|id**``) or of
    everyone (``@**all**``): a command is what follows them."""
    pattern = r"^\s*@_?\*\*(?:" + re.escape(bot_name) + r"(?:\|\d+)?|" + WILDCARDS + r")\*\*[\s:,]*"
    previous = None
    while previous != text:
        previous, text = text, re.sub(pattern, "", text, count=1, flags=re.I)
    return text.strip()


def split_word(text: str) -> tuple[str, str]:
    parts = text.split(None, 1)
    if not parts:
        return "", ""
    return parts[0], parts[1].strip() if len(parts) > 1 else ""


def parse(text: str, bot_name: str = "Goals Bot") -> Command:
    """Read a command from a message; empty text asks for help.  Pure."""
    body = strip_mention(text, bot_name)
    if not body:
        return Command("help")
    word, rest = split_word(body)
    key = word.lower()
    key = key.rstrip(":,.!?") or key
    if key == "i":  # "I am @handle"
        second, after = split_word(rest)
        if second.lower() == "am":
            return Command("iam", text=after, typed=f"{word} {second}")
    name = ALIASES.get(key, key)
    if name not in SPEC_BY_NAME:
        return Command(UNKNOWN, text=rest, typed=word)
    if name in ("list", "owners", "goal"):
        sub, after = split_word(rest)
        if name == "list":
            sub, after = _health_filter(sub, after)
        return Command(name, sub=sub.lower(), text=after, typed=word)
    if name == "move":
        to, after = split_word(rest)
        return Command(name, text=after if to.lower() == "to" else rest, typed=word)
    return Command(name, text=rest, typed=word)


def _health_filter(sub: str, after: str) -> tuple[str, str]:
    """`list at risk`, `list At-Risk`, `list blocked`: a health as the list's filter (its
    value), however it is written; anything else as it came."""
    if sub.lower() in _GOAL_FILTERS:
        return sub, after
    second, rest = split_word(after)
    for words, left in (((sub, second), rest), ((sub,), after)):
        found = health_word(" ".join(words)) if all(words) else None
        if found is not None:
            return found.value, left
    return sub, after


def command_in(text: str, bot_name: str) -> Command | None:
    """The command a message is, parsed once (routing hands it to the handler), or ``None``
    when the message is not a command but an update or prose (used for DMs and goal topics).

    Only a one-line message whose first word is a known command, with arguments of the expected
    shape, counts: "status polonius" is a command, "Status: landed the PR" and "back from
    holidays, here is the news" are updates.  An empty message (or only the bot's mention) asks
    for help.
    """
    body = strip_mention(text, bot_name)
    if not body:
        return Command("help")
    if "\n" in body or len(body) > MAX_COMMAND_CHARS:
        return None
    word = body.split()[0]
    if word.endswith((":", ",")):
        return None
    command = parse(body, bot_name)
    return command if _well_formed(command, body) else None


def _well_formed(command: Command, body: str) -> bool:
    """Whether a parsed command's arguments have the shape its command expects."""
    rest = command.text.strip().rstrip("?!.").strip()
    match command.name:
        case "unknown":
            return False
        case name if name in _BARE:
            return not rest and not command.sub
        case "list":
            return command.sub in ("", *LIST_FILTERS) and (
                command.sub in _NAMED_FILTERS or not rest
            )
        case "subscribe":
            return rest.lower() in DIGEST_WORDS | CHAMPION_DIGEST_WORDS
        case "unsubscribe":
            return rest.lower() in DIGEST_WORDS
        case "iam":
            return len(command.args) == 1
        case "away":
            return rest.lower().startswith(("until ", "for "))
        case "goal":
            return command.sub == "add"
        case "move":  # `move to <goal>`: a short goal name after "to"
            words = body.split()
            return len(words) >= 3 and words[1].lower() == "to" and len(words) <= MAX_GOAL_WORDS + 2
        case _:  # a goal name and maybe a number: short, and not "Status: landed the PR"
            return (
                len(rest) <= MAX_GOAL_QUERY
                and len(rest.split()) <= MAX_GOAL_WORDS
                and not any(mark in rest for mark in (": ", ", ", "; ", ". "))
            )


def parse_history_args(text: str) -> tuple[str, int]:
    """``<goal> [N]``: a trailing number after a goal name is how many messages to show."""
    words = text.split()
    if len(words) >= 2 and words[-1].isdigit():
        return " ".join(words[:-1]), int(words[-1])
    return text.strip(), HISTORY_DEFAULT


_AWAY_FOR = re.compile(r"^for\s+(\d+)\s*(d|days?|w|wks?|weeks?)$", re.I)


_AWAY_UNTIL = re.compile(r"^(?:until|till|til)\s+(\S+)$", re.I)


def parse_away(text: str, today: date) -> date:
    """The last day someone is away: ``until 2026-12-15`` or ``for 3 weeks``."""
    text = " ".join(text.split()).rstrip(".!")
    usage = "Say `away until 2026-12-15` (a date) or `away for 2 weeks`."
    m = _AWAY_FOR.match(text)
    if m:
        n = int(m.group(1))
        days = n * 7 if m.group(2).lower().startswith("w") else n
        if days < 1:
            raise CommandError(f"Away for no time at all? {usage}")
        until = today + timedelta(days=days)
    else:
        m = _AWAY_UNTIL.match(text)
        if not m:
            raise CommandError(f"I didn't understand '{echo(text)}'. {usage}")
        try:
            until = date.fromisoformat(m.group(1))
        except ValueError:
            raise CommandError(
                f"'{echo(m.group(1))}' is not a date I can read; write it as YYYY-MM-DD. {usage}"
            ) from None
        if until <= today:
            raise CommandError(
                f"{until.isoformat()} is not in the future (today is {today.isoformat()}). {usage}"
            )
    if (until - today).days > MAX_AWAY_DAYS:
        raise CommandError(
            f"That is more than a year away ({until.isoformat()}); if you are stepping back from "
            "a goal, ask an admin to change its owners instead."
        )
    return until


def parse_handle(text: str) -> str:
    """A GitHub handle as typed (``@ferris``, ``ferris``, ``github.com/ferris``), lower-cased."""
    raw = text.strip().rstrip(".!")
    handle = re.sub(r"^(?:https?://)?(?:www\.)?github\.com/", "", raw, flags=re.I).lstrip("@")
    handle = handle.rstrip("/")
    if not GITHUB_HANDLE.match(handle):
        raise CommandError(
            f"'{echo(raw)}' is not a GitHub handle. Say `I am @your-github-handle`, "
            "the handle goal files list you by."
        )
    return handle.lower()


# A person in `owners` and `map`: a Zulip mention, an email, or an @github-handle.
_PERSON = re.compile(
    r"@_?\*\*(?P<name>[^*|]+?)(?:\|(?P<id>\d+))?\*\*"
    r"|(?P<email>[^\s@,<>*]+@[^\s@,<>*]+\.[^\s@,<>*]+)"
    r"|@(?P<handle>[A-Za-z0-9][A-Za-z0-9-]*)"
)


@dataclass(frozen=True, slots=True)
class PersonRef:
    """Someone named in a command, before looking them up."""

    kind: str  # "zulip", "email" or "github"
    value: str  # user id / name, email, or handle
    name: str = ""

    def shown(self) -> str:
        match self.kind:
            case "github":
                return f"@{self.value}"
            case "zulip":
                return safe(self.name or self.value)
            case _:
                return safe(self.value)


def parse_people(text: str) -> tuple[str, list[PersonRef]]:
    """Split ``<goal> <people...>``: the goal is everything before the first person."""
    first = _PERSON.search(text)
    if first is None:
        return text.strip(), []
    head, tail = text[: first.start()].strip(), text[first.start() :]
    refs: list[PersonRef] = []
    pos = 0
    for m in _PERSON.finditer(tail):
        between = tail[pos : m.start()].strip(" ,;")
        if between and between.lower() != "and":
            raise CommandError(
                f"I didn't understand '{echo(between)}'. Name people as @github-handle, with a "
                "Zulip @-mention, or by email."
            )
        pos = m.end()
        if m.group("email"):
            refs.append(PersonRef("email", m.group("email").lower()))
        elif m.group("handle"):
            handle = m.group("handle")
            if not GITHUB_HANDLE.match(handle):
                raise CommandError(f"'@{echo(handle)}' is not a GitHub handle.")
            refs.append(PersonRef("github", handle.lower()))
        elif m.group("id"):
            refs.append(PersonRef("zulip", m.group("id"), m.group("name").strip()))
        else:
            refs.append(PersonRef("zulip", "", m.group("name").strip()))
    rest = tail[pos:].strip(" ,;")
    if rest:
        raise CommandError(f"I didn't understand '{echo(rest)}' after the names.")
    return head, refs


# --------------------------------------------------------------------------------------------
# Intent: is a direct message a request for the bot, or an owner's update?


class Intent(enum.StrEnum):
    NEAR_COMMAND = "near command"  # short and starts like a command: answer it, store nothing
    UNSURE = "unsure"  # starts like a command but is long enough to be news: store, offer undo
    UPDATE = "update"


# A one-line DM of at most this many words that starts like a command is answered, not stored
# ("list foo", "stauts polonius"); people write updates longer than that.
SHORT_WORDS = 4
# Up to this many words it is stored, and the bot says how to undo it.
UNSURE_WORDS = 12
# A typed word this close to a command word (edits, counting a swap of two letters as one) is a
# near miss; words shorter than NEAR_MISS_MIN_CHARS must be exact ("last" is not "list").
NEAR_MISS_MIN_CHARS = 5
NEAR_MISS_EDITS = 1
NEAR_MISS_EDITS_LONG = 2  # for words of 8 letters or more
# Past tenses and other endings of a command word are how updates begin ("Completed the ...").
_INFLECTIONS = ("d", "ed", "s", "es", "ing")


def command_words() -> tuple[str, ...]:
    """Every word that starts a command, as typed."""
    return tuple(sorted({s.name for s in SPECS if s.name != "iam"} | set(ALIASES) - {"?"}))


def near_command(word: str) -> str | None:
    """The command word ``word`` is, or is a typo of; None when it is neither."""
    key = word.lower().rstrip(":,.!?")
    name = ALIASES.get(key, key)
    if name in SPEC_BY_NAME:
        return name
    if len(key) < NEAR_MISS_MIN_CHARS:
        return None
    # Imported on the first near miss: most messages never need rapidfuzz (3 MB of memory).
    from rapidfuzz.distance import OSA

    limit = NEAR_MISS_EDITS_LONG if len(key) >= 8 else NEAR_MISS_EDITS
    best: tuple[int, str] | None = None
    for candidate in command_words():
        if key.startswith(candidate) and key[len(candidate) :] in _INFLECTIONS:
            return None
        distance = OSA.distance(key, candidate, score_cutoff=limit)
        if distance <= limit and (best is None or distance < best[0]):
            best = (distance, ALIASES.get(candidate, candidate))
    return best[1] if best else None


def intent_of_prose(text: str, bot_name: str) -> Intent:
    """What a direct message that ``command_in`` did not read as a command asks for; pure.

    A short one-line message that starts like a command (a command word or a typo of one, the
    bot's mention, a wildcard mention) is answered and never stored: the person wanted an
    answer.  A longer line that starts like a command is stored, with a word on how to undo
    it.  Anything else is an update.
    """
    body = strip_mention(text, bot_name)
    if "\n" in body.strip():
        return Intent.UPDATE
    addressed = body != text.strip()
    words = body.split()
    # "Status: merged", "Help wanted: reviews" are an update's labels, not commands.
    labelled = any(w.endswith(":") for w in words[:2])
    looks = bool(words) and not labelled and near_command(words[0]) is not None
    if (looks or addressed) and len(words) <= SHORT_WORDS:
        return Intent.NEAR_COMMAND
    if looks and len(words) <= UNSURE_WORDS:
        return Intent.UNSURE
    return Intent.UPDATE
