"""What is typed into the sandbox: a ``/command`` or text to post, where it goes, and who a
typed name means (pure functions and values)."""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass


class Outcome(enum.Enum):
    """What running one line did, for the script's exit status."""

    DONE = "done"
    REFUSED = "refused"  # bad input: explained, nothing changed
    QUIT = "quit"


@dataclass(frozen=True, slots=True)
class Line:
    """One input line: a ``/command`` with its argument, or text to post."""

    command: str | None
    argument: str

    @classmethod
    def parse(cls, text: str) -> Line:
        stripped = text.strip()
        if stripped.startswith("/"):
            word, _, rest = stripped[1:].partition(" ")
            return cls(word.lower(), rest.strip())
        return cls(None, stripped)


def script_lines(lines: Iterable[str]) -> Iterator[str]:
    """The lines of a script that are commands: no blank lines, no ``#`` comments."""
    for raw in lines:
        line = raw.rstrip("\r\n")
        if line.strip() and not line.lstrip().startswith("#"):
            yield line


def message_text(line: str, bot_name: str) -> str:
    """What a typed line posts: ``\\n`` starts a new line, a leading ``@bot`` mentions the bot."""
    text = line.strip().replace("\\n", "\n")
    return re.sub(r"^@bot\b", lambda _m: f"@**{bot_name}**", text, flags=re.I)


@dataclass(frozen=True, slots=True)
class Place:
    """Where plain lines go: a stream topic, or a DM with the bot."""

    stream: str | None = None
    topic: str | None = None

    def describe(self, bot_name: str) -> str:
        if self.stream is None or self.topic is None:
            return f"DM with {bot_name}"
        return f"#{self.stream} > {self.topic}"


def fold(text: str) -> str:
    """Lower case without accents, for matching names people type (``chloe`` finds Chloé)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()


@dataclass(frozen=True, slots=True)
class Member:
    """A realm user as the sandbox lists and matches them."""

    user_id: int
    full_name: str
    email: str
    timezone: str
    is_admin: bool = False
    is_bot: bool = False
    github: str | None = None
    in_goals_stream: bool = True


@dataclass(frozen=True, slots=True)
class UserMatch:
    """The people a typed name could mean: one is an answer, several or none a question."""

    query: str
    found: tuple[Member, ...]

    @property
    def person(self) -> Member | None:
        return self.found[0] if len(self.found) == 1 else None

    def problem(self) -> str:
        if not self.found:
            return f"Nobody is called {self.query!r}; /who lists the people."
        names = ", ".join(p.full_name for p in self.found)
        return f"{self.query!r} could be {names}; type more of the name."


def match_person(query: str, people: Sequence[Member]) -> UserMatch:
    """Exact name, email or GitHub handle first; then a prefix of the name or of one of its words.

    Bots are never matched: the sandbox is for acting as people.
    """
    key = fold(query).lstrip("@")
    humans = [p for p in people if not p.is_bot]
    if not key:
        return UserMatch(query, ())
    exact = [
        p
        for p in humans
        if key in (fold(p.full_name), fold(p.email), fold(p.email.split("@")[0]), p.github)
    ]
    if exact:
        return UserMatch(query, tuple(exact))
    prefix = [
        p
        for p in humans
        if fold(p.full_name).startswith(key)
        or any(word.startswith(key) for word in fold(p.full_name).split())
        or (p.github or "").startswith(key)
    ]
    return UserMatch(query, tuple(prefix))
