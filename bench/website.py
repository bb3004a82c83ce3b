"""The goals website at program scale, in-process: `site build` of 1,000 goals, 100,000 updates.

A build is timed from the first SQL statement to the last file swapped into place (what
``zulip-goals-bot site build`` costs, without the interpreter's start-up), into a new folder with
a new renderer, so every update's text is rendered.  The benchmark's update texts are plain
prose, which the renderer recognises and writes without the Markdown parser.  The "rich
Markdown" rows then give every update a link, a list and inline code, so that every text goes
through markdown-it and the sanitizer: a cold build of that, and the rebuild ``run`` makes after
a batch (one new update, the same folder, the renderer of the previous build, which keeps the
HTML of the messages it has rendered).
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import String, cast, insert, update

from bench.core import Figure, Sizes, below
from bench.data import (
    HISTORY_ID_BASE,
    a_friday_evening,
    build_program,
    fresh_database,
    synthetic_owners,
)
from bench.profiling import Profile
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.models import Update
from zulip_goals_bot.domain.states import UpdateKind, UpdateSource
from zulip_goals_bot.website.build import build_site, site_settings
from zulip_goals_bot.website.text import ZulipMarkdown

SITE = "https://zulip.example.com"
# The tail given to every update for the rich-Markdown build: a link, a list, inline code.
RICH_TAIL = "\n\n- see [the PR](https://github.com/rust-lang/rust/pull/{n})\n- `-Zthreads=8` helps"


def figures(sizes: Sizes) -> dict[str, Figure]:
    scale = f"{sizes.goals:,} goals × {sizes.updates:,} updates"
    return {
        "build": Figure("build", f"Site: build from the database ({scale})", "s", below(5)),
        "rich": Figure("rich", "Site: build when every update is rich Markdown", "s"),
        "rebuild": Figure("rebuild", "Site: rebuild by `run` after one new update (rich)", "s"),
        "size": Figure("size", "Site: files written", "MB"),
    }


def _size(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1024 / 1024


def run(sizes: Sizes, tmp: Path, out: dict[str, Figure], profile: Profile) -> None:
    now = a_friday_evening()
    db = fresh_database(str(tmp / "site.sqlite3"))
    try:
        program = build_program(
            db,
            goals=sizes.goals,
            owners=synthetic_owners(sizes.owners),
            updates=sizes.updates,
            now=now,
        )
        settings = site_settings(Config(path=None, zuliprc=tmp / "zuliprc"), SITE)
        with profile.in_process("site-build"):
            start = time.perf_counter()
            build_site(db, settings, tmp / "site", now)
            out["build"].add(time.perf_counter() - start)
        out["size"].add(_size(tmp / "site"))

        with db.write() as session:
            head, tail = RICH_TAIL.split("{n}")
            session.execute(
                update(Update).values(
                    content=Update.content + head + cast(Update.zulip_message_id, String) + tail
                )
            )
        markdown = ZulipMarkdown(SITE)
        with profile.in_process("site-rich"):
            start = time.perf_counter()
            build_site(db, settings, tmp / "rich", now, markdown=markdown)
            out["rich"].add(time.perf_counter() - start)

        with db.write() as session:
            session.execute(
                insert(Update).values(
                    zulip_message_id=HISTORY_ID_BASE + sizes.updates,
                    goal_id=program.goal_ids[0],
                    kind=UpdateKind.UPDATE,
                    source=UpdateSource.TOPIC,
                    content="TL;DR: one more update, see https://github.com/rust-lang/rust/pull/1",
                    tldr="one more update.",
                    sent_at=now - timedelta(minutes=5),
                    deleted=False,
                )
            )
        with profile.in_process("site-rebuild"):
            start = time.perf_counter()
            build_site(db, settings, tmp / "rich", now, markdown=markdown)
            out["rebuild"].add(time.perf_counter() - start)
    finally:
        db.dispose()
