"""Goals whose titles and updates hold every hostile Markdown form notify nobody, end to end.

Goal files titled with wildcards, user and group mentions, ``**`` and ``>`` are imported with
``goals import``, and their owners answer with updates holding the same forms.  The bot runs as
a subprocess against the emulator (time comes from a clock file) through prompts, reminders and
their DMs, ``mine``, ``status``, ``history``, ``list``, ``goal add`` and ``about``, and the weekly
digest in its topic and by DM; ``export blog`` writes the monthly post.  The emulator renders
every message as Zulip 8.0 does and flags the readers it notifies (transcript 29), so who was
notified is read from the server: the owners a prompt or reminder greets, and nobody else, ever.

Topic links are also checked on their own: whatever a topic holds, the link renders as one link
to that very topic and notifies nobody.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fakezulip import FakeZulip, Realm, User
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from fakezulip.markdown import hash_encode
from tests.support import BotProcess, database_for, run_cli, running_since, wait_until, write_conf
from tests.test_security import OUR_CLIENT, addressed, unsafe_in
from zulip_goals_bot.domain.markdown import StreamRef, topic_link

STREAM = "project-goals"
GROUP = "rust-team"
PERIOD = "2026h1"
# Thursday 2026-02-26 14:00 UTC starts a prompt period of the default schedule (every second
# Thursday at 14:00); topic reminders follow 3 days later, DMs at 10:00 in each owner's zone (Dev
# Owner lives in Tokyo and is not in the stream), and the digest is on Monday at 09:00.
IMPORTED_AT = datetime(2026, 2, 26, 13, 0, tzinfo=UTC)
PROMPT_AT = datetime(2026, 2, 26, 14, 0, tzinfo=UTC)
DM_PROMPT_AT = datetime(2026, 2, 27, 1, 0, tzinfo=UTC)  # Friday 10:00 in Tokyo
REMINDER_AT = PROMPT_AT + timedelta(days=3)
DM_REMINDER_AT = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # Monday 10:00 in Tokyo
DIGEST_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# New goals are due at once (no grace period), so the first slot prompts them all.
CONF = "people_file = people.toml\n[schedule]\ngrace_days = 0\n"
# A bounded wait for what the bot does within a few ticks.
SOON = 20.0
PROMPT_TEXT = "time for a progress update on"
DM_PROMPT_TEXT = ":wave: time for progress update"
REMINDER_TEXT = "a friendly reminder"
DIGEST_TOPIC = "weekly digest"
LAST_PART = "**Needs attention**"
# How each message of a digest starts: its header, or the number of a later part.
DIGEST_PART = re.compile(r"^(\*\*Weekly goals digest\*\*|_\(digest, part \d+ of \d+\)_)")
# Goal owners by GitHub handle; each owns every third goal.
OWNERS = {"ben-owner": "Ben Owner", "chloe-owner": "Chloé Owner", "dev-owner": "Dev Owner"}


def hostile_forms(gus: User) -> list[str]:
    """Every form the bot must never pass on live: wildcards, a group mention loud and silent, a
    person by name and by name and id, bold marks and a quote mark.  The group's members (Ada,
    Eve, Gus) own no goal, so nothing may ever notify them."""
    return [
        "@**all**",
        "@**everyone**",
        "@**channel**",
        "@**topic**",
        f"@*{GROUP}*",
        f"@_*{GROUP}*",
        "@**Eve Lead**",
        f"@**{gus.full_name}|{gus.user_id}**",
        "**",
        ">",
    ]


def goal_file(title: str, owner: str, issue: int) -> str:
    url = f"https://github.com/rust-lang/rust-project-goals/issues/{issue}"
    return (
        f"# {title}\n\n"
        "| Metadata | |\n"
        "|:--|--|\n"
        f"| Point of contact | @{owner} |\n"
        "| Status | Accepted |\n"
        f"| Tracking issue | [rust-lang/rust-project-goals#{issue}]({url}) |\n\n"
        "## Summary\n\nA goal whose title and updates try a mention form.\n"
    )


def update_text(form: str) -> str:
    """An update holding ``form`` in its TL;DR, its help wanted, a quote and its body."""
    return (
        f"TL;DR: shipped {form} thanks {form}\n\n"
        f"Help wanted: {form} please review\n\n"
        f"> quoted {form}\n\n"
        f"More {form} text, **bold** {form} end"
    )


# What the bot publishes outside Zulip as Markdown, checked for live mention syntax: name ->
# command line after `zulip-goals-bot --config ...`. The website is HTML: checked apart below.
PUBLISHED: dict[str, tuple[str, ...]] = {
    "blog": ("export", "blog", "--since", "2026-02-01", "--until", "2026-04-01"),
}


@dataclass
class Program:
    server: FakeZulip
    clock: FileClock
    conf: Path
    env: dict[str, str]
    users: dict[str, User]
    forms: dict[str, str]  # slug -> the form its title and update hold
    topics: dict[str, str] = field(default_factory=dict)  # slug -> topic
    owner_of: dict[str, str] = field(default_factory=dict)  # slug -> owner key
    bot: BotProcess | None = None

    @property
    def bot_id(self) -> int:
        return self.users["bot"].user_id

    def bot_messages(self, where: Callable[[dict[str, Any]], bool] = lambda m: True) -> list[Any]:
        return [
            m
            for m in self.server.messages
            if m["sender_id"] == self.bot_id and m["client"] == OUR_CLIENT and where(m)
        ]

    def in_topic(self, slug: str, text: str) -> list[dict[str, Any]]:
        return self.bot_messages(
            lambda m: (
                m["type"] == "stream" and m["subject"] == self.topics[slug] and text in m["content"]
            )
        )

    def dms_to(self, who: str, text: str = "") -> list[dict[str, Any]]:
        return [
            m
            for m in self.server.direct_messages_to(self.users[who])
            if m["sender_id"] == self.bot_id and text in m["content"]
        ]

    def wait(self, what: Callable[[], bool]) -> None:
        assert self.bot is not None
        assert wait_until(what, SOON), self.bot.log()[-3000:]

    def ask(self, who: str, command: str) -> dict[str, Any]:
        """DM the bot a command; its (first) answer."""
        before = {m["id"] for m in self.dms_to(who)}
        self.server.send_direct_message(self.users[who], [self.users["bot"]], command)
        self.wait(lambda: any(m["id"] not in before for m in self.dms_to(who)))
        return next(m for m in self.dms_to(who) if m["id"] not in before)


@pytest.fixture
def program(tmp_path: Path) -> Iterator[Program]:
    clock = FileClock(tmp_path / "clock")
    clock.set(IMPORTED_AT)
    env = {CLOCK_FILE_ENV: str(clock.path)}
    realm = Realm.demo()
    gus = realm.add_user("Gus Member", "gus@example.com")
    for stream in (STREAM, "general"):
        realm.subscribe(gus, stream)
    names = {
        "bot": "Goals Bot",
        "ada": "Ada Admin",
        "ben": "Ben Owner",
        "chloe": "Chloé Owner",
        "dev": "Dev Owner",
        "eve": "Eve Lead",
        "gus": "Gus Member",
    }
    found = {key: realm.user_by_name(name) for key, name in names.items()}
    users = {key: user for key, user in found.items() if user is not None}
    assert users.keys() == names.keys()
    realm.add_user_group(GROUP, [users["ada"], users["eve"], gus], "The people of no goal")
    with FakeZulip(realm, clock=lambda: clock.now().timestamp()) as server:
        conf = write_conf(tmp_path, server, users["bot"], extra=CONF)
        people = "".join(f'{h} = "{users[h.split("-")[0]].email}"\n' for h in OWNERS)
        (tmp_path / "people.toml").write_text(f"[people]\n{people}", encoding="utf-8")
        folder = tmp_path / PERIOD
        folder.mkdir()
        forms = {}
        for i, form in enumerate(hostile_forms(gus)):
            slug = f"hostile-{i}"
            forms[slug] = form
            owner = list(OWNERS)[i % len(OWNERS)]
            title = f"Goal {i} says {form} and more"
            (folder / f"{slug}.md").write_text(goal_file(title, owner, 900 + i), encoding="utf-8")
        done = run_cli(conf, "goals", "import", str(folder), env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        db = database_for(conf)
        running_since(db, IMPORTED_AT)
        db.dispose()
        listed = json.loads(run_cli(conf, "goals", "list", "--json", env=env).stdout)
        p = Program(server, clock, conf, env, users, forms)  # type: ignore[arg-type]
        for g in listed:
            p.topics[g["slug"]] = g["topic"]
            (owner,) = g["owners"]
            p.owner_of[g["slug"]] = owner["github"].split("-")[0]
        assert sorted(p.topics) == sorted(forms)
        p.bot = BotProcess(conf, env=env).start()
        try:
            yield p
        finally:
            if p.bot.alive():
                p.bot.kill()


def test_hostile_titles_and_updates_notify_nobody(program: Program) -> None:
    p = program
    slugs = sorted(p.forms)
    # Prompts in every topic, then the DM to Dev (not in the stream), then the reminders.
    p.clock.set(PROMPT_AT + timedelta(minutes=1))
    p.wait(lambda: all(p.in_topic(s, PROMPT_TEXT) for s in slugs))
    p.clock.set(DM_PROMPT_AT + timedelta(minutes=1))
    p.wait(lambda: bool(p.dms_to("dev", DM_PROMPT_TEXT)))
    p.clock.set(REMINDER_AT + timedelta(minutes=1))
    p.wait(lambda: all(p.in_topic(s, REMINDER_TEXT) for s in slugs))
    p.clock.set(DM_REMINDER_AT + timedelta(minutes=1))
    p.wait(lambda: bool(p.dms_to("dev", REMINDER_TEXT)))
    # Owners who owe updates: `mine` links each goal's topic.
    mine = [p.ask(who, "mine") for who in ("ben", "chloe", "dev")]
    assert all("you owe an update" in m["content"] for m in mine)
    assert p.ask("eve", "subscribe digest")["content"].startswith("Subscribed")
    # Each owner answers in the goal's topic with the same hostile form.
    updates = {
        slug: p.server.send_stream_message(
            p.users[p.owner_of[slug]], STREAM, p.topics[slug], update_text(form)
        )
        for slug, form in p.forms.items()
    }
    p.wait(lambda: all(p.server.message(mid)["reactions"] for mid in updates.values()))
    status = {slug: p.ask("eve", f"status {slug}") for slug in slugs}
    history = {slug: p.ask("gus", f"history {slug}") for slug in slugs}
    for slug in slugs:
        assert "shipped" in status[slug]["content"] and "shipped" in history[slug]["content"]
    listed = [p.ask("eve", "list"), p.ask("ada", "list due")]
    added = p.ask("ada", f"goal add hostile-added Added with @*{GROUP}* and @**all**")
    assert added["content"].startswith("Added ")
    about = p.ask("eve", "about")
    # Asked in a stream, where every member of the group reads the answer.
    group_goal = next(s for s, f in p.forms.items() if f == f"@*{GROUP}*")
    asked = p.server.send_stream_message(
        p.users["gus"], "general", "questions", f"@**Goals Bot** status {group_goal}"
    )
    p.wait(lambda: bool(p.bot_messages(lambda m: m["subject"] == "questions" and m["id"] > asked)))
    in_stream = p.bot_messages(lambda m: m["subject"] == "questions")
    # The weekly digest, in its topic and by DM to Eve (who is in the group), up to its last
    # part (the one with "Needs attention").
    p.clock.set(DIGEST_AT + timedelta(minutes=1))
    p.wait(
        lambda: (
            any(LAST_PART in m["content"] for m in p.server.messages_in(STREAM, DIGEST_TOPIC))
            and bool(p.dms_to("eve", LAST_PART))
        )
    )
    digest = [
        *p.server.messages_in(STREAM, DIGEST_TOPIC),
        *[m for m in p.dms_to("eve") if DIGEST_PART.search(m["content"])],
    ]
    assert len(digest) % 2 == 0 and digest  # each part in the topic and in the DM

    # Nobody but the owners a prompt or reminder greets was notified by any bot message.
    owners = {p.users[k].user_id for k in ("ben", "chloe", "dev")}
    bystanders = {u.user_id for u in p.users.values()} - owners
    sent = p.bot_messages()
    notified = {m["id"]: p.server.notified(m["id"]) for m in sent}
    for m in sent:
        greeted = addressed(m["content"], frozenset())
        assert greeted <= owners
        assert notified[m["id"]].keys() <= greeted, (m["content"], notified[m["id"]])
        assert all(flags == ["mentioned"] for flags in notified[m["id"]].values())
        assert not notified[m["id"]].keys() & bystanders
    greetings = [m for m in sent if m["type"] == "stream" and addressed(m["content"], frozenset())]
    assert len(greetings) == 2 * len(slugs)  # a prompt and a reminder in each topic
    # Dev is greeted too, but he is not in the stream: he gets his DMs instead.
    in_stream_owners = owners - {p.users["dev"].user_id}
    assert {uid for m in greetings for uid in notified[m["id"]]} == in_stream_owners
    answers = [*mine, *status.values(), *history.values(), *listed, added, about, *digest]
    answers += in_stream
    assert all(notified[m["id"]] == {} for m in answers)
    # A status answer and the digest for the goal titled with a group mention: a working link
    # to its topic, and no mention in the rendered message.
    stream_id = p.server.realm.stream_by_name(STREAM).stream_id  # type: ignore[union-attr]
    href = f'href="#narrow/stream/{stream_id}-{STREAM}/topic/{hash_encode(p.topics[group_goal])}"'
    reader = p.server.client_for(p.users["eve"])
    linking = [m for m in digest if hash_encode(p.topics[group_goal]) in m["content"]]
    assert len(linking) == 2  # the goal's line, in the topic and in Eve's DM
    for m in (status[group_goal], *in_stream, *linking):
        shown = reader.call_endpoint(
            f"messages/{m['id']}", method="GET", request={"apply_markdown": True}
        )["message"]["content"]
        assert href in shown, shown
    for m in digest:
        shown = reader.call_endpoint(
            f"messages/{m['id']}", method="GET", request={"apply_markdown": True}
        )["message"]["content"]
        assert "user-group-mention" not in shown and 'data-user-id="*"' not in shown
    # What the bot publishes elsewhere holds no live mention either.
    for name, args in PUBLISHED.items():
        done = run_cli(p.conf, *args, env=p.env)
        assert done.returncode == 0, done.stderr
        assert "shipped" in done.stdout, name
        assert unsafe_in(done.stdout) == [], name
    # The website shows the same titles and updates as plain text, never as Zulip's mention
    # markup (a web page notifies nobody, but it must not carry markup a reader could reuse).
    site = p.conf.parent / "site"
    done = run_cli(p.conf, "site", "build", "--output", str(site), env=p.env)
    assert done.returncode == 0, done.stderr
    pages = {f.name: f.read_text(encoding="utf-8") for f in site.rglob("*.html")}
    assert any("shipped" in html for html in pages.values())
    for name, html in pages.items():
        assert "user-mention" not in html and "user-group-mention" not in html, name
        assert "<script" not in html and "data-user-id" not in html, name


@pytest.mark.parametrize(
    "topic",
    [
        "Ship it with @*rust-team* soon (goals#903)",
        "Quiet @_*rust-team*",
        "Stabilize @**all** features",
        "@**everyone** @**channel** @**topic**",
        "Thanks @**Eve Lead** and @**Eve Lead|5**",
        "Bold **claims** here",
        "a > b > c",
        "[brackets] and (parens) and `code` and $$x$$ and <time:2026-01-01T00:00:00Z>",
        "#**project-goals>nested** link",
        "***strong em*** and ~~gone~~ :wave:",
        "100% done. Really?",
    ],
)
def test_a_topic_link_is_one_link_to_its_topic_and_notifies_nobody(topic: str) -> None:
    realm = Realm.demo()
    realm.add_user_group(GROUP, list(realm.users.values()))
    with FakeZulip(realm) as server:
        bot = realm.user_by_name("Goals Bot")
        stream = realm.stream_by_name(STREAM)
        assert bot is not None and stream is not None
        content = f"**Topic**: {topic_link(StreamRef(STREAM, stream.stream_id), topic)}"
        sent = server.send_stream_message(bot, STREAM, "links", content, client=OUR_CLIENT)
        assert server.notified(sent) == {}
        shown = server.client_for(bot).call_endpoint(
            f"messages/{sent}", method="GET", request={"apply_markdown": True}
        )["message"]["content"]
        path = f"#narrow/stream/{stream.stream_id}-{STREAM}/topic/{hash_encode(topic)}"
        assert shown.startswith(f'<p><strong>Topic</strong>: <a href="{path}">#{STREAM} &gt; ')
        assert shown.count("<a ") == 1 and shown.endswith("</a></p>")
        assert "mention" not in shown
