"""The blog post's "Goals that need help": with ``export blog --group-health`` the goals whose
owners call them blocked or at risk come first, in a section of their own, and every goal shows
its health as it stood at the end of the post's range.

The data set is the March 2025 one of ``tests/test_blog.py``, with a health stated on some of its
updates and a reaction made in April; without the option the post is the golden one, unchanged.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from tests.test_blog import GOLDEN_BLOG
from tests.test_digest import at, build_program, check_golden, make_db, program_config
from zulip_goals_bot.cli import main
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Goal, HealthReaction, Update
from zulip_goals_bot.digest.blog import NEEDS_HELP, compose_blog, export_command
from zulip_goals_bot.domain.health import Health

# Update (by Zulip message id, tests/test_digest.py's UPDATES from 5000) -> the health it states.
STATED = {
    5000: Health.AT_RISK,  # async, 03-03
    5001: Health.BLOCKED,  # async, 03-14: blocked since then
    5002: Health.ON_TRACK,  # rfl (flagship), 03-15
    5004: Health.AT_RISK,  # parallel-front-end, 03-12, which also asks for help
    5007: Health.ON_TRACK,  # next-solver, 03-13
    5008: Health.AT_RISK,  # Polonius, in February: no news in March
    5013: Health.ON_TRACK,  # ergonomic-rc, in February
}
# next-solver's owner reacts :red_circle: on a prompt in April: after March, so not in its post.
APRIL_REACTION = ("next-solver", at("2025-04-02", 14), Health.BLOCKED)

ASYNC = "Bring the Async Rust experience closer to parity with sync Rust"
PARALLEL = "Promoting Parallel Front End"
POLONIUS = "Scalable Polonius support on nightly"


def with_health(tmp_path: Path) -> Database:
    db = make_db(tmp_path)
    build_program(db)
    with db.write() as session:
        for message, health in STATED.items():
            row = session.query(Update).filter(Update.zulip_message_id == message).one()
            row.health = health
        slug, when, health = APRIL_REACTION
        goal = session.query(Goal).filter(Goal.slug == slug).one()
        session.add(
            HealthReaction(
                goal_id=goal.id,
                zulip_message_id=7000,
                zulip_user_id=1234,
                emoji_name="red_circle",
                health=health,
                reacted_at=when,
            )
        )
    return db


def export(db: Database, tmp_path: Path, since: str, until: str, *, group: bool) -> str:
    out = tmp_path / "post.md"
    assert export_command(program_config(db.url), since, until, out, group_health=group) == 0
    return out.read_text(encoding="utf-8")


def section(post: str, heading: str) -> str:
    start = post.index(f"## {heading}\n")
    following = post.find("\n## ", start + 1)
    return post[start : following if following >= 0 else None]


def titles(text: str) -> list[str]:
    return re.findall(r"^### \[(.+?)\]", text, re.M)


def test_without_the_option_the_post_is_the_golden_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = with_health(tmp_path)
    check_golden(GOLDEN_BLOG, export(db, tmp_path, "2025-03-01", "2025-03-31", group=False))
    db.dispose()


def test_goals_that_need_help_come_first_with_their_health(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = with_health(tmp_path)
    post = export(db, tmp_path, "2025-03-01", "2025-03-31", group=True)
    db.dispose()
    assert re.findall(r"^## (.+)$", post, re.M) == [
        NEEDS_HELP,
        "Flagship goals",
        "Goals looking for help",
        "Other goal updates",
        "Goals without updates this month",
    ]
    assert "Their owners call 3 goals blocked or at risk: they come first." in post
    needing = section(post, NEEDS_HELP)
    # Blocked first, then at risk by title, news or not; each goal is listed once in the post.
    assert titles(needing) == [ASYNC, PARALLEL, POLONIUS]
    for title in (ASYNC, PARALLEL, POLONIUS):
        assert post.count(f"[{title}]") == 1, title
    async_goal, parallel, polonius = re.split(r"\n(?=### )", needing)[1:]
    assert "**Health:** blocked since 2025-03-14\n" in async_goal
    assert "<summary>2 updates this month</summary>" in async_goal
    assert "**Health:** at risk since 2025-03-12\n" in parallel
    assert "*Help wanted:* run `-Zthreads=8`" in parallel
    # Polonius said at risk in February and nothing in March: it needs help all the same.
    assert "**Health:** at risk since 2025-02-20\n" in polonius
    assert polonius.rstrip().endswith("No update this month.")
    assert "<details>" not in polonius
    # The rest as before, with the health of those that said one.
    assert titles(section(post, "Flagship goals")) == [
        "Organize Rust All-Hands 2025",
        "Stabilize tooling needed by Rust for Linux",
    ]
    assert "**Health:** on track since 2025-03-15\n" in section(post, "Flagship goals")
    assert titles(section(post, "Goals looking for help")) == [
        "Rust Vision Document",
        "Stabilize public/private dependencies",
    ]
    other = section(post, "Other goal updates")
    # The April reaction is after the post's range: March ends with next-solver on track.
    next_solver = other[other.index("### [Next-generation trait solver]") :]
    assert next_solver.split("\n### ")[0].count("**Health:** on track since 2025-03-13") == 1
    assert "blocked" not in next_solver.split("\n### ")[0].split("<details>")[0]
    quiet = section(post, "Goals without updates this month")
    assert "* [Experiment with ergonomic ref-counting](" in quiet
    assert re.search(r"^\* \[Experiment with ergonomic ref-counting\]\(.+\) \(.+\), on track$",
                     quiet, re.M)  # fmt: skip
    assert POLONIUS not in quiet
    assert post.count("<details>") == post.count("</details>") == 12  # the goals with news


def test_a_later_call_counts_in_a_later_post(tmp_path: Path) -> None:
    db = with_health(tmp_path)
    post = export(db, tmp_path, "2025-04-01", "2025-04-30", group=True)
    db.dispose()
    needing = section(post, NEEDS_HELP)
    assert titles(needing) == [ASYNC, "Next-generation trait solver", PARALLEL, POLONIUS]
    assert "**Health:** blocked since 2025-04-02\n\nNo update this month." in needing


def test_without_calls_that_need_help_there_is_no_such_section() -> None:
    post = compose_blog([], [], date(2025, 3, 1), date(2025, 4, 1), group_health=True)
    assert f"## {NEEDS_HELP}" not in post
    assert "No goal's owners call it blocked or at risk." in post


def test_the_command_line_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = with_health(tmp_path)
    conf = tmp_path / "bot.conf"
    conf.write_text(f"[goals]\ndatabase = {db.url}\n", encoding="utf-8")
    db.dispose()
    base = ["--config", str(conf), "export", "blog", "--since", "2025-03-01", "--until",
            "2025-03-31"]  # fmt: skip
    assert main([*base, "--group-health"]) == 0
    grouped = capsys.readouterr().out
    assert titles(section(grouped, NEEDS_HELP)) == [ASYNC, PARALLEL, POLONIUS]
    assert main(base) == 0
    plain = capsys.readouterr().out
    assert NEEDS_HELP not in plain and "**Health:**" not in plain
