"""A goal's progress as its tracking issue's task list shows it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Progress:
    """A tracking issue's task list: how many of its ``- [ ]`` items are ticked, and the rest."""

    done: int
    total: int
    open_tasks: tuple[str, ...] = ()

    def __str__(self) -> str:
        if not self.total:
            return "no task list"
        return f"{self.done} of {self.total} tasks done"

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    @property
    def percent(self) -> int:
        return round(100 * self.fraction)
