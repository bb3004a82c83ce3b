"""The checks: pure functions from the facts (``facts``) to the report's lines (``Check``),
each problem with the exact fix, in the order ``run_checks`` prints them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from zulip_goals_bot.config import secret_file_exposed
from zulip_goals_bot.doctor.facts import DbFacts, Facts, FileFacts, GitHubFacts, ZulipFacts
from zulip_goals_bot.doctor.permissions import (
    BOT_TYPE_GENERIC,
    BOT_TYPES,
    DM_NOBODY,
    POST_EVERYONE,
    ROLE_ADMIN,
    bot_may_post,
    role_of,
)
from zulip_goals_bot.doctor.report import Check, error, ok, warn
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.schedule import DueState, Slot, period_at
from zulip_goals_bot.domain.views import GoalOutline, OwnerContact, PersonView

if TYPE_CHECKING:
    from zulip_goals_bot.config import Config

# The bot narrows with `dm` and `is:dm` (Zulip 7.0, feature level 177); older servers refuse them.
MIN_FEATURE_LEVEL = 177
MIN_VERSION = "7.0"
# Prompts and digests are computed from this machine's clock: a server more than this far off
# shows times that disagree with what the bot does.
MAX_CLOCK_SKEW = timedelta(minutes=1)
# Long lists (owners, admins) are cut after this many names on one line.
MAX_NAMES = 8

# Where things are in Zulip's settings (Zulip 8.0 wording).
BOTS_SETTINGS = "Settings > Personal settings > Bots"
STREAM_SETTINGS = "Stream settings > #{stream}"
PERMISSIONS = "Settings > Organization settings > Organization permissions"


def name_list(items: Iterable[str]) -> str:
    """Names joined by commas, cut after ``MAX_NAMES`` (``a, b and 3 more``)."""
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
    elif files.zuliprc_mode is not None and secret_file_exposed(files.zuliprc_mode):
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
        realm_admins = [m for m in z.members if role_of(m) <= ROLE_ADMIN and not m.get("is_bot")]
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
            parts.append(f"no Zulip user has the email {name_list(missing)}")
        if inactive:
            parts.append(f"deactivated: {name_list(inactive)}")
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
class OwnedGoals:
    """An owner and the names of the prompted goals they own."""

    person: PersonView
    goals: list[str]


def prompted_goals(
    goals: Sequence[GoalOutline], now: datetime, config: Config
) -> list[tuple[GoalOutline, DueState]]:
    """The goals the schedule asks about, with their due state (as the ``Program`` judges it)."""
    program = Program.from_config(config)
    states = ((g, program.state(g, now)) for g in goals)
    return [(g, state) for g, state in states if state not in _NOT_PROMPTED]


def owners_of(rows: Sequence[tuple[GoalOutline, DueState]]) -> dict[int, OwnedGoals]:
    """The owners of these goals, by person id."""
    owners: dict[int, OwnedGoals] = {}
    for g, _state in rows:
        for p in g.prompted_owners():
            owners.setdefault(p.person_id, OwnedGoals(p, [])).goals.append(g.name)
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
                f"Goals without an owner (never prompted): {name_list(ownerless)}",
                "name a Point of contact in the goal file and import again, or DM the bot "
                "`owners set <goal> @github-handle`",
            )
        )
    else:
        out.append(ok("goals.owners", "Goals: every prompted goal has an owner"))
    out += _check_owners(rows, facts.zulip, config, facts.now)
    return out


def _check_owners(
    rows: Sequence[tuple[GoalOutline, DueState]],
    z: ZulipFacts | None,
    config: Config,
    now: datetime,
) -> list[Check]:
    owners = owners_of(rows)
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
        details = [f"{o.person.display}: owner of {name_list(o.goals)}" for o in unmapped]
        details += [
            f"{o.person.display} (deactivated on Zulip): owner of {name_list(o.goals)}"
            for o in gone
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
                + name_list(o.person.display for o in outside),
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


# Below this share of the hourly rate limit left, a sync may stop midway: worth a warning.
LOW_RATE_SHARE = 0.1
GITHUB_TOKENS = "https://github.com/settings/tokens"


def check_github(g: GitHubFacts, *, mirroring: bool) -> list[Check]:
    """The token (or App), the repository, each tracking issue, the rate limit."""
    if g.credentials_error is not None:
        fix = "set GITHUB_TOKEN or [github] token_file (mode 600), or the App's keys"
        return [error("github.credentials", f"GitHub: {g.credentials_error}", fix)]
    if g.error is not None:
        if g.refused:
            fix = (
                f"make a new token ({GITHUB_TOKENS}; fine-grained: Issues read, and write "
                "when mirroring) and put it in GITHUB_TOKEN or the token file"
            )
            if g.auth == "GitHub App":
                fix = (
                    "check [github] app_id and the private key file, and that the App is installed"
                )
            return [error("github.token", f"GitHub refused the {g.auth}: {g.error}", fix)]
        return [
            error("github.reach", f"GitHub: {g.error}", "check the network and [github] api_url")
        ]
    if g.repo_error is not None:
        return [
            error(
                "github.repository",
                f"GitHub repository {g.repository}: {g.repo_error}",
                "check [github] repository (owner/name), and that the token can see it "
                "(fine-grained tokens list their repositories)",
            )
        ]
    out = [ok("github.token", f"GitHub: the {g.auth} can read {g.repository}")]
    if mirroring:
        if g.can_push is False:
            out.append(
                warn(
                    "github.write",
                    f"GitHub: the {g.auth} may not be able to comment on {g.repository} "
                    "(mirror is on, the token has no write permission there)",
                    "give the token Issues: read and write (or the App issues: write), "
                    "or set [github] mirror = from-github",
                )
            )
        else:
            out.append(ok("github.write", f"GitHub: the {g.auth} can comment on {g.repository}"))
    bad = [i for i in g.issues if i.error is not None]
    if bad:
        out.append(
            error(
                "github.issues",
                f"GitHub: {len(bad)} of {len(g.issues)} tracking issues cannot be read",
                "fix the goal's `Tracking issue` row (and re-import), or give the token access "
                "to that repository",
                *(f"{i.slug}: {i.ref}: {i.error}" for i in bad[:MAX_NAMES]),
            )
        )
    elif g.issues:
        out.append(ok("github.issues", f"GitHub: all {len(g.issues)} tracking issues readable"))
    if g.rate_remaining is not None and g.rate_limit:
        reset = f", resets {g.rate_reset:%H:%M} UTC" if g.rate_reset else ""
        summary = f"GitHub rate limit: {g.rate_remaining} of {g.rate_limit} left{reset}"
        if g.rate_remaining < LOW_RATE_SHARE * g.rate_limit:
            out.append(warn("github.rate", summary, "raise [github] sync_minutes, or wait"))
        else:
            out.append(ok("github.rate", summary))
    return out


def check_github_syncs(db: DbFacts, now: datetime, sync_minutes: int) -> Check | None:
    """What the running bot's last syncs recorded: when, and which issues failed and why."""
    if not db.github_syncs:
        return None
    times = [t for _slug, t, _error in db.github_syncs if t is not None]
    when = f"{_duration(now - max(times))} ago" if times else "never"
    failed = [(slug, error) for slug, _t, error in db.github_syncs if error]
    if failed:
        return warn(
            "github.sync",
            f"GitHub sync: last {when}; {len(failed)} tracking issues failed",
            "see each reason; `zulip-goals-bot github sync` tries again now",
            *(f"{slug}: {error}" for slug, error in failed[:MAX_NAMES]),
        )
    if times and now - max(times) > timedelta(minutes=3 * sync_minutes):
        return warn(
            "github.sync",
            f"GitHub sync: last {when}, every {sync_minutes} min expected",
            "is `zulip-goals-bot run` running? its log says why a sync failed",
        )
    return ok("github.sync", f"GitHub sync: last {when}, {len(db.github_syncs)} tracking issues")


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
    if facts.github is not None:
        out += check_github(facts.github, mirroring=config.github.writes)
        if facts.db is not None:
            synced = check_github_syncs(facts.db, facts.now, config.github.sync_minutes)
            if synced is not None:
                out.append(synced)
    if z is not None and z.error is None:
        out.append(check_clock(z, facts.now))
    out.append(check_schedule(config, facts.now))
    return out
