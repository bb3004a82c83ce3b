"""``python -m fakezulip.launch ARGS``: the ``zulip-goals-bot`` command line as the tests and the
benchmarks start it, with the file clock named by ``ZULIP_GOALS_BOT_CLOCK_FILE`` injected (the
real clock when the variable is unset)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fakezulip.clockfile import CLOCK_FILE_ENV, FileClock


def main(argv: Sequence[str] | None = None) -> int:
    from zulip_goals_bot.cli import main as cli_main

    path = os.environ.get(CLOCK_FILE_ENV)
    return cli_main(argv, clock=FileClock(Path(path)) if path else None)


if __name__ == "__main__":
    sys.exit(main())
