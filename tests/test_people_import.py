"""`people import`: the program's team records (a folder of per-person TOML files) link GitHub
handles to Zulip accounts, with the same linking as the people file; running it again changes
nothing, and people without a zulip-id are listed."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from tests.dbs import new_database_url
from tests.support import DATA, database_for, run_cli
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Person
from zulip_goals_bot.errors import ConfigError
from zulip_goals_bot.people.teams import parse_person, read_team_folder

TEAM = DATA / "team-people"
H2 = DATA / "goalfiles-later" / "2025h2"


def people(db: Database) -> dict[str, tuple[int | None, str | None, str | None]]:
    with db.read() as s:
        rows = s.execute(
            select(Person.github, Person.zulip_user_id, Person.full_name, Person.mapped_via)
        )
        return {g: (uid, name, via) for g, uid, name, via in rows if g}


def conf_for(tmp_path: Path, extra: str = "") -> Path:
    conf = tmp_path / "bot.conf"
    conf.write_text(f"[goals]\ndatabase = {new_database_url(tmp_path)}\n{extra}", encoding="utf-8")
    return conf


def test_team_files_are_read_leniently() -> None:
    folder = read_team_folder(TEAM)  # the repository's root: its people/ folder is read
    assert {p.github: p.zulip_id for p in folder.people} == {
        "alicia-dev": 201, "bogdan": None, "chen-li": 203, "hana": 221, "jonas-k": 222,
        "quinn": 299, "rowan": None,
    }  # fmt: skip
    assert [p.github for p in folder.without_zulip()] == ["bogdan", "rowan"]
    assert folder.problems == ()
    person = parse_person('name = "Ferris  Crab"\ngithub-id = 7\n', "Ferris.toml")
    assert (person.github, person.name, person.zulip_id) == ("ferris", "Ferris Crab", None)
    for bad, why in (
        ("zulip-id = 'abc'\n", "'zulip-id' must be a Zulip user id"),
        ("github = 'not a handle'\n", "'github' must be a GitHub handle"),
        ("name = \n", "not valid TOML"),
    ):
        try:
            parse_person(bad, "x.toml")
        except ConfigError as exc:
            assert str(exc).startswith("x.toml: ") and why in str(exc)
        else:
            raise AssertionError(bad)


def test_people_import_links_the_goal_people_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    conf = conf_for(tmp_path)
    done = run_cli(conf, "goals", "import", str(H2), "--status", "Accepted,Proposed")
    assert done.returncode == 0, done.stdout
    db = database_for(conf)
    assert people(db)["alicia-dev"] == (None, None, None)

    dry = run_cli(conf, "people", "import", str(TEAM), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing was written" in dry.stdout
    assert people(db)["alicia-dev"] == (None, None, None)

    done = run_cli(conf, "people", "import", str(TEAM))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"People import from {TEAM}: 7 people")
    assert "4 newly linked to Zulip users (people file 4), 0 already linked." in out
    assert "People without a zulip-id (2); the bot cannot reach them:" in out
    assert "  @bogdan (Bogdan Example)  (owns or champions a goal)" in out
    assert "  @rowan (Rowan Noaccount)" in out
    found = people(db)
    assert found["alicia-dev"] == (201, None, "file")
    assert found["hana"][0] == 221  # a champion, linked before she ever talks to the bot
    assert found["jonas-k"][0] == 222 and found["chen-li"][0] == 203
    assert found["bogdan"] == (None, "Bogdan Example", None)
    assert "quinn" not in found  # in the records, but no goal names them
    with db.read() as s:
        count = s.execute(select(func.count()).select_from(Person)).scalar_one()

    again = run_cli(conf, "people", "import", str(TEAM))
    assert again.returncode == 0
    assert "0 newly linked to Zulip users, 4 already linked." in again.stdout
    assert people(db) == found
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(Person)).scalar_one() == count
    listed = run_cli(conf, "goals", "import", str(H2))
    assert "Owners of active goals without a Zulip account (5)" in listed.stdout
    assert "@alicia-dev" not in listed.stdout.split("without a Zulip account")[1]


def test_people_file_in_bot_conf_may_be_the_team_folder(tmp_path: Path) -> None:
    conf = conf_for(tmp_path, f"people_file = {TEAM / 'people'}\n")
    done = run_cli(conf, "goals", "import", str(H2), "--status", "Accepted,Proposed")
    assert done.returncode == 0, done.stdout
    assert "People (from people): 4 newly linked" in done.stdout
    assert people(database_for(conf))["alicia-dev"][0] == 201


def test_unreadable_team_files_are_reported_and_the_rest_imported(tmp_path: Path) -> None:
    folder = tmp_path / "people"
    folder.mkdir()
    (folder / "good.toml").write_text("github = 'good'\nzulip-id = 5\n", encoding="utf-8")
    (folder / "broken.toml").write_text("github = \n", encoding="utf-8")
    (folder / "twin.toml").write_text("github = 'Good'\n", encoding="utf-8")
    read = read_team_folder(folder)
    assert [p.github for p in read.people] == ["good"]
    assert [p.split(":")[0] for p in read.problems] == ["broken.toml", "twin.toml"]
    conf = conf_for(tmp_path)
    done = run_cli(conf, "people", "import", str(folder))
    assert done.returncode == 1
    assert "Files that could not be read (skipped):\n  broken.toml: not valid TOML" in done.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = run_cli(conf, "people", "import", str(empty))
    assert bad.returncode == 2 and "no per-person .toml files in this folder" in bad.stderr
