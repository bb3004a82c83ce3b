"""`zulip-goals-bot sandbox`: the pure helpers, then whole scripted sessions as subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from zulip_goals_bot.errors import GoalsBotError
from zulip_goals_bot.sandbox import (
    Line,
    Member,
    format_delta,
    hour_steps,
    match_person,
    message_text,
    parse_duration,
    parse_start,
    plain_text,
    render_message,
    script_lines,
)

ROOT = Path(__file__).resolve().parents[1]
START = "2025-03-03T10:00"  # a Monday; prompts go out on Thursdays at 14:00 UTC

# A whole week: the prompt, two owners answering (one in the topic, one by DM), one silent,
# the reminder, a status question and the digest.
WEEK = """\
# the sandbox starts with the sample goals imported
/goals
/advance prompt
/advance 12h
/as ben
/topic incremental builds
TL;DR: the cache survives restarts.\\nHelp wanted: a second reviewer.
/as dev
/dm
TL;DR: clearer notes for missing impls.
/as eve
status async closures
/advance 3d
/advance digest
"""


# --- pure helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3d", timedelta(days=3)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("1w", timedelta(weeks=1)),
        ("1d 12h", timedelta(days=1, hours=12)),
        ("2W3D", timedelta(weeks=2, days=3)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "3", "-3d", "3 days", "d3", "3d soon", "1.5h"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_delta() -> None:
    assert format_delta(timedelta(days=3, hours=4)) == "3d 4h"
    assert format_delta(timedelta(minutes=30)) == "30m"


def test_time_is_replayed_hour_by_hour_ending_at_the_target() -> None:
    start = datetime(2025, 3, 3, 10, 30, tzinfo=UTC)
    steps = hour_steps(start, start + timedelta(hours=2))
    assert [s.strftime("%H:%M") for s in steps] == ["11:00", "12:00", "12:30"]
    assert hour_steps(start, start + timedelta(minutes=10)) == [start + timedelta(minutes=10)]


def test_start_is_utc_unless_it_says_otherwise() -> None:
    now = datetime(2030, 1, 1, 8, 15, 42, tzinfo=UTC)
    assert parse_start(None, now) == datetime(2030, 1, 1, 8, 15, tzinfo=UTC)
    assert parse_start("2025-03-03T10:00", now) == datetime(2025, 3, 3, 10, tzinfo=UTC)
    assert parse_start("2025-03-03T10:00+01:00", now) == datetime(2025, 3, 3, 9, tzinfo=UTC)
    with pytest.raises(GoalsBotError, match="--start 'next monday'"):
        parse_start("next monday", now)


PEOPLE = [
    Member(1, "Goals Bot", "goals-bot@example.com", "", is_bot=True),
    Member(2, "Ben Owner", "ben@example.com", "Europe/Berlin", github="ben-owner"),
    Member(3, "Chloé Owner", "chloe@example.com", "America/New_York"),
    Member(4, "Eve Lead", "eve@example.com", "UTC"),
]


def test_people_are_found_by_prefix_without_accents() -> None:
    assert match_person("chloe", PEOPLE).person == PEOPLE[2]
    assert match_person("CHLO", PEOPLE).person == PEOPLE[2]
    assert match_person("lead", PEOPLE).person == PEOPLE[3]
    assert match_person("@ben-owner", PEOPLE).person == PEOPLE[1]
    assert match_person("eve@example.com", PEOPLE).person == PEOPLE[3]


def test_ambiguous_unknown_and_bot_names_are_explained() -> None:
    owner = match_person("owner", PEOPLE)
    assert owner.person is None
    assert owner.problem() == "'owner' could be Ben Owner, Chloé Owner; type more of the name."
    assert match_person("zed", PEOPLE).problem() == "Nobody is called 'zed'; /who lists the people."
    assert match_person("goals", PEOPLE).person is None


def test_zulip_markdown_reads_plainly_in_a_terminal() -> None:
    text = (
        "@**Ben Owner|12**: see #**project-goals>Polonius (goals#118)**, asked "
        "<time:2025-03-06T14:00:00+00:00> by @_**Eve Lead|4**; [#118](https://x.org/118)"
    )
    assert plain_text(text) == (
        "@Ben Owner: see #project-goals > Polonius (goals#118), asked "
        "Thu 2025-03-06 14:00 UTC by @Eve Lead; #118"
    )
    link = "[#project-goals > Ship @\u200b*team*](#narrow/stream/3-project-goals/topic/Ship)"
    assert plain_text(f"**Topic**: {link}") == "**Topic**: #project-goals > Ship @*team*"
    # A mention the bot neutralized stays visibly not a mention.
    assert plain_text("@\u200b**all**") == "@**all**"


def test_messages_say_who_where_and_what() -> None:
    stream = {
        "type": "stream",
        "display_recipient": "project-goals",
        "subject": "Polonius (goals#118)",
        "sender_id": 5,
        "sender_full_name": "Goals Bot",
        "content": "Hi @**Ben Owner|12**",
    }
    assert (
        render_message(stream) == "[#project-goals > Polonius (goals#118)] Goals Bot: Hi @Ben Owner"
    )
    dm = {
        "type": "private",
        "display_recipient": [{"id": 5, "full_name": "Goals Bot"}, {"id": 12, "full_name": "Ben"}],
        "sender_id": 5,
        "sender_full_name": "Goals Bot",
        "content": "line one\n\nline two",
    }
    assert render_message(dm) == "[DM Goals Bot -> Ben]\n    line one\n\n    line two"


def test_lines_commands_and_comments() -> None:
    assert Line.parse("/advance 3d") == Line("advance", "3d")
    assert Line.parse("  /AS  Ben Owner ") == Line("as", "Ben Owner")
    assert Line.parse("TL;DR: done") == Line(None, "TL;DR: done")
    assert list(script_lines(["# comment", "", "  ", "/who\n", "hello\r\n"])) == ["/who", "hello"]
    assert message_text("@bot status x\\nmore", "Goals Bot") == "@**Goals Bot** status x\nmore"


# --- whole sessions ---------------------------------------------------------------------------
# The sandbox keeps its state in a SQLite file whatever GOALS_TEST_DB says.


def sandbox(
    tmp_path: Path, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "zulip_goals_bot.cli", "sandbox", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp_path,
    )


def blocks(transcript: str) -> dict[str, str]:
    """The output of each scripted command, keyed by the command as echoed (``> line``)."""
    out: dict[str, str] = {}
    current = ""
    for line in transcript.splitlines():
        if line.startswith("> "):
            current = line[2:]
            out[current] = ""
        elif current:
            out[current] += line + "\n"
    return out


def bot_messages(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.startswith("[") and "] Goals Bot" in line]


@pytest.mark.sqlite_only
def test_a_scripted_week_shows_prompts_replies_reminder_and_digest(tmp_path: Path) -> None:
    script = tmp_path / "week.txt"
    script.write_text(WEEK, encoding="utf-8")
    started = time.monotonic()
    result = sandbox(tmp_path, "--script", str(script), "--start", START)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 15
    out = result.stdout
    assert "Imported the sample goals: 4 created." in out
    assert "Owners without a Zulip account (never prompted): @frank-docs." in out
    b = blocks(out)

    goals = b["/goals"]
    for topic in ("Incremental builds (goals#101)", "Async closures (goals#102)"):
        assert topic in goals

    prompts = b["/advance prompt"]
    assert "Clock: Thu 2025-03-06 14:00 UTC (+3d 4h)." in prompts
    assert bot_messages(prompts) == [
        "[#project-goals > Async closures (goals#102)] Goals Bot:",
        "[#project-goals > Incremental builds (goals#101)] Goals Bot:",
        "[#project-goals > Trait errors (goals#103)] Goals Bot:",
    ]
    for owner, title in (("Chloé", "Async closures"), ("Ben", "Incremental builds")):
        assert f"@{owner} Owner: time for a progress update on **{title}**" in prompts
    assert "Lint catalogue" not in prompts  # its owner has no Zulip account

    # Dev is not in the goals stream: he is asked by DM at 10:00 in Tokyo (01:00 UTC).
    dm_prompt = b["/advance 12h"]
    assert "— Fri 2025-03-07 01:00 UTC —\n[DM Goals Bot -> Dev Owner]" in dm_prompt
    assert "Hi Dev :wave: time for a progress update on your goal" in dm_prompt

    topic_reply = b["TL;DR: the cache survives restarts.\\nHelp wanted: a second reviewer."]
    assert topic_reply.endswith(
        "[#project-goals > Incremental builds (goals#101)] Ben Owner:\n"
        "    TL;DR: the cache survives restarts.\n"
        "    Help wanted: a second reviewer.\n"
        "  ✓ Goals Bot reacted :check: to Ben Owner's message\n"
    )
    assert b["TL;DR: clearer notes for missing impls."] == (
        "[DM Dev Owner -> Goals Bot] TL;DR: clearer notes for missing impls.\n"
        "  ✓ Goals Bot reacted :check: to Dev Owner's message\n"
    )
    status = b["status async closures"]
    assert "[DM Goals Bot -> Eve Lead]" in status
    assert "**Latest update**: none yet." in status

    # Sunday 14:00: one reminder, only in the silent owner's topic, and no DM reminder.
    reminder = b["/advance 3d"]
    assert bot_messages(reminder) == [
        "[#project-goals > Async closures (goals#102)] Goals Bot: @Chloé Owner: a friendly "
        "reminder: **Async closures** has no update yet since I asked Thu 2025-03-06 14:00 UTC. "
        "A few lines are enough (a `TL;DR:` is perfect); just reply here, or `skip` if there is "
        "nothing to report this time."
    ]
    assert "— Sun 2025-03-09 14:00 UTC —" in reminder
    assert "[DM" not in reminder

    digest = b["/advance digest"]
    assert "Clock: Mon 2025-03-10 09:00 UTC (+7h)." in digest
    assert bot_messages(digest) == ["[#project-goals > weekly digest] Goals Bot:"]
    assert "2 updated this week · 1 due" in digest
    updated = digest.split(":check: **Incremental builds**")[1]
    assert "@Ben Owner · updated 3 days ago" in updated
    assert "**Help wanted:** a second reviewer." in updated
    assert ":check: **Trait errors**" in digest
    assert (
        ":hourglass: **Async closures** · #project-goals > Async closures (goals#102)\n"
        "    @Chloé Owner · no update yet" in digest
    )
    assert "@frank-docs (no Zulip account mapped): owner of **Lint catalogue**" in digest
    # Nothing is left behind: the temporary folder (zuliprc, database) is gone.
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.sqlite_only
def test_stdin_script_stops_at_quit_quickly(tmp_path: Path) -> None:
    started = time.monotonic()
    result = sandbox(tmp_path, "--script", "-", "--start", START, stdin="/time\n/quit\n/who\n")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 10
    assert "> /time\n  · It is Mon 2025-03-03 10:00 UTC. Next prompt time: Thu 2025-03-06 " in (
        result.stdout
    )
    assert "> /quit" in result.stdout
    assert "> /who" not in result.stdout
    assert result.stderr == ""


@pytest.mark.sqlite_only
def test_mistakes_are_explained_change_nothing_and_fail_the_script(tmp_path: Path) -> None:
    lines = "/as nobody\n/advance soon\n/advance 20w\n/topic\n/frobnicate\n/time\n"
    result = sandbox(tmp_path, "--script", "-", "--start", START, stdin=lines)
    assert result.returncode == 1
    b = blocks(result.stdout)
    assert b["/as nobody"] == "  · Nobody is called 'nobody'; /who lists the people.\n"
    assert b["/advance soon"].startswith("  · 'soon' is not a duration; try /advance 3d")
    assert b["/advance 20w"] == "  · At most 12 weeks at a time, please.\n"
    assert b["/topic"].startswith("  · Usage: /topic GOAL")
    assert b["/frobnicate"] == "  · Unknown command /frobnicate; /help lists the commands.\n"
    assert "It is Mon 2025-03-03 10:00 UTC." in b["/time"]  # the clock did not move


@pytest.mark.sqlite_only
def test_the_shipped_demo_runs(tmp_path: Path) -> None:
    result = sandbox(tmp_path, "--script", "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Clock: Mon 2025-03-03 10:00 UTC" in result.stdout
    assert "[#project-goals > weekly digest] Goals Bot:" in result.stdout


@pytest.mark.sqlite_only
def test_kept_database_resumes_the_clock(tmp_path: Path) -> None:
    db = tmp_path / "kept.sqlite3"
    first = sandbox(
        tmp_path, "--script", "-", "--database", str(db), "--start", START, stdin="/advance 1d\n"
    )
    assert first.returncode == 0, first.stderr
    assert db.exists()
    second = sandbox(tmp_path, "--script", "-", "--database", str(db), stdin="/goals\n")
    assert second.returncode == 0, second.stderr
    assert "Clock: Tue 2025-03-04 10:00 UTC" in second.stdout
    assert "Imported the sample goals: 4 unchanged." in second.stdout


@pytest.mark.sqlite_only
def test_bad_arguments_are_one_line(tmp_path: Path) -> None:
    missing = sandbox(tmp_path, "--script", "nowhere.txt")
    assert missing.returncode == 2
    assert missing.stderr.startswith("zulip-goals-bot: error: --script nowhere.txt: no such file")
    assert missing.stderr.count("\n") == 1
    bad_start = sandbox(tmp_path, "--script", "-", "--start", "soon", stdin="")
    assert bad_start.returncode == 2
    assert "--start 'soon' is not a date-time" in bad_start.stderr


# How long Ctrl-C may take before the test calls the sandbox stuck.
SHUTDOWN_LIMIT = 60


@pytest.mark.sqlite_only
def test_ctrl_c_stops_cleanly(tmp_path: Path) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "zulip_goals_bot.cli", "sandbox", "--script", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        while "/help lists the commands" not in proc.stdout.readline():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGINT)
        # A safety net, not a timing goal: stopping waits up to 5 s for the bot's thread and
        # 5 s for the emulator's, so a loaded machine may take longer than 10 s.
        assert proc.wait(timeout=SHUTDOWN_LIMIT) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(temp.iterdir()) == []


@pytest.mark.sqlite_only
def test_a_health_reaction_on_the_prompt_shows_in_status(tmp_path: Path) -> None:
    lines = (
        "/advance prompt\n/as dev\n/react red_circle\n/topic trait errors\n/react red_circle\n"
        "/dm\nstatus trait errors\n"
    )
    result = sandbox(tmp_path, "--script", "-", "--start", START, stdin=lines)
    assert result.returncode == 1, result.stdout + result.stderr  # the first /react is refused
    b = blocks(result.stdout)
    assert b["/react red_circle"].startswith("  · You reacted :red_circle:"), b
    assert "Dev Owner reacted :red_circle: to Goals Bot's message" in b["/react red_circle"]
    assert "**Health**: :red_circle: blocked since " in b["status trait errors"]
    assert "with a reaction" in b["status trait errors"]
