"""bot.conf: an INI file, one section for the bot (the zulip_bots convention) plus a few more.

Every key the bot reads is declared once in ``KEYS``; loading checks types and names the file, the
section, the key and what was expected when something is wrong.  ``bot.conf.example`` and the
README's table are checked against ``KEYS`` by the tests, so the three cannot drift apart.
"""

from __future__ import annotations

import configparser
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from zulip_goals_bot.errors import ConfigError

# Weeks between prompts when bot.conf does not say: fortnightly, as the Rust program asks.
DEFAULT_CADENCE_WEEKS = 2

# Permission bits that let the file's group or anyone else read (or write) it. A file holding a
# secret (the zuliprc's API key, a token file) should be its owner's alone: mode 600.
SECRET_EXPOSING_BITS = 0o077


def secret_file_exposed(mode: int) -> bool:
    """Whether a secret file with this ``st_mode`` can be read by anyone but its owner (its group
    counts: a shared group is other people)."""
    return bool(mode & SECRET_EXPOSING_BITS)


# Where GitHub's REST API lives unless bot.conf names another (GitHub Enterprise, tests).
DEFAULT_GITHUB_API = "https://api.github.com"
MIRROR_MODES = ("off", "to-github", "from-github", "both")

CONFIG_ENV = "ZULIP_GOALS_BOT_CONFIG"
DEFAULT_CONFIG = "bot.conf"

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
PROMPT_CHANNELS = ("topic", "dm", "both")


@dataclass(frozen=True, slots=True)
class Key:
    section: str
    name: str
    default: str
    help: str


# The order here is the order of bot.conf.example and of the README table.
KEYS: tuple[Key, ...] = (
    Key("goals", "zuliprc", "zuliprc", "Path of the bot's zuliprc (relative to this file)."),
    Key("goals", "stream", "project-goals", "Stream where goals have their topics."),
    Key("goals", "database", "", "SQLAlchemy URL; empty means SQLite in data_dir."),
    Key("goals", "data_dir", ".", "Folder for the SQLite file (relative to this file)."),
    Key("goals", "timezone", "UTC", "Timezone of the program's schedule (IANA name)."),
    Key("goals", "admins", "", "Comma-separated emails of bot admins (realm admins are too)."),
    Key(
        "goals", "active_statuses", "Accepted", "Goal statuses that are prompted (comma-separated)."
    ),
    Key(
        "goals",
        "people_file",
        "",
        "TOML or CSV (or a folder of team TOML files) mapping GitHub handles to Zulip users.",
    ),
    Key(
        "goals", "github_profile_field", "GitHub", "Name of a Zulip profile field with the handle."
    ),
    Key("goals", "ack_emoji", "check", "Reaction that acknowledges a stored update."),
    Key("goals", "update_window_minutes", "10", "Messages within this window form one update."),
    Key(
        "goals",
        "subscribe_owners",
        "false",
        "doctor --fix also subscribes owners to the stream (if Zulip lets the bot).",
    ),
    Key("schedule", "enabled", "true", "Send prompts and reminders on schedule."),
    Key("schedule", "weekday", "thursday", "Day prompts go out."),
    Key("schedule", "time", "14:00", "Time prompts go out, in the program timezone (HH:MM)."),
    Key(
        "schedule",
        "cadence_weeks",
        str(DEFAULT_CADENCE_WEEKS),
        "Default weeks between prompts: 1, 2 or 4.",
    ),
    Key("schedule", "grace_days", "7", "New goals are not due during this many days."),
    Key("schedule", "reminder_days", "3", "Days after a prompt before one reminder."),
    Key("schedule", "prompt_via", "topic", "topic (DM for unsubscribed owners), dm or both."),
    Key("schedule", "dm_local_hour", "10", "Hour DMs go out in each owner's own timezone."),
    Key("digest", "enabled", "true", "Post the weekly digest."),
    Key("digest", "stream", "", "Stream for the digest; empty means the goals stream."),
    Key(
        "digest", "topic", "weekly digest", "Topic for the digest; empty: DMs to subscribers only."
    ),
    Key("digest", "weekday", "monday", "Day the digest goes out."),
    Key("digest", "time", "09:00", "Time the digest goes out (HH:MM)."),
    Key("digest", "timezone", "", "Timezone of the digest time; empty means the program one."),
    Key(
        "health",
        "alerts",
        "true",
        "DM a goal's champions once when it turns blocked or stays at risk for two periods.",
    ),
    Key(
        "health",
        "notify_leads",
        "true",
        "Also tell the leads of the goal's teams (`teams/*.toml` of the people_file team repo).",
    ),
    Key("logging", "level", "INFO", "DEBUG, INFO, WARNING or ERROR."),
    Key(
        "site",
        "output",
        "",
        "Folder of the goals website, rebuilt by `run` (relative to this file); empty: none.",
    ),
    Key("site", "title", "Project goals", "Title of the goals website."),
    Key(
        "github",
        "repository",
        "",
        "owner/name of the tracking issues (a bare `#263` is in this one); empty: no GitHub.",
    ),
    Key("github", "api_url", DEFAULT_GITHUB_API, "GitHub's REST API (GitHub Enterprise: its own)."),
    Key(
        "github",
        "token_file",
        "",
        "File holding a GitHub token (mode 600); empty: the GITHUB_TOKEN environment variable.",
    ),
    Key("github", "app_id", "", "A GitHub App's id, to authenticate as the App instead."),
    Key("github", "app_private_key_file", "", "The App's private key (PEM file, mode 600)."),
    Key("github", "app_installation_id", "", "The App's installation; empty: looked up."),
    Key("github", "sync_minutes", "15", "Minutes between looks at the tracking issues."),
    Key("github", "mirror", "from-github", "off, to-github, from-github or both."),
)


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    enabled: bool = True
    weekday: int = 3
    at: time = time(14, 0)
    cadence_weeks: int = DEFAULT_CADENCE_WEEKS
    grace_days: int = 7
    reminder_days: int = 3
    prompt_via: str = "topic"
    dm_local_hour: int = 10


@dataclass(frozen=True, slots=True)
class DigestConfig:
    enabled: bool = True
    stream: str = "project-goals"
    topic: str = "weekly digest"
    weekday: int = 0
    at: time = time(9, 0)
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """Who hears of a goal that needs help (``bot.alerts``)."""

    alerts: bool = True  # champions get one DM per change to blocked, or at risk for long
    notify_leads: bool = True  # and so do the leads of the goal's teams


DEFAULT_SITE_TITLE = "Project goals"


@dataclass(frozen=True, slots=True)
class SiteConfig:
    output: Path | None = None  # None: `run` keeps no website
    title: str = DEFAULT_SITE_TITLE


@dataclass(frozen=True, slots=True)
class GitHubConfig:
    repository: str = ""  # empty: the bridge is off
    api_url: str = DEFAULT_GITHUB_API
    token_file: Path | None = None
    app_id: str = ""
    app_private_key_file: Path | None = None
    app_installation_id: int | None = None
    sync_minutes: int = 15
    mirror: str = "from-github"

    @property
    def enabled(self) -> bool:
        return bool(self.repository) and self.mirror != "off"

    @property
    def reads(self) -> bool:
        """Comments on the tracking issues become updates."""
        return self.enabled and self.mirror in ("from-github", "both")

    @property
    def writes(self) -> bool:
        """Updates sent in Zulip are posted to the tracking issues."""
        return self.enabled and self.mirror in ("to-github", "both")


@dataclass(frozen=True, slots=True)
class Config:
    path: Path | None
    zuliprc: Path
    stream: str = "project-goals"
    database_url: str = "sqlite:///goals.sqlite3"
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    admins: frozenset[str] = frozenset()
    active_statuses: tuple[str, ...] = ("Accepted",)
    people_file: Path | None = None
    github_profile_field: str = "GitHub"
    ack_emoji: str = "check"
    update_window_minutes: int = 10
    subscribe_owners: bool = False
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    digest: DigestConfig = field(default_factory=DigestConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    log_level: str = "INFO"
    site: SiteConfig = field(default_factory=SiteConfig)
    github: GitHubConfig = field(default_factory=GitHubConfig)


class _Reader:
    """Typed access to one parsed INI file, raising ConfigError that names file/section/key."""

    def __init__(self, parser: configparser.ConfigParser, path: Path) -> None:
        self.parser = parser
        self.path = path
        self.defaults = {(k.section, k.name): k.default for k in KEYS}

    def raw(self, section: str, name: str) -> str:
        if self.parser.has_option(section, name):
            return self.parser.get(section, name).strip()
        return self.defaults[(section, name)]

    def fail(self, section: str, name: str, expected: str) -> ConfigError:
        value = self.raw(section, name)
        return ConfigError(
            f"{self.path}: [{section}] {name} = {value!r} is not valid: expected {expected}"
        )

    def convert(self, section: str, name: str, fn: Callable[[str], Any], expected: str) -> Any:
        try:
            return fn(self.raw(section, name))
        except (ValueError, KeyError, ZoneInfoNotFoundError) as exc:
            raise self.fail(section, name, expected) from exc

    def text(self, section: str, name: str) -> str:
        return self.raw(section, name)

    def integer(self, section: str, name: str, lo: int, hi: int) -> int:
        def conv(v: str) -> int:
            n = int(v)
            if not lo <= n <= hi:
                raise ValueError(v)
            return n

        return int(self.convert(section, name, conv, f"a whole number from {lo} to {hi}"))

    def boolean(self, section: str, name: str) -> bool:
        states = configparser.ConfigParser.BOOLEAN_STATES
        return bool(self.convert(section, name, lambda v: states[v.lower()], "true or false"))

    def zone(self, section: str, name: str, fallback: ZoneInfo | None = None) -> ZoneInfo:
        if fallback is not None and not self.raw(section, name):
            return fallback
        return ZoneInfo(
            self.convert(section, name, lambda v: str(ZoneInfo(v)), "an IANA timezone like UTC")
        )

    def weekday(self, section: str, name: str) -> int:
        return int(
            self.convert(
                section, name, lambda v: WEEKDAYS.index(v.lower()), "a weekday like thursday"
            )
        )

    def clock_time(self, section: str, name: str) -> time:
        value: time = self.convert(
            section, name, lambda v: time.fromisoformat(v.zfill(5)), "a time like 14:00"
        )
        return value

    def choice(self, section: str, name: str, choices: tuple[str, ...]) -> str:
        def conv(v: str) -> str:
            if v.lower() not in choices:
                raise ValueError(v)
            return v.lower()

        return str(self.convert(section, name, conv, "one of " + ", ".join(choices)))


def config_path(explicit: str | None) -> Path:
    return Path(explicit or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_config(path: Path, *, must_exist: bool = True) -> Config:
    """Read and validate bot.conf; unknown sections and keys are errors, so typos do not pass."""
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
    if path.exists():
        try:
            with path.open(encoding="utf-8") as fh:
                parser.read_file(fh)
        except (configparser.Error, UnicodeDecodeError) as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"{path}: not a valid INI file ({first})") from exc
    elif must_exist:
        raise ConfigError(
            f"{path}: configuration file not found; copy bot.conf.example to {path} "
            f"or pass --config PATH"
        )
    known = {(k.section, k.name) for k in KEYS}
    sections = {k.section for k in KEYS}
    for section in parser.sections():
        if section not in sections:
            raise ConfigError(
                f"{path}: unknown section [{section}]; expected one of "
                + ", ".join(f"[{s}]" for s in sorted(sections))
            )
        for name in parser.options(section):
            if (section, name) not in known:
                raise ConfigError(f"{path}: [{section}] has an unknown key {name!r}")
    r = _Reader(parser, path)
    base = path.parent if path.parent != Path("") else Path(".")
    tz = r.zone("goals", "timezone")
    data_dir = base / r.text("goals", "data_dir")
    database = r.text("goals", "database") or f"sqlite:///{data_dir / 'goals.sqlite3'}"
    if "://" not in database:
        raise r.fail("goals", "database", "a database URL like sqlite:///goals.sqlite3")
    people = r.text("goals", "people_file")
    stream = r.text("goals", "stream")
    if not stream:
        raise r.fail("goals", "stream", "a stream name")
    cadence = r.integer("schedule", "cadence_weeks", 1, 4)
    if cadence == 3:
        raise r.fail("schedule", "cadence_weeks", "1, 2 or 4")
    schedule = ScheduleConfig(
        enabled=r.boolean("schedule", "enabled"),
        weekday=r.weekday("schedule", "weekday"),
        at=r.clock_time("schedule", "time"),
        cadence_weeks=cadence,
        grace_days=r.integer("schedule", "grace_days", 0, 365),
        reminder_days=r.integer("schedule", "reminder_days", 1, 27),
        prompt_via=r.choice("schedule", "prompt_via", PROMPT_CHANNELS),
        dm_local_hour=r.integer("schedule", "dm_local_hour", 0, 23),
    )
    digest = DigestConfig(
        enabled=r.boolean("digest", "enabled"),
        stream=r.text("digest", "stream") or stream,
        topic=r.text("digest", "topic"),
        weekday=r.weekday("digest", "weekday"),
        at=r.clock_time("digest", "time"),
        timezone=r.zone("digest", "timezone", fallback=tz),
    )
    health = HealthConfig(
        alerts=r.boolean("health", "alerts"),
        notify_leads=r.boolean("health", "notify_leads"),
    )
    level = r.choice("logging", "level", ("debug", "info", "warning", "error")).upper()
    site_output = r.text("site", "output")
    site = SiteConfig(
        output=(base / site_output) if site_output else None,
        title=r.text("site", "title") or DEFAULT_SITE_TITLE,
    )
    repository = r.text("github", "repository")
    if repository and not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
        raise r.fail("github", "repository", "owner/name, like rust-lang/rust-project-goals")
    api_url = r.text("github", "api_url").rstrip("/") or DEFAULT_GITHUB_API
    if not api_url.startswith(("https://", "http://")):
        raise r.fail("github", "api_url", "an http(s) URL like " + DEFAULT_GITHUB_API)
    token_file = r.text("github", "token_file")
    key_file = r.text("github", "app_private_key_file")
    app_id = r.text("github", "app_id")
    if app_id and not key_file:
        raise r.fail("github", "app_private_key_file", "the App's private key file (app_id is set)")
    installation = r.text("github", "app_installation_id")
    github = GitHubConfig(
        repository=repository,
        api_url=api_url,
        token_file=(base / token_file) if token_file else None,
        app_id=app_id,
        app_private_key_file=(base / key_file) if key_file else None,
        app_installation_id=(
            r.integer("github", "app_installation_id", 1, 2**62) if installation else None
        ),
        sync_minutes=r.integer("github", "sync_minutes", 1, 1440),
        mirror=r.choice("github", "mirror", MIRROR_MODES),
    )
    return Config(
        path=path,
        zuliprc=base / r.text("goals", "zuliprc"),
        stream=stream,
        database_url=database,
        timezone=tz,
        admins=frozenset(
            e.strip().lower() for e in r.text("goals", "admins").split(",") if e.strip()
        ),
        active_statuses=tuple(
            s.strip() for s in r.text("goals", "active_statuses").split(",") if s.strip()
        ),
        people_file=(base / people) if people else None,
        github_profile_field=r.text("goals", "github_profile_field"),
        ack_emoji=r.text("goals", "ack_emoji") or "check",
        update_window_minutes=r.integer("goals", "update_window_minutes", 0, 1440),
        subscribe_owners=r.boolean("goals", "subscribe_owners"),
        schedule=schedule,
        digest=digest,
        health=health,
        log_level=level,
        site=site,
        github=github,
    )


def render_example() -> str:
    """The text of bot.conf.example, generated from KEYS (a test keeps the file equal to it)."""
    lines = [
        "; zulip-goals-bot configuration. Copy to bot.conf and adjust.",
        "; Credentials are not here: they live in a standard zuliprc ([api] email, key, site),",
        "; or in the ZULIP_EMAIL / ZULIP_API_KEY / ZULIP_SITE environment variables.",
        "; Every key is optional; the value shown is the default.",
    ]
    section = ""
    for key in KEYS:
        if key.section != section:
            section = key.section
            lines += ["", f"[{section}]"]
        lines.append(f"; {key.help}")
        lines.append(f"{key.name} = {key.default}".rstrip())
    return "\n".join(lines) + "\n"


def render_config_table() -> str:
    """The README's table of keys, generated from KEYS (a test keeps the README equal to it)."""
    rows = ["| section | key | default | meaning |", "| --- | --- | --- | --- |"]
    for key in KEYS:
        default = f"`{key.default}`" if key.default else "(empty)"
        rows.append(f"| `[{key.section}]` | `{key.name}` | {default} | {key.help} |")
    return "\n".join(rows)
