"""Which goal a person means: forgiving matching of what they typed to the goals we know.

People name goals in many ways: the file's slug (``cargo-script``), the short title, a few words of
the title, the tracking issue (``#263``, ``goals#263``, ``rust-lang/rust-project-goals#263`` or its
URL), and with typos.  ``match_goal`` tries the precise readings first and fuzzy matching last, and
says when it cannot pick one goal, so callers never act on a guess.  It is pure: callers load
``queries.goal_names`` and decide what to do with the answer.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from zulip_goals_bot.domain.markdown import neutralize
from zulip_goals_bot.domain.views import GoalName

# A fuzzy score at or above this, well ahead of the next goal, is taken as the goal meant.
CONFIDENT_SCORE = 85.0
# How far ahead of the runner-up a fuzzy winner must be to be taken without asking.
CLEAR_MARGIN = 8.0
# Below this a fuzzy score is noise: not offered as "did you mean".
CANDIDATE_SCORE = 65.0
# A lower score is also taken when no other goal comes anywhere near (a typo in a short name).
LONE_SCORE = 75.0
LONE_MARGIN = 25.0
# Candidates within this distance of the best score are offered together.
CANDIDATE_WINDOW = 12.0
# How many goals a "did you mean" or "closest" answer lists.
MAX_CANDIDATES = 8
MAX_CLOSEST = 3
# Query words shorter than this only match whole words (so "a" does not match everything).
MIN_PREFIX = 3
# The longest query echoed back in an answer.
ECHO_CHARS = 80
# Goals whose normalized names are remembered between calls: every command matches against all
# goals, and normalizing a thousand of them each time costs more than the rest of `status`.
KEYS_CACHE_SIZE = 4096

_ISSUE_REF = re.compile(
    r"""^(?:
        (?:https?://)?(?:www\.)?github\.com/rust-lang/rust-project-goals/issues/
      | (?:rust-lang/)?(?:rust-project-)?goals\s*\#
      | \#
    )\s*(?P<n>\d+)/?$""",
    re.I | re.X,
)
_ISSUE_SUFFIX = re.compile(r"\s*\(goals#\d+\)(?:\s*\(\d+\))?\s*$", re.I)


class MatchKind(enum.Enum):
    FOUND = "found"  # exactly one goal: use it
    AMBIGUOUS = "ambiguous"  # several plausible goals: ask which
    NONE = "none"  # nothing plausible: say so, with the closest names


@dataclass(frozen=True, slots=True)
class MatchResult:
    kind: MatchKind
    query: str
    goal: GoalName | None = None
    candidates: tuple[GoalName, ...] = ()  # AMBIGUOUS: the choices; NONE: the closest names

    @property
    def found(self) -> bool:
        return self.kind is MatchKind.FOUND

    def message(self, command: str | None = None) -> str:
        """What to tell the person when no single goal was found (safe to echo: no pings).

        ``command`` (e.g. ``"status"``) turns each candidate into the exact command to retype.
        """
        query = echo(self.query)
        if self.kind is MatchKind.FOUND and self.goal is not None:
            return f"'{query}' is {label(self.goal)}."
        if self.kind is MatchKind.AMBIGUOUS:
            shown = self.candidates[:MAX_CANDIDATES]
            lines = [f"'{query}' could be several goals. Did you mean:"]
            for i, g in enumerate(shown, 1):
                retype = f" — `{command} {g.slug}`" if command else ""
                lines.append(f"{i}. {label(g)}{retype}")
            if len(self.candidates) > len(shown):
                lines.append(f"… and {len(self.candidates) - len(shown)} more.")
            return "\n".join(lines)
        text = f"No goal matches '{query}'."
        if self.candidates:
            text += " Closest: " + ", ".join(label(g) for g in self.candidates) + "."
        return text + " Say `list` to see every goal."


def echo(text: str, limit: int = ECHO_CHARS) -> str:
    """A user's words, on one line, cut to ``limit`` and unable to ping anyone."""
    flat = " ".join(text.split()).replace("`", "'")
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    return neutralize(flat)


def label(goal: GoalName) -> str:
    """A goal as listed in a choice: name, slug and tracking issue."""
    name = neutralize(goal.short_title or goal.title).replace("**", "")
    issue = f", goals#{goal.tracking_issue}" if goal.tracking_issue is not None else ""
    return f"**{name}** (`{goal.slug}`{issue})"


def normalize(text: str) -> str:
    """Lower case, punctuation and separators as single spaces: how names are compared."""
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


@functools.lru_cache(maxsize=KEYS_CACHE_SIZE)
def _keys(goal: GoalName) -> tuple[str, ...]:
    """Every name a goal answers to, normalized."""
    topic = goal.zulip_topic
    names = [goal.slug, goal.title, goal.short_title or "", topic, _ISSUE_SUFFIX.sub("", topic)]
    return tuple(dict.fromkeys(k for k in (normalize(n) for n in names) if k))


def _words(goal: GoalName) -> set[str]:
    return {w for key in _keys(goal) for w in key.split()}


def _word_hit(query_word: str, words: set[str]) -> bool:
    """A typed word names a goal word: equal, its start ("polon"), or it plus a plural ending."""
    if query_word in words:
        return True
    if len(query_word) < MIN_PREFIX:
        return False
    return any(
        w.startswith(query_word) or (len(w) >= MIN_PREFIX and query_word in (w + "s", w + "es"))
        for w in words
    )


def _one_or_many(query: str, goals: Sequence[GoalName]) -> MatchResult:
    if len(goals) == 1:
        return MatchResult(MatchKind.FOUND, query, goals[0])
    return MatchResult(MatchKind.AMBIGUOUS, query, None, tuple(goals))


def _fuzzy_scores(query: str, names: Sequence[GoalName]) -> list[tuple[GoalName, float]]:
    """Each goal's fuzzy score, best first: the better of the whole name and word by word.

    Word by word (each typed word against the goal's closest word, averaged) keeps a typo in
    one word from being outweighed by another goal sharing the other words ("cargo scirpt").
    """
    from rapidfuzz import fuzz, process  # only when a typed name needs it (3 MB)

    keys = [_keys(g) for g in names]
    words = [sorted({w for k in ks for w in k.split()}) for ks in keys]
    vocabulary = sorted({w for ws in words for w in ws})
    per_word = [
        {vocabulary[i]: float(s) for _w, s, i in process.extract(
            qw, vocabulary, scorer=fuzz.ratio, limit=None)}
        for qw in query.split()
    ]  # fmt: skip
    scored: list[tuple[float, int]] = []
    for index, goal_keys in enumerate(keys):
        whole = max((fuzz.ratio(query, k) for k in goal_keys), default=0.0)
        by_word = sum(max(s[w] for w in words[index]) for s in per_word) / len(per_word)
        scored.append((max(whole, by_word), index))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [(names[i], score) for score, i in scored]


def match_goal(query: str, names: Sequence[GoalName]) -> MatchResult:
    """The goal ``query`` names among ``names``: FOUND, AMBIGUOUS (with choices) or NONE."""
    query = query.strip().strip("`'\"“”‘’").strip()
    wanted = normalize(query)
    if not wanted or not names:
        return MatchResult(MatchKind.NONE, query)

    # 1. A tracking issue reference; a bare number is tried as one too.
    ref = _ISSUE_REF.match(query)
    number = ref.group("n") if ref else (query if query.isdigit() else None)
    if number is not None:
        by_issue = [g for g in names if g.tracking_issue == int(number)]
        if by_issue:
            return _one_or_many(query, by_issue)
        if ref:
            return MatchResult(MatchKind.NONE, query)

    # 2. Exactly a slug, a title, a short title or a topic (ignoring case and punctuation).
    exact = [g for g in names if wanted in _keys(g)]
    if exact:
        return _one_or_many(query, exact)

    # 3. Every word typed appears in the goal's names (whole words, or word starts).
    query_words = wanted.split()
    containing = [g for g in names if all(_word_hit(w, _words(g)) for w in query_words)]
    if len(containing) == 1:
        return MatchResult(MatchKind.FOUND, query, containing[0])
    scored = _fuzzy_scores(wanted, names)
    if containing:
        order = {g.id: i for i, (g, _s) in enumerate(scored)}
        ranked = sorted(containing, key=lambda g: order.get(g.id, len(order)))
        return MatchResult(MatchKind.AMBIGUOUS, query, None, tuple(ranked))

    # 4. Typos: fuzzy scores, taken only when one goal is clearly ahead (numbers are not typos).
    if not scored or wanted.isdigit():
        return MatchResult(MatchKind.NONE, query)
    top_goal, top = scored[0]
    runner_up = scored[1][1] if len(scored) > 1 else 0.0
    if (top >= CONFIDENT_SCORE and top - runner_up >= CLEAR_MARGIN) or (
        top >= LONE_SCORE and top - runner_up >= LONE_MARGIN
    ):
        return MatchResult(MatchKind.FOUND, query, top_goal)
    close = tuple(g for g, s in scored if s >= CANDIDATE_SCORE and s >= top - CANDIDATE_WINDOW)
    if close:
        return MatchResult(MatchKind.AMBIGUOUS, query, None, close)
    closest = tuple(g for g, s in scored[:MAX_CLOSEST] if s > 0)
    return MatchResult(MatchKind.NONE, query, None, closest)


# A typed word of a goal's name may be this many edits from the goal's word (a swap of two
# letters counting as one); more for long words.  Shorter words must be exact or a word's start.
NAME_TYPO_EDITS = 1
NAME_TYPO_EDITS_LONG = 2  # for words of 8 letters or more
NAME_TYPO_MIN_CHARS = 4


def _near_word(query_word: str, words: set[str]) -> bool:
    """A typed word is one of ``words`` with a typo ("linx", "polnoius")."""
    if len(query_word) < NAME_TYPO_MIN_CHARS or query_word.isdigit():
        return False
    from rapidfuzz.distance import OSA  # only for a word that is no goal word as typed

    limit = NAME_TYPO_EDITS_LONG if len(query_word) >= 8 else NAME_TYPO_EDITS
    return any(OSA.distance(query_word, w, score_cutoff=limit) <= limit for w in words)


def names_goal(query: str, names: Sequence[GoalName]) -> GoalName | None:
    """The goal ``query`` is the name of, as a whole: the goal ``match_goal`` finds, when every
    typed word is one of the goal's words (or its start, or it with a typo), or the query is a
    tracking issue reference (``#118``).  "rust for linx" names Rust for Linux; "async closures
    stabilized" is news about a goal, not its name.  A bare number names nothing: it is how
    people pick from a numbered list."""
    cleaned = query.strip().strip("`'\"“”‘’").strip()
    if not cleaned or cleaned.isdigit():
        return None
    result = match_goal(cleaned, names)
    if result.kind is not MatchKind.FOUND or result.goal is None:
        return None
    if _ISSUE_REF.match(cleaned):
        return result.goal
    words = _words(result.goal)
    typed = normalize(cleaned).split()
    if all(_word_hit(w, words) or _near_word(w, words) for w in typed):
        return result.goal
    return None
