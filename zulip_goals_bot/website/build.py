"""``zulip-goals-bot site build``: read the database, compose the site, put it in place.

The imperative shell around the pure parts: ``data`` reads, ``health`` and ``pages`` compose,
``publish`` writes.  The bot's rebuild hook (``rebuild``) and the sandbox call ``build_site`` too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from zulip_goals_bot.bot.zulip_io import site_from_zuliprc
from zulip_goals_bot.clock import SYSTEM_CLOCK, Clock
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.website.content import SiteError
from zulip_goals_bot.website.data import load_site_data
from zulip_goals_bot.website.health import compute_health
from zulip_goals_bot.website.pages import MARKER, site_files
from zulip_goals_bot.website.publish import publish
from zulip_goals_bot.website.text import ZulipMarkdown
from zulip_goals_bot.website.views import SiteSettings


def zulip_url(config: Config) -> str | None:
    """The Zulip server's URL from the zuliprc (or ``ZULIP_SITE``), for links; None if unknown.

    Read without connecting: building a site needs no Zulip account.
    """
    site = site_from_zuliprc(config.zuliprc).strip().rstrip("/")
    if site and "://" not in site:
        site = "https://" + site  # the zulip client accepts a bare host name the same way
    return site or None


def site_settings(config: Config, zulip: str | None) -> SiteSettings:
    return SiteSettings(
        title=config.site.title,
        zulip_url=zulip,
        stream=config.stream,
        timezone=config.timezone,
        program=Program.from_config(config),
    )


@dataclass(frozen=True, slots=True)
class BuildReport:
    output: Path
    period: str
    goals: int
    updates: int
    files: int
    seconds: float

    def render(self) -> str:
        return (
            f"built the site of {self.period} in {self.output}: {self.goals} goals, "
            f"{self.updates} updates, {self.files} files ({self.seconds:.1f} s)"
        )


def build_site(
    db: Database,
    settings: SiteSettings,
    output: Path,
    now: datetime,
    *,
    period: str | None = None,
    markdown: ZulipMarkdown | None = None,
) -> BuildReport:
    """Build the site of ``period`` (default: the newest) into ``output``, replacing it whole."""
    started = time.perf_counter()
    with db.read() as session:
        data = load_site_data(session, period)
    md = markdown if markdown is not None else ZulipMarkdown(settings.zulip_url)
    health = compute_health(data, now, settings.program)
    written = publish(site_files(data, health, settings, md), output, MARKER)
    return BuildReport(
        output=output,
        period=data.period,
        goals=len(data.goals),
        updates=sum(len(ups) for ups in data.updates.values()),
        files=written,
        seconds=time.perf_counter() - started,
    )


def output_folder(config: Config, given: Path | None) -> Path:
    folder = given if given is not None else config.site.output
    if folder is None:
        raise SiteError("no output folder: pass --output DIR or set [site] output in bot.conf")
    return folder


def build_command(
    config: Config, output: Path | None, period: str | None, clock: Clock = SYSTEM_CLOCK
) -> int:
    """``zulip-goals-bot site build``: prints one line about what it built."""
    folder = output_folder(config, output)
    db = Database(config.database_url)
    db.upgrade()
    try:
        report = build_site(
            db,
            site_settings(config, zulip_url(config)),
            folder,
            clock.now(),
            period=period,
        )
    finally:
        db.dispose()
    print(report.render())
    return 0
