"""The goals website as a reader sees it in headless Chromium, kept current by `run`.

The bot runs as a subprocess against the emulator with ``[site] output``; owners post updates
(one of them hostile) and the bot stores them and rebuilds the site.  The built folder is served
by ``zulip-goals-bot site serve`` and read through Selenium with Debian's ``chromium`` and
``chromium-driver`` (``.ci/run`` installs them): every goal with its badge, a goal's updates in
order, every internal link resolving, no request leaving the site, no console error, and the
hostile update inert.  The last test builds the site from the sandbox's demo week and saves the
README's screenshot, ``docs/site-index.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from fakezulip import FakeZulip, Realm, User
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from tests.support import (
    ROOT,
    BotProcess,
    add_goal,
    database_for,
    running_since,
    wait_until,
    write_conf,
)
from zulip_goals_bot.db.models import Goal
from zulip_goals_bot.domain.states import GoalState
from zulip_goals_bot.sandbox.world import DEMO_START
from zulip_goals_bot.website.rebuild import DEBOUNCE_ENV, RETRY_ENV

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)

STREAM = "project-goals"
# Thursday 2026-02-26 14:00 UTC starts a two-week prompt period of the default schedule; the
# goals ``add_goal`` makes (2026-01-01) are long past their grace.
PERIOD_START = datetime(2026, 2, 26, 14, 0, tzinfo=UTC)
NOW = PERIOD_START + timedelta(days=1)
# Quick rebuilds for the tests: a real bot waits 5 s to gather a burst of updates.
FAST = {DEBOUNCE_ENV: "0.2", RETRY_ENV: "0.3"}
SOON = 30.0
HOSTILE = (
    "TL;DR: <script>alert('xss')</script> and @**all** please look\n\n"
    "[click me](javascript:alert(1)) <img src=x onerror=alert(2)> "
    '<a href="javascript:alert(3)" onclick="alert(4)">link</a>\n\n'
    "![tracker](https://tracker.example/pixel.gif)"
)
SCREENSHOT = ROOT / "docs" / "site-index.png"


# -- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1500",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # The driver's path is given: Selenium Manager, which would look for one online, never runs.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class Reader:
    """A person reading the served site: pages opened, requests made, console errors seen."""

    def __init__(self, driver: WebDriver, base: str) -> None:
        self.driver = driver
        self.base = base
        self.requests: list[str] = []
        self.errors: list[str] = []
        for kind in ("performance", "browser"):
            driver.get_log(kind)  # what earlier readers left in the browser's logs

    def _drain(self) -> None:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                self.requests.append(message["params"]["request"]["url"])
        self.errors += [
            e["message"] for e in self.driver.get_log("browser") if e["level"] == "SEVERE"
        ]

    def open(self, path: str) -> None:
        self.driver.get(urljoin(self.base, path))
        self._drain()

    def js(self, script: str) -> Any:
        return self.driver.execute_script(script)

    def cards(self) -> dict[str, str]:
        """Goal name -> badge text, as the index shows them."""
        return {
            card.find_element(By.CSS_SELECTOR, "a.goal-link").text: card.find_element(
                By.CSS_SELECTOR, ".badge"
            ).text
            for card in self.driver.find_elements(By.CSS_SELECTOR, "li.card")
        }

    def links(self) -> list[str]:
        found = self.js(
            "return [...document.querySelectorAll('a[href], link[href]')].map(e => e.href)"
        )
        return [str(u) for u in found]


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[str]:
    """``zulip-goals-bot site serve`` on a free port; yields the URL it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "zulip_goals_bot.cli", "site", "serve", "--directory",
         str(folder), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        assert found, line
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def crawl(reader: Reader) -> set[str]:
    """Open every page reachable from the index; assert every internal link resolves."""
    seen: set[str] = set()
    queue = [urljoin(reader.base, "index.html")]
    fetched: set[str] = set()
    while queue:
        page = queue.pop()
        if page in seen:
            continue
        seen.add(page)
        reader.open(page)
        ids = set(reader.js("return [...document.querySelectorAll('[id]')].map(e => e.id)"))
        for link in reader.links():
            target, fragment = urldefrag(link)
            if not target.startswith(reader.base):
                continue  # Zulip, GitHub: links for the reader to follow, never requested
            if target == page and fragment:
                assert fragment in ids, f"{page}: no #{fragment}"
            if target.endswith(".html"):
                queue.append(target)
            elif target not in fetched:
                fetched.add(target)
                with urllib.request.urlopen(target) as got:
                    assert got.status == 200, target
    return seen


# -- the bot keeps the site current ---------------------------------------------------------------


@pytest.fixture
def realm_server(tmp_path: Path) -> Iterator[tuple[FakeZulip, FileClock, dict[str, User]]]:
    clock = FileClock(tmp_path / "clock")
    clock.set(NOW)
    realm = Realm.demo()
    with FakeZulip(realm, clock=lambda: clock.now().timestamp(), heartbeat_seconds=2.0) as server:
        users = {
            key: realm.user_by_name(name)
            for key, name in (("ben", "Ben Owner"), ("chloe", "Chloé Owner"), ("eve", "Eve Lead"))
        }
        users["bot"] = realm.user_by_email("goals-bot@example.com")
        assert all(u is not None for u in users.values())
        yield server, clock, users  # type: ignore[misc]


def owner(u: User) -> tuple[int, str, str]:
    return (u.user_id, u.email, u.full_name)


def site_updates(site: Path) -> dict[str, list[str]]:
    """Goal slug -> the ids of its updates, as the built goals.json has them."""
    try:
        data = json.loads((site / "goals.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return {g["slug"]: [u["id"] for u in g["updates"]] for g in data["goals"]}


def test_run_keeps_the_site_current_and_a_reader_sees_it_safely(
    tmp_path: Path,
    realm_server: tuple[FakeZulip, FileClock, dict[str, User]],
    browser: WebDriver,
) -> None:
    server, clock, users = realm_server
    quiet = "[schedule]\nenabled = false\n[digest]\nenabled = false\n"
    conf = write_conf(tmp_path, server, users["bot"], extra=quiet + "[site]\noutput = site\n")
    db = database_for(conf)
    goals = {
        "polonius": add_goal(db, "polonius", "Polonius", [owner(users["ben"])], issue=118),
        "async": add_goal(db, "async", "Async closures", [owner(users["chloe"])], issue=102),
        "lints": add_goal(db, "lints", "Lint catalogue", [owner(users["ben"])], issue=103),
        "paused": add_goal(db, "paused", "Paused work", [owner(users["ben"])], issue=104),
        "done": add_goal(db, "done", "Finished work", [owner(users["chloe"])], issue=105),
        "hostile": add_goal(db, "hostile", "Untrusted <b>input</b>", [owner(users["chloe"])]),
    }
    with db.write() as session:
        for slug, state in (("paused", GoalState.PAUSED), ("done", GoalState.COMPLETED)):
            session.get(Goal, goals[slug].id).state = state  # type: ignore[union-attr]

    def post(who: str, slug: str, text: str) -> int:
        return server.send_stream_message(users[who], STREAM, goals[slug].zulip_topic, text)

    # Async closures was updated in the last period only (due now); the lints never (overdue).
    clock.set(PERIOD_START - timedelta(days=6))
    first = post("ben", "polonius", "TL;DR: the old location-insensitive analysis is gone.")
    late = post("chloe", "async", "TL;DR: closures desugar; next, the borrow checker.")
    clock.set(NOW)
    second = post("ben", "polonius", "TL;DR: **the new solver** passes the test suite.")
    hostile = post("chloe", "hostile", HOSTILE)

    site = tmp_path / "site"
    bot = BotProcess(conf, env={CLOCK_FILE_ENV: str(clock.path), **FAST}).start()
    try:
        # Stored while the bot was away (backfill), then the site follows.
        expected = {"polonius": [second, first], "async": [late], "hostile": [hostile]}
        assert wait_until(lambda: _with_updates(site_updates(site)) == expected, SOON), bot.log()
        # Stored live: one more batch, one more build.
        third = post("ben", "polonius", "Help wanted: benchmarks on large crates.")
        expected["polonius"] = [third, second, first]
        assert wait_until(lambda: _with_updates(site_updates(site)) == expected, SOON), bot.log()
        assert bot.terminate() == 0
    finally:
        if bot.alive():
            bot.kill()
    assert "site build failed" not in bot.log()

    with serving(site) as base:
        reader = Reader(browser, base)
        reader.open("index.html")
        assert reader.cards() == {
            "Polonius": "up to date",
            "Async closures": "due",
            "Lint catalogue": "overdue",
            "Paused work": "paused",
            "Finished work": "completed",
            "Untrusted <b>input</b>": "up to date",
        }
        help_section = browser.find_element(By.ID, "help-wanted").text
        assert "Polonius: benchmarks on large crates." in help_section
        assert browser.find_element(By.CSS_SELECTOR, "svg.chart title").get_attribute(
            "textContent"
        ) == ("Goals updated, due and overdue per week")

        # A goal's page: its updates, newest first, each with its date, author and Zulip link.
        browser.find_element(By.LINK_TEXT, "Polonius").click()
        reader._drain()
        articles = browser.find_elements(By.CSS_SELECTOR, "article.update")
        assert [a.get_attribute("id") for a in articles] == [
            f"update-{m}" for m in (third, second, first)
        ]
        stamps = [a.find_element(By.TAG_NAME, "time").get_attribute("datetime") for a in articles]
        assert stamps == sorted(stamps, reverse=True)
        assert "the new solver" in articles[1].find_element(By.TAG_NAME, "strong").text
        assert articles[0].find_element(By.CSS_SELECTOR, ".author").text == "Ben Owner"
        link = articles[0].find_element(By.LINK_TEXT, "View in Zulip").get_attribute("href")
        assert link == f"{server.base_url}/#narrow/id/{third}"

        # The hostile update: what was typed shows as text; nothing runs, loads or pings.
        reader.open("goals/hostile.html")
        body = browser.find_element(By.CSS_SELECTOR, "article.update").text
        assert "<script>alert('xss')</script>" in body
        assert "<img src=x onerror=alert(2)>" in body
        assert "[click me](javascript:alert(1))" in body
        assert reader.js("return document.scripts.length") == 0
        assert reader.js("return document.querySelectorAll('img, iframe, object').length") == 0
        assert not reader.js(
            "return [...document.querySelectorAll('*')].some("
            "e => [...e.attributes].some(a => a.name.startsWith('on')))"
        )
        hrefs = reader.js("return [...document.querySelectorAll('a')].map(a => a.href)")
        assert not [h for h in hrefs if not h.startswith(("http://", "https://"))]
        mention = browser.find_element(By.CSS_SELECTOR, "article.update .mention")
        assert mention.text == "@all" and mention.tag_name == "span"
        with pytest.raises(NoAlertPresentException):
            _ = browser.switch_to.alert.text
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Untrusted <b>input</b>")

        # Every page and every internal link, as a reader who clicks everything.
        pages = crawl(reader)
        assert len(pages) == 1 + len(goals)
        assert urljoin(base, "style.css") in reader.requests  # requests are seen...
        outside = [u for u in reader.requests if not u.startswith((base, "data:"))]
        assert outside == []  # ...and none left the site
        assert reader.errors == []
        reader.open("no-such-page.html")  # and console errors are seen too
        assert reader.errors and "404" in reader.errors[0]


def _with_updates(found: dict[str, list[str]]) -> dict[str, list[str]]:
    return {slug: ids for slug, ids in found.items() if ids}


def test_a_failed_build_is_logged_retried_and_never_stops_the_bot(
    tmp_path: Path, realm_server: tuple[FakeZulip, FileClock, dict[str, User]]
) -> None:
    server, clock, users = realm_server
    quiet = "[schedule]\nenabled = false\n[digest]\nenabled = false\n"
    conf = write_conf(tmp_path, server, users["bot"], extra=quiet + "[site]\noutput = gone/site\n")
    db = database_for(conf)
    goal = add_goal(db, "polonius", "Polonius", [owner(users["ben"])], issue=118)
    bot = BotProcess(conf, env={CLOCK_FILE_ENV: str(clock.path), **FAST}).start()
    try:
        assert wait_until(lambda: "site build failed" in bot.log(), SOON), bot.log()
        assert "gone/site: the folder" in bot.log() and "does not exist" in bot.log()
        # The bot goes on storing updates meanwhile.
        mid = server.send_stream_message(users["ben"], STREAM, goal.zulip_topic, "TL;DR: fine")
        assert wait_until(lambda: bool(server.message(mid)["reactions"]), SOON), bot.log()
        (tmp_path / "gone").mkdir()
        site = tmp_path / "gone" / "site"
        assert wait_until(lambda: site_updates(site).get("polonius") == [mid], SOON), bot.log()
        assert bot.alive()
        assert bot.terminate() == 0
    finally:
        if bot.alive():
            bot.kill()
    log = bot.log()
    assert log.index("site build failed") < log.index("site: built the site")


def test_the_digest_rebuilds_the_site(
    tmp_path: Path, realm_server: tuple[FakeZulip, FileClock, dict[str, User]]
) -> None:
    server, clock, users = realm_server
    # Monday 08:30: the digest is at 09:00; the day and the prompt week stay the same.
    monday = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    clock.set(monday)
    conf = write_conf(
        tmp_path, server, users["bot"], extra="[schedule]\nenabled = false\n[site]\noutput = site\n"
    )
    db = database_for(conf)
    running_since(db, monday - timedelta(days=30))
    add_goal(db, "polonius", "Polonius", [owner(users["ben"])], issue=118)
    bot = BotProcess(conf, env={CLOCK_FILE_ENV: str(clock.path), **FAST}).start()
    try:
        assert wait_until(lambda: bot.log().count("site: built the site") == 1, SOON), bot.log()
        clock.set(monday + timedelta(minutes=30))
        assert wait_until(lambda: bool(server.messages_in(STREAM, "weekly digest")), SOON)
        assert wait_until(lambda: bot.log().count("site: built the site") == 2, SOON), bot.log()
        assert bot.terminate() == 0
    finally:
        if bot.alive():
            bot.kill()


# -- the README's screenshot ----------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_the_sandbox_demo_site_and_the_readme_screenshot(
    tmp_path: Path, browser: WebDriver
) -> None:
    demo = (ROOT / "zulip_goals_bot" / "sample_goals" / "demo-week.txt").read_text()
    site = tmp_path / "demo-site"
    script = tmp_path / "script.txt"
    script.write_text(demo + f"\n/site {site}\n", encoding="utf-8")
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "zulip_goals_bot.cli",
            "sandbox",
            "--script",
            str(script),
            "--start",
            DEMO_START.isoformat(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Built the goals site of sample: 4 goals, 2 updates, in {site}." in done.stdout
    assert re.search(r"Open http://127\.0\.0\.1:\d+/ \(served until /quit\)\.", done.stdout)
    with serving(site) as base:
        reader = Reader(browser, base)
        reader.open("index.html")
        assert reader.cards() == {
            "Async closures": "due",
            "Incremental builds": "up to date",
            "Trait errors": "up to date",
            "Lint catalogue": "owners away",
        }
        assert reader.errors == []
        browser.set_window_size(1280, 1500)
        png = browser.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    # The README shows this picture; it changes only when the site's look does.
    if not SCREENSHOT.exists() or SCREENSHOT.read_bytes() != png:
        SCREENSHOT.write_bytes(png)
