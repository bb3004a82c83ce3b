"""Goal health on the website: a badge per goal, a strip of its reporting periods, the program's
calls per week, and the same figures in goals.json.

The program is five goals over nine weeks of the default schedule (Thursday 14:00 UTC, two-week
periods; one goal reports weekly), with updates that state a health in the owners' words
(``Status: at risk``, ``[on track]``, ``TL;DR: at risk - ...``), a reaction on a prompt, and one
goal that never says.  Every expected figure below is worked out by hand from those dates.  The
site is built by ``zulip-goals-bot site build`` and read in headless Chromium (the screenshots go
to ``tests/artefacts/``); the pure pieces are checked on their own after that.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from tests.dbs import new_database_url
from tests.support import ROOT, add_goal, database_for, run_cli
from tests.test_site_browser import CHROMEDRIVER, CHROMIUM, Reader, serving
from tests.test_site_browser import browser as browser  # the module's Chromium, shared
from zulip_goals_bot.bot.replies import extract_tldr
from zulip_goals_bot.config import ScheduleConfig
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Goal, HealthReaction, Person, Update
from zulip_goals_bot.domain.health import (
    Health,
    HealthCall,
    HealthSource,
    goal_health,
    parse_health,
)
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.schedule import Period, period_at
from zulip_goals_bot.domain.states import GoalState, UpdateKind, UpdateSource
from zulip_goals_bot.domain.views import GoalView
from zulip_goals_bot.website import charts
from zulip_goals_bot.website.goal_health import (
    NO_HEALTH,
    NOT_SAID,
    HealthCell,
    css_class,
    goal_periods,
    label,
    program_weeks,
    states_at,
    strip,
)

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)

SITE = "https://zulip.example.com"
STREAM = "project-goals"
ARTEFACTS = Path(__file__).resolve().parent / "artefacts"
SCHEMA = json.loads((ROOT / "docs" / "goals.schema.json").read_text(encoding="utf-8"))
# Thursday 2026-03-19 10:00 UTC: in the week of 2026-03-12 and the two-week period of 2026-03-12.
NOW = datetime(2026, 3, 19, 10, 0, tzinfo=UTC)


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


BEN = (21, "ben@example.com", "Ben Owner")
CHLOE = (22, "chloe@example.com", "Chloé Owner")
# slug -> (title, created, weeks between prompts, [(sent, text)]), the texts as owners write them.
GOALS: dict[str, tuple[str, datetime, int, list[tuple[datetime, str]]]] = {
    "polonius": ("Polonius", at("2026-01-20"), 2, [
        (at("2026-02-03"), "Status: at risk\n\nThe old analysis is too slow on big crates."),
        (at("2026-02-17"), "TL;DR: on track, the new solver passes the test suite."),
        (at("2026-03-02"), "More crates pass; nothing else to say."),
    ]),
    "async": ("Async closures", at("2026-01-30", 9), 1, [
        (at("2026-02-10"), "[on track] closures desugar; next, the borrow checker."),
    ]),
    "lints": ("Lint catalogue", at("2026-01-30", 9), 2, [
        (at("2026-02-20"), "TL;DR: at risk - reviewers are busy this month."),
        (at("2026-03-13"), "Status: blocked\n\nWaiting for the lang team's <b>decision</b>."),
    ]),
    "quiet": ("Quiet work", at("2026-01-30", 9), 2, [
        (at("2026-02-11"), "Some progress on the parser; blocked on nothing."),
    ]),
    "shipped": ("Shipped feature", at("2026-02-20"), 2, [
        (at("2026-03-10"), "Status: done\n\nIt is on stable."),
        (at("2026-03-16"), "[done] The notes are out <script>alert(1)</script> @**all**."),
    ]),
}  # fmt: skip
# Chloé reacts :yellow_circle: (at risk) on the prompt of the weekly goal.
REACTION = (at("2026-03-06"), 9001, "yellow_circle", Health.AT_RISK)
BADGES = {
    "Polonius": "on track",
    "Async closures": "at risk",
    "Lint catalogue": "blocked",
    "Quiet work": NO_HEALTH,
    "Shipped feature": "done",
}
# Each goal's strip: (period key, health at its end); the two-week periods start 2026-01-01.
STRIPS: dict[str, list[tuple[str, str | None]]] = {
    "polonius": [
        ("2026-01-15", None),  # created 01-20, first call 02-03
        ("2026-01-29", "at-risk"),
        ("2026-02-12", "on-track"),
        ("2026-02-26", "on-track"),  # an update without a health carries the call forward
        ("2026-03-12", "on-track"),
    ],
    "async": [  # weekly
        ("2026-01-29", None),
        ("2026-02-05", "on-track"),
        ("2026-02-12", "on-track"),
        ("2026-02-19", "on-track"),
        ("2026-02-26", "on-track"),
        ("2026-03-05", "at-risk"),  # the reaction of 03-06
        ("2026-03-12", "at-risk"),
    ],
    "lints": [
        ("2026-01-29", None),
        ("2026-02-12", "at-risk"),
        ("2026-02-26", "at-risk"),
        ("2026-03-12", "blocked"),  # said 03-13, in the period still running
    ],
    "quiet": [
        ("2026-01-29", None),
        ("2026-02-12", None),
        ("2026-02-26", None),
        ("2026-03-12", None),
    ],
    "shipped": [("2026-02-12", None), ("2026-02-26", "done"), ("2026-03-12", "done")],
}
# The program per week (Thursday 14:00 to Thursday 14:00), at the week's end:
# on track, at risk, blocked, done, not said.  Goals count from the week they were created in.
WEEKS = {
    "2026-01-15": (0, 0, 0, 0, 1),  # only Polonius exists
    "2026-01-22": (0, 0, 0, 0, 1),
    "2026-01-29": (0, 1, 0, 0, 3),
    "2026-02-05": (1, 1, 0, 0, 2),
    "2026-02-12": (2, 0, 0, 0, 2),
    "2026-02-19": (2, 1, 0, 0, 2),  # the shipped feature is created
    "2026-02-26": (2, 1, 0, 0, 2),
    "2026-03-05": (1, 2, 0, 1, 1),
    "2026-03-12": (1, 1, 1, 1, 1),
}
# The sentence under each goal page's "Health" heading.
CALL_LINES = {
    "polonius": "on track since 2026-02-17, said by Ben Owner in an update (view in Zulip).",
    "async": "at risk since 2026-03-06, said by Chloé Owner with a reaction to the bot's prompt.",
    "lints": "blocked since 2026-03-13, said by Ben Owner in an update (view in Zulip).",
    "quiet": f"{NO_HEALTH} The owners have not said how the goal is going: an update with a line "
    "such as Status: on track (or at risk, blocked, done) does.",
    # Said again: the run started with the earlier call.
    "shipped": "done since 2026-03-10, last said on 2026-03-16 by Ben Owner in an update "
    "(view in Zulip).",
}
WEEK_KEYS = ("on-track", "at-risk", "blocked", "done", NOT_SAID)


def make_program(tmp_path: Path) -> Path:
    """The program's database, bot.conf and zuliprc; returns the bot.conf."""
    url = new_database_url(tmp_path)
    (tmp_path / "zuliprc").write_text(f"[api]\nemail=bot@example.com\nkey=k\nsite={SITE}\n")
    conf = tmp_path / "bot.conf"
    conf.write_text(
        f"[goals]\ndatabase = {url}\nstream = {STREAM}\n[schedule]\ncadence_weeks = 2\n",
        encoding="utf-8",
    )
    db = database_for(conf)
    try:
        fill(db)
    finally:
        db.dispose()
    return conf


def fill(db: Database) -> None:
    message = 5000
    for slug, (title, created, weeks, updates) in GOALS.items():
        owners = [CHLOE] if slug == "async" else [BEN]
        goal = add_goal(db, slug, title, owners, issue=100 + len(slug), created=created)
        with db.write() as session:
            row = session.get(Goal, goal.id)
            assert row is not None
            row.cadence_weeks = weeks if weeks != 2 else None
            author = session.query(Person).filter(Person.zulip_user_id == owners[0][0]).one()
            for sent, text in updates:
                message += 1
                session.add(
                    Update(
                        zulip_message_id=message,
                        goal_id=goal.id,
                        author_id=author.id,
                        kind=UpdateKind.UPDATE,
                        source=UpdateSource.TOPIC,
                        content=text,
                        # As the bot stores an update.
                        tldr=extract_tldr(text),
                        health=parse_health(text),
                        stream=STREAM,
                        topic=row.zulip_topic,
                        sent_at=sent,
                    )
                )
            if slug == "async":
                when, prompt, emoji, health = REACTION
                session.add(
                    HealthReaction(
                        goal_id=goal.id,
                        zulip_message_id=prompt,
                        zulip_user_id=CHLOE[0],
                        person_id=author.id,
                        emoji_name=emoji,
                        health=health,
                        reacted_at=when,
                    )
                )


def build(conf: Path, out: Path) -> dict[str, Any]:
    clock = FileClock(out.parent / "clock")
    clock.set(NOW)
    done = run_cli(
        conf, "site", "build", "--output", str(out), env={CLOCK_FILE_ENV: str(clock.path)}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data: dict[str, Any] = json.loads((out / "goals.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    """The program's site, built once for the module's tests (none of them changes it)."""
    tmp = tmp_path_factory.mktemp("health-site")
    out = tmp / "site"
    yield out, build(make_program(tmp), out)


# -- goals.json -----------------------------------------------------------------------------------


def test_goals_json_has_each_goals_health_and_its_history(
    site: tuple[Path, dict[str, Any]],
) -> None:
    _folder, data = site
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    goals = {g["slug"]: g for g in data["goals"]}
    assert {s: g["health"] and g["health"]["label"] for s, g in goals.items()} == {
        "polonius": "on track",
        "async": "at risk",
        "lints": "blocked",
        "quiet": None,  # never said: none, not a guess
        "shipped": "done",
    }
    for slug, cells in STRIPS.items():
        history = goals[slug]["health_history"]
        assert [(h["period"], h["state"]) for h in history] == cells, slug
        # Periods follow each other, the last one holding now.
        assert all(a["end"] == b["start"] for a, b in itertools.pairwise(history))
        assert history[-1]["start"] <= NOW.isoformat() < history[-1]["end"]
    assert goals["polonius"]["health"] == {
        "state": "on-track",
        "label": "on track",
        "since": "2026-02-17T12:00:00+00:00",  # the last update stated none: the call stands
        "said_at": "2026-02-17T12:00:00+00:00",
        "words": "on track, the new solver passes the test suite.",
        "link": f"{SITE}/#narrow/id/{goals['polonius']['updates'][1]['id']}",
    }
    lints = goals["lints"]["health"]
    assert (lints["state"], lints["since"]) == ("blocked", "2026-03-13T12:00:00+00:00")
    assert lints["words"] == "Status: blocked"  # the opening paragraph (no TL;DR)
    shipped = goals["shipped"]["health"]
    assert shipped["words"] == "[done] The notes are out <script>alert(1)</script> @all."
    assert (shipped["since"], shipped["said_at"]) == (
        "2026-03-10T12:00:00+00:00",
        "2026-03-16T12:00:00+00:00",
    )
    reaction = goals["async"]["health"]
    assert (reaction["state"], reaction["since"], reaction["words"], reaction["link"]) == (
        "at-risk",
        "2026-03-06T12:00:00+00:00",
        None,  # a reaction says no words, and the prompt may be a direct message
        None,
    )


def test_goals_json_counts_the_program_per_week(site: tuple[Path, dict[str, Any]]) -> None:
    _folder, data = site
    found = {
        period_at(datetime.fromisoformat(w["start"]), 1, Program.default().slot).key: (
            tuple(w[k] for k in WEEK_KEYS)
        )
        for w in data["health_weeks"]
    }
    assert found == WEEKS
    assert [w["goals"] for w in data["health_weeks"]] == [sum(v) for v in WEEKS.values()]
    # The same weeks as the program's other weekly figures.
    assert [w["start"] for w in data["health_weeks"]] == [w["start"] for w in data["weeks"]]


# -- in the browser -------------------------------------------------------------------------------


@needs_chromium
def test_badges_strips_and_chart_as_a_reader_sees_them(
    browser: WebDriver, site: tuple[Path, dict[str, Any]]
) -> None:
    folder, data = site
    goals = {g["slug"]: g for g in data["goals"]}
    with serving(folder) as base:
        reader = Reader(browser, base)
        reader.open("index.html")
        badges = {
            card.find_element(By.CSS_SELECTOR, "a.goal-link").text: card.find_element(
                By.CSS_SELECTOR, ".health .health-badge"
            )
            for card in browser.find_elements(By.CSS_SELECTOR, "li.card")
        }
        assert {name: b.text for name, b in badges.items()} == BADGES
        for name, badge in badges.items():
            state = BADGES[name].replace(" ", "-") if BADGES[name] != NO_HEALTH else "none"
            assert f"health-{state}" in (badge.get_attribute("class") or "").split()
        # Each state has its own colour; a goal that never said has no fill.
        fills = {n: b.value_of_css_property("background-color") for n, b in badges.items()}
        assert len(set(fills.values())) == len(fills)
        assert fills["Quiet work"] == "rgba(0, 0, 0, 0)"
        assert reader.cards()["Polonius"] == "due"  # the due state keeps its own badge

        # The chart: every segment's figure is goals.json's, and its height is in proportion.
        chart = browser.find_element(By.CSS_SELECTOR, "#goal-health svg.chart")
        assert chart.find_element(By.TAG_NAME, "title").get_attribute("textContent") == (
            "Goals on track, at risk, blocked and done per week"
        )
        shown: dict[tuple[str, str], int] = {}
        per_goal: set[float] = set()
        for rect in chart.find_elements(By.CSS_SELECTOR, "rect.bar"):
            text = rect.find_element(By.TAG_NAME, "title").get_attribute("textContent") or ""
            week, count, name = re.fullmatch(r"(\S+): (\d+) (.+)", text).groups()  # type: ignore[union-attr]
            shown[week, name.replace(" ", "-")] = int(count)
            per_goal.add(round(float(rect.get_attribute("height") or 0) / int(count), 1))
        expected = {
            (_week_key(w["start"]), k): w[k]
            for w in data["health_weeks"]
            for k in WEEK_KEYS
            if w[k]
        }
        assert shown == expected
        assert len(per_goal) == 1  # one goal is the same height in every segment of every week
        # The table in <details> is collapsed: read its cells' text content instead.
        rows = [
            [c.get_attribute("textContent") for c in row.find_elements(By.CSS_SELECTOR, "th, td")]
            for row in browser.find_elements(By.CSS_SELECTOR, "table.calls tbody tr")
        ]
        assert rows == [
            [_week_key(w["start"]), *(str(w[k]) for k in WEEK_KEYS)] for w in data["health_weeks"]
        ]
        ARTEFACTS.mkdir(exist_ok=True)
        browser.execute_script("document.getElementById('goal-health').scrollIntoView()")
        browser.save_screenshot(str(ARTEFACTS / "site-health-index.png"))

        for slug, cells in STRIPS.items():
            reader.open(f"goals/{slug}.html")
            title, _created, _weeks, _updates = GOALS[slug]
            badge = browser.find_element(By.CSS_SELECTOR, "h1 .health-badge")
            assert badge.text == BADGES[title]
            assert (
                browser.find_element(By.CSS_SELECTOR, "#goal-health .call .health-badge").text
                == (BADGES[title])
            )
            rects = browser.find_elements(By.CSS_SELECTOR, "#goal-health svg.health-strip rect")
            states = [_state_of(r.get_attribute("class") or "") for r in rects]
            titles = [
                r.find_element(By.TAG_NAME, "title").get_attribute("textContent") for r in rects
            ]
            assert states == [s for _key, s in cells], slug
            assert states == [h["state"] for h in goals[slug]["health_history"]]
            assert titles == [
                f"period of {key}{' (now)' if i == len(cells) - 1 else ''}: "
                + (s.replace("-", " ") if s else NO_HEALTH)
                for i, (key, s) in enumerate(cells)
            ]
            line = browser.find_element(By.CSS_SELECTOR, "#goal-health .call")
            assert line.text == CALL_LINES[slug], slug
            if slug == "polonius":
                browser.save_screenshot(str(ARTEFACTS / "site-health-goal.png"))
                anchor = line.find_element(By.LINK_TEXT, "an update").get_attribute("href")
                said = goals["polonius"]["updates"][1]["id"]
                assert anchor == f"{base}goals/polonius.html#update-{said}"
                zulip = line.find_element(By.LINK_TEXT, "view in Zulip").get_attribute("href")
                assert zulip == f"{SITE}/#narrow/id/{said}" == goals[slug]["health"]["link"]
            if slug == "lints":
                words = browser.find_element(By.CSS_SELECTOR, "#goal-health .words")
                assert words.text == "Status: blocked"
            if slug == "shipped":  # what the owner wrote shows as text, and pings nobody
                words = browser.find_element(By.CSS_SELECTOR, "#goal-health .words")
                assert words.text == "[done] The notes are out <script>alert(1)</script> @all."
                assert reader.js("return document.scripts.length") == 0
        assert reader.errors == []


def _week_key(start: str) -> str:
    return period_at(datetime.fromisoformat(start), 1, Program.default().slot).key


def _state_of(css: str) -> str | None:
    [found] = [c for c in css.split() if c.startswith("health-")]
    return None if found == "health-none" else found.removeprefix("health-")


# -- the pure pieces ------------------------------------------------------------------------------

PROGRAM = Program(ScheduleConfig(cadence_weeks=2), Program.default().tz)


def made(goal_id: int, health: Health, when: datetime) -> HealthCall:
    return HealthCall(goal_id=goal_id, health=health, said_at=when, source=HealthSource.UPDATE)


def view(
    goal_id: int, created: datetime, calls: list[HealthCall], cadence: int | None = None
) -> GoalView:
    return GoalView(
        id=goal_id,
        period="2026h1",
        slug=f"g{goal_id}",
        title=f"Goal {goal_id}",
        short_title=None,
        status="Accepted",
        flagship=None,
        tracking_issue=None,
        tracking_url=None,
        zulip_topic=f"Goal {goal_id}",
        teams=(),
        state=GoalState.ACTIVE,
        active=True,
        cadence_weeks=cadence,
        created_at=created,
        health=goal_health(calls),
    )


def test_states_at_is_the_health_standing_at_each_instant() -> None:
    calls = [
        made(1, Health.AT_RISK, at("2026-02-03")),
        made(1, Health.ON_TRACK, at("2026-02-17")),
        made(1, Health.BLOCKED, at("2026-03-05", 14)),
    ]
    health = goal_health(calls)
    instants = [
        at("2026-02-03"),  # the instant of a call: not yet made "before" it
        at("2026-02-03") + timedelta(microseconds=1),
        at("2026-02-20"),
        at("2026-03-05", 14),  # a period's end: the call made at that instant is the next one's
        at("2026-03-06"),
    ]
    expected = (None, Health.AT_RISK, Health.ON_TRACK, Health.ON_TRACK, Health.BLOCKED)
    assert states_at(health, instants) == expected
    assert health is not None
    assert tuple(health.at(i) for i in instants) == expected  # the domain's own rule
    assert states_at(None, instants) == (None,) * len(instants)


def test_each_goals_periods_are_the_programs() -> None:
    goals = [
        view(1, at("2026-01-20"), [made(1, Health.ON_TRACK, at("2026-02-03"))]),
        view(2, at("2026-01-30"), []),
        view(3, at("2026-02-20"), [made(3, Health.DONE, at("2026-01-02"))]),  # a call before
        view(4, at("2026-01-30"), [], cadence=1),
        view(5, at("2026-03-01"), [], cadence=1),
        view(8, at("2025-06-01"), [made(8, Health.BLOCKED, at("2026-01-02"))], cadence=4),
        view(6, at("2023-01-05"), []),  # longer ago than the strip shows
        view(7, NOW + timedelta(days=30), []),  # created after the build's instant
    ]
    found = goal_periods(goals, PROGRAM, NOW)
    for g in goals:
        assert found[g.id] == PROGRAM.health_periods(g, NOW), g.id
    assert [p.key for p in found[1]] == ["2026-01-15", "2026-01-29", "2026-02-12", "2026-02-26",
                                         "2026-03-12"]  # fmt: skip
    assert found[3][0].key == "2026-01-01"
    assert len(found[6]) == 52


def test_a_strip_has_a_cell_per_period_empty_before_the_first_call() -> None:
    goal = view(1, at("2026-01-20"), [made(1, Health.AT_RISK, at("2026-02-03")),
                                      made(1, Health.ON_TRACK, at("2026-02-17"))])  # fmt: skip
    cells = strip(goal, PROGRAM.health_periods(goal, NOW), NOW)
    assert [(c.period.key, c.state) for c in cells] == [
        ("2026-01-15", None),
        ("2026-01-29", Health.AT_RISK),
        ("2026-02-12", Health.ON_TRACK),
        ("2026-02-26", Health.ON_TRACK),
        ("2026-03-12", Health.ON_TRACK),
    ]
    assert [c.current for c in cells] == [False, False, False, False, True]
    assert cells[0].title == "period of 2026-01-15: no health yet"
    assert cells[-1].title == "period of 2026-03-12 (now): on track"
    never = view(2, at("2026-01-30"), [])
    assert [c.state for c in strip(never, PROGRAM.health_periods(never, NOW), NOW)] == [None] * 4


def test_the_program_per_week_counts_each_goal_once_from_its_creation() -> None:
    weeks = _weeks(at("2026-01-29", 14), 3)
    goals = [
        view(1, at("2026-01-20"), [made(1, Health.BLOCKED, at("2026-02-01"))]),
        view(
            2,
            at("2026-01-30"),
            [made(2, Health.ON_TRACK, at("2026-02-06")), made(2, Health.DONE, at("2026-02-13"))],
        ),
        view(3, at("2026-02-06"), []),  # created in the second week
        view(4, at("2026-02-10"), [made(4, Health.AT_RISK, at("2026-02-01"))]),  # said first
    ]
    found = program_weeks(goals, weeks)
    assert [dict(w.counts) for w in found] == [
        {"on-track": 0, "at-risk": 1, "blocked": 1, "done": 0, NOT_SAID: 1},
        {"on-track": 1, "at-risk": 1, "blocked": 1, "done": 0, NOT_SAID: 1},
        {"on-track": 0, "at-risk": 1, "blocked": 1, "done": 1, NOT_SAID: 1},
    ]
    assert [w.goals for w in found] == [3, 4, 4]
    assert (found[2].count(Health.DONE), found[2].count(None)) == (1, 1)
    assert program_weeks([], weeks)[0].goals == 0


def _weeks(start: datetime, n: int) -> list[Period]:
    out = [period_at(start, 1, PROGRAM.slot)]
    while len(out) < n:
        out.append(period_at(out[-1].end, 1, PROGRAM.slot))
    return out


def test_labels_and_classes_never_guess_a_health() -> None:
    assert [label(s) for s in (*Health, None)] == [
        "on track", "at risk", "blocked", "done", "no health yet"
    ]  # fmt: skip
    assert [css_class(s) for s in (Health.AT_RISK, None)] == ["health-at-risk", "health-none"]
    assert HealthCell(_weeks(NOW, 1)[0], None, current=True).title.endswith("(now): no health yet")


SERIES = [charts.Series("health-on-track", "on track"), charts.Series("health-none", "not said")]


def test_the_calls_chart_states_its_numbers_and_stacks_them_in_proportion() -> None:
    weeks = [charts.WeekStack("2026-03-05", (3, 1)), charts.WeekStack("2026-03-12", (2, 0))]
    svg = charts.calls_chart(weeks, SERIES)
    assert "Latest week: 2 on track, 0 not said." in svg
    assert (
        "Each week: 2026-03-05: 3 on track, 1 not said; 2026-03-12: 2 on track, 0 not said." in svg
    )
    bars = re.findall(r'<rect class="bar ([^"]+)" x="[^"]+" y="([^"]+)" width="[^"]+" '
                      r'height="([^"]+)"><title>([^<]+)</title>', svg)  # fmt: skip
    assert [(css, title) for css, _y, _h, title in bars] == [
        ("health-on-track", "2026-03-05: 3 on track"),
        ("health-none", "2026-03-05: 1 not said"),
        ("health-on-track", "2026-03-12: 2 on track"),  # no segment for a zero
    ]
    heights = [float(h) for _c, _y, h, _t in bars]
    plot = charts.CHART_HEIGHT - charts.AXIS_BOTTOM - charts.TOP_MARGIN
    assert heights == [plot * 3 / 4, plot / 4, plot * 2 / 4]  # the tallest week fills the plot
    # Stacked: the second segment sits on top of the first.
    assert float(bars[1][1]) + heights[1] == pytest.approx(float(bars[0][1]))
    assert charts.calls_chart([], SERIES) == ""
    hostile = charts.calls_chart([charts.WeekStack("<w>", (1, 0))], SERIES)
    assert "<w>" not in hostile and "&lt;w&gt;" in hostile


def test_the_health_strip_is_a_square_per_period_with_its_title() -> None:
    cells = [charts.StripCell("health-none", "period of a: no health yet"),
             charts.StripCell("health-at-risk", "period of b <now>: at risk")]  # fmt: skip
    svg = charts.health_strip(cells, summary="Health of <X> per period")
    assert svg.startswith('<svg class="health-strip"') and 'role="img"' in svg
    assert 'aria-label="Health of &lt;X&gt; per period"' in svg
    assert re.findall(r'<rect class="cell ([^"]+)".*?<title>(.*?)</title>', svg) == [
        ("health-none", "period of a: no health yet"),
        ("health-at-risk", "period of b &lt;now&gt;: at risk"),
    ]
    assert charts.health_strip([], summary="x") == ""
