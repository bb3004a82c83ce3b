"""Owner replies become updates: routing messages, storing them, following edits and deletes.

``route`` is a pure decision over plain data; ``store_messages`` applies a whole batch of
messages in one transaction (the caller's), recording each message id in ``handled_messages``
so that a re-delivered event or a backfill after a restart is a no-op.
"""

from __future__ import annotations

import enum
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from .grammar import MAX_GOAL_WORDS, Intent, classify, is_command
from .markdown import limit_items, neutralize
from .matching import MatchKind, match_goal
from .models import (
    Goal,
    GoalOwner,
    GoalState,
    HandledMessage,
    Person,
    Update,
    UpdateKind,
    UpdateSource,
)
from .people import SenderInfo, ensure_people
from .program import Program
from .queries import GoalName, goal_names, load_goals

log = logging.getLogger(__name__)

# Zulip marks a resolved topic by prefixing it with this; the goal stays the same.
RESOLVED_PREFIX = "✔ "
# How much of a pending DM the "which goal?" question quotes back.
PENDING_QUOTE_CHARS = 120

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
    for paragraph in re.split(r"\n\s*\n", content):
        m = _TLDR.match(paragraph)
        if m and paragraph[m.end() :].strip():
            return paragraph[m.end() :].strip()
    return None


def extract_help_wanted(content: str) -> str | None:
    """Lines that start with ``Help wanted:`` (also bold, also as a list item), joined."""
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


def strip_bot_mention(text: str, bot_name: str) -> str:
    pattern = r"^\s*@_?\*\*" + re.escape(bot_name) + r"(\|\d+)?\*\*\s*"
    return re.sub(pattern, "", text, flags=re.I)


def mentions_bot(msg: IncomingMessage, bot_name: str, bot_id: int) -> bool:
    if msg.mentioned:
        return True
    pattern = r"@_?\*\*" + re.escape(bot_name) + r"(\|" + str(bot_id) + r")?\*\*"
    return re.search(pattern, msg.content, flags=re.I) is not None


class Route(enum.StrEnum):
    UPDATE = "update"  # an owner's update for goal_id
    COMMENT = "comment"  # someone else's message in a goal topic
    COMMAND = "command"  # a request for the command handler
    ASK_GOAL = "ask goal"  # a DM update from an owner of several goals: keep it, ask which
    ANSWER_PENDING = "answer pending"  # the owner says which goal a kept DM is for
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


@dataclass(frozen=True, slots=True)
class RoutingFacts:
    """What routing needs to know beyond the message, all plain data loaded for the batch."""

    bot_user_id: int
    bot_name: str
    goals_stream: str
    topic_goal_id: int | None  # the goal whose topic the message is in
    owned_goal_ids: tuple[int, ...]  # active goals the sender owns
    waiting_goal_ids: tuple[int, ...]  # of those, the ones that are due or overdue
    recent_goal_id: int | None  # the goal the sender updated within the update window
    has_pending: bool  # the sender has a DM waiting for "which goal?"
    goal_names: Sequence[GoalName] = ()  # every live goal, to read a goal named in the text

    def match_goal(self, query: str) -> int | None:
        result = match_goal(query, self.goal_names)
        if result.kind is MatchKind.FOUND and result.goal is not None:
            return result.goal.id
        return None

    def owned_names(self) -> list[GoalName]:
        owned = set(self.owned_goal_ids)
        return [g for g in self.goal_names if g.id in owned]


def route(msg: IncomingMessage, facts: RoutingFacts) -> Decision:
    if msg.sender_id == facts.bot_user_id:
        return Decision(Route.IGNORE)
    if msg.is_stream:
        addressed = mentions_bot(msg, facts.bot_name, facts.bot_user_id)
        text = strip_bot_mention(msg.content, facts.bot_name)
        if addressed and is_command(text, facts.bot_name):
            return Decision(Route.COMMAND)
        in_goals_stream = (msg.stream or "").lower() == facts.goals_stream.lower()
        if in_goals_stream and facts.topic_goal_id is not None:
            if facts.topic_goal_id in facts.owned_goal_ids:
                return Decision(Route.UPDATE, facts.topic_goal_id)
            return Decision(Route.COMMENT, facts.topic_goal_id)
        return Decision(Route.COMMAND) if addressed else Decision(Route.IGNORE)
    return _route_direct(msg, facts)


def _route_direct(msg: IncomingMessage, facts: RoutingFacts) -> Decision:
    """A DM: a command, or an update for the goal the evidence points to, or a question."""
    text = strip_bot_mention(msg.content, facts.bot_name)
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
    intent = classify(msg.content, facts.bot_name)
    owned = facts.owned_goal_ids
    if intent in (Intent.COMMAND, Intent.NEAR_COMMAND) or not owned:
        return Decision(Route.COMMAND)
    unsure = intent is Intent.UNSURE
    named = _named_goal(text, facts)
    if named is not None:
        return Decision(Route.UPDATE, named, evidence=Evidence.NAMED, unsure=unsure)
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


def _pending_choice(text: str, facts: RoutingFacts) -> int | None:
    """A short answer naming one of the sender's goals, by number in the question or by name."""
    answer = text.strip().rstrip(".!").strip()
    if not answer or len(answer) > 80 or "\n" in answer:
        return None
    if answer.isdigit():
        n = int(answer)
        return facts.owned_goal_ids[n - 1] if 1 <= n <= len(facts.owned_goal_ids) else None
    goal_id = facts.match_goal(answer)
    return goal_id if goal_id in facts.owned_goal_ids else None


def ask_goal_text(goals: Sequence[tuple[int, str]], content: str) -> str:
    """The one question sent when a DM could be about several goals."""
    quoted = neutralize(content.strip().splitlines()[0] if content.strip() else "")
    if len(quoted) > PENDING_QUOTE_CHARS:
        quoted = quoted[: PENDING_QUOTE_CHARS - 1] + "…"
    items = [f"{i}. {neutralize(name)}" for i, (_gid, name) in enumerate(goals, 1)]
    return (
        f"Thanks! You own several goals, so I kept your message (“{quoted}”) and need to know "
        "which goal it is for. Reply with the number or the name:\n"
        + limit_items(items, 8000)
        + "\n\nNext time you can write `update <goal>: your text`."
    )


# --- the imperative shell -------------------------------------------------------------------


@dataclass
class BatchEffects:
    """What to do after the batch's transaction has committed."""

    acknowledge: list[int] = field(default_factory=list)  # message ids to react to
    commands: list[IncomingMessage] = field(default_factory=list)
    direct_replies: list[tuple[int, str]] = field(default_factory=list)  # (user id, text)
    stored: int = 0
    duplicates: int = 0


def _insert_ignore(session: Session, rows: list[dict[str, Any]]) -> set[int]:
    """Insert handled-message rows; returns the ids that were new (the others were handled)."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = pg_insert(HandledMessage).on_conflict_do_nothing()
    else:
        stmt = sqlite_insert(HandledMessage).on_conflict_do_nothing()
    ids = [r["zulip_message_id"] for r in rows]
    before = set(
        session.execute(
            select(HandledMessage.zulip_message_id).where(HandledMessage.zulip_message_id.in_(ids))
        ).scalars()
    )
    fresh = [r for r in rows if r["zulip_message_id"] not in before]
    if fresh:
        session.execute(stmt, fresh)
    return {r["zulip_message_id"] for r in fresh}


def load_topic_goals(session: Session) -> dict[str, int]:
    """Goal id by topic name (case-insensitive, as Zulip treats topics)."""
    return {topic.lower(): gid for gid, topic in session.execute(select(Goal.id, Goal.zulip_topic))}


def owned_active_goals(session: Session, person_ids: Iterable[int]) -> dict[int, list[int]]:
    """Active goal ids owned by each person, in one statement."""
    out: dict[int, list[int]] = defaultdict(list)
    rows = session.execute(
        select(GoalOwner.person_id, Goal.id)
        .join(Goal, Goal.id == GoalOwner.goal_id)
        .where(
            GoalOwner.person_id.in_(list(person_ids)),
            Goal.active.is_(True),
            Goal.state.in_([GoalState.ACTIVE, GoalState.PAUSED]),
        )
        .order_by(Goal.id)
    )
    for pid, gid in rows:
        out[pid].append(gid)
    return out


def owners_of(session: Session, goal_ids: Iterable[int]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    for gid, pid in session.execute(
        select(GoalOwner.goal_id, GoalOwner.person_id).where(GoalOwner.goal_id.in_(list(goal_ids)))
    ):
        out[gid].add(pid)
    return out


@dataclass(slots=True)
class NewUpdate:
    """A row of ``updates`` about to be inserted: plain data, built and stored in bulk far more
    cheaply than ORM objects (a backlog is thousands of them)."""

    zulip_message_id: int
    goal_id: int | None
    author_id: int | None
    kind: UpdateKind
    source: UpdateSource
    content: str
    tldr: str | None
    help_wanted: str | None
    stream: str | None
    topic: str | None
    sent_at: datetime
    edited_at: datetime | None = None
    deleted: bool = False


_NEW_UPDATE_FIELDS = tuple(f.name for f in fields(NewUpdate))


def new_update(
    msg: IncomingMessage,
    goal_id: int | None,
    author: Person,
    kind: UpdateKind,
    body: str | None = None,
) -> NewUpdate:
    content = body if body is not None else msg.content
    return NewUpdate(
        zulip_message_id=msg.id,
        goal_id=goal_id,
        author_id=author.id,
        kind=kind,
        source=UpdateSource.TOPIC if msg.is_stream else UpdateSource.DM,
        content=content,
        tldr=extract_tldr(content) if kind is UpdateKind.UPDATE else None,
        help_wanted=extract_help_wanted(content) if kind is UpdateKind.UPDATE else None,
        stream=msg.stream,
        topic=msg.topic,
        sent_at=msg.sent_at,
    )


def make_update(
    msg: IncomingMessage,
    goal_id: int | None,
    author: Person,
    kind: UpdateKind,
    body: str | None = None,
) -> Update:
    """The same row as an ORM object, for the few that change again in this transaction."""
    row = new_update(msg, goal_id, author, kind, body)
    return Update(**{k: getattr(row, k) for k in _NEW_UPDATE_FIELDS})


def _insert_updates(session: Session, rows: Sequence[NewUpdate]) -> None:
    """Insert new updates in one executemany, in message order (Core: no ORM bookkeeping)."""
    if rows:
        session.execute(
            insert(Update.metadata.tables[Update.__tablename__]),
            [{k: getattr(r, k) for k in _NEW_UPDATE_FIELDS} for r in rows],
        )


def set_content(row: Update, content: str, edited_at: datetime | None) -> None:
    row.content = content
    is_update = row.kind is UpdateKind.UPDATE
    row.tldr = extract_tldr(content) if is_update else None
    row.help_wanted = extract_help_wanted(content) if is_update else None
    if edited_at is not None:
        row.edited_at = edited_at


@dataclass(frozen=True, slots=True)
class Router:
    """Everything ``store_messages`` needs besides the session: the bot's identity and program."""

    bot_user_id: int
    bot_name: str
    goals_stream: str
    program: Program  # judges which of an owner's goals wait for an update
    # Owner messages this close together form one update: a follow-up keeps the TL;DR and
    # help-wanted lines of the message before it (status and the digest show the latest row),
    # a DM naming no goal is filed with the goal updated just before, and `undo` works this long.
    update_window: timedelta = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class BatchFacts:
    """What routing a batch needs from the database, loaded in a fixed number of statements."""

    people: Mapping[int, Person]  # by Zulip user id
    topics: Mapping[str, int]  # goal id by lower-cased topic
    owned: Mapping[int, list[int]]  # person id -> active goals owned
    topic_owners: Mapping[int, set[int]]  # goal id -> owners, for goals whose topic has news
    pending: dict[int, list[Update]]  # person id -> DMs kept until they say which goal
    names: Sequence[GoalName]  # live goals, for goals named in DMs
    waiting: frozenset[int]  # goals owned by DM senders that wait for an update now
    recent: dict[int, tuple[int, datetime]]  # person id -> (goal id, sent at) of the last update


def load_batch_facts(
    session: Session, router: Router, todo: Sequence[IncomingMessage], now: datetime
) -> BatchFacts:
    """Everything routing needs for ``todo``: the same statements for one message or 5,000."""
    people = ensure_people(session, [m.sender for m in todo], now)
    topics = load_topic_goals(session)
    owned = owned_active_goals(session, [p.id for p in people.values()])
    topic_owners = owners_of(
        session,
        {
            topics[goal_topic_name(m.topic or "").lower()]
            for m in todo
            if m.is_stream and goal_topic_name(m.topic or "").lower() in topics
        },
    )
    direct = [m for m in todo if not m.is_stream]
    dm_senders = {people[m.sender_id].id for m in direct}
    pending: dict[int, list[Update]] = defaultdict(list)
    names: Sequence[GoalName] = ()
    waiting: frozenset[int] = frozenset()
    recent: dict[int, tuple[int, datetime]] = {}
    if dm_senders:
        for row in session.execute(
            select(Update)
            .where(Update.kind == UpdateKind.PENDING, Update.author_id.in_(dm_senders))
            .order_by(Update.id)
        ).scalars():
            assert row.author_id is not None
            pending[row.author_id].append(row)
        names = goal_names(session)
        several = {g for pid in dm_senders if len(owned.get(pid, [])) > 1 for g in owned[pid]}
        if several:
            goals = load_goals(session, goal_ids=sorted(several))
            waiting = frozenset(g.id for g in goals if router.program.is_waiting(g, now))
        since = min(m.sent_at for m in direct) - router.update_window
        recent = latest_updates_by(session, dm_senders, since)
    return BatchFacts(people, topics, owned, topic_owners, pending, names, waiting, recent)


def latest_updates_by(
    session: Session, person_ids: Iterable[int], since: datetime
) -> dict[int, tuple[int, datetime]]:
    """Each person's latest update sent since ``since``: (goal id, sent at), in one statement."""
    ranked = (
        select(
            Update.author_id,
            Update.goal_id,
            Update.sent_at,
            func.row_number()
            .over(partition_by=Update.author_id, order_by=(Update.sent_at.desc(), Update.id.desc()))
            .label("rank"),
        )
        .where(
            Update.author_id.in_(list(person_ids)),
            Update.kind == UpdateKind.UPDATE,
            Update.deleted.is_(False),
            Update.goal_id.is_not(None),
            Update.sent_at >= since,
        )
        .subquery()
    )
    return {
        author: (goal, sent)
        for author, goal, sent in session.execute(
            select(ranked.c.author_id, ranked.c.goal_id, ranked.c.sent_at).where(ranked.c.rank == 1)
        )
    }


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


def store_messages(
    session: Session, router: Router, messages: Sequence[IncomingMessage], now: datetime
) -> BatchEffects:
    """Store a batch of new messages in the caller's transaction; already handled ones are skipped.

    Load the facts routing needs (a fixed number of statements, ``load_batch_facts``), route
    each message with plain data (``route``), then store: a backfill of thousands of messages
    costs the same handful of round trips plus the inserts.
    """
    effects = BatchEffects()
    if not messages:
        return effects
    handled_rows = [
        {"zulip_message_id": m.id, "outcome": "pending", "handled_at": now} for m in messages
    ]
    fresh_ids = _insert_ignore(session, handled_rows)
    effects.duplicates = len(messages) - len(fresh_ids)
    todo = [m for m in messages if m.id in fresh_ids and m.sender_id != router.bot_user_id]
    outcomes: dict[int, str] = {m.id: "own" for m in messages if m.sender_id == router.bot_user_id}
    if not todo:
        _record_outcomes(session, outcomes)
        return effects
    facts = load_batch_facts(session, router, todo, now)
    names = {g.id: g.name for g in facts.names}
    pending = facts.pending
    new_updates: list[NewUpdate] = []  # owners' updates, for carry_summaries
    fresh: list[NewUpdate] = []  # every new row, updates and comments, in message order
    for m in todo:
        author = facts.people[m.sender_id]
        topic_goal = None
        if m.is_stream and (m.stream or "").lower() == router.goals_stream.lower():
            topic_goal = facts.topics.get(goal_topic_name(m.topic or "").lower())
        own = facts.owned.get(author.id, [])
        if topic_goal is not None:
            # In a goal topic, "owner" means an owner of that goal, whatever its state.
            is_owner = author.id in facts.topic_owners.get(topic_goal, set())
            own = [*own, topic_goal] if is_owner else own
        recent = facts.recent.get(author.id)
        decision = route(
            m,
            RoutingFacts(
                bot_user_id=router.bot_user_id,
                bot_name=router.bot_name,
                goals_stream=router.goals_stream,
                topic_goal_id=topic_goal,
                owned_goal_ids=tuple(dict.fromkeys(own)),
                waiting_goal_ids=tuple(sorted(g for g in own if g in facts.waiting)),
                recent_goal_id=(
                    recent[0] if recent and m.sent_at - recent[1] <= router.update_window else None
                ),
                has_pending=bool(pending.get(author.id)),
                goal_names=facts.names,
            ),
        )
        outcomes[m.id] = decision.route.value
        if decision.route is Route.UPDATE:
            assert decision.goal_id is not None
            added = new_update(m, decision.goal_id, author, UpdateKind.UPDATE, decision.body)
            new_updates.append(added)
            fresh.append(added)
            effects.acknowledge.append(m.id)
            effects.stored += 1
            facts.recent[author.id] = (decision.goal_id, m.sent_at)
            note = filed_note(decision, names.get(decision.goal_id, ""), router.update_window)
            if note is not None:
                effects.direct_replies.append((m.sender_id, note))
        elif decision.route is Route.COMMENT:
            fresh.append(new_update(m, decision.goal_id, author, UpdateKind.COMMENT))
            effects.stored += 1
        elif decision.route is Route.COMMAND:
            effects.commands.append(m)
        elif decision.route is Route.ASK_GOAL:
            kept = make_update(m, None, author, UpdateKind.PENDING)
            session.add(kept)
            effects.stored += 1
            if not pending.get(author.id):  # ask once, however many messages wait
                choices = [(g, names.get(g, f"goal {g}")) for g in own]
                effects.direct_replies.append((m.sender_id, ask_goal_text(choices, m.content)))
            pending[author.id].append(kept)
        elif decision.route is Route.ANSWER_PENDING:
            for row in pending.get(author.id, []):
                row.goal_id = decision.goal_id
                row.kind = UpdateKind.UPDATE
                set_content(row, row.content, None)
                effects.acknowledge.append(row.zulip_message_id)
            pending[author.id] = []
            effects.acknowledge.append(m.id)
        elif decision.route is Route.NOT_AN_OWNER:
            effects.direct_replies.append(
                (
                    m.sender_id,
                    "I did not store this as an update: only the goal's owners can post updates "
                    "for it. Ask an admin if you should be an owner.",
                )
            )
        elif decision.route is Route.UNKNOWN_GOAL:
            effects.direct_replies.append(
                (
                    m.sender_id,
                    f"I could not find a goal called “{neutralize(decision.body or '')}”, so I "
                    "did not store this update. Send `list` to see the goals.",
                )
            )
    carry_summaries(session, new_updates, router.update_window)
    _insert_updates(session, fresh)
    _record_outcomes(session, outcomes)
    return effects


class _Summary(NamedTuple):
    """What a follow-up may carry over from the owner's update before it."""

    sent_at: datetime
    tldr: str | None
    help_wanted: str | None


def carry_summaries(session: Session, rows: Sequence[NewUpdate], window: timedelta) -> None:
    """Give a follow-up message the TL;DR and help wanted of the same owner's message just before.

    One statement for the whole batch: the latest earlier update of each goal and author
    involved (ranked in SQL, so a backlog stored in slices never reads its own rows back).
    ``rows`` are not stored yet, so the database holds only earlier updates.
    """
    if not rows or window <= timedelta(0):
        return
    goal_ids = {r.goal_id for r in rows}
    earliest = min(r.sent_at for r in rows) - window
    ranked = (
        select(
            Update.goal_id,
            Update.author_id,
            Update.sent_at,
            Update.tldr,
            Update.help_wanted,
            func.row_number()
            .over(
                partition_by=(Update.goal_id, Update.author_id),
                order_by=(Update.sent_at.desc(), Update.id.desc()),
            )
            .label("rank"),
        )
        .where(
            Update.goal_id.in_(goal_ids),
            Update.kind == UpdateKind.UPDATE,
            Update.deleted.is_(False),
            Update.sent_at >= earliest,
        )
        .subquery()
    )
    previous: dict[tuple[int | None, int | None], _Summary | NewUpdate] = {
        (goal_id, author_id): _Summary(sent_at, tldr, help_wanted)
        for goal_id, author_id, sent_at, tldr, help_wanted in session.execute(
            select(
                ranked.c.goal_id,
                ranked.c.author_id,
                ranked.c.sent_at,
                ranked.c.tldr,
                ranked.c.help_wanted,
            ).where(ranked.c.rank == 1)
        )
    }
    for row in sorted(rows, key=lambda r: (r.sent_at, r.zulip_message_id)):
        key = (row.goal_id, row.author_id)
        before = previous.get(key)
        if before is not None and row.sent_at - before.sent_at <= window:
            row.tldr = row.tldr or before.tldr
            row.help_wanted = row.help_wanted or before.help_wanted
        previous[key] = row


def _record_outcomes(session: Session, outcomes: Mapping[int, str]) -> None:
    by_outcome: dict[str, list[int]] = defaultdict(list)
    for mid, outcome in outcomes.items():
        by_outcome[outcome].append(mid)
    for outcome, ids in by_outcome.items():
        session.execute(
            update(HandledMessage)
            .where(HandledMessage.zulip_message_id.in_(ids))
            .values(outcome=outcome)
        )


def apply_edit(
    session: Session, router: Router, event: Mapping[str, Any], stream_names: Mapping[int, str]
) -> list[int]:
    """Follow an ``update_message`` event; returns the ids of updates it changed.

    Content edits change the stored text; topic or stream moves re-assign the messages to the
    goal of the new topic, or detach them when the new topic is no goal's.
    """
    if event.get("rendering_only"):
        return []
    ids = [int(i) for i in event.get("message_ids", [event.get("message_id")]) if i is not None]
    if not ids:
        raise MalformedMessage("update_message event without message ids")
    rows = list(session.execute(select(Update).where(Update.zulip_message_id.in_(ids))).scalars())
    if not rows:
        return []
    edited_at = None
    if event.get("edit_timestamp") is not None:
        edited_at = datetime.fromtimestamp(int(event["edit_timestamp"]), tz=UTC)
    changed: list[int] = []
    main_id = event.get("message_id")
    if "content" in event and main_id is not None:
        for row in rows:
            if row.zulip_message_id == int(main_id):
                set_content(row, str(event["content"]), edited_at)
                changed.append(row.id)
    new_topic = event.get("subject", event.get("topic"))
    new_stream_id = event.get("new_stream_id")
    if new_topic is None and new_stream_id is None:
        return changed
    stream_id = new_stream_id if new_stream_id is not None else event.get("stream_id")
    stream = stream_names.get(int(stream_id)) if stream_id is not None else None
    topic = str(new_topic) if new_topic is not None else None
    topics = load_topic_goals(session)
    goal_id: int | None = None
    if stream is not None and stream.lower() == router.goals_stream.lower():
        target_topic = topic if topic is not None else (rows[0].topic or "")
        goal_id = topics.get(goal_topic_name(target_topic).lower())
    owners = owners_of(session, [goal_id]) if goal_id is not None else {}
    for row in rows:
        if row.kind is UpdateKind.PENDING:
            continue
        if stream is not None:
            row.stream = stream
        if topic is not None:
            row.topic = topic
        if goal_id is None:
            row.goal_id = None
        else:
            row.goal_id = goal_id
            is_owner = row.author_id in owners.get(goal_id, set())
            row.kind = UpdateKind.UPDATE if is_owner else UpdateKind.COMMENT
            set_content(row, row.content, None)
        changed.append(row.id)
    return changed


def apply_delete(session: Session, event: Mapping[str, Any]) -> int:
    """Mark deleted messages' updates deleted; returns how many rows changed."""
    ids = event.get("message_ids")
    if ids is None:
        if event.get("message_id") is None:
            raise MalformedMessage("delete_message event without message_id")
        ids = [event["message_id"]]
    result = session.execute(
        update(Update)
        .where(Update.zulip_message_id.in_([int(i) for i in ids]))
        .values(deleted=True)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -- catching up with edits and deletes missed while the bot was away -------------------------


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """What the database holds of a message, to compare with what Zulip holds now."""

    zulip_message_id: int
    edited_at: datetime | None
    stream: str | None
    topic: str | None
    content: str


@dataclass
class Reconciliation:
    """Events that replay what changed on Zulip unseen, and deletions held back as suspicious."""

    events: list[dict[str, Any]] = field(default_factory=list)
    edited: int = 0
    moved: int = 0
    deleted: int = 0
    withheld: list[int] = field(default_factory=list)


def reconcile(
    stored: Sequence[StoredMessage],
    seen: Mapping[int, Mapping[str, Any]],
    covered_through: int,
    *,
    max_deleted_share: float,
) -> Reconciliation:
    """Synthesize ``update_message``/``delete_message`` events for what Zulip changed unseen.

    ``seen`` holds the messages Zulip returned for every id up to ``covered_through``; a stored
    message in that range that Zulip no longer returns was deleted (or moved out of sight).
    When more than ``max_deleted_share`` of them seem gone at once, the cause is more likely the
    bot losing access to a stream than people deleting, so those deletions are held back.
    """
    out = Reconciliation()
    missing: list[int] = []
    for row in stored:
        message = seen.get(row.zulip_message_id)
        if message is None:
            if row.zulip_message_id <= covered_through:
                missing.append(row.zulip_message_id)
            continue
        event: dict[str, Any] = {
            "type": "update_message",
            "message_id": row.zulip_message_id,
            "message_ids": [row.zulip_message_id],
        }
        edited = message.get("last_edit_timestamp")
        content = str(message.get("content", ""))
        # A move also sets the edit time; only a changed text is an edit.
        if (
            edited is not None
            and (row.edited_at is None or row.edited_at.timestamp() < int(edited))
            and content != row.content
        ):
            event |= {"content": content, "edit_timestamp": int(edited)}
            out.edited += 1
        if message.get("type") == "stream" and (
            row.topic != message.get("subject") or row.stream != message.get("display_recipient")
        ):
            event |= {"subject": message.get("subject"), "stream_id": message.get("stream_id")}
            out.moved += 1
        if len(event) > 3:
            out.events.append(event)
    if missing and len(missing) > max_deleted_share * len(stored):
        out.withheld = missing
    elif missing:
        out.events.append({"type": "delete_message", "message_ids": missing})
        out.deleted = len(missing)
    return out
