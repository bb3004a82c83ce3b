"""Commands for bot admins: adding goals, changing owners and cadences, retiring, mapping people."""

from __future__ import annotations

import re

from sqlalchemy import select

from zulip_goals_bot.commands.answers import goal_title, owner_text
from zulip_goals_bot.commands.call import Call, resolve_goal
from zulip_goals_bot.commands.grammar import (
    OWNERS_ACTIONS,
    Command,
    parse_handle,
    parse_people,
    split_word,
)
from zulip_goals_bot.commands.people import find_people, person_text
from zulip_goals_bot.db.models import DigestSubscription, Goal, GoalOwner, Person
from zulip_goals_bot.db.queries import MANUAL_PERIOD, load_goals
from zulip_goals_bot.domain.markdown import (
    SAFE_LENGTH,
    ZulipUser,
    limit_items,
    plural,
    safe,
    time_tag,
    topic_link,
)
from zulip_goals_bot.domain.schedule import effective_cadence, next_prompt
from zulip_goals_bot.domain.states import GoalState, OwnerRole
from zulip_goals_bot.errors import CommandError
from zulip_goals_bot.goals.matching import echo
from zulip_goals_bot.goals.topics import goal_topic
from zulip_goals_bot.people.link_rules import LinkResult, MappedVia
from zulip_goals_bot.people.linking import link_github

# Cadences an admin may set: weekly, every two weeks, every four weeks (as in bot.conf).
CADENCES = (1, 2, 4)


# Longest slug and title `goal add` accepts (the database's slug column is 200 wide).
MAX_SLUG = 100


MAX_TITLE = 300


def cmd_subscribers(call: Call, command: Command) -> list[str]:
    subs = call.session.execute(select(DigestSubscription)).scalars().all()
    if not subs:
        return ["Nobody is subscribed to the digest by DM."]
    names = sorted(
        (
            ZulipUser(s.person.zulip_user_id, s.person.full_name or "user").mention(silent=True)
            if s.person.zulip_user_id is not None
            else safe(s.person.full_name or s.person.email or f"person {s.person_id}")
        )
        for s in subs
    )
    return [
        f"{plural(len(names), 'subscriber')} to the digest by DM:\n"
        + limit_items([f"- {n}" for n in names], SAFE_LENGTH)
    ]


def cmd_map(call: Call, command: Command) -> list[str]:
    words = command.text.split(None, 1)
    usage = "Say `map @github-handle @-mention` (or an email instead of the mention)."
    if len(words) != 2:
        raise CommandError(usage)
    handle = parse_handle(words[0])
    head, refs = parse_people(words[1])
    if head or len(refs) != 1 or refs[0].kind == "github":
        raise CommandError(usage)
    (target,) = find_people(call, refs, create=True)
    if target.zulip_user_id is None:
        raise CommandError(usage)
    outcome = link_github(
        call.session,
        github=handle,
        zulip_user_id=target.zulip_user_id,
        via=MappedVia.ADMIN,
        now=call.now,
    )
    if outcome.result is LinkResult.ALREADY:
        return [f"GitHub @{handle} is already linked to {person_text(target)}."]
    if outcome.result is LinkResult.CONFLICT:  # an admin outranks every source; kept safe
        raise CommandError(f"GitHub @{handle} was not linked: {outcome.detail}.")
    notes = []
    if outcome.replaced is not None:
        notes.append(f"(they were @{outcome.replaced} before)")
    holder = call.session.get(Person, outcome.taken_from) if outcome.taken_from else None
    if holder is not None:
        notes.append(f"(moved from {person_text(holder)}, with its goals)")
    extra = (" " + " ".join(notes)) if notes else ""
    return [f"GitHub @{handle} is now linked to {person_text(target)}{extra}."]


_PERIOD_OPTION = re.compile(r"(?:^|\s)--period(?:=|\s+)(\S+)")


_SLUG = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_SLUG - 1}}}$")


def cmd_goal(call: Call, command: Command) -> list[str]:
    if command.sub != "add":
        raise CommandError("Say `goal add <slug> <title>` (and `--period <name>` if you like).")
    text = command.text
    period = MANUAL_PERIOD
    option = _PERIOD_OPTION.search(text)
    if option:
        period = option.group(1)
        text = (text[: option.start()] + " " + text[option.end() :]).strip()
    slug, title = split_word(text)
    if not slug or not title:
        raise CommandError(
            "A goal needs a slug and a title: `goal add faster-builds Faster incremental builds`."
        )
    if not _SLUG.match(slug):
        raise CommandError(
            f"'{echo(slug)}' can't be a slug: use letters, digits, '-' and '_' "
            f"(at most {MAX_SLUG} characters)."
        )
    if not re.match(r"^[\w.-]{1,40}$", period):
        raise CommandError(f"'{echo(period)}' can't be a period name (like `2025h2`).")
    title = " ".join(title.split())
    if len(title) > MAX_TITLE:
        raise CommandError(f"That title is {len(title)} characters; keep it under {MAX_TITLE}.")
    exists = call.session.execute(
        select(Goal.id).where(Goal.period == period, Goal.slug == slug)
    ).first()
    if exists:
        raise CommandError(f"There is already a goal `{slug}` in period {period}.")
    taken = set(call.session.execute(select(Goal.zulip_topic)).scalars())
    topic = goal_topic(title, None, None, taken)
    goal = Goal(
        period=period,
        slug=slug,
        title=title,
        short_title=None,
        status="Accepted",
        tracking_issue=None,
        zulip_topic=topic,
        teams="",
        state=GoalState.ACTIVE,
        active=True,
        extra={},
        created_at=call.now,
        updated_at=call.now,
    )
    call.session.add(goal)
    call.session.flush()
    return [
        f"Added **{safe(title)}** (`{slug}`, period {period}); its topic is "
        f"{topic_link(call.moment.goals_stream, topic)}. Add owners with "
        f"`owners add {slug} @github-handle`."
    ]


def cmd_owners(call: Call, command: Command) -> list[str]:
    action = command.sub
    if action not in OWNERS_ACTIONS:
        raise CommandError(
            "Say `owners set|add|remove <goal> @github-handle ...` (Zulip @-mentions and emails "
            "work too)."
        )
    query, refs = parse_people(command.text)
    if not refs:
        raise CommandError(f"Whom? Say for example `owners {action} polonius @lqd`.")
    goal = resolve_goal(call, command, query)
    people = find_people(call, refs, create=action != "remove")
    rows = list(
        call.session.execute(select(GoalOwner).where(GoalOwner.goal_id == goal.id)).scalars()
    )
    current = {r.person_id: r for r in rows}
    wanted_ids = [p.id for p in people]
    if action == "remove":
        missing = [p for p in people if p.id not in current]
        if missing:
            raise CommandError(
                f"{', '.join(person_text(p) for p in missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not an owner of {goal_title(goal)}; "
                "nothing was changed."
            )
        for pid in wanted_ids:
            call.session.delete(current.pop(pid))
    else:
        if action == "set":
            for pid in list(current):
                if pid not in wanted_ids:
                    call.session.delete(current.pop(pid))
        position = max((r.position for r in current.values()), default=-1) + 1
        for p in people:
            if p.id in current:
                continue
            row = GoalOwner(
                goal_id=goal.id, person_id=p.id, role=OwnerRole.OWNER, position=position
            )
            call.session.add(row)
            current[p.id] = row
            position += 1
        if action == "set":
            for i, pid in enumerate(wanted_ids):
                current[pid].position = i
    goal_row = call.session.get(Goal, goal.id)
    assert goal_row is not None
    goal_row.updated_at = call.now
    call.session.flush()
    after = load_goals(call.session, goal_ids=[goal.id], include_inactive=True)[0]
    owners = ", ".join(owner_text(o, call.moment.today) for o in after.owners) or "nobody"
    return [f"Owners of {goal_title(after)}: {owners}."]


def cmd_cadence(call: Call, command: Command) -> list[str]:
    words = command.text.split()
    usage = "Say `cadence <goal> 1`, `2` or `4` (weeks between prompts), or `default`."
    if not words:
        raise CommandError(usage)
    value = words[-1].lower()
    query = " ".join(words[:-1])
    if value == "default":
        weeks: int | None = None
    elif value.isdigit() and int(value) in CADENCES:
        weeks = int(value)
    else:
        raise CommandError(f"'{echo(value)}' is not a cadence. {usage}")
    goal = resolve_goal(call, command, query)
    row = call.session.get(Goal, goal.id)
    assert row is not None
    row.cadence_weeks = weeks
    row.updated_at = call.now
    effective = effective_cadence(weeks, call.config.schedule.cadence_weeks)
    default = " (the default)" if weeks is None else ""
    upcoming = next_prompt(call.now, effective, call.moment.slot)
    return [
        f"{goal_title(goal)} is now prompted every {plural(effective, 'week')}{default}. "
        f"Next prompt: {time_tag(upcoming)}."
    ]


def cmd_retire(call: Call, command: Command) -> list[str]:
    goal = resolve_goal(call, command, command.text)
    if goal.state is GoalState.RETIRED:
        return [f"{goal_title(goal)} is already retired."]
    row = call.session.get(Goal, goal.id)
    assert row is not None
    row.state = GoalState.RETIRED
    row.updated_at = call.now
    return [
        f"{goal_title(goal)} is retired: no more prompts, and it leaves lists and the digest. "
        "Its history stays."
    ]
