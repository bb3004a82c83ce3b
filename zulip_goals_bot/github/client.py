"""The bot's only HTTP seam to GitHub's REST API: authentication, retries, rate limits, errors.

Everything GitHub-specific about talking HTTP lives here, so the rest of the bot sees parsed JSON
(an ``Answer``) or one ``GitHubError`` whose message says what failed and what to do. It never
sleeps for a rate limit: the error says when to come back (``retry_at``) and the caller defers
the work, so a busy bot is not frozen for an hour. Credentials appear only in the
``Authorization`` header: every message and log line is scrubbed of them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from ..errors import GitHubAmbiguous, GitHubError

__all__ = ["Answer", "AppAuth", "GitHubClient", "RateLimit", "TokenAuth"]

log = logging.getLogger(__name__)

# GitHub's recommended media type, and the API version the bot was written against: pinning it
# keeps a later default version from changing the shape of answers under us.
ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"
# Pauses before the 2nd, 3rd and 4th attempt when GitHub did not answer or answered 5xx: long
# enough for a dropped connection or a brief outage to pass, short enough for a command to answer.
RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0)
# GitHub says to wait at least a minute after a secondary rate limit that names no Retry-After.
SECONDARY_DEFAULT_WAIT = timedelta(seconds=60)
# A primary limit answer without X-RateLimit-Reset still must not be retried at once.
PRIMARY_DEFAULT_WAIT = timedelta(seconds=60)
# An App JWT is back-dated a minute in case our clock runs ahead of GitHub's (GitHub refuses an
# ``iat`` in the future) and expires in 9 minutes, inside GitHub's 10-minute maximum.
JWT_BACKDATE = timedelta(seconds=60)
JWT_LIFETIME = timedelta(minutes=9)
# An installation token lives an hour; renewing it 5 minutes early means a request sent near its
# end, or a clock a few minutes off GitHub's, never meets an expired token.
TOKEN_RENEW_MARGIN = timedelta(minutes=5)
# GitHub's own message is quoted in ours; an HTML error page must not become a screenful.
MESSAGE_MAX = 300
# Failures after which nothing was sent, so even a POST may be tried again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
# One ``<url>; params`` entry of a Link header (RFC 8288); params run to the next ``<``.
_LINK_ENTRY = re.compile(r"<([^>]*)>([^<]*)")
_HIDDEN = "[hidden]"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _Request:
    """What ``_deliver`` sends again on a retry or after renewing an installation token."""

    method: str
    url: str
    what: str  # "GET /repos/o/r/issues/1", for messages
    params: Mapping[str, str | int] | None
    json: Any
    etag: str | None
    idempotent: bool


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The primary rate limit as GitHub reported it on the latest answer."""

    limit: int
    remaining: int
    reset: datetime  # aware UTC

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimit | None:
        """Read ``X-RateLimit-*``; None when an answer lacks them (some proxies strip them)."""
        lower = {name.lower(): value for name, value in headers.items()}
        try:
            limit = int(lower["x-ratelimit-limit"])
            remaining = int(lower["x-ratelimit-remaining"])
            reset = datetime.fromtimestamp(int(lower["x-ratelimit-reset"]), UTC)
        except (KeyError, ValueError, OverflowError, OSError):
            return None
        return cls(limit=limit, remaining=remaining, reset=reset)


@dataclass(frozen=True, slots=True)
class Answer:
    """A successful answer: its status, JSON, and what a caller needs to ask again cheaply."""

    status: int  # 200/201/204/304 (errors raise)
    data: Any  # parsed JSON, None for 204/304
    etag: str | None  # the ETag header
    next_url: str | None  # rel="next" of the Link header, absolute
    url: str  # the request URL


class TokenAuth:
    """A personal access token or an installation token, sent as it is."""

    def __init__(self, token: str) -> None:
        token = token.strip()  # a token file usually ends with a newline
        if not token:
            raise GitHubError("The GitHub token is empty: check GITHUB_TOKEN / token_file.")
        self._token = token

    def header(self, client: GitHubClient) -> str:
        """The ``Authorization`` value; ``client`` is unused, it is there for ``AppAuth``."""
        return f"Bearer {self._token}"

    def _secrets(self) -> list[str]:
        return [self._token]

    def __repr__(self) -> str:
        return "TokenAuth(<hidden>)"


class AppAuth:
    """Authenticate as a GitHub App installation, so comments show as the app's bot account.

    The app's private key signs a short JWT, which finds the installation (unless given) and
    exchanges it for an installation token; that token is cached until 5 minutes before it
    expires, so a sync costs no extra requests, then renewed.
    """

    def __init__(
        self,
        app_id: str,
        private_key_pem: bytes,
        *,
        installation_id: int | None = None,
        repository: str = "",
    ) -> None:
        if installation_id is None and not repository:
            raise GitHubError(
                "GitHub App authentication needs the installation id or a repository the app "
                "is installed on."
            )
        try:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            key = None
        if not isinstance(key, RSAPrivateKey):
            raise GitHubError(
                f"The private key of GitHub App {app_id} is not an unencrypted PEM RSA key: "
                "use the .pem file downloaded from the app's settings page."
            )
        self.app_id = str(app_id)
        self.installation_id = installation_id
        self.repository = repository
        self._key = key
        self._lock = threading.Lock()  # one renewal at a time when threads share a client
        self._token: str | None = None
        self._renew_at: datetime | None = None
        self._jwt: str | None = None

    def header(self, client: GitHubClient) -> str:
        """``Bearer <installation token>``, renewing the token first when it is due."""
        with self._lock:
            now = client.clock()
            if self._token is None or self._renew_at is None or now >= self._renew_at:
                self._token, self._renew_at = self._new_token(client, now)
            return f"Bearer {self._token}"

    def app_jwt(self, now: datetime) -> str:
        """The JWT that proves we are the app (to ask for installation tokens only)."""
        claims = {
            "iat": int((now - JWT_BACKDATE).timestamp()),
            "exp": int((now + JWT_LIFETIME).timestamp()),
            "iss": self.app_id,
        }
        self._jwt = jwt.encode(claims, self._key, algorithm="RS256")
        return self._jwt

    def _new_token(self, client: GitHubClient, now: datetime) -> tuple[str, datetime]:
        bearer = f"Bearer {self.app_jwt(now)}"
        if self.installation_id is None:
            path = f"/repos/{self.repository}/installation"
            try:
                found = client._send("GET", path, authorization=bearer, as_app=True)
            except GitHubError as exc:
                if exc.status != 404:
                    raise
                raise GitHubError(
                    f"GitHub App {self.app_id} is not installed on {self.repository} (404 on "
                    f"GET {path}): install it there, or set the installation id.",
                    status=404,
                ) from exc
            if not isinstance(found.data, dict) or not isinstance(found.data.get("id"), int):
                raise GitHubError(f"GitHub's answer to GET {path} has no installation id.")
            self.installation_id = found.data["id"]
        path = f"/app/installations/{self.installation_id}/access_tokens"
        made = client._send("POST", path, authorization=bearer, as_app=True, idempotent=True)
        data = made.data if isinstance(made.data, dict) else {}
        token, expires = data.get("token"), _parse_time(data.get("expires_at"))
        if not isinstance(token, str) or not token or expires is None:
            raise GitHubError(f"GitHub's answer to POST {path} has no token and expiry time.")
        return token, expires - TOKEN_RENEW_MARGIN

    def _forget(self) -> None:
        """Drop the cached installation token (GitHub refused it): the next call renews."""
        with self._lock:
            self._token = self._renew_at = None

    def _secrets(self) -> list[str]:
        return [secret for secret in (self._token, self._jwt) if secret]

    def __repr__(self) -> str:
        return f"AppAuth(app_id={self.app_id!r}, installation_id={self.installation_id!r})"


class GitHubClient:
    """Requests to one GitHub API (api.github.com, or a GitHub Enterprise ``/api/v3``).

    GET, PATCH and DELETE are retried after a 5xx or a lost connection; a POST only when the
    connection was never made, since creating a comment twice is worse than reporting the doubt
    (``GitHubAmbiguous``). Rate limits raise at once with ``retry_at``; while the primary limit is
    known to be spent, calls raise without sending, as that request would be refused anyway.
    """

    def __init__(
        self,
        api_url: str,
        auth: TokenAuth | AppAuth | None,
        *,
        clock: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        user_agent: str = "zulip-goals-bot",
        timeout: float = 30.0,
    ) -> None:
        split = urlsplit(api_url)
        if split.scheme not in ("http", "https") or not split.netloc:
            raise GitHubError(
                f"The GitHub API URL {api_url!r} is not an http(s) URL: "
                "use https://api.github.com (or https://HOST/api/v3 for GitHub Enterprise)."
            )
        self.api_url = api_url.rstrip("/")
        self._origin = (split.scheme, split.netloc.lower())
        self.auth = auth
        self.clock = clock
        self._sleep = sleep
        self._http = httpx.Client(
            transport=transport,
            timeout=timeout,
            headers={
                "Accept": ACCEPT,
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": user_agent,
            },
        )
        self._rate_limit: RateLimit | None = None
        self.requests_sent = 0
        self.not_modified = 0

    # --- the calls -------------------------------------------------------------------------

    def get(
        self,
        path_or_url: str,
        params: Mapping[str, str | int] | None = None,
        *,
        etag: str | None = None,
    ) -> Answer:
        """GET a path, or an absolute ``next_url``; with ``etag``, an unchanged resource is a
        304 that GitHub does not count against the rate limit."""
        return self._send("GET", path_or_url, params=params, etag=etag)

    def post(self, path: str, json: Any) -> Answer:
        """POST (create); a failure after sending raises ``GitHubAmbiguous``."""
        return self._send("POST", path, json=json, idempotent=False)

    def patch(self, path: str, json: Any) -> Answer:
        """PATCH (edit): sending the same edit twice is harmless, so it is retried."""
        return self._send("PATCH", path, json=json)

    def delete(self, path: str) -> Answer:
        """DELETE; a 404 raises (status 404) and the caller decides whether that means done."""
        return self._send("DELETE", path)

    @property
    def rate_limit(self) -> RateLimit | None:
        """The primary rate limit from the latest answer's headers (None before any answer)."""
        return self._rate_limit

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- one request, with its retries -----------------------------------------------------

    def _send(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        etag: str | None = None,
        authorization: str | None = None,
        as_app: bool = False,
        idempotent: bool = True,
    ) -> Answer:
        """Send (with retries) and turn the answer into an ``Answer`` or an error.

        ``as_app`` marks AppAuth's own JWT requests: ``authorization`` is then the JWT, and
        their answers, counted on the app's rate limit, leave the token's limit alone.
        """
        url = self._url(path_or_url)
        what = f"{method} {urlsplit(url).path}"
        if not as_app:
            self._refuse_while_spent(what)
        request = _Request(method, url, what, params, json, etag, idempotent)
        if as_app or self.auth is None:
            response = self._deliver(request, authorization, as_app=as_app)
        else:
            response = self._deliver(request, self.auth.header(self), as_app=False)
            if response.status_code == 401 and isinstance(self.auth, AppAuth):
                # Refused before anything was done, so even a POST may go again: the cached
                # installation token was revoked, or our clock is behind GitHub's.
                self.auth._forget()
                response = self._deliver(request, self.auth.header(self), as_app=False)
        return self._answer(what, response, etag=etag, as_app=as_app)

    def _deliver(
        self, request: _Request, authorization: str | None, *, as_app: bool
    ) -> httpx.Response:
        """The first answer below 500, retrying what may be retried; raises for the rest."""
        headers: dict[str, str] = {}
        if authorization is not None:
            headers["Authorization"] = authorization
        if request.etag is not None:
            headers["If-None-Match"] = request.etag
        what = request.what
        problem, status = "", 0
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS)):
            if attempt:
                log.warning("GitHub %s: %s; trying again in %gs", what, self._scrub(problem), delay)
                self._sleep(delay)
            self.requests_sent += 1
            try:
                response = self._http.request(
                    request.method,
                    request.url,
                    params=request.params,
                    json=request.json,
                    headers=headers,
                    follow_redirects=request.method == "GET",  # a renamed repository is a 301
                )
            except httpx.TransportError as exc:
                problem, status = _describe_request_error(exc), 0
                if request.idempotent or isinstance(exc, _NOT_SENT):
                    continue
                raise self._error(
                    f"GitHub did not answer {what} ({problem}): it may or may not have been "
                    "done, so look before doing it again.",
                    ambiguous=True,
                ) from exc
            except httpx.RequestError as exc:  # an answer that could not be read, not retried
                raise self._error(
                    f"GitHub's answer to {what} could not be read ({_describe_request_error(exc)})"
                    + (
                        "."
                        if request.idempotent
                        else ": it may or may not have been done, so look before doing it again."
                    ),
                    ambiguous=not request.idempotent,
                ) from exc
            self.requests_sent += len(response.history)
            limit = RateLimit.from_headers(response.headers)
            if limit is not None and not as_app:
                self._rate_limit = limit
            if response.status_code < 500:
                return response
            problem, status = f"it answered {response.status_code}", response.status_code
            if not request.idempotent:
                raise self._error(
                    f"GitHub answered {status} to {what}: it may or may not have been done, so "
                    "look before doing it again.",
                    status=status,
                    ambiguous=True,
                )
        attempts = len(RETRY_DELAYS) + 1
        if status:
            raise self._error(
                f"GitHub answered {status} to {what} {attempts} times: it is having trouble, "
                "try again later.",
                status=status,
            )
        raise self._error(
            f"GitHub could not be reached for {what} after {attempts} attempts ({problem}): "
            f"check the network and the API URL {self.api_url}.",
        )

    def _url(self, path_or_url: str) -> str:
        """An absolute URL must be on the API's own host: the token is sent with it."""
        if "://" not in path_or_url:
            return f"{self.api_url}/{path_or_url.lstrip('/')}"
        split = urlsplit(path_or_url)
        if (split.scheme, split.netloc.lower()) != self._origin:
            raise self._error(
                f"Refusing to send the GitHub credentials to {split.scheme}://{split.netloc}: "
                f"it is not the API URL {self.api_url}."
            )
        return path_or_url

    def _refuse_while_spent(self, what: str) -> None:
        """Raise, without sending, while the primary limit is known to be used up."""
        limit = self._rate_limit
        if limit is not None and limit.remaining <= 0 and self.clock() < limit.reset:
            raise self._error(
                f"GitHub's rate limit for this token is used up until {_utc_text(limit.reset)}: "
                f"{what} was not sent; the work waits until then.",
                status=403,
                retry_at=limit.reset,
            )

    # --- answers and refusals --------------------------------------------------------------

    def _answer(
        self, what: str, response: httpx.Response, *, etag: str | None, as_app: bool
    ) -> Answer:
        status = response.status_code
        url = str(response.url)
        if status == 304:
            self.not_modified += 1
            return Answer(304, None, etag or response.headers.get("ETag"), None, url)
        if not 200 <= status < 300:
            raise self._refusal(what, response, as_app=as_app)
        data: Any = None
        if status != 204 and response.content:
            try:
                data = response.json()
            except ValueError:
                raise self._error(
                    f"GitHub answered {what} with {status} but not with JSON: check that the API "
                    f"URL {self.api_url} is the REST API (…/api/v3 on GitHub Enterprise).",
                    status=status,
                ) from None
        return Answer(status, data, response.headers.get("ETag"), _next_link(response), url)

    def _refusal(self, what: str, response: httpx.Response, *, as_app: bool) -> GitHubError:
        """The error for a 3xx (other than 304) or 4xx answer, rate limits included."""
        status = response.status_code
        body = _json_or_none(response)
        message = _github_message(body) or response.reason_phrase or "no message"
        if status in (403, 429):
            wait = _retry_after(response.headers, self.clock())
            remaining = response.headers.get("X-RateLimit-Remaining", "").strip()
            if "secondary rate limit" in message.lower() or wait is not None:
                return self._secondary_limit(what, status, wait)
            if remaining == "0":
                limit = RateLimit.from_headers(response.headers)
                reset = limit.reset if limit else self.clock() + PRIMARY_DEFAULT_WAIT
                if not as_app:  # so the next calls raise without sending
                    self._rate_limit = RateLimit(limit.limit if limit else 0, 0, reset)
                return self._error(
                    f"GitHub refused {what} ({status}): this token's rate limit is used up "
                    f"until {_utc_text(reset)}; the work waits until then.",
                    status=status,
                    retry_at=reset,
                )
            if status == 429:
                return self._secondary_limit(what, status, None)
        if status == 401:
            if as_app and isinstance(self.auth, AppAuth):
                advice = (
                    f"GitHub refused the JSON web token of GitHub App {self.auth.app_id} "
                    f"(401 {message}): check the app id, that the private key is the app's "
                    "current one, and that this machine's clock is right."
                )
            elif isinstance(self.auth, AppAuth):
                advice = (
                    f"GitHub refused the installation token of GitHub App {self.auth.app_id} "
                    f"(401 {message}): check that the app is still installed and not suspended."
                )
            else:
                advice = (
                    f"GitHub refused the token (401 {message}): check GITHUB_TOKEN / token_file "
                    "and that the token has not expired or been revoked."
                )
            return self._error(advice, status=401)
        if status == 403:
            needs = response.headers.get("X-Accepted-GitHub-Permissions")
            hint = f" (GitHub wants {needs})" if needs else ""
            return self._error(
                f"GitHub refused {what} (403 {message}): check that the token may do this{hint}.",
                status=403,
            )
        if status == 404:
            return self._error(
                f"GitHub has nothing at {what} (404): not found, or the token cannot see it "
                "(a private repository needs a token with access to it).",
                status=404,
            )
        if status == 422:
            errors = _compact_errors(body)
            detail = f"{message}: {errors}" if errors else message
            return self._error(f"GitHub refused {what} (422 {detail}).", status=422)
        if 300 <= status < 400:
            return self._error(
                f"GitHub answered {what} with an unexpected {status} {message}: "
                f"check the API URL {self.api_url}.",
                status=status,
            )
        return self._error(f"GitHub refused {what} ({status} {message}).", status=status)

    def _secondary_limit(self, what: str, status: int, wait: timedelta | None) -> GitHubError:
        retry_at = self.clock() + (wait if wait is not None else SECONDARY_DEFAULT_WAIT)
        return self._error(
            f"GitHub's secondary rate limit stopped {what} ({status}): it asks to wait until "
            f"{_utc_text(retry_at)}; the work waits until then.",
            status=status,
            retry_at=retry_at,
        )

    def _error(
        self,
        message: str,
        *,
        status: int = 0,
        retry_at: datetime | None = None,
        ambiguous: bool = False,
    ) -> GitHubError:
        kind = GitHubAmbiguous if ambiguous else GitHubError
        return kind(self._scrub(message), status=status, retry_at=retry_at)

    def _scrub(self, text: str) -> str:
        """Belt and braces: whatever GitHub or a library echoes, no credential is repeated."""
        if self.auth is not None:
            for secret in self.auth._secrets():
                text = text.replace(secret, _HIDDEN)
        return text


# --- reading answers -------------------------------------------------------------------------


def _next_link(response: httpx.Response) -> str | None:
    """The absolute URL of ``rel="next"`` in the Link header; None on the last page."""
    header = response.headers.get("Link")
    if not header:
        return None
    for target, params in _LINK_ENTRY.findall(header):
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip(' \t",').lower().split():
                return urljoin(str(response.url), str(target).strip())
    return None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None  # a 502 from GitHub's front end is an HTML page


def _one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= MESSAGE_MAX else flat[: MESSAGE_MAX - 1] + "…"


def _github_message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return _one_line(body["message"])
    return ""


def _compact_errors(body: Any) -> str:
    """GitHub's ``errors`` list of a 422 as ``field: message; ...``."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for error in errors:
        if isinstance(error, dict):
            text = error.get("message") or error.get("code") or "invalid"
            field = error.get("field")
            parts.append(f"{field}: {text}" if field else str(text))
        else:
            parts.append(str(error))
    return _one_line("; ".join(parts))


def _retry_after(headers: httpx.Headers, now: datetime) -> timedelta | None:
    """``Retry-After`` as a wait: GitHub sends seconds, HTTP also allows a date."""
    value = headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


def _parse_time(value: Any) -> datetime | None:
    """GitHub's ``2025-03-06T15:00:00Z`` timestamps, as aware datetimes."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _utc_text(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _describe_request_error(exc: httpx.RequestError) -> str:
    """A short cause for a message: the exception's kind, and its text when it has one."""
    text = _one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
