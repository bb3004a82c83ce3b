"""The running bot for the shell: its setting, and the database and clock it acts with."""

from __future__ import annotations

from dataclasses import dataclass

from zulip_goals_bot.clock import Clock
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.setting import Setting


@dataclass(frozen=True, slots=True)
class Context:
    setting: Setting  # who the bot is, where, and its program: all the pure core is given
    db: Database
    clock: Clock

    @property
    def config(self) -> Config:
        return self.setting.config

    @property
    def program(self) -> Program:
        return self.setting.program
