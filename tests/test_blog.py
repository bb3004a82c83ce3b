"""The monthly blog post: golden output for March 2025, escaping, date bounds, the command line."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, insert

from tests.dbs import new_database_url
from tests.test_digest import (
    CREATED,
    ZWSP,
    at,
    build_program,
    check_golden,
    make_db,
    program_config,
)
from zulip_goals_bot.cli import main
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Goal, GoalOwner, Person, Update
from zulip_goals_bot.digest.blog import (
    ExportError,
    compose_blog,
    escape_html,
    export_command,
    load_blog_data,
    parse_date,
)
from zulip_goals_bot.domain.states import OwnerRole

GOLDEN_BLOG = "blog_2025-03.md"


@pytest.fixture
def march_post(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """`export blog` for March 2025 on the data set, checking what the command says."""
    db = make_db(tmp_path)
    build_program(db)
    out = tmp_path / "post.md"
    assert export_command(program_config(db.url), "2025-03-01", "2025-03-31", out) == 0
    db.dispose()
    # 13 March updates (of 16) on 12 goals; February's are left out.
    assert capsys.readouterr().out == f"wrote {out}: 13 updates on 12 goals\n"
    return out.read_text(encoding="utf-8")


def test_blog_golden(march_post: str) -> None:
    check_golden(GOLDEN_BLOG, march_post)


def test_blog_shape(march_post: str) -> None:
    post = march_post
    assert post.startswith('+++\ntitle = "Project goals update: March 2025"\n+++\n')
    assert "a slate of 40 project goals, 4 of them designated as flagship goals" in post
    headings = re.findall(r"^## (.+)$", post, re.M)
    assert headings == [
        "Flagship goals",
        "Goals looking for help",
        "Other goal updates",
        "Goals without updates this month",
    ]
    flagship = post[post.index("## Flagship goals") : post.index("## Goals looking for help")]
    assert re.findall(r"^### \[(.+?)\]", flagship, re.M) == [
        "Bring the Async Rust experience closer to parity with sync Rust",
        "Organize Rust All-Hands 2025",
        "Stabilize tooling needed by Rust for Linux",
    ]
    helping = post[post.index("## Goals looking for help") : post.index("## Other goal updates")]
    assert re.findall(r"^### \[(.+?)\]", helping, re.M) == [
        "Promoting Parallel Front End",
        "Rust Vision Document",
        "Stabilize public/private dependencies",
    ]
    assert (
        "### [Promoting Parallel Front End](https://github.com/rust-lang/goals/issues/121)\n\n"
        "**Point of contact:** @sparrowlii\n\n"
        "*Help wanted:* run `-Zthreads=8` on large workspaces and report any hang with a "
        "backtrace.\n\n<details>\n<summary>1 update this month</summary>\n\n"
        "**@sparrowlii** on 2025-03-12:\n\n> * **Key developments:**" in helping
    )
    # Two updates of the async goal, oldest first, and the TL;DR of the latest.
    async_goal = flagship[: flagship.index("### [Organize")]
    assert "<summary>2 updates this month</summary>" in async_goal
    assert async_goal.index("**@eholk** on 2025-03-03") < async_goal.index("**@tmandry** on")
    assert "**TL;DR:** `iter!` is now on nightly" in async_goal
    quiet = post[post.index("## Goals without updates this month") :]
    # Last updated in February: listed at the end, with the point of contact.
    assert (
        "* [Scalable Polonius support on nightly](https://github.com/rust-lang/goals/issues/118)"
        " (@lqd)" in quiet
    )
    assert "Run the 2025H1 project goal program" in quiet
    assert "* [Implement restrictions, prepare for stabilization](" in quiet  # no owner
    assert "Field Projections" not in post  # not accepted, no update: not part of the slate


def test_blog_is_safe_to_publish(march_post: str) -> None:
    post = march_post
    assert f"@{ZWSP}**all** attendees" in post
    assert "@**all**" not in post
    # The HTML pasted in an update cannot close the post's own <details> blocks.
    assert post.count("<details>") == post.count("</details>") == 12
    assert "&lt;details>&lt;summary>Benchmark results&lt;/summary>" in post
    assert "A stray `<br>` in a code span stays as it is." in post
    # Code blocks are quoted whole and left alone.
    assert "> ```\n> test result: FAILED. 18410 passed;" in post


def test_escape_html_leaves_code_and_autolinks_alone() -> None:
    text = (
        "See <https://github.com/rust-lang/rust/pull/1> and <br> or </details>\n"
        "`Box<T>` and ``Vec<u8>`` stay, but Box<pin T> does not\n"
        "```rust\nlet x: Vec<u8> = <details>;\n```\n"
        "<!-- hidden -->"
    )
    assert escape_html(text) == (
        "See <https://github.com/rust-lang/rust/pull/1> and &lt;br> or &lt;/details>\n"
        "`Box<T>` and ``Vec<u8>`` stay, but Box&lt;pin T> does not\n"
        "```rust\nlet x: Vec<u8> = <details>;\n```\n"
        "&lt;!-- hidden -->"
    )


def _new_york_goal(tmp_path: Path, updates: Sequence[tuple[datetime, str]]) -> Database:
    """One goal of a New York program with owner updates at the given instants."""
    db = make_db(tmp_path)
    with db.write() as session:
        owner = Person(zulip_user_id=7, full_name="Ben Owner", github="ben", created_at=CREATED)
        goal = Goal(
            period="2025h1",
            slug="g",
            title="A goal",
            tracking_url="https://example.com/issues/1",
            zulip_topic="A goal",
            created_at=CREATED,
            updated_at=CREATED,
        )
        goal.owners.append(GoalOwner(person=owner, role=OwnerRole.POINT_OF_CONTACT))
        session.add(goal)
        session.flush()
        for i, (when, text) in enumerate(updates):
            session.add(
                Update(
                    zulip_message_id=100 + i,
                    goal_id=goal.id,
                    author_id=owner.id,
                    content=text,
                    sent_at=when,
                )
            )
    return db


NEW_YORK = ZoneInfo("America/New_York")


def test_since_and_until_days_are_both_included(tmp_path: Path) -> None:
    # Midnight in New York is 05:00 UTC in March (EST) and 04:00 UTC in April (EDT).
    db = _new_york_goal(
        tmp_path,
        (
            (datetime(2025, 3, 1, 4, 59, tzinfo=UTC), "still February in New York"),
            (datetime(2025, 3, 1, 5, 0, tzinfo=UTC), "first minute of March"),
            (datetime(2025, 4, 1, 3, 59, tzinfo=UTC), "last minute of March"),
            (datetime(2025, 4, 1, 4, 0, tzinfo=UTC), "already April"),
        ),
    )
    config = replace(program_config(db.url), timezone=NEW_YORK)
    out = tmp_path / "post.md"
    export_command(config, "2025-03-01", "2025-03-31", out)
    post = out.read_text(encoding="utf-8")
    assert "first minute of March" in post and "last minute of March" in post
    assert "still February" not in post and "already April" not in post
    assert "**@ben** on 2025-03-01:" in post and "**@ben** on 2025-03-31:" in post
    assert "<summary>2 updates this month</summary>" in post


def test_without_until_the_post_covers_today_up_to_now(tmp_path: Path) -> None:
    now = datetime(2025, 3, 20, 23, 0, tzinfo=NEW_YORK)
    db = _new_york_goal(
        tmp_path,
        (
            (now - timedelta(days=1), "yesterday's news"),
            (now - timedelta(minutes=1), "sent a minute ago"),
        ),
    )
    clock = FrozenClock(now)
    config = replace(program_config(db.url), timezone=NEW_YORK)
    out = tmp_path / "post.md"
    assert export_command(config, "2025-03-01", None, out, clock=clock) == 0
    post = out.read_text(encoding="utf-8")
    assert 'title = "Project goals update: 2025-03-01 to 2025-03-20"' in post
    assert "yesterday's news" in post and "sent a minute ago" in post
    # One day is a valid range: --since and --until name the same, included, day.
    assert export_command(config, "2025-03-20", "2025-03-20", out) == 0
    post = out.read_text(encoding="utf-8")
    assert "sent a minute ago" in post and "yesterday's news" not in post


def test_partial_period_is_named_by_its_days() -> None:
    post = compose_blog([], [], datetime(2025, 3, 3).date(), datetime(2025, 3, 17).date())
    assert 'title = "Project goals update: 2025-03-03 to 2025-03-16"' in post
    assert "0 updates on 0 goals" in post


def test_bad_dates_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    config = program_config(f"sqlite:///{tmp_path / 'never.sqlite3'}")
    with pytest.raises(ExportError, match=r"--since 'March' is not a date; expected YYYY-MM-DD"):
        export_command(config, "March", None, None)
    with pytest.raises(ExportError, match=r"--until '2025-02-30' is not a date"):
        export_command(config, "2025-02-01", "2025-02-30", None)
    with pytest.raises(ExportError, match=r"--until 2025-02-28 is before --since 2025-03-01"):
        export_command(config, "2025-03-01", "2025-02-28", None)
    with pytest.raises(ExportError, match=r"the folder .*nowhere does not exist"):
        export_command(config, "2025-03-01", "2025-04-01", tmp_path / "nowhere" / "post.md")
    assert not (tmp_path / "never.sqlite3").exists()  # nothing was created
    assert parse_date(" 2025-03-01 ", "--since").isoformat() == "2025-03-01"


def test_cli_reports_a_bad_date_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "bot.conf"
    conf.write_text(f"[goals]\ndatabase = {new_database_url(tmp_path)}\n", encoding="utf-8")
    rc = main(["--config", str(conf), "export", "blog", "--since", "2025-3-1x"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err == (
        "zulip-goals-bot: error: --since '2025-3-1x' is not a date; "
        "expected YYYY-MM-DD, like 2025-03-01\n"
    )


def test_cli_prints_the_post(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "bot.conf"
    conf.write_text(f"[goals]\ndatabase = {new_database_url(tmp_path)}\n", encoding="utf-8")
    rc = main(["--config", str(conf), "export", "blog", "--since", "2025-03-01", "--until",
               "2025-03-31"])  # fmt: skip
    assert rc == 0
    out = capsys.readouterr().out
    assert out.startswith('+++\ntitle = "Project goals update: March 2025"\n+++\n')
    assert "a slate of 0 project goals" in out


def test_load_blog_data_statements_are_bounded(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    n = 1_000
    with db.write() as session:
        session.execute(
            insert(Goal),
            [
                {
                    "period": "2025h1",
                    "slug": f"goal-{i}",
                    "title": f"Goal {i}",
                    "zulip_topic": f"Goal {i}",
                    "created_at": CREATED,
                    "updated_at": CREATED,
                }
                for i in range(n)
            ],
        )
        session.execute(
            insert(Update),
            [
                {
                    "zulip_message_id": i + 1,
                    "goal_id": 1 + i % n,
                    "content": f"update {i}",
                    "sent_at": at("2025-03-01") + timedelta(minutes=i),
                }
                for i in range(10 * n)
            ],
        )
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.read() as session:
            goals, updates = load_blog_data(session, at("2025-03-01", 0), at("2025-04-01", 0))
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) <= 6  # load_goals (five) and the period's updates
    assert (len(goals), len(updates)) == (n, 10 * n)
    post = compose_blog(goals, updates, at("2025-03-01").date(), at("2025-04-01").date())
    assert post.count("<summary>10 updates this month</summary>") == n
