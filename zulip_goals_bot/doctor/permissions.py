"""Zulip's permission rules that decide whether the bot may post, and may subscribe others,
as plain functions of roles and policies (Zulip's API docs, "roles and permissions")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zulip_goals_bot.doctor.facts import ZulipFacts

# Zulip's numbers (API docs, "roles and permissions"), as plain data for the pure checks.
ROLE_OWNER, ROLE_ADMIN, ROLE_MODERATOR, ROLE_MEMBER, ROLE_GUEST = 100, 200, 300, 400, 600
BOT_TYPE_GENERIC = 1
BOT_TYPES = {1: "generic bot", 2: "incoming webhook bot", 3: "outgoing webhook bot",
             4: "embedded bot"}  # fmt: skip
POST_EVERYONE, POST_ADMINS, POST_FULL_MEMBERS, POST_MODERATORS = 1, 2, 3, 4
DM_NOBODY = 2
INVITE_MEMBERS, INVITE_ADMINS, INVITE_FULL_MEMBERS, INVITE_MODERATORS = 1, 2, 3, 4


def role_of(member: Mapping[str, Any] | None) -> int:
    """A member's role, as ``GET /users`` gives it (a member when unknown)."""
    return int(member.get("role", ROLE_MEMBER)) if member is not None else ROLE_MEMBER


def post_refusal(policy: int, role: int) -> str | None:
    """Why a stream's posting policy refuses someone of this role, or None (Zulip's rule)."""
    if role <= ROLE_ADMIN or policy == POST_EVERYONE:
        return None
    if policy == POST_ADMINS:
        return "only administrators may post there"
    if policy == POST_MODERATORS and role != ROLE_MODERATOR:
        return "only administrators and moderators may post there"
    if role == ROLE_GUEST:
        return "guests may not post there"
    return None  # full members only: a bot counts as one once its owner does


def bot_may_post(policy: int, z: ZulipFacts) -> str | None:
    """A bot may post where it may, or else where its owner may; the refusal otherwise."""
    refusal = post_refusal(policy, role_of(z.me))
    owner = z.member(z.me.get("bot_owner_id"))
    if refusal is not None and z.me.get("is_bot") and owner is not None:
        if post_refusal(policy, role_of(owner)) is None:
            return None
        refusal += f", and the bot's owner {owner.get('full_name')} may not either"
    return refusal


def may_subscribe_others(policy: int, role: int) -> bool:
    """``invite_to_stream_policy`` for someone of this role (Zulip's ``has_permission``)."""
    if role <= ROLE_ADMIN:
        return True
    if policy == INVITE_ADMINS:
        return False
    if role == ROLE_MODERATOR:
        return True
    if policy == INVITE_MODERATORS:
        return False
    return role != ROLE_GUEST
