"""Running one command: check who may use it, open one transaction, call its handler,
apply what it decided.

Anything a person got wrong raises ``CommandError`` before anything is written, so the answer
explains the problem and nothing in the database changes.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from zulip_goals_bot.bot.context import Context
from zulip_goals_bot.commands.admins import (
    cmd_cadence,
    cmd_goal,
    cmd_map,
    cmd_owners,
    cmd_retire,
    cmd_subscribers,
)
from zulip_goals_bot.commands.answers import Reply, help_text, unknown_text
from zulip_goals_bot.commands.call import Call, Reader, Writer
from zulip_goals_bot.commands.execute import apply, check_untouched
from zulip_goals_bot.commands.grammar import ADMINS, SPEC_BY_NAME, UNKNOWN, Command
from zulip_goals_bot.commands.owners import (
    cmd_away,
    cmd_back,
    cmd_move,
    cmd_skip,
    cmd_transition,
    cmd_undo,
)
from zulip_goals_bot.commands.readers import (
    cmd_about,
    cmd_history,
    cmd_iam,
    cmd_list,
    cmd_mine,
    cmd_overdue,
    cmd_status,
    cmd_subscribe,
    cmd_unsubscribe,
)
from zulip_goals_bot.db.models import (
    Person,
)
from zulip_goals_bot.domain.setting import Moment
from zulip_goals_bot.domain.views import SenderInfo
from zulip_goals_bot.errors import CommandError
from zulip_goals_bot.people.accounts import ensure_people


def _sender_is_admin(ctx: Context, session: Session, sender: SenderInfo) -> bool:
    if sender.is_realm_admin or ctx.setting.is_admin_email(sender.email):
        return True
    flag = session.execute(
        select(Person.is_admin).where(Person.zulip_user_id == sender.user_id)
    ).scalar_one_or_none()
    return bool(flag)


def handle(
    ctx: Context, sender: SenderInfo, command: Command, *, in_topic: tuple[str, str] | None
) -> Reply:
    """Run one command; a refused or mistaken request changes nothing.

    A command that only reads runs in a read transaction (it never waits for a writer); one
    that changes something runs in one write transaction, where its handler reads and decides
    and ``execute.apply`` then writes the effects it returned.
    Raises ``StorageError`` only when the database itself is unavailable.
    """
    if command.name == "help":
        return Reply.of([help_text(ctx.setting.bot_name)])
    if command.name == UNKNOWN:
        return Reply.of([unknown_text(command, ctx.setting.bot_name)])
    spec = SPEC_BY_NAME[command.name]
    now = ctx.clock.now()
    moment = ctx.setting.at(now)
    reader = READERS.get(command.name)
    try:
        if reader is not None:
            blocks = _read(ctx, sender, command, in_topic, moment, reader)
            if blocks is not None:
                return Reply.of(blocks, sep="\n\n")
        with ctx.db.write() as session:
            admin = _sender_is_admin(ctx, session, sender)
            if spec.group == ADMINS and not admin:
                used = "goal add" if spec.name == "goal" else spec.name
                raise CommandError(
                    f"Sorry, only bot admins can use `{used}`; nothing was changed. "
                    "Say `about` to see who the admins are."
                )
            me = ensure_people(session, [sender], now)[sender.user_id]
            call = Call(session, sender, me, admin, in_topic, moment)
            if reader is not None:  # the sender's first command: only their row is written
                blocks = reader(call, command)
            else:
                answer = WRITERS[command.name](call, command)
                check_untouched(session, command.name)
                apply(session, answer.effects, now=now)
                blocks = list(answer.blocks)
    except CommandError as exc:
        return Reply.of([str(exc)])
    return Reply.of(blocks, sep="\n\n")


def _read(
    ctx: Context,
    sender: SenderInfo,
    command: Command,
    in_topic: tuple[str, str] | None,
    moment: Moment,
    reader: Reader,
) -> list[str] | None:
    """A command that only reads, in a read transaction; None when the sender is new to the
    bot, whose first command records them (the write path)."""
    with ctx.db.read() as session:
        me = session.execute(
            select(Person).where(Person.zulip_user_id == sender.user_id)
        ).scalar_one_or_none()
        if me is None:
            return None
        admin = _sender_is_admin(ctx, session, sender)
        return reader(Call(session, sender, me, admin, in_topic, moment), command)


# The commands that only read: answered in a read transaction, which never waits for a writer.
READERS: Mapping[str, Reader] = {
    "status": cmd_status,
    "history": cmd_history,
    "list": cmd_list,
    "mine": cmd_mine,
    "overdue": cmd_overdue,
    "about": cmd_about,
}

# The commands that may change something: their handlers return the effects.
WRITERS: Mapping[str, Writer] = {
    "subscribe": cmd_subscribe,
    "unsubscribe": cmd_unsubscribe,
    "iam": cmd_iam,
    "skip": cmd_skip,
    "away": cmd_away,
    "back": cmd_back,
    "pause": cmd_transition,
    "resume": cmd_transition,
    "complete": cmd_transition,
    "undo": cmd_undo,
    "move": cmd_move,
    "goal": cmd_goal,
    "owners": cmd_owners,
    "cadence": cmd_cadence,
    "retire": cmd_retire,
    "map": cmd_map,
    "subscribers": cmd_subscribers,
}
