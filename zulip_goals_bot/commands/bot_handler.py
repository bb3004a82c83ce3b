"""The bot's command handler, in the zulip_bots handler protocol.

The running bot answers every command through ``GoalsBotHandler.handle_message`` with a
bot-handler object of its own (``app.ReplyCollector``), and the tests drive the same handler with
zulip_bots' ``StubBotHandler``, as the bots of zulip_bots are tested.
"""

from __future__ import annotations

from typing import Any

from zulip_bots.lib import AbstractBotHandler

from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.commands.answers import help_text
from zulip_goals_bot.commands.dispatch import handle
from zulip_goals_bot.commands.grammar import Command, parse
from zulip_goals_bot.domain.views import SenderInfo


class GoalsBotHandler:
    """Parses a message into a command, runs it, and sends the reply parts in order.

    A database that cannot be reached raises ``StorageError`` out of ``handle_message`` and
    nothing is sent: the running bot answers the command after it recovers.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def usage(self) -> str:
        return (
            "Goals Bot asks goal owners for progress updates and answers questions about goals.\n\n"
            + help_text(self.ctx.setting.bot_name)
        )

    def initialize(self, bot_handler: AbstractBotHandler) -> None:
        """Nothing to set up: everything lives in the Context."""

    def handle_message(self, message: dict[str, Any], bot_handler: AbstractBotHandler) -> None:
        self.answer(message, bot_handler, None)

    def answer(
        self,
        message: dict[str, Any],
        bot_handler: AbstractBotHandler,
        command: Command | None,
    ) -> None:
        """Answer a message; ``command`` as the bot's routing parsed it (else it is parsed
        here, as for a message that reached the handler some other way)."""
        sender = SenderInfo(
            user_id=int(message["sender_id"]),
            email=str(message.get("sender_email", "")),
            full_name=str(message.get("sender_full_name", "")),
        )
        recipient = message.get("display_recipient")
        is_stream = message.get("type", "stream" if isinstance(recipient, str) else "private") in (
            "stream",
            "channel",
        )
        topic = str(message.get("subject", message.get("topic", "")))
        in_topic = (str(recipient), topic) if is_stream and topic else None
        if command is None:
            command = parse(str(message.get("content", "")), bot_name=self.ctx.setting.bot_name)
        reply = handle(self.ctx, sender, command, in_topic=in_topic)
        for text in reply.messages:
            bot_handler.send_reply(message, text)
