"""Which earlier goal a new goal file continues: the rule ``--rollover`` imports by.

Pure: it compares a parsed goal file with plain descriptions of earlier goals.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from zulip_goals_bot.goals.files import GoalDoc


class Candidate(Protocol):
    """What matching needs to know of an earlier goal."""

    @property
    def id(self) -> int: ...

    @property
    def period(self) -> str: ...

    @property
    def slug(self) -> str: ...

    @property
    def tracking_issue(self) -> int | None: ...


def continued_goal(
    doc: GoalDoc, earlier: Sequence[Candidate], taken: Collection[int]
) -> Candidate | None:
    """The earlier goal ``doc`` continues, if any: one its "continuation of" links name (a
    page of an earlier period, or a tracking issue), else one with the same tracking issue.

    ``taken`` are ids already continued by another file, so two files never take one goal.
    """
    # The most recent goal first: an issue carried over several periods continues its last one.
    free = sorted((g for g in earlier if g.id not in taken), key=lambda g: -g.id)
    for ref in doc.continues:
        for g in free:
            by_page = ref.slug is not None and ref.slug.casefold() == g.slug.casefold()
            if by_page and ref.period is not None and ref.period.casefold() != g.period.casefold():
                by_page = False
            if by_page or (ref.issue is not None and ref.issue == g.tracking_issue):
                return g
    if doc.tracking_issue is not None:
        return next((g for g in free if g.tracking_issue == doc.tracking_issue), None)
    return None
