"""Databases for tests: a fresh SQLite file, or a fresh database on a throwaway PostgreSQL server.

``GOALS_TEST_DB=postgresql`` runs the database part of the suite on PostgreSQL.  The server is
started once per test session (``initdb`` into a temporary folder, ``pg_ctl start`` on a free
port of 127.0.0.1) and stopped at the end; every test gets its own database.  ``DATABASE_URL``
(a ``postgresql://`` URL whose user may create databases) is used instead of starting a server.
Where neither exists the PostgreSQL tests are skipped, and the session says so at the end.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import glob
import itertools
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL, make_url

from zulip_goals_bot.db.engine import Database

# Selects the backend of the database part of the suite.
DB_ENV = "GOALS_TEST_DB"
# An existing PostgreSQL server to create the per-test databases on, instead of starting one.
URL_ENV = "DATABASE_URL"
# A folder with initdb/pg_ctl, when they are neither in /usr/lib/postgresql nor on PATH.
BIN_ENV = "PG_BIN"
# PostgreSQL refuses to run as root; as root the server runs as this system user.
SERVER_USER = "postgres"
# Per-test databases are named with this prefix (and dropped at the end on a shared server).
NAME_PREFIX = "goals_test"
# Every test opens a few connections and some keep their engine until garbage collection.
MAX_CONNECTIONS = 400
# pg_ctl's own limit for start and stop.
PG_CTL_TIMEOUT_SECONDS = 60
# Ports are picked free, but another process may bind one before the server does.
START_ATTEMPTS = 3


class Backend(enum.StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


def backend() -> Backend:
    """The backend the database part of the suite runs on (``GOALS_TEST_DB``)."""
    value = os.environ.get(DB_ENV, "").strip().lower()
    if value in ("", "sqlite"):
        return Backend.SQLITE
    if value in ("postgresql", "postgres", "pg"):
        return Backend.POSTGRESQL
    raise pytest.UsageError(f"{DB_ENV}={value!r}: expected 'sqlite' or 'postgresql'")


def on_postgres() -> bool:
    return backend() is Backend.POSTGRESQL


def new_database_url(tmp_path: Path, name: str = "goals") -> str:
    """The URL of a new, empty database for one test, on the selected backend."""
    if on_postgres():
        return new_postgres_url(name)
    return f"sqlite:///{tmp_path / name}.sqlite3"


def new_database(tmp_path: Path, name: str = "goals") -> Database:
    """A new database with every migration applied, on the selected backend."""
    if on_postgres():
        return _track(Database(_server().create_database(name, migrated=True)))
    db = _track(Database(new_database_url(tmp_path, name)))
    db.upgrade()
    return db


def new_postgres_url(name: str = "goals", *, migrated: bool = False) -> str:
    """A new PostgreSQL database whatever the selected backend; skips when there is none."""
    return _server().create_database(name, migrated=migrated)


def postgres_available() -> bool:
    return bool(os.environ.get(URL_ENV)) or find_bin_dir() is not None


def find_bin_dir() -> Path | None:
    """The newest PostgreSQL server binaries on this machine, if any."""
    explicit = os.environ.get(BIN_ENV)
    candidates = [explicit] if explicit else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=_version_key, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


# --- what the session reports at the end --------------------------------------------------


def missing_reason() -> str:
    return (
        "PostgreSQL tests skipped: no PostgreSQL server binaries (initdb, pg_ctl) in "
        f"/usr/lib/postgresql/*/bin or on PATH, and no {URL_ENV}; install the 'postgresql' "
        f"package, set {BIN_ENV} to their folder, or set {URL_ENV}=postgresql://..."
    )


def summary_lines() -> list[str]:
    """Lines for the end of the session: which PostgreSQL was used, or why none was."""
    lines: list[str] = []
    if _state.skipped:
        lines.append(f"WARNING: {_state.skipped} tests did not run: {missing_reason()}")
    if _state.used:
        lines.append(f"PostgreSQL tests ran on {_state.used}")
    return lines


# --- the server ---------------------------------------------------------------------------


@dataclass
class _State:
    server: _Server | None = None
    failure: str | None = None
    skipped: int = 0
    used: str = ""
    open: list[Database] = field(default_factory=list)


_state = _State()
_lock = threading.Lock()
_counter = itertools.count(1)


def _track(db: Database) -> Database:
    _state.open.append(db)
    return db


def dispose_tracked() -> None:
    """Close the engines the finished test created through this module."""
    while _state.open:
        _state.open.pop().dispose()


def _server() -> _Server:
    with _lock:
        if _state.server is not None:
            return _state.server
        if _state.failure is not None:
            pytest.fail(_state.failure, pytrace=False)
        if not postgres_available():
            _state.skipped += 1
            pytest.skip(missing_reason())
        try:
            url = os.environ.get(URL_ENV)
            server: _Server = _Existing(url) if url else _Throwaway.start()
        except Exception as exc:
            _state.failure = f"could not start a throwaway PostgreSQL server: {exc}"
            pytest.fail(_state.failure, pytrace=False)
        _state.server = server
        _state.used = server.describe()
        atexit.register(stop_server)
        return server


def stop_server() -> None:
    """Drop the per-test databases, stop the throwaway server; safe to call twice."""
    dispose_tracked()
    with _lock:
        server, _state.server = _state.server, None
    if server is not None:
        server.close()


class _Server:
    """Where per-test databases are created: a template with every migration applied."""

    admin_url: URL
    created: list[str]
    template: str | None

    def create_database(self, label: str, *, migrated: bool) -> str:
        name = f"{NAME_PREFIX}_{os.getpid()}_{next(_counter)}_{_slug(label)}"[:63]
        source = self._template() if migrated else "template0"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        self.created.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def _template(self) -> str:
        if self.template is None:
            name = f"{NAME_PREFIX}_{os.getpid()}_template"
            self._admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
            self.created.append(name)
            db = Database(self.admin_url.set(database=name).render_as_string(hide_password=False))
            try:
                db.upgrade()
            finally:
                db.dispose()
            self.template = name
        return self.template

    def _admin(self, *statements: str) -> None:
        import psycopg

        conninfo = self.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    def drop_created(self) -> None:
        if self.created:
            with contextlib.suppress(Exception):
                self._admin(*(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in self.created))
        self.created = []

    def describe(self) -> str:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Existing(_Server):
    """The server named by DATABASE_URL; only our own databases are created and dropped."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() != "postgresql":
            raise ValueError(f"{URL_ENV} must be a postgresql:// URL, not {parsed.drivername}")
        self.admin_url = parsed.set(drivername="postgresql+psycopg")
        self.created = []
        self.template = None
        self._admin("SELECT 1")

    def describe(self) -> str:
        return f"{URL_ENV} ({self.admin_url.render_as_string(hide_password=True)})"

    def close(self) -> None:
        self.drop_created()


class _Throwaway(_Server):
    """initdb into a temporary folder and pg_ctl start; as root, run as the postgres user."""

    def __init__(self, bin_dir: Path, folder: Path, port: int, user: pwd.struct_passwd | None):
        self.bin_dir = bin_dir
        self.folder = folder
        self.port = port
        self.user = user
        self.created = []
        self.template = None
        self.admin_url = URL.create(
            "postgresql+psycopg", username="postgres", host="127.0.0.1", port=port,
            database="postgres",
        )  # fmt: skip

    @classmethod
    def start(cls) -> _Throwaway:
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        user = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"PostgreSQL refuses to run as root and there is no {SERVER_USER!r} user "
                    f"to run it as; create one, run the tests as another user, or set {URL_ENV}"
                ) from None
        folder = Path(tempfile.mkdtemp(prefix="goals-test-pg-"))
        if user is not None:
            os.chown(folder, user.pw_uid, user.pw_gid)
        server = cls(bin_dir, folder, _free_port(), user)
        try:
            server._run(
                "initdb", "-D", str(folder / "data"), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            )  # fmt: skip
            for attempt in range(START_ATTEMPTS):
                try:
                    server._pg_ctl_start()
                    break
                except RuntimeError:
                    # Another process may have taken the free port in the meantime.
                    if attempt == START_ATTEMPTS - 1:
                        raise
                    server.port = _free_port()
            server.admin_url = server.admin_url.set(port=server.port)
        except Exception:
            server.close()
            raise
        return server

    def _pg_ctl_start(self) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": self.port,
            "unix_socket_directories": self.folder,
            "max_connections": MAX_CONNECTIONS,
            # A throwaway server: durability only costs time.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        options = [arg for k, v in settings.items() for arg in ("-c", f"{k}={v}")]
        self._run(
            "pg_ctl", "start", "-D", str(self.folder / "data"), "-l",
            str(self.folder / "server.log"), "-w", "-t", str(PG_CTL_TIMEOUT_SECONDS),
            "-o", shlex.join(options),
        )  # fmt: skip

    def _run(self, program: str, *args: str) -> None:
        kwargs: dict[str, Any] = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        done = subprocess.run(
            [str(self.bin_dir / program), *args],
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=PG_CTL_TIMEOUT_SECONDS + 30,
            check=False,
            **kwargs,
        )
        if done.returncode != 0:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout}"
                + (f"\nserver log:\n{tail}" if tail else "")
            )

    def describe(self) -> str:
        return f"a throwaway server ({self.bin_dir}, port {self.port})"

    def close(self) -> None:
        if (self.folder / "data" / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "stop", "-D", str(self.folder / "data"), "-m", "immediate",
                          "-w")  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_") or "db"
