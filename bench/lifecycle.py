"""Start-up and backfill: what it costs to (re)start the bot at program scale.

* ``--help``: the installed console script, as a person types it.
* ``run`` ready: from spawning ``zulip-goals-bot run`` to its "ready: listening" log line, with
  1,000 goals and 1,500 owners (migrations checked, users synced, event queue registered).
* Backfill: messages posted while the bot is down; from spawning it until every one of them is
  a row in SQLite (it pages through GET /messages, 1,000 a page, one transaction a page).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.core import BenchError, Figure, Sizes, below
from bench.data import a_friday_evening
from bench.profiling import Profile
from bench.world import Bot, post_all, stored_after, world

# The longest a backfill may take before the run counts as failed.
BACKFILL_TIMEOUT = 120.0
POLL_SECONDS = 0.005


def figures(sizes: Sizes) -> dict[str, Figure]:
    return {
        "help": Figure("help", "Start-up: `zulip-goals-bot --help`", "ms", below(250)),
        "ready": Figure(
            "ready", f"Start-up: `run` ready with {sizes.goals:,} goals", "s", below(1.0)
        ),
        "backfill": Figure(
            "backfill",
            f"Backfill: {sizes.backfill:,} messages posted while down, start → all stored",
            "s",
            below(10.0),
        ),
    }


def console_script() -> list[str]:
    """The installed ``zulip-goals-bot`` next to this interpreter, else the module."""
    script = Path(sys.executable).parent / "zulip-goals-bot"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "fakezulip.launch"]


def run(sizes: Sizes, tmp: Path, out: dict[str, Figure], profile: Profile) -> None:
    command = [*console_script(), "--help"]
    for _ in range(sizes.startup_repeats):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=False)
        elapsed = time.perf_counter() - start
        if done.returncode != 0 or b"usage" not in done.stdout.lower():
            raise BenchError(f"--help failed: {done.stderr.decode(errors='replace')}")
        out["help"].add(elapsed * 1000.0)

    now = a_friday_evening()
    with world(
        tmp, goals=sizes.goals, owners=sizes.owners, updates=sizes.updates, subscribed=0, now=now
    ) as w:
        for _ in range(sizes.startup_repeats):
            with Bot(w.conf) as bot:
                out["ready"].add(bot.wait_ready())
        # Everything so far is seen; what follows is posted while the bot is down.
        w.set_high_water(w.last_message_id(), now)
        floor = w.last_message_id()
        post_all(w, w.reply_plan(sizes.backfill, seed=23))
        conn = w.reader()
        try:
            with Bot(w.conf) as bot:
                deadline = time.perf_counter() + BACKFILL_TIMEOUT
                while stored_after(conn, floor) < sizes.backfill:
                    if time.perf_counter() > deadline:
                        raise BenchError("the backfill did not finish:\n" + bot.tail())
                    bot.check_alive()
                    time.sleep(POLL_SECONDS)
                out["backfill"].add(time.perf_counter() - bot.started_at)
        finally:
            conn.close()
