"""Commands for bot admins: adding goals, changing owners and cadences, retiring, mapping people."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select

from zulip_goals_bot.commands.answers import goal_title, owner_text
from zulip_goals_bot.commands.call import Call, resolve_goal
from zulip_goals_bot.commands.effects import (
    AddGoal,
    Answer,
    Link,
    SetCadence,
    SetGoalState,
    SetOwners,
    Who,
)
from zulip_goals_bot.commands.grammar import (
    OWNERS_ACTIONS,
    Command,
    parse_handle,
    parse_people,
    split_word,
)
from zulip_goals_bot.commands.people import Named, find_people, named_view, person_text, who_of
from zulip_goals_bot.db.models import DigestSubscription, Goal, Person
from zulip_goals_bot.db.queries import MANUAL_PERIOD
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
from zulip_goals_bot.domain.views import OwnerView
from zulip_goals_bot.errors import CommandError
from zulip_goals_bot.goals.matching import echo
from zulip_goals_bot.goals.topics import goal_topic
from zulip_goals_bot.people.link_rules import LinkResult, MappedVia, WantedLink
from zulip_goals_bot.people.linking import plan_link

# Cadences an admin may set: weekly, every two weeks, every four weeks (as in bot.conf).
CADENCES = (1, 2, 4)


# Longest slug and title `goal add` accepts (the database's slug column is 200 wide).
MAX_SLUG = 100


MAX_TITLE = 300


def cmd_subscribers(call: Call, command: Command) -> Answer:
    subs = call.session.execute(select(DigestSubscription)).scalars().all()
    if not subs:
        return Answer.say("Nobody is subscribed to the digest by DM.")
    names = sorted(
        (
            ZulipUser(s.person.zulip_user_id, s.person.full_name or "user").mention(silent=True)
            if s.person.zulip_user_id is not None
            else safe(s.person.full_name or s.person.email or f"person {s.person_id}")
        )
        for s in subs
    )
    return Answer.say(
        f"{plural(len(names), 'subscriber')} to the digest by DM:\n"
        + limit_items([f"- {n}" for n in names], SAFE_LENGTH)
    )


def cmd_map(call: Call, command: Command) -> Answer:
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
    wanted = WantedLink(handle, target.zulip_user_id, MappedVia.ADMIN, MappedVia.ADMIN.label)
    (outcome,) = plan_link(call.session, wanted).outcomes
    if outcome.result is LinkResult.ALREADY:
        return Answer.say(f"GitHub @{handle} is already linked to {person_text(target)}.")
    if outcome.result is LinkResult.CONFLICT:  # an admin outranks every source; kept safe
        raise CommandError(f"GitHub @{handle} was not linked: {outcome.detail}.")
    notes = []
    if outcome.replaced is not None:
        notes.append(f"(they were @{outcome.replaced} before)")
    holder = call.session.get(Person, outcome.taken_from) if outcome.taken_from else None
    if holder is not None:
        notes.append(f"(moved from {person_text(holder)}, with its goals)")
    extra = (" " + " ".join(notes)) if notes else ""
    return Answer.say(
        f"GitHub @{handle} is now linked to {person_text(target)}{extra}.",
        effects=(Link(wanted, who_of(target)),),
    )


_PERIOD_OPTION = re.compile(r"(?:^|\s)--period(?:=|\s+)(\S+)")


_SLUG = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MAX_SLUG - 1}}}$")


def cmd_goal(call: Call, command: Command) -> Answer:
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
    return Answer.say(
        f"Added **{safe(title)}** (`{slug}`, period {period}); its topic is "
        f"{topic_link(call.moment.goals_stream, topic)}. Add owners with "
        f"`owners add {slug} @github-handle`.",
        effects=(AddGoal(period, slug, title, topic),),
    )


def cmd_owners(call: Call, command: Command) -> Answer:
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
    current = {o.person.person_id: o for o in goal.owners}
    named = [who_of(p) for p in people]
    if action == "remove":
        missing = [p for p, who in zip(people, named, strict=True) if who not in current]
        if missing:
            raise CommandError(
                f"{', '.join(person_text(p) for p in missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not an owner of {goal_title(goal)}; "
                "nothing was changed."
            )
    after = _owners_after(action, goal.owners, people)
    shown = ", ".join(owner_text(o, call.moment.today) for o, _ in after) or "nobody"
    owners = tuple(who for _, who in after)
    return Answer.say(
        f"Owners of {goal_title(goal)}: {shown}.", effects=(SetOwners(goal.id, owners),)
    )


def _owners_after(
    action: str, owners: Sequence[OwnerView], people: Sequence[Named]
) -> list[tuple[OwnerView, Who]]:
    """The goal's owners once ``owners <action>`` is done, in order, each with who they are."""
    current = {o.person.person_id: o for o in owners}
    named = [(p, who_of(p)) for p in people]
    if action == "remove":
        gone = {who for _, who in named}
        return [(o, o.person.person_id) for o in owners if o.person.person_id not in gone]
    kept: list[tuple[OwnerView, Who]] = []
    if action != "set":
        kept = [(o, o.person.person_id) for o in owners]
    known = {who for _, who in kept}
    for p, who in named:
        if who in known:
            continue
        found = current.get(who) if isinstance(who, int) else None
        kept.append((found or OwnerView(named_view(p), OwnerRole.OWNER), who))
        known.add(who)
    return kept


def cmd_cadence(call: Call, command: Command) -> Answer:
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
    effective = effective_cadence(weeks, call.config.schedule.cadence_weeks)
    default = " (the default)" if weeks is None else ""
    upcoming = next_prompt(call.now, effective, call.moment.slot)
    return Answer.say(
        f"{goal_title(goal)} is now prompted every {plural(effective, 'week')}{default}. "
        f"Next prompt: {time_tag(upcoming)}.",
        effects=(SetCadence(goal.id, weeks),),
    )


def cmd_retire(call: Call, command: Command) -> Answer:
    goal = resolve_goal(call, command, command.text)
    if goal.state is GoalState.RETIRED:
        return Answer.say(f"{goal_title(goal)} is already retired.")
    return Answer.say(
        f"{goal_title(goal)} is retired: no more prompts, and it leaves lists and the digest. "
        "Its history stays.",
        effects=(SetGoalState(goal.id, GoalState.RETIRED),),
    )
