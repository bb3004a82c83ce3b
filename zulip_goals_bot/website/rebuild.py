"""Keeping the website current while the bot runs: a debounced rebuild in a thread of its own.

``run`` asks for a rebuild after each batch that stored or changed updates and after each digest;
requests within ``debounce`` seconds of each other make one build, and a steady stream of them
still gets one build every ``MAX_DELAY`` seconds.  The states on the site change with time too
(a goal becomes due when a period starts), so the site is also rebuilt when the week or the day
changes.  A build that fails is logged and tried again ``retry`` seconds later; nothing it does
can stop the bot.  This module imports nothing heavy: the site's libraries load on the first
build, in the rebuild thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from zulip_goals_bot.domain.events import changes_updates

if TYPE_CHECKING:
    from zulip_goals_bot.bot.context import Context
    from zulip_goals_bot.website.text import ZulipMarkdown

log = logging.getLogger(__name__)

# Requests this close together make one build: a backlog stored in slices, a burst of replies.
DEBOUNCE_SECONDS = 5.0
DEBOUNCE_ENV = "ZULIP_GOALS_BOT_SITE_DEBOUNCE_SECONDS"
# A failed build (disk full, folder gone) is tried again after this long.
RETRY_SECONDS = 60.0
RETRY_ENV = "ZULIP_GOALS_BOT_SITE_RETRY_SECONDS"
# Under a steady stream of requests the site still follows within this long.
MAX_DELAY = 60.0
# How often the thread looks at the clock (for a new week or day) and at the bot stopping.
WAKE_SECONDS = 0.5
# Events that change stored updates without storing new ones.


def changes_site(events: Sequence[Mapping[str, Any]], stored: int) -> bool:
    """Whether a stored slice of events can change what the site shows."""
    return changes_updates(events, stored)


def _seconds(env: str, default: float) -> float:
    try:
        return max(float(os.environ.get(env, default)), 0.0)
    except ValueError:
        return default


class SiteKeeper(Protocol):
    def stored(self, events: Sequence[Mapping[str, Any]], count: int) -> None: ...

    def request(self) -> None: ...


class NoSite:
    """The bot without ``[site] output``: every hook does nothing."""

    def stored(self, events: Sequence[Mapping[str, Any]], count: int) -> None:
        pass

    def request(self) -> None:
        pass


class SiteRebuilder:
    """Rebuilds the site into ``output`` from a daemon thread, debounced and retried."""

    def __init__(
        self,
        ctx: Context,
        output: Path,
        *,
        stopping: Callable[[], bool],
        debounce: float = DEBOUNCE_SECONDS,
        retry: float = RETRY_SECONDS,
    ) -> None:
        self.ctx = ctx
        self.output = output
        self.stopping = stopping
        self.debounce = debounce
        self.retry = retry
        self.builds = 0
        self.failures = 0
        self._cond = threading.Condition()
        self._first: float | None = None  # when the oldest request not yet built came
        self._last = 0.0  # when the newest request came
        self._not_before = 0.0  # after a failure: the retry time
        self._built_for: tuple[str, str] | None = None  # the (week, day) of the last build
        self._markdown: ZulipMarkdown | None = None
        self._thread = threading.Thread(target=self._loop, name="site-rebuild", daemon=True)
        self._thread.start()

    # -- hooks -----------------------------------------------------------------------------------

    def stored(self, events: Sequence[Mapping[str, Any]], count: int) -> None:
        if changes_site(events, count):
            self.request()

    def request(self) -> None:
        with self._cond:
            now = time.monotonic()
            if self._first is None:
                self._first = now
            self._last = now
            self._cond.notify()

    # -- the thread ------------------------------------------------------------------------------

    def _moment(self) -> tuple[str, str]:
        """The week and day the site's states are for; a new one needs a new build."""
        from zulip_goals_bot.website.health import this_week

        program = self.ctx.program
        now = self.ctx.clock.now()
        return this_week(now, program).key, program.today(now).isoformat()

    def _due(self, now: float) -> bool:
        if self._first is None or now < self._not_before:
            return False
        return now - self._last >= self.debounce or now - self._first >= MAX_DELAY

    def _loop(self) -> None:
        while not self.stopping():
            try:
                if self._first is None and self._moment() != self._built_for:
                    self.request()
            except Exception:
                log.exception("site: could not read the clock or the schedule")
            with self._cond:
                now = time.monotonic()
                if not self._due(now):
                    self._cond.wait(WAKE_SECONDS)
                    continue
                self._first = None
            self._build()

    def _build(self) -> None:
        from zulip_goals_bot.errors import GoalsBotError
        from zulip_goals_bot.website.build import build_site, site_settings
        from zulip_goals_bot.website.text import ZulipMarkdown

        moment = self._moment()
        try:
            settings = site_settings(self.ctx.config, self.ctx.setting.site or None)
            if self._markdown is None:
                self._markdown = ZulipMarkdown(settings.zulip_url)
            report = build_site(
                self.ctx.db,
                settings,
                self.output,
                self.ctx.clock.now(),
                markdown=self._markdown,
            )
        except Exception as exc:
            if self.stopping():
                return
            self.failures += 1
            with self._cond:
                self._first = self._first or time.monotonic()
                self._not_before = time.monotonic() + self.retry
            if isinstance(exc, GoalsBotError):
                log.error("site build failed: %s; retrying in %.0f s", exc, self.retry)
            else:
                log.exception("site build crashed; retrying in %.0f s", self.retry)
            return
        self.builds += 1
        self._built_for = moment
        log.info("site: %s", report.render())


def site_keeper(ctx: Context, stopping: Callable[[], bool]) -> SiteKeeper:
    """The bot's rebuild hook: a ``SiteRebuilder`` with ``[site] output``, else ``NoSite``."""
    output = ctx.config.site.output
    if output is None:
        return NoSite()
    return SiteRebuilder(
        ctx,
        output,
        stopping=stopping,
        debounce=_seconds(DEBOUNCE_ENV, DEBOUNCE_SECONDS),
        retry=_seconds(RETRY_ENV, RETRY_SECONDS),
    )
