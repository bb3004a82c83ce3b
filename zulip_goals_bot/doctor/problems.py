"""Set-up problems an admin must act on, stored by ``run`` at start-up and listed by the
weekly digest under "Needs attention"."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from zulip_goals_bot.doctor.report import Check
from zulip_goals_bot.domain.markdown import neutralize

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# BotState key of the problems found at the last start, read by the digest.
SETUP_PROBLEMS_KEY = "setup_problems"


def attention_lines(problems: Sequence[Mapping[str, str]]) -> list[str]:
    """Stored problems as digest list items, safe to post (nothing in them can ping)."""
    return [
        f"- {p.get('mark', '!')} {neutralize(p.get('summary', ''))} "
        f"(fix: {neutralize(p.get('fix', ''))})"
        for p in problems
    ]


def store_problems(session: Session, checks: Iterable[Check], now: datetime) -> None:
    from zulip_goals_bot.db.models import BotState

    wanted = [
        {"check": c.key, "mark": c.status.mark, "summary": c.summary, "fix": c.fix}
        for c in checks
        if c.admin_must_act
    ]
    session.merge(BotState(key=SETUP_PROBLEMS_KEY, value=json.dumps(wanted), updated_at=now))


def load_problems(session: Session) -> list[dict[str, str]]:
    from zulip_goals_bot.db.models import BotState

    row = session.get(BotState, SETUP_PROBLEMS_KEY)
    if row is None:
        return []
    try:
        loaded = json.loads(row.value)
    except ValueError:
        return []
    return [p for p in loaded if isinstance(p, dict)] if isinstance(loaded, list) else []
