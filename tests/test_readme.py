"""The README cannot drift from the code: commands, chat commands and config keys are all there."""

from __future__ import annotations

from pathlib import Path

from zulip_goals_bot.cli import build_parser
from zulip_goals_bot.commands.grammar import SPECS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8").replace("\\|", "|")


def test_every_chat_command_is_documented() -> None:
    for spec in SPECS:
        assert spec.syntax in README, spec.syntax


def test_every_cli_command_is_documented() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    choices = getattr(sub, "choices", {})
    for name, subparser in choices.items():
        assert f"zulip-goals-bot {name}" in README, name
        nested = [a for a in subparser._actions if getattr(a, "choices", None)]
        for action in nested:
            for child in action.choices:
                assert f"zulip-goals-bot {name} {child}" in README, (name, child)


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```sh\n")[1:]
    return [b.split("```", 1)[0].strip() for b in blocks]


def test_quick_start_is_two_commands_and_the_offline_parts_run(tmp_path: Path) -> None:
    import subprocess
    import sys

    commands = quick_start_commands()
    assert len(commands) == 2
    assert commands[1].endswith(".venv/bin/python -m pytest -q")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pytest -q" in ci
    # The sandbox step, as written, with no terminal: it starts, reaches EOF and exits cleanly.
    step = commands[0].split("&&")[-1].strip()
    assert step == ".venv/bin/zulip-goals-bot sandbox"
    result = subprocess.run(
        [sys.executable, "-m", "zulip_goals_bot.cli", "sandbox"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "sandbox" in result.stdout.lower()
    demo = subprocess.run(
        [sys.executable, "-m", "zulip_goals_bot.cli", "sandbox", "--script", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert demo.returncode == 0, demo.stderr
    assert "Weekly goals digest" in demo.stdout
