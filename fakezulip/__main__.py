"""Run the demo realm in the foreground: ``python -m fakezulip --port 9991``."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from fakezulip.realm import Realm
from fakezulip.server import FakeZulip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fakezulip",
        description="Serve an emulated Zulip 8.0 server with a small demo organisation.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9991)
    parser.add_argument(
        "--zuliprc-dir",
        type=Path,
        default=None,
        help="write one <name>.zuliprc per user into this directory",
    )
    parser.add_argument("--heartbeat-seconds", type=float, default=50.0)
    parser.add_argument(
        "--rate-limit", type=int, default=None, help="requests per user per minute (default: none)"
    )
    args = parser.parse_args(argv)

    server = FakeZulip(
        Realm.demo(),
        host=args.host,
        port=args.port,
        heartbeat_seconds=args.heartbeat_seconds,
        rate_limit_per_minute=args.rate_limit,
    )
    print(f"Fake Zulip serving {server.base_url}", flush=True)
    if args.zuliprc_dir is not None:
        args.zuliprc_dir.mkdir(parents=True, exist_ok=True)
    for user in server.iter_users():
        line = f"  {user.user_id:>3}  {user.full_name:<14} {user.email:<24} key={user.api_key}"
        if args.zuliprc_dir is not None:
            path = args.zuliprc_dir / f"{user.email.split('@')[0]}.zuliprc"
            server.write_zuliprc(path, user)
            line += f"  -> {path}"
        print(line, flush=True)
    server.start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("stopping", flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
