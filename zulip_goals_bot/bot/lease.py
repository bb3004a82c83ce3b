"""Only one bot may send: a lease that a second ``run`` on the same database cannot take.

SQLite: an exclusive ``flock`` on a file next to the database; the kernel frees it when the
process dies, even by SIGKILL, so a crash never leaves a stale lock behind.
PostgreSQL: a session-level advisory lock held on a dedicated connection; a second process waits
as a standby and takes over when the leader's connection goes away.  The leader watches that
connection and stops when it is gone (a restarted server, a terminated session): the standby may
already be sending by then.
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

from zulip_goals_bot.errors import LeaseError

log = logging.getLogger(__name__)

# An arbitrary constant naming our advisory lock in PostgreSQL's shared lock space ("GOAL").
ADVISORY_LOCK_KEY = 0x474F414C
# How often a standby asks whether the leader has gone, and the leader whether it still leads.
STANDBY_POLL_SECONDS = 2.0


class Lease:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._file: IO[str] | None = None
        self._conn: Any = None
        self._backend_pid: int | None = None
        # How often this lease asked PostgreSQL whether it holds (or may take) the lock: a test
        # waits for more of these before it asserts that a standby still waits or a leader leads.
        self.polls = 0

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
            self.polls += 1
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}
            ).scalar()
            conn.commit()
            if got:
                self._conn = conn
                self._backend_pid = self._session_pid()
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

    def _session_pid(self) -> int:
        self.polls += 1
        pid = int(self._conn.execute(text("SELECT pg_backend_pid()")).scalar())
        self._conn.commit()
        return pid

    def still_held(self) -> bool:
        """False when the PostgreSQL session holding the advisory lock is gone.

        The lock lives as long as its server session; a connection that silently reconnected
        is a new session without it, hence the comparison of the server process ids.
        """
        if self._conn is None:
            return True
        try:
            return self._session_pid() == self._backend_pid
        except Exception:
            with contextlib.suppress(Exception):
                self._conn.rollback()
            return False

    def watch(self, stop: threading.Event) -> threading.Event:
        """Check the lease in the background; on loss, set the returned event and ``stop``."""
        lost = threading.Event()

        def check() -> None:
            while not stop.wait(STANDBY_POLL_SECONDS):
                if not self.still_held():
                    log.error(
                        "lost the lease: the database session holding it is gone; stopping, "
                        "since another bot may be sending now"
                    )
                    lost.set()
                    stop.set()
                    return

        if self._conn is not None:
            threading.Thread(target=check, name="lease", daemon=True).start()
        return lost

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
