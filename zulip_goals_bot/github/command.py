"""``zulip-goals-bot github sync``: a sync now, with what it found printed per goal."""

from __future__ import annotations

from datetime import date, datetime, time

from ..clock import SYSTEM_CLOCK, Clock
from ..config import Config
from ..errors import ConfigError, GoalsBotError
from .connect import github_client


def parse_since(text: str | None, config: Config) -> datetime | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise GoalsBotError(f"--since {text!r} is not a date like 2026-11-01") from exc
    return datetime.combine(day, time(0), tzinfo=config.timezone)


def sync_command(
    config: Config,
    *,
    dry_run: bool,
    since: str | None,
    goal: str | None,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    from ..bot.app import open_database, setup_logging
    from .sync import sync

    if not config.github.repository:
        raise ConfigError("no [github] repository in bot.conf: the GitHub bridge is off")
    setup_logging("WARNING")
    db = open_database(config)
    with github_client(config.github, clock.now) as client:
        report = sync(
            db,
            client,
            config.github.repository,
            now=clock.now,
            slug=goal,
            since=parse_since(since, config),
            dry_run=dry_run,
        )
    if goal is not None and not report.issues:
        raise GoalsBotError(f"no running goal {goal!r} with a tracking issue")
    print("\n".join(report.lines(details=dry_run)))
    return 1 if report.stopped or any(r.error for r in report.issues) else 0


def mirror_command(config: Config, *, dry_run: bool, clock: Clock = SYSTEM_CLOCK) -> int:
    """``github mirror``: post now what the owners' Zulip updates owe the tracking issues."""
    from ..bot.app import open_database, setup_logging
    from ..bot.zulip_io import site_from_zuliprc
    from .mirror import mirror

    if not config.github.repository:
        raise ConfigError("no [github] repository in bot.conf: the GitHub bridge is off")
    if not config.github.writes:
        raise ConfigError(
            f"[github] mirror = {config.github.mirror}: nothing is posted to GitHub "
            "(set mirror = to-github or both)"
        )
    setup_logging("WARNING")
    db = open_database(config)
    site = site_from_zuliprc(config.zuliprc)
    with github_client(config.github, clock.now) as client:
        report = mirror(
            db, client, config.github.repository, site=site, now=clock.now, dry_run=dry_run
        )
    print("\n".join(report.lines(details=dry_run)))
    return 1 if report.failed else 0
