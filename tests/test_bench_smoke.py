"""The benchmarks keep working: ``python -m bench --smoke`` end to end, and its arithmetic."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bench.core import Figure, at_least, at_most, below, exactly, fmt, percentile
from bench.profiling import summarize
from bench.report import ROWS

# The benchmarks measure the embedded default, SQLite, whatever backend the suite runs on.
pytestmark = pytest.mark.sqlite_only

ROOT = Path(__file__).resolve().parents[1]
# The smoke run must stay well inside CI's patience (it takes about 6 s on 2 cores).
SMOKE_TIMEOUT = 30.0
_NUMBER = r"-?[\d,]+(?:\.\d+)?"
_ROW = re.compile(
    rf"^\| (?P<item>\d) \| (?P<label>[^|]+) \| (?P<median>{_NUMBER}) (?P<unit>[^|]*?) \| "
    rf"(?P<low>{_NUMBER}) \| (?P<high>{_NUMBER}) \| (?P<goal>[^|]*) \| (?P<met>[^|]*) \|$"
)


def _value(text: str) -> float:
    return float(text.replace(",", ""))


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    out = tmp_path_factory.mktemp("bench") / "benchmarks.md"
    # A session of its own: on a timeout the bench's bot subprocesses are killed with it.
    with subprocess.Popen(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=SMOKE_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            pytest.fail(f"the smoke run took over {SMOKE_TIMEOUT} s:\n{stderr[-3000:]}")
    assert proc.returncode == 0, stderr[-3000:]
    return stdout, out.read_text(encoding="utf-8")


def test_smoke_run_prints_and_writes_the_whole_table(smoke: tuple[str, str]) -> None:
    printed, written = smoke
    assert printed == written
    assert written.startswith("# Benchmarks\n")
    assert "Machine: " in written and " cores " in written and "Python 3." in written
    rows = [m.groupdict() for m in map(_ROW.match, written.splitlines()) if m]
    assert len(rows) == len(ROWS)
    assert {int(r["item"]) for r in rows} == {1, 2, 3, 4, 5, 6, 7, 8}
    # An unchanged tracking issue costs nothing of GitHub's rate limit, at any size.
    units = [r for r in rows if "unchanged issues: rate-limit units" in r["label"]]
    assert len(units) == 2 and all(_value(r["median"]) == 0 for r in units)
    for row in rows:
        assert _value(row["low"]) <= _value(row["median"]) <= _value(row["high"]), row
        if row["goal"].strip():
            assert row["met"].strip() in ("✅", "❌"), row
    by_label = {r["label"].strip(): r for r in rows}
    # Properties that hold at any size: the digest's statement budget and a polite client.
    assert _value(by_label["Digest: SQL statements"]["high"]) <= 7
    assert _value(by_label["Weekly cycle: HTTP 429 responses"]["high"]) == 0
    assert _value(by_label["Weekly cycle: API calls used / messages owed"]["low"]) >= 1
    for section in ("### Ingest", "### Start-up and backfill", "### Digest and status"):
        assert section in written


def test_unknown_benchmark_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "nothing"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown benchmark nothing" in done.stderr


def test_targets_judge_the_median() -> None:
    rate = Figure("rate", "Rate", "updates/s", at_least(5_000), [4_000.0, 6_000.0, 5_500.0])
    assert rate.median == 5_500.0 and rate.low == 4_000.0 and rate.high == 6_000.0
    assert rate.met is True
    slow = Figure("p99", "p99", "ms", below(10), [9.0, 11.0, 12.0])
    assert slow.met is False
    assert Figure("sql", "SQL", "statements", at_most(6), [6.0]).met is True
    assert Figure("429", "429", "responses", exactly(0), [1.0]).met is False
    assert Figure("info", "Info", "calls", None, [3.0]).met is None
    assert at_least(5_000).render("updates/s") == "≥ 5,000 updates/s"
    assert below(0.25).render("s") == "< 0.250 s"


def test_numbers_read_well() -> None:
    assert [fmt(v) for v in (12_345.6, 123.4, 12.34, 1.234, 0.1234, 6.0)] == [
        "12,346",
        "123",
        "12.3",
        "1.23",
        "0.123",
        "6",
    ]
    assert fmt(float("nan")) == "—"


def test_percentile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([7.0], 99) == 7.0


def test_profile_summary_counts_inclusive_and_self_samples() -> None:
    raw = (
        "thread (1): events;run (app.py:1);store (replies.py:2) 3\n"
        "thread (1): events;run (app.py:1);decode (json.py:9) 1\n"
        "thread (2): sender;send (io.py:5) 2\n"
    )
    text = summarize(raw)
    events = text.split("== thread ")[1]
    assert events.startswith("events: 4 samples")
    assert "      4 100.0%  run (app.py:1)" in events
    assert "      3  75.0%  store (replies.py:2)" in events
    assert "== thread sender: 2 samples" in text
