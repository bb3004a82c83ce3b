"""The doctor's two callers: ``zulip-goals-bot doctor [--json] [--fix]`` prints the report
(``--fix`` subscribes the bot, and with ``subscribe_owners = true`` the owners outside it, to the
goals stream: the only writes the doctor makes), and ``run`` performs the same checks at
start-up, logging one line per problem and storing those an admin must act on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from zulip_goals_bot.clock import SYSTEM_CLOCK, Clock
from zulip_goals_bot.doctor.checks import (
    PERMISSIONS,
    STREAM_SETTINGS,
    name_list,
    owners_of,
    prompted_goals,
    run_checks,
)
from zulip_goals_bot.doctor.facts import Facts
from zulip_goals_bot.doctor.gather import ATTEMPTS, db_facts, file_facts, gather, zulip_facts
from zulip_goals_bot.doctor.permissions import INVITE_MEMBERS, may_subscribe_others, role_of
from zulip_goals_bot.doctor.problems import store_problems
from zulip_goals_bot.doctor.report import Check, Report, Status

if TYPE_CHECKING:
    from zulip_goals_bot.bot.zulip_io import ZulipIO
    from zulip_goals_bot.config import Config
    from zulip_goals_bot.db.engine import Database

log = logging.getLogger("zulip_goals_bot")


def apply_fixes(io: ZulipIO, config: Config, facts: Facts) -> tuple[list[str], list[str]]:
    """Subscribe the bot (and with ``subscribe_owners``, owners outside it) to the goals stream.

    Returns what was fixed and what could not be, one line each.
    """
    from zulip_goals_bot.errors import ZulipError

    fixed: list[str] = []
    not_fixed: list[str] = []
    z = facts.zulip
    if z is None or z.error is not None:
        return fixed, not_fixed
    stream = z.stream(config.stream)
    if stream is None:
        return fixed, [f"#{config.stream} does not exist; doctor --fix does not create streams"]
    stream_id = int(stream["stream_id"])
    if stream_id not in z.subscribed:
        try:
            io.call(
                "users/me/subscriptions",
                method="POST",
                request={"subscriptions": [{"name": stream["name"]}]},
                attempts=ATTEMPTS,
            )
            fixed.append(f"subscribed the bot to #{stream['name']}")
        except ZulipError as exc:
            not_fixed.append(f"could not subscribe the bot to #{stream['name']}: {exc}")
    if not config.subscribe_owners or facts.db is None:
        return fixed, not_fixed
    rows = prompted_goals(facts.db.goals, facts.now, config)
    members = z.stream_members.get(stream_id, frozenset())
    active = {int(m["user_id"]) for m in z.members if m.get("is_active", True)}
    outside = sorted(
        {
            o.person.zulip_user_id
            for o in owners_of(rows).values()
            if o.person.zulip_user_id in active and o.person.zulip_user_id not in members
        }
        - {None}
    )
    if not outside:
        return fixed, not_fixed
    policy = int(z.realm.get("realm_invite_to_stream_policy", INVITE_MEMBERS))
    if not may_subscribe_others(policy, role_of(z.me)):
        not_fixed.append(
            f"the organization does not let the bot subscribe others to streams; subscribe the "
            f"{len(outside)} owners yourself ({STREAM_SETTINGS.format(stream=config.stream)} > "
            f"Subscribers), or allow it ({PERMISSIONS} > 'Who can add users to streams')"
        )
        return fixed, not_fixed
    try:
        io.call(
            "users/me/subscriptions",
            method="POST",
            request={"subscriptions": [{"name": stream["name"]}], "principals": outside},
            attempts=ATTEMPTS,
        )
        names = [str((z.member(uid) or {}).get("full_name", uid)) for uid in outside]
        fixed.append(f"subscribed {len(outside)} owners to #{stream['name']}: {name_list(names)}")
    except ZulipError as exc:
        not_fixed.append(f"could not subscribe the owners to #{stream['name']}: {exc}")
    return fixed, not_fixed


def doctor_command(
    config_path: Path, *, as_json: bool, fix: bool, clock: Clock = SYSTEM_CLOCK
) -> int:
    """``zulip-goals-bot doctor [--json] [--fix]``: print the report, exit 0, 1 or 2."""
    logging.basicConfig(level=logging.ERROR)
    facts = gather(config_path, clock)
    fixed: list[str] = []
    not_fixed: list[str] = []
    if fix and facts.config is not None and facts.zulip is not None and facts.zulip.error is None:
        from zulip_goals_bot.bot.zulip_io import ZulipIO

        config = facts.config
        io = ZulipIO(config.zuliprc)
        fixed, not_fixed = apply_fixes(io, config, facts)
        if fixed:
            facts = gather(config_path, clock)  # the report shows the state after the fixes
    report = Report(tuple(run_checks(facts)), tuple(fixed), tuple(not_fixed))
    print(report.as_json() if as_json else report.render())
    return report.status


def startup_checks(config: Config, io: ZulipIO, db: Database, clock: Clock) -> list[Check]:
    """``run``'s start-up: the same checks, one log line per problem; problems an admin must
    act on are stored for the digest."""
    now = clock.now()
    files, _ = file_facts(config.path or Path("bot.conf"), lambda: config)
    zulip = zulip_facts(io, config, render=False)
    facts = Facts(files, now, config, zulip, db_facts(config, db))
    checks = run_checks(facts)
    for c in checks:
        # ZulipIO already warned about a zuliprc others can read when it opened the file.
        if c.status is Status.OK or c.key == "zuliprc":
            continue
        level = logging.ERROR if c.status is Status.ERROR else logging.WARNING
        log.log(level, "set-up: %s %s (fix: %s)", c.status.mark, c.summary, c.fix)
    with db.write() as session:
        store_problems(session, checks, now)
    return checks
