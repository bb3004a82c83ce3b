"""Only one bot may send: a lease that a second ``run`` on the same database cannot take.

SQLite: an exclusive ``flock`` on a file next to the database; the kernel frees it when the
process dies, even by SIGKILL, so a crash never leaves a stale lock behind.
PostgreSQL: a session-level advisory lock held on a dedicated connection; a second process waits
as a standby and takes over when the leader's connection goes away.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from .errors import LeaseError

log = logging.getLogger(__name__)

# An arbitrary constant naming our advisory lock in PostgreSQL's shared lock space ("GOAL").
ADVISORY_LOCK_KEY = 0x474F414C
# How often a standby asks whether the leader has gone.
STANDBY_POLL_SECONDS = 2.0


class Lease:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._file: IO[str] | None = None
        self._conn: Any = None

    def acquire(self, stop: threading.Event | None = None, *, wait: bool = False) -> bool:
        """Take the lease; SQLite refuses at once, PostgreSQL waits when ``wait`` is set."""
        if self.engine.dialect.name == "sqlite":
            self._acquire_file()
            return True
        return self._acquire_advisory(stop, wait)

    def _acquire_file(self) -> None:
        database = make_url(str(self.engine.url)).database or ""
        if not database or database == ":memory:":
            return
        path = Path(database + ".lock")
        fh = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise LeaseError(
                f"another zulip-goals-bot ({holder}) is already running on {database}; "
                "only one bot may send at a time (stop it first, or use PostgreSQL for a standby)"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._file = fh

    def _acquire_advisory(self, stop: threading.Event | None, wait: bool) -> bool:
        conn = self.engine.connect()
        announced = False
        while True:
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}
            ).scalar()
            conn.commit()
            if got:
                self._conn = conn
                if announced:
                    log.info("the leader is gone: this process now sends")
                return True
            if not wait:
                conn.close()
                raise LeaseError("another zulip-goals-bot holds the lease on this database")
            if not announced:
                log.info("another bot is the leader; waiting as a standby")
                announced = True
            if stop is not None and stop.wait(STANDBY_POLL_SECONDS):
                conn.close()
                return False
            if stop is None:
                threading.Event().wait(STANDBY_POLL_SECONDS)

    def still_held(self) -> bool:
        """False when the PostgreSQL session holding the advisory lock is gone."""
        if self._conn is None:
            return True
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception:
            return False

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                self._conn.close()
            self._conn = None
