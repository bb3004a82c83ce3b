"""Security: what the bot says never pings the wrong people, refusals hold, secrets stay secret.

The mention sweep (``BotMessageSweep``) runs after every test of the suite (see
``tests/conftest.py``): each message any bot user sent on any emulated server is checked for
wildcard mentions and for un-silenced mentions of people the message does not address.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from zulip_goals_bot.fakezulip import FakeZulip
from zulip_goals_bot.fakezulip.markdown import find_mentions

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
        for problem in unsafe_in(message["content"], recipients):
            where = (
                f"#{message['display_recipient']} > {message['subject']}"
                if message["type"] == "stream"
                else "a direct message"
            )
            problems.append(f"message {message['id']} in {where}: {problem}")
    return problems


@dataclass
class BotMessageSweep:
    """Tracks every FakeZulip created in the session and checks its bots' new messages."""

    servers: list[FakeZulip] = field(default_factory=list)
    checked: dict[int, int] = field(default_factory=dict)  # id(server) -> last checked id
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
            messages = server.messages
            last = self.checked.get(id(server), 0)
            problems += bot_message_problems(server, last)
            if messages:
                self.checked[id(server)] = max(m["id"] for m in messages)
            if server._thread is None:  # stopped: only a test's direct calls could add more
                with self.lock:
                    self.servers.remove(server)
                self.checked.pop(id(server), None)
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
    from zulip_goals_bot.fakezulip import Realm

    with FakeZulip(Realm.demo()) as server:
        bot = server.realm.user_by_email("goals-bot@example.com")
        ben = server.realm.user_by_name("Ben Owner")
        assert bot is not None and ben is not None
        ours = server.send_stream_message(bot, "general", "t", "@**all** hi", client=OUR_CLIENT)
        server.send_stream_message(bot, "general", "t", "@**all** hi", client="other-bot")
        server.send_stream_message(ben, "general", "t", "@**all** hi")  # people may
        problems = bot_message_problems(server)
        assert len(problems) == 2 and all(f"message {ours} " in p for p in problems), problems
        server.delete_message(ours)  # or the suite-wide sweep would fail this test
