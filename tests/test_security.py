"""Security: what the bot says never pings the wrong people, refusals hold, secrets stay secret.

The mention sweep (``BotMessageSweep``) runs after every test of the suite (see
``tests/conftest.py``): each message any bot user sent on any emulated server is checked for
wildcard, group and un-silenced mentions of people the message does not address, in its text
and in the flags the server gave its readers (the demo realm has a user group, so a group
mention the server resolves shows as ``mentioned`` on every member).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import text

from fakezulip import FakeZulip, Realm
from fakezulip.markdown import find_mentions
from tests.support import (
    OUTPUTS,
    BotProcess,
    add_goal,
    database_for,
    run_cli,
    wait_until,
    write_conf,
)
from zulip_goals_bot.db.engine import Database

# Every wildcard Zulip knows (``channel`` is the newer name of ``stream``), silent or not.
WILDCARD = re.compile(r"@_?\*\*(?:all|everyone|stream|channel|topic)\*\*", re.IGNORECASE)
# A user-group mention, ``@*group*`` (silent ``@_*group*`` notifies nobody).
GROUP_MENTION = re.compile(r"(?<![\w_])@\*(?!\*)[^*\n]+\*")
# The salutation of a prompt or reminder: "@**A|1**, @**B|2** and @**C|3**: ..."  These are the
# only un-silenced mentions the bot writes, always with the user id, always at the start.
SALUTATION = re.compile(r"(?:@\*\*[^*|\n]+\|\d+\*\*(?:, | and )?)+:")
MENTION_ID = re.compile(r"\|(\d+)\*\*")
# The Zulip client name every ZulipIO sends with: it tells this bot's messages from those of
# other bots (the emulator's own tests replay recorded traffic in which a bot writes @**all**).
OUR_CLIENT = "zulip-goals-bot"
QUIET = "[schedule]\nenabled = false\n[digest]\nenabled = false\n"


def unsafe_in(content: str, recipients: frozenset[int] = frozenset()) -> list[str]:
    """Why a bot's message could ping someone it should not; empty when it is safe.

    ``recipients`` are a direct message's participants: mentioning them notifies nobody new.
    """
    problems: list[str] = []
    if found := WILDCARD.search(content):
        problems.append(f"wildcard mention {found.group(0)!r}")
    if found := GROUP_MENTION.search(content):
        problems.append(f"group mention {found.group(0)!r}")
    body = content
    head = SALUTATION.match(content)
    if head is not None:
        body = content[head.end() :]
    for mention in find_mentions(body):
        if mention.silent:
            continue
        if mention.user_id is not None and mention.user_id in recipients:
            continue
        problems.append(f"un-silenced mention @**{mention.target}** outside the salutation")
    return problems


def addressed(content: str, recipients: frozenset[int]) -> frozenset[int]:
    """Who a bot message may notify: the owners its salutation names, and a direct message's
    participants."""
    head = SALUTATION.match(content)
    named = {int(i) for i in MENTION_ID.findall(head.group(0))} if head is not None else set()
    return frozenset(named) | recipients


def notified_problems(
    server: FakeZulip, message: dict[str, Any], recipients: frozenset[int]
) -> list[str]:
    """Readers the server notified although the message does not address them (by its flags)."""
    allowed = addressed(message["content"], recipients)
    problems = []
    for uid, flags in sorted(server.notified(message["id"]).items()):
        if flags == ["mentioned"] and uid in allowed:
            continue
        who = server.realm.user_by_id(uid)
        name = who.full_name if who is not None else str(uid)
        problems.append(f"{name} was notified ({', '.join(flags)})")
    return problems


def bot_message_problems(server: FakeZulip, after_id: int = 0) -> list[str]:
    """Problems in every message this bot sent on ``server`` with an id above ``after_id``."""
    problems: list[str] = []
    for message in server.messages:
        if message["id"] <= after_id or message.get("client") != OUR_CLIENT:
            continue
        sender = server.realm.user_by_id(message["sender_id"])
        if sender is None or not sender.is_bot:
            continue
        recipients: frozenset[int] = frozenset()
        if message["type"] == "private":
            recipients = frozenset(int(r["id"]) for r in message["display_recipient"])
        found = unsafe_in(message["content"], recipients)
        found += notified_problems(server, message, recipients)
        where = (
            f"#{message['display_recipient']} > {message['subject']}"
            if message["type"] == "stream"
            else "a direct message"
        )
        problems += [f"message {message['id']} in {where}: {problem}" for problem in found]
    return problems


@dataclass
class BotMessageSweep:
    """Tracks every FakeZulip created in the session and checks its bots' new messages."""

    servers: list[FakeZulip] = field(default_factory=list)
    checked: dict[int, int] = field(default_factory=dict)  # id(server) -> last checked id
    # The API keys of every user of every server seen: none may appear in any output.
    secrets: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    instance: ClassVar[BotMessageSweep | None] = None

    @classmethod
    def install(cls) -> BotMessageSweep:
        if cls.instance is None:
            cls.instance = cls()
            FakeZulip.creation_hooks.append(cls.instance.track)
        return cls.instance

    def track(self, server: FakeZulip) -> None:
        with self.lock:
            self.servers.append(server)

    def check(self) -> list[str]:
        """Problems in bot messages sent since the last check; forgets stopped servers."""
        with self.lock:
            servers = list(self.servers)
        problems: list[str] = []
        for server in servers:
            self.secrets.update(u.api_key for u in server.iter_users() if u.api_key)
            messages = server.messages
            last = self.checked.get(id(server), 0)
            problems += bot_message_problems(server, last)
            if messages:
                self.checked[id(server)] = max(m["id"] for m in messages)
            if not server.running:  # stopped: only a test's direct calls could add more
                with self.lock:
                    self.servers.remove(server)
                self.checked.pop(id(server), None)
        return problems

    def leaked_secrets(self) -> list[str]:
        """API keys found in the bot logs and command outputs of the test (then forgotten)."""
        problems = []
        for output in OUTPUTS:
            text = output()
            problems += [
                f"an API key ({key[:4]}...) in this output:\n{text[-2000:]}"
                for key in self.secrets
                if key in text
            ]
        OUTPUTS.clear()
        return problems


# ============================================================================ the sweep itself


@pytest.mark.parametrize(
    "content",
    [
        "@**all** please",
        "hey @**everyone**",
        "@_**stream** silent but still a wildcard",
        "@**channel**",
        "@**topic** folks",
        "@*rust-team* look",
        "@**Ben Owner|12**: time for an update, thanks @**Chloé Owner|13**",
        "Status of X: owners @**Ben Owner|12**",
        "@**Ben Owner**: no id in the salutation",
    ],
)
def test_sweep_flags_unsafe_bot_text(content: str) -> None:
    assert unsafe_in(content)


@pytest.mark.parametrize(
    "content",
    [
        "@**Ben Owner|12**: time for a progress update on **X**",
        "@**Ben Owner|12** and @**Chloé Owner|13**: a friendly reminder",
        "@**A|1**, @**B|2** and @**C|3**: hi",
        "Owners: @_**Ben Owner|12**, @_**Chloé Owner|13**",
        "@\u200b**all** was quoted harmlessly, and so was @\u200b*team*",
        "`@**all**` in code is not a mention",  # still flagged: see the next test
    ][:-1],
)
def test_sweep_accepts_what_the_bot_legitimately_writes(content: str) -> None:
    assert unsafe_in(content) == []


def test_sweep_is_strict_about_wildcards_even_in_code() -> None:
    assert unsafe_in("`@**all**`")  # the bot never needs to write one, so none is tolerated


def test_sweep_allows_mentioning_a_direct_message_participant() -> None:
    assert unsafe_in("Hi @**Ben Owner|12**, here you go", frozenset({12, 1})) == []
    assert unsafe_in("Hi @**Eve Lead|15**, here you go", frozenset({12, 1}))


def test_sweep_checks_what_this_bot_sent_on_an_emulated_server() -> None:
    from fakezulip import Realm

    with FakeZulip(Realm.demo()) as server:
        bot = server.realm.user_by_email("goals-bot@example.com")
        ben = server.realm.user_by_name("Ben Owner")
        assert bot is not None and ben is not None
        ours = server.send_stream_message(bot, "general", "t", "@**all** hi", client=OUR_CLIENT)
        server.send_stream_message(bot, "general", "t", "@**all** hi", client="other-bot")
        server.send_stream_message(ben, "general", "t", "@**all** hi")  # people may
        problems = bot_message_problems(server)
        assert [p for p in problems if f"message {ours} " not in p] == []
        assert f"message {ours} in #general > t: wildcard mention '@**all**'" in problems
        # The server's flags are checked too: each reader the wildcard notified is named.
        assert f"message {ours} in #general > t: Ben Owner was notified (" in "\n".join(problems)
        server.delete_message(ours)  # or the suite-wide sweep would fail this test


def test_sweep_reads_the_flags_of_group_mentions_the_text_check_cannot_see() -> None:
    """A group mention inside a broken topic link (as transcript 29 recorded) notifies every
    member; the sweep names each of them, and spares those a prompt's salutation addresses."""
    with FakeZulip(Realm.demo()) as server:
        bot = server.realm.user_by_email("goals-bot@example.com")
        ben = server.realm.user_by_name("Ben Owner")
        assert bot is not None and ben is not None
        team = server.realm.user_group_by_name("goals-team")
        assert team is not None
        stream = server.realm.stream_by_name("project-goals")
        assert stream is not None  # members who do not receive the message are not notified
        members = sorted(set(server.realm.group_members(team)) & stream.subscribers)
        link = "#**project-goals>Ship it with @*goals-team* soon**"
        sent = server.send_stream_message(
            bot,
            "project-goals",
            "t",
            f"@**Ben Owner|{ben.user_id}**: see {link}",
            client=OUR_CLIENT,
        )
        assert sorted(server.notified(sent)) == members
        message = server.message(sent)
        problems = notified_problems(server, message, frozenset())
        named = {u.full_name for u in server.iter_users() if u.user_id in members}
        assert len(problems) == len(members) - 1  # Ben is addressed by the salutation
        assert {p.split(" was notified")[0] for p in problems} == named - {"Ben Owner"}
        server.delete_message(sent)


# ============================================================================ refusals, end to end

# Each command Eve (neither owner nor admin) may not run, and how the refusal starts.
REFUSED = (
    ("skip polonius", "Only the owners of **Scale Polonius**"),
    ("pause polonius", "Only the owners of **Scale Polonius**"),
    ("complete polonius", "Only the owners of **Scale Polonius**"),
    (
        "update polonius: TL;DR: all done",
        "I did not store this as an update: only the goal's owners",
    ),
    ("owners add polonius @eve-gh", "Sorry, only bot admins can use `owners`"),
    ("retire polonius", "Sorry, only bot admins can use `retire`"),
    ("map @ben-gh eve@example.com", "Sorry, only bot admins can use `map`"),
    ("goal add mine Eve's own goal", "Sorry, only bot admins can use `goal add`"),
    ("I am @ben-gh", "GitHub @ben-gh is already linked to another Zulip account"),
)
# Tables a refused command must leave as they were (the bot's own bookkeeping may change).
GUARDED_TABLES = ("goals", "goal_owners", "people", "updates", "skips", "digest_subscriptions")


def _snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    with db.read() as s:
        return {
            table: [tuple(r) for r in s.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
            for table in GUARDED_TABLES
        }


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[FakeZulip, Database, BotProcess]]:
    with FakeZulip(Realm.demo(), heartbeat_seconds=2.0) as server:
        bot_user = server.realm.user_by_email("goals-bot@example.com")
        ben = server.realm.user_by_name("Ben Owner")
        conf = write_conf(tmp_path, server, bot_user, extra=QUIET + "[logging]\nlevel = DEBUG\n")
        db = database_for(conf)
        add_goal(db, "polonius", "Scale Polonius", [(ben.user_id, ben.email, ben.full_name)])
        with db.write() as s:
            s.execute(
                text("UPDATE people SET github = 'ben-gh' WHERE zulip_user_id = :id"),
                {"id": ben.user_id},
            )
        with BotProcess(conf) as bot:
            yield server, db, bot
        db.dispose()


def test_every_refusal_is_answered_and_changes_nothing(
    secured: tuple[FakeZulip, Database, BotProcess],
) -> None:
    server, db, bot = secured
    eve = server.realm.user_by_name("Eve Lead")
    bot_user = server.realm.user_by_email("goals-bot@example.com")
    before = _snapshot(db)
    for command, refusal in REFUSED:
        seen = len(server.direct_messages_to(eve))
        server.send_direct_message(eve, [bot_user], command)
        assert wait_until(lambda: len(server.direct_messages_to(eve)) > seen), bot.log()[-2000:]
        answer = server.direct_messages_to(eve)[-1]
        assert answer["sender_id"] == bot_user.user_id
        assert answer["content"].startswith(refusal), (command, answer["content"])
    # A message by someone else in the goal's topic is kept as a comment, not an update.
    with db.read() as s:
        topic = s.execute(text("SELECT zulip_topic FROM goals")).scalar_one()
    server.send_stream_message(eve, "project-goals", topic, "TL;DR: I say it is finished")

    def kinds() -> list[str]:
        with db.read() as s:
            return list(s.execute(text("SELECT kind FROM updates")).scalars())

    assert wait_until(lambda: kinds() != []), bot.log()[-2000:]
    assert kinds() == ["comment"]
    after = _snapshot(db)
    del after["updates"], before["updates"]
    assert after == before


def test_api_key_stays_out_of_debug_logs_and_failures(
    secured: tuple[FakeZulip, Database, BotProcess], tmp_path: Path
) -> None:
    server, _db, bot = secured
    ben = server.realm.user_by_name("Ben Owner")
    bot_user = server.realm.user_by_email("goals-bot@example.com")
    key = bot_user.api_key
    # Traffic with failures on the way: server errors and dropped connections on sends.
    server.faults.fail_next(2, 500, path_prefix="messages", method="POST")
    server.faults.drop_next(1, path_prefix="messages", method="POST")
    server.send_direct_message(ben, [bot_user], "help")
    update = server.send_stream_message(ben, "project-goals", "Scale Polonius", "TL;DR: faster")
    assert wait_until(lambda: bool(server.message(update)["reactions"])), bot.log()[-2000:]
    assert wait_until(lambda: len(server.direct_messages_to(ben)) >= 1), bot.log()[-2000:]
    assert bot.terminate() == 0
    log = bot.log()
    # The log really was verbose, and saw the errors.
    assert " DEBUG " in log and "server error 500" in log and "connection problem" in log
    assert key not in log
    assert "readable by other users" not in log  # the zuliprc is 0600
    # A rejected key: the error names the problem, not the key.
    zuliprc = tmp_path / "zuliprc"
    wrong = "Wr0ngKeyWr0ngKeyWr0ngKeyWr0ngKey"
    zuliprc.write_text(zuliprc.read_text().replace(key, wrong), encoding="utf-8")
    for args in (("run",), ("prompt", "--dry-run"), ("digest",)):
        done = run_cli(tmp_path / "bot.conf", *args, timeout=60)
        output = done.stdout + done.stderr
        assert done.returncode != 0, (args, output)
        assert wrong not in output and key not in output, output
        assert "Traceback" not in output, output
        assert "API key" in output or "credentials" in output or "authoriz" in output.lower()


def test_a_zuliprc_readable_by_others_is_warned_about(tmp_path: Path) -> None:
    with FakeZulip(Realm.demo()) as server:
        conf = write_conf(
            tmp_path, server, server.realm.user_by_email("goals-bot@example.com"), extra=QUIET
        )
        (tmp_path / "zuliprc").chmod(0o644)
        with BotProcess(conf) as bot:
            assert wait_until(lambda: "readable by other users" in bot.log(), 5.0), bot.log()
            assert "chmod 600" in bot.log()
            assert bot.terminate() == 0
