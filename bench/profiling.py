"""Optional profiles of what a benchmark measured (``python -m bench --profile DIR``).

In-process benchmarks use pyinstrument; the bot subprocess is sampled from outside with py-spy
(``record --format raw``: collapsed stacks), summarized into the functions holding the most
samples.  Both tools come with the ``bench`` extra (``pip install -e '.[bench]'``); without them
``--profile`` says so and the benchmarks run unprofiled.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

# py-spy's sampling rate; high enough for a burst of a few seconds, low enough not to slow it.
SPY_RATE = 200
# Functions listed in a summary.
TOP = 40


def _py_spy() -> str | None:
    found = shutil.which("py-spy")
    if found:
        return found
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else None


class Profile:
    """Where profiles go (``None``: profiling is off); one file per measured phase and run."""

    def __init__(self, out_dir: Path | None) -> None:
        self.out_dir = out_dir
        self.missing: list[str] = []
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            if importlib.util.find_spec("pyinstrument") is None:
                self.missing.append("pyinstrument")
            if _py_spy() is None:
                self.missing.append("py-spy")
        self._counts: Counter[str] = Counter()

    def _path(self, name: str) -> Path:
        assert self.out_dir is not None
        self._counts[name] += 1
        return self.out_dir / f"{name}-{self._counts[name]}.txt"

    @contextlib.contextmanager
    def in_process(self, name: str) -> Iterator[None]:
        if self.out_dir is None or "pyinstrument" in self.missing:
            yield
            return
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
        try:
            yield
        finally:
            profiler.stop()
            self._path(name).write_text(
                profiler.output_text(unicode=True, color=False), encoding="utf-8"
            )

    @contextlib.contextmanager
    def subprocess(self, name: str, pid: int) -> Iterator[None]:
        """Sample process ``pid`` (all threads) while the block runs."""
        spy = _py_spy()
        if self.out_dir is None or spy is None:
            yield
            return
        path = self._path(name)
        raw = path.with_suffix(".raw")
        proc = subprocess.Popen(
            [spy, "record", "-p", str(pid), "-o", str(raw), "-f", "raw", "-r", str(SPY_RATE),
             "--threads", "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # py-spy needs a moment to attach
        try:
            yield
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            if raw.exists():
                path.write_text(summarize(raw.read_text(encoding="utf-8")), encoding="utf-8")


def summarize(collapsed: str, top: int = TOP) -> str:
    """Inclusive and self sample counts per function, per thread, from py-spy's raw output."""
    lines = []
    threads: dict[str, tuple[Counter[str], Counter[str], list[int]]] = {}
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread") else "main"
        inclusive, own, total = threads.setdefault(thread, (Counter(), Counter(), [0]))
        n = int(count)
        total[0] += n
        for frame in dict.fromkeys(frames[1:]):
            inclusive[frame] += n
        own[frames[-1]] += n
    for thread, (inclusive, own, total) in sorted(threads.items(), key=lambda t: -t[1][2][0]):
        lines.append(f"== thread {thread}: {total[0]} samples at {SPY_RATE} Hz")
        lines.append("-- inclusive")
        lines += [f"{n:7d} {100 * n / total[0]:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
        lines.append("-- self")
        lines += [f"{n:7d} {100 * n / total[0]:5.1f}%  {f}" for f, n in own.most_common(top // 2)]
        lines.append("")
    return "\n".join(lines)
