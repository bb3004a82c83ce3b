"""``zulip-goals-bot doctor``: is the bot set up to work on this Zulip, and if not, what to do.

The checks are pure functions from plain facts (``Facts``) to ``Check`` values, one line each with
✓ / ! / ✗ and, for every problem, the exact fix.  ``gather`` is the thin shell that reads the facts
from the files, the database and Zulip (through ``ZulipIO``: reads, one Markdown render and one
event queue that it deletes at once), and never sends or changes anything.  ``apply_fixes`` is the
only part that writes, and only with ``--fix``: it subscribes the bot, and with
``subscribe_owners = true`` the owners who are not subscribed, to the goals stream.

``run`` performs the same checks at start-up (``startup_checks``), logs one line per problem and
stores the problems an admin must act on, which the weekly digest lists under "Needs attention".
"""

from __future__ import annotations

import enum
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .markdown import neutralize
from .program import Program
from .queries import GoalView, OwnerContact, PersonView
from .schedule import DueState, Slot, period_at

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from .clock import Clock
    from .config import Config
    from .db import Database
    from .zulip_io import ZulipIO

log = logging.getLogger("zulip_goals_bot")

# The bot narrows with `dm` and `is:dm` (Zulip 7.0, feature level 177); older servers refuse them.
MIN_FEATURE_LEVEL = 177
MIN_VERSION = "7.0"
# Prompts and digests are computed from this machine's clock: a server more than this far off
# shows times that disagree with what the bot does.
MAX_CLOCK_SKEW = timedelta(minutes=1)
# A doctor must answer quickly: each request is tried this often, not the bot's eight times.
ATTEMPTS = 2
# Long lists (owners, admins) are cut after this many names on one line.
MAX_NAMES = 8
# BotState key of the problems found at the last start, read by the digest.
SETUP_PROBLEMS_KEY = "setup_problems"
# Checks whose problems the digest already lists in its own sections.
COVERED_BY_DIGEST = frozenset({"goals.owners", "owners.mapped"})
# Checks that report, rather than ask an admin to act.
INFORMATIONAL = frozenset({"owners.subscribed", "schedule"})

# Zulip's numbers (API docs, "roles and permissions"), as plain data for the pure checks.
ROLE_OWNER, ROLE_ADMIN, ROLE_MODERATOR, ROLE_MEMBER, ROLE_GUEST = 100, 200, 300, 400, 600
BOT_TYPE_GENERIC = 1
BOT_TYPES = {1: "generic bot", 2: "incoming webhook bot", 3: "outgoing webhook bot",
             4: "embedded bot"}  # fmt: skip
POST_EVERYONE, POST_ADMINS, POST_FULL_MEMBERS, POST_MODERATORS = 1, 2, 3, 4
DM_NOBODY = 2
INVITE_MEMBERS, INVITE_ADMINS, INVITE_FULL_MEMBERS, INVITE_MODERATORS = 1, 2, 3, 4

# Where things are in Zulip's settings (Zulip 8.0 wording).
BOTS_SETTINGS = "Settings > Personal settings > Bots"
STREAM_SETTINGS = "Stream settings > #{stream}"
PERMISSIONS = "Settings > Organization settings > Organization permissions"


class Status(enum.Enum):
    """How a check came out; the order is the severity."""

    OK = 0
    WARN = 1
    ERROR = 2

    @property
    def mark(self) -> str:
        return {Status.OK: "✓", Status.WARN: "!", Status.ERROR: "✗"}[self]

    @property
    def label(self) -> str:
        return {Status.OK: "ok", Status.WARN: "warning", Status.ERROR: "error"}[self]


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked, how it came out, and how to fix a problem."""

    key: str  # stable name, e.g. "stream.subscribed" (JSON output, stored problems)
    status: Status
    summary: str
    fix: str = ""
    details: tuple[str, ...] = ()

    @property
    def admin_must_act(self) -> bool:
        """A problem someone with admin rights must fix, and the digest does not list already."""
        return (
            self.status is not Status.OK
            and self.key not in COVERED_BY_DIGEST
            and self.key not in INFORMATIONAL
        )

    def render(self) -> str:
        lines = [f"{self.status.mark} {self.summary}"]
        lines += [f"    {d}" for d in self.details]
        if self.fix and self.status is not Status.OK:
            lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.key,
            "status": self.status.label,
            "mark": self.status.mark,
            "summary": self.summary,
            "fix": self.fix if self.status is not Status.OK else "",
            "details": list(self.details),
        }


def ok(key: str, summary: str, *details: str) -> Check:
    return Check(key, Status.OK, summary, details=tuple(details))


def warn(key: str, summary: str, fix: str, *details: str) -> Check:
    return Check(key, Status.WARN, summary, fix, tuple(details))


def error(key: str, summary: str, fix: str, *details: str) -> Check:
    return Check(key, Status.ERROR, summary, fix, tuple(details))


# -- facts (plain data) --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileFacts:
    """bot.conf and the zuliprc as found on disk."""

    config_path: Path
    config_error: str | None = None
    zuliprc_path: Path | None = None
    zuliprc_error: str | None = None
    zuliprc_mode: int | None = None  # permission bits; None when the credentials come from env
    credentials_from_env: bool = False


@dataclass(frozen=True, slots=True)
class ZulipFacts:
    """What the server said; ``unread`` names what could not be read (and why)."""

    site: str
    error: str | None = None  # the server could not be reached or refused the credentials
    refused: bool = False  # the credentials were refused (rather than the server unreachable)
    me: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""
    feature_level: int | None = None
    server_time: datetime | None = None
    members: tuple[Mapping[str, Any], ...] = ()
    streams: tuple[Mapping[str, Any], ...] = ()  # every stream the bot can see
    subscribed: frozenset[int] = frozenset()  # stream ids the bot is subscribed to
    stream_members: Mapping[int, frozenset[int]] = field(default_factory=dict)
    realm: Mapping[str, Any] = field(default_factory=dict)  # realm_* settings
    custom_emoji: tuple[Mapping[str, Any], ...] = ()
    ack_renders: bool | None = None  # ":ack_emoji:" renders as an emoji on this server
    profile_fields: tuple[Mapping[str, Any], ...] = ()
    unread: Mapping[str, str] = field(default_factory=dict)

    def stream(self, name: str) -> Mapping[str, Any] | None:
        key = name.casefold()
        return next((s for s in self.streams if str(s.get("name", "")).casefold() == key), None)

    def member(self, user_id: int | None) -> Mapping[str, Any] | None:
        return next((m for m in self.members if m.get("user_id") == user_id), None)


@dataclass(frozen=True, slots=True)
class DbFacts:
    """The database: reachable, at which migration, and the goals it tracks."""

    where: str  # the URL without its password
    error: str | None = None
    missing_file: bool = False  # SQLite file not created yet (doctor does not create it)
    current: str | None = None
    head: str | None = None
    goals: tuple[GoalView, ...] = ()
    goals_error: str | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    files: FileFacts
    now: datetime
    config: Config | None = None
    zulip: ZulipFacts | None = None
    db: DbFacts | None = None


# -- checks (pure) -------------------------------------------------------------------------------


def _names(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(items[:MAX_NAMES])
    return shown + (f" and {len(items) - MAX_NAMES} more" if len(items) > MAX_NAMES else "")


def check_files(files: FileFacts) -> list[Check]:
    if files.config_error is not None:
        return [
            error(
                "config",
                f"bot.conf: {files.config_error}",
                f"edit {files.config_path} (bot.conf.example lists every key with its default)",
            )
        ]
    out = [ok("config", f"bot.conf: {files.config_path} is valid")]
    rc = files.zuliprc_path
    if files.zuliprc_error is not None:
        out.append(
            error(
                "zuliprc",
                f"zuliprc: {files.zuliprc_error}",
                f"download the bot's zuliprc ({BOTS_SETTINGS} > the bot's download icon) to {rc} "
                "([goals] zuliprc in bot.conf names it)",
            )
        )
    elif files.credentials_from_env:
        out.append(ok("zuliprc", "zuliprc: the credentials come from ZULIP_EMAIL/ZULIP_API_KEY"))
    elif files.zuliprc_mode is not None and files.zuliprc_mode & 0o077:
        out.append(
            warn(
                "zuliprc",
                f"zuliprc: {rc} is readable by other users, and it holds the bot's API key",
                f"chmod 600 {rc}",
            )
        )
    else:
        out.append(ok("zuliprc", f"zuliprc: {rc} is readable only by its owner"))
    return out


def check_account(z: ZulipFacts) -> list[Check]:
    if z.error is not None:
        if z.refused:
            fix = (
                f"download a new zuliprc for the bot ({BOTS_SETTINGS} > the bot's download "
                "icon); check its email and key"
            )
        else:
            fix = "check site= in the zuliprc, and that this machine can reach the server"
        return [error("credentials", f"Zulip at {z.site}: {z.error}", fix)]
    me = z.me
    who = f"{me.get('full_name', '?')} ({me.get('email', '?')})"
    if not me.get("is_bot"):
        return [
            warn(
                "credentials",
                f"Zulip at {z.site}: signed in as {who}, a person's account, not a bot: its "
                "messages will come from that person, and the organization's DM policy applies",
                f"create a Generic bot ({BOTS_SETTINGS} > Add a new bot) and use its zuliprc",
            )
        ]
    bot_type = me.get("bot_type")
    kind = BOT_TYPES.get(int(bot_type or 0), f"bot of type {bot_type}")
    if bot_type != BOT_TYPE_GENERIC:
        return [
            error(
                "credentials",
                f"Zulip at {z.site}: {who} is an {kind}, which cannot read messages",
                f"create a Generic bot ({BOTS_SETTINGS} > Add a new bot) and use its zuliprc",
            )
        ]
    owner = z.member(me.get("bot_owner_id"))
    owned = f", owned by {owner.get('full_name')}" if owner is not None else ""
    return [ok("credentials", f"Zulip at {z.site}: signed in as {who}, a {kind}{owned}")]


def check_server(z: ZulipFacts) -> Check:
    level = z.feature_level
    if level is None:
        return warn(
            "server",
            f"Server: could not read its version ({z.unread.get('server', 'no answer')})",
            "run `zulip-goals-bot doctor` again; the bot needs Zulip "
            f"{MIN_VERSION} (feature level {MIN_FEATURE_LEVEL}) or newer",
        )
    shown = f"Zulip {z.version} (feature level {level})"
    if level < MIN_FEATURE_LEVEL:
        return error(
            "server",
            f"Server: {shown} is too old; the bot needs Zulip {MIN_VERSION} "
            f"(feature level {MIN_FEATURE_LEVEL}) or newer",
            "upgrade the Zulip server",
        )
    return ok("server", f"Server: {shown}")


def _role(member: Mapping[str, Any] | None) -> int:
    return int(member.get("role", ROLE_MEMBER)) if member is not None else ROLE_MEMBER


def post_refusal(policy: int, role: int) -> str | None:
    """Why a stream's posting policy refuses someone of this role, or None (Zulip's rule)."""
    if role <= ROLE_ADMIN or policy == POST_EVERYONE:
        return None
    if policy == POST_ADMINS:
        return "only administrators may post there"
    if policy == POST_MODERATORS and role != ROLE_MODERATOR:
        return "only administrators and moderators may post there"
    if role == ROLE_GUEST:
        return "guests may not post there"
    return None  # full members only: a bot counts as one once its owner does


def bot_may_post(policy: int, z: ZulipFacts) -> str | None:
    """A bot may post where it may, or else where its owner may; the refusal otherwise."""
    refusal = post_refusal(policy, _role(z.me))
    owner = z.member(z.me.get("bot_owner_id"))
    if refusal is not None and z.me.get("is_bot") and owner is not None:
        if post_refusal(policy, _role(owner)) is None:
            return None
        refusal += f", and the bot's owner {owner.get('full_name')} may not either"
    return refusal


def may_subscribe_others(policy: int, role: int) -> bool:
    """``invite_to_stream_policy`` for someone of this role (Zulip's ``has_permission``)."""
    if role <= ROLE_ADMIN:
        return True
    if policy == INVITE_ADMINS:
        return False
    if role == ROLE_MODERATOR:
        return True
    if policy == INVITE_MODERATORS:
        return False
    return role != ROLE_GUEST


def check_stream(z: ZulipFacts, name: str, *, goals: bool) -> list[Check]:
    """The goals stream (exists, bot subscribed, bot may post) or the digest stream (no need to
    be subscribed to post in a public stream)."""
    prefix = "stream" if goals else "digest.stream"
    what = "goals stream" if goals else "digest stream"
    where = STREAM_SETTINGS.format(stream=name)
    stream = z.stream(name)
    if stream is None:
        return [
            error(
                f"{prefix}.exists",
                f"Stream #{name} ({what}): not found (it does not exist, or it is private and "
                "the bot is not in it)",
                f"create #{name} in Zulip (Stream settings > Create stream) or have a subscriber "
                f"add the bot to it; or set the stream in bot.conf to the one you use",
            )
        ]
    out: list[Check] = []
    subscribed = int(stream["stream_id"]) in z.subscribed
    if goals and not subscribed:
        private = bool(stream.get("invite_only"))
        fix = (
            f"ask a subscriber of the private stream to add the bot ({where} > Subscribers)"
            if private
            else f"`zulip-goals-bot doctor --fix`, or in Zulip: {where} > Subscribers > "
            f"add {z.me.get('full_name', 'the bot')}"
        )
        out.append(
            error(
                f"{prefix}.subscribed",
                f"Stream #{name}: the bot is not subscribed, so it does not see owners' "
                "replies there",
                fix,
            )
        )
    elif goals:
        out.append(ok(f"{prefix}.subscribed", f"Stream #{name}: the bot is subscribed"))
    policy = int(stream.get("stream_post_policy", POST_EVERYONE))
    refusal = bot_may_post(policy, z)
    if refusal is not None:
        out.append(
            error(
                f"{prefix}.post",
                f"Stream #{name}: the bot may not post ({refusal})",
                f"{where} > General > Stream permissions > 'Who can post to the stream?': "
                "All users (or make the bot's owner an administrator)",
            )
        )
    else:
        out.append(ok(f"{prefix}.post", f"Stream #{name}: the bot may post"))
    return out


def check_dms(z: ZulipFacts) -> Check:
    policy = z.realm.get("realm_private_message_policy")
    if z.me.get("is_bot"):
        # Zulip exempts bots: they may send DMs, and people may write to one bot, whatever the
        # organization's policy.
        if policy == DM_NOBODY:
            return ok(
                "dm",
                "Direct messages: the organization allows them to nobody, but Zulip exempts "
                "bots: the bot may DM owners and they may answer it",
            )
        return ok("dm", "Direct messages: the bot may send them")
    if policy == DM_NOBODY:
        return error(
            "dm",
            "Direct messages: the organization allows them to nobody, and this account is not "
            "a bot: prompts to owners outside the stream and answers by DM will fail",
            f"use a bot's zuliprc ({BOTS_SETTINGS}); or {PERMISSIONS} > 'Who can use direct "
            "messages': Admins, moderators and members",
        )
    if policy is None:
        return warn(
            "dm",
            f"Direct messages: could not read the organization's policy "
            f"({z.unread.get('realm', 'not in the answer')})",
            f"use a bot's zuliprc ({BOTS_SETTINGS}): Zulip exempts bots from that policy",
        )
    return ok("dm", "Direct messages: allowed in this organization")


def check_emoji(z: ZulipFacts, name: str) -> Check:
    custom = {str(e.get("name")): e for e in z.custom_emoji}
    fix = (
        f"add a custom emoji :{name}: (Settings > Organization settings > Custom emoji), "
        "or set ack_emoji in bot.conf to one that exists (the default `check` always does)"
    )
    found = custom.get(name)
    if found is not None and found.get("deactivated"):
        return error("emoji", f"Emoji :{name}: (ack_emoji): the custom emoji was deactivated", fix)
    if z.ack_renders is None and "emoji" not in z.unread:
        return ok(
            "emoji",
            f"Emoji :{name}: (ack_emoji): not a custom emoji here; `zulip-goals-bot doctor` "
            "checks Zulip's built-in names",
        )
    if z.ack_renders is None:
        return warn(
            "emoji",
            f"Emoji :{name}: (ack_emoji): could not check ({z.unread.get('emoji', 'no answer')})",
            fix,
        )
    if not z.ack_renders:
        return error(
            "emoji",
            f"Emoji :{name}: (ack_emoji): not on this server, so saved updates get no reaction",
            fix,
        )
    kind = "a custom emoji" if found is not None else "a built-in emoji"
    return ok("emoji", f"Emoji :{name}: (ack_emoji): {kind} of this server")


def check_profile_field(z: ZulipFacts, name: str) -> Check:
    if not name:
        return ok("profile_field", "GitHub profile field: not used (github_profile_field is empty)")
    names = {str(f.get("name", "")).casefold() for f in z.profile_fields}
    if name.casefold() in names:
        return ok("profile_field", f"GitHub profile field: '{name}' exists")
    if "profile_fields" in z.unread:
        return warn(
            "profile_field",
            f"GitHub profile field: could not read the fields ({z.unread['profile_fields']})",
            "run `zulip-goals-bot doctor` again",
        )
    return warn(
        "profile_field",
        f"GitHub profile field: no custom profile field named '{name}', so owners are mapped "
        "only by the people file and `I am @handle`",
        "add it (Settings > Organization settings > Custom profile fields > Add a new "
        "profile field: External account, GitHub), or set github_profile_field = to turn it off",
    )


def check_admins(z: ZulipFacts, admins: Iterable[str]) -> Check:
    wanted = sorted(admins)
    if not wanted:
        realm_admins = [m for m in z.members if _role(m) <= ROLE_ADMIN and not m.get("is_bot")]
        return ok(
            "admins",
            f"Admins: none in bot.conf; the organization's {len(realm_admins)} "
            "owners and administrators are",
        )
    by_email: dict[str, Mapping[str, Any]] = {}
    for m in z.members:
        for key in ("delivery_email", "email"):
            if m.get(key):
                by_email[str(m[key]).lower()] = m
    missing = [e for e in wanted if e not in by_email]
    inactive = [e for e in wanted if e in by_email and not by_email[e].get("is_active", True)]
    if missing or inactive:
        parts = []
        if missing:
            parts.append(f"no Zulip user has the email {_names(missing)}")
        if inactive:
            parts.append(f"deactivated: {_names(inactive)}")
        return warn(
            "admins",
            "Admins (bot.conf): " + "; ".join(parts),
            "edit admins = in bot.conf: the emails people log in to Zulip with",
        )
    return ok("admins", f"Admins (bot.conf): {len(wanted)} resolve to active users")


_NOT_PROMPTED = frozenset(
    {DueState.PAUSED, DueState.COMPLETED, DueState.RETIRED, DueState.INACTIVE}
)


@dataclass(frozen=True, slots=True)
class _Owner:
    person: PersonView
    goals: list[str]


def prompted_goals(
    goals: Sequence[GoalView], now: datetime, config: Config
) -> list[tuple[GoalView, DueState]]:
    """The goals the schedule asks about, with their due state (``Program.state``)."""
    program = Program.from_config(config)
    return [(g, state) for g in goals if (state := program.state(g, now)) not in _NOT_PROMPTED]


def _owners(rows: Sequence[tuple[GoalView, DueState]]) -> dict[int, _Owner]:
    owners: dict[int, _Owner] = {}
    for g, _state in rows:
        for p in g.prompted_owners():
            owners.setdefault(p.person_id, _Owner(p, [])).goals.append(g.name)
    return owners


def check_goals(facts: Facts, config: Config) -> list[Check]:
    db = facts.db
    if db is None or db.error is not None or db.missing_file or db.goals_error is not None:
        return []
    rows = prompted_goals(db.goals, facts.now, config)
    if not db.goals:
        return [
            warn(
                "goals",
                "Goals: none imported yet",
                "zulip-goals-bot goals import path/to/goals/2025h1/",
            )
        ]
    due = sum(1 for _g, s in rows if s.is_waiting)
    out = [ok("goals", f"Goals: {len(db.goals)} tracked, {len(rows)} prompted, {due} due now")]
    ownerless = [g.name for g, _s in rows if not g.owners]
    if ownerless:
        out.append(
            warn(
                "goals.owners",
                f"Goals without an owner (never prompted): {_names(ownerless)}",
                "name a Point of contact in the goal file and import again, or DM the bot "
                "`owners set <goal> @github-handle`",
            )
        )
    else:
        out.append(ok("goals.owners", "Goals: every prompted goal has an owner"))
    out += _check_owners(rows, facts.zulip, config, facts.now)
    return out


def _check_owners(
    rows: Sequence[tuple[GoalView, DueState]], z: ZulipFacts | None, config: Config, now: datetime
) -> list[Check]:
    owners = _owners(rows)
    today = now.astimezone(config.timezone).date()
    active = {int(m["user_id"]) for m in (z.members if z else ()) if m.get("is_active", True)}
    unmapped = sorted(
        (o for o in owners.values() if o.person.contact(today) is OwnerContact.MISSING_ZULIP_ID),
        key=lambda o: o.person.display.casefold(),
    )
    gone = sorted(
        (
            o
            for o in owners.values()
            if o.person.zulip_user_id is not None
            and (
                o.person.contact(today) is OwnerContact.DEACTIVATED
                or (z is not None and z.error is None and o.person.zulip_user_id not in active)
            )
        ),
        key=lambda o: o.person.display.casefold(),
    )
    out: list[Check] = []
    if unmapped or gone:
        details = [f"{o.person.display}: owner of {_names(o.goals)}" for o in unmapped]
        details += [
            f"{o.person.display} (deactivated on Zulip): owner of {_names(o.goals)}" for o in gone
        ]
        out.append(
            warn(
                "owners.mapped",
                f"Owners: {len(unmapped)} not mapped to a Zulip user, {len(gone)} deactivated "
                f"(of {len(owners)})",
                "add them to the people file ([goals] people_file), or have them set the "
                f"'{config.github_profile_field or 'GitHub'}' profile field or DM the bot "
                "`I am @their-handle`; an admin can DM `map @handle their@email`",
                *details,
            )
        )
    else:
        out.append(ok("owners.mapped", f"Owners: all {len(owners)} are active Zulip users"))
    if z is None or z.error is not None:
        return out
    stream = z.stream(config.stream)
    if stream is None:
        return out
    members = z.stream_members.get(int(stream["stream_id"]))
    if members is None:
        return out
    outside = sorted(
        (
            o
            for o in owners.values()
            if o.person.zulip_user_id in active and o.person.zulip_user_id not in members
        ),
        key=lambda o: o.person.display.casefold(),
    )
    if outside:
        how = "get their prompts by DM" if config.schedule.prompt_via != "dm" else "get DMs"
        fix = (
            "`zulip-goals-bot doctor --fix` subscribes them (subscribe_owners = true is set)"
            if config.subscribe_owners
            else f"subscribe them ({STREAM_SETTINGS.format(stream=config.stream)} > Subscribers), "
            "or set subscribe_owners = true in bot.conf and run `zulip-goals-bot doctor --fix`"
        )
        out.append(
            warn(
                "owners.subscribed",
                f"Owners not subscribed to #{config.stream} ({len(outside)}): they {how} and "
                "miss the discussion in the goal topics: "
                + _names(o.person.display for o in outside),
                fix,
            )
        )
    else:
        out.append(ok("owners.subscribed", f"Owners: all are subscribed to #{config.stream}"))
    return out


def check_database(db: DbFacts) -> Check:
    if db.missing_file:
        return warn(
            "database",
            f"Database: {db.where} does not exist yet",
            "zulip-goals-bot db upgrade (run creates it too), then zulip-goals-bot goals import",
        )
    if db.error is not None:
        return error(
            "database",
            f"Database: cannot use {db.where}: {db.error}",
            "check [goals] database in bot.conf, and that the server is up and reachable",
        )
    if db.current != db.head:
        at = db.current or "empty"
        return warn(
            "database",
            f"Database: {db.where} is at migration {at}; the latest is {db.head}",
            "zulip-goals-bot db upgrade (run applies them too)",
        )
    return ok("database", f"Database: {db.where}, migrations current ({db.head})")


def check_clock(z: ZulipFacts, now: datetime) -> Check:
    if z.server_time is None:
        return warn(
            "clock",
            "Clock: the server sent no Date header to compare with",
            "make sure this machine's clock is synchronized (e.g. timedatectl set-ntp true)",
        )
    skew = z.server_time - now
    if abs(skew) > MAX_CLOCK_SKEW:
        ahead = "ahead of" if skew > timedelta(0) else "behind"
        return warn(
            "clock",
            f"Clock: the server's clock is {_duration(abs(skew))} {ahead} this machine's, so "
            "prompts and the digest go out at other times than Zulip shows",
            "synchronize this machine's clock (e.g. timedatectl set-ntp true), or ask the "
            "server's admin to synchronize the server's",
        )
    return ok("clock", "Clock: the server's clock agrees with this machine's")


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def check_schedule(config: Config, now: datetime) -> Check:
    tz = config.timezone
    s = config.schedule
    d = config.digest

    def when(instant: datetime, zone: Any) -> str:
        return instant.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")

    weeks = "week" if s.cadence_weeks == 1 else f"{s.cadence_weeks} weeks"
    prompt = (
        f"next prompts {when(period_at(now, s.cadence_weeks, Slot(s.weekday, s.at, tz)).end, tz)}"
        f" (every {weeks})"
        if s.enabled
        else "prompts off ([schedule] enabled = false)"
    )
    digest = (
        f"next digest {when(period_at(now, 1, Slot(d.weekday, d.at, d.timezone)).end, tz)}"
        if d.enabled
        else "digest off ([digest] enabled = false)"
    )
    return ok("schedule", f"Schedule ({tz}): {prompt}; {digest}")


def run_checks(facts: Facts) -> list[Check]:
    """Every check, in the order of the report."""
    out = check_files(facts.files)
    config = facts.config
    if config is None:
        return out
    z = facts.zulip
    if z is not None:
        out += check_account(z)
        if z.error is None:
            out.append(check_server(z))
            out += check_stream(z, config.stream, goals=True)
            d = config.digest
            if d.enabled and d.topic and d.stream.casefold() != config.stream.casefold():
                out += check_stream(z, d.stream, goals=False)
            out.append(check_dms(z))
            out.append(check_emoji(z, config.ack_emoji))
            out.append(check_profile_field(z, config.github_profile_field))
            out.append(check_admins(z, config.admins))
    if facts.db is not None:
        out += check_goals(facts, config)
        out.append(check_database(facts.db))
    if z is not None and z.error is None:
        out.append(check_clock(z, facts.now))
    out.append(check_schedule(config, facts.now))
    return out


def exit_status(checks: Iterable[Check]) -> int:
    """0 when all is well, 1 with warnings, 2 with errors."""
    return max((c.status.value for c in checks), default=0)


@dataclass(frozen=True, slots=True)
class Report:
    checks: tuple[Check, ...]
    fixed: tuple[str, ...] = ()
    not_fixed: tuple[str, ...] = ()

    @property
    def status(self) -> int:
        return exit_status(self.checks)

    def render(self) -> str:
        lines = [c.render() for c in self.checks]
        lines += [f"fixed: {f}" for f in self.fixed]
        lines += [f"not fixed: {f}" for f in self.not_fixed]
        errors = sum(1 for c in self.checks if c.status is Status.ERROR)
        warnings = sum(1 for c in self.checks if c.status is Status.WARN)
        if not errors and not warnings:
            lines.append("All checks passed.")
        else:
            lines.append(
                f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}."
            )
        return "\n".join(lines)

    def as_json(self) -> str:
        return json.dumps(
            {
                "status": ["ok", "warning", "error"][self.status],
                "exit_status": self.status,
                "checks": [c.as_json() for c in self.checks],
                "fixed": list(self.fixed),
                "not_fixed": list(self.not_fixed),
            },
            ensure_ascii=False,
            indent=2,
        )


# -- what the digest lists ------------------------------------------------------------------------


def attention_lines(problems: Sequence[Mapping[str, str]]) -> list[str]:
    """Stored problems as digest list items, safe to post (nothing in them can ping)."""
    return [
        f"- {p.get('mark', '!')} {neutralize(p.get('summary', ''))} "
        f"(fix: {neutralize(p.get('fix', ''))})"
        for p in problems
    ]


def store_problems(session: Session, checks: Iterable[Check], now: datetime) -> None:
    from .models import BotState

    wanted = [
        {"check": c.key, "mark": c.status.mark, "summary": c.summary, "fix": c.fix}
        for c in checks
        if c.admin_must_act
    ]
    session.merge(BotState(key=SETUP_PROBLEMS_KEY, value=json.dumps(wanted), updated_at=now))


def load_problems(session: Session) -> list[dict[str, str]]:
    from .models import BotState

    row = session.get(BotState, SETUP_PROBLEMS_KEY)
    if row is None:
        return []
    try:
        loaded = json.loads(row.value)
    except ValueError:
        return []
    return [p for p in loaded if isinstance(p, dict)] if isinstance(loaded, list) else []


# -- gathering facts (the shell) -------------------------------------------------------------------


def file_facts(config_path: Path, load: Callable[[], Config]) -> tuple[FileFacts, Config | None]:
    from .errors import ConfigError

    try:
        config = load()
    except ConfigError as exc:
        return FileFacts(config_path, config_error=_after_path(str(exc), config_path)), None
    rc = config.zuliprc
    env = bool(os.environ.get("ZULIP_EMAIL") and os.environ.get("ZULIP_API_KEY"))
    if not rc.exists() and env and os.environ.get("ZULIP_SITE"):
        return FileFacts(config_path, zuliprc_path=rc, credentials_from_env=True), config
    try:
        from .zulip_io import check_zuliprc

        check_zuliprc(rc, warn=False)
        mode = rc.stat().st_mode & 0o777
    except ConfigError as exc:
        return FileFacts(config_path, zuliprc_path=rc, zuliprc_error=str(exc)), config
    except OSError as exc:
        return FileFacts(config_path, zuliprc_path=rc, zuliprc_error=str(exc)), config
    return FileFacts(config_path, zuliprc_path=rc, zuliprc_mode=mode), config


def _site(zuliprc: Path) -> str:
    """The server's URL as the zuliprc (or ZULIP_SITE) names it, for a server that is down."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(zuliprc, encoding="utf-8")
        return parser.get("api", "site", fallback=os.environ.get("ZULIP_SITE", "")).rstrip("/")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return os.environ.get("ZULIP_SITE", "")


def _after_path(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message.removeprefix(prefix)


def zulip_facts(io: ZulipIO, config: Config, *, render: bool = True) -> ZulipFacts:
    """Read what the checks need; never sends a message or changes a setting.

    Without ``render`` the emoji is looked up among the custom emoji only: ``run`` skips the
    render request, a POST to ``messages/...`` that its message traffic should not include.
    """
    from .errors import ZulipError

    unread: dict[str, str] = {}

    def get(name: str, url: str, method: str = "GET", **request: Any) -> dict[str, Any] | None:
        try:
            return io.call(url, method=method, request=request or None, attempts=ATTEMPTS)
        except ZulipError as exc:
            unread[name] = str(exc)
            return None

    try:
        me = io.call("users/me", attempts=ATTEMPTS)
    except ZulipError as exc:
        refused = exc.code in ("UNAUTHORIZED", "INVALID_API_KEY", "USER_DEACTIVATED")
        return ZulipFacts(site=io.site, error=str(exc), refused=refused)
    server_time = io.last_server_time()
    settings = get("server", "server_settings") or {}
    users = get("users", "users", include_custom_profile_fields=False) or {}
    streams = get("streams", "streams") or {}
    subs = get("subscriptions", "users/me/subscriptions", include_subscribers=True) or {}
    subscribed = {int(s["stream_id"]) for s in subs.get("subscriptions", [])}
    stream_members = {
        int(s["stream_id"]): frozenset(int(u) for u in s.get("subscribers", []))
        for s in subs.get("subscriptions", [])
    }
    visible = list(streams.get("streams", []))
    goals = next(
        (s for s in visible if str(s.get("name", "")).casefold() == config.stream.casefold()),
        None,
    )
    if goals is not None and int(goals["stream_id"]) not in stream_members:
        found = get("stream_members", f"streams/{int(goals['stream_id'])}/members")
        if found is not None:
            stream_members[int(goals["stream_id"])] = frozenset(
                int(u) for u in found.get("subscribers", [])
            )
    realm: dict[str, Any] = {}
    registered = get(
        "realm", "register", "POST", event_types=["realm"], fetch_event_types=["realm"]
    )
    if registered is not None:
        realm = {k: v for k, v in registered.items() if k.startswith("realm_")}
        io.deregister(str(registered.get("queue_id")))
    emoji = get("emoji", "realm/emoji") or {}
    rendered = (
        get("emoji", "messages/render", "POST", content=f":{config.ack_emoji}:") if render else None
    )
    if not render and any(
        e.get("name") == config.ack_emoji and not e.get("deactivated")
        for e in emoji.get("emoji", {}).values()
    ):
        rendered = {"rendered": 'class="emoji"'}  # an active custom emoji renders
    fields = get("profile_fields", "realm/profile_fields") or {}
    level = settings.get("zulip_feature_level")
    return ZulipFacts(
        site=io.site,
        me=me,
        version=str(settings.get("zulip_version", "")),
        feature_level=int(level) if level is not None else None,
        server_time=server_time,
        members=tuple(users.get("members", [])),
        streams=tuple(visible),
        subscribed=frozenset(subscribed),
        stream_members=stream_members,
        realm=realm,
        custom_emoji=tuple(emoji.get("emoji", {}).values()),
        ack_renders=(
            'class="emoji' in str(rendered.get("rendered", "")) if rendered is not None else None
        ),
        profile_fields=tuple(fields.get("custom_fields", [])),
        unread=unread,
    )


def db_facts(config: Config) -> DbFacts:
    """Reachable, at which migration, and the goals; never creates or migrates anything."""
    from sqlalchemy.engine import make_url

    url = make_url(config.database_url)
    where = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        assert url.database is not None
        if not Path(url.database).exists():
            return DbFacts(where, missing_file=True)
    from .db import Database
    from .errors import GoalsBotError

    try:
        db = Database(config.database_url)
    except Exception as exc:  # a bad URL or a missing driver is a finding, not a crash
        return DbFacts(where, error=str(exc).splitlines()[0])
    try:
        return _read_db(db, where)
    except GoalsBotError as exc:
        return DbFacts(where, error=str(exc))
    finally:
        db.dispose()


def _read_db(db: Database, where: str) -> DbFacts:
    from alembic.script import ScriptDirectory
    from sqlalchemy.exc import SQLAlchemyError

    from .db import alembic_config
    from .queries import load_goals

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    try:
        current = db.current_revision()
    except SQLAlchemyError as exc:
        return DbFacts(where, error=str(exc.orig if hasattr(exc, "orig") else exc).splitlines()[0])
    if current is None:
        return DbFacts(where, current=None, head=head, goals_error="no tables yet")
    try:
        with db.read() as session:
            goals = tuple(load_goals(session))
    except SQLAlchemyError as exc:
        return DbFacts(where, current=current, head=head, goals_error=str(exc).splitlines()[0])
    return DbFacts(where, current=current, head=head, goals=goals)


def gather(config_path: Path, clock: Clock) -> Facts:
    from .config import load_config
    from .errors import GoalsBotError
    from .zulip_io import ZulipIO

    files, config = file_facts(config_path, lambda: load_config(config_path))
    now = clock.now()
    if config is None:
        return Facts(files, now)
    zulip: ZulipFacts | None = None
    if files.zuliprc_error is None:
        try:
            io = ZulipIO(config.zuliprc)
        except GoalsBotError as exc:
            zulip = ZulipFacts(site=_site(config.zuliprc), error=str(exc))
        else:
            zulip = zulip_facts(io, config)
    return Facts(files, now, config, zulip, db_facts(config))


# -- --fix ----------------------------------------------------------------------------------------


def apply_fixes(io: ZulipIO, config: Config, facts: Facts) -> tuple[list[str], list[str]]:
    """Subscribe the bot (and with ``subscribe_owners``, owners outside it) to the goals stream.

    Returns what was fixed and what could not be, one line each.
    """
    from .errors import ZulipError

    fixed: list[str] = []
    not_fixed: list[str] = []
    z = facts.zulip
    if z is None or z.error is not None:
        return fixed, not_fixed
    stream = z.stream(config.stream)
    if stream is None:
        return fixed, [f"#{config.stream} does not exist; doctor --fix does not create streams"]
    stream_id = int(stream["stream_id"])
    if stream_id not in z.subscribed:
        try:
            io.call(
                "users/me/subscriptions",
                method="POST",
                request={"subscriptions": [{"name": stream["name"]}]},
                attempts=ATTEMPTS,
            )
            fixed.append(f"subscribed the bot to #{stream['name']}")
        except ZulipError as exc:
            not_fixed.append(f"could not subscribe the bot to #{stream['name']}: {exc}")
    if not config.subscribe_owners or facts.db is None:
        return fixed, not_fixed
    rows = prompted_goals(facts.db.goals, facts.now, config)
    members = z.stream_members.get(stream_id, frozenset())
    active = {int(m["user_id"]) for m in z.members if m.get("is_active", True)}
    outside = sorted(
        {
            o.person.zulip_user_id
            for o in _owners(rows).values()
            if o.person.zulip_user_id in active and o.person.zulip_user_id not in members
        }
        - {None}
    )
    if not outside:
        return fixed, not_fixed
    policy = int(z.realm.get("realm_invite_to_stream_policy", INVITE_MEMBERS))
    if not may_subscribe_others(policy, _role(z.me)):
        not_fixed.append(
            f"the organization does not let the bot subscribe others to streams; subscribe the "
            f"{len(outside)} owners yourself ({STREAM_SETTINGS.format(stream=config.stream)} > "
            f"Subscribers), or allow it ({PERMISSIONS} > 'Who can add users to streams')"
        )
        return fixed, not_fixed
    try:
        io.call(
            "users/me/subscriptions",
            method="POST",
            request={"subscriptions": [{"name": stream["name"]}], "principals": outside},
            attempts=ATTEMPTS,
        )
        names = [str((z.member(uid) or {}).get("full_name", uid)) for uid in outside]
        fixed.append(f"subscribed {len(outside)} owners to #{stream['name']}: {_names(names)}")
    except ZulipError as exc:
        not_fixed.append(f"could not subscribe the owners to #{stream['name']}: {exc}")
    return fixed, not_fixed


# -- commands ------------------------------------------------------------------------------------


def doctor_command(config_path: Path, *, as_json: bool, fix: bool) -> int:
    """``zulip-goals-bot doctor [--json] [--fix]``: print the report, exit 0, 1 or 2."""
    from .clock import default_clock

    logging.basicConfig(level=logging.ERROR)
    clock = default_clock()
    facts = gather(config_path, clock)
    fixed: list[str] = []
    not_fixed: list[str] = []
    if fix and facts.config is not None and facts.zulip is not None and facts.zulip.error is None:
        from .zulip_io import ZulipIO

        config = facts.config
        io = ZulipIO(config.zuliprc)
        fixed, not_fixed = apply_fixes(io, config, facts)
        if fixed:
            facts = gather(config_path, clock)  # the report shows the state after the fixes
    report = Report(tuple(run_checks(facts)), tuple(fixed), tuple(not_fixed))
    print(report.as_json() if as_json else report.render())
    return report.status


def startup_checks(config: Config, io: ZulipIO, db: Database, clock: Clock) -> list[Check]:
    """``run``'s start-up: the same checks, one log line per problem; problems an admin must
    act on are stored for the digest."""
    now = clock.now()
    files, _ = file_facts(config.path or Path("bot.conf"), lambda: config)
    facts = Facts(files, now, config, zulip_facts(io, config, render=False), db_facts(config))
    checks = run_checks(facts)
    for c in checks:
        # ZulipIO already warned about a zuliprc others can read when it opened the file.
        if c.status is Status.OK or c.key == "zuliprc":
            continue
        level = logging.ERROR if c.status is Status.ERROR else logging.WARNING
        log.log(level, "set-up: %s %s (fix: %s)", c.status.mark, c.summary, c.fix)
    with db.write() as session:
        store_problems(session, checks, now)
    return checks
