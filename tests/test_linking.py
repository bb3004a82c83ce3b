"""Linking GitHub handles to Zulip accounts: the rules (pure), the writes (a real database), and
the three paths that reach them (a goals import with a people file, `I am` and `map` in chat)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.dbs import new_database
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.commands.dispatch import handle
from zulip_goals_bot.commands.grammar import parse
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import (
    Delivery,
    DigestSubscription,
    Goal,
    GoalOwner,
    Person,
    Skip,
    Update,
)
from zulip_goals_bot.db.queries import load_champions
from zulip_goals_bot.domain.markdown import StreamRef
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.states import DeliveryKind, DeliveryState, OwnerRole, UpdateKind
from zulip_goals_bot.domain.views import SenderInfo
from zulip_goals_bot.goals.importer import import_goals
from zulip_goals_bot.people.accounts import ensure_people
from zulip_goals_bot.people.link_rules import (
    Conflict,
    LinkResult,
    MappedVia,
    PersonRow,
    WantedLink,
    plan_links,
)
from zulip_goals_bot.people.linking import link

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=20)
STREAM = "project-goals"
ADMIN = SenderInfo(1, "ada@example.com", "Ada Admin")  # an admin by bot.conf
FERRIS = SenderInfo(42, "ferris@example.com", "Ferris Crab")
OTHER = SenderInfo(43, "other@example.com", "Other Person")


def wanted(handle: str, user: int, via: MappedVia = MappedVia.CLAIM) -> WantedLink:
    return WantedLink(handle, user, via, via.label)


# ---------------------------------------------------------------------------------------------
# The rules, on plain rows


def test_a_placeholder_learns_its_zulip_account() -> None:
    plan = plan_links([PersonRow(1, None, "ferris", None)], [wanted("ferris", 42, MappedVia.FILE)])
    (outcome,) = plan.outcomes
    assert outcome.result is LinkResult.LINKED
    assert plan.rows == (PersonRow(1, 42, "ferris", "file"),)
    assert plan.moves == () and plan.deleted == ()


def test_a_placeholder_is_merged_into_the_claiming_account() -> None:
    people = [PersonRow(1, None, "ferris", "file"), PersonRow(2, 42, None, None)]
    plan = plan_links(people, [wanted("ferris", 42)])
    assert plan.outcomes[0].result is LinkResult.LINKED
    assert plan.deleted == (1,) and plan.merges == {1: 2}
    assert plan.rows == (PersonRow(2, 42, "ferris", "claim"),)


def test_the_goals_an_account_owns_after_linking_follow_the_moves() -> None:
    """What `I am` answers before writing: a merged placeholder's goals arrive; an admin's
    relink sends the account's old handle, with its goals, to a placeholder of its own."""
    people = [PersonRow(1, None, "ferris", "file"), PersonRow(2, 42, None, None)]
    merged = plan_links(people, [wanted("ferris", 42)])
    assert merged.ownerships_at(2) == {1, 2}
    nothing = plan_links([PersonRow(2, 42, None, None)], [wanted("ferris", 42)])
    assert nothing.ownerships_at(2) == {2}
    people = [PersonRow(1, None, "ferris", "file"), PersonRow(2, 42, "crab", "file")]
    relinked = plan_links(people, [wanted("ferris", 42, MappedVia.ADMIN)])
    assert relinked.outcomes[0].replaced == "crab"
    assert relinked.ownerships_at(2) == {1}


@pytest.mark.parametrize("holder_via", [None, "claim", "profile", "file", "admin"])
def test_a_claim_never_takes_a_handle_another_account_holds(holder_via: str | None) -> None:
    people = [PersonRow(1, 7, "ferris", holder_via), PersonRow(2, 42, None, None)]
    plan = plan_links(people, [wanted("ferris", 42)])
    (outcome,) = plan.outcomes
    assert (outcome.result, outcome.conflict) == (LinkResult.CONFLICT, Conflict.HANDLE_TAKEN)
    assert "@ferris is linked to Zulip user 7" in outcome.detail
    assert plan.is_empty


def test_a_claim_never_replaces_the_handle_an_account_has() -> None:
    people = [PersonRow(2, 42, "crab", "claim")]
    plan = plan_links(people, [wanted("ferris", 42)])
    (outcome,) = plan.outcomes
    assert (outcome.result, outcome.conflict) == (LinkResult.CONFLICT, Conflict.HAS_HANDLE)
    assert outcome.detail == "that Zulip user is linked to @crab by the claim"
    assert plan.is_empty


def test_an_account_with_a_handle_is_told_so_before_the_handle_is_looked_at() -> None:
    people = [PersonRow(1, 7, "ferris", "file"), PersonRow(2, 42, "crab", "claim")]
    (outcome,) = plan_links(people, [wanted("ferris", 42)]).outcomes
    assert outcome.conflict is Conflict.HAS_HANDLE


def test_an_admin_moves_a_handle_between_accounts_with_its_goals() -> None:
    people = [PersonRow(1, 7, "ferris", "claim"), PersonRow(2, 42, "crab", "profile")]
    plan = plan_links(people, [wanted("ferris", 42, MappedVia.ADMIN)])
    (outcome,) = plan.outcomes
    assert outcome.result is LinkResult.LINKED
    assert (outcome.taken_from, outcome.replaced) == (1, "crab")
    rows = {r.id: r for r in plan.rows}
    assert rows[1] == PersonRow(1, 7, None, None)  # the old account stays, without the handle
    assert rows[2] == PersonRow(2, 42, "ferris", "admin")
    (kept,) = [r for r in plan.rows if r.id < 0]  # @crab keeps its goals on a placeholder
    assert (kept.github, kept.zulip_user_id) == ("crab", None)
    assert plan.moves == ((2, kept.id), (1, 2))
    assert plan.deleted == ()


def test_an_existing_link_is_only_strengthened() -> None:
    people = [PersonRow(2, 42, "ferris", "claim")]
    plan = plan_links(people, [wanted("ferris", 42, MappedVia.FILE)])
    assert plan.outcomes[0].result is LinkResult.ALREADY
    assert plan.rows == (PersonRow(2, 42, "ferris", "file"),)
    again = plan_links(list(plan.rows), [wanted("ferris", 42, MappedVia.CLAIM)])
    assert again.outcomes[0].result is LinkResult.ALREADY and again.is_empty


def test_strangers_are_linked_only_when_asked_to_create_them() -> None:
    link_ = wanted("ferris", 42, MappedVia.FILE)
    assert plan_links([], [link_]).outcomes[0].result is LinkResult.SKIPPED
    plan = plan_links([], [link_], create_missing=True)
    assert plan.outcomes[0].result is LinkResult.LINKED
    assert [(r.zulip_user_id, r.github) for r in plan.rows] == [(42, "ferris")]


# ---------------------------------------------------------------------------------------------
# The writes, on a real database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = new_database(tmp_path)
    yield database
    database.dispose()


def _goal(s: Session, slug: str, owners: list[tuple[int, OwnerRole]]) -> int:
    goal = Goal(
        period="2025h1",
        slug=slug,
        title=slug.title(),
        status="Accepted",
        zulip_topic=slug,
        teams="",
        active=True,
        extra={},
        created_at=EARLIER,
        updated_at=EARLIER,
    )
    s.add(goal)
    s.flush()
    for i, (pid, role) in enumerate(owners):
        s.add(GoalOwner(goal_id=goal.id, person_id=pid, role=role, position=i))
    return goal.id


def test_merging_keeps_one_ownership_per_goal_with_the_stronger_role(db: Database) -> None:
    with db.write() as s:
        me = ensure_people(s, [FERRIS], EARLIER)[42]
        placeholder = Person(github="ferris", mapped_via="file", created_at=EARLIER)
        s.add(placeholder)
        s.flush()
        both = _goal(s, "both", [(me.id, OwnerRole.TASK), (placeholder.id, OwnerRole.OWNER)])
        mine, gone = me.id, placeholder.id
    with db.write() as s:
        (outcome,) = link(s, [wanted("ferris", 42)], now=NOW)
    assert outcome.result is LinkResult.LINKED
    with db.read() as s:
        assert s.get(Person, gone) is None
        rows = s.execute(
            select(GoalOwner.person_id, GoalOwner.role).where(GoalOwner.goal_id == both)
        )
        assert list(rows) == [(mine, OwnerRole.OWNER)]
        person = s.get(Person, mine)
        assert person is not None
        assert (person.github, person.mapped_via, person.claimed_at) == ("ferris", "claim", NOW)


def test_a_refused_link_changes_nothing(db: Database) -> None:
    with db.write() as s:
        ensure_people(s, [FERRIS, OTHER], EARLIER)
        link(s, [wanted("ferris", 43, MappedVia.FILE)], now=EARLIER)
    with db.read() as s:
        before = [
            (p.id, p.zulip_user_id, p.github, p.mapped_via) for p in s.scalars(select(Person))
        ]
    with db.write() as s:
        (outcome,) = link(s, [wanted("ferris", 42)], now=NOW)
    assert outcome.conflict is Conflict.HANDLE_TAKEN
    with db.read() as s:
        after = [(p.id, p.zulip_user_id, p.github, p.mapped_via) for p in s.scalars(select(Person))]
    assert after == before


# ---------------------------------------------------------------------------------------------
# The three paths: each merges a placeholder with a history into Ferris's account


@dataclass
class Program:
    """A goal owned and championed by @ferris, a placeholder with a whole history."""

    db: Database
    ctx: Context
    folder: Path
    goal: int
    placeholder: int
    account: int


GOAL_FILE = """# Faster links

| Metadata | |
|---|---|
| Point of contact | @ferris |
| Status | Accepted |
| [lang] champion | @ferris |

## Summary

Work.
"""


@pytest.fixture
def program(tmp_path: Path, db: Database) -> Program:
    folder = tmp_path / "2025h1"
    folder.mkdir()
    (folder / "faster-links.md").write_text(GOAL_FILE, encoding="utf-8")
    import_goals(db, [folder], now=EARLIER)
    with db.write() as s:
        account = ensure_people(s, [FERRIS], EARLIER)[42].id  # Ferris has talked to the bot
        placeholder = s.execute(select(Person).where(Person.github == "ferris")).scalar_one()
        goal = s.execute(select(Goal)).scalar_one()
        s.add(
            Update(
                zulip_message_id=5001,
                goal_id=goal.id,
                author_id=placeholder.id,
                kind=UpdateKind.UPDATE,
                content="an imported update",
                sent_at=EARLIER,
            )
        )
        s.add(
            Skip(goal_id=goal.id, period="2025-02-27", person_id=placeholder.id, created_at=EARLIER)
        )
        s.add(
            Delivery(
                kind=DeliveryKind.DM_PROMPT,
                target=f"person:{placeholder.id}",
                period="2025-02-27",
                person_id=placeholder.id,
                state=DeliveryState.SENT,
                content="...",
                claimed_at=EARLIER,
            )
        )
        s.add(DigestSubscription(person_id=placeholder.id, created_at=EARLIER, scope="champion"))
        ids = (goal.id, placeholder.id, account)
    config = Config(
        path=None, zuliprc=tmp_path / "zuliprc", stream=STREAM, admins=frozenset({ADMIN.email})
    )
    ctx = Context(
        Setting(
            config,
            "https://zulip.example.com",
            bot_user_id=99,
            bot_name="Goals Bot",
            streams=(StreamRef(STREAM, 7),),
        ),
        db,
        FrozenClock(NOW),
    )
    return Program(db, ctx, folder, *ids)


def ask(p: Program, text: str, sender: SenderInfo) -> str:
    reply = handle(p.ctx, sender, parse(text, bot_name="Goals Bot"), in_topic=None)
    return "\n".join(reply.messages)


def by_import(p: Program) -> str:
    people = p.folder.parent / "people.toml"
    people.write_text("[people]\nferris = 42\n", encoding="utf-8")
    report = import_goals(p.db, [p.folder], now=NOW, people_file=people)
    return report.mapping.render() if report.mapping is not None else ""


def by_claim(p: Program) -> str:
    return ask(p, "I am @ferris", FERRIS)


def by_map(p: Program) -> str:
    return ask(p, "map @ferris @**Ferris Crab|42**", ADMIN)


PATHS: dict[str, tuple[Callable[[Program], str], str, str]] = {
    "goals import": (by_import, "@ferris → Ferris Crab (people file)", "file"),
    "I am": (by_claim, "Thanks! GitHub @ferris is now linked to your Zulip account.", "claim"),
    "map": (by_map, "GitHub @ferris is now linked to @_**Ferris Crab|42**.", "admin"),
}


@pytest.mark.parametrize("path", list(PATHS))
def test_every_path_merges_the_whole_history_of_a_placeholder(program: Program, path: str) -> None:
    run, said, via = PATHS[path]
    assert said in run(program)
    p = program
    with p.db.read() as s:
        assert s.get(Person, p.placeholder) is None
        me = s.get(Person, p.account)
        assert me is not None and (me.github, me.mapped_via) == ("ferris", via)
        owners = s.execute(select(GoalOwner.person_id).where(GoalOwner.goal_id == p.goal))
        assert list(owners.scalars()) == [p.account]
        assert list(s.scalars(select(Update.author_id))) == [p.account]
        assert list(s.scalars(select(Skip.person_id))) == [p.account]
        assert list(s.scalars(select(Delivery.person_id))) == [p.account]
        sub = s.get(DigestSubscription, p.account)
        assert sub is not None and sub.scope == "champion"
        (champion,) = load_champions(s, [p.goal])[p.goal]
        assert champion.person is not None and champion.person.user is not None
        assert champion.person.user.user_id == 42
    assert ask(p, "mine", FERRIS).startswith("You own 1 goal:")


def test_an_account_that_has_a_subscription_keeps_its_own(program: Program) -> None:
    with program.db.write() as s:
        s.add(DigestSubscription(person_id=program.account, created_at=NOW, scope="all"))
    by_claim(program)
    with program.db.read() as s:
        (sub,) = s.scalars(select(DigestSubscription)).all()
        assert (sub.person_id, sub.scope) == (program.account, "all")


def test_a_claim_cannot_take_what_an_import_linked_but_map_can(program: Program) -> None:
    by_import(program)
    refused = ask(program, "I am @ferris", OTHER)
    assert refused.startswith("GitHub @ferris is already linked to another Zulip account")
    with program.db.read() as s:
        assert s.scalars(select(Person.github).where(Person.zulip_user_id == 42)).one() == "ferris"
    moved = ask(program, "map @ferris @**Other Person|43**", ADMIN)
    assert moved == (
        "GitHub @ferris is now linked to @_**Other Person|43** (moved from "
        "@_**Ferris Crab|42**, with its goals)."
    )
    with program.db.read() as s:
        owners = s.execute(select(Person.zulip_user_id).join(GoalOwner)).scalars()
        assert list(owners) == [43]
        # Ferris's own history stays his.
        assert list(s.scalars(select(Update.author_id))) == [program.account]
