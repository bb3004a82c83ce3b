"""Blockers reach someone: a goal turning blocked (or at risk for two periods) is told once per
change to its champions and its teams' leads, by DM.

The planner is tested on plain values; the running bot as a subprocess against the emulator over
HTTP, with a real database file, a clock file the test moves, and the bot's log lines (a stored
batch, finished ticks) as the signal that it has looked before "nothing more" is asserted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from fakegithub import FakeGitHub
from fakezulip import FakeZulip, Realm, User
from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock
from fakezulip.harness import TICK_ENV
from tests.mentions import contains_unsafe_mention
from tests.support import BotProcess, add_goal, database_for, wait_until, write_conf
from zulip_goals_bot.bot import alerts
from zulip_goals_bot.bot.alerts import (
    ALERT_WINDOW,
    TeamLead,
    alert_target,
    due_alert,
    parse_team_leads,
    plan_alerts,
    read_team_leads,
    teams_folder,
)
from zulip_goals_bot.config import HealthConfig, ScheduleConfig, load_config
from zulip_goals_bot.db.models import Delivery, Goal, GoalChampion, Person
from zulip_goals_bot.domain.health import (
    AlertReason,
    Health,
    HealthCall,
    HealthSource,
    goal_health,
)
from zulip_goals_bot.domain.markdown import StreamRef
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.states import DeliveryKind, DeliveryState, GoalState, OwnerRole
from zulip_goals_bot.domain.views import ChampionView, GoalView, OwnerView, PersonView
from zulip_goals_bot.errors import ConfigError

SITE = "https://zulip.example"
STREAM = StreamRef("project-goals", 7)
# Thursday 14:00 UTC: a weekly and a fortnightly period of the default slot start here.
SLOT = datetime(2026, 3, 12, 14, 0, tzinfo=UTC)
WEEKLY = Program(schedule=replace(ScheduleConfig(), cadence_weeks=1), tz=UTC)


# --- the planner, on plain values ----------------------------------------------------------------


def person(pid: int, name: str, zulip: int | None = None, *, active: bool = True) -> PersonView:
    return PersonView(pid, zulip, name, None, name.split()[0].lower(), "UTC", None, active)


BEN = person(1, "Ben Owner", 101)
CHLOE = person(2, "Chloé Champion", 102)
EVE = person(3, "Eve Lead", 103)
NOZULIP = person(4, "Nora Nozulip")
GONE = person(5, "Gus Gone", 105, active=False)


def call(health: Health, at: datetime, words: str | None = "TL;DR: stuck", **kw: Any) -> HealthCall:
    kw.setdefault("message_id", 9000 + int(at.timestamp()) % 1000)
    return HealthCall(1, health, at, words=words, author="Ben Owner", **kw)


def goal(
    *calls: HealthCall,
    state: GoalState = GoalState.ACTIVE,
    active: bool = True,
    teams: tuple[str, ...] = ("lang",),
    owners: Sequence[PersonView] = (BEN,),
    gid: int = 1,
) -> GoalView:
    return GoalView(
        id=gid,
        period="2026",
        slug="polonius",
        title="Polonius, the next borrow checker",
        short_title="Polonius",
        status="Accepted",
        flagship=None,
        tracking_issue=118,
        tracking_url="https://github.com/rust-lang/rust-project-goals/issues/118",
        zulip_topic="Polonius (goals#118)",
        teams=teams,
        state=state,
        active=active,
        cadence_weeks=None,
        created_at=SLOT - timedelta(days=60),
        owners=tuple(OwnerView(p, OwnerRole.POINT_OF_CONTACT) for p in owners),
        health=goal_health(calls),
    )


CHAMPIONS = {1: (ChampionView("chloe", "lang", CHLOE),)}
LEADS = {"lang": (TeamLead("lang", "eve", EVE),)}


def plan(
    goals: Sequence[GoalView],
    now: datetime,
    *,
    champions: dict[int, tuple[ChampionView, ...]] | None = None,
    leads: dict[str, tuple[TeamLead, ...]] | None = None,
    **kw: Any,
) -> alerts.AlertPlan:
    return plan_alerts(
        goals,
        CHAMPIONS if champions is None else champions,
        LEADS if leads is None else leads,
        WEEKLY,
        now,
        site=SITE,
        stream=STREAM,
        **kw,
    )


def recipients(found: alerts.AlertPlan) -> list[tuple[int, ...]]:
    return [a.request.destination.user_ids for a in found.alerts]


def test_a_blocked_goal_owes_one_dm_to_each_champion_and_lead_naming_goal_words_and_link() -> None:
    said = SLOT + timedelta(days=1)
    found = plan([goal(call(Health.BLOCKED, said, message_id=4242))], said + timedelta(hours=1))
    assert recipients(found) == [(102,), (103,)]
    for alert in found.alerts:
        req = alert.request
        assert req.kind is DeliveryKind.HEALTH_ALERT
        assert req.period == AlertReason.BLOCKED.key(said) == "blocked@2026-03-13T14:00"
        assert len(req.period) <= 40  # the deliveries.period column
        assert req.goal_id == 1
        assert req.target == alert_target(1, req.destination.user_ids[0])
        text = alert.text
        assert "**Polonius** is **blocked**" in text
        assert "[#project-goals > Polonius (goals#118)](" in text  # the topic link
        assert "[#118](https://github.com/rust-lang/rust-project-goals/issues/118)" in text
        assert "Ben Owner wrote ([view message](https://zulip.example/#narrow/id/4242))" in text
        assert "```quote\nTL;DR: stuck\n```" in text
        assert ":red_circle: blocked since 13 Mar 2026" in text
    assert "a champion of this goal for the lang team" in found.alerts[0].text
    assert "a lead of the lang team" in found.alerts[1].text
    assert found.unreachable == ()


def test_the_owners_words_cannot_ping_and_a_github_comment_is_linked() -> None:
    said = SLOT + timedelta(days=1)
    words = "blocked: @**all** and @*lang-team* and @**Eve Lead|103**, see ```quote"
    url = "https://github.com/rust-lang/rust-project-goals/issues/118#issuecomment-7"
    hostile = call(Health.BLOCKED, said, words=words, message_id=None, url=url)
    hostile = replace(hostile, author="@**everyone**")
    found = plan([goal(hostile)], said)
    assert len(found.alerts) == 2
    for alert in found.alerts:
        assert not contains_unsafe_mention(alert.text), alert.text
        assert f"([view comment]({url}))" in alert.text
        assert "````quote\n" in alert.text  # a fence the words cannot close


def test_a_reaction_call_quotes_no_words_but_says_how() -> None:
    said = SLOT + timedelta(days=1)
    reacted = call(Health.BLOCKED, said, words=None, source=HealthSource.REACTION, message_id=77)
    (alert, _lead) = plan([goal(reacted)], said).alerts
    assert "reaction on the prompt ([view prompt](https://zulip.example/#narrow/id/77))" in (
        alert.text
    )


def test_each_change_is_keyed_once_and_what_was_claimed_is_not_planned_again() -> None:
    first = SLOT + timedelta(days=1)
    blocked = goal(call(Health.BLOCKED, first))
    later = first + timedelta(days=3)
    # Still blocked, said again: the same change, the same key.
    again = goal(call(Health.BLOCKED, first), call(Health.BLOCKED, first + timedelta(days=2)))
    keys = {a.request.period for a in plan([blocked], later).alerts}
    assert keys == {a.request.period for a in plan([again], later).alerts}
    sent = {(a.request.target, a.request.period) for a in plan([blocked], later).alerts}
    assert plan([again], later, sent=sent).alerts == ()
    # On track, then blocked again: a new change, owed anew.
    anew = goal(
        call(Health.BLOCKED, first),
        call(Health.ON_TRACK, first + timedelta(days=1)),
        call(Health.BLOCKED, first + timedelta(days=2)),
    )
    fresh = plan([anew], later, sent=sent).alerts
    assert len(fresh) == 2 and {a.request.period for a in fresh}.isdisjoint(keys)


def test_at_risk_is_told_in_its_second_period_keyed_by_when_it_started() -> None:
    said = SLOT + timedelta(days=1)  # Friday of a weekly period
    at_risk = goal(call(Health.AT_RISK, said))
    assert plan([at_risk], SLOT + timedelta(days=7) - timedelta(minutes=1)).alerts == ()
    second = plan([at_risk], SLOT + timedelta(days=7)).alerts
    assert recipients(plan([at_risk], SLOT + timedelta(days=7))) == [(102,), (103,)]
    assert {a.request.period for a in second} == {AlertReason.AT_RISK.key(said)}
    assert "has been **at risk** for 2 periods in a row" in second[0].text
    # Told from the second period's start: with four-week periods, said early in the first one,
    # that is after a blocked goal's window would have closed, and it is news then.
    monthly = Program(schedule=replace(ScheduleConfig(), cadence_weeks=4), tz=UTC)
    early = monthly.period(at_risk, said).start + timedelta(hours=1)
    at_risk = goal(call(Health.AT_RISK, early))
    second_start = monthly.period(at_risk, early + timedelta(weeks=4)).start
    assert second_start - early > ALERT_WINDOW
    assert due_alert(at_risk, monthly, second_start - timedelta(minutes=1)) is None
    due = due_alert(at_risk, monthly, second_start + timedelta(days=1))
    assert due is not None and due.reason is AlertReason.AT_RISK
    assert due.owed_at == second_start
    assert due_alert(at_risk, monthly, second_start + ALERT_WINDOW + timedelta(hours=1)) is None


def test_only_recent_changes_of_running_goals_are_told() -> None:
    said = SLOT + timedelta(days=1)
    blocked = call(Health.BLOCKED, said)
    assert len(plan([goal(blocked)], said + ALERT_WINDOW).alerts) == 2
    assert plan([goal(blocked)], said + ALERT_WINDOW + timedelta(minutes=1)).alerts == ()
    for state in (GoalState.PAUSED, GoalState.COMPLETED, GoalState.RETIRED):
        assert plan([goal(blocked, state=state)], said).alerts == ()
    assert plan([goal(blocked, active=False)], said).alerts == ()
    for health in (Health.ON_TRACK, Health.DONE):
        assert plan([goal(call(health, said))], said + timedelta(days=10)).alerts == ()
    assert plan([goal()], said).alerts == ()  # never said


def test_leads_only_when_asked_and_one_dm_per_person_whatever_their_roles() -> None:
    said = SLOT + timedelta(days=1)
    blocked = goal(call(Health.BLOCKED, said), teams=("lang", "types"))
    assert recipients(plan([blocked], said, notify_leads=False)) == [(102,)]
    # Chloé champions the goal and leads types; Eve leads lang (twice, in both files).
    leads = {
        "lang": (TeamLead("lang", "eve", EVE),),
        "types": (TeamLead("types", "chloe", CHLOE), TeamLead("types", "eve", EVE)),
    }
    found = plan([blocked], said, leads=leads)
    assert recipients(found) == [(102,), (103,)]
    assert "a champion of this goal for the lang team and a lead of the types team" in (
        found.alerts[0].text
    )
    # A team the goal does not name is not told.
    assert recipients(plan([blocked], said, leads={"compiler": LEADS["lang"]})) == [(102,)]


def test_people_without_a_zulip_account_are_skipped_and_reported_and_owners_are_not_told() -> None:
    said = SLOT + timedelta(days=1)
    champions = {
        1: (
            ChampionView("ghost", "lang", None),
            ChampionView("nora", "lang", NOZULIP),
            ChampionView("gus", None, GONE),
            ChampionView("ben", "lang", BEN),  # champions their own goal
            ChampionView("chloe", "lang", CHLOE),
        )
    }
    found = plan([goal(call(Health.BLOCKED, said))], said, champions=champions)
    assert recipients(found) == [(102,), (103,)]
    assert [u.describe() for u in found.unreachable] == [
        "goal 1: @ghost has no Zulip account",
        "goal 1: @nora (person 4) has no Zulip account",
        "goal 1: @gus (person 5) is deactivated in Zulip",
    ]


# --- team records ----------------------------------------------------------------------------


def test_team_records_give_each_teams_leads(tmp_path: Path) -> None:
    repo = tmp_path / "team"
    (repo / "people").mkdir(parents=True)
    (repo / "teams").mkdir()
    (repo / "teams" / "lang.toml").write_text(
        'name = "lang"\n[people]\nleads = ["Eve-Lead", "tmandry"]\nmembers = ["x"]\n',
        encoding="utf-8",
    )
    (repo / "teams" / "types.toml").write_text(
        '[people]\nleads = [{ github = "lcnr" }, 7]\n', encoding="utf-8"
    )
    (repo / "teams" / "broken.toml").write_text("[people\n", encoding="utf-8")
    (repo / "teams" / "wg-x.toml").write_text(
        'name = "wg-x"\n[people]\nmembers = []\n', encoding="utf-8"
    )
    assert teams_folder(repo) == repo / "teams"
    assert teams_folder(repo / "people") == repo / "teams"
    assert teams_folder(tmp_path) is None and teams_folder(None) is None
    found = read_team_leads(repo / "teams")
    assert found == {"lang": ("eve-lead", "tmandry"), "types": ("lcnr",)}
    assert read_team_leads(repo / "teams") is found  # unchanged files are not read again
    (repo / "teams" / "types.toml").write_text('[people]\nleads = ["boxy"]\n', encoding="utf-8")
    assert read_team_leads(repo / "teams")["types"] == ("boxy",)
    with pytest.raises(ValueError, match=r"broken\.toml"):
        parse_team_leads("[people\n", "broken.toml")


# --- configuration --------------------------------------------------------------------------


def test_health_keys_default_to_on_and_are_validated(tmp_path: Path) -> None:
    conf = tmp_path / "bot.conf"
    conf.write_text("[goals]\n", encoding="utf-8")
    assert load_config(conf).health == HealthConfig(alerts=True, notify_leads=True)
    conf.write_text("[health]\nalerts = no\nnotify_leads = off\n", encoding="utf-8")
    assert load_config(conf).health == HealthConfig(alerts=False, notify_leads=False)
    conf.write_text("[health]\nnotify_leads = maybe\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[health\] notify_leads = 'maybe'.*true or false"):
        load_config(conf)
    conf.write_text("[health]\nleads = eve\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[health\] has an unknown key 'leads'"):
        load_config(conf)


# --- the running bot against the emulator ------------------------------------------------------


@dataclass
class World:
    zulip: FakeZulip
    conf: Path
    clock: FileClock
    users: dict[str, User]
    goal_id: int
    topic: str

    @property
    def env(self) -> dict[str, str]:
        return {CLOCK_FILE_ENV: str(self.clock.path)}

    def bot(self) -> BotProcess:
        return BotProcess(self.conf, env=self.env)

    def dms(self, who: str) -> list[str]:
        """What the bot sent ``who`` by DM, oldest first."""
        bot = self.users["bot"].user_id
        return [
            m["content"]
            for m in self.zulip.direct_messages_to(self.users[who])
            if m["sender_id"] == bot
        ]

    def all_dms(self) -> int:
        return sum(len(self.dms(who)) for who in ("ada", "ben", "chloe", "dev", "eve"))

    def say(self, proc: BotProcess, content: str) -> int:
        """Ben's reply in the goal's topic, once the bot has stored it and ticked twice since."""
        mid = self.zulip.send_stream_message(
            self.users["ben"], "project-goals", self.topic, content
        )
        proc.wait_stored_through(mid)
        proc.wait_ticks(2)
        return mid


# Quiet: no prompts, no digest; what the bot sends by DM is the alerts.
QUIET = "[schedule]\nenabled = false\ncadence_weeks = 1\n[digest]\nenabled = false\n"


def make_world(tmp_path: Path, zulip: FakeZulip, clock: FileClock, extra: str = "") -> World:
    realm = zulip.realm
    names = {"bot": "Goals Bot", "ada": "Ada Admin", "ben": "Ben Owner", "chloe": "Chloé Owner",
             "dev": "Dev Owner", "eve": "Eve Lead"}  # fmt: skip
    users = {key: realm.user_by_name(name) for key, name in names.items()}
    assert all(users.values())
    # The team repository: Eve's person file and the lang team's record naming her its lead.
    team = tmp_path / "team"
    (team / "people").mkdir(parents=True)
    (team / "teams").mkdir()
    eve = users["eve"]
    assert eve is not None
    (team / "people" / "eve-lead.toml").write_text(
        f'name = "Eve Lead"\ngithub = "eve-lead"\ngithub-id = 5\nzulip-id = {eve.user_id}\n',
        encoding="utf-8",
    )
    (team / "teams" / "lang.toml").write_text(
        'name = "lang"\n[people]\nleads = ["eve-lead"]\nmembers = ["eve-lead"]\n',
        encoding="utf-8",
    )
    conf = write_conf(
        tmp_path, zulip, users["bot"], extra="people_file = team\n" + QUIET + extra,
        log_level="DEBUG",
    )  # fmt: skip
    db = database_for(conf)
    ben, chloe = users["ben"], users["chloe"]
    assert ben is not None and chloe is not None
    created = SLOT - timedelta(days=60)
    polonius = add_goal(db, "polonius", "Polonius", [(ben.user_id, ben.email, ben.full_name)],
                        issue=118, created=created)  # fmt: skip
    with db.write() as s:
        s.execute(update(Goal).where(Goal.id == polonius.id).values(teams="lang"))
        # Chloé's handle is linked to her account; @ghost-champ is known to nobody.
        s.add(Person(zulip_user_id=chloe.user_id, email=chloe.email, full_name=chloe.full_name,
                     github="chloe-c", created_at=created))  # fmt: skip
        s.add(GoalChampion(goal_id=polonius.id, team="lang", github="chloe-c", position=0))
        s.add(GoalChampion(goal_id=polonius.id, team="lang", github="ghost-champ", position=1))
    db.dispose()
    return World(zulip, conf, clock, users, polonius.id, polonius.zulip_topic)  # type: ignore[arg-type]


def start_clock(tmp_path: Path) -> FileClock:
    clock = FileClock(tmp_path / "clock")
    clock.set(SLOT + timedelta(days=1))  # a Friday, in a weekly period
    return clock


@contextmanager
def emulated_world(
    tmp_path: Path, extra: str = "", clock: FileClock | None = None
) -> Iterator[World]:
    """The emulator on the test's clock, with the world of ``make_world`` (and ``extra``)."""
    clock = clock or start_clock(tmp_path)
    realm = Realm.demo()
    with FakeZulip(realm, clock=lambda: clock.now().timestamp(), heartbeat_seconds=2.0) as zulip:
        yield make_world(tmp_path, zulip, clock, extra)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with emulated_world(tmp_path) as w:
        yield w


def test_blocked_is_told_once_to_champion_and_lead_across_ticks_and_a_restart(world: World) -> None:
    with world.bot() as proc:
        blocked = world.say(
            proc, "Waiting on the review; @**Eve Lead** knows more.\nStatus: blocked"
        )
        assert wait_until(lambda: bool(world.dms("chloe") and world.dms("eve"))), proc.log()
        for who in ("chloe", "eve"):
            (dm,) = world.dms(who)
            assert "**Polonius** is **blocked**" in dm
            assert "Ben Owner wrote ([view message](" in dm
            assert f"/#narrow/id/{blocked})" in dm
            assert "Waiting on the review" in dm
            assert "@\u200b**Eve Lead**" in dm  # quoted, not a mention
            assert "#project-goals > Polonius" in dm
        assert "a champion of this goal for the lang team" in world.dms("chloe")[0]
        assert "a lead of the lang team" in world.dms("eve")[0]
        # The unlinked champion is skipped, and the log names them by id.
        assert re.search(
            rf"health alert skipped: goal {world.goal_id}: @ghost-champ has no Zulip account",
            proc.log(),
        ), proc.log()
        proc.wait_ticks(3)
        assert world.all_dms() == 2
        # Said again an hour later (a new update), still blocked: the same change, nothing more.
        world.clock.set(SLOT + timedelta(days=1, hours=1))
        world.say(proc, "Status: blocked, still")
        assert world.all_dms() == 2
        assert proc.terminate() == 0

    # A new process on the same database: it ticks, and sends nothing more.
    with world.bot() as proc:
        proc.wait_ticks(3)
        assert world.all_dms() == 2, proc.log()

        # On track, then blocked again a day later: a new change, told once more.
        world.clock.set(SLOT + timedelta(days=2))
        world.say(proc, "Status: on track")
        assert world.all_dms() == 2
        world.clock.set(SLOT + timedelta(days=3))
        world.say(proc, "[blocked] the review found a soundness hole")
        assert wait_until(lambda: len(world.dms("chloe")) == len(world.dms("eve")) == 2)
        proc.wait_ticks(2)
        assert world.all_dms() == 4
        assert "the review found a soundness hole" in world.dms("chloe")[1]
    db = database_for(world.conf)
    with db.read() as s:
        rows = s.execute(
            select(Delivery.period, Delivery.state).where(
                Delivery.kind == DeliveryKind.HEALTH_ALERT
            )
        ).all()
    db.dispose()
    assert sorted(rows) == [
        ("blocked@2026-03-13T14:00", DeliveryState.SENT),
        ("blocked@2026-03-13T14:00", DeliveryState.SENT),
        ("blocked@2026-03-15T14:00", DeliveryState.SENT),
        ("blocked@2026-03-15T14:00", DeliveryState.SENT),
    ]


def test_at_risk_for_one_period_is_quiet_and_into_the_second_is_told_once(world: World) -> None:
    with world.bot() as proc:
        world.say(proc, "TL;DR: at risk, the reviewers are away")
        world.clock.set(SLOT + timedelta(days=7) - timedelta(minutes=5))  # still its first period
        proc.wait_ticks(3)
        assert world.all_dms() == 0
        world.clock.set(SLOT + timedelta(days=7, minutes=5))  # the second period has begun
        assert wait_until(lambda: bool(world.dms("chloe") and world.dms("eve"))), proc.log()
        proc.wait_ticks(3)
        assert world.all_dms() == 2
        (dm,) = world.dms("chloe")
        assert "has been **at risk** for 2 periods in a row" in dm
        assert "the reviewers are away" in dm


def test_a_blocker_is_told_within_seconds_though_the_next_tick_is_an_hour_away(
    tmp_path: Path,
) -> None:
    """As in production: only the hourly safety net and the wake-ups tick. A stored update
    brings a tick within seconds, and that tick tells the champion."""
    with (
        emulated_world(tmp_path) as world,
        BotProcess(world.conf, env={**world.env, TICK_ENV: "3600"}) as proc,
    ):
        assert wait_until(lambda: proc.ticks() == 1), proc.log()  # the tick at start
        ben = world.users["ben"]
        world.zulip.send_stream_message(ben, "project-goals", world.topic, "Status: blocked")
        assert wait_until(lambda: len(world.dms("chloe")) == 1, 20), proc.log()


def test_with_notify_leads_off_only_champions_are_told(tmp_path: Path) -> None:
    with emulated_world(tmp_path, extra="[health]\nnotify_leads = false\n") as world:
        assert not load_config(world.conf).health.notify_leads
        with world.bot() as proc:
            world.say(proc, "Status: blocked")
            assert wait_until(lambda: bool(world.dms("chloe"))), proc.log()
            proc.wait_ticks(3)
            assert world.all_dms() == 1 and world.dms("eve") == []


def test_alerts_off_tells_nobody(tmp_path: Path) -> None:
    with (
        emulated_world(tmp_path, extra="[health]\nalerts = false\n") as world,
        world.bot() as proc,
    ):
        world.say(proc, "Status: blocked")
        proc.wait_ticks(3)
        assert world.all_dms() == 0


def test_alerts_left_claimed_by_a_crash_are_finished_at_start_and_each_sent_once(
    world: World,
) -> None:
    """The claim is committed before sending. A process that died after sending Chloé's DM but
    before recording it, and before sending Eve's at all, left both CLAIMED: the next start
    finds Chloé's in Zulip (not sent again) and sends Eve's, and its ticks plan neither again."""
    with world.bot() as proc:
        world.say(proc, "Status: blocked")
        assert wait_until(lambda: len(world.dms("chloe")) == len(world.dms("eve")) == 1)
        assert proc.terminate() == 0
    eve_dm = [m for m in world.zulip.direct_messages_to(world.users["eve"])][-1]["id"]
    world.zulip.delete_message(eve_dm)  # as if it never went out
    assert world.dms("eve") == []
    db = database_for(world.conf)
    with db.write() as s:
        s.execute(
            update(Delivery)
            .where(Delivery.kind == DeliveryKind.HEALTH_ALERT)
            .values(state=DeliveryState.CLAIMED, zulip_message_ids=None, sent_at=None)
        )
    db.dispose()
    with world.bot() as proc:
        assert wait_until(lambda: len(world.dms("eve")) == 1), proc.log()
        proc.wait_ticks(3)
        assert len(world.dms("chloe")) == 1 and world.all_dms() == 2
        assert "finished 2 deliveries interrupted by the last shutdown" in proc.log()
    db = database_for(world.conf)
    with db.read() as s:
        states = s.execute(
            select(Delivery.state).where(Delivery.kind == DeliveryKind.HEALTH_ALERT)
        ).scalars()
        assert sorted(states) == [DeliveryState.SENT, DeliveryState.SENT]
    db.dispose()


# --- a blocker said on GitHub -------------------------------------------------------------------

REPO = "rust-lang/rust-project-goals"
TOKEN = "ghp_alerttoken00000000000000000000000000"


def test_a_blocked_comment_stored_by_the_github_sync_is_told_on_the_next_tick(
    tmp_path: Path,
) -> None:
    clock = start_clock(tmp_path)
    with FakeGitHub(clock=clock.now) as gh:
        gh.add_repo(REPO)
        gh.add_token(TOKEN, "goals-bot-operator")
        gh.add_issue(REPO, 118, "Polonius", "")
        github = f"[github]\nrepository = {REPO}\napi_url = {gh.url}\n"
        with emulated_world(tmp_path, github, clock) as world:
            db = database_for(world.conf)
            with db.write() as s:
                ben = s.execute(
                    select(Person).where(Person.zulip_user_id == world.users["ben"].user_id)
                ).scalar_one()
                ben.github = "ben-gh"
            db.dispose()
            comment = gh.add_comment(
                REPO, 118, "ben-gh", "TL;DR: blocked, the solver rewrite must land first."
            )
            env = {**world.env, "GITHUB_TOKEN": TOKEN}
            with BotProcess(world.conf, env=env) as proc:
                assert wait_until(lambda: "github pass 1 done" in proc.log(), 30), proc.log()
                assert wait_until(lambda: bool(world.dms("chloe") and world.dms("eve"))), proc.log()
                proc.wait_ticks(3)
                assert world.all_dms() == 2
            (dm,) = world.dms("chloe")
            assert "the solver rewrite must land first" in dm
            link = f"https://github.com/{REPO}/issues/118#issuecomment-{comment}"
            assert f"([view comment]({link}))" in dm
