"""Tracking issues on the website, read in headless Chromium: a progress bar per goal, the
program's progress per week, updates written on GitHub linking to their comments, and the same
figures in goals.json.  The data comes the real way: a sync from the GitHub emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from fakegithub import FakeGitHub
from fakezulip import FakeZulip, Realm
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from tests.support import add_goal, database_for, run_cli, write_conf
from tests.test_site_browser import CHROMEDRIVER, CHROMIUM, Reader, serving
from tests.test_site_browser import browser as browser  # the module's Chromium, shared
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.github.client import GitHubClient, TokenAuth
from zulip_goals_bot.github.sync import sync

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)

REPO = "rust-lang/rust-project-goals"
TOKEN = "ghp_sitetoken00000000000000000000000000"
START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TASKS = "* [x] RFC\n* [ ] Nightly\n* [ ] Stable\n* [ ] Docs\n"
ARTEFACTS = Path(__file__).resolve().parent / "artefacts"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A built site of one goal whose issue was synced twice, a week apart (1, then 3 of 4)."""
    clock = FrozenClock(START)
    file_clock = FileClock(tmp_path / "clock")
    realm = Realm.demo()
    with FakeZulip(realm) as zulip, FakeGitHub(clock=clock.now) as gh:
        gh.add_repo(REPO)
        gh.add_token(TOKEN, "operator")
        gh.add_issue(REPO, 263, "Polonius", TASKS)
        bot = realm.user_by_name("Goals Bot")
        assert bot is not None
        conf = write_conf(tmp_path, zulip, bot, extra="[site]\noutput = site\n")
        db = database_for(conf)
        add_goal(db, "polonius", "Polonius", issue=263, github=["lqd"],
                 created=START - timedelta(days=20))  # fmt: skip
        with GitHubClient(gh.url, TokenAuth(TOKEN), clock=clock.now) as client:
            sync(db, client, REPO, now=clock.now)
            clock.advance(timedelta(days=7))
            gh.edit_issue_body(REPO, 263, TASKS.replace("[ ] Nightly", "[x] Nightly").replace(
                "[ ] Stable", "[x] Stable"))  # fmt: skip
            comment = gh.add_comment(REPO, 263, "lqd", "TL;DR: nightly and stable are done.")
            sync(db, client, REPO, now=clock.now)
        db.dispose()
        file_clock.set(clock.now() + timedelta(hours=1))
        done = run_cli(conf, "site", "build", env={CLOCK_FILE_ENV: str(file_clock.path)})
        assert done.returncode == 0, done.stdout + done.stderr
        yield tmp_path / "site", comment


def test_progress_shows_per_goal_and_over_time(browser: WebDriver, site: tuple[Path, int]) -> None:
    folder, comment = site
    with serving(folder) as base:
        reader = Reader(browser, base)
        reader.open("index.html")
        bar = browser.find_element(By.CSS_SELECTOR, "li.card progress")
        assert (bar.get_attribute("value"), bar.get_attribute("max")) == ("3", "4")
        card = browser.find_element(By.CSS_SELECTOR, "li.card p.progress").text
        assert card.endswith("3 of 4 tasks done")
        rows = [
            [c.text for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
            for row in browser.find_elements(By.CSS_SELECTOR, "#progress tbody tr")
        ]
        assert [r[1:3] for r in rows] == [["1", "4"], ["3", "4"]]
        ARTEFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTEFACTS / "site-progress.png"))
        reader.open("goals/polonius.html")
        assert (
            "3 of 4 tasks done on the tracking issue (75%)"
            in browser.find_element(By.ID, "progress").text
        )
        assert [li.text for li in browser.find_elements(By.CSS_SELECTOR, ".open-tasks li")] == [
            "Docs"
        ]
        source = browser.find_element(By.CSS_SELECTOR, "article.update .source a")
        assert source.text == "View on GitHub"
        assert source.get_attribute("href") == (
            f"https://github.com/{REPO}/issues/263#issuecomment-{comment}"
        )
        assert reader.errors == []
    data = json.loads((folder / "goals.json").read_text(encoding="utf-8"))
    [goal] = data["goals"]
    assert goal["progress"] == {"done": 3, "total": 4, "open_tasks": ["Docs"]}
    [update] = goal["updates"]
    assert (update["id"], update["source"], update["author"]) == (None, "github", "@lqd")
