"""The running bot as its decisions see it: who it is, where, and the program it runs.

One value, made once at start-up, is what routing, storing and commands read their settings
from (``Setting``); an answer is computed at one instant of it (``Moment``).  The shell's
``Context`` adds the database and the clock to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from zulip_goals_bot.config import Config
from zulip_goals_bot.domain.markdown import StreamRef, stream_ref
from zulip_goals_bot.domain.program import Program
from zulip_goals_bot.domain.schedule import DueState, Slot
from zulip_goals_bot.domain.views import GoalView


@dataclass(frozen=True, slots=True)
class Setting:
    config: Config
    site: str  # the Zulip server's URL, for links
    bot_user_id: int
    bot_name: str
    # The streams whose ids the bot looked up at start-up (the goals and digest streams), so
    # that links name them by id; see ``markdown.topic_link``.
    streams: tuple[StreamRef, ...] = ()
    program: Program = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "program", Program.from_config(self.config))

    @property
    def goals_stream(self) -> StreamRef:
        """The stream with one topic per goal."""
        return self.stream(self.config.stream)

    @property
    def update_window(self) -> timedelta:
        """Owner messages this close together form one update: a follow-up keeps the TL;DR
        and help-wanted lines of the message before it, a DM naming no goal is filed with the
        goal updated just before, and `undo` works this long."""
        return timedelta(minutes=self.config.update_window_minutes)

    @property
    def slot(self) -> Slot:
        return self.program.slot

    def stream(self, name: str) -> StreamRef:
        """The stream called ``name``, as links name it."""
        return stream_ref(name, self.streams)

    def is_admin_email(self, email: str | None) -> bool:
        return bool(email) and str(email).lower() in self.config.admins

    def at(self, now: datetime) -> Moment:
        return Moment(self, now)


@dataclass(frozen=True, slots=True)
class Moment:
    """The setting at the instant an answer is computed for."""

    setting: Setting
    now: datetime

    @property
    def config(self) -> Config:
        return self.setting.config

    @property
    def site(self) -> str:
        return self.setting.site

    @property
    def program(self) -> Program:
        return self.setting.program

    def stream(self, name: str) -> StreamRef:
        return self.setting.stream(name)

    @property
    def goals_stream(self) -> StreamRef:
        return self.setting.goals_stream

    @property
    def slot(self) -> Slot:
        return self.program.slot

    @property
    def today(self) -> date:
        return self.program.today(self.now)

    def cadence(self, goal: GoalView) -> int:
        return self.program.cadence(goal)

    def due(self, goal: GoalView) -> DueState:
        return self.program.state(goal, self.now)

    def next_prompt(self, goal: GoalView) -> datetime | None:
        return self.program.next_prompt(goal, self.now)
