"""A week of scheduled sending at program scale, under Zulip's rate limit.

1,000 goals and 1,500 owners, every goal due (no update since the period started; cadence one
week).  1,200 owners are in the goals stream and are mentioned in their goals' topics; the other
300 are prompted by DM (``prompt_via = topic``).  The bot runs as a subprocess on a clock file set
to Friday evening, after the Thursday prompt slot, every owner's local DM hour and the Monday
digest slot, so one tick owes: a prompt in each goal's topic, a DM to each unsubscribed owner, and
the week's digest.  The run ends when the database records all of them as sent.

The emulator enforces ``rate_limit`` requests per ``rate_window`` seconds per user (Zulip's
default is 200 a minute).  The window is shortened so that a run takes seconds: the limit is the
same 200 requests, on a clock running ``60 / rate_window`` times faster, so the bot must pace
itself exactly as it would against a real server, only sooner.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from bench.core import BenchError, Figure, Sizes, exactly
from bench.data import a_friday_evening
from bench.profiling import Profile
from bench.world import Bot, world
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Delivery
from zulip_goals_bot.domain.states import DeliveryKind, DeliveryState

CONF = """[schedule]
enabled = true
weekday = thursday
time = 14:00
cadence_weeks = 1
reminder_days = 3
prompt_via = topic
dm_local_hour = 10
[digest]
enabled = true
topic = weekly digest
weekday = monday
time = 09:00
[logging]
level = WARNING
"""
# Time for the whole week's sending, in real seconds, before the run counts as failed.
CYCLE_TIMEOUT = 600.0
# After the last delivery, stray calls (a last long-poll) are given this long to show up.
SETTLE_SECONDS = 1.0
POLL_SECONDS = 0.05


def figures(sizes: Sizes) -> dict[str, Figure]:
    speed = 60.0 / sizes.rate_window
    scale = f"{sizes.weekly_goals:,} goals, {sizes.weekly_owners:,} owners"
    return {
        "minimum": Figure(
            "minimum",
            f"Weekly cycle ({scale}): messages owed (due goals + owners DM'd + digest parts)",
            "messages",
        ),
        "calls": Figure("calls", "Weekly cycle: API calls used (all but GET /events)", "calls"),
        "ratio": Figure("ratio", "Weekly cycle: API calls used / messages owed", "×"),
        "polls": Figure("polls", "Weekly cycle: GET /events long-polls", "calls"),
        "429": Figure("429", "Weekly cycle: HTTP 429 responses", "responses", exactly(0)),
        "seconds": Figure(
            "seconds",
            f"Weekly cycle: time to send it all at {sizes.rate_limit} requests per "
            f"{sizes.rate_window:g} s (a clock {speed:g}× faster than 200/min)",
            "s",
        ),
        "real_minutes": Figure(
            "real_minutes", "Weekly cycle: the same at 200 requests/minute (× clock speed)", "min"
        ),
    }


def run(sizes: Sizes, tmp: Path, out: dict[str, Figure], profile: Profile) -> None:
    now = a_friday_evening()
    clock_file = tmp / "clock.txt"
    FileClock(clock_file).set(now)
    with world(
        tmp,
        goals=sizes.weekly_goals,
        owners=sizes.weekly_owners,
        updates=sizes.weekly_goals * 10,
        subscribed=sizes.weekly_subscribed,
        now=now,
        conf_extra=CONF,
        rate_limit=sizes.rate_limit,
        rate_window=sizes.rate_window,
        updates_until=now - timedelta(days=8),
    ) as w:
        owed = sizes.weekly_goals + (sizes.weekly_owners - sizes.weekly_subscribed) + 1
        bot = Bot(w.conf, env={CLOCK_FILE_ENV: str(clock_file)})
        with bot:
            deadline = time.perf_counter() + CYCLE_TIMEOUT
            while _sent(w.db) < owed:
                if time.perf_counter() > deadline:
                    raise BenchError(f"the week was not sent ({_sent(w.db)} of {owed}):\n"
                                     + bot.tail())  # fmt: skip
                bot.check_alive()
                time.sleep(POLL_SECONDS)
            elapsed = time.perf_counter() - bot.started_at
            time.sleep(SETTLE_SECONDS)
        parts = _digest_parts(w.db)
        log = [entry for entry in w.server.request_log if entry[2] == w.bot_user.email]
        polls = sum(1 for method, path, _who, _st in log if method == "GET" and _is_events(path))
        calls = len(log) - polls
        minimum = sizes.weekly_goals + (sizes.weekly_owners - sizes.weekly_subscribed) + parts
        out["minimum"].add(minimum)
        out["calls"].add(calls)
        out["ratio"].add(calls / minimum)
        out["polls"].add(polls)
        out["429"].add(w.server.count_requests(status=429))
        out["seconds"].add(elapsed)
        out["real_minutes"].add(elapsed * 60.0 / sizes.rate_window / 60.0)


def _is_events(path: str) -> bool:
    return path.rstrip("/").endswith("/events")


def _sent(db: Database) -> int:
    with db.read() as session:
        return int(
            session.execute(
                select(func.count()).where(Delivery.state == DeliveryState.SENT)
            ).scalar_one()
        )


def _digest_parts(db: Database) -> int:
    with db.read() as session:
        ids = session.execute(
            select(Delivery.zulip_message_ids).where(Delivery.kind == DeliveryKind.DIGEST)
        ).scalar_one()
    return len([i for i in (ids or "").split(",") if i])
