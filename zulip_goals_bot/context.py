"""What every handler needs to know about the running bot, in one small value."""

from __future__ import annotations

from dataclasses import dataclass

from .clock import Clock
from .config import Config
from .db import Database
from .schedule import Slot


@dataclass(frozen=True, slots=True)
class Context:
    config: Config
    db: Database
    clock: Clock
    site: str  # the Zulip server's URL, for links
    bot_user_id: int
    bot_name: str

    @property
    def slot(self) -> Slot:
        s = self.config.schedule
        return Slot(weekday=s.weekday, at=s.at, tz=self.config.timezone)

    def is_admin_email(self, email: str | None) -> bool:
        return bool(email) and str(email).lower() in self.config.admins
