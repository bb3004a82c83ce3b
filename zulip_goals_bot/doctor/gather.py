"""Gathering the facts: the files, the database, and Zulip (through ``ZulipIO``: reads, one
Markdown render and one event queue that it deletes at once).  Never sends a message and never
changes a setting, a file or the database."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zulip_goals_bot.doctor.facts import (
    DbFacts,
    Facts,
    FileFacts,
    GitHubFacts,
    IssueFacts,
    ZulipFacts,
)
from zulip_goals_bot.domain.events import is_goals_stream
from zulip_goals_bot.domain.views import GoalOutline

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from zulip_goals_bot.bot.zulip_io import ZulipIO
    from zulip_goals_bot.clock import Clock
    from zulip_goals_bot.config import Config
    from zulip_goals_bot.db.engine import Database

# A doctor must answer quickly: each request is tried this often, not the bot's eight times.
ATTEMPTS = 2


def file_facts(config_path: Path, load: Callable[[], Config]) -> tuple[FileFacts, Config | None]:
    from zulip_goals_bot.errors import ConfigError

    try:
        config = load()
    except ConfigError as exc:
        return FileFacts(config_path, config_error=_after_path(str(exc), config_path)), None
    rc = config.zuliprc
    env = bool(os.environ.get("ZULIP_EMAIL") and os.environ.get("ZULIP_API_KEY"))
    if not rc.exists() and env and os.environ.get("ZULIP_SITE"):
        return FileFacts(config_path, zuliprc_path=rc, credentials_from_env=True), config
    try:
        from zulip_goals_bot.bot.zulip_io import check_zuliprc

        check_zuliprc(rc, warn=False)
        mode = rc.stat().st_mode & 0o777
    except ConfigError as exc:
        return FileFacts(config_path, zuliprc_path=rc, zuliprc_error=str(exc)), config
    except OSError as exc:
        return FileFacts(config_path, zuliprc_path=rc, zuliprc_error=str(exc)), config
    return FileFacts(config_path, zuliprc_path=rc, zuliprc_mode=mode), config


def _site(zuliprc: Path) -> str:
    """The server's URL as the zuliprc (or ZULIP_SITE) names it, for a server that is down."""
    import configparser

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(zuliprc, encoding="utf-8")
        return parser.get("api", "site", fallback=os.environ.get("ZULIP_SITE", "")).rstrip("/")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return os.environ.get("ZULIP_SITE", "")


def _after_path(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message.removeprefix(prefix)


def zulip_facts(io: ZulipIO, config: Config, *, render: bool = True) -> ZulipFacts:
    """Read what the checks need; never sends a message or changes a setting.

    Without ``render`` the emoji is looked up among the custom emoji only: ``run`` skips the
    render request, a POST to ``messages/...`` that its message traffic should not include.
    """
    from zulip_goals_bot.errors import ZulipError

    unread: dict[str, str] = {}

    def get(name: str, url: str, method: str = "GET", **request: Any) -> dict[str, Any] | None:
        try:
            return io.call(url, method=method, request=request or None, attempts=ATTEMPTS)
        except ZulipError as exc:
            unread[name] = str(exc)
            return None

    try:
        me = io.call("users/me", attempts=ATTEMPTS)
    except ZulipError as exc:
        refused = exc.code in ("UNAUTHORIZED", "INVALID_API_KEY", "USER_DEACTIVATED")
        return ZulipFacts(site=io.site, error=str(exc), refused=refused)
    server_time = io.last_server_time()
    settings = get("server", "server_settings") or {}
    users = get("users", "users", include_custom_profile_fields=False) or {}
    streams = get("streams", "streams") or {}
    subs = get("subscriptions", "users/me/subscriptions", include_subscribers=True) or {}
    subscribed = {int(s["stream_id"]) for s in subs.get("subscriptions", [])}
    stream_members = {
        int(s["stream_id"]): frozenset(int(u) for u in s.get("subscribers", []))
        for s in subs.get("subscriptions", [])
    }
    visible = list(streams.get("streams", []))
    goals = next(
        (s for s in visible if is_goals_stream(str(s.get("name", "")), config.stream)),
        None,
    )
    if goals is not None and int(goals["stream_id"]) not in stream_members:
        found = get("stream_members", f"streams/{int(goals['stream_id'])}/members")
        if found is not None:
            stream_members[int(goals["stream_id"])] = frozenset(
                int(u) for u in found.get("subscribers", [])
            )
    realm: dict[str, Any] = {}
    registered = get(
        "realm", "register", "POST", event_types=["realm"], fetch_event_types=["realm"]
    )
    if registered is not None:
        realm = {k: v for k, v in registered.items() if k.startswith("realm_")}
        io.deregister(str(registered.get("queue_id")))
    emoji = get("emoji", "realm/emoji") or {}
    rendered = (
        get("emoji", "messages/render", "POST", content=f":{config.ack_emoji}:") if render else None
    )
    if not render and any(
        e.get("name") == config.ack_emoji and not e.get("deactivated")
        for e in emoji.get("emoji", {}).values()
    ):
        rendered = {"rendered": 'class="emoji"'}  # an active custom emoji renders
    fields = get("profile_fields", "realm/profile_fields") or {}
    level = settings.get("zulip_feature_level")
    return ZulipFacts(
        site=io.site,
        me=me,
        version=str(settings.get("zulip_version", "")),
        feature_level=int(level) if level is not None else None,
        server_time=server_time,
        members=tuple(users.get("members", [])),
        streams=tuple(visible),
        subscribed=frozenset(subscribed),
        stream_members=stream_members,
        realm=realm,
        custom_emoji=tuple(emoji.get("emoji", {}).values()),
        ack_renders=(
            'class="emoji' in str(rendered.get("rendered", "")) if rendered is not None else None
        ),
        profile_fields=tuple(fields.get("custom_fields", [])),
        unread=unread,
    )


def db_facts(config: Config, db: Database | None = None) -> DbFacts:
    """Reachable, at which migration, and the goals; never creates or migrates anything.

    ``run`` passes its own ``db`` (already open and migrated); ``doctor`` opens one here.
    """
    from sqlalchemy.engine import make_url

    url = make_url(config.database_url)
    where = url.render_as_string(hide_password=True)
    if db is not None:
        return _read_db(db, where)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        assert url.database is not None
        if not Path(url.database).exists():
            return DbFacts(where, missing_file=True)
    from zulip_goals_bot.db.engine import Database
    from zulip_goals_bot.errors import GoalsBotError

    try:
        db = Database(config.database_url)
    except Exception as exc:  # a bad URL or a missing driver is a finding, not a crash
        return DbFacts(where, error=str(exc).splitlines()[0])
    try:
        return _read_db(db, where)
    except GoalsBotError as exc:
        return DbFacts(where, error=str(exc))
    finally:
        db.dispose()


def _read_db(db: Database, where: str) -> DbFacts:
    from sqlalchemy.exc import SQLAlchemyError

    # The newest migration this code knows (a test holds it equal to Alembic's head), so that
    # checking does not import Alembic (8 MB a running bot would keep).
    from zulip_goals_bot.db.engine import SCHEMA_HEAD
    from zulip_goals_bot.db.queries import load_outlines

    head = SCHEMA_HEAD
    try:
        current = db.stored_revision()
    except SQLAlchemyError as exc:
        return DbFacts(where, error=str(exc.orig if hasattr(exc, "orig") else exc).splitlines()[0])
    if current is None:
        return DbFacts(where, current=None, head=head, goals_error="no tables yet")
    try:
        with db.read() as session:
            goals = tuple(load_outlines(session))
            syncs = tuple(_github_syncs(session))
    except SQLAlchemyError as exc:
        return DbFacts(where, current=current, head=head, goals_error=str(exc).splitlines()[0])
    return DbFacts(where, current=current, head=head, goals=goals, github_syncs=syncs)


def _github_syncs(session: Session) -> list[tuple[str, datetime | None, str | None]]:
    from sqlalchemy import select

    from zulip_goals_bot.db.models import GitHubIssue, Goal

    rows = session.execute(
        select(Goal.slug, GitHubIssue.synced_at, GitHubIssue.error)
        .join(Goal, Goal.id == GitHubIssue.goal_id)
        .order_by(Goal.slug)
    )
    return [(slug, synced, error) for slug, synced, error in rows]


def gather(config_path: Path, clock: Clock) -> Facts:
    from zulip_goals_bot.bot.zulip_io import ZulipIO
    from zulip_goals_bot.config import load_config
    from zulip_goals_bot.errors import GoalsBotError

    files, config = file_facts(config_path, lambda: load_config(config_path))
    now = clock.now()
    if config is None:
        return Facts(files, now)
    zulip: ZulipFacts | None = None
    if files.zuliprc_error is None:
        try:
            io = ZulipIO(config.zuliprc)
        except GoalsBotError as exc:
            zulip = ZulipFacts(site=_site(config.zuliprc), error=str(exc))
        else:
            zulip = zulip_facts(io, config)
    db = db_facts(config)
    github = github_facts(config, db.goals, clock) if config.github.repository else None
    return Facts(files, now, config, zulip, db, github)


def github_facts(config: Config, goals: Sequence[GoalOutline], clock: Clock) -> GitHubFacts:
    """Ask GitHub about the token, the repository, each running goal's issue and the rate
    limit: read-only requests (``/rate_limit`` does not count against the limit)."""
    from zulip_goals_bot.errors import GitHubError, GoalsBotError
    from zulip_goals_bot.github.connect import github_client
    from zulip_goals_bot.github.issues import parse_issue_ref

    cfg = config.github
    auth = "GitHub App" if cfg.app_id else "token"
    try:
        client = github_client(cfg, clock.now)
    except GoalsBotError as exc:
        return GitHubFacts(cfg.repository, auth, credentials_error=str(exc))
    with client:
        try:
            repo = client.get(f"/repos/{cfg.repository}").data
        except GitHubError as exc:
            if exc.status == 404:
                return GitHubFacts(cfg.repository, auth, repo_error=str(exc))
            return GitHubFacts(cfg.repository, auth, error=str(exc), refused=exc.status == 401)
        permissions = repo.get("permissions") if isinstance(repo, dict) else None
        can_push = bool(permissions.get("push")) if isinstance(permissions, dict) else None
        issues: list[IssueFacts] = []
        for goal in goals:
            if not goal.is_running:
                continue
            ref = parse_issue_ref(goal.tracking_issue, goal.tracking_url, cfg.repository)
            if ref is None:
                continue
            try:
                client.get(ref.api_path)
            except GitHubError as exc:
                issues.append(IssueFacts(goal.slug, str(ref), str(exc), exc.status))
                if exc.retry_at is not None or exc.status == 0:
                    break
            else:
                issues.append(IssueFacts(goal.slug, str(ref)))
        remaining = limit = None
        reset = None
        try:
            core = client.get("/rate_limit").data["resources"]["core"]
            remaining, limit = int(core["remaining"]), int(core["limit"])
            reset = datetime.fromtimestamp(int(core["reset"]), UTC)
        except (GitHubError, KeyError, TypeError, ValueError):
            pass
    return GitHubFacts(
        cfg.repository,
        auth,
        can_push=can_push,
        issues=tuple(issues),
        rate_remaining=remaining,
        rate_limit=limit,
        rate_reset=reset,
    )
