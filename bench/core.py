"""What every benchmark shares: sizes, goals, measured figures and their statistics."""

from __future__ import annotations

import enum
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each benchmark is; ``FULL`` is the issue's, ``SMOKE`` keeps CI under 30 s."""

    runs: int
    goals: int
    owners: int
    updates: int
    queued: int  # replies queued for the ingest burst
    live_rate: float  # replies per second in the live ingest
    live_seconds: float
    backfill: int
    status_samples: int
    digest_repeats: int  # digests composed per run
    startup_repeats: int  # `--help` and `run` start-ups per run
    weekly_goals: int
    weekly_owners: int
    weekly_subscribed: int  # owners in the goals stream (the others are prompted by DM)
    # The emulator's rate limit: ``rate_limit`` requests per ``rate_window`` seconds, the
    # real 200 a minute on a clock running ``60 / rate_window`` times faster.
    rate_limit: int
    rate_window: float


FULL = Sizes(
    runs=3,
    goals=1_000,
    owners=1_500,
    updates=100_000,
    queued=20_000,
    live_rate=50.0,
    live_seconds=10.0,
    backfill=5_000,
    status_samples=300,
    digest_repeats=5,
    startup_repeats=3,
    weekly_goals=1_000,
    weekly_owners=1_500,
    weekly_subscribed=1_200,
    rate_limit=200,
    rate_window=3.0,
)

SMOKE = Sizes(
    runs=1,
    goals=20,
    owners=30,
    updates=2_000,
    queued=300,
    live_rate=50.0,
    live_seconds=1.0,
    backfill=200,
    status_samples=20,
    digest_repeats=2,
    startup_repeats=1,
    weekly_goals=20,
    weekly_owners=30,
    weekly_subscribed=24,
    rate_limit=200,
    rate_window=3.0,
)


class Op(enum.Enum):
    BELOW = "<"
    AT_MOST = "≤"
    AT_LEAST = "≥"
    EXACTLY = "="


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from the issue, judged on the median of the runs."""

    op: Op
    value: float

    def met(self, measured: float) -> bool:
        if self.op is Op.BELOW:
            return measured < self.value
        if self.op is Op.AT_MOST:
            return measured <= self.value
        if self.op is Op.EXACTLY:
            return measured == self.value
        return measured >= self.value

    def render(self, unit: str) -> str:
        return f"{self.op.value} {fmt(self.value)} {unit}".rstrip()


def below(value: float) -> Target:
    return Target(Op.BELOW, value)


def at_most(value: float) -> Target:
    return Target(Op.AT_MOST, value)


def at_least(value: float) -> Target:
    return Target(Op.AT_LEAST, value)


def exactly(value: float) -> Target:
    return Target(Op.EXACTLY, value)


@dataclass
class Figure:
    """One row of the table: a measured quantity, one sample per run, and its goal (if any)."""

    key: str
    label: str
    unit: str
    target: Target | None = None
    samples: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.samples.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def low(self) -> float:
        return min(self.samples) if self.samples else math.nan

    @property
    def high(self) -> float:
        return max(self.samples) if self.samples else math.nan

    @property
    def met(self) -> bool | None:
        if self.target is None or not self.samples:
            return None
        return self.target.met(self.median)


def fmt(value: float) -> str:
    """Numbers as a reader wants them: 12,345 / 123 / 12.3 / 1.23 / 0.123."""
    if math.isnan(value):
        return "—"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100 or value == int(value):
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    lo = math.floor(rank)
    hi = math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.005) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


class BenchError(RuntimeError):
    """A benchmark could not measure (the bot died, a timeout passed): the run is invalid."""
