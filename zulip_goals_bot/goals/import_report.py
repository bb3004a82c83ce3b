"""The report of a goals import: counts, what changed, who will be prompted, what went wrong.

Plain data and its rendering for a terminal; ``goals.importer`` builds it.  The report tells the
truth about the outcome: how many goals will be asked for updates and, for the others, why not and
the one change that would include them.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zulip_goals_bot.goals.outlook import Outlook, Reason, ReasonGroup

if TYPE_CHECKING:
    from zulip_goals_bot.goals.import_plan import ImportPlan
    from zulip_goals_bot.people.link_sources import MappingReport

# How much of a changed value the report shows; the file has the rest.
SHOWN_VALUE = 50
# Width of the wrapped lists (owners, created goals) in the terminal report.
REPORT_WIDTH = 96


def show_value(value: object) -> str:
    """A field's value as the report shows it (owners, lists, issue numbers, quoted text)."""
    if value is None or value == ():
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, tuple) and all(hasattr(v, "render") for v in value):
        return ", ".join(v.render() for v in value)
    if isinstance(value, tuple) and all(isinstance(v, tuple) for v in value):
        return ", ".join(f"{k}={v!r}" for k, v in value)
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, int):
        return f"#{value}"
    text = str(value)
    if len(text) > SHOWN_VALUE:
        text = text[: SHOWN_VALUE - 1] + "…"
    return f'"{text}"'


@dataclass(frozen=True, slots=True)
class PeriodStatuses:
    """The statuses prompted in one imported period, and where that choice came from."""

    period: str
    statuses: tuple[str, ...]
    source: str  # "--status", "an earlier --status", "bot.conf"

    def render(self) -> str:
        where = {
            "--status": "set by --status and remembered for this period",
            "remembered": "set by an earlier --status for this period",
        }.get(self.source, "active_statuses in bot.conf")
        return f"{self.period}: {', '.join(self.statuses)} ({where})"


@dataclass(frozen=True, slots=True)
class RoadmapCounts:
    """Roadmap pages imported into one period."""

    period: str
    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return len(self.created) + len(self.updated) + len(self.unchanged)


@dataclass(frozen=True, slots=True)
class FileNote:
    """A file and what to say about it."""

    file: str
    text: str

    def render(self) -> str:
        return f"{self.file}: {self.text}"


@dataclass(frozen=True, slots=True)
class ImportReport:
    """Everything an import run has to tell the operator; ``render`` is for a terminal."""

    plans: tuple[ImportPlan, ...]
    sources: tuple[tuple[str, str], ...] = ()  # (period, path as given)
    problems: tuple[FileNote, ...] = ()
    skipped: tuple[FileNote, ...] = ()
    warnings: tuple[FileNote, ...] = ()
    unknown_rows: tuple[FileNote, ...] = ()
    notes: tuple[str, ...] = ()
    mapping: MappingReport | None = None
    zulip_note: str | None = None
    unmapped: tuple[str, ...] = ()
    dry_run: bool = False
    outlooks: tuple[Outlook, ...] = ()
    statuses: tuple[PeriodStatuses, ...] = ()
    reasons: tuple[ReasonGroup, ...] = ()
    roadmaps: tuple[RoadmapCounts, ...] = ()
    champions: int = 0  # champion rows of the imported goals
    closing_note: str | None = None  # what happened to the closing notes of ended goals

    @property
    def prompted(self) -> int:
        return sum(1 for o in self.outlooks if o.prompted)

    @property
    def waiting(self) -> int:
        """Prompted goals whose owners cannot be reached yet (not on Zulip, or away)."""
        return sum(1 for o in self.outlooks if o.prompted and o.reason is not None)

    @property
    def finished(self) -> bool:
        """Every goal of the imported period ended or continued into a later period: nothing
        is left to prompt, and that is as it should be."""
        moved = any(p.moved_on for p in self.plans)
        return all(o.reason is Reason.ENDED for o in self.outlooks) and (
            bool(self.outlooks) or moved
        )

    @property
    def nothing_prompted(self) -> bool:
        """No goal will be asked for updates, though some could be: the import missed."""
        return self.prompted == 0 and not self.finished

    @property
    def created(self) -> int:
        return sum(len(p.creates) for p in self.plans)

    @property
    def updated(self) -> int:
        return sum(len(p.changes) for p in self.plans)

    @property
    def unchanged(self) -> int:
        return sum(len(p.unchanged) for p in self.plans)

    @property
    def retired(self) -> int:
        return sum(len(p.retires) for p in self.plans)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "retired": self.retired,
            "skipped": len(self.skipped),
            "problems": len(self.problems),
        }

    @property
    def exit_code(self) -> int:
        """0 when every goal file was read and some goal will be prompted; else 1.

        A dry run that would prompt nothing still exits 0: it is how one finds out.
        """
        if self.problems:
            return 1
        return 1 if self.nothing_prompted and not self.dry_run else 0

    def _outlook_lines(self) -> list[str]:
        total = len(self.outlooks)
        periods = ", ".join(dict.fromkeys(p.period for p in self.plans))
        if self.finished:
            lines = [
                f"{periods} has ended: its goals continued into a later period or ended, so none "
                "of them is prompted."
            ]
        elif self.nothing_prompted:
            lines = [
                f"NO GOAL WILL BE PROMPTED: none of the {total} goals of "
                f"{', '.join(dict.fromkeys(p.period for p in self.plans)) or 'this import'} "
                "is asked for updates, so no owner will hear from the bot.",
            ]
        else:
            lines = [f"Prompted: {self.prompted} of {total} goals will be asked for updates."]
        if self.statuses:
            lines.append("Prompted statuses: " + "; ".join(s.render() for s in self.statuses) + ".")
        blocking = [g for g in self.reasons if g.reason.blocks]
        waiting = [g for g in self.reasons if not g.reason.blocks]
        if blocking:
            n = sum(len(g.slugs) for g in blocking)
            lines += ["", f"Not prompted ({n}), and what would include them:"]
            lines += [line for g in blocking for line in g.render()]
        if waiting:
            lines += [
                "",
                f"Prompted, but no owner can be asked yet ({self.waiting}):",
                *[line for g in waiting for line in g.render()],
            ]
        return lines

    def render(self) -> str:
        periods = ", ".join(dict.fromkeys(p.period for p in self.plans)) or "no period"
        head = f"Goals import into {periods}"
        if self.dry_run:
            head += " (dry run: nothing was written; a real run would do this)"
        lines = [head, ""]
        counts = self.counts
        width = max(len(k) for k in counts)
        for key, n in counts.items():
            note = ""
            if key == "skipped" and n:
                note = "  (index pages)"
            lines.append(f"  {key:<{width}}  {n:>4}{note}")
        roadmaps = sum(r.total for r in self.roadmaps)
        if roadmaps or self.champions:
            lines.append(f"  ({roadmaps} roadmap pages, {self.champions} champion rows)")
        lines += ["", *self._outlook_lines()]
        many = len({p.period for p in self.plans}) > 1

        def name(period: str, slug: str) -> str:
            return f"{period}/{slug}" if many else slug

        if self.problems:
            lines += ["", "Problems (these files were not imported):"]
            lines += [f"  {n.render()}" for n in self.problems]
        if self.skipped:
            lines += [
                "",
                "Skipped (index pages of the goals book, expected in a goals folder):",
                *_wrap(", ".join(n.file for n in self.skipped)),
            ]
        created = [name(c.period, c.fields.slug) for p in self.plans for c in p.creates]
        if created:
            lines += ["", "Created:", *_wrap(", ".join(created))]
        changed = [c for p in self.plans for c in p.changes]
        if changed:
            lines += ["", "Updated:"]
            for c in changed:
                lines.append(f"  {name(c.period, c.old_slug)}")
                lines += [f"    {d.render()}" for d in c.changes]
        retired = [r for p in self.plans for r in p.retires]
        if retired:
            lines += ["", "Retired (no longer in the source folder; kept with their updates):"]
            lines += [f"  {name(r.period, r.slug)}  {show_value(r.title)}" for r in retired]
        continued = [c for p in self.plans for c in p.continued]
        if continued:
            lines += ["", "Continued from an earlier period (same goal, topic and history):"]
            lines += [f"  {c.old_slug} ({c.moved_from}) → {c.fields.slug}" for c in continued]
        ended = [e for p in self.plans for e in p.ends]
        if ended:
            lines += [
                "",
                f"Ended ({len(ended)}; completed, not deleted; one closing note each in its "
                "topic):",
            ]
            lines += [f"  {e.period}/{e.slug}  {show_value(e.title)}" for e in ended]
            if self.closing_note:
                lines.append(f"  {self.closing_note}")
        elif self.closing_note:
            lines += ["", self.closing_note]
        moved_on = [name(p.period, s) for p in self.plans for s in p.moved_on]
        if moved_on:
            lines += [
                "",
                "Continued into a later period since (left as they are there):",
                *_wrap(", ".join(moved_on)),
            ]
        created_roadmaps = [n for r in self.roadmaps for n in r.created]
        if created_roadmaps:
            lines += ["", "Roadmaps created:", *_wrap(", ".join(created_roadmaps))]
        kept = [name(p.period, s) for p in self.plans for s in p.kept]
        if kept:
            lines += ["", "Not retired because their file has problems:", *_wrap(", ".join(kept))]
        if self.warnings:
            lines += ["", "Warnings (imported anyway):"]
            lines += [f"  {n.render()}" for n in self.warnings]
        if self.unknown_rows:
            lines += ["", "Unrecognised metadata rows (kept with the goal, not used):"]
            lines += [f"  {n.render()}" for n in self.unknown_rows]
        if self.notes:
            lines += ["", *self.notes]
        if self.mapping is not None or self.zulip_note:
            lines.append("")
        if self.zulip_note:
            lines.append(self.zulip_note)
        if self.mapping is not None:
            lines.append(self.mapping.render())
        lines.append("")
        if self.unmapped:
            lines.append(
                f"Owners of active goals without a Zulip account ({len(self.unmapped)}); "
                "add them to the people file:"
            )
            lines += _wrap(", ".join(f"@{h}" for h in self.unmapped))
        elif self.nothing_prompted:
            lines.append("No goal is prompted, so no owner needs a Zulip account yet.")
        else:
            lines.append("Every owner of an active goal has a Zulip account.")
        return "\n".join(lines)


def _wrap(text: str) -> list[str]:
    return textwrap.wrap(
        text, REPORT_WIDTH, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
    )
