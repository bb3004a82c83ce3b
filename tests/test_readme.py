"""The README cannot drift from the code: commands, chat commands and config keys are all there."""

from __future__ import annotations

from pathlib import Path

from zulip_goals_bot.cli import build_parser
from zulip_goals_bot.commands import SPECS

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
