"""The bridge end to end on both emulators: an owner who updated on GitHub is not reminded, and
`status` in Zulip shows the comment and the issue's progress; `github sync` and `run` as a user
runs them (subprocesses, the token in GITHUB_TOKEN)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fakegithub import FakeGitHub
from fakezulip import FakeZulip, Realm, User
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from tests.support import BotProcess, add_goal, database_for, run_cli, wait_until, write_conf
from zulip_goals_bot.db.models import Person, Update
from zulip_goals_bot.domain.states import UpdateSource

REPO = "rust-lang/rust-project-goals"
TOKEN = "ghp_e2etoken000000000000000000000000000"
# A period's first slot (Thursdays 14:00, every two weeks), the goals long past their grace.
SLOT = datetime(2026, 3, 12, 14, 0, tzinfo=UTC)
BODY = "**Tasks**\n\n* [x] RFC\n* [ ] Implementation\n* [ ] Stabilization\n"


@dataclass
class World:
    zulip: FakeZulip
    gh: FakeGitHub
    conf: Path
    clock: FileClock
    users: dict[str, User]
    topic: str  # Polonius's topic

    @property
    def env(self) -> dict[str, str]:
        return {CLOCK_FILE_ENV: str(self.clock.path), "GITHUB_TOKEN": TOKEN}

    def cli(self, *args: str) -> str:
        done = run_cli(self.conf, *args, env=self.env)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def dms_from_bot(self, who: str) -> list[dict[str, Any]]:
        bot = self.users["bot"].user_id
        return [m for m in self.zulip.direct_messages_to(self.users[who]) if m["sender_id"] == bot]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FileClock(tmp_path / "clock")
    clock.set(SLOT + timedelta(seconds=30))
    realm = Realm.demo()
    names = {"bot": "Goals Bot", "ben": "Ben Owner", "chloe": "Chloé Owner", "eve": "Eve Lead"}
    users = {key: realm.user_by_name(name) for key, name in names.items()}
    assert all(users.values())
    with (
        FakeZulip(realm, clock=lambda: clock.now().timestamp(), heartbeat_seconds=2.0) as zulip,
        FakeGitHub(clock=clock.now) as gh,
    ):
        gh.add_repo(REPO)
        gh.add_token(TOKEN, "goals-bot-operator")
        gh.add_issue(REPO, 263, "Polonius", BODY)
        gh.add_issue(REPO, 264, "Parallel front end", "")
        extra = (
            "[schedule]\ncadence_weeks = 2\nreminder_days = 3\n"
            f"[github]\nrepository = {REPO}\napi_url = {gh.url}\n"
        )
        conf = write_conf(tmp_path, zulip, users["bot"], extra=extra, log_level="DEBUG")
        db = database_for(conf)
        ben, chloe = users["ben"], users["chloe"]
        assert ben is not None and chloe is not None
        polonius = add_goal(
            db, "polonius", "Polonius", [(ben.user_id, ben.email, ben.full_name)], issue=263
        )
        add_goal(db, "parallel", "Parallel front end",
                 [(chloe.user_id, chloe.email, chloe.full_name)], issue=264)  # fmt: skip
        with db.write() as s:
            for person in s.execute(select(Person)).scalars():
                person.github = {ben.user_id: "ben-gh", chloe.user_id: "chloe-gh"}.get(
                    person.zulip_user_id or 0
                )
        db.dispose()
        yield World(zulip, gh, conf, clock, users, polonius.zulip_topic)  # type: ignore[arg-type]


def test_an_owner_who_updated_on_github_is_not_reminded_and_status_shows_it(
    world: World,
) -> None:
    assert "Sent 2" in world.cli("prompt")
    # Ben answers on the tracking issue, not in Zulip.
    world.clock.set(SLOT + timedelta(hours=2))
    comment = world.gh.add_comment(REPO, 263, "ben-gh", "TL;DR: the RFC is merged.\n\nMore soon.")
    remark = world.gh.add_comment(REPO, 264, "drive-by", "Is this still happening?")
    out = world.cli("github", "sync")
    assert "polonius (rust-lang/rust-project-goals#263): 1 new, 0 edited, 0 deleted" in out
    assert "progress 1 of 3 tasks done" in out
    assert "parallel (rust-lang/rust-project-goals#264): 1 new" in out  # a comment, not an update

    # Three days on: Chloé, silent, is reminded; Ben, who updated on GitHub, is not.
    world.clock.set(SLOT + timedelta(days=3, hours=1))
    due = world.cli("prompt", "--dry-run")
    assert "Parallel front end" in due and "Polonius" not in due, due

    # The running bot: its first GitHub pass at start, then `status` in Zulip shows the comment.
    world.gh.edit_comment(comment, "TL;DR: the RFC is merged, and the nightly has it.")
    with BotProcess(world.conf, env=world.env) as proc:
        assert wait_until(lambda: "github pass 1 done" in proc.log()), proc.log()
        world.zulip.send_direct_message(world.users["eve"], [world.users["bot"]], "status polonius")
        assert wait_until(lambda: bool(world.dms_from_bot("eve"))), proc.log()
        answer = world.dms_from_bot("eve")[0]["content"]
    assert "the RFC is merged, and the nightly has it" in answer
    assert f"[view comment](https://github.com/{REPO}/issues/263#issuecomment-{comment})" in answer
    assert "**Progress**: 1 of 3 tasks done (33%); open: Implementation; Stabilization" in answer
    db = database_for(world.conf)
    with db.read() as s:
        rows = s.execute(select(Update).where(Update.source == UpdateSource.GITHUB)).scalars()
        assert sorted((u.github_comment_id or 0, u.kind.value) for u in rows) == sorted(
            [(comment, "update"), (remark, "comment")]
        )
    db.dispose()


def test_a_github_outage_never_stops_zulip_work(world: World) -> None:
    world.gh.stop()  # GitHub unreachable for the whole run
    ben = world.users["ben"]
    with BotProcess(world.conf, env=world.env) as proc:
        assert wait_until(lambda: "github pass 1 done" in proc.log(), timeout=60), proc.log()
        assert "github pass 1 done: 0 changes, with failures" in proc.log()
        assert "GitHub could not be reached" in proc.log()
        sent = world.zulip.send_stream_message(ben, "project-goals", world.topic, "Done!")
        proc.wait_stored_through(sent)
    assert TOKEN not in proc.log()


def test_a_reply_in_zulip_is_one_comment_that_follows_edits_and_deletes(world: World) -> None:
    world_conf = world.conf.read_text(encoding="utf-8")
    world.conf.write_text(world_conf.replace("[github]\n", "[github]\nmirror = both\n"), "utf-8")
    ben = world.users["ben"]

    def mirrored() -> list[str]:
        return [c["body"] for c in world.gh.comments(REPO, 263)]

    with BotProcess(world.conf, env=world.env) as proc:
        assert wait_until(lambda: "github pass 1 done" in proc.log()), proc.log()
        sent = world.zulip.send_stream_message(
            ben, "project-goals", world.topic, "TL;DR: borrowck passes, thanks @someone-on-github"
        )
        assert wait_until(lambda: len(mirrored()) == 1), proc.log()
        [body] = mirrored()
        assert "**Update from Zulip by @ben-gh**" in body
        assert f"/#narrow/id/{sent})" in body
        assert "thanks @<!-- -->someone-on-github" in body  # nobody is pinged on GitHub
        world.zulip.edit_message(ben, sent, content="TL;DR: borrowck passes on nightly")
        assert wait_until(lambda: "on nightly" in "".join(mirrored())), proc.log()
        assert len(mirrored()) == 1
        # The bot's own comment never comes back as an update (no loop), across later passes.
        passes = proc.log().count("github pass ")
        world.zulip.delete_message(sent)
        assert wait_until(lambda: mirrored() == []), proc.log()
        assert wait_until(lambda: proc.log().count("github pass ") > passes), proc.log()
    db = database_for(world.conf)
    with db.read() as s:
        assert s.execute(select(Update).where(Update.source == UpdateSource.GITHUB)).all() == []
    db.dispose()


def test_github_sync_dry_run_and_mirror_commands(world: World) -> None:
    world.clock.set(SLOT + timedelta(hours=1))
    world.gh.add_comment(REPO, 263, "ben-gh", "TL;DR: first results.")
    out = world.cli("github", "sync", "--dry-run", "--goal", "polonius")
    assert out.startswith("Dry run, nothing stored: 1 tracking issues, 1 changes;")
    assert "  new update: https://github.com/rust-lang/rust-project-goals/issues/263" in out
    assert "  open task: Implementation" in out
    db = database_for(world.conf)
    with db.read() as s:
        assert s.execute(select(Update)).all() == []
    db.dispose()
    # Mirroring is opt-in: with the default mode, the command says how to switch it on.
    done = run_cli(world.conf, "github", "mirror", env=world.env)
    assert done.returncode == 2
    assert "set mirror = to-github or both" in done.stderr
    unknown = run_cli(world.conf, "github", "sync", "--goal", "nope", env=world.env)
    assert unknown.returncode == 2 and "no running goal 'nope'" in unknown.stderr
    bad = run_cli(world.conf, "github", "sync", "--since", "last week", env=world.env)
    assert bad.returncode == 2 and "is not a date like" in bad.stderr


def test_a_health_in_a_github_comment_shows_in_status_and_follows_its_edit(world: World) -> None:
    world.clock.set(SLOT + timedelta(hours=1))
    comment = world.gh.add_comment(
        REPO, 263, "ben-gh", "TL;DR: the borrow checker work stalled.\n\n**Status:** Blokced"
    )
    world.gh.add_comment(REPO, 263, "drive-by", "Status: on track")  # not an owner: no call
    world.cli("github", "sync")

    def status() -> str:
        before = len(world.dms_from_bot("eve"))
        world.zulip.send_direct_message(world.users["eve"], [world.users["bot"]], "status polonius")
        assert wait_until(lambda: len(world.dms_from_bot("eve")) > before)
        answer = world.dms_from_bot("eve")[before]["content"]
        (line,) = [x for x in answer.splitlines() if x.startswith("**Health**")]
        return str(line)

    with BotProcess(world.conf, env=world.env) as proc:
        assert wait_until(lambda: "github pass 1 done" in proc.log()), proc.log()
        line = status()
        assert line.startswith("**Health**: :red_circle: blocked since "), line
        assert line.endswith(f"(https://github.com/{REPO}/issues/263#issuecomment-{comment})")
    # The owner edits the comment on GitHub: the next sync follows it.
    world.clock.set(SLOT + timedelta(hours=2))
    world.gh.edit_comment(comment, "TL;DR: unblocked, the fix landed.\n\nStatus: on track")
    world.cli("github", "sync")
    with BotProcess(world.conf, env=world.env) as proc:
        assert wait_until(lambda: "github pass 1 done" in proc.log()), proc.log()
        assert status().startswith("**Health**: :green_circle: on track since ")
