"""``zulip-goals-bot sandbox``: start the emulator and the bot, run the session, stop cleanly."""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from zulip_goals_bot.errors import GoalsBotError
from zulip_goals_bot.sandbox.display import Console
from zulip_goals_bot.sandbox.session import Sandbox
from zulip_goals_bot.sandbox.timing import format_time, parse_start
from zulip_goals_bot.sandbox.world import (
    BOT_EMAIL,
    DEMO_START,
    DEMO_WORD,
    GITHUB_FIELD,
    LEAD_NAME,
    SAMPLE_DIR,
    SAMPLE_PERIOD,
    build_realm,
    import_summary,
    max_message_id,
    owner_handles,
    resolve_script,
    sandbox_config,
    save_clock,
    saved_clock,
)

if TYPE_CHECKING:
    from fakezulip import FakeZulip


@contextlib.contextmanager
def _signals_to_main_thread() -> Iterator[None]:
    """Threads started inside ignore Ctrl-C and SIGTERM (they inherit the blocked mask), so the
    signal always reaches the main thread: one taken by another thread would not interrupt the
    main thread's read of the terminal or the script, and Ctrl-C would seem to do nothing."""
    if not hasattr(signal, "pthread_sigmask"):  # not on Windows
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("  ! %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


def _banner(sandbox: Sandbox, summary: str) -> str:
    from zulip_goals_bot.config import WEEKDAYS

    sched = sandbox.config.schedule
    digest = sandbox.config.digest
    return "\n".join(
        [
            f"Zulip goals bot sandbox: the real bot against an emulated Zulip at "
            f"{sandbox.server.base_url}.",
            f"Clock: {format_time(sandbox.clock.now())}; it moves only with /advance.",
            f"Schedule: prompts every {WEEKDAYS[sched.weekday].capitalize()} at "
            f"{sched.at:%H:%M} {sandbox.config.timezone.key}, a reminder {sched.reminder_days} "
            f"days later, the digest every {WEEKDAYS[digest.weekday].capitalize()} at "
            f"{digest.at:%H:%M} {digest.timezone.key}.",
            summary,
            f"You are {sandbox.user(sandbox.me).full_name}, in {sandbox.where()}. "
            "/help lists the commands.",
        ]
    )


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """The bot's connections fail noisily while the emulator stops; that is expected."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def sandbox_command(
    goals: Path | None, database: Path | None, script: str | None, start: str | None
) -> int:
    """``zulip-goals-bot sandbox``: returns the exit status (130 after Ctrl-C)."""
    from fakezulip import FakeZulip
    from zulip_goals_bot.bot.app import GoalsBot
    from zulip_goals_bot.bot.zulip_io import ZulipIO
    from zulip_goals_bot.clock import FrozenClock
    from zulip_goals_bot.db.engine import Database
    from zulip_goals_bot.goals.importer import import_goals

    script_path = resolve_script(script)
    source = goals if goals is not None else SAMPLE_DIR
    if not source.exists():
        raise GoalsBotError(f"--goals {source}: no such file or folder")
    _setup_logging()
    console = Console(sys.stdout)
    workdir = Path(tempfile.mkdtemp(prefix="zulip-goals-sandbox-"))
    db_path = database if database is not None else workdir / "sandbox.sqlite3"
    database_url = f"sqlite:///{db_path}"
    db = Database(database_url)
    server: FakeZulip | None = None
    sandbox: Sandbox | None = None
    try:
        db.upgrade()
        saved = saved_clock(db) if database is not None and start is None else None
        default = DEMO_START if script == DEMO_WORD else datetime.now(UTC)
        clock = FrozenClock(saved or parse_start(start, default))
        realm = build_realm(owner_handles(source) if goals is not None else ())
        with _signals_to_main_thread():
            server = FakeZulip(realm, clock=clock.timestamp).start()
            server.reserve_message_ids(max_message_id(db))  # a kept database knows these ids
            bot_user = realm.user_by_email(BOT_EMAIL)
            lead = realm.user_by_name(LEAD_NAME)
            assert bot_user is not None and lead is not None
            zuliprc = server.write_zuliprc(workdir / "zuliprc", bot_user)
            config = sandbox_config(zuliprc, database_url, lead.email)
            listener = ZulipIO(zuliprc)
            report = import_goals(
                db,
                [source],
                now=clock.now(),
                period=SAMPLE_PERIOD if goals is None else None,
                active_statuses=config.active_statuses,
                members=listener.users(),
                profile_fields=listener.profile_fields(),
                profile_field_name=GITHUB_FIELD,
            )
            summary = import_summary(
                report, "the sample goals" if goals is None else f"the goals in {source}"
            )
            bot = GoalsBot(config, db, listener, ZulipIO(zuliprc), clock)
            sandbox = Sandbox(
                server=server, bot=bot, clock=clock, db=db, console=console, workdir=workdir
            )
            sandbox.start()
        console.say(_banner(sandbox, summary))
        console.shown_time = int(clock.now().timestamp())
        if script_path is not None:
            with script_path.open(encoding="utf-8") as fh:
                return sandbox.run_script(fh)
        if script == "-":
            return sandbox.run_script(sys.stdin)
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        return sandbox.run_interactive()
    except KeyboardInterrupt:
        console.say("")
        return 130
    finally:
        with _quiet_logging():
            if sandbox is not None:
                sandbox.stop()
                if database is not None:
                    save_clock(db, sandbox.clock)
            if server is not None:
                server.stop()
            db.dispose()
            shutil.rmtree(workdir, ignore_errors=True)
