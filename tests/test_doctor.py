"""`zulip-goals-bot doctor` against the emulator: each broken set-up gives its line, its fix and
the exit status; `--fix` changes only what it says; doctor never sends a message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import select

from fakezulip import FIELD_EXTERNAL_ACCOUNT, FakeZulip, Realm, User
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from tests.dbs import new_database_url
from tests.support import BotProcess, add_goal, database_for, run_cli, write_conf
from zulip_goals_bot.db.engine import Database, alembic_config, upgrade
from zulip_goals_bot.db.models import Delivery, DigestSubscription, Person
from zulip_goals_bot.doctor import (
    Check,
    Status,
    exit_status,
    may_subscribe_others,
    post_refusal,
)

# Thursday 2025-03-06 10:00 UTC: before the prompt slot (Thursday 14:00).
NOW = datetime(2025, 3, 6, 10, 0, tzinfo=UTC)


@dataclass
class Setup:
    """The demo organisation, a bot.conf for its bot, a clock shared by the bot and Zulip."""

    server: FakeZulip
    conf: Path
    clock: FileClock
    tmp: Path

    @property
    def realm(self) -> Realm:
        return self.server.realm

    def user(self, name: str) -> User:
        found = self.realm.user_by_name(name)
        assert found is not None
        return found

    @property
    def bot(self) -> User:
        return self.user("Goals Bot")

    def db(self) -> Database:
        return database_for(self.conf)

    def owner(self, name: str) -> tuple[int, str, str]:
        u = self.user(name)
        return (u.user_id, u.email, u.full_name)

    def configure(self, extra: str) -> None:
        self.conf.write_text(self.conf.read_text(encoding="utf-8") + extra, encoding="utf-8")

    def subscriptions(self) -> set[tuple[str, int]]:
        return {
            (name, uid)
            for name in ("project-goals", "general")
            for uid in self.server.stream_subscribers(name)
        }

    def doctor(self, *args: str) -> tuple[int, dict[str, dict[str, Any]], dict[str, Any]]:
        """Run doctor --json; the exit status, the checks by name, and the whole answer."""
        sent = len(self.server.messages)
        done = run_cli(self.conf, "doctor", "--json", *args, env=self.env)
        assert len(self.server.messages) == sent, "doctor sent a message"
        assert done.stderr == "", done.stderr
        answer = json.loads(done.stdout)
        assert answer["exit_status"] == done.returncode
        return done.returncode, {c["check"]: c for c in answer["checks"]}, answer

    def doctor_text(self, *args: str) -> tuple[int, str]:
        done = run_cli(self.conf, "doctor", *args, env=self.env)
        return done.returncode, done.stdout

    @property
    def env(self) -> dict[str, str]:
        return {CLOCK_FILE_ENV: str(self.clock.path)}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    clock = FileClock(tmp_path / "clock")
    clock.set(NOW)
    realm = Realm.demo()
    field = realm.add_profile_field("GitHub", FIELD_EXTERNAL_ACCOUNT)
    assert field
    with FakeZulip(realm, clock=lambda: clock.now().timestamp()) as server:
        conf = write_conf(tmp_path, server, realm.user_by_name("Goals Bot"))
        s = Setup(server, conf, clock, tmp_path)
        db = s.db()
        add_goal(db, "polonius", "Polonius", [s.owner("Ben Owner")], issue=118)
        add_goal(db, "async", "Async closures", [s.owner("Chloé Owner")], issue=119)
        db.dispose()
        yield s


def problems(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {k: c["status"] for k, c in checks.items() if c["status"] != "ok"}


# -- pure rules ----------------------------------------------------------------------------------


def test_posting_and_subscribing_rules_follow_zulip() -> None:
    admin, moderator, member, guest = 200, 300, 400, 600
    assert post_refusal(1, guest) is None
    assert post_refusal(2, admin) is None
    assert post_refusal(2, moderator) == "only administrators may post there"
    assert post_refusal(4, moderator) is None
    assert post_refusal(4, member) == "only administrators and moderators may post there"
    assert post_refusal(3, member) is None
    assert post_refusal(3, guest) == "guests may not post there"
    assert may_subscribe_others(1, member) and not may_subscribe_others(1, guest)
    assert not may_subscribe_others(2, moderator) and may_subscribe_others(2, admin)
    assert may_subscribe_others(4, moderator) and not may_subscribe_others(4, member)


def test_exit_status_and_lines() -> None:
    good = Check("a", Status.OK, "fine", "never shown")
    bad = Check("b", Status.ERROR, "broken", "do this", ("detail",))
    assert exit_status([]) == 0 and exit_status([good]) == 0
    assert exit_status([good, Check("c", Status.WARN, "hm", "x")]) == 1
    assert exit_status([good, bad]) == 2
    assert good.render() == "✓ fine"
    assert bad.render() == "✗ broken\n    detail\n    fix: do this"


# -- a healthy set-up -----------------------------------------------------------------------------


def test_healthy_setup_passes_and_changes_nothing(setup: Setup) -> None:
    before = setup.subscriptions()
    status, text = setup.doctor_text()
    assert status == 0, text
    lines = text.splitlines()
    assert lines[-1] == "All checks passed."
    assert all(line.startswith("✓ ") for line in lines[:-1]), text
    assert f"✓ Zulip at {setup.server.base_url}: signed in as Goals Bot" in text
    assert "✓ Stream #project-goals: the bot is subscribed" in lines
    assert "✓ Emoji :check: (ack_emoji): a built-in emoji of this server" in lines
    assert "✓ Goals: 2 tracked, 2 prompted, 0 due now" in lines
    assert "✓ Owners: all 2 are active Zulip users" in lines
    assert "✓ Clock: the server's clock agrees with this machine's" in lines
    assert setup.subscriptions() == before
    assert setup.server.queue_ids == []  # the queue it read the realm settings with is gone


def test_schedule_line_in_the_program_timezone(setup: Setup) -> None:
    setup.configure("timezone = Europe/Berlin\n[digest]\ntimezone = America/New_York\n")
    _status, checks, _ = setup.doctor()
    assert checks["schedule"]["summary"] == (
        "Schedule (Europe/Berlin): next prompts Thu 2025-03-13 14:00 CET (every 2 weeks); "
        "next digest Mon 2025-03-10 14:00 CET"
    )


# -- each broken set-up --------------------------------------------------------------------------


def test_bot_not_subscribed_then_fix_subscribes_only_the_bot(setup: Setup) -> None:
    setup.server.unsubscribe(setup.bot, "project-goals")
    status, checks, _ = setup.doctor()
    assert status == 2
    sub = checks["stream.subscribed"]
    assert sub["mark"] == "✗"
    assert sub["summary"] == (
        "Stream #project-goals: the bot is not subscribed, so it does not see owners' replies there"
    )
    assert sub["fix"] == (
        "`zulip-goals-bot doctor --fix`, or in Zulip: Stream settings > #project-goals > "
        "Subscribers > add Goals Bot"
    )
    before = setup.subscriptions()
    status, checks, answer = setup.doctor("--fix")
    assert answer["fixed"] == ["subscribed the bot to #project-goals"]
    assert setup.subscriptions() == before | {("project-goals", setup.bot.user_id)}
    assert status == 0 and checks["stream.subscribed"]["status"] == "ok"


def test_posting_restricted_to_admins(setup: Setup) -> None:
    ben = setup.user("Ben Owner")
    bens_bot = setup.server.add_user(
        "Ben's Bot", "bens-bot@example.com", is_bot=True, bot_owner=ben
    )
    setup.server.subscribe(bens_bot, "project-goals")
    setup.server.set_stream_post_policy("project-goals", 2)
    # The usual bot is owned by an administrator: Zulip lets it post where its owner may.
    status, checks, _ = setup.doctor()
    assert status == 0 and checks["stream.post"]["status"] == "ok"
    setup.server.write_zuliprc(setup.tmp / "zuliprc", bens_bot)
    status, checks, _ = setup.doctor()
    assert status == 2
    post = checks["stream.post"]
    assert post["summary"] == (
        "Stream #project-goals: the bot may not post (only administrators may post there, and "
        "the bot's owner Ben Owner may not either)"
    )
    assert post["fix"].startswith(
        "Stream settings > #project-goals > General > Stream permissions > "
        "'Who can post to the stream?': All users"
    )
    # The emulator refuses that bot's posts indeed.
    refused = setup.server.client_for(bens_bot).send_message(
        {"type": "stream", "to": "project-goals", "topic": "t", "content": "x"}
    )
    assert refused["msg"] == "Only organization administrators can send to this stream."


def test_direct_messages_restricted(setup: Setup) -> None:
    setup.server.set_private_message_policy(2)
    status, checks, _ = setup.doctor()
    assert status == 0
    assert checks["dm"]["summary"] == (
        "Direct messages: the organization allows them to nobody, but Zulip exempts bots: "
        "the bot may DM owners and they may answer it"
    )
    # With a person's key instead of a bot's, the policy applies, and prompts by DM would fail.
    setup.server.write_zuliprc(setup.tmp / "zuliprc", setup.user("Eve Lead"))
    status, checks, _ = setup.doctor()
    assert status == 2
    assert checks["credentials"]["status"] == "warning"
    assert checks["dm"]["mark"] == "✗"
    assert "this account is not a bot" in checks["dm"]["summary"]
    assert "'Who can use direct messages'" in checks["dm"]["fix"]


def test_missing_emoji(setup: Setup) -> None:
    setup.configure("ack_emoji = goals_done\n")
    status, checks, _ = setup.doctor()
    assert status == 2
    emoji = checks["emoji"]
    assert emoji["summary"] == (
        "Emoji :goals_done: (ack_emoji): not on this server, so saved updates get no reaction"
    )
    assert emoji["fix"].startswith(
        "add a custom emoji :goals_done: (Settings > Organization settings > Custom emoji)"
    )
    setup.server.add_custom_emoji("goals_done", setup.user("Ada Admin"))
    status, checks, _ = setup.doctor()
    assert status == 0
    assert checks["emoji"]["summary"] == (
        "Emoji :goals_done: (ack_emoji): a custom emoji of this server"
    )
    setup.server.deactivate_custom_emoji("goals_done")
    status, checks, _ = setup.doctor()
    assert status == 2 and "was deactivated" in checks["emoji"]["summary"]


def test_unmapped_ownerless_and_unsubscribed_owners(setup: Setup) -> None:
    db = setup.db()
    add_goal(db, "docs", "Lint catalogue", [setup.owner("Dev Owner")], github=["frank-docs"])
    add_goal(db, "orphan", "Orphan goal")
    db.dispose()
    status, checks, _ = setup.doctor()
    assert status == 1
    assert problems(checks) == {
        "goals.owners": "warning",
        "owners.mapped": "warning",
        "owners.subscribed": "warning",
    }
    assert checks["goals.owners"]["summary"] == (
        "Goals without an owner (never prompted): Orphan goal"
    )
    mapped = checks["owners.mapped"]
    assert mapped["summary"] == "Owners: 1 not mapped to a Zulip user, 0 deactivated (of 4)"
    assert mapped["details"] == ["@frank-docs: owner of Lint catalogue"]
    assert "`I am @their-handle`" in mapped["fix"]
    outside = checks["owners.subscribed"]
    assert outside["summary"] == (
        "Owners not subscribed to #project-goals (1): they get their prompts by DM and miss the "
        "discussion in the goal topics: Dev Owner"
    )
    assert "set subscribe_owners = true in bot.conf" in outside["fix"]
    # --fix without subscribe_owners: the bot is subscribed already, so nothing changes.
    before = setup.subscriptions()
    _status, _checks, answer = setup.doctor("--fix")
    assert (answer["fixed"], answer["not_fixed"]) == ([], [])
    assert setup.subscriptions() == before
    # The organization lets only admins subscribe others: nothing changes, and it says so.
    setup.configure("subscribe_owners = true\n")
    setup.server.set_invite_to_stream_policy(2)
    _status, _checks, answer = setup.doctor("--fix")
    assert answer["fixed"] == []
    assert answer["not_fixed"][0].startswith(
        "the organization does not let the bot subscribe others to streams"
    )
    assert setup.subscriptions() == before
    # Allowed: Dev Owner is subscribed, and nobody else.
    setup.server.set_invite_to_stream_policy(1)
    status, checks, answer = setup.doctor("--fix")
    assert answer["fixed"] == ["subscribed 1 owners to #project-goals: Dev Owner"]
    assert setup.subscriptions() == before | {("project-goals", setup.user("Dev Owner").user_id)}
    assert checks["owners.subscribed"]["status"] == "ok"


def test_deactivated_owner(setup: Setup) -> None:
    setup.server.deactivate_user(setup.user("Chloé Owner"))
    _status, checks, _ = setup.doctor()
    assert checks["owners.mapped"]["summary"] == (
        "Owners: 0 not mapped to a Zulip user, 1 deactivated (of 2)"
    )
    assert checks["owners.mapped"]["details"] == [
        "Chloé Owner (deactivated on Zulip): owner of Async closures"
    ]


def test_wrong_api_key(setup: Setup) -> None:
    rc = setup.tmp / "zuliprc"
    rc.write_text(rc.read_text().replace(setup.bot.api_key, "wrongwrongwrong"), encoding="utf-8")
    done = run_cli(setup.conf, "doctor", env=setup.env)
    assert done.returncode == 2
    assert "wrongwrongwrong" not in done.stdout + done.stderr
    _status, checks, _ = setup.doctor()
    cred = checks["credentials"]
    assert cred["mark"] == "✗"
    assert "refused the bot's credentials (Invalid API key)" in cred["summary"]
    assert cred["fix"].startswith("download a new zuliprc for the bot (Settings > Personal")
    assert "stream.subscribed" not in checks  # nothing else on Zulip can be checked
    assert checks["database"]["status"] == "ok"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_zuliprc_readable_by_others(setup: Setup, mode: int) -> None:
    """Readable by its group is as exposed as readable by everyone: the group is other people."""
    rc = setup.tmp / "zuliprc"
    rc.chmod(mode)
    status, checks, _ = setup.doctor()
    assert status == 1
    assert checks["zuliprc"]["summary"] == (
        f"zuliprc: {rc} is readable by other users, and it holds the bot's API key"
    )
    assert checks["zuliprc"]["fix"] == f"chmod 600 {rc}"


def test_private_zuliprc_passes(setup: Setup) -> None:
    rc = setup.tmp / "zuliprc"
    rc.chmod(0o600)
    _status, checks, _ = setup.doctor()
    assert checks["zuliprc"]["status"] == "ok"


def test_broken_bot_conf(setup: Setup) -> None:
    setup.conf.write_text("[schedule]\ncadence_weeks = often\n", encoding="utf-8")
    status, text = setup.doctor_text()
    assert status == 2
    assert text.splitlines()[0] == (
        "✗ bot.conf: [schedule] cadence_weeks = 'often' is not valid: expected a whole number "
        "from 1 to 4"
    )


def test_pending_migration(tmp_path: Path, setup: Setup) -> None:
    url = new_database_url(tmp_path / "old")
    setup.conf.write_text(
        setup.conf.read_text().replace("database = ", f"database = {url}\n; was: "),
        encoding="utf-8",
    )
    db = Database(url)
    upgrade(db.engine, "0001")
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    status, checks, _ = setup.doctor()
    assert status == 1
    mig = checks["database"]
    assert mig["summary"].endswith(f"is at migration 0001; the latest is {head}")
    assert mig["fix"] == "zulip-goals-bot db upgrade (run applies them too)"
    assert db.current_revision() == "0001"  # doctor migrated nothing
    db.dispose()


def test_missing_sqlite_file_is_not_created(setup: Setup) -> None:
    missing = setup.tmp / "new" / "goals.sqlite3"
    setup.conf.write_text(
        setup.conf.read_text().replace("database = ", f"database = sqlite:///{missing}\n; was: "),
        encoding="utf-8",
    )
    status, checks, _ = setup.doctor()
    assert status == 1 and checks["database"]["summary"].endswith("does not exist yet")
    assert not missing.parent.exists()


@pytest.mark.parametrize(
    ("skew", "words"), [(timedelta(minutes=5), "ahead of"), (timedelta(minutes=-5), "behind")]
)
def test_clock_skew(tmp_path: Path, skew: timedelta, words: str) -> None:
    """A server clock off by minutes either way is reported (behind is as wrong as ahead)."""
    clock = FileClock(tmp_path / "clock")
    clock.set(NOW)
    realm = Realm.demo()
    realm.add_profile_field("GitHub", FIELD_EXTERNAL_ACCOUNT)
    with FakeZulip(realm, clock=lambda: (clock.now() + skew).timestamp()) as server:
        conf = write_conf(tmp_path, server, realm.user_by_name("Goals Bot"))
        database_for(conf).dispose()
        setup = Setup(server, conf, clock, tmp_path)
        status, checks, _ = setup.doctor()
    assert status == 1
    assert checks["clock"]["summary"] == (
        f"Clock: the server's clock is 5 min {words} this machine's, so prompts and the digest "
        "go out at other times than Zulip shows"
    )
    assert "timedatectl set-ntp true" in checks["clock"]["fix"]


def test_goals_stream_missing(setup: Setup) -> None:
    setup.configure("[digest]\nstream = announcements\n")
    setup.conf.write_text(
        setup.conf.read_text().replace("stream = project-goals", "stream = goals"),
        encoding="utf-8",
    )
    status, checks, _ = setup.doctor()
    assert status == 2
    assert checks["stream.exists"]["summary"].startswith("Stream #goals (goals stream): not found")
    assert checks["digest.stream.exists"]["summary"].startswith(
        "Stream #announcements (digest stream): not found"
    )
    before = setup.subscriptions()
    _status, _checks, answer = setup.doctor("--fix")
    assert answer["not_fixed"] == ["#goals does not exist; doctor --fix does not create streams"]
    assert setup.subscriptions() == before


# -- run at start-up, the digest, and a manual digest once per week ------------------------------


def subscribe_digest(db: Database, who: User, when: datetime) -> None:
    with db.write() as session:
        person = session.execute(
            select(Person).where(Person.zulip_user_id == who.user_id)
        ).scalar_one_or_none()
        if person is None:
            person = Person(zulip_user_id=who.user_id, email=who.email, full_name=who.full_name,
                            created_at=when)  # fmt: skip
            session.add(person)
            session.flush()
        session.add(DigestSubscription(person_id=person.id, created_at=when))


def test_run_logs_each_problem_once_and_the_digest_lists_it(setup: Setup) -> None:
    setup.configure("ack_emoji = goals_done\n")
    setup.server.add_custom_emoji("goals_done", setup.user("Ada Admin"))
    setup.server.deactivate_custom_emoji("goals_done")
    with BotProcess(setup.conf, env=setup.env) as bot:
        log = bot.log()
        assert bot.terminate() == 0
    lines = [line for line in log.splitlines() if "set-up:" in line]
    assert len(lines) == 1, log
    assert "ERROR" in lines[0]
    assert lines[0].endswith(
        "set-up: ✗ Emoji :goals_done: (ack_emoji): the custom emoji was deactivated (fix: add "
        "a custom emoji :goals_done: (Settings > Organization settings > Custom emoji), or set "
        "ack_emoji in bot.conf to one that exists (the default `check` always does))"
    )
    done = run_cli(setup.conf, "digest", env=setup.env)
    assert done.returncode == 0, done.stderr
    (digest,) = setup.server.messages_in("project-goals", "weekly digest")
    assert (
        "_Set-up problems found when the bot started (1):_\n"
        "- ✗ Emoji :goals_done: (ack_emoji): the custom emoji was deactivated "
        "(fix: add a custom emoji :goals_done:"
    ) in digest["content"]


def test_manual_digest_is_once_per_week_and_again_posts_anew(setup: Setup) -> None:
    db = setup.db()
    eve, ben = setup.user("Eve Lead"), setup.user("Ben Owner")
    subscribe_digest(db, eve, NOW - timedelta(days=30))

    def digests() -> list[str]:
        return [
            *(
                f"topic:{m['id']}"
                for m in setup.server.messages_in("project-goals", "weekly digest")
            ),
            *(f"eve:{m['id']}" for m in setup.server.direct_messages_to(eve)),
            *(f"ben:{m['id']}" for m in setup.server.direct_messages_to(ben)),
        ]

    first = run_cli(setup.conf, "digest", env=setup.env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("Digest 2025-03-03: 2 sent, 0 already sent, 0 failed")
    sent = digests()
    assert [d.split(":")[0] for d in sent] == ["topic", "eve"]
    # A second run in the same digest week (a cron job, a retry after a timeout): nothing.
    second = run_cli(setup.conf, "digest", env=setup.env)
    assert second.returncode == 0
    assert second.stdout.splitlines() == [
        "Digest 2025-03-03: nothing posted, already sent this period "
        f"(#project-goals > weekly digest, DM to {eve.user_id})",
        "`zulip-goals-bot digest --again` posts it anew.",
    ]
    assert digests() == sent
    # Ben subscribes on Thursday: a later run sends only what the week still owes him.
    setup.clock.set(NOW + timedelta(hours=3))
    subscribe_digest(db, ben, setup.clock.now())
    third = run_cli(setup.conf, "digest", env=setup.env)
    assert third.stdout.startswith("Digest 2025-03-03: 1 sent, 2 already sent, 0 failed")
    assert [d.split(":")[0] for d in digests()] == ["topic", "eve", "ben"]
    # The week's keys are the scheduled digest's: the running bot will not post it again.
    with db.read() as session:
        periods = set(session.execute(select(Delivery.period)).scalars())
    assert periods == {"2025-03-03"}
    # --again posts anew on purpose, everywhere.
    again = run_cli(setup.conf, "digest", "--again", env=setup.env)
    assert again.stdout.startswith("Digest manual-20250306T1300: 3 sent, 0 already sent")
    assert len(digests()) == 6
    db.dispose()


def test_unreachable_server(setup: Setup) -> None:
    rc = setup.tmp / "zuliprc"
    rc.write_text(rc.read_text().replace(setup.server.base_url, "http://127.0.0.1:9"))
    status, checks, _ = setup.doctor()
    assert status == 2
    cred = checks["credentials"]
    assert cred["summary"].startswith("Zulip at http://127.0.0.1:9: cannot reach the Zulip server")
    assert cred["fix"] == "check site= in the zuliprc, and that this machine can reach the server"
