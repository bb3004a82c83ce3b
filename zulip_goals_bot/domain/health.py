"""A goal's health: the owner's own call (on track, at risk, blocked, done) and its history.

Owners say it in their words (``Status: at risk``, ``[blocked]``, ``TL;DR: on track, ...``) or
with a reaction on the bot's prompt; ``parse_health`` reads the words, ``REACTION_HEALTH`` the
emoji. A goal's health is its latest call, carried forward by updates that say none; a goal that
never said has none, and nothing here guesses one. Pure functions over plain values only.
"""

from __future__ import annotations

import enum
import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from zulip_goals_bot.domain.markdown import days_ago, message_link
from zulip_goals_bot.domain.schedule import Period


class Health(enum.StrEnum):
    """The owner's judgement of how a goal is going; the value is stored and used in URLs."""

    ON_TRACK = "on-track"
    AT_RISK = "at-risk"
    BLOCKED = "blocked"
    DONE = "done"

    @property
    def label(self) -> str:
        """How people write it and the bot shows it."""
        return self.value.replace("-", " ")

    @property
    def mark(self) -> str:
        return _MARKS[self]

    @property
    def needs_help(self) -> bool:
        """At risk or blocked: what the digest and the blog put first."""
        return self in NEEDS_HELP

    def __format__(self, spec: str) -> str:
        return format(self.label, spec)


_MARKS = {
    Health.ON_TRACK: ":green_circle:",
    Health.AT_RISK: ":yellow_circle:",
    Health.BLOCKED: ":red_circle:",
    Health.DONE: ":tada:",
}

NEEDS_HELP = frozenset({Health.AT_RISK, Health.BLOCKED})
HEALTH_VALUES = frozenset(h.value for h in Health)

# The three reactions on a prompt that set a goal's health, as the prompt names them (Zulip's
# own emoji names; "done" is asked in words, since it asks the owner to confirm).
REACTION_HEALTH: dict[str, Health] = {
    "green_circle": Health.ON_TRACK,
    "yellow_circle": Health.AT_RISK,
    "red_circle": Health.BLOCKED,
}


def reaction_legend() -> str:
    """The prompt's key to its health reactions: ``:green_circle: on track, ...``."""
    return ", ".join(f":{name}: {health.label}" for name, health in REACTION_HEALTH.items())


# What people write for each health, as they write it; typos are matched against these.
_WORDS: dict[str, Health] = {
    "on track": Health.ON_TRACK,
    "on-track": Health.ON_TRACK,
    "ontrack": Health.ON_TRACK,
    "green": Health.ON_TRACK,
    "at risk": Health.AT_RISK,
    "at-risk": Health.AT_RISK,
    "atrisk": Health.AT_RISK,
    "risky": Health.AT_RISK,
    "off track": Health.AT_RISK,
    "off-track": Health.AT_RISK,
    "caution": Health.AT_RISK,
    "yellow": Health.AT_RISK,
    "blocked": Health.BLOCKED,
    "stuck": Health.BLOCKED,
    "red": Health.BLOCKED,
    "done": Health.DONE,
    "finished": Health.DONE,
    "complete": Health.DONE,
    "completed": Health.DONE,
}
# A typo is taken for a health word at this similarity (0-100): "blokced" (86), "at rsik" (86),
# "on trak" (92) are; "in progress" (38 against "on track"), "unknown" and "good progress" are not.
TYPO_SCORE = 80
# Short words are taken exactly: "red" is a letter from "read", "done" from "none" and "gone".
MIN_TYPO_LENGTH = 5
_TYPO_TARGETS = tuple(w for w in _WORDS if len(w) >= MIN_TYPO_LENGTH + 1)
_NOT_HEALTH = frozenset({"good progress", "tbd", "n/a"})
# A health word behind a negation is its opposite, not a typo of it: "unblocked" (87 against
# "blocked"), "incomplete", "unfinished" (89 against "complete", "finished"), "not on track" (80,
# the cutoff). No health word starts so: only a typo in the first letters ("in track") is lost.
_NEGATIONS = ("un", "in", "no")

# `Status: at risk`, `**Health**: blocked`, `- Status - on track.` on a line of its own.
_LABELLED = re.compile(
    r"^\s*(?:[-*+]\s+)?[*_]*(?:status|health|state)[*_]*\s*[:=\-–—]\s*[*_`]*\s*"
    r"(?P<word>[a-z][a-z \-]{1,15})[*_`]*\s*(?:[.!,;:()\-–—].*)?$",
    re.I,
)
# `[blocked] waiting for review`, `**[at risk]** ...`, `(on track)` at the start of the update.
_BRACKETED = re.compile(r"^\s*[*_]*[\[(](?P<word>[a-z][a-z \-]{1,15})[\])][*_]*", re.I)
# `TL;DR: at risk - ...`, `**TL;DR:** blocked: ...`, `TLDR [on track] ...`: a word after it.
_AFTER_TLDR = re.compile(
    r"^\s*[*_]*tl;?dr[*_]*\s*[:\-–—]?\s*[*_]*\s*[\[(]?(?P<word>[a-z][a-z\-]*(?:\s+[a-z]+)?)",
    re.I,
)
_SPACES = re.compile(r"[\s\-]+")


def health_word(word: str) -> Health | None:
    """The health a word or two names, allowing case, hyphens and a typo; else ``None``."""
    text = _SPACES.sub(" ", word.strip(" *_`.!,;:").lower()).strip()
    if not text or text in _NOT_HEALTH:
        return None
    exact = _WORDS.get(text)
    if exact is not None:
        return exact
    if len(text) < MIN_TYPO_LENGTH:  # too short to tell a typo from another word
        return None
    if text.startswith(_NEGATIONS):
        return None
    # Imported here: rapidfuzz costs the bot 4 MB, and only a labelled typo needs it.
    from rapidfuzz import fuzz, process

    found = process.extractOne(text, _TYPO_TARGETS, scorer=fuzz.ratio, score_cutoff=TYPO_SCORE)
    return _WORDS[found[0]] if found is not None else None


def _prose_lines(content: str) -> Iterable[str]:
    """The update's own lines: not inside code fences, not quoting someone else."""
    fenced = False
    for line in content.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced or line.lstrip().startswith(">"):
            continue
        yield line


def parse_health(content: str) -> Health | None:
    """The health an update states, if it states one.

    Read in three places only, so that prose ("blocked on review", "done with the parser")
    never sets a health by accident: a ``Status:`` or ``Health:`` line anywhere, a bracketed word
    opening the update, or the first word(s) of the TL;DR when they are a health followed by
    punctuation. The last labelled line wins (an edit appended below the original text).
    """
    lines = [line for line in _prose_lines(content) if line.strip()]
    if not lines:
        return None
    labelled = None
    for line in lines:
        m = _LABELLED.match(line)
        if m:
            labelled = health_word(m.group("word")) or labelled
    if labelled is not None:
        return labelled
    m = _BRACKETED.match(lines[0])
    if m:
        found = health_word(m.group("word"))
        if found is not None:
            return found
    for line in lines:
        m = _AFTER_TLDR.match(line)
        if m:
            return _tldr_health(line[m.start("word") :])
    return None


def _tldr_health(rest: str) -> Health | None:
    """A health opening a TL;DR counts when punctuation, a bracket or the end follows it:
    "on track, parser merged" does; "blocked on review" does not (that is prose).  ``rest``
    starts at the word: ``_AFTER_TLDR`` has taken the emphasis and an opening bracket."""
    m = _TWO_WORDS.match(rest)
    if m is None:
        return None
    if m.group(2) and _PHRASE_END.match(rest, m.end(2)):
        found = health_word(f"{m.group(1)} {m.group(2)}")
        if found is not None:
            return found
    if _PHRASE_END.match(rest, m.end(1)):
        return health_word(m.group(1))
    return None


_TWO_WORDS = re.compile(r"([a-z][a-z\-]*)(?:\s+([a-z][a-z\-]*))?", re.I)
# What may follow a health word for it to be one: punctuation, a closing bracket, the end.
_PHRASE_END = re.compile(r"[*_]*\s*(?:[.!,;:)\]\-–—]|$)")


class HealthSource(enum.StrEnum):
    """How a call was made: in an update's words, or by a reaction on the prompt."""

    UPDATE = "update"
    REACTION = "reaction"


@dataclass(frozen=True, slots=True)
class HealthCall:
    """One statement of a goal's health by one of its owners."""

    goal_id: int
    health: Health
    said_at: datetime
    source: HealthSource = HealthSource.UPDATE
    words: str | None = None  # the update's TL;DR or opening paragraph
    message_id: int | None = None  # the Zulip message (the prompt, for a reaction)
    url: str | None = None  # the GitHub comment, for a call made there
    author: str | None = None  # display name, never a mention

    def link(self, site: str) -> str:
        """Where the call was made: the Zulip message, or the comment on the tracking issue."""
        if self.message_id is not None:
            return message_link(site, self.message_id)
        return self.url or ""

    @property
    def link_text(self) -> str:
        """What a link to the call says: the comment, the prompt reacted to, or the message."""
        if self.message_id is None:
            return "view comment"
        return "view prompt" if self.source is HealthSource.REACTION else "view message"


@dataclass(frozen=True, slots=True)
class GoalHealth:
    """A goal's current health: the latest call, since when it has held, and the calls."""

    health: Health
    since: datetime  # the first call of the current run of this health
    said_at: datetime  # the latest call (an update without a health says nothing new)
    latest: HealthCall
    first: HealthCall  # the call that started the run (what the champions are told)
    calls: tuple[HealthCall, ...]  # the goal's calls, oldest first

    @property
    def run(self) -> tuple[HealthCall, ...]:
        """The calls of the current run (since ``since``, all of this health), oldest first."""
        return tuple(c for c in self.calls if c.said_at >= self.since and c.health is self.health)

    def voiced(self, *, first: bool = False) -> HealthCall:
        """The call of the run whose words to show: the newest with words (``first``: the one
        that started the run, when it has words), else the newest; a reaction has no words."""
        if first and self.first.words:
            return self.first
        return next((c for c in reversed(self.run) if c.words), self.latest)

    def at(self, when: datetime) -> Health | None:
        """The health as it stood at ``when`` (the latest call made before it)."""
        return self.at_each((when,))[0]

    def at_each(self, instants: Sequence[datetime]) -> tuple[Health | None, ...]:
        """The health standing at each instant, ``None`` before the first call: a binary search
        per instant, since a site build asks it of every goal for every week and period."""
        times = [c.said_at for c in self.calls]
        found: list[Health | None] = []
        for when in instants:
            i = bisect_left(times, when)
            found.append(self.calls[i - 1].health if i else None)
        return tuple(found)


def goal_health(calls: Iterable[HealthCall]) -> GoalHealth | None:
    """The health a goal's calls add up to; ``None`` when it never said."""
    ordered = tuple(sorted(calls, key=lambda c: c.said_at))
    if not ordered:
        return None
    latest = ordered[-1]
    first = latest
    for call in reversed(ordered):
        if call.health is not latest.health:
            break
        first = call
    return GoalHealth(
        health=latest.health,
        since=first.said_at,
        said_at=latest.said_at,
        latest=latest,
        first=first,
        calls=ordered,
    )


def periods_held(health: GoalHealth, periods: Sequence[Period]) -> int:
    """In how many of ``periods`` (the goal's, oldest first, the last one current) the current
    health has held: the period of its first call and every one after it."""
    count = 0
    for period in reversed(periods):
        if period.end <= health.since:
            break
        count += 1
    return count


# Blocked (or at risk) for this many of the goal's periods in a row: the digest's "Needs
# attention", and at risk this long tells the champions as a blocked goal does.
ATTENTION_PERIODS = 2


class AlertReason(enum.StrEnum):
    """Why champions hear of a goal: it turned blocked, or it stayed at risk."""

    BLOCKED = "blocked"
    AT_RISK = "at-risk"

    def key(self, since: datetime) -> str:
        """Names the change once: a delivery per (goal, reason, run), whoever reads it when."""
        return f"{self.value}@{since.strftime('%Y-%m-%dT%H:%M')}"


def alert_reason(health: GoalHealth | None, periods: Sequence[Period]) -> AlertReason | None:
    """Whether the goal's current health is one champions must hear of."""
    if health is None:
        return None
    if health.health is Health.BLOCKED:
        return AlertReason.BLOCKED
    if health.health is Health.AT_RISK and periods_held(health, periods) >= ATTENTION_PERIODS:
        return AlertReason.AT_RISK
    return None


def turned(health: GoalHealth | None, since: datetime) -> bool:
    """Whether the goal turned at risk or blocked at or after ``since`` (this week's news)."""
    return health is not None and health.health.needs_help and health.since >= since


def describe(health: GoalHealth, now: datetime) -> str:
    """``:red_circle: blocked since 12 Nov 2026 (last said 3 days ago)``; a goal that never said
    is shown by each place in its own words (none of them a guess)."""
    text = f"{health.health.mark} {health.health.label} since {_day(health.since)}"
    if health.said_at > health.since:
        text += f" (last said {days_ago(health.said_at, now)})"
    elif health.said_at < now:
        text += f" ({days_ago(health.said_at, now)})"
    return text


def _day(when: datetime) -> str:
    return f"{when.day} {when.strftime('%b %Y')}"
