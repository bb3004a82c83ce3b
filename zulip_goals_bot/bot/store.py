"""Storing messages as updates: a batch in one transaction, following edits and deletes.

``store_messages`` loads the facts routing needs in a fixed number of statements, routes each
message (``replies.route``) and stores the results in bulk, recording each message id in
``handled_messages`` so that a re-delivered event or a backfill after a restart is a no-op.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from zulip_goals_bot.bot.replies import (
    Decision,
    IncomingMessage,
    MalformedMessage,
    Route,
    RoutingFacts,
    already_filed_text,
    ask_goal_text,
    done_ask_text,
    extract_help_wanted,
    extract_tldr,
    filed_note,
    goal_topic_name,
    moved_text,
    only_goal_text,
    route,
    which_goal_text,
)
from zulip_goals_bot.db.models import (
    ACK_OWED,
    Delivery,
    Goal,
    GoalOwner,
    HandledMessage,
    HealthReaction,
    Person,
    Update,
    goal_is_running,
    id_list,
)
from zulip_goals_bot.db.queries import goal_names, load_goals
from zulip_goals_bot.domain.events import is_goals_stream
from zulip_goals_bot.domain.health import REACTION_HEALTH, Health, parse_health
from zulip_goals_bot.domain.markdown import neutralize
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.states import DeliveryKind, UpdateKind, UpdateSource
from zulip_goals_bot.domain.views import GoalName, GoalView
from zulip_goals_bot.people.accounts import person_ids


class Summary(NamedTuple):
    """What a follow-up may carry over from the owner's update before it."""

    sent_at: datetime
    tldr: str | None
    help_wanted: str | None


SummaryKey = tuple[int | None, int | None]  # (goal id, author id)


@dataclass
class BatchEffects:
    """What to do after the batch's transaction has committed."""

    acknowledge: list[int] = field(default_factory=list)  # message ids to react to
    commands: list[IncomingMessage] = field(default_factory=list)
    direct_replies: list[tuple[int, str]] = field(default_factory=list)  # (user id, text)
    stored: int = 0
    duplicates: int = 0
    # The latest summary of each (goal, author) stored, for the next slice of the same backlog.
    summaries: dict[SummaryKey, Summary] = field(default_factory=dict)
    # An update stored before was moved or taken off its goal: summaries remembered from earlier
    # slices may be wrong now, and the next slice reads them again (as after an edit).
    summaries_stale: bool = False
    # (Zulip user id, goal id) of updates saying the goal is done: the owner is asked to confirm.
    said_done: list[tuple[int, int]] = field(default_factory=list)


# A batch whose ids are this dense is looked up as a range of the primary key: a backlog's
# 5,000 bound parameters cost SQLite more than reading the range (which holds only messages the
# bot saw, so little beside the batch itself).
DENSE_IDS = 4


def handled_ids(session: Session, ids: Sequence[int]) -> set[int]:
    """Which of these message ids were handled already (a re-delivered event, a backfill)."""
    if not ids:
        return set()
    column = HandledMessage.zulip_message_id
    low, high = min(ids), max(ids)
    dense = len(ids) > 1 and high - low < DENSE_IDS * len(ids)
    where = column.between(low, high) if dense else column.in_(ids)
    found = set(session.execute(select(column).where(where)).scalars())
    return found.intersection(ids) if dense else found


# Inserted as a table, not the mapped class: the ORM's bulk path costs a third more per row.
_HANDLED = HandledMessage.metadata.tables[HandledMessage.__tablename__]


def _record_handled(session: Session, outcomes: Mapping[int, str], now: datetime) -> None:
    """One row per handled message, with what became of it, in one executemany. Writers take
    turns (the database's write lock), so the ids found new by ``handled_ids`` still are; the
    insert ignores a conflict all the same."""
    if not outcomes:
        return
    stmt: Any
    if session.get_bind().dialect.name == "postgresql":
        # Imported here: the PostgreSQL dialect costs a bot on SQLite 3 MB of memory.
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(_HANDLED).on_conflict_do_nothing()
    else:
        stmt = sqlite_insert(_HANDLED).on_conflict_do_nothing()
    session.execute(
        stmt,
        [
            {"zulip_message_id": mid, "outcome": outcome, "handled_at": now}
            for mid, outcome in outcomes.items()
        ],
    )


def load_topic_goals(session: Session) -> dict[str, int]:
    """Goal id by topic name (case-insensitive, as Zulip treats topics)."""
    return {topic.lower(): gid for gid, topic in session.execute(select(Goal.id, Goal.zulip_topic))}


# Up to this many people, their goals are asked for by id; beyond, every owner of an active goal
# is read and the people picked in Python.  Given a long id list SQLite probes the owners' primary
# key (goal, person) once per goal and person: 0.16 ms for one sender of 1,000 goals, but 100 ms
# for a backlog from 1,500 owners, where reading every owner takes 1 ms.
FEW_PEOPLE = 8


def owned_active_goals(session: Session, person_ids: Iterable[int]) -> dict[int, list[int]]:
    """Active goal ids owned by each person, in one statement."""
    wanted = set(person_ids)
    out: dict[int, list[int]] = defaultdict(list)
    if not wanted:
        return out
    query = (
        select(GoalOwner.person_id, Goal.id)
        .join(Goal, Goal.id == GoalOwner.goal_id)
        .where(goal_is_running())
        .order_by(Goal.id)
    )
    if len(wanted) <= FEW_PEOPLE:
        query = query.where(GoalOwner.person_id.in_(sorted(wanted)))
    for pid, gid in session.execute(query):
        if pid in wanted:
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
    health: Health | None
    stream: str | None
    topic: str | None
    sent_at: datetime
    edited_at: datetime | None = None
    deleted: bool = False


_NEW_UPDATE_FIELDS = tuple(f.name for f in fields(NewUpdate))


def new_update(
    msg: IncomingMessage,
    goal_id: int | None,
    author_id: int,
    kind: UpdateKind,
    body: str | None = None,
) -> NewUpdate:
    content = body if body is not None else msg.content
    return NewUpdate(
        zulip_message_id=msg.id,
        goal_id=goal_id,
        author_id=author_id,
        kind=kind,
        source=UpdateSource.TOPIC if msg.is_stream else UpdateSource.DM,
        content=content,
        tldr=extract_tldr(content) if kind is UpdateKind.UPDATE else None,
        help_wanted=extract_help_wanted(content) if kind is UpdateKind.UPDATE else None,
        health=parse_health(content) if kind is UpdateKind.UPDATE else None,
        stream=msg.stream,
        topic=msg.topic,
        sent_at=msg.sent_at,
    )


def make_update(
    msg: IncomingMessage,
    goal_id: int | None,
    author_id: int,
    kind: UpdateKind,
    body: str | None = None,
) -> Update:
    """The same row as an ORM object, for the few that change again in this transaction."""
    row = new_update(msg, goal_id, author_id, kind, body)
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
    row.health = parse_health(content) if is_update else None
    if edited_at is not None:
        row.edited_at = edited_at


def move_update(row: Update, goal_id: int) -> None:
    """File an update under another goal (`move to <goal>`, or a goal named in answer to the
    bot): it keeps the TL;DR and help wanted of its own text, not those carried over from the
    goal it leaves."""
    row.goal_id = goal_id
    set_content(row, row.content, None)


def unfile_update(row: Update) -> None:
    """Take an update off its goal (the owner said "wrong goal"): it waits, like a DM the bot
    asked about, until the owner says which goal it is for."""
    row.goal_id = None
    row.kind = UpdateKind.PENDING
    set_content(row, row.content, None)


class Latest(NamedTuple):
    """A person's latest update: where it is filed, when it was sent, and its message."""

    goal_id: int
    sent_at: datetime
    message_id: int | None


@dataclass(frozen=True, slots=True)
class BatchFacts:
    """What routing a batch needs from the database, loaded in a fixed number of statements."""

    people: Mapping[int, int]  # person id by Zulip user id
    topics: Mapping[str, int]  # goal id by lower-cased topic
    owned: Mapping[int, list[int]]  # person id -> active goals owned
    topic_owners: Mapping[int, set[int]]  # goal id -> owners, for goals whose topic has news
    pending: dict[int, list[Update]]  # person id -> DMs kept until they say which goal
    names: Sequence[GoalName]  # live goals, for goals named in DMs
    waiting: set[int]  # goals owned by DM senders that wait for an update now
    recent: dict[int, tuple[int, datetime]]  # person id -> (goal id, sent at) of the last update
    goals: Mapping[int, GoalView]  # the goals ``waiting`` was computed from
    # person id -> the last update they sent by DM: the one a goal named next is about.
    filed: dict[int, Latest] = field(default_factory=dict)

    def note_recent(self, person_id: int, goal_id: int, sent_at: datetime) -> None:
        """An update stored in this batch: the person's latest by time (as the database ranks
        them, a later arrival winning a tie), whatever order messages arrive in."""
        known = self.recent.get(person_id)
        if known is None or sent_at >= known[1]:
            self.recent[person_id] = (goal_id, sent_at)

    def note_filed(self, person_id: int, message_id: int, goal_id: int, sent_at: datetime) -> None:
        """A DM update stored in this batch, ranked as ``note_recent`` ranks updates."""
        known = self.filed.get(person_id)
        if known is None or sent_at >= known.sent_at:
            self.filed[person_id] = Latest(goal_id, sent_at, message_id)

    def updated(self, setting: Setting, goal_id: int, sent_at: datetime, now: datetime) -> None:
        """A goal got an update earlier in the batch: later messages route as if it were stored
        (a batch routes the same as its messages one at a time)."""
        goal = self.goals.get(goal_id)
        if goal is None:
            return
        last = goal.last_update.sent_at if goal.last_update else None
        latest = sent_at if last is None else max(last, sent_at)
        if setting.program.state_then(goal, now, now, latest).is_waiting:
            self.waiting.add(goal_id)
        else:
            self.waiting.discard(goal_id)


def load_batch_facts(
    session: Session, setting: Setting, todo: Sequence[IncomingMessage], now: datetime
) -> BatchFacts:
    """Everything routing needs for ``todo``: the same statements for one message or 5,000."""
    people = person_ids(session, [m.sender for m in todo], now)
    topics = load_topic_goals(session)
    owned = owned_active_goals(session, people.values())
    topic_owners = owners_of(
        session,
        {
            topics[goal_topic_name(m.topic or "").lower()]
            for m in todo
            if m.is_stream and goal_topic_name(m.topic or "").lower() in topics
        },
    )
    direct = [m for m in todo if not m.is_stream]
    dm_senders = {people[m.sender_id] for m in direct}
    pending: dict[int, list[Update]] = defaultdict(list)
    names: Sequence[GoalName] = ()
    waiting: set[int] = set()
    recent: dict[int, tuple[int, datetime]] = {}
    filed: dict[int, Latest] = {}
    loaded: dict[int, GoalView] = {}
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
            loaded = {
                g.id: g for g in load_goals(session, goal_ids=sorted(several), with_health=False)
            }
            waiting = {g.id for g in loaded.values() if setting.program.is_waiting(g, now)}
        since = min(m.sent_at for m in direct) - setting.update_window
        recent, filed = latest_updates_by(session, dm_senders, since)
    return BatchFacts(
        people, topics, owned, topic_owners, pending, names, waiting, recent, loaded, filed
    )


def latest_updates_by(
    session: Session, person_ids: Iterable[int], since: datetime
) -> tuple[dict[int, tuple[int, datetime]], dict[int, Latest]]:
    """Each person's latest update sent since ``since`` (goal id, sent at), and their latest
    update sent by DM (the one `move to` and `undo` act on), in one statement."""
    order = (Update.sent_at.desc(), Update.id.desc())
    ranked = (
        select(
            Update.author_id,
            Update.goal_id,
            Update.sent_at,
            Update.zulip_message_id,
            Update.source,
            func.row_number().over(partition_by=Update.author_id, order_by=order).label("rank"),
            func.row_number()
            .over(partition_by=(Update.author_id, Update.source), order_by=order)
            .label("by_source"),
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
    c = ranked.c
    recent: dict[int, tuple[int, datetime]] = {}
    filed: dict[int, Latest] = {}
    for author, goal, sent, message_id, source, rank in session.execute(
        select(c.author_id, c.goal_id, c.sent_at, c.zulip_message_id, c.source, c.rank).where(
            or_(c.rank == 1, and_(c.by_source == 1, c.source == UpdateSource.DM))
        )
    ):
        if rank == 1:
            recent[author] = (goal, sent)
        if source == UpdateSource.DM:
            filed[author] = Latest(goal, sent, message_id)
    return recent, filed


def _ask_done(session: Session, effects: BatchEffects) -> None:
    """Ask each owner who said a running goal is done to confirm with `complete` (one read)."""
    if not effects.said_done:
        return
    goals = {
        goal_id: (slug, short or title)
        for goal_id, slug, title, short in session.execute(
            select(Goal.id, Goal.slug, Goal.title, Goal.short_title).where(
                Goal.id.in_({g for _u, g in effects.said_done}), goal_is_running()
            )
        )
    }
    for user_id, goal_id in dict.fromkeys(effects.said_done):
        if goal_id in goals:
            slug, name = goals[goal_id]
            effects.direct_replies.append((user_id, done_ask_text(name, slug)))


def store_messages(
    session: Session,
    setting: Setting,
    messages: Sequence[IncomingMessage],
    now: datetime,
    summaries: Mapping[SummaryKey, Summary] | None = None,
) -> BatchEffects:
    """Store a batch of new messages in the caller's transaction; already handled ones are skipped.

    Load the facts routing needs (a fixed number of statements, ``load_batch_facts``), route
    each message with plain data (``route``), then store: a backfill of thousands of messages
    costs the same handful of round trips plus the inserts.  ``summaries`` are those the earlier
    slices of the same backlog stored (``BatchEffects.summaries``), see ``carry_summaries``.

    A message that changes updates stored before it (the answer to "which goal?", a goal named
    or "wrong goal" right after the bot filed a DM) ends a part of the batch: what came before
    it is stored, the updates changed, and the rest routed on facts and summaries read again,
    as if it arrived on its own.
    """
    effects = BatchEffects()
    if not messages:
        return effects
    seen = handled_ids(session, [m.id for m in messages])
    unique = list({m.id: m for m in messages if m.id not in seen}.values())
    effects.duplicates = len(messages) - len(unique)
    todo = [m for m in unique if m.sender_id != setting.bot_user_id]
    outcomes: dict[int, str] = {m.id: "own" for m in unique if m.sender_id == setting.bot_user_id}
    if not todo:
        _record_handled(session, outcomes, now)
        return effects
    start = 0
    while start < len(todo):
        known = {} if effects.summaries_stale else summaries
        start += _store_part(session, setting, todo[start:], now, known, effects, outcomes)
    _ask_done(session, effects)
    # The messages acknowledged now owe a reaction until the sender thread made it.
    answered = [mid for mid in effects.acknowledge if mid not in outcomes]
    outcomes.update(
        dict.fromkeys((mid for mid in effects.acknowledge if mid in outcomes), ACK_OWED)
    )
    _record_handled(session, outcomes, now)
    if answered:  # kept DMs of earlier batches, filed now that their goal is known
        session.execute(
            update(HandledMessage)
            .where(HandledMessage.zulip_message_id.in_(answered))
            .values(outcome=ACK_OWED)
            .execution_options(synchronize_session=False)
        )
    return effects


def _store_part(
    session: Session,
    setting: Setting,
    todo: Sequence[IncomingMessage],
    now: datetime,
    summaries: Mapping[SummaryKey, Summary] | None,
    effects: BatchEffects,
    outcomes: dict[int, str],
) -> int:
    """Route and store ``todo`` up to and including the first message that changes updates
    stored before it (files kept DMs, moves or takes back a filed one); returns how many
    messages it handled."""
    facts = load_batch_facts(session, setting, todo, now)
    names = {g.id: g.name for g in facts.names}
    pending = facts.pending
    new_updates: list[NewUpdate] = []  # owners' updates, for carry_summaries
    fresh: list[NewUpdate] = []  # every new row, updates and comments, in message order

    def flush() -> None:
        effects.summaries = carry_summaries(session, new_updates, setting.update_window, summaries)
        _insert_updates(session, fresh)

    for index, m in enumerate(todo):
        author = facts.people[m.sender_id]  # the sender's person id
        topic_goal = None
        if m.is_stream and is_goals_stream(m.stream, setting.goals_stream.name):
            topic_goal = facts.topics.get(goal_topic_name(m.topic or "").lower())
        own = facts.owned.get(author, [])
        if topic_goal is not None:
            # In a goal topic, "owner" means an owner of that goal, whatever its state.
            is_owner = author in facts.topic_owners.get(topic_goal, set())
            own = [*own, topic_goal] if is_owner else own
        recent = facts.recent.get(author)
        filed = facts.filed.get(author)
        window = setting.update_window
        decision = route(
            m,
            RoutingFacts(
                setting=setting,
                topic_goal_id=topic_goal,
                owned_goal_ids=tuple(dict.fromkeys(own)),
                waiting_goal_ids=tuple(sorted(g for g in own if g in facts.waiting)),
                recent_goal_id=(recent[0] if recent and m.sent_at - recent[1] <= window else None),
                has_pending=bool(pending.get(author)),
                goal_names=facts.names,
                filed_goal_id=(
                    filed.goal_id if filed and m.sent_at - filed.sent_at <= window else None
                ),
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
            facts.note_recent(author, decision.goal_id, m.sent_at)
            if not m.is_stream:
                facts.note_filed(author, m.id, decision.goal_id, m.sent_at)
            facts.updated(setting, decision.goal_id, m.sent_at, now)
            note = filed_note(decision, names.get(decision.goal_id, ""), window)
            if note is not None:
                effects.direct_replies.append((m.sender_id, note))
            if added.health is Health.DONE:  # done is asked, never taken: `complete` confirms
                effects.said_done.append((m.sender_id, decision.goal_id))
        elif decision.route is Route.COMMENT:
            fresh.append(new_update(m, decision.goal_id, author, UpdateKind.COMMENT))
            effects.stored += 1
        elif decision.route is Route.COMMAND:
            # A goal's name alone is asked about as `status <goal>`: the body says so.
            asked = replace(m, content=decision.body or m.content, command=decision.command)
            effects.commands.append(asked)
        elif decision.route is Route.ASK_GOAL:
            kept = make_update(m, None, author, UpdateKind.PENDING)
            session.add(kept)
            effects.stored += 1
            if not pending.get(author):  # ask once, however many messages wait
                choices = [(g, names.get(g, f"goal {g}")) for g in own]
                effects.direct_replies.append((m.sender_id, ask_goal_text(choices, m.content)))
            pending[author].append(kept)
        elif decision.route is Route.ANSWER_PENDING:
            # The kept DMs become updates now, not when they were sent: what came before in
            # this part is stored (and carries no summary from them), the rest reads them back.
            flush()
            for row in pending.get(author, []):
                row.goal_id = decision.goal_id
                row.kind = UpdateKind.UPDATE
                set_content(row, row.content, None)
                if row.zulip_message_id is not None:  # always: a pending row is a DM
                    effects.acknowledge.append(row.zulip_message_id)
            effects.acknowledge.append(m.id)
            effects.summaries_stale = True
            return index + 1
        elif decision.route is Route.WRONG_GOAL and pending.get(author):
            # The bot asked already and still waits: the same question again.
            choices = [(g, names.get(g, f"goal {g}")) for g in decision.candidates]
            question = which_goal_text(choices, pending[author][0].content)
            effects.direct_replies.append((m.sender_id, question))
        elif decision.route is Route.WRONG_GOAL and len(decision.candidates) <= 1:
            only = names.get(decision.candidates[0], "") if decision.candidates else ""
            effects.direct_replies.append((m.sender_id, only_goal_text(only, window)))
        elif decision.route in (Route.MOVE_FILED, Route.WRONG_GOAL) and filed is not None:
            flush()  # the update may be one of this part's, not stored yet
            stored = session.execute(
                select(Update).where(Update.zulip_message_id == filed.message_id)
            ).scalar_one_or_none()
            if stored is not None:
                answer = _refile(stored, decision, names)
                effects.direct_replies.append((m.sender_id, answer))
            effects.summaries_stale = True
            return index + 1
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
    flush()
    return len(todo)


def _refile(row: Update, decision: Decision, names: Mapping[int, str]) -> str:
    """Apply what the owner said of the update the bot just filed; the one line to answer."""
    if decision.route is Route.WRONG_GOAL:
        was = names.get(row.goal_id) if row.goal_id is not None else None
        unfile_update(row)
        choices = [(g, names.get(g, f"goal {g}")) for g in decision.candidates]
        return which_goal_text(choices, row.content, was)
    assert decision.goal_id is not None
    name = names.get(decision.goal_id, "")
    if row.goal_id == decision.goal_id:
        return already_filed_text(row.content, name)
    move_update(row, decision.goal_id)
    return moved_text(row.content, name)


def carry_summaries(
    session: Session,
    rows: Sequence[NewUpdate],
    window: timedelta,
    known: Mapping[SummaryKey, Summary] | None = None,
) -> dict[SummaryKey, Summary]:
    """Give a follow-up message the TL;DR and help wanted of the same owner's update just before.

    "Just before" is the latest update of that goal and author sent at or before the message,
    within ``window``, among those stored before it arrived: exactly what storing the messages
    one at a time gives, whatever their order of arrival.  ``rows`` are in arrival order and not
    stored yet.  One statement for the whole batch; ``known`` holds the latest summaries the
    earlier slices of the same backlog stored, and a goal and author whose remembered summary is
    not later than any of its rows here is not read again (20,000 replies to 1,000 goals: only
    the first slice reads).  Returns the latest summary of each goal and author of ``rows``.
    """
    known = known or {}
    if not rows or window <= timedelta(0):
        return {}
    first: dict[SummaryKey, datetime] = {}
    for r in rows:
        key = (r.goal_id, r.author_id)
        first[key] = min(first.get(key, r.sent_at), r.sent_at)
    usable = {k: s for k, s in known.items() if k in first and s.sent_at <= first[k]}
    # Per goal and author: (sent at, arrival order, TL;DR, help wanted) of the updates a row may
    # follow; stored rows come before this batch's, in id order.
    candidates: dict[SummaryKey, list[tuple[datetime, tuple[int, int], str | None, str | None]]]
    candidates = defaultdict(list)
    for key, summary in usable.items():
        candidates[key].append((summary.sent_at, (0, 0), summary.tldr, summary.help_wanted))
    unread = [k for k in first if k not in usable]
    if unread:
        earliest = min(r.sent_at for r in rows) - window
        for goal_id, author_id, sent_at, update_id, tldr, help_wanted in session.execute(
            select(
                Update.goal_id,
                Update.author_id,
                Update.sent_at,
                Update.id,
                Update.tldr,
                Update.help_wanted,
            ).where(
                Update.goal_id.in_({k[0] for k in unread}),
                Update.author_id.in_({k[1] for k in unread}),
                Update.kind == UpdateKind.UPDATE,
                Update.deleted.is_(False),
                Update.sent_at >= earliest,
            )
        ):
            key = (goal_id, author_id)
            if key in first and key not in usable:
                candidates[key].append((sent_at, (0, update_id), tldr, help_wanted))
    for order, row in enumerate(rows):
        key = (row.goal_id, row.author_id)
        before = max((c for c in candidates[key] if c[0] <= row.sent_at), default=None)
        if before is not None and row.sent_at - before[0] <= window:
            row.tldr = row.tldr or before[2]
            row.help_wanted = row.help_wanted or before[3]
        candidates[key].append((row.sent_at, (1, order), row.tldr, row.help_wanted))
    latest = {key: max(candidates[key]) for key in first}
    return {key: Summary(c[0], c[2], c[3]) for key, c in latest.items()}


def apply_edit(
    session: Session, setting: Setting, event: Mapping[str, Any], stream_names: Mapping[int, str]
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
    if is_goals_stream(stream, setting.goals_stream.name):
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


# The prompts a health reaction may be on: a goal's topic prompt and its reminder.
_PROMPT_KINDS = (DeliveryKind.PROMPT, DeliveryKind.REMINDER)


def recent_prompts(session: Session, since: datetime) -> dict[int, int]:
    """The topic prompts and reminders claimed since ``since``: goal id by Zulip message id
    (what start-up compares with Zulip for health reactions it missed)."""
    found: dict[int, int] = {}
    for ids, goal_id in session.execute(
        select(Delivery.zulip_message_ids, Delivery.goal_id).where(
            Delivery.kind.in_(_PROMPT_KINDS),
            Delivery.goal_id.is_not(None),
            Delivery.zulip_message_ids.is_not(None),
            Delivery.claimed_at >= since,
        )
    ):
        found.update((i, int(goal_id or 0)) for i in id_list(ids))
    return found


def health_reactions_on(
    session: Session, message_ids: Collection[int]
) -> set[tuple[int, int, str]]:
    """The health reactions stored on these messages: (message id, user id, emoji name)."""
    if not message_ids:
        return set()
    return {
        (int(mid), int(uid), name)
        for mid, uid, name in session.execute(
            select(
                HealthReaction.zulip_message_id,
                HealthReaction.zulip_user_id,
                HealthReaction.emoji_name,
            ).where(HealthReaction.zulip_message_id.in_(sorted(message_ids)))
        )
    }


def prompt_goal(session: Session, message_id: int) -> int | None:
    """The goal whose topic prompt (or reminder) is Zulip message ``message_id``, if any."""
    ids = Delivery.zulip_message_ids
    text = str(message_id)
    return session.execute(
        select(Delivery.goal_id)
        .where(
            Delivery.kind.in_(_PROMPT_KINDS),
            Delivery.goal_id.is_not(None),
            or_(
                ids == text,
                ids.like(f"{text},%"),
                ids.like(f"%,{text}"),
                ids.like(f"%,{text},%"),
            ),
        )
        .limit(1)
    ).scalar_one_or_none()


def apply_reaction(session: Session, event: Mapping[str, Any], now: datetime) -> bool:
    """An owner's health reaction on a goal's prompt (added or removed); whether it changed the
    goal's health calls. Other reactions (the bot's own acknowledgements, anyone's thumbs up,
    a health emoji on another message or by someone who does not own the goal) change nothing."""
    name = str(event["emoji_name"])
    health = REACTION_HEALTH.get(name)
    if health is None:
        return False
    message_id, user_id = int(event["message_id"]), int(event["user_id"])
    goal_id = prompt_goal(session, message_id)
    if goal_id is None:
        return False
    person_id = session.execute(
        select(Person.id)
        .join(GoalOwner, GoalOwner.person_id == Person.id)
        .where(Person.zulip_user_id == user_id, GoalOwner.goal_id == goal_id)
        .limit(1)
    ).scalar_one_or_none()
    if person_id is None:
        return False
    where = (
        HealthReaction.zulip_message_id == message_id,
        HealthReaction.zulip_user_id == user_id,
        HealthReaction.emoji_name == name,
    )
    known = session.execute(select(HealthReaction.id).where(*where)).scalar_one_or_none()
    if event.get("op") == "remove":
        if known is None:
            return False
        session.execute(delete(HealthReaction).where(HealthReaction.id == known))
        return True
    if known is not None:  # the same reaction again (a re-delivered event)
        return False
    session.add(
        HealthReaction(
            goal_id=goal_id,
            zulip_message_id=message_id,
            zulip_user_id=user_id,
            person_id=person_id,
            emoji_name=name,
            health=health,
            reacted_at=now,
        )
    )
    return True
