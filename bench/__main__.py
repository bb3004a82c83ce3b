"""``python -m bench``: build the data, run every benchmark several times, print the table.

The full run writes ``docs/benchmarks.md``; ``--smoke`` runs tiny sizes once (CI keeps the
benchmarks working with it) and writes only where ``--output`` says.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.core import FULL, SMOKE, BenchError, Sizes
from bench.profiling import Profile
from bench.report import BENCHMARKS, Results, render

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Benchmarks of zulip-goals-bot at program scale."
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, one run (seconds; what CI runs)"
    )
    parser.add_argument("--runs", type=int, help="runs of each benchmark (default 3; smoke 1)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated benchmarks to run: " + ", ".join(BENCHMARKS),
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write the Markdown report (default {DEFAULT_OUTPUT.relative_to(ROOT)}; "
        "with --smoke, nowhere)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="write profiles of the measured phases to DIR (needs the bench extra)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes: Sizes = SMOKE if args.smoke else FULL
    runs = args.runs if args.runs is not None else sizes.runs
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown or runs < 1:
        print(
            f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
            if unknown
            else "--runs must be at least 1",
            file=sys.stderr,
        )
        return 2
    output = args.output if args.output is not None else (None if args.smoke else DEFAULT_OUTPUT)
    profile = Profile(args.profile)
    if profile.missing:
        print(
            f"profiling without {', '.join(profile.missing)}: pip install -e '.[bench]'",
            file=sys.stderr,
        )
    results = Results(sizes=sizes, runs=runs, smoke=args.smoke, names=names)
    started = time.perf_counter()
    load_at_start = os.getloadavg()[0]
    for run in range(1, runs + 1):
        for name in names:
            module = BENCHMARKS[name]
            figures = results.figures_of(name)
            begun = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
                try:
                    module.run(sizes, Path(tmp), figures, profile)
                except BenchError as exc:
                    print(f"{name}, run {run}: {exc}", file=sys.stderr)
                    return 1
            print(
                f"{name}: run {run}/{runs} in {time.perf_counter() - begun:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    results.seconds = time.perf_counter() - started
    results.load = (load_at_start, os.getloadavg()[0])
    report = render(results)
    print(report, end="")
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(report, encoding="utf-8")
        print(f"written to {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
