"""The sandbox's world: the demo organisation, the sample goals, the bot's configuration, and
what a kept ``--database`` remembers between sessions (the clock, the message ids)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from zulip_goals_bot.errors import GoalsBotError

if TYPE_CHECKING:
    from fakezulip import Realm
    from zulip_goals_bot.clock import FrozenClock
    from zulip_goals_bot.config import Config
    from zulip_goals_bot.db.engine import Database
    from zulip_goals_bot.goals.import_report import ImportReport

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_goals"
# `--script demo` runs this shipped script (a week of the program in about a minute of reading).
DEMO_WORD = "demo"
DEMO_SCRIPT = SAMPLE_DIR / "demo-week.txt"
# The demo's default start: a Monday morning, three days before the weekly prompt, so that its
# transcript is the same on every run.
DEMO_START = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)
# The period name the sample goals are imported into (a folder name would say "sample_goals").
SAMPLE_PERIOD = "sample"
# The custom profile field through which the demo users' GitHub handles map them to goal owners.
GITHUB_FIELD = "GitHub"
# The demo realm's people and the GitHub handles the sample goal files name them by.
DEMO_HANDLES: Mapping[str, str] = {
    "Ada Admin": "ada-admin",
    "Ben Owner": "ben-owner",
    "Chloé Owner": "chloe-owner",
    "Dev Owner": "dev-owner",
    "Eve Lead": "eve-lead",
}
# Who you are when the sandbox starts: the person running the program (and a bot admin).
LEAD_NAME = "Eve Lead"
# The demo realm's bot, which the sandbox runs the bot as.
BOT_EMAIL = "goals-bot@example.com"
# Owners named in --goals files who are not demo users get an account of their own here.
EXTRA_EMAIL_DOMAIN = "example.com"
# Kept in bot_state with --database, so that a later session resumes the clock where it stopped.
CLOCK_KEY = "sandbox_clock"


def sandbox_config(zuliprc: Path, database_url: str, lead_email: str) -> Config:
    """The bot's configuration in the sandbox: weekly prompts and no grace days, so that one
    simulated week shows a prompt, a reminder and a digest; the lead is a bot admin."""
    from zulip_goals_bot.config import Config, ScheduleConfig

    return Config(
        path=None,
        zuliprc=zuliprc,
        database_url=database_url,
        admins=frozenset({lead_email.lower()}),
        github_profile_field=GITHUB_FIELD,
        schedule=ScheduleConfig(cadence_weeks=1, grace_days=0),
        log_level="WARNING",
    )


def build_realm(extra_handles: Iterable[str]) -> Realm:
    """The demo organisation with a GitHub profile field, plus one account per extra handle."""
    from fakezulip import FIELD_EXTERNAL_ACCOUNT, Realm

    realm = Realm.demo()
    field = realm.add_profile_field(
        GITHUB_FIELD, FIELD_EXTERNAL_ACCOUNT, field_data='{"subtype":"github"}'
    )
    for name, handle in DEMO_HANDLES.items():
        user = realm.user_by_name(name)
        if user is not None:
            realm.set_profile_value(user, field, handle)
    known = set(DEMO_HANDLES.values())
    for handle in sorted(set(extra_handles) - known):
        user = realm.add_user(handle, f"{handle}@{EXTRA_EMAIL_DOMAIN}", timezone="UTC")
        realm.set_profile_value(user, field, handle)
        for stream in list(realm.streams.values()):
            realm.subscribe(user, stream.name)
    return realm


def owner_handles(path: Path) -> list[str]:
    """Every GitHub handle the goal files at ``path`` name as an owner."""
    from zulip_goals_bot.goals.files import read_goal_files
    from zulip_goals_bot.goals.import_plan import owner_specs

    docs, _problems = read_goal_files([path])
    return sorted({spec.github for _file, doc in docs for spec in owner_specs(doc)})


def import_summary(report: ImportReport, source: str) -> str:
    """What the import did, in a few lines (``goals import`` prints the long form)."""
    counts = ", ".join(f"{n} {k}" for k, n in report.counts.items() if n)
    lines = [f"Imported {source}: {counts or 'nothing to do'}."]
    lines += [f"  {n.render()}" for n in report.problems]
    if report.unmapped:
        handles = ", ".join(f"@{h}" for h in report.unmapped)
        lines.append(f"Owners without a Zulip account (never prompted): {handles}.")
    return "\n".join(lines)


def resolve_script(script: str | None) -> Path | None:
    """``--script``: the file to read, or None for stdin (``-``) and the interactive prompt."""
    if script is None or script == "-":
        return None
    if script == DEMO_WORD:
        return DEMO_SCRIPT
    path = Path(script)
    if not path.is_file():
        raise GoalsBotError(
            f"--script {script}: no such file (give a file of commands, '-' for stdin, or "
            f"'{DEMO_WORD}' for the shipped demo)"
        )
    return path


def max_message_id(db: Database) -> int:
    """The highest Zulip message id a kept database knows (0 for a new one)."""
    from sqlalchemy import func, select

    from zulip_goals_bot.db.models import HandledMessage, Update

    with db.read() as session:
        handled = session.execute(select(func.max(HandledMessage.zulip_message_id))).scalar()
        stored = session.execute(select(func.max(Update.zulip_message_id))).scalar()
    return max(int(handled or 0), int(stored or 0))


def saved_clock(db: Database) -> datetime | None:
    """Where the last session on a kept database left the clock."""
    from zulip_goals_bot.db.models import BotState

    with db.read() as session:
        row = session.get(BotState, CLOCK_KEY)
        return datetime.fromisoformat(row.value) if row is not None else None


def save_clock(db: Database, clock: FrozenClock) -> None:
    from zulip_goals_bot.db.models import BotState

    now = clock.now()
    with db.write() as session:
        row = session.get(BotState, CLOCK_KEY)
        if row is None:
            session.add(BotState(key=CLOCK_KEY, value=now.isoformat(), updated_at=now))
        else:
            row.value = now.isoformat()
            row.updated_at = now
