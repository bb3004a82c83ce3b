"""The goals registry: importing goal files, mapping owners to Zulip users, listing goals."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from tests.dbs import new_database, new_database_url
from tests.support import link_handle
from zulip_goals_bot.config import load_config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Goal, GoalOwner, Person, Update
from zulip_goals_bot.domain.states import GoalState, OwnerRole, UpdateKind, UpdateSource
from zulip_goals_bot.domain.views import SenderInfo
from zulip_goals_bot.errors import ConfigError
from zulip_goals_bot.goals.files import parse_goal
from zulip_goals_bot.goals.import_plan import plan_import
from zulip_goals_bot.goals.import_report import ImportReport
from zulip_goals_bot.goals.importer import import_command, import_goals
from zulip_goals_bot.goals.listing import list_command
from zulip_goals_bot.people.accounts import ensure_people, unmapped_owners
from zulip_goals_bot.people.files import github_handle, load_people_file
from zulip_goals_bot.people.link_rules import (
    LinkResult,
    MappedVia,
    PersonRow,
    WantedLink,
    plan_links,
)
from zulip_goals_bot.people.linking import map_people

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "rust-project-goals"
HALVES = ("2024h2", "2025h1")
NOW = datetime(2025, 3, 6, 12, 0, tzinfo=UTC)
LATER = datetime(2025, 4, 3, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers


def make_db(tmp_path: Path) -> Database:
    return new_database(tmp_path)


def run_import(db: Database, paths: Sequence[Path], **kw: Any) -> ImportReport:
    kw.setdefault("now", NOW)
    return import_goals(db, list(paths), **kw)


def dump(db: Database, *tables: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables, raw from the database, for byte-for-byte comparisons."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine.connect() as conn:
        for table in tables or ("goals", "goal_owners", "people", "updates"):
            rows = conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2")).all()
            out[table] = [tuple(r) for r in rows]
    return out


def goal_md(
    title: str,
    poc: str,
    *,
    status: str = "Accepted",
    issue: int | None = None,
    extra_rows: str = "",
    short: str | None = None,
) -> str:
    rows = [f"| Point of contact | {poc} |", f"| Status | {status} |"]
    if short:
        rows.insert(0, f"| Short title | {short} |")
    if issue is not None:
        rows.append(f"| Tracking issue | [rust-lang/goals#{issue}] |")
    body = "\n".join(rows) + ("\n" + extra_rows if extra_rows else "")
    links = f"\n[rust-lang/goals#{issue}]: https://github.com/rust-lang/goals/issues/{issue}\n"
    return f"# {title}\n\n| Metadata | |\n|---|---|\n{body}\n\n## Summary\n\nWork.\n" + (
        links if issue is not None else ""
    )


def write_goals(folder: Path, goals: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for slug, content in goals.items():
        (folder / f"{slug}.md").write_text(content, encoding="utf-8")
    return folder


def small_folder(tmp_path: Path) -> Path:
    return write_goals(
        tmp_path / "2025h1",
        {
            "alpha": goal_md("Alpha goal", "@Alice", issue=901),
            "beta": goal_md("Beta goal", "@bob, @carol", issue=902),
            "gamma": goal_md("Gamma goal", "@dave", status="Not accepted"),
        },
    )


def member(uid: int, name: str, email: str, **extra: Any) -> dict[str, Any]:
    return {
        "user_id": uid,
        "full_name": name,
        "email": email,
        "timezone": "UTC",
        "is_active": True,
        "is_bot": False,
        "role": 400,
        **extra,
    }


def owners_of(db: Database, slug: str) -> list[tuple[str | None, int | None, OwnerRole]]:
    with db.read() as s:
        rows = s.execute(
            select(Person.github, Person.zulip_user_id, GoalOwner.role)
            .join(GoalOwner, GoalOwner.person_id == Person.id)
            .join(Goal, Goal.id == GoalOwner.goal_id)
            .where(Goal.slug == slug)
            .order_by(GoalOwner.position)
        )
        return list(rows)


def goal(db: Database, slug: str, period: str = "2025h1") -> Goal:
    with db.read() as s:
        return s.execute(select(Goal).where(Goal.slug == slug, Goal.period == period)).scalar_one()


# ---------------------------------------------------------------------------------------------
# An independent reading of the goal files: a plain regex over the metadata table.

_ROW_RE = re.compile(r"^\|\s*([^|]*?)\s*\|\s*(.*?)\s*\|\s*$")


def read_metadata(path: Path) -> tuple[str, dict[str, str]] | None:
    """Title and metadata rows of a goal file, or None for an index page (no metadata table)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if re.match(r"^\|\s*Metadata\b", line)), None)
    if start is None:
        return None
    title = next(m.group(1) for line in lines[:start] if (m := re.match(r"^##? +(.+?)\s*$", line)))
    rows: dict[str, str] = {}
    for line in lines[start + 2 :]:
        m = _ROW_RE.match(line)
        if m is None:
            break
        rows.setdefault(m.group(1).lower(), m.group(2))
    return title, rows


def test_both_real_folders_import_as_their_files_say_and_a_second_import_changes_nothing(
    tmp_path: Path,
) -> None:
    db = make_db(tmp_path)
    report = run_import(db, [DATA / h for h in HALVES])
    assert report.problems == ()
    expected: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}
    skipped: set[str] = set()
    for half in HALVES:
        for path in sorted((DATA / half).glob("*.md")):
            meta = read_metadata(path)
            if meta is None:
                skipped.add(f"{half}/{path.name}")
            else:
                expected[(half, path.stem)] = meta
    assert {n.file for n in report.skipped} == skipped
    assert report.created == len(expected) == 73

    with db.read() as s:
        goals = {(g.period, g.slug): g for g in s.execute(select(Goal)).scalars()}
        owners: dict[int, list[tuple[str | None, OwnerRole]]] = {}
        for goal_id, github, role in s.execute(
            select(GoalOwner.goal_id, Person.github, GoalOwner.role)
            .join(Person, Person.id == GoalOwner.person_id)
            .order_by(GoalOwner.goal_id, GoalOwner.position)
        ):
            owners.setdefault(goal_id, []).append((github, role))
    assert set(goals) == set(expected)
    for key, (title, rows) in expected.items():
        g = goals[key]
        assert g.title == title, key
        assert g.status == rows["status"], key
        poc = [h.lower() for h in re.findall(r"@([A-Za-z0-9-]+)", rows["point of contact"])]
        assert poc, key
        assert [h for h, role in owners[g.id] if role is OwnerRole.POINT_OF_CONTACT] == poc, key
        flag = rows.get("flagship")
        assert g.flagship == (flag if flag and flag.lower() != "no" else None), key
        number = re.search(r"#(\d+)", rows.get("tracking issue", ""))
        assert g.tracking_issue == (int(number.group(1)) if number else None), key
        assert g.active is (rows["status"] == "Accepted"), key
        assert g.state is GoalState.ACTIVE
    topics = [g.zulip_topic for g in goals.values()]
    assert len({t.lower() for t in topics}) == len(topics)
    assert all(0 < len(t) <= 60 for t in topics)

    before = dump(db)
    again = run_import(db, [DATA / h for h in HALVES], now=LATER)
    assert again.counts == {
        "created": 0,
        "updated": 0,
        "unchanged": 73,
        "retired": 0,
        "skipped": 10,
        "problems": 0,
    }
    assert dump(db) == before


def test_report_is_a_readable_table_with_problems_skips_and_unmapped_owners(
    tmp_path: Path,
) -> None:
    folder = small_folder(tmp_path)
    (folder / "README.md").write_text("# Goals\n\n(((GOALS)))\n", encoding="utf-8")
    db = make_db(tmp_path)
    out = run_import(db, [folder]).render()
    assert re.search(r"^  created\s+3$", out, re.M)
    assert re.search(r"^  unchanged\s+0$", out, re.M)
    assert re.search(r"^  skipped\s+1  \(index pages\)$", out, re.M)
    assert re.search(r"^  problems\s+0$", out, re.M)
    assert "Skipped (index pages of the goals book" in out
    assert "README.md" in out
    # gamma is "Not accepted": its owner is not asked for anything, so not listed.
    assert "Owners of active goals without a Zulip account (3)" in out
    assert "@alice, @bob, @carol" in out
    assert "@dave" not in out
    assert "no people file" in out


# ---------------------------------------------------------------------------------------------
# Updating, renaming, retiring


def test_newer_file_updates_the_goal_keeping_topic_and_updates_and_removed_file_retires(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "2025h1"
    shutil.copytree(DATA / "2025h1", folder)
    db = make_db(tmp_path)
    run_import(db, [folder])
    old = goal(db, "async")
    with db.write() as s:
        s.add(
            Update(
                zulip_message_id=555,
                goal_id=old.id,
                kind=UpdateKind.UPDATE,
                source=UpdateSource.TOPIC,
                content="We shipped it.",
                sent_at=NOW,
            )
        )
    text_ = (folder / "async.md").read_text(encoding="utf-8")
    text_ = text_.replace("# Bring the Async Rust", "# Deliver the Async Rust", 1)
    text_ = re.sub(r"(\| Point of contact \|)\s*@tmandry", r"\1 @eholk", text_, count=1)
    (folder / "async.md").write_text(text_, encoding="utf-8")
    (folder / "eii.md").unlink()

    report = run_import(db, [folder], now=LATER)
    assert (report.created, report.updated, report.retired) == (0, 1, 1)
    new = goal(db, "async")
    assert new.id == old.id
    assert new.title.startswith("Deliver the Async Rust")
    assert new.zulip_topic == old.zulip_topic
    assert new.updated_at == LATER and new.created_at == NOW
    assert owners_of(db, "async")[0] == ("eholk", None, OwnerRole.POINT_OF_CONTACT)
    assert ("tmandry", None, OwnerRole.POINT_OF_CONTACT) not in owners_of(db, "async")
    with db.read() as s:
        upd = s.execute(select(Update).where(Update.zulip_message_id == 555)).scalar_one()
        assert upd.goal_id == old.id and upd.content == "We shipped it."
    retired = goal(db, "eii")
    assert retired.state is GoalState.RETIRED and retired.active is False
    out = report.render()
    assert re.search(r"^  updated\s+1$", out, re.M)
    assert re.search(r"^  retired\s+1$", out, re.M)
    assert '    title: "Bring the Async Rust' in out
    assert "    owners: @tmandry" in out and "→ @eholk" in out
    assert "Retired (no longer in the source folder" in out and "  eii  " in out

    # The file comes back: the same goal is active again, with its old topic.
    shutil.copy(DATA / "2025h1" / "eii.md", folder / "eii.md")
    back = run_import(db, [folder], now=LATER)
    assert back.updated == 1 and back.created == 0
    revived = goal(db, "eii")
    assert (revived.id, revived.state, revived.active) == (retired.id, GoalState.ACTIVE, True)
    assert revived.zulip_topic == retired.zulip_topic
    assert "state: retired → active" in back.render()


def test_a_renamed_file_is_the_same_goal_found_by_its_tracking_issue(tmp_path: Path) -> None:
    folder = small_folder(tmp_path)
    db = make_db(tmp_path)
    run_import(db, [folder])
    before = goal(db, "alpha")
    (folder / "alpha.md").rename(folder / "alpha-renamed.md")
    report = run_import(db, [folder], now=LATER)
    assert (report.created, report.updated, report.retired) == (0, 1, 0)
    after = goal(db, "alpha-renamed")
    assert (after.id, after.zulip_topic) == (before.id, before.zulip_topic)
    assert 'slug: "alpha" → "alpha-renamed"' in report.render()


def test_importing_one_file_never_retires_the_rest_of_its_period(tmp_path: Path) -> None:
    folder = small_folder(tmp_path)
    db = make_db(tmp_path)
    run_import(db, [folder])
    (folder / "beta.md").write_text(goal_md("Beta, renamed", "@bob", issue=902), encoding="utf-8")
    report = run_import(db, [folder / "beta.md"], now=LATER)
    assert report.plans[0].period == "2025h1"  # the file's folder
    assert (report.updated, report.retired, report.unchanged) == (1, 0, 0)
    assert goal(db, "alpha").state is GoalState.ACTIVE
    assert [o[0] for o in owners_of(db, "beta")] == ["bob"]


def test_topic_is_given_once_and_unique_across_periods(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    same = goal_md("Shared name", "@a", issue=7)
    run_import(db, [write_goals(tmp_path / "2025h1", {"x": same})])
    run_import(db, [write_goals(tmp_path / "2025h2", {"x": same})])
    first, second = goal(db, "x", "2025h1"), goal(db, "x", "2025h2")
    assert first.zulip_topic == "Shared name (goals#7)"
    assert second.zulip_topic != first.zulip_topic
    assert second.zulip_topic.startswith("Shared name")


def test_configured_statuses_decide_which_goals_are_prompted(tmp_path: Path) -> None:
    folder = write_goals(
        tmp_path / "2025h1",
        {
            "flag": goal_md("Flag", "@a", status="Flagship"),
            "prop": goal_md("Prop", "@b", status="proposed"),
            "acc": goal_md("Acc", "@c", status="Accepted"),
        },
    )
    db = make_db(tmp_path)
    run_import(db, [folder])
    assert [goal(db, s).active for s in ("flag", "prop", "acc")] == [True, False, True]
    assert goal(db, "flag").flagship == "Yes"
    run_import(db, [folder], active_statuses=("Proposed",), now=LATER)
    assert [goal(db, s).active for s in ("flag", "prop", "acc")] == [False, True, False]


def test_plan_import_is_pure_and_describes_field_changes(tmp_path: Path) -> None:
    doc = parse_goal(goal_md("Title", "@a", issue=3), "s")
    plan = plan_import(
        [], [(tmp_path / "s.md", doc)], "p", ("Accepted",), taken_topics=["Title (goals#3)"]
    )
    assert [c.topic for c in plan.creates] == ["Title (goals#3) (2)"]
    assert plan.creates[0].fields.owners[0].github == "a"
    assert plan.retires == () and plan.changes == ()


# ---------------------------------------------------------------------------------------------
# Bad input


def test_bad_files_are_reported_by_name_and_the_others_still_imported(tmp_path: Path) -> None:
    folder = write_goals(
        tmp_path / "2025h1",
        {
            "good": goal_md("Good goal", "@alice"),
            "odd-rows": goal_md("Odd rows", "@bob", extra_rows="| Needs | Contributor |"),
            "no-table": "# No table here\n\nJust prose about a goal.\n",
            "broken-row": goal_md(
                "Broken row", "@carol", extra_rows="| just one cell without a partner"
            ),
            "no-status": "# No status\n\n| Metadata | |\n|---|---|\n| Status |\n| Owner | @x |\n",
        },
    )
    (folder / "latin1.md").write_bytes(goal_md("Café", "@dan").encode("latin-1"))
    db = make_db(tmp_path)
    report = run_import(db, [folder])
    out = report.render()
    assert report.created == 3  # good, odd-rows, broken-row
    assert report.exit_code == 1
    assert re.search(r"^  problems\s+3$", out, re.M)
    problems = out.split("Problems (these files were not imported):")[1]
    assert "no-table.md: 'no-table' has no metadata table" in problems
    assert "latin1.md: byte" in problems and "not valid UTF-8" in problems
    assert "no-status.md:" in problems and "no readable Status" in problems
    assert "broken-row.md: line" in out and "malformed metadata row" in out
    assert "Unrecognised metadata rows" in out and "odd-rows.md: 'Needs'" in out
    assert goal(db, "odd-rows").extra == {"Needs": "Contributor"}


def test_a_file_that_breaks_does_not_retire_its_goal(tmp_path: Path) -> None:
    folder = small_folder(tmp_path)
    db = make_db(tmp_path)
    run_import(db, [folder])
    (folder / "alpha.md").write_bytes(b"# Alpha \xff\n")
    report = run_import(db, [folder], now=LATER)
    assert report.retired == 0
    assert goal(db, "alpha").state is GoalState.ACTIVE
    assert "Not retired because their file has problems:\n  alpha" in report.render()


def test_a_missing_path_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    db = make_db(tmp_path)
    report = run_import(db, [tmp_path / "nowhere" / "2025h1"])
    assert report.exit_code == 1
    assert "does not exist" in report.render()


# ---------------------------------------------------------------------------------------------
# Dry run


def test_dry_run_writes_nothing_and_reports_what_a_real_run_would(tmp_path: Path) -> None:
    folder = small_folder(tmp_path)
    people = tmp_path / "people.toml"
    people.write_text("[people]\nalice = 11\n", encoding="utf-8")
    db = make_db(tmp_path)
    empty = dump(db)
    dry = run_import(db, [folder], dry_run=True, people_file=people)
    assert dump(db) == empty
    assert "dry run: nothing was written" in dry.render()
    real = run_import(db, [folder], people_file=people)
    assert dry.counts == real.counts
    assert dry.render().splitlines()[1:] == real.render().splitlines()[1:]

    (folder / "beta.md").unlink()
    (folder / "alpha.md").write_text(goal_md("Alpha v2", "@zed", issue=901), encoding="utf-8")
    before = dump(db)
    dry2 = run_import(db, [folder], dry_run=True, now=LATER)
    assert dump(db) == before
    assert (dry2.updated, dry2.retired) == (1, 1)


# ---------------------------------------------------------------------------------------------
# People: file formats


def test_toml_people_file_in_every_accepted_form(tmp_path: Path) -> None:
    path = tmp_path / "people.toml"
    path.write_text(
        "# GitHub handle -> Zulip account\n"
        "[people]\n"
        "Alice = 101\n"
        'bob = "Bob@Example.com"\n'
        '"carol" = "103"\n'
        "\n"
        "[people.dave]\n"
        "zulip-id = 104\n"
        "name = 'Dave'\n"
        "[people.erin]\n"
        'zulip-email = "erin@example.com"\n'
        "[people.frank]\n"
        "github-id = 5\n",
        encoding="utf-8",
    )
    entries = {e.github: (e.zulip_user_id, e.email, e.line) for e in load_people_file(path)}
    assert entries == {
        "alice": (101, None, 3),
        "bob": (None, "bob@example.com", 4),
        "carol": (103, None, 5),
        "dave": (104, None, 7),
        "erin": (None, "erin@example.com", 10),
    }


def test_csv_people_file(tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(
        "GitHub, Zulip, note\n@Alice,101,x\nbob , bob@example.com\n# a comment\ncarol,\n",
        encoding="utf-8",
    )
    entries = {e.github: (e.zulip_user_id, e.email, e.line) for e in load_people_file(path)}
    assert entries == {"alice": (101, None, 2), "bob": (None, "bob@example.com", 3)}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p.toml", "[people]\nalice = \n", r"p\.toml: not valid TOML: .*line 2"),
        ("p.toml", "[people]\nalice = 1\nbob = true\n", r"p\.toml, line 3: True is neither"),
        ("p.toml", "[people]\nalice = 'nobody'\n", r"p\.toml, line 2: 'nobody' is neither"),
        ("p.toml", "[people]\n'bad handle!' = 1\n", r"p\.toml, line 2: 'bad handle!' is not a"),
        ("p.toml", "[people]\nAlice = 1\nalice = 2\n", r"p\.toml, line 3: @alice is listed twice"),
        ("p.toml", "[peeple]\nalice = 1\n", r"p\.toml, line 1: unknown table or key 'peeple'"),
        ("p.toml", "[people.alice]\nzulip_id = 1\n", r"line 1: unknown key 'zulip_id'"),
        ("p.csv", "handle,user\nalice,1\n", r"p\.csv, line 1: expected a header line"),
        ("p.csv", "github,zulip\nalice,1\nbad handle,2\n", r"p\.csv, line 3: 'bad handle'"),
        ("p.csv", "github,zulip\nalice,someone\n", r"p\.csv, line 2: 'someone' is neither"),
        ("p.csv", "github,zulip\na,1\nA,2\n", r"p\.csv, line 3: @a is listed twice"),
        ("p.yaml", "alice: 1\n", r"p\.yaml: people file must end in \.toml or \.csv"),
    ],
)
def test_malformed_people_file_names_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_people_file(path)


def test_malformed_people_file_stops_the_import_and_writes_nothing(tmp_path: Path) -> None:
    folder = small_folder(tmp_path)
    path = tmp_path / "people.csv"
    path.write_bytes(b"github,zulip\nalice,\xff\n")
    db = make_db(tmp_path)
    before = dump(db)
    with pytest.raises(ConfigError, match=r"people\.csv, line 2: not UTF-8"):
        run_import(db, [folder], people_file=path)
    assert dump(db) == before


@pytest.mark.parametrize(
    ("raw", "handle"),
    [
        ("ferris", "ferris"),
        ("@Ferris", "ferris"),
        ("https://github.com/Ferris-Crab/", "ferris-crab"),
        ("github.com/ferris", "ferris"),
        ("  @a-b  ", "a-b"),
        ("not a handle", None),
        ("-bad", None),
        ("https://gitlab.com/ferris", None),
    ],
)
def test_github_handle_reads_profile_values(raw: str, handle: str | None) -> None:
    assert github_handle(raw) == handle


# ---------------------------------------------------------------------------------------------
# People: mapping


def test_people_file_maps_owners_merging_placeholders_into_known_zulip_users(
    tmp_path: Path,
) -> None:
    folder = small_folder(tmp_path)
    db = make_db(tmp_path)
    with db.write() as s:  # Bob has talked to the bot before: his Zulip row exists
        ensure_people(s, [SenderInfo(202, "bob@example.com", "Bob B")], NOW)
    run_import(db, [folder])  # owners become github-only placeholders
    people = tmp_path / "people.toml"
    people.write_text(
        '[people]\nalice = 201\nbob = "BOB@example.com"\n[people.carol]\nzulip-id = 999\n',
        encoding="utf-8",
    )
    members = [member(201, "Alice A", "alice@example.com"), member(202, "Bob B", "bob@example.com")]
    report = run_import(db, [folder], people_file=people, members=members, now=LATER)
    assert owners_of(db, "alpha") == [("alice", 201, OwnerRole.POINT_OF_CONTACT)]
    assert owners_of(db, "beta") == [
        ("bob", 202, OwnerRole.POINT_OF_CONTACT),
        ("carol", None, OwnerRole.POINT_OF_CONTACT),
    ]
    with db.read() as s:
        bobs = s.execute(select(Person).where(Person.email == "bob@example.com")).scalars().all()
        alice = s.execute(select(Person).where(Person.github == "alice")).scalar_one()
    assert len(bobs) == 1 and bobs[0].github == "bob" and bobs[0].mapped_via == "file"
    assert (alice.full_name, alice.email, alice.mapped_via) == (
        "Alice A",
        "alice@example.com",
        "file",
    )
    out = report.render()
    assert "People (from people.toml): 2 newly linked to Zulip users (people file 2)" in out
    assert "@alice → Alice A (people file)" in out
    assert "@carol (people.toml line 4): no Zulip user with id 999" in out
    assert "Owners of active goals without a Zulip account (1)" in out and "@carol" in out
    with db.read() as s:
        assert unmapped_owners(s) == ["carol"]

    before = dump(db)
    again = run_import(db, [folder], people_file=people, members=members, now=LATER)
    assert dump(db) == before
    assert "0 newly linked to Zulip users, 2 already linked" in again.render()


def test_csv_people_file_maps_owners_without_zulip(tmp_path: Path) -> None:
    folder = small_folder(tmp_path)
    people = tmp_path / "people.csv"
    people.write_text("github,zulip\nalice,301\ncarol,303\n", encoding="utf-8")
    db = make_db(tmp_path)
    report = run_import(db, [folder], people_file=people)
    assert owners_of(db, "alpha") == [("alice", 301, OwnerRole.POINT_OF_CONTACT)]
    assert report.unmapped == ("bob",)


def test_sources_rank_file_over_profile_over_claim(tmp_path: Path) -> None:
    folder = small_folder(tmp_path)
    db = make_db(tmp_path)
    run_import(db, [folder])
    with db.write() as s:
        ensure_people(s, [SenderInfo(7, "u7@x.org", "Seven"), SenderInfo(8, "u8@x.org", "Ei")], NOW)
        # Seven claims @carol in chat.
        assert (
            link_handle(s, github="@carol", zulip_user_id=7, via=MappedVia.CLAIM, now=NOW).result
            is LinkResult.LINKED
        )
        # Eight's claim of the same handle does not take it away.
        lost = link_handle(s, github="carol", zulip_user_id=8, via=MappedVia.CLAIM, now=NOW)
        assert lost.result is LinkResult.CONFLICT and "by the claim" in lost.detail
    assert owners_of(db, "beta")[1] == ("carol", 7, OwnerRole.POINT_OF_CONTACT)

    field = [{"id": 3, "name": "github", "type": 1}]
    members = [
        member(7, "Seven", "u7@x.org"),
        member(8, "Ei", "u8@x.org", profile_data={"3": {"value": "github.com/carol"}}),
        member(9, "Nine", "u9@x.org", profile_data={"3": {"value": "@alice"}}),
    ]
    people = tmp_path / "people.toml"
    people.write_text("[people]\nalice = 7\n", encoding="utf-8")
    with db.write() as s:
        report = map_people(s, members=members, profile_fields=field, people_file=people, now=LATER)
    # The profile beats Seven's claim of @carol; the file beats Nine's profile for @alice.
    assert owners_of(db, "beta")[1] == ("carol", 8, OwnerRole.POINT_OF_CONTACT)
    assert owners_of(db, "alpha") == [("alice", 7, OwnerRole.POINT_OF_CONTACT)]
    with db.read() as s:
        seven = s.execute(select(Person).where(Person.zulip_user_id == 7)).scalar_one()
        eight = s.execute(select(Person).where(Person.zulip_user_id == 8)).scalar_one()
    assert (seven.github, seven.mapped_via) == ("alice", "file")
    assert (eight.github, eight.mapped_via) == ("carol", "profile")
    assert "Zulip profile field 'GitHub'" in report.render()

    # A later claim cannot undo what the file decided.
    with db.write() as s:
        out = link_handle(s, github="alice", zulip_user_id=9, via=MappedVia.CLAIM, now=LATER)
    assert out.result is LinkResult.CONFLICT and "people file" in out.detail
    assert owners_of(db, "alpha") == [("alice", 7, OwnerRole.POINT_OF_CONTACT)]


def test_two_handles_for_one_zulip_user_is_reported_not_flip_flopped(tmp_path: Path) -> None:
    folder = small_folder(tmp_path)
    people = tmp_path / "people.toml"
    people.write_text("[people]\nalice = 5\nbob = 5\n", encoding="utf-8")
    db = make_db(tmp_path)
    first = run_import(db, [folder], people_file=people)
    snapshot = dump(db)
    second = run_import(db, [folder], people_file=people, now=LATER)
    assert dump(db) == snapshot
    for report in (first, second):
        assert "name the same Zulip user 5" in report.render()
    assert owners_of(db, "alpha") == [("alice", 5, OwnerRole.POINT_OF_CONTACT)]


def test_plan_links_moves_a_handle_from_one_user_to_another_keeping_the_old_one() -> None:
    people = [
        PersonRow(1, 10, "old", "profile"),  # user 10 was linked to @old by the profile
        PersonRow(2, None, "new", None),  # placeholder for @new
    ]
    plan = plan_links(people, [WantedLink("new", 10, MappedVia.FILE, "f")])
    assert plan.outcomes[0].result is LinkResult.LINKED
    assert plan.deleted == (2,)
    rows = {r.id: r for r in plan.rows}
    assert rows[1] == PersonRow(1, 10, "new", "file")
    (placeholder,) = [r for r in plan.rows if r.id < 0]
    assert (placeholder.github, placeholder.zulip_user_id) == ("old", None)
    assert plan.moves == ((1, placeholder.id), (2, 1))


# ---------------------------------------------------------------------------------------------
# End to end against the emulator


def test_import_maps_owners_by_zulip_profile_field_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fakezulip import FakeZulip, Realm

    realm = Realm.demo()
    field = realm.add_profile_field("GitHub", hint="Your GitHub username")
    realm.add_profile_field("Pronouns")
    ben, chloe, dev = (realm.user_by_name(n) for n in ("Ben Owner", "Chloé Owner", "Dev Owner"))
    assert ben is not None and chloe is not None and dev is not None
    realm.set_profile_value(ben, field, "@Alice")
    realm.set_profile_value(chloe, field, "https://github.com/bob")
    realm.set_profile_value(dev, field, "not a handle at all")
    folder = small_folder(tmp_path)
    bot = realm.user_by_name("Goals Bot")
    assert bot is not None
    with FakeZulip(realm) as server:
        server.write_zuliprc(tmp_path / "zuliprc", bot)
        conf = tmp_path / "bot.conf"
        conf.write_text(
            f"[goals]\nzuliprc = zuliprc\ndatabase = {new_database_url(tmp_path, 'e2e')}\n"
            "github_profile_field = github\n",
            encoding="utf-8",
        )
        config = load_config(conf)
        assert import_command(config, [folder], period=None, dry_run=False) == 0
    out = capsys.readouterr().out
    db = Database(config.database_url)
    assert owners_of(db, "alpha") == [("alice", ben.user_id, OwnerRole.POINT_OF_CONTACT)]
    assert owners_of(db, "beta") == [
        ("bob", chloe.user_id, OwnerRole.POINT_OF_CONTACT),
        ("carol", None, OwnerRole.POINT_OF_CONTACT),
    ]
    with db.read() as s:
        b = s.execute(select(Person).where(Person.zulip_user_id == ben.user_id)).scalar_one()
    assert (b.full_name, b.timezone, b.mapped_via) == ("Ben Owner", "Europe/Berlin", "profile")
    assert "People (from Zulip profile field 'github'): 2 newly linked" in out
    assert "@alice → Ben Owner (Zulip profile)" in out
    assert "Owners of active goals without a Zulip account (1)" in out
    assert "@carol" in out and "Zulip not reachable" not in out


def test_unreachable_zulip_is_one_line_and_the_people_file_still_maps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nothing listens on once the socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (tmp_path / "zuliprc").write_text(
        f"[api]\nemail=bot@example.com\nkey=abc\nsite=http://127.0.0.1:{port}\n",
        encoding="utf-8",
    )
    (tmp_path / "zuliprc").chmod(0o600)
    (tmp_path / "people.csv").write_text("github,zulip\nalice,41\n", encoding="utf-8")
    conf = tmp_path / "bot.conf"
    conf.write_text(
        f"[goals]\ndatabase = {new_database_url(tmp_path)}\npeople_file = people.csv\n",
        encoding="utf-8",
    )
    config = load_config(conf)
    assert import_command(config, [small_folder(tmp_path)], period=None, dry_run=False) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "Zulip" in line and "reach" in line]
    assert len(notes) == 1, out
    assert notes[0].startswith("Zulip not reachable (cannot reach the Zulip server")
    assert notes[0].endswith("owners were mapped by the people file only.")
    assert "People (from people.csv): 1 newly linked" in out
    assert owners_of(Database(config.database_url), "alpha")[0][1] == 41


# ---------------------------------------------------------------------------------------------
# The command line


def _cli(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zulip_goals_bot.cli", "--config", str(conf), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_cli_imports_a_real_folder_and_lists_goals_as_json(tmp_path: Path) -> None:
    conf = tmp_path / "bot.conf"
    conf.write_text(f"[goals]\ndatabase = {new_database_url(tmp_path)}\n", encoding="utf-8")
    done = _cli(conf, "goals", "import", str(DATA / "2025h1"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Goals import into 2025h1\n")
    for line in ("created      42", "updated       0", "skipped       3  (index pages)"):
        assert f"\n  {line}\n" in done.stdout
    assert "Zulip: no zuliprc at" in done.stdout

    listed = _cli(conf, "goals", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    goals = json.loads(listed.stdout)
    assert len(goals) == 40  # the two "Not accepted" goals are inactive
    by_slug = {g["slug"]: g for g in goals}
    assert by_slug["async"]["owners"][0] == {
        "github": "tmandry",
        "role": "poc",
        "zulip_user_id": None,
        "full_name": None,
    }
    assert by_slug["async"]["flagship"] == "Yes" and by_slug["async"]["tracking_issue"] == 105
    assert all(g["state"] == "active" and g["active"] for g in goals)


def test_list_command_table_and_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "bot.conf"
    conf.write_text(f"[goals]\ndatabase = {new_database_url(tmp_path)}\n", encoding="utf-8")
    config = load_config(conf)
    assert list_command(config, show_all=False, as_json=False) == 0
    assert "No active goals. Import some with" in capsys.readouterr().out
    run_import(Database(config.database_url), [small_folder(tmp_path)])
    assert list_command(config, show_all=False, as_json=False) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["period", "slug", "title", "state", "flagship", "owners", "topic"]
    assert re.match(
        r"2025h1\s+alpha\s+Alpha goal\s+active\s+@alice\s+Alpha goal \(goals#901\)", lines[1]
    )
    assert not any("gamma" in line for line in lines)
    assert list_command(config, show_all=True, as_json=False) == 0
    assert re.search(r"gamma\s+Gamma goal\s+inactive\s+@dave", capsys.readouterr().out)
