"""Server-side state and behaviour of the emulated Zulip: messages, flags, event queues.

Everything here runs under the realm's lock.  The HTTP layer and the Python API both call
the same methods, so a message sent by a simulated human is stored and fanned out exactly
like one posted over HTTP.  Event payloads are serialised once per message and variant and
kept as bytes in the queues, so draining a large backlog costs a ``join``, not a re-encode.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fakezulip import emoji as emoji_table
from fakezulip.markdown import (
    Mention,
    Renderer,
    topic_narrow_path,
)
from fakezulip.realm import (
    DM_POLICY_NOBODY,
    POLICY_ADMINS,
    POLICY_MODERATORS,
    ROLE_MODERATOR,
    STREAM_POST_ADMINS,
    STREAM_POST_EVERYONE,
    STREAM_POST_MODERATORS,
    Realm,
    Stream,
    User,
    gravatar_url,
)

ZULIP_VERSION = "8.0-beta2+git"
ZULIP_FEATURE_LEVEL = 236
ZULIP_MERGE_BASE = ""

LARGER_THAN_MAX_MESSAGE_ID = 10_000_000_000_000_000
MAX_MESSAGE_LENGTH = 10_000
MAX_TOPIC_LENGTH = 60
MAX_MESSAGES_PER_FETCH = 5000
TRUNCATION_NOTICE = "\n[message truncated]"
RESOLVED_TOPIC_PREFIX = "✔ "
FOLLOWED = 3  # user_topic visibility policy reported as automatic_new_visibility_policy

# Clients the real server treats as a human's own UI: their sends are marked read.
UI_CLIENTS = frozenset(
    {"website", "ZulipMobile", "ZulipElectron", "ZulipDesktop", "ZulipFlutter", "ZulipTerminal"}
)
FLAG_ORDER = (
    "read",
    "starred",
    "collapsed",
    "mentioned",
    "stream_wildcard_mentioned",
    "topic_wildcard_mentioned",
    "has_alert_word",
    "historical",
)
EDITABLE_FLAGS = frozenset({"read", "starred", "collapsed"})
# The flags that mean a message notified its reader.
MENTION_FLAGS = frozenset({"mentioned", "stream_wildcard_mentioned", "topic_wildcard_mentioned"})
FETCHABLE = (
    "message",
    "realm",
    "realm_emoji",
    "realm_user",
    "subscription",
    "realm_user_groups",
    "custom_profile_fields",
    "stream",
)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, like the real server's orjson output."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


class ApiError(Exception):
    """An error the API reports as ``{"result": "error", "msg": ..., "code": ...}``."""

    def __init__(
        self, msg: str, code: str = "BAD_REQUEST", status: int = 400, **extra: Any
    ) -> None:
        super().__init__(msg)
        self.msg = msg
        self.code = code
        self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"result": "error", "msg": self.msg, **self.extra, "code": self.code}


def missing_argument(name: str) -> ApiError:
    return ApiError(f"Missing '{name}' argument", "REQUEST_VARIABLE_MISSING", var_name=name)


def bad_narrow(desc: str) -> ApiError:
    return ApiError(f"Invalid narrow operator: {desc}", "BAD_NARROW", desc=desc)


class QueueGone(Exception):
    """The server restarted while a long-poll waited: the connection must just be dropped."""


@dataclass(eq=False)
class Reaction:
    user_id: int
    emoji_name: str
    emoji_code: str
    reaction_type: str


@dataclass(eq=False)
class Message:
    """A stored message.  ``user_flags`` are its UserMessage rows: who received it."""

    id: int
    sender: User
    stream: Stream | None
    topic: str
    content: str
    timestamp: int
    client: str
    recipient_id: int
    dm_user_ids: tuple[int, ...] = ()
    reactions: list[Reaction] = field(default_factory=list)
    edit_history: list[dict[str, Any]] = field(default_factory=list)
    last_edit_timestamp: int | None = None
    user_flags: dict[int, set[str]] = field(default_factory=dict)
    rendered: str | None = None

    @property
    def is_stream(self) -> bool:
        return self.stream is not None

    @property
    def type(self) -> str:
        return "stream" if self.stream is not None else "private"

    def topic_key(self) -> tuple[int, str] | None:
        return (self.stream.stream_id, self.topic.lower()) if self.stream is not None else None


@dataclass
class Term:
    """One narrow term, already resolved against the realm."""

    operator: str
    operand: Any
    negated: bool = False


@dataclass(eq=False)
class EventQueue:
    """A registered event queue.  Events are stored pre-encoded as ``(id, json bytes)``."""

    queue_id: str
    user_id: int
    event_types: frozenset[str] | None
    narrow: list[Term]
    apply_markdown: bool
    client_gravatar: bool
    all_public_streams: bool
    bulk_message_deletion: bool
    lifespan: float
    last_access: float
    events: deque[tuple[int, bytes]] = field(default_factory=deque)
    next_id: int = 0
    waiting: int = 0
    dead: bool = False

    def wants(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types

    def push(self, body_without_id: bytes) -> None:
        """Append an event whose JSON lacks the final ``,"id":N}``."""
        eid = self.next_id
        self.next_id += 1
        self.events.append((eid, body_without_id + b',"id":%d}' % eid))

    def prune(self, last_event_id: int) -> None:
        events = self.events
        while events and events[0][0] <= last_event_id:
            events.popleft()


def _event_prefix(event: dict[str, Any]) -> bytes:
    return dumps(event)[:-1]


class ZulipState:
    """All mutable server state.  Call everything with :attr:`cond` held (or via helpers)."""

    def __init__(self, realm: Realm, clock: Callable[[], float], site: Callable[[], str]) -> None:
        self.realm = realm
        self.clock = clock
        self.site = site
        self.cond = threading.Condition(realm.lock)
        self.messages: dict[int, Message] = {}
        self.message_ids: list[int] = []
        self.next_message_id = 1
        self.queues: dict[str, EventQueue] = {}
        self.user_queues: dict[int, list[EventQueue]] = {}
        self.public_queues: list[EventQueue] = []
        self.topic_counts: dict[tuple[int, str], int] = {}
        self.topic_participants: dict[tuple[int, str], set[int]] = {}
        self.followed_topics: set[tuple[int, int, str]] = set()
        self.max_received: dict[int, int] = {}
        self.bot_storage: dict[int, dict[str, str]] = {}
        self.generation = 0
        self.stopping = False
        self.renderer = Renderer(
            self._resolve_user_mention,
            self._resolve_stream_link,
            self._resolve_group_mention,
            self._resolve_custom_emoji,
        )

    # ================================================================= helpers

    def now(self) -> int:
        return int(self.clock())

    def _resolve_user_mention(self, mention: Mention) -> tuple[int, str] | None:
        user = self.mentioned_user(mention)
        return (user.user_id, user.full_name) if user is not None else None

    def _resolve_stream_link(self, name: str) -> tuple[int, str] | None:
        stream = self.realm.stream_by_name(name)
        return (stream.stream_id, stream.name) if stream is not None else None

    def _resolve_custom_emoji(self, name: str) -> str | None:
        found = self.realm.custom_emoji_by_name(name)
        return found.source_url if found is not None else None

    def _resolve_group_mention(self, name: str) -> tuple[int, str] | None:
        group = self.realm.user_group_by_name(name)
        return (group.group_id, group.name) if group is not None else None

    def mentioned_user(self, mention: Mention) -> User | None:
        """The user a ``@**Name**`` / ``@**Name|id**`` refers to, if unambiguous."""
        uid = mention.user_id
        if uid is not None:
            user = self.realm.user_by_id(uid)
            return user if user is not None and user.is_active else None
        key = mention.name.lower()
        matches = [
            u for u in self.realm.users.values() if u.is_active and u.full_name.lower() == key
        ]
        return matches[0] if len(matches) == 1 else None

    def render(self, message: Message) -> str:
        if message.rendered is None:
            message.rendered = self.renderer.render(message.content)
        return message.rendered

    def can_see_email(self, viewer: User | None, target: User) -> bool:
        return self.realm.email_visible(target) or (
            viewer is not None and viewer.user_id == target.user_id
        )

    def avatar_url(self, viewer: User | None, target: User, client_gravatar: bool) -> str | None:
        if target.is_system_bot:
            return None
        if client_gravatar and self.can_see_email(viewer, target):
            return None
        return gravatar_url(target.email)

    def stream_accessible(self, user: User, stream: Stream) -> bool:
        return not stream.invite_only or user.user_id in stream.subscribers

    def can_access(self, user: User, message: Message) -> bool:
        if user.user_id in message.user_flags:
            return True
        stream = message.stream
        if stream is None:
            return False
        if not stream.invite_only:
            return not user.is_guest
        return user.user_id in stream.subscribers and stream.history_public_to_subscribers

    def flags_for(self, user: User, message: Message) -> list[str]:
        flags = message.user_flags.get(user.user_id)
        if flags is None:
            return ["read", "historical"]
        return ordered_flags(flags)

    def notify(self) -> None:
        self.cond.notify_all()

    # ================================================================= messages: dicts

    def display_recipient(self, message: Message) -> str | list[dict[str, Any]]:
        if message.stream is not None:
            return message.stream.name
        sender = message.sender
        others = [uid for uid in message.dm_user_ids if uid != sender.user_id]
        sender_entry = {
            "email": sender.api_email,
            "full_name": sender.full_name,
            "id": sender.user_id,
            "is_mirror_dummy": False,
        }
        if len(others) <= 1:
            if not others:
                return [sender_entry]
            other = self.realm.user_by_id(others[0])
            assert other is not None
            recip = {
                "id": other.user_id,
                "email": other.api_email,
                "full_name": other.full_name,
                "is_mirror_dummy": False,
            }
            if sender_entry["email"] < recip["email"]:  # type: ignore[operator]
                return [sender_entry, recip]
            return [recip, sender_entry]
        out = []
        for uid in message.dm_user_ids:
            user = self.realm.user_by_id(uid)
            assert user is not None
            out.append(
                {
                    "id": user.user_id,
                    "email": user.api_email,
                    "full_name": user.full_name,
                    "is_mirror_dummy": False,
                }
            )
        return out

    def reaction_dicts(self, message: Message) -> list[dict[str, Any]]:
        out = []
        for r in message.reactions:
            user = self.realm.user_by_id(r.user_id)
            out.append(
                {
                    "emoji_name": r.emoji_name,
                    "emoji_code": r.emoji_code,
                    "reaction_type": r.reaction_type,
                    "user_id": r.user_id,
                    "user": {
                        "email": user.api_email if user else "",
                        "id": r.user_id,
                        "full_name": user.full_name if user else "",
                        "is_mirror_dummy": False,
                    },
                }
            )
        return out

    def message_dict(
        self,
        message: Message,
        viewer: User | None,
        *,
        apply_markdown: bool,
        client_gravatar: bool,
        flags: list[str] | None,
    ) -> dict[str, Any]:
        """A message as ``GET /messages`` shows it (``flags=None`` gives the event shape)."""
        sender = message.sender
        d: dict[str, Any] = {
            "id": message.id,
            "sender_id": sender.user_id,
            "content": self.render(message) if apply_markdown else message.content,
            "recipient_id": message.recipient_id,
            "timestamp": message.timestamp,
            "client": message.client,
            "subject": message.topic,
            "topic_links": [],
        }
        if message.last_edit_timestamp is not None:
            d["last_edit_timestamp"] = message.last_edit_timestamp
            d["edit_history"] = [dict(entry) for entry in message.edit_history]
        d["is_me_message"] = message.content.startswith("/me ")
        d["reactions"] = self.reaction_dicts(message)
        d["submessages"] = []
        if flags is not None:
            d["flags"] = flags
        d["sender_full_name"] = sender.full_name
        d["sender_email"] = sender.api_email
        d["sender_realm_str"] = sender.realm_str
        d["display_recipient"] = self.display_recipient(message)
        d["type"] = message.type
        if message.stream is not None:
            d["stream_id"] = message.stream.stream_id
        d["avatar_url"] = self.avatar_url(viewer, sender, client_gravatar)
        d["content_type"] = "text/html" if apply_markdown else "text/x-markdown"
        return d

    # ================================================================= sending

    @staticmethod
    def normalize_content(content: str) -> str:
        if "\x00" in content:
            raise ApiError("Message must not contain null bytes")
        body = content.rstrip().lstrip("\n")
        if not body:
            raise ApiError("Message must not be empty")
        if len(body) > MAX_MESSAGE_LENGTH:
            body = body[: MAX_MESSAGE_LENGTH - len(TRUNCATION_NOTICE)] + TRUNCATION_NOTICE
        return body

    @staticmethod
    def normalize_topic(topic: str) -> str:
        topic = topic.strip()
        if not topic:
            raise ApiError("Topic can't be empty!")
        if any(ord(ch) < 32 for ch in topic):
            raise ApiError("Invalid character in topic, at position 1!")
        if len(topic) > MAX_TOPIC_LENGTH:
            topic = topic[: MAX_TOPIC_LENGTH - 3] + "..."
        return topic

    def resolve_stream_target(self, to: Any) -> Stream:
        """``to`` of a stream message: a name, an id, or a one-element JSON list of either."""
        if isinstance(to, list):
            if len(to) != 1:
                raise ApiError("Cannot send to multiple streams")
            to = to[0]
        if isinstance(to, int) and not isinstance(to, bool):
            stream = self.realm.stream_by_id(to)
            if stream is None:
                raise ApiError(
                    f"Stream with ID '{to}' does not exist", "STREAM_DOES_NOT_EXIST", stream_id=to
                )
            return stream
        name = str(to)
        if name.isdigit():
            stream = self.realm.stream_by_id(int(name))
            if stream is not None:
                return stream
        stream = self.realm.stream_by_name(name)
        if stream is None:
            raise ApiError(f"Stream '{name}' does not exist", "STREAM_DOES_NOT_EXIST", stream=name)
        return stream

    def resolve_dm_targets(self, to: Any) -> list[User]:
        """``to`` of a direct message: ids, API emails, or a comma-separated email string."""
        if isinstance(to, (int, str)) and not isinstance(to, bool):
            items: list[Any] = (
                [to] if isinstance(to, int) else [s.strip() for s in to.split(",") if s.strip()]
            )
        elif isinstance(to, list):
            items = to
        else:
            raise ApiError("Invalid data type for recipients")
        if not items:
            raise ApiError("Message must have recipients")
        ints = [i for i in items if isinstance(i, int) and not isinstance(i, bool)]
        if ints and len(ints) != len(items):
            raise ApiError("Recipient lists may contain emails or user IDs, but not both.")
        users: list[User] = []
        for item in items:
            if isinstance(item, int):
                user = self.realm.user_by_id(item)
                if user is None or user.is_system_bot:
                    raise ApiError(f"Invalid user ID {item}")
            else:
                found = self.realm.user_by_api_email(str(item))
                if found is None:
                    raise ApiError(f"Invalid email '{item}'")
                user = found
            if not user.is_active:
                raise ApiError(f"'{user.api_email}' is no longer using Zulip.")
            if user not in users:
                users.append(user)
        return users

    def send_message(
        self,
        sender: User,
        *,
        stream: Stream | None = None,
        topic: str | None = None,
        recipients: list[User] | None = None,
        content: str,
        client: str,
        read_by_sender: bool | None = None,
    ) -> tuple[Message, dict[str, Any]]:
        """Store, fan out, and return the message plus extra keys for the POST response."""
        body = self.normalize_content(content)
        extra: dict[str, Any] = {}
        if stream is not None:
            assert topic is not None
            if (
                stream.invite_only
                and sender.user_id not in stream.subscribers
                and not sender.is_system_bot
            ):
                raise ApiError(f"Not authorized to send to stream '{stream.name}'")
            if sender.is_guest and sender.user_id not in stream.subscribers:
                raise ApiError(f"Not authorized to send to stream '{stream.name}'")
            self.check_stream_post_policy(sender, stream)
            message = Message(
                id=self.next_message_id,
                sender=sender,
                stream=stream,
                topic=topic,
                content=body,
                timestamp=self.now(),
                client=client,
                recipient_id=stream.recipient_id,
            )
            receivers = {
                uid
                for uid in stream.subscribers
                if (u := self.realm.users.get(uid)) and u.is_active
            }
            key = (stream.stream_id, topic.lower())
            if (
                not sender.is_bot
                and self.topic_counts.get(key, 0) == 0
                and (sender.user_id, *key) not in self.followed_topics
            ):
                self.followed_topics.add((sender.user_id, *key))
                extra["automatic_new_visibility_policy"] = FOLLOWED
        else:
            assert recipients is not None
            self.check_dm_policy(sender, recipients)
            ids = frozenset({sender.user_id, *(u.user_id for u in recipients)})
            if len(ids) == 1:
                recipient_id = sender.recipient_id
            elif len(ids) == 2:
                (other,) = ids - {sender.user_id}
                other_user = self.realm.user_by_id(other)
                assert other_user is not None
                recipient_id = other_user.recipient_id
            else:
                recipient_id = self.realm.huddle_recipient_id(ids)
            message = Message(
                id=self.next_message_id,
                sender=sender,
                stream=None,
                topic="",
                content=body,
                timestamp=self.now(),
                client=client,
                recipient_id=recipient_id,
                dm_user_ids=tuple(sorted(ids)),
            )
            receivers = set(ids)
        receivers.add(sender.user_id)
        if sender.is_system_bot:
            receivers.discard(sender.user_id)
        self.next_message_id += 1
        self._store(message)
        tkey = message.topic_key()
        if tkey is not None:
            self.topic_counts[tkey] = self.topic_counts.get(tkey, 0) + 1
            self.topic_participants.setdefault(tkey, set()).add(sender.user_id)
        mentioned, stream_wc, topic_wc = self._mention_targets(message)
        sender_read = read_by_sender if read_by_sender is not None else client in UI_CLIENTS
        for uid in receivers:
            flags = self._content_flags(message, uid, mentioned, stream_wc, topic_wc)
            if uid == sender.user_id and sender_read:
                flags.add("read")
            message.user_flags[uid] = flags
            if self.max_received.get(uid, -1) < message.id:
                self.max_received[uid] = message.id
        self._fan_out_message(message)
        self.notify()
        return message, extra

    @staticmethod
    def post_policy_refusal(user: User, stream: Stream) -> str | None:
        """Why the stream's posting policy refuses ``user``, or None (admins always pass)."""
        policy = stream.stream_post_policy
        if user.is_admin or user.is_system_bot or policy == STREAM_POST_EVERYONE:
            return None
        if policy == STREAM_POST_ADMINS:
            return "Only organization administrators can send to this stream."
        if policy == STREAM_POST_MODERATORS and user.role != ROLE_MODERATOR:
            return "Only organization administrators and moderators can send to this stream."
        if user.is_guest:
            return "Guests cannot send to this stream."
        return None  # full members only: every member is a full member here

    def check_stream_post_policy(self, sender: User, stream: Stream) -> None:
        """Zulip's rule: a bot may post where its owner may, when it may not itself."""
        refusal = self.post_policy_refusal(sender, stream)
        if refusal is not None and sender.is_bot and sender.bot_owner_id is not None:
            owner = self.realm.user_by_id(sender.bot_owner_id)
            if owner is not None:
                refusal = self.post_policy_refusal(owner, stream)
        if refusal is not None:
            raise ApiError(refusal)

    def check_dm_policy(self, sender: User, recipients: list[User]) -> None:
        """With DMs disabled, bots may still send them, and people may still write to one bot."""
        if self.realm.private_message_policy != DM_POLICY_NOBODY or sender.is_bot:
            return
        if len(recipients) == 1 and (recipients[0].is_bot or recipients[0] is sender):
            return
        raise ApiError("Direct messages are disabled in this organization.")

    def may_subscribe_others(self, user: User) -> bool:
        """``invite_to_stream_policy`` (every member counts as a full member here)."""
        policy = self.realm.invite_to_stream_policy
        if user.is_admin:
            return True
        if policy == POLICY_ADMINS:
            return False
        if user.role == ROLE_MODERATOR:
            return True
        if policy == POLICY_MODERATORS:
            return False
        return not user.is_guest

    def _store(self, message: Message) -> None:
        self.messages[message.id] = message
        self.message_ids.append(message.id)
        if message.stream is not None and message.stream.first_message_id is None:
            message.stream.first_message_id = message.id

    def _mention_targets(self, message: Message) -> tuple[set[int], bool, bool]:
        """Who the message mentions loudly, as its rendering found: users, the members of
        mentioned groups, and whether a stream or topic wildcard was used."""
        if "@" not in message.content:  # no mention at all: rendering can wait until asked for
            return set(), False, False
        result = self.renderer.render_message(message.content)
        message.rendered = result.html
        mentioned = set(result.user_ids)
        for group in self.realm.user_groups:
            if group.group_id in result.group_ids:
                mentioned |= self.realm.all_group_members(group)
        topic_wc = result.topic_wildcard and message.stream is not None
        return mentioned, result.stream_wildcard, topic_wc

    def _content_flags(
        self, message: Message, uid: int, mentioned: set[int], stream_wc: bool, topic_wc: bool
    ) -> set[str]:
        flags: set[str] = set()
        if uid in mentioned:
            flags.add("mentioned")
        if stream_wc:
            flags.add("stream_wildcard_mentioned")
        if topic_wc:
            key = message.topic_key()
            if key is not None and uid in self.topic_participants.get(key, ()):
                flags.add("topic_wildcard_mentioned")
        return flags

    def _fan_out_message(self, message: Message) -> None:
        variants: dict[tuple[bool, bool], bytes] = {}
        flag_cache: dict[frozenset[str], bytes] = {}

        def deliver(queue: EventQueue, flags: set[str]) -> None:
            if not queue.wants("message") or not self._queue_narrow_matches(queue, message, flags):
                return
            variant = (queue.apply_markdown, queue.client_gravatar)
            encoded = variants.get(variant)
            if encoded is None:
                encoded = dumps(
                    self.message_dict(
                        message,
                        None,
                        apply_markdown=variant[0],
                        client_gravatar=variant[1],
                        flags=None,
                    )
                )
                variants[variant] = encoded
            fkey = frozenset(flags)
            fjson = flag_cache.get(fkey)
            if fjson is None:
                fjson = dumps(ordered_flags(flags))
                flag_cache[fkey] = fjson
            queue.push(b'{"type":"message","message":' + encoded + b',"flags":' + fjson)

        for uid, flags in message.user_flags.items():
            for queue in self.user_queues.get(uid, ()):
                deliver(queue, flags)
        if message.stream is not None and not message.stream.invite_only:
            for queue in self.public_queues:
                if queue.user_id not in message.user_flags:
                    deliver(queue, set())

    def _queue_narrow_matches(self, queue: EventQueue, message: Message, flags: set[str]) -> bool:
        if not queue.narrow:
            return True
        viewer = self.realm.user_by_id(queue.user_id)
        assert viewer is not None
        return all(self._term_matches(t, message, viewer, flags) for t in queue.narrow)

    # ================================================================= events

    def _users_for_message_event(self, message: Message) -> set[int]:
        users = set(message.user_flags)
        if message.stream is not None:
            users |= {
                uid
                for uid in message.stream.subscribers
                if (u := self.realm.users.get(uid)) and u.is_active
            }
        return users

    def _send_event(
        self,
        event_type: str,
        user_ids: Iterable[int],
        build: Callable[[int], dict[str, Any] | None],
        *,
        also_public: Stream | None = None,
    ) -> None:
        """Queue one event per interested queue; ``build`` gives each user's payload."""
        targets = set(user_ids)
        done: set[str] = set()
        for uid in targets:
            queues = self.user_queues.get(uid)
            if not queues:
                continue
            event = build(uid)
            if event is None:
                continue
            prefix = _event_prefix(event)
            for queue in queues:
                if queue.wants(event_type):
                    queue.push(prefix)
                    done.add(queue.queue_id)
        if also_public is not None and not also_public.invite_only:
            for queue in self.public_queues:
                if queue.queue_id in done or not queue.wants(event_type):
                    continue
                event = build(queue.user_id)
                if event is not None:
                    queue.push(_event_prefix(event))

    def _broadcast(self, event_type: str, user_ids: Iterable[int], event: dict[str, Any]) -> None:
        """Queue the same event for every interested queue of these users."""
        prefix = _event_prefix(event)
        for uid in set(user_ids):
            for queue in self.user_queues.get(uid, ()):
                if queue.wants(event_type):
                    queue.push(prefix)

    # ================================================================= editing

    def update_message(
        self,
        editor: User,
        message_id: int,
        *,
        content: str | None = None,
        topic: str | None = None,
        propagate_mode: str = "change_one",
        stream_id: int | None = None,
        send_notification_to_old_thread: bool = False,
        send_notification_to_new_thread: bool = True,
    ) -> None:
        message = self.messages.get(message_id)
        if message is None or not self.can_access(editor, message):
            raise ApiError("Invalid message(s)")
        if propagate_mode not in ("change_one", "change_later", "change_all"):
            raise ApiError("Invalid propagate_mode")
        if content is None and topic is None and stream_id is None:
            raise ApiError("Nothing to change")
        if content is not None and editor.user_id != message.sender.user_id:
            raise ApiError("You don't have permission to edit this message")
        if message.stream is None and (topic is not None or stream_id is not None):
            raise ApiError("Direct messages cannot have topics.")
        if (
            (topic is not None or stream_id is not None)
            and editor.is_guest
            and editor.user_id != message.sender.user_id
        ):
            raise ApiError("You don't have permission to edit this message")
        new_topic = self.normalize_topic(topic) if topic is not None else None
        new_stream: Stream | None = None
        if stream_id is not None:
            new_stream = self.realm.stream_by_id(stream_id)
            if new_stream is None or not self.stream_accessible(editor, new_stream):
                raise ApiError("Invalid stream ID")
            if content is not None:
                raise ApiError("Cannot change message content while changing stream")
            if new_stream is message.stream:
                new_stream = None
        if new_topic is not None and new_topic == message.topic and new_stream is None:
            new_topic = None
        if content is None and new_topic is None and new_stream is None:
            return  # a no-op move: the real server accepts it silently
        now = self.now()
        old_stream = message.stream
        old_topic = message.topic
        content_event: dict[str, Any] = {}
        if content is not None:
            body = content.rstrip().lstrip("\n") or "(deleted)"
            if len(body) > MAX_MESSAGE_LENGTH:
                body = body[: MAX_MESSAGE_LENGTH - len(TRUNCATION_NOTICE)] + TRUNCATION_NOTICE
            orig_content, orig_rendered = message.content, self.render(message)
            message.content = body
            message.rendered = None
            content_event = {
                "orig_content": orig_content,
                "orig_rendered_content": orig_rendered,
                "content": body,
                "rendered_content": self.render(message),
                "prev_rendered_content_version": 1,
                "is_me_message": body.startswith("/me "),
            }
            mentioned, stream_wc, topic_wc = self._mention_targets(message)
            for uid, flags in message.user_flags.items():
                flags -= MENTION_FLAGS
                flags |= self._content_flags(message, uid, mentioned, stream_wc, topic_wc)

        moved: list[Message] = [message]
        if new_topic is not None or new_stream is not None:
            assert old_stream is not None
            if propagate_mode != "change_one":
                key = old_topic.lower()
                moved = [
                    m
                    for m in self.iter_messages()
                    if m.stream is old_stream
                    and m.topic.lower() == key
                    and (propagate_mode == "change_all" or m.id >= message.id)
                ]
            total_in_topic = self.topic_counts.get((old_stream.stream_id, old_topic.lower()), 0)
            target_stream = new_stream or old_stream
            target_topic = new_topic if new_topic is not None else old_topic
            old_key = (old_stream.stream_id, old_topic.lower())
            new_key = (target_stream.stream_id, target_topic.lower())
            for m in moved:
                m.stream = target_stream
                m.topic = target_topic
                m.recipient_id = target_stream.recipient_id
                m.last_edit_timestamp = now
                if m is not message:
                    entry: dict[str, Any] = {"user_id": editor.user_id, "timestamp": now}
                    self._move_history(entry, old_stream, target_stream, old_topic, target_topic)
                    m.edit_history.insert(0, entry)
                if new_stream is not None:
                    self._move_receivers(m, target_stream)
            self.topic_counts[old_key] = self.topic_counts.get(old_key, 0) - len(moved)
            self.topic_counts[new_key] = self.topic_counts.get(new_key, 0) + len(moved)
            self.topic_participants.setdefault(new_key, set()).update(
                self.topic_participants.get(old_key, set())
            )
            # Follow/mute choices travel with the topic; a whole-topic move leaves none behind.
            whole_topic = len(moved) >= total_in_topic
            for uid, sid, name in [f for f in self.followed_topics if f[1:] == old_key]:
                self.followed_topics.add((uid, *new_key))
                if whole_topic:
                    self.followed_topics.discard((uid, sid, name))
            if (
                target_stream.first_message_id is None
                or target_stream.first_message_id > moved[0].id
            ):
                target_stream.first_message_id = min(m.id for m in moved)
        entry = {"user_id": editor.user_id, "timestamp": now}
        if new_topic is not None or new_stream is not None:
            assert old_stream is not None and message.stream is not None
            self._move_history(entry, old_stream, message.stream, old_topic, message.topic)
        if content_event:
            entry["prev_content"] = content_event["orig_content"]
            entry["prev_rendered_content"] = content_event["orig_rendered_content"]
            entry["prev_rendered_content_version"] = 1
        message.edit_history.insert(0, entry)
        message.last_edit_timestamp = now

        moved_ids = sorted(m.id for m in moved)
        base: dict[str, Any] = {
            "type": "update_message",
            "user_id": editor.user_id,
            "edit_timestamp": now,
            "message_id": message.id,
            "rendering_only": False,
        }
        if old_stream is not None:
            base["stream_name"] = old_stream.name
            base["stream_id"] = old_stream.stream_id
        if new_stream is not None:
            base["new_stream_id"] = new_stream.stream_id
        if new_topic is not None or new_stream is not None:
            base["propagate_mode"] = propagate_mode
            base["orig_subject"] = old_topic
            if new_topic is not None:
                base["subject"] = new_topic
            base["topic_links"] = []
        base.update(content_event)
        affected: set[int] = set()
        for m in moved:
            affected |= set(m.user_flags)

        def build(uid: int) -> dict[str, Any]:
            flags = message.user_flags.get(uid)
            return {
                **base,
                "message_ids": moved_ids,
                "flags": ordered_flags(flags) if flags is not None else [],
            }

        self._send_event("update_message", affected, build)

        if (new_topic is not None or new_stream is not None) and old_stream is not None:
            self._move_notifications(
                editor,
                message,
                old_stream,
                old_topic,
                len(moved),
                total_in_topic=total_in_topic,
                to_old=send_notification_to_old_thread,
                to_new=send_notification_to_new_thread,
            )
        self.notify()

    @staticmethod
    def _move_history(
        entry: dict[str, Any],
        old_stream: Stream,
        new_stream: Stream,
        old_topic: str,
        new_topic: str,
    ) -> None:
        if new_stream is not old_stream:
            entry["prev_stream"] = old_stream.stream_id
            entry["stream"] = new_stream.stream_id
        if new_topic != old_topic:
            entry["prev_topic"] = old_topic
            entry["topic"] = new_topic

    def _move_receivers(self, message: Message, stream: Stream) -> None:
        for uid in stream.subscribers:
            user = self.realm.users.get(uid)
            if user is not None and user.is_active and uid not in message.user_flags:
                message.user_flags[uid] = set()

    def _move_notifications(
        self,
        editor: User,
        message: Message,
        old_stream: Stream,
        old_topic: str,
        count: int,
        *,
        total_in_topic: int,
        to_old: bool,
        to_new: bool,
    ) -> None:
        assert message.stream is not None
        new_stream, new_topic = message.stream, message.topic
        who = f"@_**{editor.full_name}|{editor.user_id}**"
        bot = self.realm.notification_bot
        if new_stream is old_stream and new_topic == RESOLVED_TOPIC_PREFIX + old_topic:
            self.send_message(
                bot,
                stream=new_stream,
                topic=new_topic,
                content=f"{who} has marked this topic as resolved.",
                client="Internal",
            )
            return
        if new_stream is old_stream and old_topic == RESOLVED_TOPIC_PREFIX + new_topic:
            self.send_message(
                bot,
                stream=new_stream,
                topic=new_topic,
                content=f"{who} has marked this topic as unresolved.",
                client="Internal",
            )
            return
        old_link = f"#**{old_stream.name}>{old_topic}**"
        new_link = f"#**{new_stream.name}>{new_topic}**"
        near = (
            f"{self.site()}/{topic_narrow_path(new_stream.stream_id, new_stream.name, new_topic)}"
            f"/near/{message.id}"
        )
        whole = count >= total_in_topic
        if to_old:
            if whole:
                text = f"This topic was moved to {new_link} by {who}."
            elif count == 1:
                text = f"[A message]({near}) was moved from this topic to {new_link} by {who}."
            else:
                text = f"{count} messages were moved from this topic to {new_link} by {who}."
            self.send_message(
                bot, stream=old_stream, topic=old_topic, content=text, client="Internal"
            )
        if to_new:
            if whole:
                text = f"This topic was moved here from {old_link} by {who}."
            elif count == 1:
                text = f"[A message]({near}) was moved here from {old_link} by {who}."
            else:
                text = f"{count} messages were moved here from {old_link} by {who}."
            self.send_message(
                bot, stream=new_stream, topic=new_topic, content=text, client="Internal"
            )

    def iter_messages(self) -> Iterator[Message]:
        """Every stored message, oldest first."""
        for mid in self.message_ids:
            yield self.messages[mid]

    # ================================================================= deleting

    def delete_message(self, actor: User | None, message_id: int) -> None:
        """Delete as ``actor`` (``None``: the test harness, allowed everything)."""
        message = self.messages.get(message_id)
        if message is None or (actor is not None and not self.can_access(actor, message)):
            raise ApiError("Invalid message(s)")
        if actor is not None and not (actor.is_admin or actor.user_id == message.sender.user_id):
            raise ApiError("You don't have permission to delete this message")
        receivers = set(message.user_flags)
        del self.messages[message_id]
        idx = bisect.bisect_left(self.message_ids, message_id)
        if idx < len(self.message_ids) and self.message_ids[idx] == message_id:
            del self.message_ids[idx]
        key = message.topic_key()
        if key is not None:
            self.topic_counts[key] = self.topic_counts.get(key, 0) - 1
            stream = message.stream
            assert stream is not None
            if stream.first_message_id == message_id:
                stream.first_message_id = next(
                    (m.id for m in self.iter_messages() if m.stream is stream), None
                )

        def build_for(queue: EventQueue) -> dict[str, Any]:
            event: dict[str, Any] = {"type": "delete_message"}
            if message.stream is not None:
                event["stream_id"] = message.stream.stream_id
                event["topic"] = message.topic
            event["message_type"] = message.type
            if queue.bulk_message_deletion:
                event["message_ids"] = [message_id]
            else:
                event["message_id"] = message_id
            return event

        for uid in receivers:
            for queue in self.user_queues.get(uid, ()):
                if queue.wants("delete_message"):
                    queue.push(_event_prefix(build_for(queue)))
        self.notify()

    # ================================================================= reactions

    def reaction(
        self,
        user: User,
        message_id: int,
        *,
        emoji_name: str,
        emoji_code: str | None = None,
        reaction_type: str | None = None,
        add: bool,
    ) -> None:
        message = self.messages.get(message_id)
        if message is None or not self.can_access(user, message):
            raise ApiError("Invalid message(s)")
        custom = self.realm.custom_emoji_by_name(emoji_name) if emoji_code is None else None
        if custom is not None:
            emoji_code, reaction_type = str(custom.emoji_id), "realm_emoji"
        elif emoji_code is None:
            found = emoji_table.lookup(emoji_name)
            if found is None:
                raise ApiError(f"Emoji '{emoji_name}' does not exist")
            emoji_code, kind = found
            reaction_type = reaction_type or kind
        reaction_type = reaction_type or "unicode_emoji"
        existing = next(
            (
                r
                for r in message.reactions
                if r.user_id == user.user_id
                and r.emoji_code == emoji_code
                and r.reaction_type == reaction_type
            ),
            None,
        )
        if add:
            if existing is not None:
                raise ApiError("Reaction already exists.", "REACTION_ALREADY_EXISTS")
            message.reactions.append(Reaction(user.user_id, emoji_name, emoji_code, reaction_type))
            key = message.topic_key()
            if key is not None:
                self.topic_participants.setdefault(key, set()).add(user.user_id)
            if user.user_id not in message.user_flags:
                message.user_flags[user.user_id] = {"read", "historical"}
        else:
            if existing is None:
                raise ApiError("Reaction doesn't exist.", "REACTION_DOES_NOT_EXIST")
            message.reactions.remove(existing)
            emoji_name = existing.emoji_name
        event = {
            "type": "reaction",
            "op": "add" if add else "remove",
            "user_id": user.user_id,
            "user": {"user_id": user.user_id, "email": user.api_email, "full_name": user.full_name},
            "message_id": message_id,
            "emoji_name": emoji_name,
            "emoji_code": emoji_code,
            "reaction_type": reaction_type,
        }
        self._broadcast("reaction", self._users_for_message_event(message), event)
        self.notify()

    # ================================================================= flags

    def update_flags(self, user: User, message_ids: list[int], op: str, flag: str) -> list[int]:
        if op not in ("add", "remove"):
            raise ApiError(f"Invalid message flag operation: '{op}'")
        if flag not in EDITABLE_FLAGS:
            raise ApiError(f"Invalid flag: '{flag}'")
        changed: list[int] = []
        for mid in message_ids:
            message = self.messages.get(mid)
            if message is None:
                continue
            flags = message.user_flags.get(user.user_id)
            if flags is None:
                continue
            if op == "add" and flag not in flags:
                flags.add(flag)
                changed.append(mid)
            elif op == "remove" and flag in flags:
                flags.discard(flag)
                changed.append(mid)
        event: dict[str, Any] = {
            "type": "update_message_flags",
            "op": op,
            "operation": op,
            "flag": flag,
            "messages": changed,
            "all": False,
        }
        if op == "remove" and flag == "read":
            details: dict[str, Any] = {}
            for mid in changed:
                message = self.messages[mid]
                detail: dict[str, Any] = {"type": message.type}
                flags = message.user_flags.get(user.user_id, set())
                if "mentioned" in flags or "stream_wildcard_mentioned" in flags:
                    detail["mentioned"] = True
                if message.stream is not None:
                    detail["stream_id"] = message.stream.stream_id
                    detail["topic"] = message.topic
                    detail["unmuted_stream_msg"] = False
                else:
                    detail["user_ids"] = [u for u in message.dm_user_ids if u != user.user_id]
                details[str(mid)] = detail
            event["message_details"] = details
        self._broadcast("update_message_flags", [user.user_id], event)
        self.notify()
        return changed

    # ================================================================= narrows and fetching

    def parse_narrow(self, raw: Any, viewer: User) -> list[Term]:
        """Validate a narrow (list of dicts or of ``[operator, operand]`` pairs)."""
        if raw is None or raw == "":
            return []
        if not isinstance(raw, list):
            raise ApiError("Invalid narrow")
        terms: list[Term] = []
        for item in raw:
            if isinstance(item, dict):
                if "operator" not in item or "operand" not in item:
                    raise ApiError("Invalid narrow")
                op, operand, negated = (
                    item["operator"],
                    item["operand"],
                    bool(item.get("negated", False)),
                )
            elif isinstance(item, list) and len(item) == 2:
                op, operand, negated = item[0], item[1], False
            else:
                raise ApiError("Invalid narrow")
            if not isinstance(op, str):
                raise ApiError("Invalid narrow")
            if op.startswith("-"):
                op, negated = op[1:], not negated
            terms.append(self._resolve_term(op, operand, negated, viewer))
        return terms

    def _user_operand(self, operand: Any) -> User:
        if isinstance(operand, int) and not isinstance(operand, bool):
            user = self.realm.user_by_id(operand)
        elif isinstance(operand, str) and operand.isdigit():
            user = self.realm.user_by_id(int(operand))
        elif isinstance(operand, str):
            user = self.realm.user_by_api_email(operand)
        else:
            user = None
        if user is None:
            raise bad_narrow(f"unknown user {operand}")
        return user

    def _resolve_term(self, op: str, operand: Any, negated: bool, viewer: User) -> Term:
        if op in ("stream", "channel"):
            stream = None
            if isinstance(operand, int) and not isinstance(operand, bool):
                stream = self.realm.stream_by_id(operand)
            elif isinstance(operand, str):
                stream = self.realm.stream_by_name(operand)
                if stream is None and operand.isdigit():
                    stream = self.realm.stream_by_id(int(operand))
            if stream is None:
                raise bad_narrow(f"unknown stream {operand}")
            return Term("stream", stream, negated)
        if op in ("topic", "subject"):
            return Term("topic", str(operand).lower(), negated)
        if op == "is":
            value = str(operand)
            aliases = {"private": "dm"}
            value = aliases.get(value, value)
            if value not in (
                "dm",
                "mentioned",
                "starred",
                "unread",
                "alerted",
                "resolved",
                "followed",
            ):
                raise bad_narrow(f"unknown 'is' operand {operand}")
            return Term("is", value, negated)
        if op in ("dm", "pm-with"):
            ids: set[int] = set()
            items = (
                operand
                if isinstance(operand, list)
                else (
                    [operand]
                    if isinstance(operand, int)
                    else [s for s in str(operand).split(",") if s.strip()]
                )
            )
            for item in items:
                ids.add(self._user_operand(item.strip() if isinstance(item, str) else item).user_id)
            ids.add(viewer.user_id)
            return Term("dm", frozenset(ids), negated)
        if op in ("dm-including", "group-pm-with"):
            return Term("dm-including", self._user_operand(operand).user_id, negated)
        if op == "sender":
            if operand == "me":
                return Term("sender", viewer.user_id, negated)
            return Term("sender", self._user_operand(operand).user_id, negated)
        if op == "id":
            try:
                return Term("id", int(operand), negated)
            except (TypeError, ValueError):
                raise bad_narrow(f"Invalid message ID {operand}") from None
        if op == "search":
            return Term("search", [w for w in str(operand).lower().split() if w], negated)
        if op in ("streams", "channels"):
            if operand != "public":
                raise bad_narrow(f"Invalid '{op}' operand {operand}")
            return Term("streams", "public", negated)
        if op == "has":
            if operand not in ("link", "image", "attachment", "reaction"):
                raise bad_narrow(f"unknown 'has' operand {operand}")
            return Term("has", operand, negated)
        if op == "near":
            return Term("near", operand, negated)
        raise bad_narrow(f"unknown operator {op}")

    def _term_matches(self, term: Term, m: Message, viewer: User, flags: set[str] | None) -> bool:
        op, operand = term.operator, term.operand
        result: bool
        if op == "stream":
            result = m.stream is operand
        elif op == "topic":
            result = m.stream is not None and m.topic.lower() == operand
        elif op == "is":
            fl = flags if flags is not None else m.user_flags.get(viewer.user_id, set())
            if operand == "dm":
                result = m.stream is None
            elif operand == "mentioned":
                result = bool(fl & MENTION_FLAGS)
            elif operand == "starred":
                result = "starred" in fl
            elif operand == "unread":
                result = viewer.user_id in m.user_flags and "read" not in fl
            elif operand == "alerted":
                result = "has_alert_word" in fl
            elif operand == "resolved":
                result = m.stream is not None and m.topic.startswith(RESOLVED_TOPIC_PREFIX)
            else:  # followed
                key = m.topic_key()
                result = key is not None and (viewer.user_id, *key) in self.followed_topics
        elif op == "dm":
            result = m.stream is None and frozenset(m.dm_user_ids) == operand
        elif op == "dm-including":
            result = m.stream is None and operand in m.dm_user_ids
        elif op == "sender":
            result = m.sender.user_id == operand
        elif op == "id":
            result = m.id == operand
        elif op == "search":
            haystack = (m.content + " " + m.topic).lower()
            result = all(word in haystack for word in operand)
        elif op == "streams":
            result = m.stream is not None and not m.stream.invite_only
        elif op == "has":
            if operand == "link":
                result = "http://" in m.content or "https://" in m.content
            elif operand == "reaction":
                result = bool(m.reactions)
            else:
                result = "/user_uploads/" in m.content
        else:  # near
            result = True
        return result != term.negated

    def get_messages(
        self,
        viewer: User,
        *,
        anchor: str | int,
        num_before: int,
        num_after: int,
        include_anchor: bool,
        narrow: list[Term],
        apply_markdown: bool,
        client_gravatar: bool,
    ) -> dict[str, Any]:
        if num_before < 0 or num_after < 0:
            raise ApiError("Invalid num_before or num_after")
        if num_before + num_after > MAX_MESSAGES_PER_FETCH:
            raise ApiError(f"Too many messages requested (maximum {MAX_MESSAGES_PER_FETCH}).")
        stream_scope: Stream | None = None
        for term in narrow:
            if term.operator == "stream" and not term.negated:
                stream_scope = term.operand
        use_history = stream_scope is not None and (
            (not stream_scope.invite_only and not viewer.is_guest)
            or (
                viewer.user_id in stream_scope.subscribers
                and stream_scope.history_public_to_subscribers
            )
        )
        uid = viewer.user_id

        def ok(m: Message) -> bool:
            flags = m.user_flags.get(uid)
            if flags is None and not use_history:
                return False
            return all(self._term_matches(t, m, viewer, flags) for t in narrow)

        ids = self.message_ids
        anchored_left = anchored_right = False
        if anchor == "newest":
            anchor_id, anchored_right = LARGER_THAN_MAX_MESSAGE_ID, True
        elif anchor == "oldest":
            anchor_id, anchored_left = 0, True
        elif anchor == "first_unread":
            anchor_id = next(
                (
                    m.id
                    for m in self.iter_messages()
                    if uid in m.user_flags and "read" not in m.user_flags[uid] and ok(m)
                ),
                LARGER_THAN_MAX_MESSAGE_ID,
            )
            anchored_right = anchor_id == LARGER_THAN_MAX_MESSAGE_ID
        else:
            anchor_id = int(anchor)
        idx = bisect.bisect_left(ids, anchor_id)
        before: list[Message] = []
        j = idx - 1
        while j >= 0 and len(before) < num_before:
            m = self.messages[ids[j]]
            if ok(m):
                before.append(m)
            j -= 1
        before.reverse()
        anchor_rows: list[Message] = []
        k = idx
        if k < len(ids) and ids[k] == anchor_id:
            m = self.messages[ids[k]]
            if include_anchor and ok(m):
                anchor_rows.append(m)
            k += 1
        after: list[Message] = []
        if not anchored_right:
            while k < len(ids) and len(after) < num_after:
                m = self.messages[ids[k]]
                if ok(m):
                    after.append(m)
                k += 1
        rows = before + anchor_rows + after
        return {
            "messages": [
                self.message_dict(
                    m,
                    viewer,
                    apply_markdown=apply_markdown,
                    client_gravatar=client_gravatar,
                    flags=self.flags_for(viewer, m),
                )
                for m in rows
            ],
            "found_anchor": bool(anchor_rows),
            "found_oldest": anchored_left or len(before) < num_before,
            "found_newest": anchored_right or len(after) < num_after,
            "history_limited": False,
            "anchor": anchor_id,
        }

    # ================================================================= event queues

    def register(
        self,
        user: User,
        *,
        event_types: list[str] | None,
        narrow: list[Term],
        apply_markdown: bool,
        client_gravatar: bool,
        all_public_streams: bool,
        include_subscribers: bool,
        fetch_event_types: list[str] | None,
        bulk_message_deletion: bool,
        lifespan: float,
        include_custom_profile_fields: bool = True,
    ) -> dict[str, Any]:
        self.gc_queues()
        queue = EventQueue(
            queue_id=str(uuid.uuid4()),
            user_id=user.user_id,
            event_types=frozenset(event_types) if event_types is not None else None,
            narrow=narrow,
            apply_markdown=apply_markdown,
            client_gravatar=client_gravatar,
            all_public_streams=all_public_streams,
            bulk_message_deletion=bulk_message_deletion,
            lifespan=lifespan,
            last_access=time.monotonic(),
        )
        self.queues[queue.queue_id] = queue
        self.user_queues.setdefault(user.user_id, []).append(queue)
        if all_public_streams:
            self.public_queues.append(queue)
        wanted = fetch_event_types if fetch_event_types is not None else event_types
        fetch = set(FETCHABLE) if wanted is None else set(wanted)
        result: dict[str, Any] = {
            "queue_id": queue.queue_id,
            "zulip_version": ZULIP_VERSION,
            "zulip_feature_level": ZULIP_FEATURE_LEVEL,
            "zulip_merge_base": ZULIP_MERGE_BASE,
        }
        if "message" in fetch:
            result["max_message_id"] = self.max_received.get(user.user_id, -1)
        if "realm_user" in fetch:
            result["realm_users"] = [
                self.user_dict(
                    u, user, client_gravatar=client_gravatar, profile=include_custom_profile_fields
                )
                for u in self.sorted_users()
                if u.is_active
            ]
            result["realm_non_active_users"] = [
                self.user_dict(
                    u, user, client_gravatar=client_gravatar, profile=include_custom_profile_fields
                )
                for u in self.sorted_users()
                if not u.is_active
            ]
            result["avatar_source"] = "G"
            result["avatar_url_medium"] = gravatar_url(user.email).replace("?d=", "?s=500&d=")
            result["avatar_url"] = gravatar_url(user.email)
            member = not user.is_guest
            result["can_create_streams"] = member
            result["can_create_public_streams"] = member
            result["can_create_private_streams"] = member
            result["can_create_web_public_streams"] = False
            result["can_subscribe_other_users"] = self.may_subscribe_others(user)
            result["can_invite_others_to_realm"] = user.is_admin
            result["is_admin"] = user.is_admin
            result["is_owner"] = user.is_owner
            result["is_billing_admin"] = False
            result["is_moderator"] = user.is_moderator
            result["is_guest"] = user.is_guest
            result["user_id"] = user.user_id
            result["email"] = user.api_email
            result["delivery_email"] = user.email
            result["full_name"] = user.full_name
            bot = self.realm.notification_bot
            cross = self.user_dict(bot, user, client_gravatar=client_gravatar, profile=False)
            cross["is_system_bot"] = True
            result["cross_realm_bots"] = [cross]
        if "subscription" in fetch:
            subs = self.subscriptions(user, include_subscribers=include_subscribers)
            result["subscriptions"] = subs
            result["unsubscribed"] = []
            result["never_subscribed"] = [
                self.stream_dict(s, include_subscribers=include_subscribers)
                for s in sorted(self.realm.streams.values(), key=lambda s: s.name.lower())
                if user.user_id not in s.subscribers and not s.invite_only
            ]
        if "realm" in fetch:
            result.update(self.realm_settings())
        if "realm_emoji" in fetch:
            result["realm_emoji"] = self.realm_emoji()
        if "realm_user_groups" in fetch:
            result["realm_user_groups"] = self.user_groups()
        if "custom_profile_fields" in fetch:
            result["custom_profile_fields"] = self.profile_fields()
            result["custom_profile_field_types"] = PROFILE_FIELD_TYPES
        if "stream" in fetch:
            result["streams"] = [
                self.stream_dict(s, include_subscribers=False)
                for s in sorted(self.realm.streams.values(), key=lambda s: s.stream_id)
                if self.stream_accessible(user, s)
            ]
        result["last_event_id"] = -1
        return result

    def queue_for(self, user: User, queue_id: str) -> EventQueue:
        queue = self.queues.get(queue_id)
        if queue is None or queue.dead:
            raise ApiError(
                f"Bad event queue ID: {queue_id}", "BAD_EVENT_QUEUE_ID", queue_id=queue_id
            )
        if queue.user_id != user.user_id:
            raise ApiError("You are not authorized to get events from this queue")
        return queue

    def get_events(
        self,
        user: User,
        queue_id: str,
        last_event_id: int | None,
        dont_block: bool,
        heartbeat_seconds: float,
    ) -> tuple[list[bytes], bool]:
        """Pending events, long-polling when there are none; ``True`` if it had to wait."""
        with self.cond:
            self.gc_queues()
            queue = self.queue_for(user, queue_id)
            if last_event_id is not None:
                queue.prune(last_event_id)
            queue.last_access = time.monotonic()
            if queue.events or dont_block:
                return [body for _eid, body in queue.events], False
            generation = self.generation
            deadline = time.monotonic() + heartbeat_seconds
            queue.waiting += 1
            try:
                while True:
                    if self.generation != generation or self.stopping:
                        raise QueueGone
                    if queue.dead:
                        raise ApiError(
                            f"Bad event queue ID: {queue_id}",
                            "BAD_EVENT_QUEUE_ID",
                            queue_id=queue_id,
                        )
                    if queue.events:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        queue.push(b'{"type":"heartbeat"')
                        break
                    self.cond.wait(remaining)
            finally:
                queue.waiting -= 1
                queue.last_access = time.monotonic()
            return [body for _eid, body in queue.events], True

    def delete_queue(self, user: User, queue_id: str) -> None:
        queue = self.queue_for(user, queue_id)
        self.drop_queue(queue)

    def drop_queue(self, queue: EventQueue) -> None:
        queue.dead = True
        self.queues.pop(queue.queue_id, None)
        queues = self.user_queues.get(queue.user_id)
        if queues and queue in queues:
            queues.remove(queue)
        if queue in self.public_queues:
            self.public_queues.remove(queue)
        self.notify()

    def gc_queues(self) -> None:
        now = time.monotonic()
        for queue in list(self.queues.values()):
            if queue.waiting == 0 and now - queue.last_access > queue.lifespan:
                self.drop_queue(queue)

    def drop_all_queues(self) -> None:
        for queue in list(self.queues.values()):
            self.drop_queue(queue)

    # ================================================================= users and streams

    def sorted_users(self) -> list[User]:
        """The realm's (non-system) users by id, as ``GET /users`` lists them."""
        return sorted(self.realm.users.values(), key=lambda u: u.user_id)

    def user_dict(
        self,
        target: User,
        viewer: User | None,
        *,
        client_gravatar: bool,
        profile: bool,
    ) -> dict[str, Any]:
        d: dict[str, Any] = {
            "email": target.api_email,
            "user_id": target.user_id,
            "avatar_version": 1,
            "is_admin": target.is_admin,
            "is_owner": target.is_owner,
            "is_guest": target.is_guest,
            "is_billing_admin": False,
            "role": target.role,
            "is_bot": target.is_bot,
            "full_name": target.full_name,
            "timezone": target.timezone,
            "is_active": target.is_active,
            "date_joined": target.date_joined,
            "delivery_email": target.email if self.can_see_email(viewer, target) else None,
            "avatar_url": self.avatar_url(viewer, target, client_gravatar),
        }
        if target.is_bot:
            d["bot_type"] = target.bot_type
            d["bot_owner_id"] = target.bot_owner_id
        elif profile:
            d["profile_data"] = self.profile_data(target)
        return d

    def profile_data(self, user: User) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for fid in sorted(user.profile_data):
            pfield = self.realm.profile_fields.get(fid)
            if pfield is None:
                continue
            value = user.profile_data[fid]
            entry: dict[str, Any] = {"value": value}
            if pfield.field_type in (1, 2):  # the text types are Markdown-rendered
                entry["rendered_value"] = self.renderer.render(value)
            out[str(fid)] = entry
        return out

    def profile_fields(self) -> list[dict[str, Any]]:
        return [
            {
                "id": f.field_id,
                "name": f.name,
                "type": f.field_type,
                "hint": f.hint,
                "field_data": f.field_data,
                "order": f.order,
                "display_in_profile_summary": f.display_in_profile_summary,
            }
            for f in sorted(self.realm.profile_fields.values(), key=lambda f: f.order)
        ]

    def realm_settings(self) -> dict[str, Any]:
        """The ``realm_*`` keys of ``POST /register`` that the emulator models."""
        return {
            "realm_name": self.realm.name,
            "realm_description": f"<p>{self.realm.description}</p>",
            "realm_private_message_policy": self.realm.private_message_policy,
            "realm_invite_to_stream_policy": self.realm.invite_to_stream_policy,
            "realm_waiting_period_threshold": 0,
        }

    def realm_emoji(self) -> dict[str, dict[str, Any]]:
        """``GET /realm/emoji``: every custom emoji by id, deactivated ones included."""
        return {
            str(e.emoji_id): {
                "id": str(e.emoji_id),
                "name": e.name,
                "source_url": e.source_url,
                "still_url": None,
                "deactivated": e.deactivated,
                "author_id": e.author_id,
            }
            for e in sorted(self.realm.custom_emoji.values(), key=lambda e: e.emoji_id)
        }

    def user_groups(self) -> list[dict[str, Any]]:
        nobody = self.realm.group_id("role:nobody")
        everyone = self.realm.group_id("role:everyone")
        return [
            {
                "id": g.group_id,
                "name": g.name,
                "description": g.description,
                "members": self.realm.group_members(g),
                "direct_subgroup_ids": list(g.subgroup_ids),
                "is_system_group": g.is_system,
                # Custom groups are created mentionable by everyone, as the recorded one is.
                "can_mention_group": nobody if g.is_system else everyone,
            }
            for g in self.realm.user_groups
        ]

    def stream_dict(self, stream: Stream, *, include_subscribers: bool) -> dict[str, Any]:
        d: dict[str, Any] = {
            "can_remove_subscribers_group": self.realm.group_id("role:administrators"),
            "date_created": stream.date_created,
            "description": stream.description,
            "first_message_id": stream.first_message_id,
            "history_public_to_subscribers": stream.history_public_to_subscribers,
            "invite_only": stream.invite_only,
            "is_announcement_only": stream.stream_post_policy == STREAM_POST_ADMINS,
            "is_web_public": False,
            "message_retention_days": None,
            "name": stream.name,
            "rendered_description": self.renderer.render(stream.description)
            if stream.description
            else "",
            "stream_id": stream.stream_id,
            "stream_post_policy": stream.stream_post_policy,
            "stream_weekly_traffic": None,
        }
        if include_subscribers:
            d["subscribers"] = sorted(stream.subscribers)
        return d

    def subscriptions(self, user: User, *, include_subscribers: bool) -> list[dict[str, Any]]:
        out = []
        for stream in sorted(self.realm.streams.values(), key=lambda s: s.name.lower()):
            if user.user_id not in stream.subscribers:
                continue
            d: dict[str, Any] = {
                "audible_notifications": None,
                "can_remove_subscribers_group": self.realm.group_id("role:administrators"),
                "color": stream.color,
                "date_created": stream.date_created,
                "description": stream.description,
                "desktop_notifications": None,
                "email_notifications": None,
                "first_message_id": stream.first_message_id,
                "history_public_to_subscribers": stream.history_public_to_subscribers,
                "in_home_view": True,
                "invite_only": stream.invite_only,
                "is_announcement_only": stream.stream_post_policy == STREAM_POST_ADMINS,
                "is_muted": False,
                "is_web_public": False,
                "message_retention_days": None,
                "name": stream.name,
                "pin_to_top": False,
                "push_notifications": None,
                "rendered_description": (
                    self.renderer.render(stream.description) if stream.description else ""
                ),
                "stream_id": stream.stream_id,
                "stream_post_policy": stream.stream_post_policy,
                "stream_weekly_traffic": None,
                "wildcard_mentions_notify": None,
            }
            if include_subscribers:
                d["subscribers"] = sorted(stream.subscribers)
            out.append(d)
        return out

    def subscribe(
        self, actor: User, names: list[tuple[str, str]], principals: list[User], invite_only: bool
    ) -> dict[str, Any]:
        """``POST /users/me/subscriptions``: create missing streams, subscribe principals."""
        if any(u is not actor for u in principals) and not self.may_subscribe_others(actor):
            raise ApiError("Insufficient permission")
        subscribed: dict[str, list[str]] = {}
        already: dict[str, list[str]] = {}
        for name, description in names:
            stream = self.realm.stream_by_name(name)
            if stream is None:
                if actor.is_guest:
                    raise ApiError("Insufficient permission")
                stream = self.realm.add_stream(name.strip(), description, invite_only)
                self._broadcast(
                    "stream",
                    [
                        u.user_id
                        for u in self.realm.users.values()
                        if u.is_active and not invite_only
                    ],
                    {
                        "type": "stream",
                        "op": "create",
                        "streams": [self.stream_dict(stream, include_subscribers=False)],
                    },
                )
            elif not self.stream_accessible(actor, stream):
                raise ApiError(f"Unable to access stream ({name}).")
            for user in principals:
                if user.user_id in stream.subscribers:
                    already.setdefault(user.api_email, []).append(stream.name)
                    continue
                stream.subscribers.add(user.user_id)
                subscribed.setdefault(user.api_email, []).append(stream.name)
                subs = [
                    s
                    for s in self.subscriptions(user, include_subscribers=True)
                    if s["stream_id"] == stream.stream_id
                ]
                self._broadcast(
                    "subscription",
                    [user.user_id],
                    {"type": "subscription", "op": "add", "subscriptions": subs},
                )
                others = [uid for uid in stream.subscribers if uid != user.user_id]
                self._broadcast(
                    "subscription",
                    others,
                    {
                        "type": "subscription",
                        "op": "peer_add",
                        "stream_ids": [stream.stream_id],
                        "user_ids": [user.user_id],
                    },
                )
        self.notify()
        return {"subscribed": subscribed, "already_subscribed": already}

    def unsubscribe(self, actor: User, names: list[str], principals: list[User]) -> dict[str, Any]:
        removed: list[str] = []
        not_removed: list[str] = []
        for name in names:
            stream = self.realm.stream_by_name(name)
            if stream is None:
                raise ApiError(
                    f"Stream(s) ({name}) do not exist", "STREAM_DOES_NOT_EXIST", stream=name
                )
            for user in principals:
                if user.user_id not in stream.subscribers:
                    not_removed.append(stream.name)
                    continue
                stream.subscribers.discard(user.user_id)
                removed.append(stream.name)
                self._broadcast(
                    "subscription",
                    [user.user_id],
                    {
                        "type": "subscription",
                        "op": "remove",
                        "subscriptions": [{"name": stream.name, "stream_id": stream.stream_id}],
                    },
                )
        self.notify()
        return {"removed": removed, "not_removed": not_removed}

    def topics(self, user: User, stream: Stream) -> list[dict[str, Any]]:
        latest: dict[str, tuple[int, str]] = {}
        for m in self.iter_messages():
            if m.stream is stream and self.can_access(user, m):
                latest[m.topic.lower()] = (m.id, m.topic)
        return [
            {"name": name, "max_id": mid}
            for mid, name in sorted(latest.values(), key=lambda t: -t[0])
        ]


PROFILE_FIELD_TYPES = {
    "SHORT_TEXT": {"id": 1, "name": "Short text"},
    "LONG_TEXT": {"id": 2, "name": "Long text"},
    "SELECT": {"id": 3, "name": "List of options"},
    "DATE": {"id": 4, "name": "Date picker"},
    "URL": {"id": 5, "name": "Link"},
    "USER": {"id": 6, "name": "Person picker"},
    "EXTERNAL_ACCOUNT": {"id": 7, "name": "External account"},
    "PRONOUNS": {"id": 8, "name": "Pronouns"},
}


def ordered_flags(flags: Iterable[str]) -> list[str]:
    """Flags in the server's order, plus the legacy ``wildcard_mentioned`` last."""
    present = set(flags)
    out = [f for f in FLAG_ORDER if f in present]
    if "stream_wildcard_mentioned" in present or "topic_wildcard_mentioned" in present:
        out.append("wildcard_mentioned")
    return out
