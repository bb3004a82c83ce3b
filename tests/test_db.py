"""Migrations and the engine: upgrade, no drift, round trip, aware times, real locking.

They run on SQLite, and on PostgreSQL with GOALS_TEST_DB=postgresql (tests/dbs.py).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from tests.dbs import new_database
from zulip_goals_bot.db.engine import Database, downgrade, upgrade
from zulip_goals_bot.db.models import Base, BotState


def make_db(tmp_path: Path) -> Database:
    return new_database(tmp_path)


def test_upgrade_creates_every_table_and_models_do_not_drift(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert db.current_revision() is not None


def test_downgrade_to_base_and_up_again(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    downgrade(db.engine, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade(db.engine)
    assert set(Base.metadata.tables) <= set(inspect(db.engine).get_table_names())


@pytest.mark.sqlite_only
def test_sqlite_pragmas(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() >= 1000


def test_times_come_back_aware_utc(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    berlin = timezone(timedelta(hours=1))
    when = datetime(2026, 11, 25, 15, 0, tzinfo=berlin)
    with db.write() as session:
        session.add(BotState(key="k", value="v", updated_at=when))
    with db.read() as session:
        row = session.execute(select(BotState)).scalar_one()
    assert row.updated_at == when
    assert row.updated_at.tzinfo == UTC


def test_concurrent_read_modify_write_loses_no_increment(tmp_path: Path) -> None:
    """Two writers each add 1, 50 times: writers serialize, so the total is exactly 100."""
    db = make_db(tmp_path)
    now = datetime.now(UTC)
    with db.write() as session:
        session.add(BotState(key="counter", value="0", updated_at=now))
    other = Database(db.url)

    def work(database: Database) -> None:
        for _ in range(50):
            with database.write() as session:
                row = session.get(BotState, "counter")
                assert row is not None
                row.value = str(int(row.value) + 1)

    threads = [threading.Thread(target=work, args=(d,)) for d in (db, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with db.read() as session:
        row = session.get(BotState, "counter")
        assert row is not None
        assert row.value == "100"


def test_schema_head_is_the_newest_migration(tmp_path: Path) -> None:
    from alembic.script import ScriptDirectory

    from zulip_goals_bot.db.engine import SCHEMA_HEAD, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD
    db = make_db(tmp_path)
    assert db.stored_revision() == db.current_revision() == SCHEMA_HEAD


def test_a_current_database_starts_without_alembic(tmp_path: Path) -> None:
    """Start-up of a database at the newest migration imports no Alembic (memory, time); an
    older one is migrated."""
    import subprocess
    import sys

    from zulip_goals_bot.db.engine import SCHEMA_HEAD

    db = make_db(tmp_path)
    url = db.engine.url.render_as_string(hide_password=False)
    check = (
        "import sys; from zulip_goals_bot.db.engine import Database; "
        f"Database({url!r}).upgrade(); print('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
    downgrade(db.engine, "0002")
    assert db.stored_revision() == "0002"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.stdout.strip() == "True", done.stderr
    assert db.stored_revision() == SCHEMA_HEAD


def test_the_start_up_checks_read_the_database_without_alembic(tmp_path: Path) -> None:
    """``run``'s set-up checks find the migration and the goals with plain SQL: the bot does not
    carry Alembic for them; a pending migration is still found."""
    import subprocess
    import sys

    from zulip_goals_bot.db.engine import SCHEMA_HEAD

    db = make_db(tmp_path)
    url = db.engine.url.render_as_string(hide_password=False)
    check = (
        "import sys; from pathlib import Path; from zulip_goals_bot.db.engine import Database; "
        "from zulip_goals_bot.config import Config; "
        "from zulip_goals_bot.doctor.gather import db_facts; "
        f"found = db_facts(Config(path=None, zuliprc=Path('z'), database_url={url!r}), "
        f"Database({url!r})); "
        "print('alembic' in sys.modules, found.current, found.head, found.goals_error)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.stdout.split() == ["False", SCHEMA_HEAD, SCHEMA_HEAD, "None"], done.stderr
    downgrade(db.engine, "0003")
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.stdout.split()[:3] == ["False", "0003", SCHEMA_HEAD], done.stderr


def test_goal_names_follow_writes_by_anyone_and_ignore_rolled_back_ones(tmp_path: Path) -> None:
    """The goals' names are kept in memory between commands, and re-read when the database says
    the goals changed: also when another process wrote them, never from an undone write."""
    from zulip_goals_bot.db.models import Goal
    from zulip_goals_bot.db.queries import goal_names

    def add(db: Database, slug: str) -> None:
        when = datetime(2026, 1, 1, tzinfo=UTC)
        with db.write() as s:
            s.add(Goal(period="p", slug=slug, title=slug.title(), zulip_topic=slug,
                       created_at=when, updated_at=when))  # fmt: skip

    db = make_db(tmp_path)
    add(db, "first")
    with db.read() as s:
        assert [g.slug for g in goal_names(s)] == ["first"]
    other = Database(db.engine.url.render_as_string(hide_password=False))  # another process
    add(other, "second")
    with db.read() as s:
        assert [g.slug for g in goal_names(s)] == ["first", "second"]
    with pytest.raises(RuntimeError), db.write() as s:
        s.add(Goal(period="p", slug="undone", title="Undone", zulip_topic="undone",
                   created_at=datetime(2026, 1, 1, tzinfo=UTC),
                   updated_at=datetime(2026, 1, 1, tzinfo=UTC)))  # fmt: skip
        assert "undone" in [g.slug for g in goal_names(s)]
        raise RuntimeError("rolled back")
    with db.read() as s:
        assert [g.slug for g in goal_names(s)] == ["first", "second"]
    with other.write() as s:
        s.execute(text("UPDATE goals SET title = 'Renamed' WHERE slug = 'first'"))
    with db.read() as s:
        assert goal_names(s)[0].title == "Renamed"
    other.dispose()
