"""The ``zulip-goals-bot`` command line.

Only argparse and the standard library are imported at module level, so ``--help`` stays fast;
each subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zulip_goals_bot import __version__
from zulip_goals_bot.errors import GoalsBotError

if TYPE_CHECKING:
    from zulip_goals_bot.bot.context import Context
    from zulip_goals_bot.bot.zulip_io import ZulipIO
    from zulip_goals_bot.clock import Clock
    from zulip_goals_bot.config import Config

Handler = Callable[[argparse.Namespace], int]


def _load(args: argparse.Namespace, *, must_exist: bool = True) -> Config:
    from zulip_goals_bot.config import config_path, load_config

    return load_config(config_path(args.config), must_exist=must_exist)


def cmd_run(args: argparse.Namespace) -> int:
    from zulip_goals_bot.bot.app import run_bot

    config = _load(args)
    return run_bot(config, clock=args.clock)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from zulip_goals_bot.db.engine import Database

    config = _load(args)
    db = Database(config.database_url)
    db.upgrade()
    print(f"database at revision {db.current_revision()}")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    from zulip_goals_bot.db.engine import Database

    config = _load(args)
    db = Database(config.database_url)
    print(db.current_revision() or "empty (no migrations applied; run `db upgrade`)")
    return 0


def cmd_goals_import(args: argparse.Namespace) -> int:
    from zulip_goals_bot.goals.importer import import_command

    return import_command(
        _load(args),
        args.paths,
        period=args.period,
        dry_run=args.dry_run,
        statuses=args.status,
        rollover=args.rollover,
        clock=args.clock,
    )


def cmd_goals_list(args: argparse.Namespace) -> int:
    from zulip_goals_bot.goals.listing import list_command

    return list_command(_load(args), show_all=args.all, as_json=args.json, clock=args.clock)


def _connect(config: Config, clock: Clock) -> tuple[Context, ZulipIO]:
    """A context for a one-off command: the bot's identity and stream ids from Zulip."""
    from zulip_goals_bot.bot.app import look_up_streams, open_database, setup_logging
    from zulip_goals_bot.bot.context import Context
    from zulip_goals_bot.bot.zulip_io import ZulipIO
    from zulip_goals_bot.domain.setting import Setting

    setup_logging("WARNING")
    io = ZulipIO(config.zuliprc)
    me = io.whoami()
    setting = Setting(
        config,
        io.site,
        int(me["user_id"]),
        str(me.get("full_name", "")),
        look_up_streams(io, config),
    )
    ctx = Context(setting, open_database(config), clock)
    return ctx, io


def cmd_prompt(args: argparse.Namespace) -> int:
    from zulip_goals_bot.bot.outgoing import LockedSender
    from zulip_goals_bot.bot.prompts import send_due

    config = _load(args)
    ctx, io = _connect(config, args.clock)
    sender = LockedSender(io)
    report = send_due(
        ctx,
        sender,
        frozenset(sender.stream_subscribers(config.stream)),
        dry_run=args.dry_run,
        goal_slug=args.goal,
        kickoff=args.now,
    )
    print(report.render())
    return 0


class _NoSender:
    """A dry run must not send; this makes any attempt an error rather than a message."""

    def send_stream(self, stream: str, topic: str, content: str) -> int:
        raise GoalsBotError("dry run: nothing is sent")

    def send_dm(self, user_ids: Sequence[int], content: str) -> int:
        raise GoalsBotError("dry run: nothing is sent")

    def add_reaction(self, message_id: int, emoji_name: str) -> None:
        raise GoalsBotError("dry run: nothing is sent")


def cmd_digest(args: argparse.Namespace) -> int:
    from datetime import date, datetime, time

    from zulip_goals_bot.bot.app import open_database, setup_logging
    from zulip_goals_bot.bot.context import Context
    from zulip_goals_bot.bot.outgoing import LockedSender
    from zulip_goals_bot.bot.zulip_io import site_from_zuliprc
    from zulip_goals_bot.digest.delivery import send_digest
    from zulip_goals_bot.domain.setting import Setting

    config = _load(args)
    since = None
    if args.since:
        try:
            day = date.fromisoformat(args.since)
        except ValueError as exc:
            raise GoalsBotError(f"--since {args.since!r} is not a date like 2026-11-01") from exc
        since = datetime.combine(day, time(0), tzinfo=config.timezone)
    if args.dry_run:  # printed without connecting to Zulip: its links name streams by name
        setup_logging("WARNING")
        site = site_from_zuliprc(config.zuliprc)
        ctx = Context(Setting(config, site, 0, ""), open_database(config), args.clock)
        report = send_digest(ctx, _NoSender(), dry_run=True, since=since, goals_period=args.period)
        print(report.render())
        return 0
    ctx, io = _connect(config, args.clock)
    # Once per digest week, like the scheduled one; --again posts anew on purpose.
    again = bool(args.again)
    report = send_digest(
        ctx,
        LockedSender(io),
        since=since,
        force=again,
        manual=not again,
        goals_period=args.period,
    )
    print(report.render())
    if report.already and not report.sent and not again:
        print("`zulip-goals-bot digest --again` posts it anew.")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from zulip_goals_bot.config import config_path
    from zulip_goals_bot.doctor import doctor_command

    return doctor_command(
        config_path(args.config), as_json=args.json, fix=args.fix, clock=args.clock
    )


def cmd_export_blog(args: argparse.Namespace) -> int:
    from zulip_goals_bot.digest.blog import export_command

    return export_command(
        _load(args),
        since=args.since,
        until=args.until,
        output=args.output,
        period=args.period,
        group_health=args.group_health,
        clock=args.clock,
    )


def cmd_people_import(args: argparse.Namespace) -> int:
    from zulip_goals_bot.people.importer import people_import_command

    return people_import_command(_load(args), args.path, dry_run=args.dry_run, clock=args.clock)


def cmd_site_build(args: argparse.Namespace) -> int:
    from zulip_goals_bot.website.build import build_command

    return build_command(_load(args), output=args.output, period=args.period, clock=args.clock)


def cmd_site_serve(args: argparse.Namespace) -> int:
    from zulip_goals_bot.website.build import output_folder
    from zulip_goals_bot.website.serve import serve_command

    folder = args.directory if args.directory is not None else output_folder(_load(args), None)
    return serve_command(folder, args.port)


def cmd_github_sync(args: argparse.Namespace) -> int:
    from zulip_goals_bot.github.command import sync_command

    return sync_command(
        _load(args), dry_run=args.dry_run, since=args.since, goal=args.goal, clock=args.clock
    )


def cmd_github_mirror(args: argparse.Namespace) -> int:
    from zulip_goals_bot.github.command import mirror_command

    return mirror_command(_load(args), dry_run=args.dry_run, clock=args.clock)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from zulip_goals_bot.sandbox import sandbox_command

    return sandbox_command(
        goals=args.goals, database=args.database, script=args.script, start=args.start
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zulip-goals-bot",
        description="Ask goal owners for progress updates on Zulip, store their replies, "
        "and send weekly digests.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="bot.conf to use (default: $ZULIP_GOALS_BOT_CONFIG, else ./bot.conf)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="connect to Zulip and run the bot until stopped")
    p.set_defaults(func=cmd_run)

    db = sub.add_parser("db", help="database maintenance")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION")
    dbsub.required = True
    dbsub.add_parser("upgrade", help="apply migrations up to the latest").set_defaults(
        func=cmd_db_upgrade
    )
    dbsub.add_parser("current", help="show the database's migration revision").set_defaults(
        func=cmd_db_current
    )

    goals = sub.add_parser("goals", help="import and list goals")
    gsub = goals.add_subparsers(dest="goals_command", metavar="ACTION")
    gsub.required = True
    gi = gsub.add_parser("import", help="import goal Markdown files (a file or a folder)")
    gi.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    gi.add_argument("--period", help="period name, e.g. 2025h1 (default: the folder name)")
    gi.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    gi.add_argument(
        "--status",
        metavar="LIST",
        help="statuses prompted in this period, e.g. Accepted,Proposed (instead of bot.conf's "
        "active_statuses; remembered for later imports of the period)",
    )
    gi.add_argument(
        "--rollover",
        action="store_true",
        help="this period follows the running one: goals that continue keep their topic and "
        "history, the others end with one closing note",
    )
    gi.set_defaults(func=cmd_goals_import)
    gl = gsub.add_parser("list", help="list goals")
    gl.add_argument("--all", action="store_true", help="include inactive and retired goals")
    gl.add_argument("--json", action="store_true", help="machine-readable output")
    gl.set_defaults(func=cmd_goals_list)

    pr = sub.add_parser("prompt", help="send (or show) the prompts and reminders due now")
    pr.add_argument("--dry-run", action="store_true", help="show, do not send")
    pr.add_argument("--goal", metavar="SLUG", help="only this goal")
    pr.add_argument(
        "--now",
        action="store_true",
        help="start a round now: also ask new goals still in grace, and send DMs now rather "
        "than at each owner's local hour (counts as this period's prompt)",
    )
    pr.set_defaults(func=cmd_prompt)

    dg = sub.add_parser("digest", help="post (or print) the weekly digest now")
    dg.add_argument("--dry-run", action="store_true", help="print, do not post")
    dg.add_argument("--since", metavar="DATE", help="count updates from this date (YYYY-MM-DD)")
    dg.add_argument(
        "--again",
        action="store_true",
        help="post anew even if this week's digest was already sent",
    )
    dg.add_argument("--period", metavar="NAME", help="goals of this period (default: the newest)")
    dg.set_defaults(func=cmd_digest)

    doc = sub.add_parser(
        "doctor",
        help="check the set-up on this Zulip: a line per check, with the fix for each problem",
        description="Check bot.conf, the zuliprc, the Zulip account, stream, permissions, "
        "emoji, owners, the database and the clocks. Sends no message and changes nothing "
        "unless --fix is given. Exit status: 0 all good, 1 warnings, 2 errors.",
    )
    doc.add_argument("--json", action="store_true", help="machine-readable output")
    doc.add_argument(
        "--fix",
        action="store_true",
        help="subscribe the bot to the goals stream (and, with subscribe_owners = true, the "
        "owners who are not subscribed)",
    )
    doc.set_defaults(func=cmd_doctor)

    ex = sub.add_parser("export", help="export updates")
    exsub = ex.add_subparsers(dest="export_command", metavar="FORMAT")
    exsub.required = True
    eb = exsub.add_parser("blog", help="a monthly 'Project goals update' blog post in Markdown")
    eb.add_argument(
        "--since", required=True, metavar="DATE", help="first day, included (YYYY-MM-DD)"
    )
    eb.add_argument(
        "--until",
        metavar="DATE",
        help="last day, included (default: today, up to now); dates are in the program timezone",
    )
    eb.add_argument("--output", type=Path, metavar="FILE", help="write here instead of stdout")
    eb.add_argument("--period", metavar="NAME", help="goals of this period (default: the newest)")
    eb.add_argument(
        "--group-health",
        action="store_true",
        help="show each goal's health and put the goals that need help (at risk, blocked) first",
    )
    eb.set_defaults(func=cmd_export_blog)

    people = sub.add_parser("people", help="the people behind the GitHub handles")
    psub = people.add_subparsers(dest="people_command", metavar="ACTION")
    psub.required = True
    pi = psub.add_parser(
        "import", help="link GitHub handles to Zulip accounts from team records or a people file"
    )
    pi.add_argument(
        "path",
        type=Path,
        metavar="PATH",
        help="a folder of per-person TOML files, or a people file",
    )
    pi.add_argument("--dry-run", action="store_true", help="show what would change, write nothing")
    pi.set_defaults(func=cmd_people_import)

    site = sub.add_parser("site", help="the goals website: build it, preview it")
    ssub = site.add_subparsers(dest="site_command", metavar="ACTION")
    ssub.required = True
    sbuild = ssub.add_parser("build", help="build the static goals website from the database")
    sbuild.add_argument(
        "--output", type=Path, metavar="DIR", help="folder to build into (default: [site] output)"
    )
    sbuild.add_argument(
        "--period", metavar="NAME", help="period to show, e.g. 2025h1 (default: the newest)"
    )
    sbuild.set_defaults(func=cmd_site_build)
    sserve = ssub.add_parser("serve", help="preview a built site on localhost")
    sserve.add_argument(
        "--directory", type=Path, metavar="DIR", help="built site (default: [site] output)"
    )
    sserve.add_argument(
        "--port", type=int, default=8000, metavar="N", help="port (default 8000; 0: any free one)"
    )
    sserve.set_defaults(func=cmd_site_serve)

    gh = sub.add_parser("github", help="the goals' tracking issues on GitHub")
    ghsub = gh.add_subparsers(dest="github_command", metavar="ACTION")
    ghsub.required = True
    ghs = ghsub.add_parser(
        "sync",
        help="read the tracking issues now: comments become updates, task lists progress",
    )
    ghs.add_argument("--dry-run", action="store_true", help="print what it finds, store nothing")
    ghs.add_argument(
        "--since", metavar="DATE", help="read comments from this date (YYYY-MM-DD): history"
    )
    ghs.add_argument("--goal", metavar="SLUG", help="only this goal")
    ghs.set_defaults(func=cmd_github_sync)
    ghm = ghsub.add_parser(
        "mirror",
        help="post now the owners' Zulip updates the tracking issues are owed (mirror = to-github "
        "or both)",
    )
    ghm.add_argument("--dry-run", action="store_true", help="print what it would do, send nothing")
    ghm.set_defaults(func=cmd_github_mirror)

    sb = sub.add_parser("sandbox", help="try the bot against an embedded Zulip, in the terminal")
    sb.add_argument("--goals", type=Path, metavar="PATH", help="goal files (default: samples)")
    sb.add_argument("--database", type=Path, metavar="FILE", help="SQLite file (default: temp)")
    sb.add_argument(
        "--script", metavar="FILE", help="read commands from FILE ('-' for stdin), print, exit"
    )
    sb.add_argument("--start", metavar="DATETIME", help="start the clock here (ISO 8601)")
    sb.set_defaults(func=cmd_sandbox)
    return parser


def main(argv: Sequence[str] | None = None, *, clock: Clock | None = None) -> int:
    """The command line; ``clock`` is the instant every command reads (the real clock unless a
    caller injects one: the test launcher moves time by hand)."""
    from zulip_goals_bot.clock import SYSTEM_CLOCK

    parser = build_parser()
    args = parser.parse_args(argv)
    args.clock = clock or SYSTEM_CLOCK
    try:
        result: int = args.func(args)
        return result
    except GoalsBotError as exc:
        print(f"zulip-goals-bot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
