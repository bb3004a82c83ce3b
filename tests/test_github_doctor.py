"""`doctor` on the GitHub bridge: a bad token, a missing repository, an unreadable tracking issue
and a token that cannot comment, each with its fix; against both emulators, as a subprocess."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fakegithub import FakeGitHub
from fakezulip import FakeZulip, Realm
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from tests.support import add_goal, database_for, run_cli, write_conf

REPO = "rust-lang/rust-project-goals"
TOKEN = "ghp_doctortoken0000000000000000000000000"
NOW = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)


@dataclass
class Setup:
    gh: FakeGitHub
    conf: Path
    clock: FileClock

    def doctor(self, token: str = TOKEN) -> dict[str, dict[str, Any]]:
        env = {CLOCK_FILE_ENV: str(self.clock.path), "GITHUB_TOKEN": token}
        done = run_cli(self.conf, "doctor", "--json", env=env)
        assert not token or token not in done.stdout + done.stderr
        return {c["check"]: c for c in json.loads(done.stdout)["checks"]}

    def configure(self, **keys: str) -> None:
        text = self.conf.read_text(encoding="utf-8")
        for key, value in keys.items():
            text = text.replace("[github]\n", f"[github]\n{key} = {value}\n")
        self.conf.write_text(text, encoding="utf-8")


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    clock = FileClock(tmp_path / "clock")
    clock.set(NOW)
    realm = Realm.demo()
    with (
        FakeZulip(realm, clock=lambda: clock.now().timestamp()) as zulip,
        FakeGitHub(clock=clock.now) as gh,
    ):
        gh.add_repo(REPO)
        gh.add_token(TOKEN, "operator")
        gh.add_issue(REPO, 263, "Polonius", "* [ ] one")
        bot, ben = realm.user_by_name("Goals Bot"), realm.user_by_name("Ben Owner")
        assert bot is not None and ben is not None
        extra = f"[github]\nrepository = {REPO}\napi_url = {gh.url}\n"
        conf = write_conf(tmp_path, zulip, bot, extra=extra)
        db = database_for(conf)
        add_goal(db, "polonius", "Polonius", [(ben.user_id, ben.email, ben.full_name)], issue=263)
        db.dispose()
        yield Setup(gh, conf, clock)


def test_a_good_set_up_is_all_ok(setup: Setup) -> None:
    checks = setup.doctor()
    assert checks["github.token"]["status"] == "ok"
    assert checks["github.issues"]["summary"] == "GitHub: all 1 tracking issues readable"
    assert checks["github.rate"]["summary"].startswith("GitHub rate limit: ")
    assert "github.write" not in checks  # mirror = from-github: nothing is posted


def test_a_bad_token_says_make_a_new_one(setup: Setup) -> None:
    checks = setup.doctor(token="ghp_wrong000000000000000000000000000000")
    check = checks["github.token"]
    assert check["status"] == "error"
    assert "refused" in check["summary"] and "make a new token" in check["fix"]


def test_a_missing_repository_names_the_key_to_fix(setup: Setup) -> None:
    setup.conf.write_text(
        setup.conf.read_text(encoding="utf-8").replace(REPO, "rust-lang/no-such-repo"),
        encoding="utf-8",
    )
    check = setup.doctor()["github.repository"]
    assert check["status"] == "error"
    assert "rust-lang/no-such-repo" in check["summary"]
    assert "[github] repository" in check["fix"]


def test_an_unreadable_tracking_issue_names_its_goal(setup: Setup) -> None:
    db = database_for(setup.conf)
    add_goal(db, "missing", "Missing issue", issue=999, github=["someone"])
    db.dispose()
    check = setup.doctor()["github.issues"]
    assert check["status"] == "error"
    assert check["summary"] == "GitHub: 1 of 2 tracking issues cannot be read"
    assert check["details"][0].startswith("missing: rust-lang/rust-project-goals#999: ")
    assert "Tracking issue" in check["fix"]


def test_mirroring_with_a_read_only_token_is_a_warning(setup: Setup) -> None:
    setup.gh.add_token("ghp_readonly000000000000000000000000000", "reader", can_write=False)
    setup.configure(mirror="both")
    check = setup.doctor(token="ghp_readonly000000000000000000000000000")["github.write"]
    assert check["status"] == "warning"
    assert "mirror = from-github" in check["fix"]
    assert setup.doctor()["github.write"]["status"] == "ok"


def test_no_credentials_is_one_clear_error(setup: Setup) -> None:
    check = setup.doctor(token="")["github.credentials"]
    assert check["status"] == "error" and "GITHUB_TOKEN" in check["fix"]


def test_the_last_syncs_failures_are_reported_with_their_goal(setup: Setup) -> None:
    db = database_for(setup.conf)
    add_goal(db, "missing", "Missing issue", issue=999, github=["someone"])
    db.dispose()
    env = {CLOCK_FILE_ENV: str(setup.clock.path), "GITHUB_TOKEN": TOKEN}
    synced = run_cli(setup.conf, "github", "sync", env=env)
    assert synced.returncode == 1  # one issue could not be read
    assert "missing (rust-lang/rust-project-goals#999): not synced: " in synced.stdout
    check = setup.doctor()["github.sync"]
    assert check["status"] == "warning"
    assert check["summary"] == "GitHub sync: last 0 s ago; 1 tracking issues failed"
    assert check["details"][0].startswith("missing: ") and "404" in check["details"][0]
