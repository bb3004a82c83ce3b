"""``python -m fakegithub --port N``: the emulator standalone, with a small demo repository.

Handy to poke at with curl or to point a development bot at; it prints the token to use.
"""

from __future__ import annotations

import argparse
import threading

from .server import FakeGitHub

DEMO_REPO = "rust-lang/rust-project-goals"
DEMO_TOKEN = "ghp_demo0000000000000000000000000000000"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fakegithub", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any)")
    args = parser.parse_args(argv)
    gh = FakeGitHub()
    gh.add_token(DEMO_TOKEN, login="goals-bot")
    gh.add_repo(DEMO_REPO)
    gh.add_issue(DEMO_REPO, 263, title="Demo goal", body="Tracking issue.", author="nikomatsakis")
    gh.add_comment(DEMO_REPO, 263, author="nikomatsakis", body="First update.")
    gh.start(port=args.port)
    print(f"fake GitHub at {gh.url}  (Authorization: token {DEMO_TOKEN})", flush=True)
    print(
        f"try: curl -H 'Authorization: token {DEMO_TOKEN}' "
        f"{gh.url}/repos/{DEMO_REPO}/issues/263/comments",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        gh.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
