"""The bridge as the running bot uses it: one pass (sync, then mirror) every ``sync_minutes``.

A pass never raises: GitHub being down, refusing the token or rate-limiting is logged and the
next pass tries again, so no GitHub trouble ever stops the bot's Zulip work; what a pass did not
do stays owed in the database (a comment not yet read is still on GitHub, an update not yet
mirrored has no ``posted`` row) and a later pass does it, once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..config import Config
from ..db.engine import Database
from ..errors import GoalsBotError
from .client import GitHubClient
from .connect import github_client

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PassResult:
    """What one pass did, and when the next one should come (sooner or later than usual)."""

    changes: int = 0
    failed: bool = False
    next_at: datetime | None = None


class GitHubBridge:
    """Holds the client between passes (an App's installation token lasts an hour)."""

    def __init__(
        self,
        config: Config,
        db: Database,
        now: Callable[[], datetime],
        site: str,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.db = db
        self.now = now
        self.site = site
        self.on_change = on_change
        self.passes = 0
        self._client: GitHubClient | None = None
        self._lock = threading.Lock()  # passes take turns (the interval and a manual call)

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.config.github.sync_minutes)

    def _connect(self) -> GitHubClient:
        if self._client is None:
            self._client = github_client(self.config.github, self.now)
        return self._client

    def run_once(self) -> PassResult:
        """Read the tracking issues (mirror from-github/both), then post what Zulip owes them
        (to-github/both). Logs one ``github pass N done`` line, which tests wait for."""
        from .sync import sync

        cfg = self.config.github
        with self._lock:
            self.passes += 1
            changes, failed = 0, False
            next_at: datetime | None = None
            try:
                client = self._connect()
                if cfg.reads:
                    report = sync(self.db, client, cfg.repository, now=self.now)
                    changes += report.changes
                    failed = report.stopped is not None or any(r.error for r in report.issues)
                    if report.stopped is not None and report.retry_at is None:
                        log.error("github pass %d: %s", self.passes, report.stopped)
                    next_at = report.retry_at
                if cfg.writes and next_at is None:
                    from .mirror import mirror

                    mirrored = mirror(self.db, client, cfg.repository, site=self.site, now=self.now)
                    changes += mirrored.posted + mirrored.edited + mirrored.moved + mirrored.deleted
                    failed = failed or mirrored.failed > 0
                    next_at = mirrored.retry_at
            except GoalsBotError as exc:
                log.error("github pass %d failed: %s; the next pass tries again", self.passes, exc)
                failed = True
            except Exception:
                log.exception("github pass %d crashed; the next pass tries again", self.passes)
                failed = True
            log.info("github pass %d done: %d changes%s", self.passes, changes,
                     ", with failures" if failed else "")  # fmt: skip
            if changes:
                self.on_change()
            return PassResult(changes, failed, next_at)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
