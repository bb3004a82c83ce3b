"""Failures to inject, so that a client's retry and recovery paths run against real sockets.

Three kinds, each consumed by the next request(s) that match:

* ``fail``: answer an error status at once (the request is not performed), with the bodies and
  headers GitHub sends: secondary rate limits (403 or 429 with ``Retry-After``), a primary rate
  limit 403, 500, 502 (an HTML page, as GitHub's front end sends), 503;
* ``cut``: close the connection without answering, before doing anything;
* ``cut_after_commit``: perform the request (a comment is created), then close without answering.
  The client cannot tell whether its POST happened: the ambiguous failure a bot that posts
  comments must handle without posting twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["Fault", "Faults"]


@dataclass
class Fault:
    """One armed fault; ``times`` counts down as it fires."""

    kind: str
    times: int
    status: int = 0
    retry_after: int | None = None
    secondary: bool = False
    method: str | None = None
    path: str | None = None

    def matches(self, method: str, path: str) -> bool:
        """Unfiltered faults hit any request; ``path`` is a substring of the request path."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or self.path in path


class Faults:
    """The queue of armed faults of one emulator; oldest armed fires first."""

    FAIL_STATUSES = (403, 429, 500, 502, 503)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[Fault] = []
        self.fired: dict[str, int] = {}

    def fail_next(
        self,
        status: int = 503,
        times: int = 1,
        retry_after: int | None = None,
        secondary: bool = False,
        *,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` instead of performing them.

        ``secondary=True`` (403 or 429) sends GitHub's secondary rate limit body; a 403 without it
        is the primary rate limit (``X-RateLimit-Remaining: 0``). ``retry_after`` adds the header.
        """
        if status not in self.FAIL_STATUSES:
            raise ValueError(f"fail_next supports {self.FAIL_STATUSES}, not {status}")
        self._arm(Fault("fail", times, status, retry_after, secondary, method, path))

    def cut_next(
        self, times: int = 1, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Close the connection of the next ``times`` matching requests without answering."""
        self._arm(Fault("cut", times, method=method, path=path))

    def cut_after_commit_next(
        self, times: int = 1, *, method: str | None = None, path: str | None = None
    ) -> None:
        """Perform the next matching request(s), then close without sending the answer."""
        self._arm(Fault("cut_after_commit", times, method=method, path=path))

    def clear(self) -> None:
        """Disarm everything not yet fired (``fired`` is kept)."""
        with self._lock:
            self._armed.clear()

    @property
    def pending(self) -> int:
        """How many firings are still armed, over all faults."""
        with self._lock:
            return sum(fault.times for fault in self._armed)

    def _arm(self, fault: Fault) -> None:
        if fault.times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._armed.append(fault)

    def take(self, method: str, path: str) -> Fault | None:
        """The fault this request meets, counted as fired; ``None`` for most requests."""
        with self._lock:
            for fault in self._armed:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times == 0:
                        self._armed.remove(fault)
                    self.fired[fault.kind] = self.fired.get(fault.kind, 0) + 1
                    return fault
        return None
