"""Tests for the goal Markdown parser, against the real goal files and synthetic edge cases."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zulip_goals_bot.goals.files import (
    GoalDoc,
    GoalFileError,
    GoalStatus,
    Problem,
    ProblemKind,
    handles_in,
    is_index_page,
    parse_goal,
    read_goal_files,
)

DATA = Path(__file__).resolve().parent / "data" / "rust-project-goals"
HALVES = ("2024h2", "2025h1")
INDEX_PAGES = {
    "2024h2": {"README", "accepted", "candidates", "flagship", "goals", "not_accepted", "notes"},
    "2025h1": {"README", "goals", "not_accepted"},
}


def _data_files() -> list[Path]:
    if not DATA.is_dir():
        return []
    return sorted(p for half in HALVES for p in (DATA / half).glob("*.md"))


def _goal_files() -> list[Path]:
    return [p for p in _data_files() if p.stem not in INDEX_PAGES[p.parent.name]]


def _load(half: str, slug: str) -> GoalDoc:
    return parse_goal((DATA / half / f"{slug}.md").read_text(encoding="utf-8"), slug)


def _row(text: str, key: str) -> str | None:
    """The value of a metadata row, found with a plain regex independent of the parser."""
    m = re.search(rf"^\|\s*{key}\s*\|(.*)\|\s*$", text, re.M)
    return m.group(1).strip() if m else None


# ---------------------------------------------------------------------------------------------
# Real data


def test_whole_folders_load_with_only_index_pages_skipped() -> None:
    docs, problems = read_goal_files([DATA / half for half in HALVES])
    assert all(p.is_skip for p in problems), [p for p in problems if not p.is_skip]
    skipped = {(Path(p.path).parent.name, Path(p.path).stem) for p in problems}
    assert skipped == {(half, name) for half, names in INDEX_PAGES.items() for name in names}
    loaded = {(path.parent.name, doc.slug) for path, doc in docs}
    assert loaded == {(p.parent.name, p.stem) for p in _goal_files()}
    assert len(docs) == 31 + 42


@pytest.mark.parametrize("path", _goal_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_goal_file_matches_its_own_text(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    doc = parse_goal(text, path.stem)
    assert doc.slug == path.stem

    heading = re.search(r"^#{1,2} +(.+?)\s*$", text, re.M)
    assert heading is not None
    assert doc.title == heading.group(1)

    status = _row(text, "Status")
    assert status is not None
    assert doc.status_text == status
    assert doc.status.value.casefold() == status.casefold()

    tracking = _row(text, "Tracking issue")
    if tracking is None:
        assert doc.tracking_issue is None
    else:
        number = re.search(r"#(\d+)", tracking)
        assert number is not None
        assert doc.tracking_issue == int(number.group(1))
        assert doc.tracking_url is not None
        assert doc.tracking_url.startswith("https://github.com/")
        assert doc.tracking_url.endswith(f"/issues/{number.group(1)}")

    owner_cells = [_row(text, key) for key in ("Point of contact", r"Owner\(s\)", "Owners")]
    mentioned = [h for cell in owner_cells if cell for h in re.findall(r"@([\w-]+)", cell)]
    assert mentioned, "every real goal names a point of contact"
    for handle in mentioned:
        assert handle in doc.owners
    assert not set(doc.task_owners) & set(doc.owners)
    assert all(team == team.lower() for team in doc.teams)
    assert doc.warnings == ()


@pytest.mark.parametrize(
    "path",
    [p for p in _data_files() if p.stem in INDEX_PAGES[p.parent.name]],
    ids=lambda p: f"{p.parent.name}/{p.stem}",
)
def test_index_pages_are_not_goals(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert is_index_page(path.stem, text)
    with pytest.raises(GoalFileError) as info:
        parse_goal(text, path.stem)
    assert info.value.kind is ProblemKind.NOT_A_GOAL


def test_flagship_from_2024h2() -> None:
    doc = _load("2024h2", "rfl_stable")
    assert doc.title == "Resolve the biggest blockers to Linux building on stable Rust"
    assert doc.short_title == "Rust-for-Linux"
    assert doc.status is GoalStatus.ACCEPTED
    assert doc.flagship == "Yes" and doc.is_flagship
    assert doc.owners == ("nikomatsakis",)
    assert doc.owners_text == "@nikomatsakis"
    assert doc.tracking_issue == 116
    assert doc.tracking_url == "https://github.com/rust-lang/goals/issues/116"
    assert doc.zulip_channel == "#rust-for-linux"
    assert doc.zulip_url == "https://rust-lang.zulipchat.com/#narrow/channel/425075-rust-for-linux/"
    assert {"joshtriplett", "Darksonn"} <= set(doc.task_owners)
    assert {"lang", "compiler"} <= set(doc.teams)


def test_level_two_title_and_struck_out_owner_in_2024h2_async() -> None:
    doc = _load("2024h2", "async")
    assert doc.title == "Bring the Async Rust experience closer to parity with sync Rust"
    assert (doc.short_title, doc.flagship) == ("Async", "Yes")
    assert doc.task_owners == ("nikomatsakis", "compiler-errors", "spastorino")
    assert doc.teams == ("lang", "libs", "libs-api", "compiler")


def test_2025h1_goal_with_zulip_channel_reference_link() -> None:
    doc = _load("2025h1", "perf-improvements")
    assert doc.title == "rustc-perf improvements"
    assert doc.owners == ("davidtwco",)
    assert doc.zulip_channel == "#goals/2025h1/rustc-perf-improvements"
    assert doc.zulip_url == (
        "https://rust-lang.zulipchat.com/#narrow/channel/"
        "478771-goals.2F2025h1.2Frustc-perf-improvements"
    )
    assert doc.tracking_issue == 275
    assert doc.task_owners == ("Jamesbarford", "Kobzol")


def test_2025h1_flagship_theme_and_prose_task_owners() -> None:
    assert _load("2025h1", "arm-sve-sme").flagship == "Unblocking dormant traits"
    doc = _load("2025h1", "all-hands")
    assert doc.flagship == "Yes"
    # Task owners here are mostly prose ("Rust Foundation", "*all participants*"), and
    # [RustNL] is a link defined in the file, so it is not a team.
    assert doc.task_owners == ()
    assert doc.teams == ("leadership-council",)


def test_real_rows_without_fields_and_not_applicable_values() -> None:
    assert _load("2024h2", "user-wide-cache").extra == {"Needs": "Contributor"}
    assert _load("2025h1", "GPU-Offload").extra == {
        "Other tracking issues": "[rust-lang/rust#124509], [rust-lang/rust#124509]"
    }
    cargo_script = _load("2025h1", "cargo-script")
    assert (cargo_script.zulip_channel, cargo_script.zulip_url) == (None, None)
    not_accepted = _load("2024h2", "Contracts-and-invariants")
    assert not_accepted.status is GoalStatus.NOT_ACCEPTED
    assert (not_accepted.tracking_issue, not_accepted.tracking_url) == (None, None)


# ---------------------------------------------------------------------------------------------
# Synthetic cases


def goal(*rows: str, title: str = "# A goal", after: str = "") -> str:
    table = "\n".join(["| Metadata | |", "|---|---|", *rows])
    return f"{title}\n\n{table}\n\n## Summary\n\nText.\n{after}"


def test_unknown_rows_are_kept_in_order() -> None:
    doc = parse_goal(
        goal(
            "| Point of contact | @ghost |",
            "| Zeta | last letter |",
            "| Status | Accepted |",
            "| Help wanted | yes, see below |",
            "| Alpha | a \\| b |",
        ),
        "g",
    )
    assert list(doc.extra.items()) == [
        ("Zeta", "last letter"),
        ("Help wanted", "yes, see below"),
        ("Alpha", "a | b"),
    ]
    assert doc.owners == ("ghost",)
    assert doc.warnings == ()


def test_no_metadata_table() -> None:
    with pytest.raises(GoalFileError) as info:
        parse_goal("# Title\n\nJust prose, | with a pipe.\n", "g")
    assert info.value.kind is ProblemKind.NO_METADATA
    assert "Metadata" in info.value.detail


def test_commented_out_table_does_not_count() -> None:
    text = "# Title\n<!--\n| Metadata | |\n|---|---|\n| Status | Accepted |\n-->\n"
    with pytest.raises(GoalFileError) as info:
        parse_goal(text, "g")
    assert info.value.kind is ProblemKind.NO_METADATA


def test_no_title() -> None:
    with pytest.raises(GoalFileError) as info:
        parse_goal(goal("| Status | Accepted |", title="Some intro text"), "g")
    assert info.value.kind is ProblemKind.NO_TITLE
    assert str(info.value) == info.value.detail


def test_malformed_row_is_a_warning() -> None:
    doc = parse_goal(
        goal(
            "| Point of contact | @ghost |",
            "| Tracking issue [rust-lang/goals#5] |",
            "| Status | Accepted |",
            "| Short title | Ghosts",
        ),
        "g",
    )
    assert doc.status is GoalStatus.ACCEPTED
    assert doc.short_title == "Ghosts"
    assert doc.tracking_issue is None
    assert any("malformed metadata row" in w and "line 6" in w for w in doc.warnings)
    assert any("'Short title' is missing" in w for w in doc.warnings)


def test_malformed_status_row_is_fatal() -> None:
    with pytest.raises(GoalFileError) as info:
        parse_goal(goal("| Point of contact | @ghost |", "| Status Accepted |"), "g")
    assert info.value.kind is ProblemKind.MALFORMED_ROW
    assert "| Status | Accepted |" in info.value.detail


def test_missing_status_is_fatal() -> None:
    with pytest.raises(GoalFileError) as info:
        parse_goal(goal("| Point of contact | @ghost |", "| Status |  |"), "g")
    assert info.value.kind is ProblemKind.MALFORMED_ROW


def test_level_two_heading_and_setext_heading() -> None:
    assert parse_goal(goal("| Status | Proposed |", title="## Two `hashes` ##"), "g").title == (
        "Two `hashes`"
    )
    assert parse_goal(goal("| Status | Proposed |", title="Setext\n======"), "g").title == "Setext"


def test_flagship_theme_names() -> None:
    theme = parse_goal(goal("| Status | Accepted |", "| Flagship | Beyond the `&` |"), "g")
    assert theme.flagship == "Beyond the `&`"
    assert theme.status is GoalStatus.ACCEPTED
    by_status = parse_goal(goal("| Status | Flagship |"), "g")
    assert (by_status.status, by_status.flagship) == (GoalStatus.FLAGSHIP, "Yes")
    assert parse_goal(goal("| Status | Accepted |", "| Flagship | No |"), "g").flagship is None
    assert parse_goal(goal("| Status | Accepted |", "| Flagship | yes |"), "g").flagship == "Yes"


@pytest.mark.parametrize(
    ("cell", "number", "url"),
    [
        (
            "https://github.com/rust-lang/rust-project-goals/issues/42",
            42,
            "https://github.com/rust-lang/rust-project-goals/issues/42",
        ),
        (
            "[rust-lang/rust-project-goals#123]",
            123,
            "https://github.com/rust-lang/rust-project-goals/issues/123",
        ),
        (
            "[rust-lang/goals#7](https://github.com/rust-lang/goals/issues/7)",
            7,
            "https://github.com/rust-lang/goals/issues/7",
        ),
        ("[rust-lang/goals#8][ti]", 8, "https://example.org/issue-eight"),
        ("#9", 9, None),
        ("N/A", None, None),
        ("TBD", None, None),
    ],
)
def test_tracking_issue_forms(cell: str, number: int | None, url: str | None) -> None:
    text = goal("| Status | Accepted |", f"| Tracking issue | {cell} |")
    doc = parse_goal(text + "\n[ti]: https://example.org/issue-eight\n", "g")
    assert (doc.tracking_issue, doc.tracking_url) == (number, url)


def test_duplicate_rows_keep_the_first() -> None:
    doc = parse_goal(
        goal("| Status | Accepted |", "| Status | Not accepted |", "| Foo | 1 |", "| foo | 2 |"),
        "g",
    )
    assert doc.status is GoalStatus.ACCEPTED
    assert doc.extra == {"Foo": "1"}
    assert "duplicate row 'Status'; the first one is used" in doc.warnings
    assert "duplicate row 'foo'; the first one is used" in doc.warnings


def test_old_owner_rows_prose_links_and_help_wanted() -> None:
    prose = "Github usernames or other identifying info for goal owners"
    doc = parse_goal(goal(f"| Owner(s) | {prose} |", "| Status | Proposed |"), "g")
    assert (doc.owners, doc.owners_text) == ((), prose)
    assert any("names no GitHub @handle" in w for w in doc.warnings)

    doc = parse_goal(
        goal(
            "| Owners | [@Alice](https://github.com/Alice), @bob-2, @alice, [Help wanted][] |",
            "| Status | Proposed |",
        ),
        "g",
    )
    assert doc.owners == ("Alice", "bob-2")
    assert (
        parse_goal(goal("| Owner(s) | [Help wanted][] |", "| Status | Proposed |"), "g").owners
        == ()
    )


def test_teams_row_and_placeholders() -> None:
    doc = parse_goal(
        goal("| Status | Accepted |", "| Teams | [lang], [Compiler], T-libs-api |"), "g"
    )
    assert doc.teams == ("lang", "compiler", "libs-api")
    doc = parse_goal(
        goal(
            "| Status | Accepted |",
            "| Teams | <!-- TEAMS WITH ASKS --> |",
            "| Task owners | <!-- TASK OWNERS --> |",
            "| Zulip channel | N/A |",
        ),
        "g",
    )
    assert (doc.teams, doc.task_owners, doc.zulip_channel, doc.extra) == ((), (), None, {})


OWNERSHIP = """
## Ownership and team asks

**Owner:** @lead and @helper

Prose that mentions @bystander is not an assignment.

| Task             | Owner(s) or team(s)          | Notes            |
|------------------|------------------------------|------------------|
| Implementation   | @Worker, @lead               | reviewed by @nit |
| ~~Old work~~     | ~~@gone~~                    | ![Complete][]    |
| RFC decision     | ![Team][] [lang], [types][]  |                  |
| Reviews          | ![Team] [compiler]           |                  |
| Venue            | [VenueCo], [infra]           |                  |
| Later            | ![Help wanted][] {{ @tmpl }} | <!-- @hidden --> |
| Tracking         | <!-- @commented -->          |                  |

### Sub-part

| Task | Owner(s) or team(s) | Notes |
|------|---------------------|-------|
| More | @worker, @Third     |       |

## Frequently asked questions

| Task | Owner(s) or team(s) | Notes |
|------|---------------------|-------|
| Not here | @faq-person      |       |

[VenueCo]: https://venue.example
"""


def test_ownership_section_task_owners_and_teams() -> None:
    doc = parse_goal(
        goal("| Point of contact | @Lead |", "| Status | Accepted |", after=OWNERSHIP), "g"
    )
    assert doc.owners == ("Lead",)
    assert doc.task_owners == ("helper", "Worker", "Third")
    assert doc.teams == ("lang", "types", "compiler", "infra")


def test_zulip_channel_forms() -> None:
    def channel(cell: str) -> tuple[str | None, str | None]:
        doc = parse_goal(goal("| Status | Accepted |", f"| Zulip channel | {cell} |"), "g")
        return doc.zulip_channel, doc.zulip_url

    assert channel("[#t-lang](https://z.example/#narrow/channel/1-t-lang)") == (
        "#t-lang",
        "https://z.example/#narrow/channel/1-t-lang",
    )
    assert channel("#t-lang") == ("#t-lang", None)
    assert channel("https://z.example/x") == ("https://z.example/x", "https://z.example/x")
    assert channel("N/A (ask in #general)") == (None, None)
    assert channel(" ") == (None, None)


def test_bom_and_crlf() -> None:
    text = "\ufeff" + goal("| Point of contact | @a |", "| Status | Accepted |").replace(
        "\n", "\r\n"
    )
    doc = parse_goal(text, "g")
    assert (doc.title, doc.owners, doc.status) == ("A goal", ("a",), GoalStatus.ACCEPTED)


def test_read_goal_files_reports_problems(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text(goal("| Status | Accepted |"), encoding="utf-8")
    (tmp_path / "bad.md").write_bytes(b"# Caf\xe9\n\n| Metadata | |\n")
    (tmp_path / "README.md").write_text("# Goals\n\n(((GOALS)))\n", encoding="utf-8")
    (tmp_path / "prose.md").write_text("# Just prose\n", encoding="utf-8")
    (tmp_path / "ignored.txt").write_text("not markdown", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.md").write_text(goal("| Status | Accepted |"), encoding="utf-8")
    missing = tmp_path / "missing.md"

    docs, problems = read_goal_files([tmp_path, missing])
    assert [(path.name, doc.slug) for path, doc in docs] == [("good.md", "good")]
    kinds = {Path(p.path).name: p.kind for p in problems}
    assert kinds == {
        "README.md": ProblemKind.NOT_A_GOAL,
        "bad.md": ProblemKind.NOT_UTF8,
        "prose.md": ProblemKind.NO_METADATA,
        "missing.md": ProblemKind.UNREADABLE,
    }
    assert [p.is_skip for p in problems if p.kind is ProblemKind.NOT_A_GOAL] == [True]
    assert not Problem("x", ProblemKind.NOT_UTF8, "d").is_skip
    assert all(p.detail.endswith(".") for p in problems)

    docs, problems = read_goal_files([tmp_path / "sub" / "deep.md"])
    assert [doc.slug for _, doc in docs] == ["deep"] and problems == []


def test_is_index_page() -> None:
    for name in ("README", "SUMMARY", "goals", "accepted", "not_accepted", "notes", "flagship"):
        assert is_index_page(name, "# Anything\n")
    assert is_index_page("slate", "# Slate\n\n(((FLAGSHIP GOALS)))\n")
    assert not is_index_page("slate", "# Slate\n\n```\n(((GOALS)))\n```\n")
    with_table = goal("| Status | Accepted |", after="(((TEAM ASKS)))\n")
    assert not is_index_page("some-goal", with_table)
    assert not is_index_page("some-goal", "# Goal without table\n")


def test_goal_status_parse() -> None:
    assert GoalStatus.parse(" not  ACCEPTED ") is GoalStatus.NOT_ACCEPTED
    assert GoalStatus.parse("Not-accepted") is GoalStatus.NOT_ACCEPTED
    assert GoalStatus.parse("accepted") is GoalStatus.ACCEPTED
    assert GoalStatus.parse("FLAGSHIP") is GoalStatus.FLAGSHIP
    assert GoalStatus.parse("Proposed") is GoalStatus.PROPOSED
    assert GoalStatus.parse("Invited") is GoalStatus.OTHER
    assert GoalStatus.parse("") is GoalStatus.OTHER
    doc = parse_goal(goal("| Status | **Withdrawn** |"), "g")
    assert doc.status is GoalStatus.OTHER and doc.status_text == "**Withdrawn**"


def test_handles_in() -> None:
    text = (
        "@ok, [@Linked](https://github.com/Linked) mail me@example.com see "
        "https://tech.example/@toot @rust-lang/lang @-bad @two--hyphens @trailing- "
        "@OK again (@paren) @" + "a" * 39 + " @" + "b" * 40
    )
    assert handles_in(text) == ("ok", "Linked", "paren", "a" * 39)
    assert handles_in("") == ()


LINES = st.sampled_from(
    [
        "# Title",
        "## Title",
        "Title",
        "=====",
        "| Metadata | |",
        "| Metadata |",
        "|---|---|",
        "| Status | Accepted |",
        "| Status | |",
        "| Status Accepted |",
        "| Tracking issue | [rust-lang/goals#12] |",
        "| Tracking issue | #99999999999999999999 |",
        "| Zulip channel | [#x][channel] |",
        "| Teams | [lang] <!-- x |",
        "| Point of contact | @a |",
        "| Flagship | Yes |",
        "## Ownership and team asks",
        "| Task | Owner(s) or team(s) | Notes |",
        "| x | ![Team][] [lang] ~~@b~~ | |",
        "**Owner:** @c",
        "[channel]: https://z.example/",
        "<!--",
        "-->",
        "```",
        "(((GOALS)))",
        "",
    ]
)


@settings(max_examples=300)
@given(st.one_of(st.text(), st.lists(st.one_of(LINES, st.text(max_size=20))).map("\n".join)))
def test_parse_goal_only_raises_goal_file_error(text: str) -> None:
    try:
        doc = parse_goal(text, "fuzz")
    except GoalFileError as exc:
        assert isinstance(exc.kind, ProblemKind) and exc.detail
    else:
        assert doc.title and isinstance(doc.status, GoalStatus)
