"""GitHub handles in update text: a silent mention of the mapped person in the digest and `status`,
a link to the GitHub profile in the blog export, and never a mention that notifies.

Also the digest of the goals one champions, delivered by DM through the emulated Zulip."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from fakezulip import FakeZulip, Realm
from tests.dbs import new_database
from tests.mentions import contains_unsafe_mention
from tests.support import DATA, link_handle
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.bot.zulip_io import ZulipIO
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.commands.dispatch import handle
from zulip_goals_bot.commands.grammar import parse
from zulip_goals_bot.config import Config, DigestConfig
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Goal, Update
from zulip_goals_bot.digest.blog import compose_blog, load_blog_data
from zulip_goals_bot.digest.compose import compose_digest
from zulip_goals_bot.digest.delivery import load_digest_data, send_digest
from zulip_goals_bot.domain.markdown import ZulipUser
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.states import UpdateKind, UpdateSource
from zulip_goals_bot.domain.views import SenderInfo
from zulip_goals_bot.goals.importer import import_goals
from zulip_goals_bot.people.accounts import ensure_people
from zulip_goals_bot.people.handles import handles_in, render_handles
from zulip_goals_bot.people.link_rules import MappedVia

H2, ANNUAL = DATA / "goalfiles-later" / "2025h2", DATA / "goalfiles-later" / "2026"
NOW = datetime(2025, 9, 22, 9, 0, tzinfo=UTC)  # a Monday: the digest slot
STREAM = "project-goals"
SITE = "https://zulip.example.com"
ALICIA = SenderInfo(201, "alicia@example.com", "Alicia Dev")
UPDATE = (
    "TL;DR: paired with @alicia-dev and @gus on the `@not-a-handle` macro; mail me@example.com.\n"
    "Help wanted: reviews from @Alicia-Dev or @nobody-known"
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = new_database(tmp_path)
    yield database
    database.dispose()


def test_render_handles_on_zulip_and_on_the_web() -> None:
    people = {"alicia-dev": ZulipUser(201, "Alicia *Dev*")}
    text = "thanks @alicia-dev, @Alicia-Dev and @gus; `@alicia-dev` in code\n```\n@alicia-dev\n```"
    zulip = render_handles(text, people)
    assert zulip.startswith("thanks @_**Alicia Dev|201**, @_**Alicia Dev|201** and @gus;")
    assert "`@alicia-dev` in code\n```\n@alicia-dev\n```" in zulip
    assert not contains_unsafe_mention(zulip)
    web = render_handles("by @gus, see [@gus](https://github.com/gus) or a@b.example", web=True)
    assert web == (
        "by [@gus](https://github.com/gus), see [@gus](https://github.com/gus) or a@b.example"
    )
    assert handles_in("@a-b @a-b @rust-lang/lang me@x.org @-bad") == ("a-b",)
    # Text that was neutralized stays so: a broken mention is not a handle.
    assert render_handles("@\u200b**all** and @_**Alicia|201**", people).startswith(
        "@\u200b**all**"
    )


def setup_goal(db: Database) -> int:
    import_goals(db, [H2], now=NOW - timedelta(days=20), statuses=("Accepted", "Proposed"))
    with db.write() as s:
        ensure_people(s, [ALICIA], NOW)
        link_handle(s, github="alicia-dev", zulip_user_id=201, via=MappedVia.FILE, now=NOW)
        goal = s.execute(select(Goal).where(Goal.slug == "field-places")).scalar_one()
        s.add(Update(zulip_message_id=9001, goal_id=goal.id, kind=UpdateKind.UPDATE,
                     source=UpdateSource.TOPIC, content=UPDATE, help_wanted=UPDATE.split(": ")[-1],
                     tldr=UPDATE.splitlines()[0].removeprefix("TL;DR: "),
                     sent_at=NOW - timedelta(days=2)))  # fmt: skip
        return goal.id


def context(db: Database) -> Context:
    config = Config(path=None, zuliprc=Path("zuliprc"), stream=STREAM)
    return Context(
        Setting(config, SITE, bot_user_id=99, bot_name="Goals Bot"), db, FrozenClock(NOW)
    )


def test_digest_status_and_blog_show_handles_as_their_readers_expect(db: Database) -> None:
    setup_goal(db)
    ctx = context(db)
    with db.read() as s:
        data = load_digest_data(s, ctx, NOW - timedelta(days=7), NOW)
        goals, updates = load_blog_data(s, NOW - timedelta(days=30), NOW)
    digest = "\n\n".join(
        compose_digest(data, stream=ctx.setting.stream(STREAM), program=ctx.program,
                       site=SITE)
    )  # fmt: skip
    block = digest[digest.index("**Field access through smart pointers**") :]
    assert "> paired with @_**Alicia Dev|201** and @gus on the `@not-a-handle` macro" in block
    assert "**Help wanted:** reviews from @_**Alicia Dev|201** or @nobody-known" in block
    assert not contains_unsafe_mention(digest)

    status = "\n".join(handle(ctx, ALICIA, parse("status field places"), in_topic=None).messages)
    assert "paired with @_**Alicia Dev|201** and @gus" in status
    assert "**Help wanted**: reviews from @_**Alicia Dev|201** or @nobody-known" in status
    assert not contains_unsafe_mention(status)

    post = compose_blog(goals, updates, (NOW - timedelta(days=30)).date(), NOW.date())
    assert "[@alicia-dev](https://github.com/alicia-dev) and [@gus](https://github.com/gus)" in post
    assert "`@not-a-handle`" in post and "me@example.com" in post
    assert "@_**" not in post


def test_a_champion_subscribes_and_gets_only_the_goals_they_champion_by_dm(
    db: Database, tmp_path: Path
) -> None:
    realm = Realm.demo()
    jonas = realm.add_user("Jonas K", "jonas@example.com", user_id=222)
    eve = realm.user_by_name("Eve Lead")
    bot = realm.user_by_name("Goals Bot")
    assert eve is not None and bot is not None
    import_goals(db, [ANNUAL], now=NOW - timedelta(days=20), statuses=("Accepted", "Proposed"))
    with FakeZulip(realm, clock=lambda: NOW.timestamp()) as server:
        rc = server.write_zuliprc(tmp_path / "zuliprc", bot)
        rc.chmod(0o600)
        io = ZulipIO(rc, sleep=lambda _s: None)
        config = Config(path=None, zuliprc=rc, stream=STREAM,
                        digest=DigestConfig(stream=STREAM, topic=""))  # fmt: skip
        ctx = Context(Setting(config, io.site, bot.user_id, bot.full_name), db, FrozenClock(NOW))
        as_jonas = SenderInfo(jonas.user_id, jonas.email, jonas.full_name)
        as_eve = SenderInfo(eve.user_id, eve.email, eve.full_name)

        def say(text: str, who: SenderInfo) -> str:
            return "\n".join(handle(ctx, who, parse(text), in_topic=None).messages)

        answer = say("subscribe digest champion", as_eve)
        assert answer.startswith(
            "Subscribed: I'll DM you the weekly digest of the goals you champion."
        )
        assert "I don't know your GitHub handle yet" in answer
        changed = say("subscribe digest", as_eve)
        assert changed.startswith("Changed: from now on I'll DM you the weekly digest.")
        assert say("I am @jonas-k", as_jonas).startswith("Thanks! GitHub @jonas-k is now linked")
        answer = say("subscribe digest champion", as_jonas)
        assert "You champion 3 goals as GitHub @jonas-k." in answer
        assert say("subscribe digest champion", as_jonas).startswith(
            "You are already subscribed to the weekly digest of the goals you champion."
        )

        report = send_digest(ctx, io, force=True)
        assert (report.sent, report.failed) == (2, 0)
        (mine,) = server.direct_messages_to(jonas)
        assert mine["content"].startswith("**Weekly digest of the goals you champion** · ")
        for title in ("Reborrowing for user-defined pointers", "Supertraits that can grow",
                      "Linker diagnostics"):  # fmt: skip
            assert title in mine["content"]
        assert "Relink, don't rebuild" not in mine["content"]
        (everything,) = server.direct_messages_to(eve)
        assert everything["content"].startswith("**Weekly goals digest** · ")
        assert "Relink, don't rebuild" in everything["content"]
