"""Database engine, sessions and migrations.

SQLite is set up for a long-running bot: WAL so readers never block the writer, a busy timeout, and
write transactions that start with ``BEGIN IMMEDIATE`` so two writers serialize instead of losing
an update (pysqlite's default deferred BEGIN lets both read, then one fails or overwrites).
PostgreSQL gets the same promise from a transaction-level advisory lock taken first thing in every
write transaction (READ COMMITTED alone would let two read-modify-writes lose one of them).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from zulip_goals_bot.errors import StorageError

log = logging.getLogger(__name__)

# How long a writer waits for another writer's lock before SQLite says "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 5_000
# PostgreSQL advisory lock that serializes writers, like SQLite's single write lock ("GOAW").
PG_WRITE_LOCK_KEY = 0x474F4157
# The newest migration in migrations/versions (a test checks it against Alembic's head): a
# database at it needs no Alembic at start-up.
SCHEMA_HEAD = "0006"


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let the "begin" event below issue BEGIN itself (pysqlite's legacy mode would not).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def create_db_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _sqlite_setup(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg"))
    return create_engine(url, pool_pre_ping=True)


class Database:
    """The one object the rest of the code asks for sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.is_postgres = self.engine.dialect.name == "postgresql"
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(
            self.engine.execution_options(sqlite_begin="DEFERRED"), expire_on_commit=False
        )
        # SQLite writers of this process queue here rather than in SQLite's busy handler, which
        # sleeps in steps that grow to 100 ms: a reply stored while the sender thread marked
        # acknowledgements could wait that long.  Other processes still meet the busy timeout.
        self._write_lock = threading.RLock()

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed on success, rolled back on error."""
        if self.is_sqlite and not self._write_lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            raise StorageError(
                "the database is busy: another part of the bot held the write lock for "
                f"{SQLITE_BUSY_TIMEOUT_MS / 1000:g} s"
            )
        try:
            with self._writer() as session:
                try:
                    with session.begin():
                        if self.is_postgres:
                            _serialize_writers(session)
                        yield session
                except OperationalError as exc:
                    raise StorageError(_describe(exc)) from exc
        finally:
            if self.is_sqlite:
                self._write_lock.release()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read transaction that never takes SQLite's write lock."""
        with self._reader() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Apply migrations; the first connection, so an unusable database is one clear error.

        A database already at ``SCHEMA_HEAD`` is left alone without importing Alembic (its
        import alone costs the bot's start-up about 7 MB and a tenth of a second).
        """
        try:
            if self.stored_revision() == SCHEMA_HEAD:
                return
            upgrade(self.engine)
        except OperationalError as exc:
            where = self.engine.url.render_as_string(hide_password=True)
            raise StorageError(f"cannot use the database {where}: {_describe(exc)}") from exc

    def stored_revision(self) -> str | None:
        """The migration the database is at, read with plain SQL; None for a new database."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            found = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return str(found) if found is not None else None

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()


def _serialize_writers(conn: Session | Connection) -> None:
    """Wait for other writers on PostgreSQL; the lock goes with the transaction."""
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_WRITE_LOCK_KEY})


def _describe(exc: OperationalError) -> str:
    msg = str(exc.orig) if exc.orig is not None else str(exc)
    lowered = msg.lower()
    if "locked" in lowered or "busy" in lowered:
        return f"the database is busy (another writer holds the lock): {msg}"
    if "readonly" in lowered or "read-only" in lowered:
        return f"the database is read-only: {msg}"
    if "disk" in lowered and "full" in lowered:
        return f"the disk is full: {msg}"
    if "unable to open" in lowered:
        return (
            "the database file cannot be opened or created (is its folder writable and the "
            f"file system not read-only?): {msg}"
        )
    return f"database error: {msg}"


def migrations_dir() -> Path:
    """The Alembic scripts: top-level migrations/, shipped as zulip_goals_bot.migrations."""
    try:
        found = resources.files("zulip_goals_bot.migrations")
        path = Path(str(found))
        if (path / "env.py").exists():
            return path
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(engine: Engine | None = None) -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two processes starting at once on a new database must not both create the tables.
            _serialize_writers(conn)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
