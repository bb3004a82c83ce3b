"""The later goal folders: a slate accepted as "Proposed", flagship themes, highlights, roadmap
pages, "What and why", team champions, and the index and help pages of an annual folder.

The folders in tests/data/goalfiles-later are written for these tests in those shapes.  They are
imported for real (SQLite files, or PostgreSQL with GOALS_TEST_DB=postgresql) and read back the
way people see them: the import report, ``goals list``, chat commands, the digest, the blog post.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.dbs import new_database, new_database_url
from tests.mentions import contains_unsafe_mention
from tests.support import DATA, link_handle, run_cli
from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.clock import FrozenClock
from zulip_goals_bot.commands.dispatch import handle
from zulip_goals_bot.commands.grammar import parse
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import GoalChampion, Roadmap
from zulip_goals_bot.db.queries import load_goals
from zulip_goals_bot.digest.blog import compose_blog, load_blog_data
from zulip_goals_bot.digest.compose import compose_digest
from zulip_goals_bot.digest.delivery import load_digest_data
from zulip_goals_bot.domain.setting import Setting
from zulip_goals_bot.domain.views import SenderInfo
from zulip_goals_bot.goals.files import GoalStatus, ProblemKind, parse_goal, read_pages
from zulip_goals_bot.goals.grouping import GroupKind, canonical_names, goal_groups
from zulip_goals_bot.goals.import_report import ImportReport
from zulip_goals_bot.goals.importer import import_goals
from zulip_goals_bot.goals.outlook import Reason
from zulip_goals_bot.people.accounts import ensure_people
from zulip_goals_bot.people.link_rules import MappedVia

LATER = DATA / "goalfiles-later"
H2, ANNUAL = LATER / "2025h2", LATER / "2026"
SEPTEMBER = datetime(2025, 9, 4, 12, 0, tzinfo=UTC)
JANUARY = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
BOTH = ("Accepted", "Proposed")
STREAM = "project-goals"
SITE = "https://zulip.example.com"
HANA = SenderInfo(21, "hana@example.com", "Hana")
JONAS = SenderInfo(22, "jonas@example.com", "Jonas K")


def run_import(db: Database, folder: Path, **kw: object) -> ImportReport:
    kw.setdefault("now", SEPTEMBER)
    return import_goals(db, [folder], **kw)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = new_database(tmp_path)
    yield database
    database.dispose()


def context(db: Database, now: datetime) -> Context:
    config = Config(path=None, zuliprc=Path("zuliprc"), stream=STREAM)
    return Context(
        Setting(config, SITE, bot_user_id=99, bot_name="Goals Bot"), db, FrozenClock(now)
    )


def ask(ctx: Context, text: str, sender: SenderInfo = HANA) -> str:
    reply = handle(ctx, sender, parse(text, bot_name="Goals Bot"), in_topic=None)
    answer = "\n---\n".join(reply.messages)
    assert not contains_unsafe_mention(answer)
    return answer


def link(db: Database, handle_: str, who: SenderInfo) -> None:
    """Link a GitHub handle to a Zulip account, as a people file or an admin's `map` does."""
    with db.write() as s:
        ensure_people(s, [who], JANUARY)
        link_handle(s, github=handle_, zulip_user_id=who.user_id, via=MappedVia.FILE, now=JANUARY)


# ---------------------------------------------------------------------------------------------
# Reading the files


def test_every_later_page_is_a_goal_a_roadmap_or_a_skipped_index_page() -> None:
    half = read_pages([H2])
    assert {d.slug for _, d in half.goals} == {
        "reborrow-ergo", "field-places", "trait-dormancy", "faster-links", "faster-backend",
        "docs-search", "old-lints",
    }  # fmt: skip
    assert half.roadmaps == []
    assert {(Path(p.path).name, p.kind) for p in half.problems} == {
        (name, ProblemKind.NOT_A_GOAL)
        for name in ("README.md", "goals.md", "not_accepted.md", "reports.md")
    }
    annual = read_pages([ANNUAL])
    assert {d.slug for _, d in annual.roadmaps} == {
        "roadmap-beyond-the-ampersand",
        "roadmap-fast-builds",
    }
    skipped = {Path(p.path).stem for p in annual.problems}
    assert skipped == {
        "README", "goals", "highlights", "roadmaps", "help-wanted", "contributors", "funding",
        "faq",
    }  # fmt: skip
    assert all(p.is_skip for p in [*half.problems, *annual.problems])
    for _, doc in [*half.goals, *annual.goals, *annual.roadmaps]:
        assert doc.warnings == (), (doc.slug, doc.warnings)
    assert all(d.status is GoalStatus.PROPOSED for _, d in [*half.goals, *annual.goals])


def test_later_rows_become_fields_and_unknown_rows_are_kept() -> None:
    goals = {d.slug: d for _, d in read_pages([H2, ANNUAL]).goals if d.slug != "docs-search"}
    h2 = {d.slug: d for _, d in read_pages([H2]).goals}
    assert h2["reborrow-ergo"].flagship == "Beyond the `&`"
    assert h2["field-places"].flagship == "Beyond the &"  # a lowercase row, spelled differently
    assert [(c.team, c.github) for c in h2["reborrow-ergo"].champions] == [
        ("lang", "hana"),
        ("types", "jonas-k"),
    ]
    assert h2["trait-dormancy"].extra == {"Other tracking issues": "[rust-lang/rust#150001]"}
    assert h2["docs-search"].extra == {"Needs": "Contributor", "Timespan": "2025"}
    assert h2["faster-links"].extra["Funding contact"].startswith("[Example Foundation]")

    reborrow = goals["reborrow-ergo"]
    assert reborrow.highlight == "Custom pointer types"
    assert reborrow.summary == "`Pin<&mut T>` and custom pointers reborrow like `&mut T` does"
    assert [(r.name, r.slug) for r in reborrow.roadmaps] == [
        ("Beyond the `&`", "roadmap-beyond-the-ampersand")
    ]
    assert [(r.name, r.slug) for r in goals["faster-links"].roadmaps] == [("Fast builds", None)]
    places = goals["field-places-2026"]
    assert [(c.period, c.slug) for c in places.continues] == [("2025h2", "field-places")]
    # The point of contact may champion their own goal for a team.
    assert ("compiler", "bogdan") in [(c.team, c.github) for c in places.champions]
    assert places.owners == ("bogdan",)
    roadmap = next(d for _, d in read_pages([ANNUAL]).roadmaps if d.slug.endswith("ampersand"))
    assert (roadmap.name, roadmap.owners) == ("Beyond the `&`", ("hana",))
    assert roadmap.summary == "Smart pointers get the conveniences of `&` and `&mut`"
    assert roadmap.extra == {"Application area": "Systems & embedded, Cross-language interop"}


def test_continuation_is_read_from_a_row_or_from_prose_naming_a_goal() -> None:
    text = (
        "# Next steps\n\n| Metadata | |\n|---|---|\n| Point of contact | @a |\n"
        "| Status | Accepted |\n| Continuation of | [rust-lang/rust-project-goals#12] |\n\n"
        "This continues [our work](https://github.com/rust-lang/rust/issues/130000), "
        "rust-lang/rust#5 and [rust-lang/rust-project-goals#77], and the "
        "[2025H2 goal](https://rust-lang.github.io/rust-project-goals/2025h2/x.html).\n\n"
        "Unrelated prose links [a page](../2025h2/y.md).\n"
    )
    refs = parse_goal(text, "next").continues
    assert [(r.period, r.slug, r.issue) for r in refs] == [
        (None, None, 12),  # any issue in the row
        ("2025h2", "x", None),
        (None, None, 77),  # only goals-repository issues in prose
    ]


def test_theme_spellings_that_differ_slightly_are_one_theme() -> None:
    names = canonical_names(
        ["Beyond the `&`", "Beyond the &", "Beyond the `&`", "Flexible, fast(er) compilation",
         "Flexible, faster compilation", "Unblocking dormant traits", "Unblocking dormant trait"]
    )  # fmt: skip
    assert names["Beyond the &"] == "Beyond the `&`"
    assert names["Flexible, faster compilation"] == names["Flexible, fast(er) compilation"]
    assert names["Unblocking dormant trait"] == names["Unblocking dormant traits"]
    assert len(set(names.values())) == 3


# ---------------------------------------------------------------------------------------------
# Importing: who is prompted, and why not


def test_a_slate_accepted_as_proposed_says_loudly_that_nobody_will_be_prompted(
    db: Database,
) -> None:
    dry = run_import(db, H2, dry_run=True)
    assert (dry.prompted, dry.exit_code) == (0, 0)  # a dry run is how one finds out
    report = run_import(db, H2)
    assert report.counts == {
        "created": 7, "updated": 0, "unchanged": 0, "retired": 0, "skipped": 4, "problems": 0,
    }  # fmt: skip
    assert (report.prompted, report.exit_code) == (0, 1)
    (reason,) = report.reasons
    assert (reason.reason, reason.status, len(reason.slugs)) == (Reason.STATUS, "Proposed", 7)
    out = report.render()
    assert "NO GOAL WILL BE PROMPTED: none of the 7 goals of 2025h2" in out
    assert 'status "Proposed" is not one of the prompted statuses: 7 goals' in out
    assert f"goals import {H2} --status Accepted,Proposed" in out
    assert "(0 roadmap pages, 9 champion rows)" not in out
    assert "(0 roadmap pages, 7 champion rows)" in out


def test_status_option_prompts_the_slate_and_is_remembered_for_the_period(db: Database) -> None:
    report = run_import(db, H2, statuses=BOTH)
    assert (report.prompted, report.exit_code, len(report.outlooks)) == (7, 0, 7)
    # Nobody is on Zulip yet: prompted, but waiting for the owners to be linked.
    assert [(g.reason, len(g.slugs)) for g in report.reasons] == [(Reason.NOT_ON_ZULIP, 7)]
    assert "Prompted: 7 of 7 goals will be asked for updates." in report.render()
    again = run_import(db, H2, now=SEPTEMBER + timedelta(days=1))
    assert (again.prompted, again.unchanged) == (7, 7)
    assert "set by an earlier --status for this period" in again.render()
    with db.read() as s:
        assert all(g.active for g in load_goals(s, include_inactive=True))
        champions = s.execute(select(func.count()).select_from(GoalChampion)).scalar_one()
    assert champions == 7  # every champion row of the files


def test_goals_without_an_owner_or_paused_are_counted_with_their_reason(
    db: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "2025h2"
    folder.mkdir()
    for path in H2.glob("*.md"):
        (folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    text = (folder / "old-lints.md").read_text(encoding="utf-8")
    (folder / "old-lints.md").write_text(text.replace("@gus", "TBD"), encoding="utf-8")
    report = run_import(db, folder, statuses=BOTH)
    assert report.prompted == 6
    groups = {g.reason: g for g in report.reasons}
    assert groups[Reason.NO_OWNER].slugs == ("old-lints",)
    assert "| Point of contact | @handle |" in groups[Reason.NO_OWNER].hint
    assert "Not prompted (1), and what would include them:" in report.render()


# ---------------------------------------------------------------------------------------------
# Grouping: flagship themes and highlights, everywhere goals are listed


def test_flagship_themes_group_the_digest_the_blog_and_list_flagship(db: Database) -> None:
    run_import(db, H2, statuses=BOTH)
    ctx = context(db, SEPTEMBER + timedelta(days=4))
    with db.read() as s:
        goals = load_goals(s)
        data = load_digest_data(s, ctx, SEPTEMBER - timedelta(days=7), ctx.clock.now())
        blog_goals, updates = load_blog_data(s, SEPTEMBER - timedelta(days=30), SEPTEMBER)
    themes = {
        g.name: sorted(v.slug for v in g.items)
        for g in goal_groups(goals, lambda g: g)
        if g.kind is GroupKind.FLAGSHIP
    }
    assert themes == {
        "Beyond the `&`": ["field-places", "reborrow-ergo"],
        "Flexible, fast(er) compilation": ["faster-backend", "faster-links"],
        "Unblocking dormant traits": ["trait-dormancy"],
    }
    digest = "\n\n".join(
        compose_digest(data, stream=ctx.setting.stream(STREAM), program=ctx.program, site=SITE)
    )
    headings = re.findall(r"^\*\*(Flagship: [^*\n]+|Team [a-z-]+)\*\*$", digest, re.M)
    assert headings == [
        "Flagship: Beyond the `&`",
        "Flagship: Flexible, fast(er) compilation",
        "Flagship: Unblocking dormant traits",
        "Team clippy",
        "Team rustdoc",
    ]
    flagship = ask(ctx, "list flagship")
    blocks = flagship.split("\n\n")
    assert blocks[0].startswith("Flagship: Beyond the `&` (2):")
    assert "**Field access through smart pointers**" in blocks[0]
    assert blocks[1].startswith("Flagship: Flexible, fast(er) compilation (2):")
    post = compose_blog(
        blog_goals, updates, SEPTEMBER.date() - timedelta(days=30), SEPTEMBER.date()
    )
    assert "## Goals without updates in this period" in post  # nothing posted yet


def test_annual_folder_roadmaps_highlights_and_what_and_why(db: Database) -> None:
    report = run_import(db, ANNUAL, statuses=BOTH, now=JANUARY)
    assert (report.created, report.prompted, report.problems) == (6, 6, ())
    assert [r.created for r in report.roadmaps] == [
        ("roadmap-beyond-the-ampersand", "roadmap-fast-builds")
    ]
    assert "(2 roadmap pages, 9 champion rows)" in report.render()
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(Roadmap)).scalar_one() == 2
        assert s.execute(select(func.count()).select_from(GoalChampion)).scalar_one() == 9
    ctx = context(db, JANUARY + timedelta(days=3))
    listed = ask(ctx, "list roadmap")
    assert listed.startswith("Roadmaps (3); say `list roadmap <name>` for one of them:")
    assert "- **Beyond the `&`** (2 goals) — Smart pointers get the conveniences" in listed
    assert "- **Fast builds** (2 goals)" in listed
    assert "- **Unblocking dormant traits** (1 goal)" in listed  # named, without a page
    beyond = ask(ctx, "list roadmap beyond the")
    assert beyond.startswith("**Roadmap: Beyond the `&`**\n**What and why**: Smart pointers")
    assert "**Point of contact**: @hana · period 2026" in beyond
    assert "Goals of roadmap Beyond the `&` (2):" in beyond
    assert "**Field projections**" in beyond and "**Reborrowing for user-defined" in beyond
    status = ask(ctx, "status reborrow")
    assert "**What and why**: `Pin<&mut T>` and custom pointers reborrow" in status
    assert "**Highlight**: Custom pointer types" in status
    assert "**Roadmaps**: Beyond the `&`" in status
    assert "**Champions**: @hana (lang), @jonas-k (types)" in status
    with db.read() as s:
        data = load_digest_data(s, ctx, JANUARY, ctx.clock.now())
    digest = "\n\n".join(
        compose_digest(data, stream=ctx.setting.stream(STREAM), program=ctx.program, site=SITE)
    )
    first = re.findall(r"^\*\*((?:Highlight|Flagship|Team)[^*\n]*|Other goals)\*\*$", digest, re.M)
    assert first[:2] == ["Highlight: Custom pointer types", "Flagship: Unblocking dormant traits"]
    assert "Field projections" in digest.split("**Flagship:")[0]


def test_champions_see_their_goals_in_mine_and_are_never_prompted(db: Database) -> None:
    run_import(db, ANNUAL, statuses=BOTH, now=JANUARY)
    ctx = context(db, JANUARY + timedelta(days=30))
    assert "don't own any goal" in ask(ctx, "mine", JONAS)
    link(db, "jonas-k", JONAS)
    mine = ask(ctx, "mine", JONAS)
    assert mine.startswith("You champion 3 goals (you are not asked for updates;")
    assert "**Supertraits that can grow** (`trait-dormancy`) for types" in mine
    assert "**Linker diagnostics** (`new-goal`) for libs" in mine
    with db.read() as s:
        goals = {g.slug: g for g in load_goals(s)}
    asked = {p.github for g in goals.values() for p in g.prompted_owners()}
    assert "jonas-k" not in asked and "hana" not in asked
    # A point of contact who also champions keeps their owner's duties.
    link(db, "bogdan", SenderInfo(23, "bogdan@example.com", "Bogdan"))
    bogdan = ask(ctx, "mine", SenderInfo(23, "bogdan@example.com", "Bogdan"))
    assert bogdan.startswith("You own 1 goal:")
    assert "You champion 1 goal" in bogdan


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_import_exits_1_for_an_unprompted_slate_and_list_says_why(tmp_path: Path) -> None:
    conf = tmp_path / "bot.conf"
    conf.write_text(f"[goals]\ndatabase = {new_database_url(tmp_path)}\n", encoding="utf-8")
    done = run_cli(conf, "goals", "import", str(H2))
    assert done.returncode == 1, done.stderr
    assert "NO GOAL WILL BE PROMPTED" in done.stdout
    listed = run_cli(conf, "goals", "list")
    assert listed.returncode == 0
    assert listed.stdout.startswith("No active goals: none of the 7 imported goals is prompted.")
    assert "--status Accepted,Proposed" in listed.stdout
    table = run_cli(conf, "goals", "list", "--all").stdout.splitlines()
    assert table[0].split()[-1] == "prompted"
    assert all(line.rstrip().endswith("no: status Proposed") for line in table[1:8])

    dry = run_cli(conf, "goals", "import", str(H2), "--status", "Accepted,Proposed", "--dry-run")
    assert dry.returncode == 0 and "Prompted: 7 of 7 goals" in dry.stdout
    done = run_cli(conf, "goals", "import", str(H2), "--status", "Accepted,Proposed")
    assert done.returncode == 0, done.stdout
    rows = json.loads(run_cli(conf, "goals", "list", "--json").stdout)
    assert {r["slug"]: r["prompted"] for r in rows} == dict.fromkeys(
        ("docs-search", "faster-backend", "faster-links", "field-places", "old-lints",
         "reborrow-ergo", "trait-dormancy"), True
    )  # fmt: skip
    reborrow = next(r for r in rows if r["slug"] == "reborrow-ergo")
    assert reborrow["champions"] == [
        {"github": "hana", "team": "lang", "role": "champion", "zulip_user_id": None},
        {"github": "jonas-k", "team": "types", "role": "champion", "zulip_user_id": None},
    ]
    assert reborrow["flagship"] == "Beyond the `&`"
    bad = run_cli(conf, "goals", "import", str(H2), "--status", " , ")
    assert bad.returncode == 2 and "--status ' , ' names no status" in bad.stderr


def test_help_lists_the_new_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "zulip_goals_bot.cli", "goals", "import", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "--status LIST" in done.stdout and "--rollover" in done.stdout
