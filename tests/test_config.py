"""bot.conf loading: defaults, validation messages, and the example file kept in step with KEYS."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from zulip_goals_bot.config import KEYS, load_config, render_example
from zulip_goals_bot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bot.conf"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_file_is_generated_from_the_keys_the_code_reads() -> None:
    assert (ROOT / "bot.conf.example").read_text(encoding="utf-8") == render_example()


def test_every_key_of_the_example_is_read_and_every_read_key_is_in_the_example() -> None:
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(ROOT / "bot.conf.example", encoding="utf-8")
    in_example = {(s, k) for s in parser.sections() for k in parser.options(s)}
    declared = {(k.section, k.name) for k in KEYS}
    assert in_example == declared
    source = "\n".join(p.read_text() for p in (ROOT / "zulip_goals_bot").rglob("*.py"))
    for key in KEYS:
        assert f'"{key.section}", "{key.name}"' in source, f"{key.name} is never read"


def test_the_example_loads_with_its_defaults(tmp_path: Path) -> None:
    conf = write(tmp_path, render_example())
    config = load_config(conf)
    assert config.stream == "project-goals"
    assert config.schedule.weekday == 3
    assert config.schedule.at == time(14, 0)
    assert config.digest.stream == "project-goals"
    assert config.database_url == f"sqlite:///{tmp_path / '.' / 'goals.sqlite3'}"
    assert config.zuliprc == tmp_path / "zuliprc"


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"bot\.conf: configuration file not found"):
        load_config(tmp_path / "bot.conf")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[goals]\ntimezone = Mars/Olympus\n", r"\[goals\] timezone = 'Mars/Olympus'.*IANA"),
        ("[schedule]\ncadence_weeks = 3\n", r"\[schedule\] cadence_weeks = '3'.*1, 2 or 4"),
        ("[schedule]\nweekday = someday\n", r"weekday = 'someday'.*weekday like thursday"),
        ("[schedule]\ntime = 25:99\n", r"\[schedule\] time = '25:99'.*a time like 14:00"),
        ("[schedule]\nprompt_via = carrier pigeon\n", r"prompt_via.*one of topic, dm, both"),
        ("[digest]\nenabled = maybe\n", r"\[digest\] enabled = 'maybe'.*true or false"),
        ("[goals]\nstreem = x\n", r"\[goals\] has an unknown key 'streem'"),
        ("[gaols]\nstream = x\n", r"unknown section \[gaols\]"),
        ("stream = x\n", r"not a valid INI file"),
        ("[goals]\ndatabase = goals.db\n", r"database = 'goals.db'.*database URL"),
    ],
)
def test_bad_values_name_file_section_key_and_expectation(
    tmp_path: Path, text: str, message: str
) -> None:
    conf = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(conf)
    assert str(conf) in str(info.value)
    assert "\n" not in str(info.value)


def test_readme_lists_every_key() -> None:
    from zulip_goals_bot.config import render_config_table

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert render_config_table() in readme
