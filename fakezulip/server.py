"""A local HTTP emulator of a Zulip 8.0 server, driven by tests through a Python API.

The bot under test talks to :class:`FakeZulip` with the real ``zulip.Client`` over HTTP;
tests act as human users through methods such as :meth:`FakeZulip.send_stream_message`,
inspect what the bot did through :attr:`FakeZulip.messages` and :attr:`FakeZulip.request_log`,
and inject failures through :attr:`FakeZulip.faults`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import hashlib
import hmac
import json
import os
import socket
import threading
import time
import traceback
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from fakezulip.engine import (
    MENTION_FLAGS,
    ApiError,
    Message,
    QueueGone,
    ZulipState,
    dumps,
    missing_argument,
)
from fakezulip.realm import FIELD_SHORT_TEXT, ROLE_MEMBER, Realm, Stream, User

if TYPE_CHECKING:
    import zulip

__all__ = ["ApiError", "FakeZulip", "Faults", "FiredFault", "QueueStatus"]

API_PREFIX = "/api/v1/"
NOMINAL_UNLIMITED = 1_000_000  # X-RateLimit-Limit shown when no limit is configured
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_NO_CACHE = "max-age=0, no-cache, no-store, must-revalidate, private"


class _Drop(Exception):
    """Close the connection without answering (fault injection, restarts)."""


@dataclass
class _Response:
    status: int
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    user: User | None = None
    # Fault injection: send only this many bytes of the body, then close the connection.
    cut_at: int | None = None


# ====================================================================== faults


@dataclass
class _Rule:
    kind: str
    remaining: int
    status: int = 500
    seconds: float = 0.0
    path_prefix: str | None = None
    method: str | None = None
    after_processing: bool = False
    keep: float = 0.5  # "cut": the share of the body sent before the connection closes
    number: int = 0  # what ``Faults.fired`` calls the rule

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)

    def describe(self) -> str:
        what = {
            "fail": f"answer {self.status}",
            "drop": "drop the connection",
            "cut": f"cut the response after {self.keep:.0%} of its body",
        }.get(self.kind, f"delay {self.seconds:g} s")
        if self.after_processing:
            what += " after processing"
        where = f"{self.method or 'any'} {self.path_prefix or '(any path)'}"
        return f"{what} on {where}"


@dataclass(frozen=True, slots=True)
class FiredFault:
    """One injected fault and how many requests it hit so far (see ``Faults.history``)."""

    number: int
    description: str
    fired: int


def _normalize_prefix(prefix: str | None) -> str | None:
    if prefix is None:
        return None
    prefix = prefix.lstrip("/")
    if prefix.startswith("api/v1/"):
        prefix = prefix[len("api/v1/") :]
    return prefix


class Faults:
    """Failure injection.  Rules are consumed in the order they were added.

    Paths are matched against the part after ``/api/v1/`` (``"messages"`` matches
    ``POST /api/v1/messages`` and ``/api/v1/messages/12/reactions``); a leading
    ``/api/v1/`` in ``path_prefix`` is accepted too.

    ``fired`` counts the faults that hit a request, so a test can check that the failure it
    injected happened (a rule that matched nothing proves nothing).
    """

    KINDS = ("fail", "drop", "delay", "cut", "429")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._nth: tuple[int, float] | None = None
        self._counter = 0
        # Every fault ever injected, by number: what it does and how often it fired.  A test
        # asserts its fault fired, so that it cannot pass without the fault it is about.
        self._history: dict[int, FiredFault] = {}
        self._nth_number = 0

    def fail_next(
        self, n: int, status: int = 500, path_prefix: str | None = None, method: str | None = None
    ) -> int:
        """The next ``n`` matching requests answer ``status`` with a JSON error body.

        Returns the rule's number, for :meth:`fired`.
        """
        return self._add(_Rule("fail", n, status=status, path_prefix=path_prefix, method=method))

    def drop_next(
        self,
        n: int,
        path_prefix: str | None = None,
        method: str | None = None,
        *,
        after_processing: bool = False,
    ) -> int:
        """Close the connection without a response; ``after_processing`` loses only the reply.

        Returns the rule's number, for :meth:`fired`.
        """
        return self._add(
            _Rule(
                "drop", n, path_prefix=path_prefix, method=method, after_processing=after_processing
            )
        )

    def cut_next(
        self, n: int, keep: float = 0.5, path_prefix: str | None = None, method: str | None = None
    ) -> int:
        """Process the next ``n`` matching requests, but send only the first ``keep`` share of
        each response body (with the full ``Content-Length``) before closing the connection:
        what a client sees when a large response breaks off mid-way.

        Returns the rule's number, for :meth:`fired`.
        """
        return self._add(_Rule("cut", n, keep=keep, path_prefix=path_prefix, method=method))

    def delay_next(
        self, n: int, seconds: float, path_prefix: str | None = None, method: str | None = None
    ) -> int:
        """Answer the next ``n`` matching requests only after ``seconds``.

        Returns the rule's number, for :meth:`fired`.
        """
        return self._add(_Rule("delay", n, seconds=seconds, path_prefix=path_prefix, method=method))

    def every_nth_429(self, n: int, retry_after: float = 1.0) -> int:
        """Every ``n``-th rate-limited request answers 429 RATE_LIMIT_HIT (``n=0`` stops it).

        Returns the rule's number, for :meth:`fired` (0 when it stops the rule).
        """
        with self._lock:
            self._nth = (n, float(retry_after)) if n > 0 else None
            self._counter = 0
            if n <= 0:
                self._nth_number = 0
                return 0
            number = len(self._history) + 1
            self._history[number] = FiredFault(number, f"answer 429 to every {n}th request", 0)
            self._nth_number = number
            return number

    def fired(self, number: int | None = None) -> int:
        """How many requests the fault numbered ``number`` hit (every fault's, when None)."""
        with self._lock:
            if number is None:
                return sum(f.fired for f in self._history.values())
            if number not in self._history:
                raise KeyError(f"no fault was injected with number {number}")
            return self._history[number].fired

    def history(self) -> list[FiredFault]:
        """Every fault injected so far (cleared ones too), in order, with how often it fired."""
        with self._lock:
            return list(self._history.values())

    def _count(self, number: int) -> None:
        """Note that rule ``number`` fired (the caller holds the lock)."""
        found = self._history[number]
        self._history[number] = FiredFault(number, found.description, found.fired + 1)

    def clear(self) -> None:
        """Drop the rules not used up yet, and stop ``every_nth_429`` (``fired`` stays)."""
        with self._lock:
            self._rules.clear()
            self._nth = None
            self._counter = 0

    def _add(self, rule: _Rule) -> int:
        rule.path_prefix = _normalize_prefix(rule.path_prefix)
        rule.method = rule.method.upper() if rule.method else None
        with self._lock:
            rule.number = len(self._history) + 1
            self._history[rule.number] = FiredFault(rule.number, rule.describe(), 0)
            if rule.remaining > 0:
                self._rules.append(rule)
        return rule.number

    def _take(self, method: str, path: str) -> _Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
                    self._count(rule.number)
                    return rule
        return None

    def _nth_429(self) -> float | None:
        with self._lock:
            if self._nth is None:
                return None
            self._counter += 1
            n, retry_after = self._nth
            if self._counter % n != 0:
                return None
            self._count(self._nth_number)
            return retry_after


# ====================================================================== rate limiting


class _RateLimiter:
    """Per-user sliding windows, one for Django endpoints and one for /events (Tornado)."""

    def __init__(
        self, limit: int | None, window: float, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.timer = timer
        self._lock = threading.Lock()
        self._calls: dict[tuple[int, str], deque[float]] = {}

    def check(self, user_id: int, bucket: str) -> tuple[bool, int, int, float]:
        """``(allowed, remaining, reset_unix, retry_after)``; records the call if allowed."""
        limit = self.limit if self.limit is not None else NOMINAL_UNLIMITED
        now = self.timer()
        wall = time.time()
        with self._lock:
            calls = self._calls.setdefault((user_id, bucket), deque())
            while calls and calls[0] <= now - self.window:
                calls.popleft()
            if self.limit is not None and len(calls) >= limit:
                retry_after = max(calls[0] + self.window - now, 0.001)
                return False, 0, int(wall + retry_after), retry_after
            calls.append(now)
            remaining = limit - len(calls)
            if bucket == "events":
                reset = int(wall + len(calls) * self.window / limit)
            else:
                reset = int(wall + self.window)
            return True, remaining, reset, 0.0

    @property
    def shown_limit(self) -> int:
        return self.limit if self.limit is not None else NOMINAL_UNLIMITED


# ====================================================================== request parameters


class _Params:
    """Form/query parameters as the real server decodes them (JSON for non-strings)."""

    def __init__(self, raw: dict[str, str]) -> None:
        self.raw = raw
        self.known: set[str] = set()

    def has(self, name: str) -> bool:
        self.known.add(name)
        return name in self.raw

    def get_str(
        self, name: str, default: str | None = None, *, required: bool = False
    ) -> str | None:
        self.known.add(name)
        if name not in self.raw:
            if required:
                raise missing_argument(name)
            return default
        return self.raw[name]

    def get_json(self, name: str, default: Any = None, *, required: bool = False) -> Any:
        self.known.add(name)
        if name not in self.raw:
            if required:
                raise missing_argument(name)
            return default
        try:
            return json.loads(self.raw[name])
        except ValueError:
            raise ApiError(f'Argument "{name}" is not valid JSON.') from None

    def lenient(self, name: str, *, required: bool = False) -> Any:
        """JSON if it parses, else the raw string (how ``to`` is accepted)."""
        self.known.add(name)
        if name not in self.raw:
            if required:
                raise missing_argument(name)
            return None
        value = self.raw[name]
        try:
            return json.loads(value)
        except ValueError:
            return value

    def get_bool(self, name: str, default: bool) -> bool:
        value = self.get_json(name, default)
        if not isinstance(value, bool):
            raise ApiError(f"{name} is not a boolean")
        return value

    def get_opt_bool(self, name: str) -> bool | None:
        value = self.get_json(name, None)
        if value is not None and not isinstance(value, bool):
            raise ApiError(f"{name} is not a boolean")
        return value

    def get_int(
        self, name: str, default: int | None = None, *, required: bool = False
    ) -> int | None:
        value = self.get_json(name, default, required=required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ApiError(f"{name} is not an integer")
        return value

    def ignored(self) -> list[str]:
        return [name for name in self.raw if name not in self.known]


# ====================================================================== HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeZulip) -> None:
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client disconnects are routine here (faults, restarts): stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
        self.server.fake._connection_opened()

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            split = urllib.parse.urlsplit(self.path)
            params = {
                k: v[-1]
                for k, v in urllib.parse.parse_qs(split.query, keep_blank_values=True).items()
            }
            ctype = self.headers.get("Content-Type", "")
            if body and "application/x-www-form-urlencoded" in ctype:
                for k, v in urllib.parse.parse_qs(
                    body.decode("utf-8", "replace"), keep_blank_values=True
                ).items():
                    params[k] = v[-1]
            response = self.server.fake._handle(
                self.command, urllib.parse.unquote(split.path), params, self.headers
            )
        except (_Drop, QueueGone):
            self.close_connection = True
            return
        except OSError:
            self.close_connection = True
            return
        except Exception:
            # A bug in the emulator: answer like the real server's crash path, and say so.
            traceback.print_exc()
            response = _Response(
                500,
                dumps({"result": "error", "msg": "Internal server error"}) + b"\n",
                [("Content-Type", "application/json")],
            )
        head = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}"]
        head.append("Server: fakezulip")
        # The real server's clock, which the emulator's clock stands for (tests move it).
        head.append("Date: " + self.server.fake.http_date())
        head.extend(f"{k}: {v}" for k, v in response.headers)
        head.append(f"Content-Length: {len(response.body)}")
        body = response.body
        if response.cut_at is not None:
            body = body[: response.cut_at]
            self.close_connection = True
        if self.close_connection:
            head.append("Connection: close")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            self.wfile.write(data)
        except OSError:
            self.close_connection = True


# ====================================================================== the emulator


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """One event queue at one instant, as :meth:`FakeZulip.queue_status` reports it."""

    queue_id: str
    user_id: int
    pending: int  # events the client has not acknowledged yet (by a later ``last_event_id``)
    polling: int  # requests long-polling the queue right now

    @property
    def idle(self) -> bool:
        """A client waits on the queue and has acknowledged every event in it."""
        return self.polling > 0 and self.pending == 0


Handler = Callable[["_Request"], dict[str, Any]]


@dataclass
class _Request:
    method: str
    path: str
    params: _Params
    user: User
    match: dict[str, str]
    client_name: str


class FakeZulip:
    """A running emulated server plus the hooks tests use to act, inspect and break it."""

    # Called with every new server; lets a test suite inspect all servers its tests created
    # (e.g. sweep every message bots sent) without each test passing its server along.
    creation_hooks: ClassVar[list[Callable[[FakeZulip], None]]] = []

    def __init__(
        self,
        realm: Realm,
        clock: Callable[[], float] | None = None,
        rate_limit_per_minute: int | None = None,
        rate_limit_window_seconds: float = 60.0,
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat_seconds: float = 50.0,
        queue_lifespan_seconds: float = 600.0,
        timer: Callable[[], float] | None = None,
    ) -> None:
        self.realm = realm
        self.clock: Callable[[], float] = clock or time.time
        # Seconds as rate-limit windows and restart downtimes count them (time.monotonic by
        # default); a test passes a timer it moves by hand, so that no outcome races real time.
        self.timer: Callable[[], float] = timer or time.monotonic
        self.heartbeat_seconds = heartbeat_seconds
        self.queue_lifespan_seconds = queue_lifespan_seconds
        self.faults = Faults()
        self._rate_limiter = _RateLimiter(
            rate_limit_per_minute, rate_limit_window_seconds, self.timer
        )
        self._state = ZulipState(realm, self.clock, lambda: self.base_url)
        self._log: list[tuple[str, str, str | None, int]] = []
        self._log_lock = threading.Lock()
        self._connections_opened = 0  # TCP connections accepted, under ``_log_lock``
        self._host = host
        self._httpd = _HTTPServer((host, port), self)
        self._port = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None
        self._down_until = 0.0
        self._routes = self._build_routes()
        for hook in list(FakeZulip.creation_hooks):
            hook(self)

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def running(self) -> bool:
        """Between :meth:`start` and :meth:`stop`: only then do bots reach the server."""
        return self._thread is not None

    def start(self) -> FakeZulip:
        """Serve in a background thread (idempotent; restarts after :meth:`stop`)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        if self._httpd.socket.fileno() == -1:
            self._httpd = _HTTPServer((self._host, self._port), self)
        with self._state.cond:
            self._state.stopping = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fakezulip:{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release long-polls and close every connection."""
        with self._state.cond:
            self._state.stopping = True
            self._state.notify()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.close_connections()
        self._httpd.server_close()

    def __enter__(self) -> FakeZulip:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def restart(self, downtime_seconds: float = 0.0) -> None:
        """Simulate a server restart: event queues vanish, connections drop, data stays.

        With ``downtime_seconds`` every request answers 502 (as a proxy in front of a
        restarting server does) for that long.
        """
        with self._state.cond:
            self._state.drop_all_queues()
            self._state.generation += 1
            self._state.notify()
            if downtime_seconds > 0:
                self._down_until = self.timer() + downtime_seconds
        self._httpd.close_connections()

    def expire_queue(self, queue_id: str) -> None:
        """Garbage-collect one queue now; its next ``GET /events`` gets BAD_EVENT_QUEUE_ID."""
        with self._state.cond:
            queue = self._state.queues.get(queue_id)
            if queue is not None:
                self._state.drop_queue(queue)

    def inject_event(self, user: User | int, event: dict[str, Any]) -> int:
        """Queue a raw event, as given, in every event queue of ``user`` (malformed ones too).

        Returns how many queues received it; the queue assigns the event id.
        """
        if not event:
            raise ValueError("an event needs at least one field besides its id")
        uid = self._user(user).user_id
        prefix = dumps(event)[:-1]
        with self._state.cond:
            queues = list(self._state.user_queues.get(uid, ()))
            for queue in queues:
                queue.push(prefix)
            self._state.notify()
        return len(queues)

    def expire_all_queues(self) -> None:
        with self._state.cond:
            self._state.drop_all_queues()

    @property
    def queue_ids(self) -> list[str]:
        """Ids of the live event queues, oldest first."""
        with self._state.cond:
            return list(self._state.queues)

    def waiting_polls(self) -> int:
        """How many ``GET /events`` long-polls are waiting for an event right now.

        A test waits for one before it makes the event happen, rather than sleeping and hoping
        the poll got there first.
        """
        return sum(q.polling for q in self.queue_status())

    def queues_of(self, user: User | int) -> list[str]:
        """Ids of ``user``'s live event queues, oldest first."""
        uid = self._user(user).user_id
        with self._state.cond:
            return [q.queue_id for q in self._state.user_queues.get(uid, [])]

    def queue_status(self, user: User | int | None = None) -> list[QueueStatus]:
        """A snapshot of the live event queues (of ``user``, or all), oldest first."""
        with self._state.cond:
            if user is None:
                queues = list(self._state.queues.values())
            else:
                queues = list(self._state.user_queues.get(self._user(user).user_id, ()))
            return [QueueStatus(q.queue_id, q.user_id, len(q.events), q.waiting) for q in queues]

    def is_listening(self, user: User | int) -> bool:
        """``user`` has an event queue, and a client is long-polling every one of them with
        nothing left to fetch: it has taken every event so far and waits for the next."""
        queues = self.queue_status(user)
        return bool(queues) and all(q.idle for q in queues)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the server still: inside the block no request is answered and no long-poll
        returns, so everything the block does reaches the clients at once, as one batch."""
        with self._state.cond:
            yield

    # ------------------------------------------------------------------ message ids

    @property
    def last_message_id(self) -> int:
        """The highest message id taken so far (sent or reserved); 0 before the first."""
        with self._state.cond:
            return self._state.next_message_id - 1

    def reserve_message_ids(self, through: int) -> None:
        """New messages get ids above ``through``: a bot database kept from an earlier run
        remembers those ids, and must not see them handed out again."""
        with self._state.cond:
            self._state.next_message_id = max(self._state.next_message_id, through + 1)

    # ------------------------------------------------------------------ clients

    def write_zuliprc(self, path: str | os.PathLike[str], user: User | int) -> Path:
        """Write a standard zuliprc for ``user`` (mode 0600, as the real ones should be)."""
        target = self._user(user)
        out = Path(path)
        out.write_text(
            f"[api]\nemail={target.email}\nkey={target.api_key}\nsite={self.base_url}\n",
            encoding="utf-8",
        )
        out.chmod(0o600)
        return out

    def client_for(self, user: User | int, client: str | None = None) -> zulip.Client:
        """A real ``zulip.Client`` authenticated as ``user``."""
        import zulip

        target = self._user(user)
        return zulip.Client(
            email=target.email, api_key=target.api_key, site=self.base_url, client=client
        )

    # ------------------------------------------------------------------ acting as users

    def _user(self, user: User | int) -> User:
        if isinstance(user, User):
            return user
        found = self.realm.user_by_id(user)
        if found is None:
            raise KeyError(f"no user {user}")
        return found

    def send_stream_message(
        self,
        sender: User | int,
        stream: str,
        topic: str,
        content: str,
        *,
        client: str = "website",
    ) -> int:
        """Post as ``sender`` (a human's web client by default: the sender's copy is read)."""
        with self._state.cond:
            target = self._state.resolve_stream_target(stream)
            message, _extra = self._state.send_message(
                self._user(sender),
                stream=target,
                topic=self._state.normalize_topic(topic),
                content=content,
                client=client,
            )
            return message.id

    def send_direct_message(
        self,
        sender: User | int,
        recipients: list[User | int],
        content: str,
        *,
        client: str = "website",
    ) -> int:
        """Send a (group) direct message; the sender is added to the conversation."""
        with self._state.cond:
            users = self._state.resolve_dm_targets([self._user(r).user_id for r in recipients])
            message, _extra = self._state.send_message(
                self._user(sender), recipients=users, content=content, client=client
            )
            return message.id

    def edit_message(
        self,
        editor: User | int,
        message_id: int,
        content: str | None = None,
        topic: str | None = None,
        propagate_mode: str = "change_one",
        stream: str | None = None,
        *,
        send_notification_to_old_thread: bool = False,
        send_notification_to_new_thread: bool = True,
    ) -> None:
        """Edit content and/or move like ``PATCH /messages/{id}``, with the same checks."""
        with self._state.cond:
            stream_id = None
            if stream is not None:
                stream_id = self._state.resolve_stream_target(stream).stream_id
            self._state.update_message(
                self._user(editor),
                message_id,
                content=content,
                topic=topic,
                propagate_mode=propagate_mode,
                stream_id=stream_id,
                send_notification_to_old_thread=send_notification_to_old_thread,
                send_notification_to_new_thread=send_notification_to_new_thread,
            )

    def delete_message(self, message_id: int, actor: User | int | None = None) -> None:
        """Delete as ``actor`` (permission-checked) or, by default, as an all-powerful admin."""
        with self._state.cond:
            self._state.delete_message(self._user(actor) if actor is not None else None, message_id)

    def add_reaction(self, user: User | int, message_id: int, emoji_name: str) -> None:
        """React by emoji name (see :mod:`.emoji` for the names known here)."""
        with self._state.cond:
            self._state.reaction(self._user(user), message_id, emoji_name=emoji_name, add=True)

    def remove_reaction(self, user: User | int, message_id: int, emoji_name: str) -> None:
        with self._state.cond:
            self._state.reaction(self._user(user), message_id, emoji_name=emoji_name, add=False)

    def mark_read(self, user: User | int, message_ids: list[int]) -> None:
        """Add the ``read`` flag, as a client reading messages would."""
        with self._state.cond:
            self._state.update_flags(self._user(user), list(message_ids), "add", "read")

    def subscribe(self, user: User | int, stream_name: str) -> None:
        """Subscribe (creating the stream if needed) with the events the real server sends."""
        with self._state.cond:
            target = self._user(user)
            self._state.subscribe(target, [(stream_name, "")], [target], False)

    # ------------------------------------------------------------------ the organisation

    def add_user(
        self,
        full_name: str,
        email: str,
        timezone: str | None = None,
        role: int = ROLE_MEMBER,
        *,
        is_bot: bool = False,
        bot_owner: User | int | None = None,
        streams: tuple[str, ...] = (),
    ) -> User:
        """Create an account (see :meth:`Realm.add_user`) and subscribe it to ``streams``.

        Like a new account on a real server, it shows in ``GET /users`` at once; no
        ``realm_user`` event is sent (nothing here registers for one).
        """
        with self._state.cond:
            user = self.realm.add_user(
                full_name, email, timezone, role, is_bot, bot_owner=bot_owner
            )
            for name in streams:
                self.realm.subscribe(user, name)
            return user

    def deactivate_user(self, user: User | int) -> None:
        """Deactivate an account: it stays listed with ``is_active`` false."""
        with self._state.cond:
            self.realm.deactivate_user(user)

    def add_stream(self, name: str, description: str = "", *, invite_only: bool = False) -> Stream:
        """Create a stream nobody is subscribed to yet."""
        with self._state.cond:
            return self.realm.add_stream(name, description, invite_only)

    def add_profile_field(
        self, name: str, field_type: int = FIELD_SHORT_TEXT, hint: str = "", field_data: str = ""
    ) -> int:
        """Define a custom profile field (an admin's *Custom profile fields* setting); its id."""
        with self._state.cond:
            return self.realm.add_profile_field(name, field_type, hint, field_data)

    def set_profile_value(self, user: User | int, field_id: int, value: str | None) -> None:
        """Set (or with ``None`` clear) a user's value of a custom profile field."""
        with self._state.cond:
            self.realm.set_profile_value(user, field_id, value)

    # ------------------------------------------------------------------ realm settings

    def set_stream_post_policy(self, stream_name: str, policy: int) -> None:
        """Who may post to a stream (``stream_post_policy``: 1 anyone, 2 admins, 3 full
        members, 4 moderators); a bot may post where its owner may."""
        if policy not in (1, 2, 3, 4):
            raise ValueError(f"stream_post_policy {policy} is not 1, 2, 3 or 4")
        with self._state.cond:
            stream = self.realm.stream_by_name(stream_name)
            if stream is None:
                raise KeyError(f"no stream {stream_name!r}")
            stream.stream_post_policy = policy

    def set_private_message_policy(self, policy: int) -> None:
        """The realm's direct message policy (1 everyone, 2 nobody); bots are exempt."""
        if policy not in (1, 2):
            raise ValueError(f"private_message_policy {policy} is not 1 or 2")
        with self._state.cond:
            self.realm.private_message_policy = policy

    def set_invite_to_stream_policy(self, policy: int) -> None:
        """Who may subscribe other users (1 members, 2 admins, 3 full members, 4 moderators)."""
        if policy not in (1, 2, 3, 4):
            raise ValueError(f"invite_to_stream_policy {policy} is not 1, 2, 3 or 4")
        with self._state.cond:
            self.realm.invite_to_stream_policy = policy

    def add_custom_emoji(self, name: str, author: User | int | None = None) -> int:
        """Upload a custom emoji named ``name``; returns its id."""
        with self._state.cond:
            return self.realm.add_custom_emoji(name, author)

    def deactivate_custom_emoji(self, name: str) -> None:
        """Deactivate a custom emoji: it stays listed (``deactivated``) but no longer works."""
        with self._state.cond:
            found = self.realm.custom_emoji_by_name(name)
            if found is None:
                raise KeyError(f"no custom emoji {name!r}")
            found.deactivated = True

    def stream_subscribers(self, stream_name: str) -> set[int]:
        """Ids of the users subscribed to a stream."""
        with self._state.cond:
            stream = self.realm.stream_by_name(stream_name)
            if stream is None:
                raise KeyError(f"no stream {stream_name!r}")
            return set(stream.subscribers)

    def unsubscribe(self, user: User | int, stream_name: str) -> None:
        """Unsubscribe, with the events the real server sends."""
        with self._state.cond:
            target = self._user(user)
            self._state.unsubscribe(target, [stream_name], [target])

    def http_date(self) -> str:
        """The emulator's clock as an HTTP date, as in the ``Date`` and ``Expires`` headers."""
        return email.utils.formatdate(self.clock(), usegmt=True)

    def add_user_group(
        self, name: str, members: list[User | int] | tuple[User | int, ...], description: str = ""
    ) -> int:
        """Create a custom user group that messages can mention as ``@*name*``; its id.

        (The real server also sends a ``user_group`` event; nothing here registers for it.)
        """
        with self._state.cond:
            return self.realm.add_user_group(name, members, description).group_id

    # ------------------------------------------------------------------ inspection

    def _plain(self, message: Message) -> dict[str, Any]:
        return self._state.message_dict(
            message, None, apply_markdown=False, client_gravatar=True, flags=None
        )

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every stored message in id order, as ``GET /messages`` shows it (raw Markdown)."""
        with self._state.cond:
            return [self._plain(m) for m in self._state.iter_messages()]

    def messages_in(self, stream: str, topic: str | None = None) -> list[dict[str, Any]]:
        with self._state.cond:
            target = self.realm.stream_by_name(stream)
            if target is None:
                return []
            key = topic.strip().lower() if topic is not None else None
            return [
                self._plain(m)
                for m in self._state.iter_messages()
                if m.stream is target and (key is None or m.topic.lower() == key)
            ]

    def direct_messages_to(self, user: User | int) -> list[dict[str, Any]]:
        """Direct messages ``user`` received (their own sends excluded unless to themselves)."""
        with self._state.cond:
            uid = self._user(user).user_id
            return [
                self._plain(m)
                for m in self._state.iter_messages()
                if m.stream is None
                and uid in m.dm_user_ids
                and (m.sender.user_id != uid or m.dm_user_ids == (uid,))
            ]

    def message(self, message_id: int) -> dict[str, Any]:
        with self._state.cond:
            found = self._state.messages.get(message_id)
            if found is None:
                raise KeyError(message_id)
            return self._plain(found)

    def flags(self, user: User | int, message_id: int) -> list[str]:
        """``user``'s flags on a message, as ``GET /messages`` would report them."""
        with self._state.cond:
            found = self._state.messages.get(message_id)
            if found is None:
                raise KeyError(message_id)
            return self._state.flags_for(self._user(user), found)

    def notified(self, message_id: int) -> dict[int, list[str]]:
        """Who a message notified: each recipient with a mention flag, and those flags."""
        with self._state.cond:
            found = self._state.messages.get(message_id)
            if found is None:
                raise KeyError(message_id)
            return {
                uid: sorted(flags & MENTION_FLAGS)
                for uid, flags in found.user_flags.items()
                if flags & MENTION_FLAGS
            }

    def iter_users(self) -> Iterator[User]:
        """All (non-system) users, by id; convenient for sandboxes and CLIs."""
        with self._state.cond:
            users = sorted(self.realm.users.values(), key=lambda u: u.user_id)
        yield from users

    def _connection_opened(self) -> None:
        with self._log_lock:
            self._connections_opened += 1

    @property
    def connections_opened(self) -> int:
        """TCP connections clients opened so far: a client that keeps its connections alive
        opens a few, one that drops them opens one per request."""
        with self._log_lock:
            return self._connections_opened

    @property
    def request_log(self) -> list[tuple[str, str, str | None, int]]:
        """``(method, path, user_email, status)`` per served request; status 0 = dropped."""
        with self._log_lock:
            return list(self._log)

    def count_requests(
        self, method: str | None = None, path_prefix: str | None = None, status: int | None = None
    ) -> int:
        prefix = _normalize_prefix(path_prefix)
        with self._log_lock:
            entries = list(self._log)
        count = 0
        for m, path, _email, st in entries:
            rel = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else path.lstrip("/")
            if method is not None and m != method.upper():
                continue
            if prefix is not None and not rel.startswith(prefix):
                continue
            if status is not None and st != status:
                continue
            count += 1
        return count

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Poll ``predicate`` until true or ``timeout``; wakes early on server activity."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._state.cond:
                self._state.cond.wait(min(remaining, 0.02))

    # ------------------------------------------------------------------ HTTP dispatch

    def _record(self, method: str, path: str, user: User | None, status: int) -> None:
        with self._log_lock:
            self._log.append((method, path, user.email if user else None, status))

    def _handle(self, method: str, path: str, raw: dict[str, str], headers: Any) -> _Response:
        try:
            response = self._handle_inner(method, path, raw, headers)
        except (_Drop, QueueGone):
            self._record(method, path, self._requester(headers), 0)
            raise
        self._record(method, path, response.user, response.status)
        return response

    def _requester(self, headers: Any) -> User | None:
        """Who sent a request, for the log only (faults answer before authentication)."""
        found = self._authenticate(headers)
        return found if isinstance(found, User) else None

    def _handle_inner(self, method: str, path: str, raw: dict[str, str], headers: Any) -> _Response:
        if self.timer() < self._down_until:
            return _Response(
                502,
                b"<html><body><h1>502 Bad Gateway</h1></body></html>\n",
                [("Content-Type", "text/html")],
            )
        rel = path[len(API_PREFIX) :] if path.startswith(API_PREFIX) else None
        rule = self.faults._take(method, rel if rel is not None else path.lstrip("/"))
        drop_after = False
        if rule is not None:
            if rule.kind == "drop":
                if not rule.after_processing:
                    raise _Drop
                drop_after = True
            elif rule.kind == "fail":
                failed = self._error_response(
                    rule.status, {"result": "error", "msg": "Internal server error"}
                )
                failed.user = self._requester(headers)
                return failed
            elif rule.kind == "delay":
                time.sleep(rule.seconds)
        response = self._route(method, rel, raw, headers)
        if drop_after:
            raise _Drop
        if rule is not None and rule.kind == "cut":
            response.cut_at = int(len(response.body) * rule.keep)
        return response

    def _error_response(
        self, status: int, body: dict[str, Any], extra_headers: list[tuple[str, str]] | None = None
    ) -> _Response:
        headers = [("Content-Type", "application/json")]
        headers.extend(extra_headers or [])
        headers += [("Vary", "Accept-Language"), ("Content-Language", "en")]
        return _Response(status, dumps(body) + b"\n", headers)

    def _authenticate(self, headers: Any) -> User | _Response:
        auth = headers.get("Authorization", "")
        unauthorized = [("WWW-Authenticate", 'Basic realm="zulip"')]
        if not auth.startswith("Basic "):
            return self._unauthorized(
                "Not logged in: API authentication or user session required", unauthorized
            )
        try:
            decoded = base64.b64decode(auth[6:].strip()).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return self._unauthorized("Invalid authorization header for basic auth", unauthorized)
        email_part, _, key = decoded.partition(":")
        with self._state.cond:
            user = next(
                (u for u in self.realm.users.values() if secrets_equal(u.api_key, key)), None
            )
        if user is None or email_part.lower() not in (user.email.lower(), user.api_email.lower()):
            return self._unauthorized("Invalid API key", unauthorized)
        if not user.is_active:
            return self._unauthorized("Account is deactivated", unauthorized, "USER_DEACTIVATED")
        return user

    def _unauthorized(
        self, msg: str, headers: list[tuple[str, str]], code: str = "UNAUTHORIZED"
    ) -> _Response:
        body = dumps({"result": "error", "msg": msg, "code": code}) + b"\n"
        return _Response(
            401,
            body,
            [
                ("Content-Type", "application/json"),
                *headers,
                ("Vary", "Accept-Language, Cookie"),
                ("Content-Language", "en"),
            ],
        )

    def _route(self, method: str, rel: str | None, raw: dict[str, str], headers: Any) -> _Response:
        if rel is None:
            return self._error_response(
                404, {"result": "error", "msg": "Endpoint not found", "code": "BAD_REQUEST"}
            )
        if rel == "server_settings":
            if method != "GET":
                return self._method_not_allowed(["GET"])
            body = dumps({"result": "success", "msg": "", **self._server_settings()}) + b"\n"
            return _Response(
                200,
                body,
                [
                    ("Content-Type", "application/json"),
                    ("Vary", "Accept-Language, Cookie"),
                    ("Content-Language", "en"),
                ],
            )
        handler_map, match = self._match(rel)
        if handler_map is None:
            return self._error_response(
                404, {"result": "error", "msg": "Endpoint not found", "code": "BAD_REQUEST"}
            )
        auth = self._authenticate(headers)
        if isinstance(auth, _Response):
            return auth
        user = auth
        tornado = rel == "events"
        prefix = "X-Ratelimit" if tornado else "X-RateLimit"
        handler = handler_map.get(method)
        if handler is None:
            resp = self._method_not_allowed(sorted(handler_map))
            resp.user = user
            return resp
        nth = self.faults._nth_429()
        allowed, remaining, reset, retry_after = self._rate_limiter.check(
            user.user_id, "events" if tornado else "api"
        )
        if nth is not None:
            allowed, remaining, reset, retry_after = False, 0, int(time.time() + nth), nth
        limit_headers = [
            (f"{prefix}-Limit", str(self._rate_limiter.shown_limit)),
            (f"{prefix}-Remaining", str(remaining)),
            (f"{prefix}-Reset", str(reset)),
        ]
        if not allowed:
            limited = {
                "result": "error",
                "msg": "API usage exceeded rate limit",
                "code": "RATE_LIMIT_HIT",
                "retry-after": retry_after,
            }
            resp = self._error_response(429, limited, [("Retry-After", repr(float(retry_after)))])
            resp.headers.extend(limit_headers)
            resp.user = user
            return resp
        user_agent = headers.get("User-Agent", "")
        client_name = raw.get("client") or (
            user_agent.split("/", 1)[0].split(" ", 1)[0] or "Unspecified"
        )
        params = _Params(raw)
        request = _Request(method, rel, params, user, match, client_name)
        try:
            result = handler(request)
        except ApiError as err:
            resp = self._error_response(err.status, err.body())
            resp.headers.extend(limit_headers)
            resp.user = user
            return resp
        except _LongPollResult as lp:
            return self._events_response(lp, user, limit_headers)
        body_dict: dict[str, Any] = {"result": "success", "msg": "", **result}
        ignored = params.ignored()
        if ignored and not tornado:
            body_dict["ignored_parameters_unsupported"] = ignored
        body = dumps(body_dict) + b"\n"
        out_headers = [
            ("Content-Type", "application/json"),
            ("Expires", self.http_date()),
            ("Cache-Control", _NO_CACHE),
            ("Vary", "Accept-Language"),
            ("Content-Language", "en"),
            *limit_headers,
        ]
        return _Response(200, body, out_headers, user)

    def _events_response(
        self, lp: _LongPollResult, user: User, limit_headers: list[tuple[str, str]]
    ) -> _Response:
        body = b'{"result":"success","msg":"","events":[' + b",".join(lp.events) + b"]"
        if lp.queue_id is not None:
            body += b',"queue_id":' + dumps(lp.queue_id)
        body += b"}\n"
        headers = [
            ("Content-Type", "application/json"),
            ("Expires", self.http_date()),
            ("Cache-Control", _NO_CACHE),
        ]
        if lp.waited:
            headers.append(("Vary", "Accept-Language, Cookie"))
            headers.append(("Content-Language", "en"))
        else:
            headers.append(("Vary", "Accept-Language"))
            headers.append(("Content-Language", "en"))
            headers.extend(limit_headers)
        headers.append(("Etag", '"' + hashlib.sha1(body, usedforsecurity=False).hexdigest() + '"'))
        return _Response(200, body, headers, user)

    def _method_not_allowed(self, allowed: list[str]) -> _Response:
        return self._error_response(
            405,
            {
                "result": "error",
                "msg": "Method Not Allowed",
                "allowed_methods": allowed,
                "code": "BAD_REQUEST",
            },
        )

    def _match(self, rel: str) -> tuple[dict[str, Handler] | None, dict[str, str]]:
        parts = rel.strip("/").split("/")
        for pattern, handlers in self._routes:
            if len(pattern) != len(parts):
                continue
            captured: dict[str, str] = {}
            for want, got in zip(pattern, parts, strict=True):
                if want.startswith("{"):
                    if not got:
                        break
                    captured[want[1:-1]] = got
                elif want != got:
                    break
            else:
                return handlers, captured
        return None, {}

    def _server_settings(self) -> dict[str, Any]:
        return {
            "authentication_methods": {
                "password": True,
                "dev": True,
                "email": True,
                "ldap": False,
                "remoteuser": False,
                "github": False,
                "azuread": False,
                "gitlab": False,
                "google": False,
                "apple": False,
                "saml": False,
                "openid connect": False,
            },
            "zulip_version": "8.0-beta2+git",
            "zulip_merge_base": "",
            "zulip_feature_level": 236,
            "push_notifications_enabled": False,
            "is_incompatible": False,
            "email_auth_enabled": True,
            "require_email_format_usernames": True,
            "realm_uri": self.base_url,
            "realm_name": self.realm.name,
            "realm_icon": "https://secure.gravatar.com/avatar/00000000000000000000000000000000?d=identicon",
            "realm_description": f"<p>{self.realm.description}</p>",
            "realm_web_public_access_enabled": False,
            "external_authentication_methods": [],
        }

    # ------------------------------------------------------------------ endpoint handlers

    def _build_routes(self) -> list[tuple[list[str], dict[str, Handler]]]:
        table: list[tuple[str, dict[str, Handler]]] = [
            ("register", {"POST": self._h_register}),
            ("events", {"GET": self._h_get_events, "DELETE": self._h_delete_queue}),
            ("messages", {"GET": self._h_get_messages, "POST": self._h_send_message}),
            ("messages/flags", {"POST": self._h_update_flags}),
            ("messages/render", {"POST": self._h_render_message}),
            (
                "messages/{message_id}",
                {
                    "GET": self._h_get_message,
                    "PATCH": self._h_update_message,
                    "DELETE": self._h_delete_message,
                },
            ),
            (
                "messages/{message_id}/reactions",
                {
                    "POST": self._h_add_reaction,
                    "DELETE": self._h_remove_reaction,
                },
            ),
            ("users", {"GET": self._h_get_users}),
            ("users/me", {"GET": self._h_get_me}),
            (
                "users/me/subscriptions",
                {
                    "GET": self._h_get_subscriptions,
                    "POST": self._h_subscribe,
                    "DELETE": self._h_unsubscribe,
                },
            ),
            ("users/me/{stream_id}/topics", {"GET": self._h_get_topics}),
            ("users/{user}", {"GET": self._h_get_user}),
            ("get_stream_id", {"GET": self._h_get_stream_id}),
            ("streams", {"GET": self._h_get_streams}),
            ("streams/{stream_id}/members", {"GET": self._h_get_stream_members}),
            ("realm/profile_fields", {"GET": self._h_profile_fields}),
            ("realm/emoji", {"GET": self._h_realm_emoji}),
            ("user_groups", {"GET": self._h_user_groups}),
            ("typing", {"POST": self._h_typing}),
            (
                "bot_storage",
                {
                    "GET": self._h_get_storage,
                    "PUT": self._h_put_storage,
                    "DELETE": self._h_delete_storage,
                },
            ),
        ]
        return [(path.split("/"), handlers) for path, handlers in table]

    # --- events

    def _h_register(self, req: _Request) -> dict[str, Any]:
        p = req.params
        event_types = p.get_json("event_types", None)
        if event_types is not None and not (
            isinstance(event_types, list) and all(isinstance(t, str) for t in event_types)
        ):
            raise ApiError("event_types is not a list")
        fetch_types = p.get_json("fetch_event_types", None)
        capabilities = p.get_json("client_capabilities", {}) or {}
        lifespan = p.get_int("queue_lifespan_secs", 0) or 0
        p.has("slim_presence")
        with self._state.cond:
            narrow = self._state.parse_narrow(p.get_json("narrow", []), req.user)
            return self._state.register(
                req.user,
                event_types=event_types,
                narrow=narrow,
                apply_markdown=p.get_bool("apply_markdown", False),
                client_gravatar=p.get_bool("client_gravatar", True),
                all_public_streams=p.get_bool("all_public_streams", False),
                include_subscribers=p.get_bool("include_subscribers", False),
                fetch_event_types=fetch_types,
                bulk_message_deletion=bool(capabilities.get("bulk_message_deletion", False)),
                lifespan=float(lifespan) if lifespan > 0 else self.queue_lifespan_seconds,
            )

    def _h_get_events(self, req: _Request) -> dict[str, Any]:
        p = req.params
        queue_id = p.get_str("queue_id")
        implicit = None
        if queue_id is None:
            implicit = self._h_register(req)
            queue_id = str(implicit["queue_id"])
        last_event_id = p.get_int("last_event_id", None)
        dont_block = p.get_bool("dont_block", False)
        for name in ("user_client", "secret", "client", "slim_presence", "lifespan_secs"):
            p.has(name)
        events, waited = self._state.get_events(
            req.user, queue_id, last_event_id, dont_block, self.heartbeat_seconds
        )
        raise _LongPollResult(events, waited, queue_id if (waited or implicit) else None)

    def _h_delete_queue(self, req: _Request) -> dict[str, Any]:
        queue_id = req.params.get_str("queue_id", required=True)
        assert queue_id is not None
        with self._state.cond:
            self._state.delete_queue(req.user, queue_id)
        return {}

    # --- messages

    def _h_send_message(self, req: _Request) -> dict[str, Any]:
        p = req.params
        msg_type = p.get_str("type", required=True)
        for name in (
            "local_id",
            "queue_id",
            "realm_str",
            "forged",
            "time",
            "widget_content",
            "client",
        ):
            p.has(name)
        read_by_sender = p.get_opt_bool("read_by_sender")
        content = p.get_str("content", required=True)
        assert content is not None
        with self._state.cond:
            if msg_type in ("stream", "channel"):
                topic = p.get_str("topic")
                if topic is None:
                    topic = p.get_str("subject")
                if topic is None:
                    raise ApiError("Missing topic")
                to = p.lenient("to")
                if to is None:
                    to = p.lenient("stream_id")
                if to is None:
                    raise ApiError(
                        "Missing 'to' argument", "REQUEST_VARIABLE_MISSING", var_name="to"
                    )
                norm_topic = self._state.normalize_topic(topic)
                stream = self._state.resolve_stream_target(to)
                message, extra = self._state.send_message(
                    req.user,
                    stream=stream,
                    topic=norm_topic,
                    content=content,
                    client=req.client_name,
                    read_by_sender=read_by_sender,
                )
            elif msg_type in ("private", "direct"):
                to = p.lenient("to", required=True)
                p.has("topic")
                p.has("subject")
                recipients = self._state.resolve_dm_targets(to)
                message, extra = self._state.send_message(
                    req.user,
                    recipients=recipients,
                    content=content,
                    client=req.client_name,
                    read_by_sender=read_by_sender,
                )
            else:
                raise ApiError("Invalid message type")
        return {"id": message.id, **extra}

    def _h_render_message(self, req: _Request) -> dict[str, Any]:
        content = req.params.get_str("content", required=True)
        assert content is not None
        with self._state.cond:
            return {"rendered": self._state.renderer.render(content)}

    def _h_get_messages(self, req: _Request) -> dict[str, Any]:
        p = req.params
        use_first_unread = p.get_bool("use_first_unread_anchor", False)
        anchor_raw = p.get_str("anchor")
        anchor: str | int
        if anchor_raw is None:
            if not use_first_unread:
                raise ApiError("Missing 'anchor' argument.")
            anchor = "first_unread"
        elif anchor_raw in ("newest", "oldest", "first_unread"):
            anchor = anchor_raw
        else:
            try:
                anchor = int(anchor_raw)
            except ValueError:
                raise ApiError("Invalid anchor") from None
            if anchor < 0:
                anchor = 0
        num_before = p.get_int("num_before", required=True)
        num_after = p.get_int("num_after", required=True)
        assert num_before is not None and num_after is not None
        with self._state.cond:
            narrow = self._state.parse_narrow(p.get_json("narrow", []), req.user)
            return self._state.get_messages(
                req.user,
                anchor=anchor,
                num_before=num_before,
                num_after=num_after,
                include_anchor=p.get_bool("include_anchor", True),
                narrow=narrow,
                apply_markdown=p.get_bool("apply_markdown", True),
                client_gravatar=p.get_bool("client_gravatar", True),
            )

    def _message_id(self, req: _Request) -> int:
        raw = req.match["message_id"]
        if not raw.isdigit():
            raise ApiError("Invalid message(s)")
        return int(raw)

    def _h_get_message(self, req: _Request) -> dict[str, Any]:
        p = req.params
        mid = self._message_id(req)
        apply_markdown = p.get_bool("apply_markdown", True)
        client_gravatar = p.get_bool("client_gravatar", True)
        with self._state.cond:
            message = self._state.messages.get(mid)
            if message is None or not self._state.can_access(req.user, message):
                raise ApiError("Invalid message(s)")
            d = self._state.message_dict(
                message,
                req.user,
                apply_markdown=apply_markdown,
                client_gravatar=client_gravatar,
                flags=self._state.flags_for(req.user, message),
            )
            return {"message": d, "raw_content": message.content}

    def _h_update_message(self, req: _Request) -> dict[str, Any]:
        p = req.params
        mid = self._message_id(req)
        topic = p.get_str("topic")
        if topic is None:
            topic = p.get_str("subject")
        stream_id = p.get_int("stream_id", None)
        with self._state.cond:
            self._state.update_message(
                req.user,
                mid,
                content=p.get_str("content"),
                topic=topic,
                propagate_mode=p.get_str("propagate_mode", "change_one") or "change_one",
                stream_id=stream_id,
                send_notification_to_old_thread=p.get_bool(
                    "send_notification_to_old_thread", False
                ),
                send_notification_to_new_thread=p.get_bool("send_notification_to_new_thread", True),
            )
        return {}

    def _h_delete_message(self, req: _Request) -> dict[str, Any]:
        mid = self._message_id(req)
        with self._state.cond:
            self._state.delete_message(req.user, mid)
        return {}

    def _reaction(self, req: _Request, add: bool) -> dict[str, Any]:
        p = req.params
        mid = self._message_id(req)
        name = p.get_str("emoji_name", required=True)
        assert name is not None
        with self._state.cond:
            self._state.reaction(
                req.user,
                mid,
                emoji_name=name,
                emoji_code=p.get_str("emoji_code"),
                reaction_type=p.get_str("reaction_type"),
                add=add,
            )
        return {}

    def _h_add_reaction(self, req: _Request) -> dict[str, Any]:
        return self._reaction(req, True)

    def _h_remove_reaction(self, req: _Request) -> dict[str, Any]:
        return self._reaction(req, False)

    def _h_update_flags(self, req: _Request) -> dict[str, Any]:
        p = req.params
        ids = p.get_json("messages", required=True)
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise ApiError("messages is not a list")
        op = p.get_str("op", required=True)
        flag = p.get_str("flag", required=True)
        assert op is not None and flag is not None
        with self._state.cond:
            changed = self._state.update_flags(req.user, ids, op, flag)
        return {"messages": changed}

    # --- users and streams

    def _h_get_users(self, req: _Request) -> dict[str, Any]:
        p = req.params
        gravatar = p.get_bool("client_gravatar", True)
        profile = p.get_bool("include_custom_profile_fields", False)
        with self._state.cond:
            members = [
                self._state.user_dict(u, req.user, client_gravatar=gravatar, profile=profile)
                for u in self._state.sorted_users()
            ]
        return {"members": members}

    def _h_get_me(self, req: _Request) -> dict[str, Any]:
        with self._state.cond:
            d = self._state.user_dict(req.user, req.user, client_gravatar=False, profile=True)
            d["max_message_id"] = self._state.max_received.get(req.user.user_id, -1)
        return d

    def _h_get_user(self, req: _Request) -> dict[str, Any]:
        p = req.params
        gravatar = p.get_bool("client_gravatar", True)
        profile = p.get_bool("include_custom_profile_fields", False)
        key = req.match["user"]
        with self._state.cond:
            target = (
                self.realm.user_by_id(int(key))
                if key.isdigit()
                else self.realm.user_by_api_email(key)
            )
            if target is None or target.is_system_bot:
                raise ApiError("No such user")
            return {
                "user": self._state.user_dict(
                    target, req.user, client_gravatar=gravatar, profile=profile
                )
            }

    def _h_get_subscriptions(self, req: _Request) -> dict[str, Any]:
        include = req.params.get_bool("include_subscribers", False)
        with self._state.cond:
            return {
                "subscriptions": self._state.subscriptions(req.user, include_subscribers=include)
            }

    def _principals(self, req: _Request) -> list[User]:
        raw = req.params.get_json("principals", None)
        if raw is None:
            return [req.user]
        if not isinstance(raw, list):
            raise ApiError("principals is not a list")
        users: list[User] = []
        for item in raw:
            found = (
                self.realm.user_by_id(item)
                if isinstance(item, int)
                else self.realm.user_by_api_email(str(item))
            )
            if found is None:
                raise ApiError("No such user")
            users.append(found)
        return users

    def _h_subscribe(self, req: _Request) -> dict[str, Any]:
        p = req.params
        subs = p.get_json("subscriptions", required=True)
        if not isinstance(subs, list):
            raise ApiError("subscriptions is not a list")
        names: list[tuple[str, str]] = []
        for item in subs:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ApiError("subscriptions[0] is missing 'name'")
            names.append((item["name"], str(item.get("description", ""))))
        invite_only = p.get_bool("invite_only", False)
        for name in (
            "announce",
            "authorization_errors_fatal",
            "history_public_to_subscribers",
            "stream_post_policy",
            "message_retention_days",
            "is_web_public",
            "is_default_stream",
            "can_remove_subscribers_group",
        ):
            p.has(name)
        with self._state.cond:
            principals = self._principals(req)
            return self._state.subscribe(req.user, names, principals, invite_only)

    def _h_unsubscribe(self, req: _Request) -> dict[str, Any]:
        names = req.params.get_json("subscriptions", required=True)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ApiError("subscriptions is not a list")
        with self._state.cond:
            return self._state.unsubscribe(req.user, names, self._principals(req))

    def _stream_from_match(self, req: _Request, key: str) -> Stream:
        raw = req.match[key]
        stream = self.realm.stream_by_id(int(raw)) if raw.isdigit() else None
        if stream is None or not self._state.stream_accessible(req.user, stream):
            raise ApiError("Invalid stream ID")
        return stream

    def _h_get_topics(self, req: _Request) -> dict[str, Any]:
        with self._state.cond:
            stream = self._stream_from_match(req, "stream_id")
            return {"topics": self._state.topics(req.user, stream)}

    def _h_get_stream_id(self, req: _Request) -> dict[str, Any]:
        name = req.params.get_str("stream", required=True)
        assert name is not None
        with self._state.cond:
            stream = self.realm.stream_by_name(name)
            if stream is None or not self._state.stream_accessible(req.user, stream):
                raise ApiError(f"Invalid stream name '{name}'")
            return {"stream_id": stream.stream_id}

    def _h_get_streams(self, req: _Request) -> dict[str, Any]:
        p = req.params
        for name in (
            "include_public",
            "include_web_public",
            "include_subscribed",
            "include_all_active",
            "include_default",
            "include_owner_subscribed",
        ):
            p.has(name)
        with self._state.cond:
            streams = [
                self._state.stream_dict(s, include_subscribers=False)
                for s in sorted(self.realm.streams.values(), key=lambda s: s.stream_id)
                if self._state.stream_accessible(req.user, s)
            ]
        return {"streams": streams}

    def _h_get_stream_members(self, req: _Request) -> dict[str, Any]:
        req.params.has("stream")
        with self._state.cond:
            stream = self._stream_from_match(req, "stream_id")
            return {"subscribers": sorted(stream.subscribers)}

    def _h_realm_emoji(self, req: _Request) -> dict[str, Any]:
        with self._state.cond:
            return {"emoji": self._state.realm_emoji()}

    def _h_profile_fields(self, req: _Request) -> dict[str, Any]:
        with self._state.cond:
            return {"custom_fields": self._state.profile_fields()}

    def _h_user_groups(self, req: _Request) -> dict[str, Any]:
        with self._state.cond:
            return {"user_groups": self._state.user_groups()}

    def _h_typing(self, req: _Request) -> dict[str, Any]:
        p = req.params
        op = p.get_str("op", required=True)
        if op not in ("start", "stop"):
            raise ApiError("Invalid op")
        for name in ("type", "to", "topic", "stream_id"):
            p.has(name)
        return {}

    # --- bot storage (used by zulip_bots' StateHandler; not in the OpenAPI description)

    def _h_get_storage(self, req: _Request) -> dict[str, Any]:
        keys = req.params.get_json("keys", None)
        with self._state.cond:
            storage = self._state.bot_storage.get(req.user.user_id, {})
            if keys is None:
                return {"storage": dict(storage)}
            if not isinstance(keys, list):
                raise ApiError("keys is not a list")
            missing = [k for k in keys if k not in storage]
            if missing:
                raise ApiError("Key does not exist.")
            return {"storage": {k: storage[k] for k in keys}}

    def _h_put_storage(self, req: _Request) -> dict[str, Any]:
        data = req.params.get_json("storage", required=True)
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ApiError("storage contains a value that is not a string")
        with self._state.cond:
            self._state.bot_storage.setdefault(req.user.user_id, {}).update(data)
        return {}

    def _h_delete_storage(self, req: _Request) -> dict[str, Any]:
        keys = req.params.get_json("keys", None)
        with self._state.cond:
            storage = self._state.bot_storage.setdefault(req.user.user_id, {})
            if keys is None:
                storage.clear()
                return {}
            if not isinstance(keys, list):
                raise ApiError("keys is not a list")
            if any(k not in storage for k in keys):
                raise ApiError("Key does not exist.")
            for k in keys:
                del storage[k]
        return {}


class _LongPollResult(Exception):
    """Carries pre-encoded events out of a handler (they bypass the generic JSON path)."""

    def __init__(self, events: list[bytes], waited: bool, queue_id: str | None) -> None:
        super().__init__("events")
        self.events = events
        self.waited = waited
        self.queue_id = queue_id


def secrets_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
