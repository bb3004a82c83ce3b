"""The emulator: a threaded HTTP server on loopback answering as api.github.com does.

One lock guards all state; requests are served on threads so a client's concurrent calls and
kept-alive connections behave as against GitHub. Everything GitHub decides per request is
decided here in the order GitHub does it: credentials (401), which route (404), the primary rate
limit (403, not for ``/rate_limit``), visibility (a private repository the token cannot see is
404, never 403), write permission (401 anonymous, 403 token), validation (422), then the answer,
its weak ETag and a 304 for a matching ``If-None-Match`` (not counted against the rate limit).

Known simplifications, each chosen because a goals bot does not depend on it: rate limits are per
token (GitHub pools a user's tokens); the ETag hashes the body only (GitHub's varies with
``Authorization`` and ``Accept`` too); ``Last-Modified``/``If-Modified-Since``, media types other
than JSON, labels, reactions and repository-wide comment lists are not emulated.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import secrets
import string
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from . import appauth
from .faults import Fault, Faults
from .model import App, Comment, Issue, Repo, Token, User, github_time

__all__ = ["FakeGitHub", "RequestRecord"]

Clock = Callable[[], datetime]

DOCS = "https://docs.github.com/rest"
RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_DOCS = (
    "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api"
    "#about-secondary-rate-limits"
)
EXPOSE_HEADERS = (
    "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, X-RateLimit-Remaining, "
    "X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset, X-OAuth-Scopes, "
    "X-Accepted-OAuth-Scopes, X-Poll-Interval, X-GitHub-Media-Type, X-GitHub-SSO, "
    "X-GitHub-Request-Id, Deprecation, Sunset"
)
COMMENT_MAX = 65536  # GitHub refuses longer comment and issue bodies
RATE_WINDOW = 3600
ANONYMOUS_LIMIT = 60
APP_LIMIT = 5000
JWT_MAX_LIFETIME = 600
INSTALLATION_TOKEN_LIFETIME = timedelta(hours=1)


@dataclass
class RequestRecord:
    """One request as the emulator saw and answered it (``status`` 0: cut, no answer sent)."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    request_headers: dict[str, str]
    response_headers: dict[str, str]
    counted: bool
    body: Any = None
    fault: str | None = None


class ApiError(Exception):
    """An error answer: raised anywhere in a handler, rendered as GitHub's JSON error."""

    def __init__(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(payload.get("message"))
        self.status = status
        self.payload = payload
        self.headers = headers or {}


def error_body(status: int, message: str, doc: str = DOCS, **extra: Any) -> dict[str, Any]:
    """GitHub's error JSON: message, documentation_url and (since 2024) status as a string."""
    body: dict[str, Any] = {"message": message}
    body.update(extra)
    body["documentation_url"] = doc
    body["status"] = str(status)
    return body


@dataclass
class _Bucket:
    """A primary rate limit window: starts at the first request, lasts an hour."""

    limit: int
    subject: str  # "user ID 12", "installation ID 4", "127.0.0.1"
    used: int = 0
    reset: int | None = None

    def roll(self, now: int) -> None:
        if self.reset is None or now >= self.reset:
            self.used = 0
            self.reset = now + RATE_WINDOW

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)

    def as_json(self) -> dict[str, int]:
        return {
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining,
            "reset": self.reset or 0,
        }


@dataclass
class _Principal:
    """Who is asking: nobody, a token (personal or installation) or an app by its JWT."""

    kind: str  # "anonymous" | "token" | "app"
    bucket: _Bucket
    token: Token | None = None
    app: App | None = None

    @property
    def denied_message(self) -> str:
        if self.token is not None and self.token.app is None:
            return "Resource not accessible by personal access token"
        return "Resource not accessible by integration"


@dataclass
class _Reply:
    status: int
    payload: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # a non-JSON body (502 page)
    content_type: str = "application/json; charset=utf-8"


@dataclass
class _Ctx:
    method: str
    path: str
    pairs: list[tuple[str, str]]
    query: dict[str, str]
    body: Any
    headers: dict[str, str]
    principal: _Principal
    doc: str
    now: datetime


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    handler: str
    doc: str
    scopes: str = ""  # X-Accepted-OAuth-Scopes
    app_only: bool = False
    counts: bool = True


_REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
_ISSUES_DOCS = "https://docs.github.com/rest/issues"


def _route(method: str, path: str, handler: str, doc: str, **kw: Any) -> _Route:
    return _Route(method, re.compile(f"^{path}$"), handler, doc, **kw)


ROUTES: tuple[_Route, ...] = (
    _route(
        "GET",
        _REPO,
        "get_repo",
        "https://docs.github.com/rest/repos/repos#get-a-repository",
        scopes="repo",
    ),
    _route(
        "GET",
        _REPO + r"/issues/(?P<number>\d+)",
        "get_issue",
        f"{_ISSUES_DOCS}/issues#get-an-issue",
        scopes="repo",
    ),
    _route(
        "PATCH",
        _REPO + r"/issues/(?P<number>\d+)",
        "patch_issue",
        f"{_ISSUES_DOCS}/issues#update-an-issue",
    ),
    _route(
        "GET",
        _REPO + r"/issues/(?P<number>\d+)/comments",
        "list_comments",
        f"{_ISSUES_DOCS}/comments#list-issue-comments",
        scopes="repo",
    ),
    _route(
        "POST",
        _REPO + r"/issues/(?P<number>\d+)/comments",
        "create_comment",
        f"{_ISSUES_DOCS}/comments#create-an-issue-comment",
    ),
    _route(
        "GET",
        _REPO + r"/issues/comments/(?P<cid>\d+)",
        "get_comment",
        f"{_ISSUES_DOCS}/comments#get-an-issue-comment",
        scopes="repo",
    ),
    _route(
        "PATCH",
        _REPO + r"/issues/comments/(?P<cid>\d+)",
        "patch_comment",
        f"{_ISSUES_DOCS}/comments#update-an-issue-comment",
    ),
    _route(
        "DELETE",
        _REPO + r"/issues/comments/(?P<cid>\d+)",
        "delete_comment",
        f"{_ISSUES_DOCS}/comments#delete-an-issue-comment",
    ),
    _route(
        "GET",
        r"/rate_limit",
        "rate_limit",
        "https://docs.github.com/rest/rate-limit/rate-limit"
        "#get-rate-limit-status-for-the-authenticated-user",
        counts=False,
    ),
    _route(
        "GET",
        r"/user",
        "get_me",
        "https://docs.github.com/rest/users/users#get-the-authenticated-user",
    ),
    _route(
        "GET",
        r"/users/(?P<username>[^/]+)",
        "get_user",
        "https://docs.github.com/rest/users/users#get-a-user",
    ),
    _route(
        "GET",
        _REPO + r"/installation",
        "get_installation",
        "https://docs.github.com/rest/apps/apps"
        "#get-a-repository-installation-for-the-authenticated-app",
        app_only=True,
    ),
    _route(
        "GET",
        r"/app",
        "get_app",
        "https://docs.github.com/rest/apps/apps#get-the-authenticated-app",
        app_only=True,
    ),
    _route(
        "POST",
        r"/app/installations/(?P<iid>\d+)/access_tokens",
        "create_access_token",
        "https://docs.github.com/rest/apps/apps#create-an-installation-access-token-for-an-app",
        app_only=True,
    ),
)


def _parse_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _weak_etag(body: bytes) -> str:
    return 'W/"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _etag_matches(header: str, etag: str) -> bool:
    """``If-None-Match`` uses weak comparison (RFC 9110 §13.1.2): ``W/`` does not matter."""
    wanted = etag.removeprefix("W/")
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


def _int_param(query: dict[str, str], name: str, default: int) -> int:
    try:
        value = int(query.get(name, ""))
    except ValueError:
        return default
    return value if value >= 1 else default


class FakeGitHub:
    """An in-process api.github.com for tests: seed it, point a client at ``url``, inspect it.

    ``clock`` is a zero-argument callable returning an aware datetime; it decides every
    timestamp the emulator writes, rate limit windows, JWT expiry and installation token expiry,
    so a test moves time by changing what it returns. The default is the real UTC time.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._users: dict[str, User] = {}
        self._repos: dict[str, Repo] = {}
        self._repos_by_id: dict[int, Repo] = {}
        self._comments: dict[int, Comment] = {}
        self._tokens: dict[str, Token] = {}
        self._apps: dict[int, App] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._requests: list[RequestRecord] = []
        self._user_ids = itertools.count(1_000_001)
        self._repo_ids = itertools.count(724_712, 17)
        self._issue_ids = itertools.count(2_100_000_001, 29)
        # Large and with gaps, as GitHub's are: a client must not assume ids are consecutive.
        self._comment_ids = itertools.count(2_690_000_003, 13)
        self._request_ids = itertools.count(secrets.randbelow(0x10000))
        self.faults = Faults()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- life cycle ----------------------------------------------------------------------

    def start(self, port: int = 0) -> FakeGitHub:
        """Listen on 127.0.0.1 (a random free port unless given) and serve on a thread."""
        if self._server is not None:
            return self
        handler = type("Handler", (_Handler,), {"gh": self})
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; state stays readable."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def now(self) -> datetime:
        """The emulator's current time (the injected clock, in UTC, whole seconds)."""
        return self._clock().astimezone(UTC).replace(microsecond=0)

    @property
    def api(self) -> str:
        """Base of the API URLs written into JSON (the server's URL once started)."""
        return self.url or "https://api.github.com"

    # --- seeding -------------------------------------------------------------------------

    def add_user(
        self, login: str, type: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """Create (or return) an account; ``type`` defaults to ``Bot`` for ``name[bot]`` logins."""
        with self._lock:
            return self._user(login, type, name).simple(self.api)

    def _user(self, login: str, type: str | None = None, name: str | None = None) -> User:
        user = self._users.get(login.lower())
        if user is None:
            kind = type or ("Bot" if login.endswith("[bot]") else "User")
            if kind not in ("User", "Bot", "Organization"):
                raise ValueError(f"unknown account type {kind!r}")
            user = User(login, next(self._user_ids), kind, self.now(), name=name)
            self._users[login.lower()] = user
        return user

    def add_token(
        self,
        token: str,
        login: str,
        scopes: Iterable[str] = ("repo",),
        can_write: bool = True,
        rate_limit: int = 5000,
        repos: Iterable[str] | None = None,
    ) -> None:
        """A personal access token of ``login``; ``repos`` limits it (fine-grained), else all.

        A token sees every public repository; private ones only when ``repos`` is ``None`` or
        lists them. ``can_write=False`` makes a read-only token (403 on POST/PATCH/DELETE).
        """
        with self._lock:
            user = self._user(login)
            limited = frozenset(r.lower() for r in repos) if repos is not None else None
            self._tokens[token] = Token(token, user, tuple(scopes), can_write, rate_limit, limited)
            self._buckets.pop(token, None)

    def add_repo(
        self,
        full_name: str,
        private: bool = False,
        description: str | None = None,
        default_branch: str = "main",
    ) -> dict[str, Any]:
        """Create a repository; its owner becomes an ``Organization`` unless already a user."""
        owner_login, _, name = full_name.partition("/")
        if not owner_login or not name or "/" in name:
            raise ValueError(f"expected owner/name, got {full_name!r}")
        with self._lock:
            if full_name.lower() in self._repos:
                raise ValueError(f"repository {full_name} exists")
            owner = self._user(owner_login, "Organization")
            repo = Repo(
                owner, name, next(self._repo_ids), private, self.now(), description, default_branch
            )
            self._repos[full_name.lower()] = repo
            self._repos_by_id[repo.id] = repo
            return repo.to_json(self.api, push=True)

    def _repo(self, full_name: str) -> Repo:
        try:
            return self._repos[full_name.lower()]
        except KeyError:
            raise KeyError(f"no repository {full_name}; add_repo it first") from None

    def _issue(self, full_name: str, number: int) -> Issue:
        repo = self._repo(full_name)
        try:
            return repo.issues[number]
        except KeyError:
            raise KeyError(f"no issue {full_name}#{number}; add_issue it first") from None

    def add_issue(
        self,
        full_name: str,
        number: int,
        title: str = "",
        body: str | None = None,
        state: str = "open",
        author: str = "ghost",
        created_at: datetime | None = None,
        locked: bool = False,
    ) -> dict[str, Any]:
        """Create issue ``number`` (numbers are the caller's, as tests mirror real issues)."""
        if state not in ("open", "closed"):
            raise ValueError("state is open or closed")
        with self._lock:
            repo = self._repo(full_name)
            if number in repo.issues:
                raise ValueError(f"issue {full_name}#{number} exists")
            when = (created_at or self.now()).astimezone(UTC)
            issue = Issue(
                repo,
                number,
                next(self._issue_ids),
                title or f"Issue {number}",
                body,
                state,
                self._user(author),
                when,
                when,
                closed_at=when if state == "closed" else None,
                locked=locked,
            )
            repo.issues[number] = issue
            return issue.to_json(self.api)

    def add_comment(
        self,
        full_name: str,
        number: int,
        author: str,
        body: str,
        created_at: datetime | None = None,
        *,
        updated_at: datetime | None = None,
        author_association: str | None = None,
    ) -> int:
        """Add a comment as if ``author`` had written it; returns its id (ids only increase).

        The issue's ``updated_at`` moves to the comment's time when later, as on GitHub.
        """
        with self._lock:
            issue = self._issue(full_name, number)
            comment = self._new_comment(issue, self._user(author), body, created_at)
            if updated_at is not None:
                comment.updated_at = updated_at.astimezone(UTC).replace(microsecond=0)
            comment.author_association = author_association
            return comment.id

    def _new_comment(
        self, issue: Issue, user: User, body: str, when: datetime | None, app: App | None = None
    ) -> Comment:
        moment = (when or self.now()).astimezone(UTC).replace(microsecond=0)
        comment = Comment(next(self._comment_ids), issue, user, body, moment, moment, app)
        issue.comments[comment.id] = comment
        self._comments[comment.id] = comment
        issue.updated_at = max(issue.updated_at, moment)
        return comment

    def edit_comment(self, comment_id: int, body: str) -> None:
        """Change a comment's body as its author would; ``updated_at`` becomes the clock's now."""
        with self._lock:
            comment = self._comments[comment_id]
            comment.body = body
            comment.updated_at = self.now()

    def delete_comment(self, comment_id: int) -> None:
        """Remove a comment; it is gone from lists and its URL answers 404."""
        with self._lock:
            comment = self._comments.pop(comment_id)
            comment.issue.comments.pop(comment_id, None)

    def edit_issue_body(self, full_name: str, number: int, body: str) -> None:
        """Change an issue's description; bumps its ``updated_at``."""
        with self._lock:
            issue = self._issue(full_name, number)
            issue.body = body
            issue.updated_at = self.now()

    def add_app(
        self,
        app_id: int,
        public_key_pem: bytes,
        installation_id: int,
        repos: Iterable[str],
        login: str = "goals-bot[bot]",
        *,
        permissions: dict[str, str] | None = None,
    ) -> None:
        """A GitHub App installed on ``repos`` (which must exist), acting as the bot ``login``.

        ``public_key_pem`` may also be the app's private key PEM; only its public half is used.
        """
        if not login.endswith("[bot]"):
            raise ValueError("an app's bot login ends with [bot]")
        key = appauth.load_rsa_public_key(public_key_pem)
        with self._lock:
            repo_list = [self._repo(name).full_name for name in repos]
            if not repo_list:
                raise ValueError("an installation needs at least one repository")
            bot = self._user(login, "Bot")
            bot.app_id = app_id
            owner = self._repo(repo_list[0]).owner
            slug = login.removesuffix("[bot]")
            app = App(
                app_id,
                key,
                installation_id,
                repo_list,
                bot,
                owner,
                slug,
                self.now(),
                f"Iv23li{app_id:014d}",
                permissions or {"issues": "write", "metadata": "read"},
            )
            self._apps[app_id] = app

    # --- inspection ----------------------------------------------------------------------

    def comments(self, full_name: str, number: int) -> list[dict[str, Any]]:
        """The issue's comments as GitHub holds them now, API-shaped, oldest id first."""
        with self._lock:
            issue = self._issue(full_name, number)
            return [issue.comments[cid].to_json(self.api) for cid in sorted(issue.comments)]

    def issue(self, full_name: str, number: int) -> dict[str, Any]:
        """The issue as ``GET /repos/{o}/{r}/issues/{n}`` would answer it."""
        with self._lock:
            return self._issue(full_name, number).to_json(self.api)

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request served so far (a copy), oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def rate_limit_remaining(self, token: str) -> int:
        """What ``X-RateLimit-Remaining`` would say for ``token`` now."""
        with self._lock:
            bucket = self._bucket_for_token(self._tokens[token])
            bucket.roll(int(self.now().timestamp()))
            return bucket.remaining

    def _bucket_for_token(self, token: Token) -> _Bucket:
        bucket = self._buckets.get(token.value)
        if bucket is None:
            subject = (
                f"installation ID {token.app.installation_id}"
                if token.app
                else f"user ID {token.user.id}"
            )
            bucket = self._buckets[token.value] = _Bucket(token.rate_limit, subject)
        return bucket

    def _bucket(self, key: str, limit: int, subject: str) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(limit, subject)
        return bucket

    # --- serving -------------------------------------------------------------------------

    def _request_id(self) -> str:
        n = next(self._request_ids)
        r = secrets.randbits(64)
        stamp = int(self.now().timestamp()) & 0xFFFFFFFF
        return f"{n & 0xFFFF:04X}:{r & 0xFFFFF:05X}:{(r >> 20) & 0xFFFFFFF:07X}:{n:07X}:{stamp:08X}"

    def _authenticate(self, headers: dict[str, str]) -> _Principal:
        """401 for anything GitHub would not accept; no header at all is anonymous."""
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        if value is None:
            return _Principal("anonymous", self._bucket("anonymous", ANONYMOUS_LIMIT, "127.0.0.1"))
        scheme, _, credential = value.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() not in ("token", "bearer") or not credential:
            raise ApiError(401, error_body(401, "Bad credentials"))
        if appauth.looks_like_jwt(credential):
            app = self._verify_app_jwt(credential)
            return _Principal(
                "app", self._bucket(f"app:{app.app_id}", APP_LIMIT, f"app ID {app.app_id}"), app=app
            )
        token = self._tokens.get(credential)
        if token is None or (token.expires_at is not None and self.now() >= token.expires_at):
            raise ApiError(401, error_body(401, "Bad credentials"))
        return _Principal("token", self._bucket_for_token(token), token=token)

    def _verify_app_jwt(self, credential: str) -> App:
        """GitHub's JWT checks and messages: decodable, RS256, known issuer, signature, times."""
        try:
            header, claims, signing_input, signature = appauth.decode_jwt(credential)
        except appauth.JWTError as exc:
            raise ApiError(401, error_body(401, str(exc))) from exc
        undecodable = ApiError(401, error_body(401, "A JSON web token could not be decoded"))
        if header.get("alg") != "RS256":
            raise undecodable
        issuer = str(claims.get("iss", ""))
        app = next((a for a in self._apps.values() if issuer in (str(a.app_id), a.client_id)), None)
        if app is None or not appauth.verify_rs256(app.public_key, signing_input, signature):
            raise undecodable
        now = int(self.now().timestamp())
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or isinstance(iat, bool) or iat > now:
            raise ApiError(
                401,
                error_body(
                    401,
                    "'Issued at' claim ('iat') must be an Integer "
                    "representing the time that the assertion was issued",
                ),
            )
        if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
            raise ApiError(
                401,
                error_body(
                    401,
                    "'Expiration time' claim ('exp') must be a numeric "
                    "value representing the future time at which the "
                    "assertion expires",
                ),
            )
        if exp > now + JWT_MAX_LIFETIME:
            raise ApiError(
                401, error_body(401, "'Expiration time' claim ('exp') is too far in the future")
            )
        return app

    def _match(self, method: str, path: str) -> tuple[_Route, dict[str, str]] | None:
        lookup = "GET" if method == "HEAD" else method
        for route in ROUTES:
            found = route.pattern.match(path)
            if found and route.method == lookup:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def _rewrite_repository_id(self, path: str) -> str:
        """``/repositories/{id}/...`` (what GitHub's Link headers use) is ``/repos/{o}/{r}/...``."""
        found = re.match(r"^/repositories/(\d+)(/.*)?$", path)
        if not found:
            return path
        repo = self._repos_by_id.get(int(found.group(1)))
        if repo is None:
            return "/repositories/unknown" + (found.group(2) or "")
        return f"/repos/{repo.full_name}{found.group(2) or ''}"

    def _dispatch(
        self,
        method: str,
        raw_path: str,
        headers: dict[str, str],
        raw_body: bytes,
        fault: Fault | None,
    ) -> tuple[_Reply, bool, Any]:
        """Answer one request: (reply, counted against the rate limit, parsed request body)."""
        split = urlsplit(raw_path)
        pairs = parse_qsl(split.query, keep_blank_values=True)
        query = dict(pairs)
        body: Any = None
        with self._lock:
            now = self.now()
            epoch = int(now.timestamp())
            request_id = self._request_id()
            try:
                principal = self._authenticate(headers)
            except ApiError as exc:
                anonymous = self._bucket("anonymous", ANONYMOUS_LIMIT, "127.0.0.1")
                anonymous.roll(epoch)
                reply = _Reply(exc.status, exc.payload, exc.headers)
                self._finish(reply, anonymous, None, "", request_id)
                return reply, False, None
            bucket = principal.bucket
            bucket.roll(epoch)
            if fault is not None and fault.kind == "fail":
                reply = self._fault_reply(fault, bucket)
                self._finish(reply, bucket, principal, "", request_id)
                return reply, False, None
            path = self._rewrite_repository_id(split.path)
            matched = self._match(method, path)
            route = matched[0] if matched else None
            counts = route.counts if route else True
            if counts and bucket.remaining <= 0:
                message = (
                    f"API rate limit exceeded for {bucket.subject}. If you reach out to GitHub "
                    f"Support for help, please include the request ID "
                    f"{request_id} and timestamp "
                    f"{now.strftime('%Y-%m-%d %H:%M:%S')} UTC."
                )
                if principal.kind == "anonymous":
                    message = (
                        f"API rate limit exceeded for {bucket.subject}. (But here's the good news:"
                        " Authenticated requests get a higher rate limit. Check out the "
                        "documentation for more details.)"
                    )
                reply = _Reply(403, error_body(403, message, RATE_DOCS))
                self._finish(reply, bucket, principal, route.scopes if route else "", request_id)
                return reply, False, None
            try:
                if route is None or matched is None:
                    raise ApiError(404, error_body(404, "Not Found"))
                if method in ("POST", "PATCH", "PUT"):
                    body = self._parse_body(raw_body, route.doc)
                ctx = _Ctx(
                    method, split.path, pairs, query, body, headers, principal, route.doc, now
                )
                if route.app_only and principal.kind != "app":
                    raise ApiError(401, error_body(401, "A JSON web token could not be decoded"))
                if not route.app_only and principal.kind == "app" and route.counts:
                    raise ApiError(
                        403, error_body(403, "Resource not accessible by integration", route.doc)
                    )
                reply = getattr(self, "_h_" + route.handler)(ctx, **matched[1])
            except ApiError as exc:
                reply = _Reply(exc.status, exc.payload, exc.headers)
            counted = counts
            if reply.status < 300 and reply.payload is not None:
                encoded = self._encode(reply.payload)
                etag = _weak_etag(encoded)
                reply.headers["ETag"] = etag
                reply.headers["Cache-Control"] = (
                    "public, max-age=60, s-maxage=60"
                    if principal.kind == "anonymous"
                    else "private, max-age=60, s-maxage=60"
                )
                inm = next((v for k, v in headers.items() if k.lower() == "if-none-match"), None)
                if method in ("GET", "HEAD") and inm and _etag_matches(inm, etag):
                    # GitHub: a 304 does not count against the primary rate limit.
                    reply = _Reply(
                        304, None, {"ETag": etag, "Cache-Control": reply.headers["Cache-Control"]}
                    )
                    counted = False
            if counted:
                bucket.used += 1
            self._finish(reply, bucket, principal, route.scopes if route else "", request_id)
            return reply, counted, body

    def _parse_body(self, raw: bytes, doc: str) -> Any:
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, error_body(400, "Problems parsing JSON", doc)) from None

    @staticmethod
    def _encode(payload: Any) -> bytes:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def _finish(
        self,
        reply: _Reply,
        bucket: _Bucket,
        principal: _Principal | None,
        scopes: str,
        request_id: str,
    ) -> None:
        """The headers every api.github.com answer carries, rate limit ones included."""
        h: dict[str, str] = {}
        if reply.status != 304:
            h["Content-Type"] = reply.content_type
        h.update(reply.headers)
        token = principal.token if principal else None
        if token is not None and token.app is None:
            h["X-OAuth-Scopes"] = ", ".join(token.scopes)
            h["X-Accepted-OAuth-Scopes"] = scopes
        h["X-GitHub-Media-Type"] = "github.v3; format=json"
        h["X-GitHub-Api-Version-Selected"] = "2022-11-28"
        h["X-RateLimit-Limit"] = str(bucket.limit)
        h.setdefault("X-RateLimit-Remaining", str(bucket.remaining))
        h["X-RateLimit-Reset"] = str(bucket.reset or 0)
        h["X-RateLimit-Used"] = str(bucket.used)
        h["X-RateLimit-Resource"] = "core"
        h["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        h["Access-Control-Allow-Origin"] = "*"
        h["Strict-Transport-Security"] = "max-age=31536000; includeSubdomains; preload"
        h["X-Frame-Options"] = "deny"
        h["X-Content-Type-Options"] = "nosniff"
        h["X-XSS-Protection"] = "0"
        h["Referrer-Policy"] = "origin-when-cross-origin, strict-origin-when-cross-origin"
        h["Content-Security-Policy"] = "default-src 'none'"
        h["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP, Accept-Encoding, Accept"
        h["X-GitHub-Request-Id"] = request_id
        reply.headers = h

    def _fault_reply(self, fault: Fault, bucket: _Bucket) -> _Reply:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        status = fault.status
        if status in (403, 429) and (fault.secondary or status == 429):
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                "try again. If you reach out to GitHub Support for help, please include the "
                "request ID and timestamp."
            )
            return _Reply(status, error_body(status, message, SECONDARY_DOCS), headers)
        if status == 403:
            headers["X-RateLimit-Remaining"] = "0"
            message = f"API rate limit exceeded for {bucket.subject}."
            return _Reply(403, error_body(403, message, RATE_DOCS), headers)
        if status == 502:
            page = b"<!DOCTYPE html>\n<html><head><title>Unicorn! &middot; GitHub</title></head>"
            page += b"<body><p>We had issues producing the response to your request.</p>"
            page += b"</body></html>\n"
            return _Reply(502, None, headers, raw=page, content_type="text/html; charset=utf-8")
        if status == 503:
            return _Reply(
                503, {"message": "Service Unavailable", "documentation_url": DOCS}, headers
            )
        return _Reply(status, {"message": "Server Error"}, headers)

    def _render(self, reply: _Reply) -> bytes:
        if reply.status in (204, 304):
            return b""
        if reply.raw is not None:
            return reply.raw
        if reply.payload is None:
            return b""
        return self._encode(reply.payload)

    # --- access ----------------------------------------------------------------------------

    def _not_found(self, ctx: _Ctx) -> ApiError:
        return ApiError(404, error_body(404, "Not Found", ctx.doc))

    def _can_see(self, principal: _Principal, repo: Repo) -> bool:
        if not repo.private:
            return True
        token = principal.token
        return token is not None and (token.repos is None or repo.full_name.lower() in token.repos)

    def _can_write(self, principal: _Principal, repo: Repo) -> bool:
        token = principal.token
        if token is None or not token.can_write:
            return False
        return token.repos is None or repo.full_name.lower() in token.repos

    def _find_repo(self, ctx: _Ctx, owner: str, repo: str, *, write: bool = False) -> Repo:
        found = self._repos.get(f"{owner}/{repo}".lower())
        if found is None or not self._can_see(ctx.principal, found):
            raise self._not_found(ctx)
        if write and not self._can_write(ctx.principal, found):
            if ctx.principal.kind == "anonymous":
                raise ApiError(401, error_body(401, "Requires authentication", ctx.doc))
            raise ApiError(
                403,
                error_body(403, ctx.principal.denied_message, ctx.doc),
                {"X-Accepted-GitHub-Permissions": "issues=write; pull_requests=write"},
            )
        return found

    def _find_issue(
        self, ctx: _Ctx, owner: str, repo: str, number: str, *, write: bool = False
    ) -> Issue:
        found = self._find_repo(ctx, owner, repo, write=write).issues.get(int(number))
        if found is None:
            raise self._not_found(ctx)
        return found

    def _find_comment(
        self, ctx: _Ctx, owner: str, repo: str, cid: str, *, write: bool = False
    ) -> Comment:
        where = self._find_repo(ctx, owner, repo, write=write)
        found = self._comments.get(int(cid))
        if found is None or found.issue.repo is not where:
            raise self._not_found(ctx)
        return found

    @staticmethod
    def _comment_body(ctx: _Ctx) -> str:
        """GitHub's checks of ``{"body": ...}``: schema errors first, then blank or too long."""
        payload = ctx.body
        if not isinstance(payload, dict) or "body" not in payload:
            raise ApiError(
                422, error_body(422, 'Invalid request.\n\n"body" wasn\'t supplied.', ctx.doc)
            )
        text = payload["body"]
        if not isinstance(text, str):
            shown = json.dumps(text)
            raise ApiError(
                422,
                error_body(
                    422,
                    f"Invalid request.\n\nFor 'properties/body', {shown} is not a string.",
                    ctx.doc,
                ),
            )
        problem = None
        if not text.strip():
            problem = "Body cannot be blank"
        elif len(text) > COMMENT_MAX:
            problem = f"Body is too long (maximum is {COMMENT_MAX} characters)"
        if problem:
            error = {
                "resource": "IssueComment",
                "code": "unprocessable",
                "field": "data",
                "message": problem,
            }
            raise ApiError(422, error_body(422, "Validation Failed", ctx.doc, errors=[error]))
        return text

    # --- handlers: one per route, named _h_<handler> ---------------------------------------

    def _h_get_repo(self, ctx: _Ctx, owner: str, repo: str) -> _Reply:
        found = self._find_repo(ctx, owner, repo)
        return _Reply(200, found.to_json(self.api, push=self._can_write(ctx.principal, found)))

    def _h_get_issue(self, ctx: _Ctx, owner: str, repo: str, number: str) -> _Reply:
        return _Reply(200, self._find_issue(ctx, owner, repo, number).to_json(self.api))

    def _h_patch_issue(self, ctx: _Ctx, owner: str, repo: str, number: str) -> _Reply:
        issue = self._find_issue(ctx, owner, repo, number, write=True)
        payload = ctx.body if isinstance(ctx.body, dict) else {}
        for name in ("title", "body"):
            if name in payload and payload[name] is not None and not isinstance(payload[name], str):
                shown = json.dumps(payload[name])
                raise ApiError(
                    422,
                    error_body(
                        422,
                        f"Invalid request.\n\nFor 'properties/{name}', {shown} is not a string.",
                        ctx.doc,
                    ),
                )
        state = payload.get("state")
        if state is not None and state not in ("open", "closed"):
            raise ApiError(
                422,
                error_body(
                    422,
                    "Invalid request.\n\nFor 'properties/state', "
                    f'{json.dumps(state)} is not one of ["open", "closed"].',
                    ctx.doc,
                ),
            )
        if isinstance(payload.get("body"), str) and len(payload["body"]) > COMMENT_MAX:
            error = {
                "resource": "Issue",
                "code": "custom",
                "field": "body",
                "message": f"body is too long (maximum is {COMMENT_MAX} characters)",
            }
            raise ApiError(422, error_body(422, "Validation Failed", ctx.doc, errors=[error]))
        if payload.get("title"):
            issue.title = payload["title"]
        if "body" in payload:
            issue.body = payload["body"]
        if state is not None and state != issue.state:
            issue.state = state
            issue.closed_at = ctx.now if state == "closed" else None
        issue.updated_at = ctx.now
        return _Reply(200, issue.to_json(self.api))

    def _h_list_comments(self, ctx: _Ctx, owner: str, repo: str, number: str) -> _Reply:
        issue = self._find_issue(ctx, owner, repo, number)
        chosen = [issue.comments[cid] for cid in sorted(issue.comments)]
        if "since" in ctx.query:
            since = _parse_time(ctx.query["since"])
            if since is None:
                error = {"resource": "IssueComment", "code": "invalid", "field": "since"}
                raise ApiError(422, error_body(422, "Validation Failed", ctx.doc, errors=[error]))
            chosen = [c for c in chosen if c.updated_at >= since]
        per_page = min(_int_param(ctx.query, "per_page", 30), 100)
        page = _int_param(ctx.query, "page", 1)
        last = (len(chosen) + per_page - 1) // per_page
        shown = chosen[(page - 1) * per_page : page * per_page]
        reply = _Reply(200, [c.to_json(self.api) for c in shown])
        link = self._link(
            ctx, f"/repositories/{issue.repo.id}/issues/{issue.number}/comments", page, last
        )
        if link:
            reply.headers["Link"] = link
        return reply

    def _link(self, ctx: _Ctx, path: str, page: int, last: int) -> str:
        """GitHub's Link header: prev, next, last, first, each the request's own query with its
        ``page`` replaced (or appended), on the ``/repositories/{id}`` form of the path."""
        if last <= 1 and page <= 1:
            return ""

        def url(number: int) -> str:
            pairs = [(k, v) for k, v in ctx.pairs if k != "page"]
            kept = [k for k, _ in ctx.pairs]
            if "page" in kept:
                pairs.insert(kept.index("page"), ("page", str(number)))
            else:
                pairs.append(("page", str(number)))
            return f"<{self.api}{path}?{urlencode(pairs)}>"

        parts = []
        if page > 1:
            parts.append(f'{url(page - 1)}; rel="prev"')
        if page < last:
            parts.append(f'{url(page + 1)}; rel="next"')
            parts.append(f'{url(last)}; rel="last"')
        if page > 1:
            parts.append(f'{url(1)}; rel="first"')
        return ", ".join(parts)

    def _h_create_comment(self, ctx: _Ctx, owner: str, repo: str, number: str) -> _Reply:
        issue = self._find_issue(ctx, owner, repo, number, write=True)
        text = self._comment_body(ctx)
        token = ctx.principal.token
        assert token is not None  # writers are token holders
        if (
            issue.locked
            and token.app is None
            and token.user.login.lower() != issue.repo.owner.login.lower()
        ):
            raise ApiError(
                403, error_body(403, "Unable to create comment because issue is locked.", ctx.doc)
            )
        comment = self._new_comment(issue, token.user, text, ctx.now, token.app)
        body = comment.to_json(self.api)
        return _Reply(201, body, {"Location": body["url"]})

    def _h_get_comment(self, ctx: _Ctx, owner: str, repo: str, cid: str) -> _Reply:
        return _Reply(200, self._find_comment(ctx, owner, repo, cid).to_json(self.api))

    def _h_patch_comment(self, ctx: _Ctx, owner: str, repo: str, cid: str) -> _Reply:
        comment = self._find_comment(ctx, owner, repo, cid, write=True)
        comment.body = self._comment_body(ctx)
        comment.updated_at = ctx.now
        return _Reply(200, comment.to_json(self.api))

    def _h_delete_comment(self, ctx: _Ctx, owner: str, repo: str, cid: str) -> _Reply:
        comment = self._find_comment(ctx, owner, repo, cid, write=True)
        del self._comments[comment.id]
        comment.issue.comments.pop(comment.id, None)
        return _Reply(204)

    def _h_rate_limit(self, ctx: _Ctx) -> _Reply:
        core = ctx.principal.bucket.as_json()
        reset = core["reset"]

        def other(limit: int) -> dict[str, int]:
            return {"limit": limit, "used": 0, "remaining": limit, "reset": reset}

        resources = {
            "core": core,
            "search": other(30),
            "graphql": other(5000 if ctx.principal.kind != "anonymous" else 0),
            "integration_manifest": other(5000),
            "source_import": other(100),
            "code_scanning_upload": other(1000),
            "actions_runner_registration": other(10000),
            "scim": other(15000),
            "dependency_snapshots": other(100),
            "code_search": other(10),
        }
        return _Reply(200, {"resources": resources, "rate": dict(core)})

    def _h_get_me(self, ctx: _Ctx) -> _Reply:
        token = ctx.principal.token
        if token is None:
            raise ApiError(401, error_body(401, "Requires authentication", ctx.doc))
        if token.app is not None:
            raise ApiError(403, error_body(403, "Resource not accessible by integration", ctx.doc))
        return _Reply(200, token.user.full(self.api, private=True))

    def _h_get_user(self, ctx: _Ctx, username: str) -> _Reply:
        user = self._users.get(username.lower())
        if user is None:
            raise self._not_found(ctx)
        return _Reply(200, user.full(self.api, private=False))

    def _h_get_installation(self, ctx: _Ctx, owner: str, repo: str) -> _Reply:
        app = ctx.principal.app
        assert app is not None
        wanted = f"{owner}/{repo}".lower()
        if wanted not in (name.lower() for name in app.repos):
            raise self._not_found(ctx)
        return _Reply(200, app.installation_json(self.api))

    def _h_get_app(self, ctx: _Ctx) -> _Reply:
        assert ctx.principal.app is not None
        return _Reply(200, ctx.principal.app.to_json(self.api))

    def _h_create_access_token(self, ctx: _Ctx, iid: str) -> _Reply:
        app = ctx.principal.app
        assert app is not None
        if int(iid) != app.installation_id:
            raise self._not_found(ctx)
        payload = ctx.body if isinstance(ctx.body, dict) else {}
        repos = list(app.repos)
        if isinstance(payload.get("repositories"), list):
            names = {str(n).lower() for n in payload["repositories"]}
            repos = [r for r in app.repos if r.split("/")[1].lower() in names]
            if len(repos) != len(names):
                error = {"resource": "Installation", "code": "invalid", "field": "repositories"}
                raise ApiError(
                    422,
                    error_body(
                        422,
                        "There is at least one repository that does "
                        "not exist or is not accessible to the parent "
                        "installation.",
                        ctx.doc,
                        errors=[error],
                    ),
                )
        permissions = dict(app.permissions)
        if isinstance(payload.get("permissions"), dict):
            permissions = {str(k): str(v) for k, v in payload["permissions"].items()}
        alphabet = string.ascii_letters + string.digits
        value = "ghs_" + "".join(secrets.choice(alphabet) for _ in range(36))
        expires = ctx.now + INSTALLATION_TOKEN_LIFETIME
        self._tokens[value] = Token(
            value,
            app.bot,
            (),
            permissions.get("issues") == "write",
            APP_LIMIT,
            frozenset(r.lower() for r in repos),
            app=app,
            expires_at=expires,
        )
        body = {
            "token": value,
            "expires_at": github_time(expires),
            "permissions": permissions,
            "repository_selection": "selected",
        }
        return _Reply(201, body)


class _Handler(BaseHTTPRequestHandler):
    """Reads a request, consults the faults, lets FakeGitHub answer, writes (or drops) it."""

    gh: FakeGitHub
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the second waits for the
    # client's delayed ACK (40 ms a request on a kept-alive connection), as GitHub's never do.
    disable_nagle_algorithm = True
    server_version = "github.com"
    sys_version = ""

    def version_string(self) -> str:
        """``Server: github.com``, as api.github.com sends it."""
        return "github.com"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``FakeGitHub.requests`` instead of a log."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header follows the emulator's clock, like every other time it writes."""
        return format_datetime(self.gh.now(), usegmt=True)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        gh = self.gh
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length > 0 else b""
        headers = dict(self.headers.items())
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        fault = gh.faults.take(self.command, path)

        def record(status: int, response_headers: dict[str, str], counted: bool, body: Any) -> None:
            with gh._lock:
                gh._requests.append(
                    RequestRecord(
                        self.command,
                        path,
                        query,
                        status,
                        headers,
                        dict(response_headers),
                        counted,
                        body,
                        fault.kind if fault else None,
                    )
                )

        if fault is not None and fault.kind == "cut":
            record(0, {}, False, None)
            self.close_connection = True
            return
        reply, counted, body = gh._dispatch(self.command, self.path, headers, raw_body, fault)
        payload = gh._render(reply)
        if reply.status not in (204, 304):
            reply.headers["Content-Length"] = str(len(payload))
        if fault is not None and fault.kind == "cut_after_commit":
            record(0, reply.headers, counted, body)
            self.close_connection = True
            return
        record(reply.status, reply.headers, counted, body)
        self.send_response(reply.status, HTTPStatus(reply.status).phrase)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)


def iter_routes() -> Iterator[tuple[str, str, str]]:
    """(method, path regex, documentation URL) of every emulated endpoint."""
    for route in ROUTES:
        yield route.method, route.pattern.pattern, route.doc
