"""Digest and status at program scale, in-process: the code paths, without Zulip around them.

Both read a database of 1,000 goals, 1,500 owners and 100,000 updates.  The digest is timed from
the first SQL statement of ``load_digest_data`` to the last message part of ``compose_digest``
(what a scheduled digest costs before sending); statements are counted on the engine, leaving
out transaction control (``BEGIN``).  ``status`` is the whole command as the bot runs it:
``commands.handle(ctx, sender, parse("status <slug>"), in_topic=None)``, one write transaction,
fuzzy goal matching included, for goals picked at random.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.core import BenchError, Figure, Sizes, at_most, below, percentile
from bench.data import a_friday_evening, build_program, fresh_database, synthetic_owners
from bench.profiling import Profile
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.commands.dispatch import handle
from zulip_goals_bot.commands.grammar import parse
from zulip_goals_bot.config import Config
from zulip_goals_bot.digest.compose import compose_digest
from zulip_goals_bot.digest.delivery import DIGEST_WINDOW, load_digest_data
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.views import SenderInfo

SITE = "https://zulip.example.com"
# Commands answered before timing starts: the first one after a start fills the goal-name cache.
STATUS_WARMUP = 5
# Transaction control is not a query the digest chose to make.
_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def figures(sizes: Sizes) -> dict[str, Figure]:
    scale = f"{sizes.goals:,} goals × {sizes.updates:,} updates"
    return {
        "digest": Figure("digest", f"Digest: load and compose ({scale})", "ms", below(250)),
        "digest_load": Figure("digest_load", "Digest: of which loading (SQL and views)", "ms"),
        "digest_sql": Figure("digest_sql", "Digest: SQL statements", "statements", at_most(7)),
        "digest_parts": Figure("digest_parts", "Digest: messages composed", "messages"),
        "status_p99": Figure(
            "status_p99", f"Status: p99 of `status <slug>` ({scale})", "ms", below(10)
        ),
        "status_p50": Figure("status_p50", "Status: median", "ms"),
    }


def run(sizes: Sizes, tmp: Path, out: dict[str, Figure], profile: Profile) -> None:
    now = a_friday_evening()
    db = fresh_database(str(tmp / "reads.sqlite3"))
    try:
        program = build_program(
            db,
            goals=sizes.goals,
            owners=synthetic_owners(sizes.owners),
            updates=sizes.updates,
            now=now,
        )
        config = Config(path=None, zuliprc=tmp / "zuliprc")
        ctx = Context(Setting(config, SITE, 1, "Goals Bot"), db, FrozenClock(now))
        statements = 0

        def count(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
            nonlocal statements
            if not sql.lstrip().upper().startswith(_CONTROL):
                statements += 1

        event.listen(db.engine, "before_cursor_execute", count)
        with profile.in_process("digest"):
            for _ in range(sizes.digest_repeats):
                statements = 0
                start = time.perf_counter()
                with db.read() as session:
                    data = load_digest_data(session, ctx, now - DIGEST_WINDOW, now)
                loaded = time.perf_counter()
                parts = compose_digest(
                    data,
                    stream=ctx.setting.stream(config.stream),
                    program=ctx.program,
                    site=SITE,
                )
                done = time.perf_counter()
                out["digest"].add((done - start) * 1000.0)
                out["digest_load"].add((loaded - start) * 1000.0)
                out["digest_sql"].add(statements)
                out["digest_parts"].add(len(parts))
        event.remove(db.engine, "before_cursor_execute", count)

        rng = random.Random(5)
        owner = program.owners[0]
        sender = SenderInfo(owner.zulip_user_id, owner.email, owner.full_name)
        for _ in range(STATUS_WARMUP):
            handle(ctx, sender, parse(f"status {rng.choice(program.slugs)}"), in_topic=None)
        latencies = []
        with profile.in_process("status"):
            for _ in range(sizes.status_samples):
                slug = rng.choice(program.slugs)
                start = time.perf_counter()
                reply = handle(ctx, sender, parse(f"status {slug}"), in_topic=None)
                latencies.append((time.perf_counter() - start) * 1000.0)
                if f"`{slug}`" not in reply.messages[0]:
                    raise BenchError(f"status {slug} answered about another goal")
        out["status_p99"].add(percentile(latencies, 99))
        out["status_p50"].add(percentile(latencies, 50))
    finally:
        db.dispose()
