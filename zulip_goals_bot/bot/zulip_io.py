"""All traffic with the Zulip server: the only module that touches ``zulip.Client``.

It adds what a long-running bot needs on top of the client: a request budget that stays under the
server's rate limit (read from ``X-RateLimit-*`` headers), waiting out HTTP 429, retrying 5xx and
dropped connections with backoff, a check before re-sending a message whose first send may have
reached the server, and event-queue handling (``BAD_EVENT_QUEUE_ID`` becomes ``QueueLost``).
``GET /events`` goes through the client's own session (its credentials, TLS settings and user
agent) but is read as a stream (``eventstream``): the one response ``call_endpoint`` would
decode whole, a backlog of thousands of events.
"""

from __future__ import annotations

import configparser
import contextlib
import email.utils
import logging
import os
import random
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import requests
import zulip

from zulip_goals_bot.bot.eventstream import EventStream
from zulip_goals_bot.config import secret_file_exposed
from zulip_goals_bot.domain.events import REGISTERED_EVENTS
from zulip_goals_bot.errors import ConfigError, Stopping, ZulipError

log = logging.getLogger(__name__)

# Zulip's default limit is 200 requests a minute per user; we keep a few in reserve for
# operators' own calls made with the same key.
RATE_LIMIT_RESERVE = 2
# Attempts for one request before giving up on it (the caller keeps what it owes and retries later).
MAX_ATTEMPTS = 8
# First backoff after a 5xx or dropped connection, doubled each time, capped.
BACKOFF_START_S = 0.25
BACKOFF_CAP_S = 30.0
# How many messages one GET /messages page asks for during backfill (the server caps at 5000).
BACKFILL_PAGE = 1000
# How long a long poll of GET /events may stay silent (the zulip client's figure: the server
# sends a heartbeat about every minute, so a longer silence is a dead connection).
LONG_POLL_TIMEOUT_S = 90.0
# What a successful call's JSON says, for answers that are not read as a whole.
SUCCESS: dict[str, Any] = {"result": "success"}
# How many ids of messages this process sent are remembered, so that the "was it delivered
# before the error?" lookup never takes an earlier message with the same text for the one in doubt.
KNOWN_SENT_IDS = 1_000


_T = TypeVar("_T")


class QueueLost(Exception):
    """The server forgot our event queue (restart, expiry): register again and backfill."""


class Sender(Protocol):
    """What the rest of the bot needs to talk back; ZulipIO implements it, tests may record it."""

    def send_stream(self, stream: str, topic: str, content: str) -> int: ...

    def send_dm(self, user_ids: Sequence[int], content: str) -> int: ...

    def add_reaction(self, message_id: int, emoji_name: str) -> None: ...


@dataclass
class _Budget:
    """What the server's X-RateLimit headers last told us, for one bucket."""

    remaining: int | None = None
    reset_at: float = 0.0


def site_from_zuliprc(path: Path) -> str:
    """The server URL a zuliprc names (for links in output made without connecting), or ''."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
        return parser.get("api", "site", fallback="") or os.environ.get("ZULIP_SITE", "")
    except (configparser.Error, UnicodeDecodeError):
        return os.environ.get("ZULIP_SITE", "")


def check_zuliprc(path: Path, *, warn: bool = True) -> None:
    """Validate a zuliprc ourselves, so that a broken one gives one clear line, not a traceback.

    With ``warn``, a zuliprc that others can read is logged (``doctor`` reports it instead).
    """
    env_ready = bool(os.environ.get("ZULIP_EMAIL") and os.environ.get("ZULIP_API_KEY"))
    if not path.exists():
        if env_ready and os.environ.get("ZULIP_SITE"):
            return
        raise ConfigError(
            f"{path}: zuliprc not found; download it from Zulip (Settings > Bots) "
            f"or set ZULIP_EMAIL, ZULIP_API_KEY and ZULIP_SITE"
        )
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except (OSError, configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid zuliprc ({str(exc).splitlines()[0]})") from exc
    for key, what in (("email", "the bot's email"), ("key", "its API key"), ("site", "a URL")):
        env = {"email": "ZULIP_EMAIL", "key": "ZULIP_API_KEY", "site": "ZULIP_SITE"}[key]
        if not parser.has_option("api", key) and not os.environ.get(env):
            raise ConfigError(f"{path}: [api] {key} is missing; expected {what}")
    if warn and os.name == "posix" and secret_file_exposed(path.stat().st_mode):
        log.warning(
            "%s is readable by other users; it holds the bot's API key (chmod 600 %s)", path, path
        )


class ZulipIO:
    """A rate-limited, retrying wrapper around one ``zulip.Client``."""

    def __init__(
        self,
        zuliprc: Path | None,
        *,
        sleep: Callable[[float], None] | None = None,
        client_name: str = "zulip-goals-bot",
    ) -> None:
        if zuliprc is not None:
            check_zuliprc(zuliprc)
        # Set when the bot shuts down: waits end at once and failed calls are not retried, so
        # a stop during an outage takes seconds, not the minutes that the retries would.
        self.stopping = threading.Event()
        self._sleep = sleep or self.stopping.wait
        self._lock = threading.Lock()
        self._budgets: dict[str, _Budget] = {}
        # The HTTP status of the calling thread's last response: zulip.Client returns a JSON
        # error body without it, and a JSON 500 must be retried like an HTML 502.
        self._last = threading.local()
        self._sent_order: deque[int] = deque(maxlen=KNOWN_SENT_IDS)
        self._sent: set[int] = set()
        try:
            self.client = zulip.Client(
                config_file=str(zuliprc) if zuliprc is not None else None,
                retry_on_errors=False,
                client=client_name,
            )
        except zulip.UnrecoverableNetworkError as exc:
            raise ZulipError(f"cannot reach the Zulip server: {exc}", retryable=True) from exc
        except zulip.ZulipError as exc:
            raise ConfigError(f"{zuliprc}: {exc}") from exc
        except requests.RequestException as exc:
            raise ZulipError(f"cannot reach the Zulip server: {exc}", retryable=True) from exc
        except (configparser.Error, AssertionError) as exc:
            raise ConfigError(f"{zuliprc}: not a valid zuliprc ({exc})") from exc
        # The server's URL for links; zulip.Client's base_url ends with "/api/".
        self.site: str = self.client.base_url.rstrip("/").removesuffix("/api")
        self.email: str = self.client.email
        self.user_id: int | None = None
        self.full_name: str = ""
        self.client.ensure_session()
        assert self.client.session is not None
        self.client.session.hooks["response"].append(self._observe)

    # -- low level ---------------------------------------------------------------------------

    def _bucket(self, url: str) -> str:
        return "events" if url.startswith("events") else "api"

    def _observe(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last.status = response.status_code
        headers = {k.lower(): v for k, v in response.headers.items()}
        self._last.date = headers.get("date")
        remaining = headers.get("x-ratelimit-remaining")
        reset = headers.get("x-ratelimit-reset")
        if remaining is None or reset is None:
            return
        path = response.request.path_url if response.request is not None else ""
        bucket = "events" if "/api/v1/events" in path else "api"
        try:
            with self._lock:
                budget = self._budgets.setdefault(bucket, _Budget())
                budget.remaining = int(float(remaining))
                budget.reset_at = float(reset)
        except ValueError:
            return

    def _wait_for_budget(self, bucket: str) -> None:
        with self._lock:
            budget = self._budgets.get(bucket)
            if budget is None or budget.remaining is None:
                return
            if budget.remaining > RATE_LIMIT_RESERVE:
                budget.remaining -= 1
                return
            delay = budget.reset_at - time.time()
            budget.remaining = None  # the next response tells us the new figure
        if delay > 0:
            log.info("rate limit budget spent; waiting %.1f s", delay)
            self._pause(min(delay, 60.0), "waiting for the rate limit")

    def _pause(self, seconds: float, why: str) -> None:
        """Wait before trying again, unless the bot is stopping (then raise ``Stopping``)."""
        if not self.stopping.is_set():
            self._sleep(seconds)
        if self.stopping.is_set():
            raise Stopping(f"not retried, the bot is stopping ({why})")

    def call(
        self,
        url: str,
        method: str = "GET",
        request: dict[str, Any] | None = None,
        *,
        longpolling: bool = False,
        timeout: float | None = None,
        attempts: int = MAX_ATTEMPTS,
    ) -> dict[str, Any]:
        """One API call, waiting out 429s and retrying 5xx/connection errors; raises ZulipError."""

        def send() -> tuple[dict[str, Any], dict[str, Any]]:
            result: dict[str, Any] = self.client.call_endpoint(
                url=url,
                method=method,
                request=dict(request or {}),
                longpolling=longpolling,
                timeout=timeout,
            )
            return result, result

        return self._retrying(method, url, send, attempts)

    def _retrying(
        self,
        method: str,
        url: str,
        send: Callable[[], tuple[dict[str, Any], _T]],
        attempts: int,
    ) -> _T:
        """Run ``send`` until the server says success; ``send`` returns the JSON result (judged
        here) and what the caller gets on success."""
        backoff = BACKOFF_START_S
        last = "no attempt made"
        for _attempt in range(attempts):
            self._wait_for_budget(self._bucket(url))
            self._last.status = None
            try:
                result, answer = send()
            except zulip.UnrecoverableNetworkError as exc:
                raise ZulipError(
                    f"cannot reach the Zulip server at {self.site}: {exc}", retryable=True
                ) from exc
            except requests.RequestException as exc:
                last = f"connection problem: {type(exc).__name__}"
                log.warning("%s %s: %s; retrying in %.2f s", method, url, last, backoff)
                self._pause(backoff, f"{method} {url}: {last}")
                backoff = min(backoff * 2, BACKOFF_CAP_S)
                continue
            if result.get("result") == "success":
                log.debug("%s %s: success", method, url)
                return answer
            code = result.get("code")
            log.debug("%s %s: %s %s", method, url, code, getattr(self._last, "status", None))
            if code == "RATE_LIMIT_HIT":
                wait = float(result.get("retry-after", 1.0))
                log.warning("rate limited on %s %s; waiting %.2f s", method, url, wait)
                self._pause(wait + random.uniform(0, 0.1), f"{method} {url}: rate limited")
                continue
            status = result.get("status_code", getattr(self._last, "status", None))
            if result.get("result") == "http-error" or (isinstance(status, int) and status >= 500):
                last = f"server error {status}"
                log.warning("%s %s: %s; retrying in %.2f s", method, url, last, backoff)
                self._pause(backoff, f"{method} {url}: {last}")
                backoff = min(backoff * 2, BACKOFF_CAP_S)
                continue
            if (
                code == "UNAUTHORIZED"
                or code == "INVALID_API_KEY"
                or "api key" in str(result.get("msg", "")).lower()
            ):
                raise ZulipError(
                    f"the Zulip server at {self.site} refused the bot's credentials "
                    f"({result.get('msg')}); check the email and key in the zuliprc",
                    code=code,
                )
            raise ZulipError(f"{method} {url}: {result.get('msg', result)}", code=code)
        raise ZulipError(
            f"{method} {url} failed after {attempts} attempts ({last})", retryable=True
        )

    def last_server_time(self) -> datetime | None:
        """The server's clock, from the ``Date`` header of this thread's last response."""
        value = getattr(self._last, "date", None)
        if not value:
            return None
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

    # -- identity and realm --------------------------------------------------------------------

    def whoami(self) -> dict[str, Any]:
        me = self.call("users/me")
        self.user_id = int(me["user_id"])
        self.full_name = str(me.get("full_name", ""))
        return me

    def users(self, *, custom_profile_fields: bool = True) -> list[dict[str, Any]]:
        result = self.call(
            "users", request={"include_custom_profile_fields": custom_profile_fields}
        )
        return list(result["members"])

    def profile_fields(self) -> list[dict[str, Any]]:
        return list(self.call("realm/profile_fields").get("custom_fields", []))

    def stream_subscribers(self, stream: str) -> set[int]:
        result = self.call("users/me/subscriptions", request={"include_subscribers": True})
        for sub in result.get("subscriptions", []):
            if sub.get("name") == stream:
                return {int(u) for u in sub.get("subscribers", [])}
        return set()

    def stream_id(self, name: str) -> int:
        """The id of the stream called ``name``; ZulipError if there is none the bot can see."""
        return int(self.call("get_stream_id", request={"stream": name})["stream_id"])

    # -- events ----------------------------------------------------------------------------

    def register(self, event_types: Sequence[str] = REGISTERED_EVENTS) -> tuple[str, int]:
        result = self.call(
            "register",
            method="POST",
            request={
                "event_types": list(event_types),
                "apply_markdown": False,
                "client_gravatar": True,
            },
        )
        return str(result["queue_id"]), int(result["last_event_id"])

    def get_events(self, queue_id: str, last_event_id: int) -> EventStream:
        """The events after ``last_event_id``, long-polling until there are some.

        Read through the zulip client's own session (its credentials, TLS settings and user
        agent) but streamed, which ``call_endpoint`` cannot do: see ``eventstream``.  Errors
        are judged as in ``call``; a long poll that times out is an empty stream.
        """

        def send() -> tuple[dict[str, Any], EventStream]:
            self.client.ensure_session()
            assert self.client.session is not None
            try:
                response = self.client.session.get(
                    urllib.parse.urljoin(self.client.base_url, "v1/events"),
                    params={"queue_id": queue_id, "last_event_id": str(last_event_id)},
                    timeout=LONG_POLL_TIMEOUT_S,
                    stream=True,
                )
            except requests.Timeout:
                return SUCCESS, EventStream.empty()  # nothing happened for a while: ask again
            if response.status_code == 200:
                return SUCCESS, EventStream(response)
            try:
                result = response.json()
            except ValueError:
                result = {"result": "http-error", "msg": "Unexpected error from the server"}
            finally:
                response.close()
            if not isinstance(result, dict):
                result = {"result": "http-error", "msg": f"unexpected answer {result!r:.80}"}
            result.setdefault("status_code", response.status_code)
            return result, EventStream.empty()

        try:
            return self._retrying("GET", "events", send, MAX_ATTEMPTS)
        except ZulipError as exc:
            if exc.code == "BAD_EVENT_QUEUE_ID":
                raise QueueLost(queue_id) from exc
            raise

    def deregister(self, queue_id: str) -> None:
        with contextlib.suppress(ZulipError):  # the queue expires on its own anyway
            self.call("events", method="DELETE", request={"queue_id": queue_id}, attempts=1)

    def messages_after(self, anchor: int) -> Iterator[list[dict[str, Any]]]:
        """Pages of every message the bot can see with an id above ``anchor``, oldest first."""
        while True:
            result = self.call(
                "messages",
                request={
                    "anchor": anchor,
                    "include_anchor": False,
                    "num_before": 0,
                    "num_after": BACKFILL_PAGE,
                    "apply_markdown": False,
                    "client_gravatar": True,
                },
            )
            page = [m for m in result.get("messages", []) if int(m["id"]) > anchor]
            if page:
                yield page
                anchor = max(int(m["id"]) for m in page)
            if result.get("found_newest", True) or not page:
                return

    # -- sending -----------------------------------------------------------------------------

    def _recent_own(self, narrow: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result = self.call(
            "messages",
            request={
                "anchor": "newest",
                "num_before": 20,
                "num_after": 0,
                "narrow": [*narrow, {"operator": "sender", "operand": self.email}],
                "apply_markdown": False,
            },
        )
        return list(result.get("messages", []))

    def _remember(self, message_id: int) -> int:
        with self._lock:
            if len(self._sent_order) == self._sent_order.maxlen:
                self._sent.discard(self._sent_order[0])
            self._sent_order.append(message_id)
            self._sent.add(message_id)
        return message_id

    def _ours_before(self, message: dict[str, Any]) -> bool:
        """A message this process already sent (and got the id of): not the one in doubt."""
        with self._lock:
            return int(message["id"]) in self._sent

    def _send(self, request: dict[str, Any], narrow: list[dict[str, Any]]) -> int:
        """Send once; if the first try may have reached the server, look before sending again."""
        try:
            result = self.call("messages", method="POST", request=request, attempts=1)
            return self._remember(int(result["id"]))
        except ZulipError as exc:
            if not exc.retryable and exc.code != "RATE_LIMIT_HIT":
                raise
        backoff = BACKOFF_START_S
        content = str(request["content"]).rstrip()
        for _ in range(MAX_ATTEMPTS):
            self._pause(backoff, "checking whether a message went out")
            backoff = min(backoff * 2, BACKOFF_CAP_S)
            try:
                for message in reversed(self._recent_own(narrow)):
                    if self._ours_before(message):
                        continue
                    if str(message.get("content", "")).rstrip() == content:
                        log.info("message %s was delivered before the error", message["id"])
                        return self._remember(int(message["id"]))
                result = self.call("messages", method="POST", request=request, attempts=1)
                return self._remember(int(result["id"]))
            except ZulipError as exc:
                if not exc.retryable:
                    raise
        raise ZulipError("could not send a message after several attempts", retryable=True)

    def send_stream(self, stream: str, topic: str, content: str) -> int:
        return self._send(
            {"type": "stream", "to": stream, "topic": topic, "content": content},
            [{"operator": "stream", "operand": stream}, {"operator": "topic", "operand": topic}],
        )

    def send_dm(self, user_ids: Sequence[int], content: str) -> int:
        ids = sorted(set(user_ids))
        return self._send(
            {"type": "private", "to": ids, "content": content},
            [{"operator": "dm", "operand": ids}],
        )

    def add_reaction(self, message_id: int, emoji_name: str) -> None:
        try:
            self.call(
                f"messages/{message_id}/reactions",
                method="POST",
                request={"emoji_name": emoji_name},
            )
        except ZulipError as exc:
            if exc.code == "REACTION_ALREADY_EXISTS":
                return
            raise

    def find_own(
        self, stream: str | None, topic: str | None, user_ids: Sequence[int], content: str
    ) -> int | None:
        """The id of a recent message of ours with this content at this destination, if any."""
        if stream is not None and topic is not None:
            narrow: list[dict[str, Any]] = [
                {"operator": "stream", "operand": stream},
                {"operator": "topic", "operand": topic},
            ]
        else:
            narrow = [{"operator": "dm", "operand": sorted(set(user_ids))}]
        wanted = content.rstrip()
        for message in reversed(self._recent_own(narrow)):
            if str(message.get("content", "")).rstrip() == wanted:
                return int(message["id"])
        return None
