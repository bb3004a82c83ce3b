"""What every handler needs to know about the running bot, in one small value."""

from __future__ import annotations

from dataclasses import dataclass

from zulip_goals_bot.clock import Clock
from zulip_goals_bot.config import Config
from zulip_goals_bot.db.engine import Database
from zulip_goals_bot.domain.markdown import StreamRef, stream_ref
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.schedule import Slot


@dataclass(frozen=True, slots=True)
class Context:
    config: Config
    db: Database
    clock: Clock
    site: str  # the Zulip server's URL, for links
    bot_user_id: int
    bot_name: str
    # The streams whose ids the bot looked up at start-up (the goals and digest streams), so
    # that links name them by id; see ``markdown.topic_link``.
    streams: tuple[StreamRef, ...] = ()

    @property
    def program(self) -> Program:
        return Program.from_config(self.config)

    @property
    def slot(self) -> Slot:
        return self.program.slot

    def stream(self, name: str) -> StreamRef:
        """The stream called ``name``, as links name it."""
        return stream_ref(name, self.streams)

    def is_admin_email(self, email: str | None) -> bool:
        return bool(email) and str(email).lower() in self.config.admins
