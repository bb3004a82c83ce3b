"""Owner replies: what a message is (an update, a comment, a command) and for which goal.

``route`` is a pure decision over plain data (``RoutingFacts``, loaded once per batch by
``store.load_batch_facts``); the texts the bot answers with are pure functions too.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from zulip_goals_bot.commands.grammar import (
    MAX_GOAL_WORDS,
    Command,
    Intent,
    command_in,
    intent_of_prose,
)
from zulip_goals_bot.domain.events import is_goals_stream
from zulip_goals_bot.domain.markdown import limit_items, neutralize, safe
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.views import GoalName, SenderInfo
from zulip_goals_bot.goals.matching import MatchKind, echo, match_goal, names_goal, normalize

# Zulip marks a resolved topic by prefixing it with this; the goal stays the same.
RESOLVED_PREFIX = "✔ "


# How much of a pending DM the "which goal?" question quotes back.
PENDING_QUOTE_CHARS = 120
# How much of an update `undo` and `move to` (and a goal named in answer) quote back, to show
# which one they meant.
QUOTE_CHARS = 80


_TLDR = re.compile(r"^\s*(?:[*_]{1,2})?TL;?DR(?:[*_]{1,2})?\s*:?\s*(?:[*_]{1,2})?\s*:?\s*", re.I)


_HELP = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:[*_]{1,2})?help\s+wanted\s*:?(?:[*_]{1,2})?\s*:?\s*(?P<text>.*)$",
    re.I,
)


_UPDATE_PREFIX = re.compile(r"^\s*update\s+(?P<goal>[^:\n]+?)\s*:\s*(?P<body>.+)\Z", re.I | re.S)


class MalformedMessage(ValueError):
    """An event without the fields a message must have; logged and skipped."""


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """The parts of a Zulip message event the bot uses."""

    id: int
    sender_id: int
    sender_email: str
    sender_name: str
    is_stream: bool
    stream: str | None
    topic: str | None
    content: str
    sent_at: datetime
    recipient_ids: tuple[int, ...] = ()
    mentioned: bool = False
    # The command routing read in it, handed to the command handler as parsed (None: routing
    # found no well-formed one, and the handler's answer is help or "did you mean").
    command: Command | None = None

    @property
    def sender(self) -> SenderInfo:
        return SenderInfo(self.sender_id, self.sender_email, self.sender_name)

    def as_api_message(self) -> dict[str, Any]:
        """The message in the shape of a Zulip message event (what zulip_bots handlers take)."""
        recipient: Any = self.stream if self.is_stream else [{"id": i} for i in self.recipient_ids]
        return {
            "id": self.id,
            "type": "stream" if self.is_stream else "private",
            "sender_id": self.sender_id,
            "sender_email": self.sender_email,
            "sender_full_name": self.sender_name,
            "display_recipient": recipient,
            "subject": self.topic or "",
            "content": self.content,
            "timestamp": int(self.sent_at.timestamp()),
        }

    @classmethod
    def from_api(cls, message: Mapping[str, Any], flags: Sequence[str] = ()) -> IncomingMessage:
        """From a message event's ``message`` or a GET /messages entry; raises MalformedMessage."""
        try:
            kind = str(message["type"])
            is_stream = kind in ("stream", "channel")
            recipients = message.get("display_recipient")
            stream = str(recipients) if is_stream else None
            ids: tuple[int, ...] = ()
            if not is_stream and isinstance(recipients, list):
                ids = tuple(int(r["id"]) for r in recipients)
            return cls(
                id=int(message["id"]),
                sender_id=int(message["sender_id"]),
                sender_email=str(message.get("sender_email", "")),
                sender_name=str(message.get("sender_full_name", "")),
                is_stream=is_stream,
                stream=stream,
                topic=str(message.get("subject", message.get("topic", ""))) if is_stream else None,
                content=str(message["content"]),
                sent_at=datetime.fromtimestamp(int(message["timestamp"]), tz=UTC),
                recipient_ids=ids,
                mentioned="mentioned" in flags,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedMessage(f"message event without {exc}") from exc


def goal_topic_name(topic: str) -> str:
    """The goal topic a message belongs to, ignoring the resolved-topic prefix."""
    while topic.startswith(RESOLVED_PREFIX):
        topic = topic[len(RESOLVED_PREFIX) :]
    return topic.strip()


def extract_tldr(content: str) -> str | None:
    """The paragraph that starts with ``TL;DR:`` (bold or not), without the prefix."""
    lowered = content.lower()
    if "tldr" not in lowered and "tl;dr" not in lowered:  # most follow-ups have none
        return None
    for paragraph in re.split(r"\n\s*\n", content):
        m = _TLDR.match(paragraph)
        if m and paragraph[m.end() :].strip():
            return paragraph[m.end() :].strip()
    return None


def extract_help_wanted(content: str) -> str | None:
    """Lines that start with ``Help wanted:`` (also bold, also as a list item), joined."""
    if "help" not in content.lower():  # most updates ask for none
        return None
    found = []
    in_fence = False
    for line in content.splitlines():
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        m = _HELP.match(line)
        if m and m.group("text").strip():
            found.append(m.group("text").strip().strip("*_ ").strip())
    return "\n".join(found) or None


@functools.cache
def _leading_mention(bot_name: str) -> re.Pattern[str]:
    return re.compile(r"^\s*@_?\*\*" + re.escape(bot_name) + r"(\|\d+)?\*\*\s*", re.I)


@functools.cache
def _mention(bot_name: str, bot_id: int) -> re.Pattern[str]:
    return re.compile(r"@_?\*\*" + re.escape(bot_name) + r"(\|" + str(bot_id) + r")?\*\*", re.I)


def strip_bot_mention(text: str, bot_name: str) -> str:
    return _leading_mention(bot_name).sub("", text)


def mentions_bot(msg: IncomingMessage, bot_name: str, bot_id: int) -> bool:
    if msg.mentioned:
        return True
    return _mention(bot_name, bot_id).search(msg.content) is not None


class Route(enum.StrEnum):
    UPDATE = "update"  # an owner's update for goal_id
    COMMENT = "comment"  # someone else's message in a goal topic
    COMMAND = "command"  # a request for the command handler
    ASK_GOAL = "ask goal"  # a DM update from an owner of several goals: keep it, ask which
    ANSWER_PENDING = "answer pending"  # the owner says which goal a kept DM is for
    MOVE_FILED = "move filed"  # a goal named right after the bot filed a DM update: move it there
    WRONG_GOAL = "wrong goal"  # "no", "wrong goal" right after a filed update or the question
    CHAT = "chat"  # "thanks", "ok", an emoji: no update, and nothing to answer
    NOT_AN_OWNER = "not an owner"  # `update <goal>: ...` from someone who does not own it
    UNKNOWN_GOAL = "unknown goal"  # `update <goal>: ...` that matches no goal
    IGNORE = "ignore"  # other streams' chatter, the bot's own messages


class Evidence(enum.StrEnum):
    """How the bot knew which goal a DM update is for, strongest first."""

    NAMED = "named"  # the message names the goal
    ONLY_GOAL = "only goal"  # the sender owns one goal
    FOLLOW_UP = "follow-up"  # the sender updated that goal moments ago
    ONLY_WAITING = "only waiting"  # of the sender's goals, only that one waits for an update

    @property
    def picked_by_bot(self) -> bool:
        """The bot chose among several goals: it says which, and how to move the update."""
        return self in (Evidence.FOLLOW_UP, Evidence.ONLY_WAITING)


@dataclass(frozen=True, slots=True)
class Decision:
    route: Route
    goal_id: int | None = None
    body: str | None = None  # the text to store when it differs from the message
    candidates: tuple[int, ...] = ()
    evidence: Evidence | None = None
    unsure: bool = False  # stored, but it began like a command: say how to undo it
    command: Command | None = None  # a COMMAND as routing parsed it


@dataclass(frozen=True, slots=True)
class RoutingFacts:
    """What routing needs to know beyond the message, all plain data loaded for the batch."""

    setting: Setting  # who the bot is and which stream is the goals stream
    topic_goal_id: int | None  # the goal whose topic the message is in
    owned_goal_ids: tuple[int, ...]  # active goals the sender owns
    waiting_goal_ids: tuple[int, ...]  # of those, the ones that are due or overdue
    recent_goal_id: int | None  # the goal the sender updated within the update window
    has_pending: bool  # the sender has a DM waiting for "which goal?"
    goal_names: Sequence[GoalName] = ()  # every live goal, to read a goal named in the text
    # The goal of the sender's last update by DM (the one `move to` and `undo` act on), when it
    # was sent within the update window: a goal named now says where that update belongs.
    filed_goal_id: int | None = None

    def match_goal(self, query: str) -> int | None:
        result = match_goal(query, self.goal_names)
        if result.kind is MatchKind.FOUND and result.goal is not None:
            return result.goal.id
        return None

    def owned_names(self) -> list[GoalName]:
        owned = set(self.owned_goal_ids)
        return [g for g in self.goal_names if g.id in owned]


def route(msg: IncomingMessage, facts: RoutingFacts) -> Decision:
    if msg.sender_id == facts.setting.bot_user_id:
        return Decision(Route.IGNORE)
    if msg.is_stream:
        addressed = mentions_bot(msg, facts.setting.bot_name, facts.setting.bot_user_id)
        text = strip_bot_mention(msg.content, facts.setting.bot_name)
        command = command_in(text, facts.setting.bot_name) if addressed else None
        if command is not None:
            return Decision(Route.COMMAND, command=command)
        in_goals_stream = is_goals_stream(msg.stream, facts.setting.goals_stream.name)
        if in_goals_stream and facts.topic_goal_id is not None:
            if facts.topic_goal_id in facts.owned_goal_ids:
                return Decision(Route.UPDATE, facts.topic_goal_id)
            return Decision(Route.COMMENT, facts.topic_goal_id)
        return Decision(Route.COMMAND) if addressed else Decision(Route.IGNORE)
    return _route_direct(msg, facts)


def _route_direct(msg: IncomingMessage, facts: RoutingFacts) -> Decision:
    """A DM: a command, an answer to what the bot just said, or an update for the goal the
    evidence points to, or a question."""
    text = strip_bot_mention(msg.content, facts.setting.bot_name)
    prefixed = _UPDATE_PREFIX.match(text)
    if prefixed:
        goal_id = facts.match_goal(prefixed.group("goal"))
        if goal_id is None:
            return Decision(Route.UNKNOWN_GOAL, body=prefixed.group("goal"))
        if goal_id not in facts.owned_goal_ids:
            return Decision(Route.NOT_AN_OWNER, goal_id)
        body = prefixed.group("body").strip()
        return Decision(Route.UPDATE, goal_id, body=body, evidence=Evidence.NAMED)
    if facts.has_pending:
        choice = _pending_choice(text, facts)
        if choice is not None:
            return Decision(Route.ANSWER_PENDING, choice)
    command = command_in(msg.content, facts.setting.bot_name)
    if command is not None:
        return Decision(Route.COMMAND, command=command)
    intent = intent_of_prose(msg.content, facts.setting.bot_name)
    owned = facts.owned_goal_ids
    reply = short_reply(text)
    filed = facts.filed_goal_id is not None
    if reply is ShortReply.WRONG and owned and (facts.has_pending or filed):
        return Decision(Route.WRONG_GOAL, facts.filed_goal_id, candidates=owned)
    if reply is ShortReply.GREETING:
        return Decision(Route.COMMAND)  # answered with what the bot can do
    if reply is not None:  # thanks, ok, an emoji; or "no" with nothing to correct
        return Decision(Route.CHAT)
    named = _bare_goal(text, facts) if owned else None
    if named is not None:  # a goal's name alone is never an update
        if filed:
            return Decision(Route.MOVE_FILED, named.id)
        status = Command("status", text=named.slug, typed="status")
        return Decision(Route.COMMAND, named.id, body=f"status {named.slug}", command=status)
    if intent is Intent.NEAR_COMMAND or not owned:
        return Decision(Route.COMMAND)
    unsure = intent is Intent.UNSURE
    named_id = _named_goal(text, facts)
    if named_id is not None:
        return Decision(Route.UPDATE, named_id, evidence=Evidence.NAMED, unsure=unsure)
    if len(owned) == 1:
        return Decision(Route.UPDATE, owned[0], evidence=Evidence.ONLY_GOAL, unsure=unsure)
    if facts.recent_goal_id in owned:
        return Decision(
            Route.UPDATE, facts.recent_goal_id, evidence=Evidence.FOLLOW_UP, unsure=unsure
        )
    if len(facts.waiting_goal_ids) == 1:
        waiting = facts.waiting_goal_ids[0]
        return Decision(Route.UPDATE, waiting, evidence=Evidence.ONLY_WAITING, unsure=unsure)
    return Decision(Route.ASK_GOAL, candidates=owned)


def _named_goal(text: str, facts: RoutingFacts) -> int | None:
    """``<goal>: news`` names one of the sender's goals in its first words."""
    head, colon, _rest = text.partition(":")
    if not colon or "\n" in head or len(head.split()) > MAX_GOAL_WORDS:
        return None
    result = match_goal(head, facts.owned_names())
    if result.kind is MatchKind.FOUND and result.goal is not None:
        return result.goal.id
    return None


# What people put around a goal's name when they answer with it: "no, rust for linux", "it's
# for polonius", "I meant the docs one".
_LEAD_IN = re.compile(
    r"^(?:(?:no|nope|nah|oops|sorry|wrong(?:\s+goal)?|not\s+that(?:\s+one)?)\b[\s,.:;!-]*)*"
    r"(?:(?:it|that)['’]?s\s+|(?:it|that)\s+(?:is|was)\s+|i\s+meant\s+|meant\s+"
    r"|should\s+(?:be|have\s+been)\s+)?"
    r"(?:(?:for|about|under|in|to)\s+)?(?:the\s+)?",
    re.I,
)
_TAIL = re.compile(r"\s+(?:one|goal)$", re.I)


def _answers(text: str) -> list[str]:
    """The goal a short answer may be naming: the whole answer, then without the words around
    a name."""
    answer = text.strip().rstrip(".!?").strip()
    if not answer or len(answer) > 80 or "\n" in answer:
        return []
    bare = _TAIL.sub("", _LEAD_IN.sub("", answer, count=1)).strip(" ,.:;!?")
    return [answer] if bare in ("", answer) else [answer, bare]


def _bare_goal(text: str, facts: RoutingFacts) -> GoalName | None:
    """A DM that is only the name of one of the sender's goals (``names_goal``), within a few
    words: what people answer with when asked "which goal?", or ask about."""
    owned = facts.owned_names()
    for answer in _answers(text):
        if len(answer.split()) <= MAX_GOAL_WORDS:
            goal = names_goal(answer, owned)
            if goal is not None:
                return goal
    return None


def _pending_choice(text: str, facts: RoutingFacts) -> int | None:
    """A short answer naming one of the sender's goals, by number in the question or by name
    (as ``status`` reads names; with words around it, only the exact name of one of them)."""
    answers = _answers(text)
    if not answers:
        return None
    answer = answers[0]
    if answer.isdigit():
        n = int(answer)
        return facts.owned_goal_ids[n - 1] if 1 <= n <= len(facts.owned_goal_ids) else None
    goal_id = facts.match_goal(answer)
    if goal_id in facts.owned_goal_ids:
        return goal_id
    named = _bare_goal(text, facts)
    return named.id if named is not None else None


class ShortReply(enum.Enum):
    """A few words that answer the bot rather than tell news."""

    ACK = "ack"  # thanks, ok, yes, an emoji
    GREETING = "greeting"  # hi, hello: answered with what the bot can do
    WRONG = "wrong"  # no, wrong goal: the update the bot just filed is not for that goal


# Emoji as typed in Zulip (``:+1:``, ``:tada:``); emoji characters are no words already.
_EMOJI_CODE = re.compile(r":[\w+-]+:")
# A reply of at most this many words, each one of these, is an acknowledgement, never news.
SHORT_REPLY_WORDS = 6
ACK_WORDS = frozenset(
    {
        "thanks", "thank", "you", "thx", "ty", "tysm", "cheers", "much", "very", "so", "lot", "a",
        "again", "ok", "okay", "okey", "k", "kk", "alright", "yes", "yep", "yeah", "yup", "ya",
        "sure", "great", "cool", "nice", "perfect", "awesome", "excellent", "lovely", "good",
        "fine", "right", "correct", "exactly", "indeed", "got", "it", "that", "s", "is", "sounds",
        "lgtm", "all", "np", "ack", "noted", "understood",
    }
)  # fmt: skip
GREETINGS = frozenset(
    {"hi", "hello", "hey", "hiya", "howdy", "hi there", "hello there", "hey there", "good morning",
     "morning", "good afternoon", "good evening", "hello bot", "hi bot"}
)  # fmt: skip
# Words a correction begins with, dropped before reading the rest ("no, wrong goal").
_NEGATIVE = frozenset({"no", "nope", "nah"})
_INTERJECTIONS = frozenset({"oops", "sorry", "oh", "ah", "hmm", "ugh", "wait", "yes", "yeah"})
# What follows them when someone says the bot filed their update under the wrong goal.
WRONG_PHRASES = frozenset(
    {
        "wrong", "wrong goal", "wrong one", "the wrong goal", "the wrong one", "incorrect",
        "not that one", "not that goal", "not this one", "not this goal", "not right",
        "not correct", "that s wrong", "that is wrong", "that s not right", "that s the wrong goal",
        "it s the wrong goal", "other goal", "the other goal", "another goal", "different goal",
        "a different goal", "another one", "the other one", "for another goal",
        "it s for another goal", "it s another goal", "for a different goal", "not for that goal",
        "not for this goal",
    }
)  # fmt: skip


def short_reply(text: str) -> ShortReply | None:
    """Whether a DM is a short answer to the bot rather than news; pure.

    Only emoji, or a few words all of ``ACK_WORDS`` ("thanks!", "ok", "yes", "no thanks") is an
    acknowledgement; "no", "nope", "wrong goal", "not that one" say the bot got the goal wrong;
    "hi" and "hello" greet it.
    """
    words = normalize(_EMOJI_CODE.sub(" ", text)).split()
    if not words:
        return ShortReply.ACK if text.strip() else None
    if len(words) > SHORT_REPLY_WORDS:
        return None
    if " ".join(words) in GREETINGS:
        return ShortReply.GREETING
    negative = False
    rest = list(words)
    while rest and rest[0] in _NEGATIVE | _INTERJECTIONS:
        negative = negative or rest[0] in _NEGATIVE
        rest.pop(0)
    if " ".join(rest) in WRONG_PHRASES or (negative and not rest):
        return ShortReply.WRONG
    if all(w in ACK_WORDS or w in _NEGATIVE or w in _INTERJECTIONS for w in words):
        return ShortReply.ACK
    return None


def _quoted_pending(content: str) -> str:
    quoted = neutralize(content.strip().splitlines()[0] if content.strip() else "")
    if len(quoted) > PENDING_QUOTE_CHARS:
        quoted = quoted[: PENDING_QUOTE_CHARS - 1] + "…"
    return quoted


def _numbered(goals: Sequence[tuple[int, str]]) -> str:
    items = [f"{i}. {neutralize(name)}" for i, (_gid, name) in enumerate(goals, 1)]
    return limit_items(items, 8000)


def ask_goal_text(goals: Sequence[tuple[int, str]], content: str) -> str:
    """The one question sent when a DM could be about several goals."""
    return (
        f"Thanks! You own several goals, so I kept your message (“{_quoted_pending(content)}”) "
        "and need to know which goal it is for. Reply with the number or the name:\n"
        + _numbered(goals)
        + "\n\nNext time you can write `update <goal>: your text`."
    )


def which_goal_text(
    goals: Sequence[tuple[int, str]], content: str, taken_off: str | None = None
) -> str:
    """The question again, after "no" or "wrong goal": ``taken_off`` names the goal the update
    was filed under until then (None when it was waiting for its goal already)."""
    quoted = _quoted_pending(content)
    if taken_off is not None:
        head = (
            f"OK, I took your update (“{quoted}”) off **{safe(taken_off)}**. Which goal is it for?"
        )
    else:
        head = f"Which goal is your message (“{quoted}”) for?"
    return head + " Reply with the number or the name:\n" + _numbered(goals)


def quote_update(content: str) -> str:
    """An update's first line, quoted short and harmless, to show which update is meant."""
    first = content.strip().splitlines()[0] if content.strip() else ""
    return f"“{echo(first, QUOTE_CHARS)}”"


def moved_text(content: str, goal_name: str) -> str:
    """The one line confirming that an update now counts for another goal."""
    return (
        f"Moved your update ({quote_update(content)}) to **{safe(goal_name)}**; status, the "
        "digest, the site and the blog export show it there."
    )


def already_filed_text(content: str, goal_name: str) -> str:
    return (
        f"Your last update ({quote_update(content)}) is already filed under **{safe(goal_name)}**."
    )


def only_goal_text(goal_name: str, window: timedelta) -> str:
    """The answer to "wrong goal" from the owner of one goal: there is no other to move to."""
    minutes = int(window.total_seconds() // 60)
    return (
        f"**{safe(goal_name)}** is your only goal, so your update stays there. Say `undo` within "
        f"{minutes} minutes to remove it."
    )


def done_ask_text(goal_name: str, slug: str) -> str:
    """The answer to an update saying a goal is done: the bot asks, the owner confirms."""
    return (
        f"You said **{neutralize(goal_name)}** is done :tada: If it is finished, send "
        f"`complete {slug}` and I will stop asking for updates. Until then it stays active."
    )


def filed_note(decision: Decision, goal_name: str, window: timedelta) -> str | None:
    """The one short reply to a stored DM update, when the bot chose the goal or was unsure."""
    lines = []
    if decision.evidence is not None and decision.evidence.picked_by_bot:
        why = (
            "you updated it moments ago"
            if decision.evidence is Evidence.FOLLOW_UP
            else "it is the one of your goals waiting for an update"
        )
        lines.append(
            f"Saved as an update of **{neutralize(goal_name)}** ({why}). "
            "Another goal? Say `move to <goal>`."
        )
    if decision.unsure:
        minutes = int(window.total_seconds() // 60)
        lines.append(
            f"Saved as an update of **{neutralize(goal_name)}**. If you meant a command, say "
            f"`undo` within {minutes} minutes and I will remove it; `help` lists the commands."
            if not lines
            else f"If you meant a command, say `undo` within {minutes} minutes to remove it."
        )
    return "\n".join(lines) or None
