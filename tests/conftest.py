"""Suite-wide hooks: the database backend (see tests/dbs.py) and the ``sqlite_only`` marker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import dbs


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sqlite_only: about SQLite itself (files, pragmas, flock); skipped with "
        f"{dbs.DB_ENV}=postgresql",
    )
    dbs.backend()  # a misspelt GOALS_TEST_DB stops the session at once


def pytest_report_header(config: pytest.Config) -> str:
    return f"database tests on: {dbs.backend().value} ({dbs.DB_ENV})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not dbs.on_postgres():
        return
    skip = pytest.mark.skip(reason=f"SQLite only; {dbs.DB_ENV}=postgresql")
    for item in items:
        if item.get_closest_marker("sqlite_only"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _dispose_test_databases() -> Iterator[None]:
    """Engines made by tests/dbs.py close with their test, not at garbage collection."""
    yield
    dbs.dispose_tracked()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    dbs.stop_server()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in dbs.summary_lines():
        markup = {"yellow": True, "bold": True} if line.startswith("WARNING") else {}
        terminalreporter.write_line(line, **markup)


@pytest.fixture(autouse=True)
def _sweep_bot_messages() -> Iterator[None]:
    """Fail a test if a bot sent a wildcard mention or pinged someone it did not address (every
    emulated server is checked), or if an API key shows in a bot log or command output (see
    tests/test_security.py)."""
    from tests.test_security import BotMessageSweep

    sweep = BotMessageSweep.install()
    yield
    problems = sweep.check()
    if problems:
        pytest.fail("unsafe mentions in bot messages:\n" + "\n".join(problems), pytrace=False)
    leaks = sweep.leaked_secrets()
    if leaks:
        pytest.fail("secrets in logs or output:\n" + "\n".join(leaks), pytrace=False)
