"""The doctor's report: one ``Check`` per line (✓ / ! / ✗, and for a problem its fix), the
exit status, and the text or JSON printed (pure values)."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Checks whose problems the digest already lists in its own sections.
COVERED_BY_DIGEST = frozenset({"goals.owners", "owners.mapped"})
# Checks that report, rather than ask an admin to act.
INFORMATIONAL = frozenset({"owners.subscribed", "schedule"})


class Status(enum.Enum):
    """How a check came out; the order is the severity."""

    OK = 0
    WARN = 1
    ERROR = 2

    @property
    def mark(self) -> str:
        return {Status.OK: "✓", Status.WARN: "!", Status.ERROR: "✗"}[self]

    @property
    def label(self) -> str:
        return {Status.OK: "ok", Status.WARN: "warning", Status.ERROR: "error"}[self]


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: what was checked, how it came out, and how to fix a problem."""

    key: str  # stable name, e.g. "stream.subscribed" (JSON output, stored problems)
    status: Status
    summary: str
    fix: str = ""
    details: tuple[str, ...] = ()

    @property
    def admin_must_act(self) -> bool:
        """A problem someone with admin rights must fix, and the digest does not list already."""
        return (
            self.status is not Status.OK
            and self.key not in COVERED_BY_DIGEST
            and self.key not in INFORMATIONAL
        )

    def render(self) -> str:
        lines = [f"{self.status.mark} {self.summary}"]
        lines += [f"    {d}" for d in self.details]
        if self.fix and self.status is not Status.OK:
            lines.append(f"    fix: {self.fix}")
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "check": self.key,
            "status": self.status.label,
            "mark": self.status.mark,
            "summary": self.summary,
            "fix": self.fix if self.status is not Status.OK else "",
            "details": list(self.details),
        }


def ok(key: str, summary: str, *details: str) -> Check:
    return Check(key, Status.OK, summary, details=tuple(details))


def warn(key: str, summary: str, fix: str, *details: str) -> Check:
    return Check(key, Status.WARN, summary, fix, tuple(details))


def error(key: str, summary: str, fix: str, *details: str) -> Check:
    return Check(key, Status.ERROR, summary, fix, tuple(details))


def exit_status(checks: Iterable[Check]) -> int:
    """0 when all is well, 1 with warnings, 2 with errors."""
    return max((c.status.value for c in checks), default=0)


@dataclass(frozen=True, slots=True)
class Report:
    """Every check, and what ``--fix`` changed or could not change."""

    checks: tuple[Check, ...]
    fixed: tuple[str, ...] = ()
    not_fixed: tuple[str, ...] = ()

    @property
    def status(self) -> int:
        return exit_status(self.checks)

    def render(self) -> str:
        lines = [c.render() for c in self.checks]
        lines += [f"fixed: {f}" for f in self.fixed]
        lines += [f"not fixed: {f}" for f in self.not_fixed]
        errors = sum(1 for c in self.checks if c.status is Status.ERROR)
        warnings = sum(1 for c in self.checks if c.status is Status.WARN)
        if not errors and not warnings:
            lines.append("All checks passed.")
        else:
            lines.append(
                f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}."
            )
        return "\n".join(lines)

    def as_json(self) -> str:
        return json.dumps(
            {
                "status": ["ok", "warning", "error"][self.status],
                "exit_status": self.status,
                "checks": [c.as_json() for c in self.checks],
                "fixed": list(self.fixed),
                "not_fixed": list(self.not_fixed),
            },
            ensure_ascii=False,
            indent=2,
        )
