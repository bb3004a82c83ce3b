"""`zulip-goals-bot site build`: the pages, feeds and data of the 2025h1 program, from a database.

The data set is the digest's (``tests/test_digest.py``): the real 2025h1 goal files, updates in the
style of the monthly posts, and goals in every state (paused, completed, in grace, overdue, owners
away or unmapped, no owner).  What a reader sees in a browser is checked in
``tests/test_site_browser.py``; here, the files themselves.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import jsonschema
import pytest

from fakezulip.clockfile import CLOCK_FILE_ENV
from tests.support import ROOT, run_cli
from tests.test_digest import (
    DIGEST_AT,
    SITE,
    UPDATES,
    at,
    build_program,
    compose_for,
    make_ctx,
    make_db,
)
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.db.models import Update
from zulip_goals_bot.domain.schedule import DueState
from zulip_goals_bot.domain.states import UpdateKind, UpdateSource
from zulip_goals_bot.errors import UnknownPeriod
from zulip_goals_bot.website.build import BuildReport, build_site, site_settings
from zulip_goals_bot.website.content import SiteError
from zulip_goals_bot.website.rebuild import changes_site

SCHEMA = json.loads((ROOT / "docs" / "goals.schema.json").read_text(encoding="utf-8"))
MARKS = {state.mark: state for state in DueState}


@pytest.fixture
def program(tmp_path: Path) -> Iterator[Database]:
    db = make_db(tmp_path)
    build_program(db)
    yield db
    db.dispose()


def build(db: Database, out: Path, now: datetime = DIGEST_AT, **kw: object) -> BuildReport:
    config = make_ctx(db, None).config  # type: ignore[arg-type]
    return build_site(db, site_settings(config, SITE), out, now, **kw)  # type: ignore[arg-type]


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def index_groups(page: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """(group title, [(goal name, badge text)]) in page order, as the index shows them."""
    out = []
    for section in re.findall(r'<section id="[^"]+" class="group">(.*?)</section>', page, re.S):
        title = html.unescape(re.search(r"<h2>(.*?)</h2>", section).group(1))  # type: ignore[union-attr]
        cards = re.findall(
            r'class="goal-link" href="[^"]+">(.*?)</a>\n<span class="badge [^"]+">(.*?)</span>',
            section,
        )
        out.append((title, [(html.unescape(n), html.unescape(b)) for n, b in cards]))
    return out


def digest_groups(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """The same from the digest: its group headings and each goal's mark."""
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for line in text.splitlines():
        heading = re.fullmatch(
            r"\*\*(Flagship goals|Flagship: .+|Highlight: .+|Team \S+|Other goals)\*\*", line
        )
        goal = re.match(r"(:[a-z_]+:) \*\*(.+?)\*\* · \[#", line)
        if heading:
            out.append((heading.group(1), []))
        elif goal:
            out[-1][1].append((goal.group(2).replace("\u200b", ""), MARKS[goal.group(1)].value))
    return out


def test_the_index_groups_goals_as_the_digest_does_with_the_same_states(
    program: Database, tmp_path: Path
) -> None:
    report = build(program, tmp_path / "site")
    assert (report.goals, report.updates) == (40, len(UPDATES))
    page = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    digest = "\n".join(compose_for(make_ctx(program, None), DIGEST_AT))  # type: ignore[arg-type]
    assert index_groups(page) == digest_groups(digest)
    states = {n: b for _t, cards in index_groups(page) for n, b in cards}
    assert len(states) == 40
    # Every kind of goal of the data set, with the badge a reader sees.
    assert states["Externally Implementable Items"] == "paused"
    assert states['Prototype a new set of Cargo "plumbing" commands'] == "completed"
    assert "in grace" in states.values() and "overdue" in states.values()
    assert "up to date" in states.values() and "due" in states.values()
    assert "<strong>40 goals</strong>" in page
    # Goals asking for help have a section of their own, before the groups.
    helping = page.split('<section id="help-wanted"', 1)[1].split("</section>", 1)[0]
    assert helping.count("<li>") == 4
    assert page.index('id="help-wanted"') < page.index('class="group"')


def test_a_goal_page_has_its_facts_and_its_updates_newest_first(
    program: Database, tmp_path: Path
) -> None:
    build(program, tmp_path / "site")
    page = (tmp_path / "site" / "goals" / "async.html").read_text(encoding="utf-8")
    times = re.findall(r'<article class="update" id="update-(\d+)">\n<h3>.*?datetime="(.+?)"', page)
    assert [t for _id, t in times] == ["2025-03-14T15:30:00+00:00", "2025-03-03T16:00:00+00:00"]
    assert f'href="{SITE}/#narrow/id/{times[0][0]}" rel="nofollow noopener">View in Zulip' in page
    issue = "https://github.com/rust-lang/goals/issues/105"
    assert f'<a href="{issue}" rel="nofollow noopener">#105' in page
    assert f'<a href="{SITE}/#narrow/stream/project-goals/topic/Async.20.28goals.23105.29"' in page
    assert '<dt>Point of contact</dt>\n<dd><a href="https://github.com/tmandry"' in page
    assert "<dt>Task owners</dt>" in page and ">eholk</a>" in page
    assert "<dt>Teams</dt>" in page
    assert '<link rel="stylesheet" href="../style.css">' in page
    assert '<a href="../index.html">All goals</a>' in page


def test_same_database_same_week_same_bytes_and_an_update_changes_only_its_files(
    program: Database, tmp_path: Path
) -> None:
    build(program, tmp_path / "a")
    # A day later, in the same prompt week (Thursday 14:00 to Thursday 14:00): nothing moved.
    build(program, tmp_path / "b", DIGEST_AT + timedelta(days=1, hours=1))
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
    before = files_of(tmp_path / "a")
    with program.write() as session:
        goal_id = (
            session.execute(
                Update.__table__.select().where(Update.zulip_message_id == 5000)  # type: ignore[attr-defined]
            )
            .one()
            .goal_id
        )
        session.add(
            Update(
                zulip_message_id=6000,
                goal_id=goal_id,
                kind=UpdateKind.UPDATE,
                source=UpdateSource.TOPIC,
                content="TL;DR: one more.",
                tldr="one more.",
                sent_at=at("2025-03-17", 8),
            )
        )
    build(program, tmp_path / "a")
    after = files_of(tmp_path / "a")
    changed = sorted(k for k in after if after[k] != before.get(k))
    assert changed == [
        "feeds/async.atom",
        "goals.json",
        "goals/async.html",
        "index.html",
        "updates.atom",
    ]


def test_goals_json_matches_its_schema_and_the_site(program: Database, tmp_path: Path) -> None:
    build(program, tmp_path / "site")
    text = (tmp_path / "site" / "goals.json").read_text(encoding="utf-8")
    data = json.loads(text)
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
    assert data["period"] == "2025h1" and len(data["goals"]) == 40
    assert sum(len(g["updates"]) for g in data["goals"]) == len(UPDATES)
    assert sum(data["states"].values()) == 40
    assert all((tmp_path / "site" / g["page"]).is_file() for g in data["goals"])
    assert all((tmp_path / "site" / g["feed"]).is_file() for g in data["goals"])
    weeks = len(data["weeks"])
    assert all(len(g["updates_per_week"]) == weeks for g in data["goals"])
    # Mentions are plain words: nothing copied from here can ping anyone.
    assert "@**" not in text and "@all attendees" in text
    assert len(text.splitlines()) == 42  # the head, one line per goal, the end


def test_atom_feeds_parse_with_ids_dates_and_links(program: Database, tmp_path: Path) -> None:
    build(program, tmp_path / "site")
    root = tmp_path / "site"
    everything = feedparser.parse((root / "updates.atom").read_bytes())
    assert not everything.bozo, everything.bozo_exception
    assert everything.version == "atom10"
    entries = everything.entries
    assert len(entries) == len(UPDATES)
    published = [datetime(*e.published_parsed[:6], tzinfo=UTC) for e in entries]
    assert published == sorted(published, reverse=True)
    assert published[0] == max(u.sent_at for u in UPDATES)
    assert len({e.id for e in entries}) == len(UPDATES)
    assert all(e.id.startswith(f"{SITE}/#narrow/id/") for e in entries)
    assert everything.feed.updated_parsed is not None
    for e in entries:
        related = [link.href for link in e.links if link.rel == "related"]
        assert related and (root / related[0]).is_file()
        assert "<script" not in e.summary
    goal = feedparser.parse((root / "feeds" / "async.atom").read_bytes())
    assert not goal.bozo and len(goal.entries) == 2
    assert goal.entries[0].title.startswith("Async: `iter!` is now on nightly")
    page = next(link.href for link in goal.feed.links if link.rel == "alternate")
    assert (root / "feeds" / page).resolve() == (root / "goals" / "async.html").resolve()
    quiet = feedparser.parse((root / "feeds" / "cargo-plumbing.atom").read_bytes())
    assert not quiet.bozo and quiet.entries == [] and quiet.feed.updated_parsed is not None


def test_an_edited_update_moves_its_feed_entrys_updated_time(
    program: Database, tmp_path: Path
) -> None:
    """Feed readers show an entry again when ``updated`` moves: an edit must move it (and the
    feed's own), while ``published`` stays when the message was first sent."""
    build(program, tmp_path / "before")
    before = feedparser.parse((tmp_path / "before" / "feeds" / "async.atom").read_bytes())
    first = before.entries[0]
    edited_at = DIGEST_AT - timedelta(minutes=30)
    message_id = int(first.id.rsplit("/", 1)[1])
    with program.write() as s:
        row = s.query(Update).filter(Update.zulip_message_id == message_id).one()
        row.content = row.content + "\n\nEdited: the PR merged."
        row.edited_at = edited_at
    build(program, tmp_path / "after")
    after = feedparser.parse((tmp_path / "after" / "feeds" / "async.atom").read_bytes())
    entry = next(e for e in after.entries if e.id == first.id)
    assert datetime(*entry.updated_parsed[:6], tzinfo=UTC) == edited_at.replace(microsecond=0)
    assert entry.published_parsed == first.published_parsed
    assert entry.updated_parsed != first.updated_parsed
    assert "the PR merged" in entry.summary
    assert datetime(*after.feed.updated_parsed[:6], tzinfo=UTC) >= edited_at.replace(microsecond=0)


def test_rebuilding_keeps_git_and_cname_and_leaves_nothing_behind(
    program: Database, tmp_path: Path
) -> None:
    out = tmp_path / "site"
    build(program, out)
    (out / ".git").mkdir()
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / "CNAME").write_text("goals.example.org\n")
    (out / "stale.html").write_text("from an older build")
    build(program, out)
    assert (out / ".git" / "HEAD").read_text() == "ref: refs/heads/main\n"
    assert (out / "CNAME").read_text() == "goals.example.org\n"
    assert not (out / "stale.html").exists()
    # The folders the build wrote in and swapped out are gone.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_folder_of_someone_elses_files_is_never_replaced(
    program: Database, tmp_path: Path
) -> None:
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(SiteError, match="already holds files that a site build did not make"):
        build(program, mine)
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]
    with pytest.raises(SiteError, match="is a file"):
        build(program, mine / "thesis.tex")
    with pytest.raises(UnknownPeriod, match=r"'2024h2': no goals in that period"):
        build(program, tmp_path / "new", period="2024h2")
    assert not (tmp_path / "new").exists()


def test_batches_that_change_updates_ask_for_a_rebuild() -> None:
    assert changes_site([{"type": "message"}], stored=1)
    assert changes_site([{"type": "delete_message"}], stored=0)
    assert changes_site([{"type": "update_message"}], stored=0)
    assert not changes_site([{"type": "message"}], stored=0)  # a command, a duplicate


# -- the command line -----------------------------------------------------------------------------


def write_conf(tmp_path: Path, db: Database, extra: str = "") -> Path:
    (tmp_path / "zuliprc").write_text(f"[api]\nemail=bot@example.com\nkey=k\nsite={SITE}\n")
    conf = tmp_path / "bot.conf"
    conf.write_text(
        f"[goals]\ndatabase = {db.url}\n[schedule]\ngrace_days = 7\n{extra}", encoding="utf-8"
    )
    return conf


def test_site_build_and_serve_from_the_command_line(program: Database, tmp_path: Path) -> None:
    conf = write_conf(tmp_path, program, "[site]\noutput = public\ntitle = Rust project goals\n")
    clock = tmp_path / "clock"
    clock.write_text(DIGEST_AT.isoformat())
    done = run_cli(conf, "site", "build", env={CLOCK_FILE_ENV: str(clock)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"built the site of 2025h1 in {tmp_path / 'public'}: 40 goals")
    index = (tmp_path / "public" / "index.html").read_text(encoding="utf-8")
    assert "<title>Rust project goals · 2025h1</title>" in index

    serve = subprocess.Popen(
        [sys.executable, "-m", "zulip_goals_bot.cli", "--config", str(conf), "site", "serve",
         "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        line = serve.stdout.readline()
        url = re.search(r"at (http://127\.0\.0\.1:\d+/)", line).group(1)  # type: ignore[union-attr]
        with urllib.request.urlopen(url) as got:
            assert got.status == 200 and b"Rust project goals" in got.read()
        with urllib.request.urlopen(url + "updates.atom") as got:
            assert got.headers["Content-Type"] == "application/atom+xml"
    finally:
        serve.terminate()
        serve.wait(timeout=10)


def test_command_line_mistakes_are_one_line_and_change_nothing(
    program: Database, tmp_path: Path
) -> None:
    conf = write_conf(tmp_path, program)
    missing = run_cli(conf, "site", "build")
    assert missing.returncode == 2
    assert missing.stderr == (
        "zulip-goals-bot: error: no output folder: pass --output DIR or set [site] output in "
        "bot.conf\n"
    )
    period = run_cli(conf, "site", "build", "--output", str(tmp_path / "out"), "--period", "x")
    assert period.returncode == 2
    assert "--period 'x': no goals in that period (periods: 2025h1)" in period.stderr
    assert not (tmp_path / "out").exists()
    nothing = run_cli(conf, "site", "serve", "--directory", str(tmp_path))
    assert nothing.returncode == 2
    assert "holds no built site (no index.html)" in nothing.stderr


def test_a_reader_never_sees_half_a_site(program: Database, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build(program, out)
    seen: list[str] = []
    problems: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                page = (out / "index.html").read_text(encoding="utf-8")
                data = (out / "goals.json").read_text(encoding="utf-8")
            except OSError as exc:  # the folder or a file missing for an instant
                problems.append(repr(exc))
                continue
            if not (page.endswith("</html>\n") and data.endswith("]}\n")):
                problems.append("a file read half written")
            seen.append(page)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for day in range(4):
            build(program, out, DIGEST_AT + timedelta(days=7 * day))
    finally:
        done.set()
        reader.join()
    assert problems == []
    assert len(set(seen)) > 1  # the reader saw builds change the site, and every read was whole


@pytest.mark.sqlite_only
def test_the_sandbox_site_command_explains_a_folder_it_cannot_use(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    temp = tmp_path / "tmp"
    temp.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "zulip_goals_bot.cli", "sandbox", "--script", "-"],
        input=f"/site {mine}\n",
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    assert done.returncode == 1
    assert f"  · No site: {mine} already holds files that a site build did not make" in done.stdout
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
