"""The organisation an emulated server serves: users, streams, subscriptions, profile fields.

A :class:`Realm` is plain data plus one re-entrant lock.  The HTTP server and the Python
API of :class:`~fakezulip.server.FakeZulip` share that lock, so tests may
keep adding users or streams while a bot is connected.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets
import threading
from dataclasses import dataclass, field

ROLE_OWNER = 100
ROLE_ADMINISTRATOR = 200
ROLE_MODERATOR = 300
ROLE_MEMBER = 400
ROLE_GUEST = 600

BOT_TYPE_GENERIC = 1
BOT_TYPE_INCOMING_WEBHOOK = 2
BOT_TYPE_OUTGOING_WEBHOOK = 3

# Custom profile field types, numbered as the API numbers them.
FIELD_SHORT_TEXT = 1
FIELD_LONG_TEXT = 2
FIELD_SELECT = 3
FIELD_DATE = 4
FIELD_URL = 5
FIELD_USER = 6
FIELD_EXTERNAL_ACCOUNT = 7
FIELD_PRONOUNS = 8

# Stream posting policies (``stream_post_policy``), numbered as the API numbers them.
STREAM_POST_EVERYONE = 1
STREAM_POST_ADMINS = 2
STREAM_POST_FULL_MEMBERS = 3
STREAM_POST_MODERATORS = 4

# The realm's direct message policy (``realm_private_message_policy`` in Zulip 8.0).
DM_POLICY_EVERYONE = 1
DM_POLICY_NOBODY = 2

# Who may subscribe other users (``realm_invite_to_stream_policy``): Zulip's common policies.
POLICY_MEMBERS = 1
POLICY_ADMINS = 2
POLICY_FULL_MEMBERS = 3
POLICY_MODERATORS = 4

_STREAM_COLORS = (
    "#76ce90",
    "#fae589",
    "#a6c7e5",
    "#e79ab5",
    "#bfd56f",
    "#f4ae55",
    "#b0a5fd",
    "#addfe5",
    "#f5ce6e",
    "#c2726a",
)

# Zulip 8.0's system groups, in the order (and with the descriptions) the server lists them.
# Each holds the users of one role directly and the group above it as a subgroup, so that
# "role:members" reaches moderators through "role:fullmembers".
_SYSTEM_GROUPS: tuple[tuple[str, str, int | None, str | None], ...] = (
    ("role:nobody", "Nobody", None, None),
    ("role:owners", "Owners of this organization", ROLE_OWNER, None),
    (
        "role:administrators",
        "Administrators of this organization, including owners",
        ROLE_ADMINISTRATOR,
        "role:owners",
    ),
    (
        "role:moderators",
        "Moderators of this organization, including administrators",
        ROLE_MODERATOR,
        "role:administrators",
    ),
    (
        "role:fullmembers",
        "Members of this organization, not including new accounts and guests",
        ROLE_MEMBER,
        "role:moderators",
    ),
    (
        "role:members",
        "Members of this organization, not including guests",
        ROLE_MEMBER,
        "role:fullmembers",
    ),
    (
        "role:everyone",
        "Everyone in this organization, including guests",
        ROLE_GUEST,
        "role:members",
    ),
    ("role:internet", "Everyone on the Internet", None, "role:everyone"),
)


def gravatar_url(email: str) -> str:
    """The avatar URL the real server computes for a user without an uploaded avatar."""
    digest = hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()
    return f"https://secure.gravatar.com/avatar/{digest}?d=identicon&version=1"


@dataclass(eq=False)
class User:
    """One account.  ``email`` is the address it logs in with (Zulip's "delivery email")."""

    user_id: int
    full_name: str
    email: str
    api_key: str
    timezone: str = ""
    role: int = ROLE_MEMBER
    is_bot: bool = False
    bot_type: int | None = None
    bot_owner_id: int | None = None
    is_active: bool = True
    profile_data: dict[int, str] = field(default_factory=dict)
    date_joined: str = ""
    recipient_id: int = 0
    api_email: str = ""
    realm_str: str = "zulip"
    is_system_bot: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role <= ROLE_ADMINISTRATOR

    @property
    def is_owner(self) -> bool:
        return self.role == ROLE_OWNER

    @property
    def is_guest(self) -> bool:
        return self.role == ROLE_GUEST

    @property
    def is_moderator(self) -> bool:
        return self.role == ROLE_MODERATOR

    def __repr__(self) -> str:
        return f"User({self.user_id}, {self.full_name!r}, {self.email!r})"


@dataclass(eq=False)
class Stream:
    """A stream ("channel" in newer Zulip).  ``subscribers`` holds user ids."""

    stream_id: int
    name: str
    description: str = ""
    invite_only: bool = False
    history_public_to_subscribers: bool = True
    recipient_id: int = 0
    date_created: int = 0
    color: str = "#76ce90"
    subscribers: set[int] = field(default_factory=set)
    first_message_id: int | None = None
    stream_post_policy: int = STREAM_POST_EVERYONE

    def __repr__(self) -> str:
        return f"Stream({self.stream_id}, {self.name!r})"


@dataclass
class CustomEmoji:
    """A realm's custom emoji (``GET /realm/emoji``); deactivated ones stay listed."""

    emoji_id: int
    name: str
    author_id: int | None
    deactivated: bool = False

    @property
    def source_url(self) -> str:
        return f"/user_avatars/2/emoji/images/{self.emoji_id}.png"


@dataclass
class ProfileField:
    """A custom profile field definition (``GET /realm/profile_fields``)."""

    field_id: int
    name: str
    field_type: int = FIELD_SHORT_TEXT
    hint: str = ""
    field_data: str = ""
    order: int = 0
    display_in_profile_summary: bool = False


@dataclass
class UserGroup:
    """A user group: a system group of one role (the real server always has these and refers to
    them by id), or a custom group that people can mention with ``@*name*``."""

    group_id: int
    name: str
    description: str
    # System groups: the role whose users are the direct members.
    role: int | None = None
    # Custom groups: the direct members.
    members: set[int] = field(default_factory=set)
    subgroup_ids: list[int] = field(default_factory=list)
    is_system: bool = True


class Realm:
    """Users, streams and profile fields of one organisation, guarded by :attr:`lock`."""

    def __init__(
        self,
        name: str = "Zulip Dev",
        string_id: str = "zulip",
        *,
        email_address_visibility: str = "everyone",
        fake_email_domain: str = "zulipdev.com",
        description: str = "A Zulip organization emulated for tests.",
        first_group_id: int = 1,
    ) -> None:
        if email_address_visibility not in ("everyone", "nobody"):
            raise ValueError("email_address_visibility must be 'everyone' or 'nobody'")
        self.name = name
        self.string_id = string_id
        self.description = description
        self.email_address_visibility = email_address_visibility
        self.fake_email_domain = fake_email_domain
        self.lock = threading.RLock()
        self.users: dict[int, User] = {}
        self.streams: dict[int, Stream] = {}
        self.profile_fields: dict[int, ProfileField] = {}
        self.huddle_recipients: dict[frozenset[int], int] = {}
        self.custom_emoji: dict[int, CustomEmoji] = {}
        # Realm permissions, with Zulip's defaults.  Every member counts as a full member here
        # (the emulator has no waiting period), so "full members" only excludes guests.
        self.private_message_policy = DM_POLICY_EVERYONE
        self.invite_to_stream_policy = POLICY_MEMBERS
        self.date_created = int(datetime.datetime.now(datetime.UTC).timestamp())
        self._next_user_id = 1
        self._next_stream_id = 1
        self._next_recipient_id = 1
        self._next_field_id = 1
        self._next_emoji_id = 1
        self.user_groups: list[UserGroup] = []
        for n, d, role, sub in _SYSTEM_GROUPS:
            subgroups = [self.group_id(sub)] if sub is not None else []
            self.user_groups.append(
                UserGroup(
                    first_group_id + len(self.user_groups), n, d, role=role, subgroup_ids=subgroups
                )
            )
        # Cross-realm system bot that posts "topic moved" notices; never listed in /users.
        self.notification_bot = self._new_user(
            full_name="Notification Bot",
            email="notification-bot@zulip.com",
            timezone="",
            role=ROLE_MEMBER,
            is_bot=True,
            bot_type=BOT_TYPE_GENERIC,
            bot_owner_id=None,
            is_active=True,
            profile_data=None,
            user_id=None,
            api_key=None,
        )
        self.notification_bot.realm_str = "zulipinternal"
        self.notification_bot.is_system_bot = True
        self.users.pop(self.notification_bot.user_id)

    # ------------------------------------------------------------------ construction

    def _recipient(self) -> int:
        rid = self._next_recipient_id
        self._next_recipient_id += 1
        return rid

    def _new_user(
        self,
        *,
        full_name: str,
        email: str,
        timezone: str | None,
        role: int,
        is_bot: bool,
        bot_type: int | None,
        bot_owner_id: int | None,
        is_active: bool,
        profile_data: dict[int, str] | None,
        user_id: int | None,
        api_key: str | None,
    ) -> User:
        with self.lock:
            if user_id is None:
                user_id = self._next_user_id
            elif user_id in self.users:
                raise ValueError(f"user id {user_id} is taken")
            self._next_user_id = max(self._next_user_id, user_id + 1)
            if timezone is None:
                timezone = "" if is_bot else "UTC"
            user = User(
                user_id=user_id,
                full_name=full_name,
                email=email,
                api_key=api_key or secrets.token_urlsafe(24)[:32],
                timezone=timezone,
                role=role,
                is_bot=is_bot,
                bot_type=(bot_type or BOT_TYPE_GENERIC) if is_bot else None,
                bot_owner_id=bot_owner_id if is_bot else None,
                is_active=is_active,
                profile_data=dict(profile_data or {}),
                date_joined=datetime.datetime.now(datetime.UTC).isoformat(),
                recipient_id=self._recipient(),
            )
            hidden = self.email_address_visibility != "everyone" and not is_bot
            user.api_email = f"user{user_id}@{self.fake_email_domain}" if hidden else email
            self.users[user_id] = user
            return user

    def add_user(
        self,
        full_name: str,
        email: str,
        timezone: str | None = None,
        role: int = ROLE_MEMBER,
        is_bot: bool = False,
        is_active: bool = True,
        profile_data: dict[int, str] | None = None,
        *,
        bot_type: int | None = None,
        bot_owner: User | int | None = None,
        user_id: int | None = None,
        api_key: str | None = None,
    ) -> User:
        """Create an account; the timezone defaults to "UTC" for humans and "" for bots."""
        with self.lock:
            if self.user_by_email(email) is not None:
                raise ValueError(f"email {email!r} is taken")
            owner_id = bot_owner.user_id if isinstance(bot_owner, User) else bot_owner
            return self._new_user(
                full_name=full_name,
                email=email,
                timezone=timezone,
                role=role,
                is_bot=is_bot,
                bot_type=bot_type,
                bot_owner_id=owner_id,
                is_active=is_active,
                profile_data=profile_data,
                user_id=user_id,
                api_key=api_key,
            )

    def add_stream(
        self,
        name: str,
        description: str = "",
        invite_only: bool = False,
        *,
        stream_id: int | None = None,
    ) -> Stream:
        """Create a stream nobody is subscribed to yet."""
        with self.lock:
            if self.stream_by_name(name) is not None:
                raise ValueError(f"stream {name!r} exists")
            if stream_id is None:
                stream_id = self._next_stream_id
            self._next_stream_id = max(self._next_stream_id, stream_id + 1)
            stream = Stream(
                stream_id=stream_id,
                name=name,
                description=description,
                invite_only=invite_only,
                recipient_id=self._recipient(),
                date_created=int(datetime.datetime.now(datetime.UTC).timestamp()),
                color=_STREAM_COLORS[(stream_id - 1) % len(_STREAM_COLORS)],
            )
            self.streams[stream_id] = stream
            return stream

    def subscribe(self, user: User | int, stream_name: str) -> None:
        """Subscribe a user to an existing stream (idempotent)."""
        with self.lock:
            stream = self._stream_or_raise(stream_name)
            stream.subscribers.add(self._user_or_raise(user).user_id)

    def unsubscribe(self, user: User | int, stream_name: str) -> None:
        with self.lock:
            stream = self._stream_or_raise(stream_name)
            stream.subscribers.discard(self._user_or_raise(user).user_id)

    def add_profile_field(
        self,
        name: str,
        field_type: int = FIELD_SHORT_TEXT,
        hint: str = "",
        field_data: str = "",
        *,
        field_id: int | None = None,
    ) -> int:
        """Define a custom profile field; returns its id (the key in ``profile_data``)."""
        with self.lock:
            if field_id is not None and field_id in self.profile_fields:
                raise ValueError(f"profile field id {field_id} is taken")
            fid = self._next_field_id if field_id is None else field_id
            self._next_field_id = max(self._next_field_id, fid + 1)
            self.profile_fields[fid] = ProfileField(
                field_id=fid,
                name=name,
                field_type=field_type,
                hint=hint,
                field_data=field_data,
                order=len(self.profile_fields) + 1,
            )
            return fid

    def set_profile_value(self, user: User | int, field_id: int, value: str | None) -> None:
        """Set (or with ``None`` clear) one custom profile field value of a user."""
        with self.lock:
            if field_id not in self.profile_fields:
                raise KeyError(field_id)
            target = self._user_or_raise(user)
            if value is None:
                target.profile_data.pop(field_id, None)
            else:
                target.profile_data[field_id] = value

    def add_custom_emoji(self, name: str, author: User | int | None = None) -> int:
        """Add a custom emoji (an image in Zulip); returns its id."""
        with self.lock:
            key = name.strip().lower().replace(" ", "_")
            if self.custom_emoji_by_name(key) is not None:
                raise ValueError(f"custom emoji {key!r} exists")
            emoji_id = self._next_emoji_id
            self._next_emoji_id += 1
            author_id = author.user_id if isinstance(author, User) else author
            self.custom_emoji[emoji_id] = CustomEmoji(emoji_id, key, author_id)
            return emoji_id

    def custom_emoji_by_name(self, name: str, *, active_only: bool = True) -> CustomEmoji | None:
        with self.lock:
            for found in self.custom_emoji.values():
                if found.name == name and not (active_only and found.deactivated):
                    return found
        return None

    def deactivate_user(self, user: User | int) -> None:
        with self.lock:
            self._user_or_raise(user).is_active = False

    # ------------------------------------------------------------------ lookups

    def user_by_email(self, email: str) -> User | None:
        """Find by login email or by the API-visible email, case-insensitively."""
        key = email.strip().lower()
        with self.lock:
            for user in self.users.values():
                if user.email.lower() == key or user.api_email.lower() == key:
                    return user
        return None

    def user_by_api_email(self, email: str) -> User | None:
        """Find by the email other users see; hidden real addresses do not match."""
        key = email.strip().lower()
        with self.lock:
            for user in self.users.values():
                if user.api_email.lower() == key:
                    return user
            if self.notification_bot.api_email.lower() == key:
                return self.notification_bot
        return None

    def user_by_name(self, full_name: str) -> User | None:
        with self.lock:
            for user in self.users.values():
                if user.full_name == full_name:
                    return user
            key = full_name.lower()
            for user in self.users.values():
                if user.full_name.lower() == key:
                    return user
        return None

    def user_by_id(self, user_id: int) -> User | None:
        with self.lock:
            if user_id == self.notification_bot.user_id:
                return self.notification_bot
            return self.users.get(user_id)

    def stream_by_name(self, name: str) -> Stream | None:
        key = name.strip().lower()
        with self.lock:
            for stream in self.streams.values():
                if stream.name.lower() == key:
                    return stream
        return None

    def stream_by_id(self, stream_id: int) -> Stream | None:
        with self.lock:
            return self.streams.get(stream_id)

    def _stream_or_raise(self, name: str) -> Stream:
        stream = self.stream_by_name(name)
        if stream is None:
            raise KeyError(f"no stream {name!r}")
        return stream

    def _user_or_raise(self, user: User | int) -> User:
        uid = user.user_id if isinstance(user, User) else user
        found = self.users.get(uid)
        if found is None:
            raise KeyError(f"no user {uid}")
        return found

    def huddle_recipient_id(self, user_ids: frozenset[int]) -> int:
        """The recipient id of a group DM conversation, allocated on first use."""
        with self.lock:
            rid = self.huddle_recipients.get(user_ids)
            if rid is None:
                rid = self._recipient()
                self.huddle_recipients[user_ids] = rid
            return rid

    def email_visible(self, user: User) -> bool:
        """Whether other users may see this user's real email (decides avatar/delivery_email)."""
        return user.is_bot or self.email_address_visibility == "everyone"

    def group_members(self, group: UserGroup) -> list[int]:
        """The direct members, as ``GET /user_groups`` lists them."""
        with self.lock:
            if group.is_system:
                if group.role is None:
                    return []
                return sorted(
                    u.user_id for u in self.users.values() if u.is_active and u.role == group.role
                )
            return sorted(group.members)

    def group_id(self, name: str) -> int:
        for group in self.user_groups:
            if group.name == name:
                return group.group_id
        raise KeyError(name)

    def user_group_by_name(self, name: str) -> UserGroup | None:
        """A group as a mention names it: case-insensitively, custom groups only (Zulip 8.0
        does not let anyone mention a system group)."""
        with self.lock:
            key = name.lower()
            return next(
                (g for g in self.user_groups if not g.is_system and g.name.lower() == key), None
            )

    def all_group_members(self, group: UserGroup) -> set[int]:
        """Everyone a mention of the group reaches: its members and its subgroups' members."""
        with self.lock:
            by_id = {g.group_id: g for g in self.user_groups}
            seen: set[int] = set()
            members: set[int] = set()
            todo = [group]
            while todo:
                g = todo.pop()
                if g.group_id in seen:
                    continue
                seen.add(g.group_id)
                members.update(self.group_members(g))
                todo += [by_id[i] for i in g.subgroup_ids if i in by_id]
            return members

    def add_user_group(
        self,
        name: str,
        members: list[User | int] | tuple[User | int, ...] = (),
        description: str = "",
        *,
        group_id: int | None = None,
    ) -> UserGroup:
        """Create a custom user group (mentionable as ``@*name*``) with these members."""
        with self.lock:
            if any(g.name.lower() == name.lower() for g in self.user_groups):
                raise ValueError(f"user group {name!r} exists")
            if group_id is None:
                group_id = max((g.group_id for g in self.user_groups), default=0) + 1
            elif any(g.group_id == group_id for g in self.user_groups):
                raise ValueError(f"user group id {group_id} is taken")
            group = UserGroup(
                group_id,
                name,
                description,
                members={self._user_or_raise(m).user_id for m in members},
                is_system=False,
            )
            self.user_groups.append(group)
            self.user_groups.sort(key=lambda g: g.group_id)
            return group

    # ------------------------------------------------------------------ fixtures

    @classmethod
    def demo(cls) -> Realm:
        """The small organisation used by the sandbox and most tests."""
        realm = cls(name="Goals Demo")
        bot = realm.add_user(
            "Goals Bot", "goals-bot@example.com", is_bot=True, bot_type=BOT_TYPE_GENERIC
        )
        ada = realm.add_user("Ada Admin", "ada@example.com", role=ROLE_ADMINISTRATOR)
        bot.bot_owner_id = ada.user_id
        realm.add_user("Ben Owner", "ben@example.com", timezone="Europe/Berlin")
        realm.add_user("Chloé Owner", "chloe@example.com", timezone="America/New_York")
        realm.add_user("Dev Owner", "dev@example.com", timezone="Asia/Tokyo")
        realm.add_user("Eve Lead", "eve@example.com", timezone="UTC")
        realm.add_user_group(
            "goals-team",
            [u for u in realm.users.values() if not u.is_bot],
            "Everyone who runs or owns a goal",
        )
        realm.add_stream("project-goals", "Progress on the program's goals")
        realm.add_stream("general", "Everything else")
        for user in realm.users.values():
            realm.subscribe(user, "general")
            if user.full_name != "Dev Owner":
                realm.subscribe(user, "project-goals")
        return realm
