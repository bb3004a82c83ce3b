"""The events of one ``GET /events`` response, decoded while they arrive.

A bot that was held up (a long deploy, a burst of replies) finds thousands of events waiting:
20,000 replies are a 14 MB response.  Decoded whole, as ``zulip.Client`` does, the body, its text
and every event dict are alive at once (the bot's peak memory went from 80 to 140 MB).  Read as a
stream with ijson, events are handed out one at a time, each reduced to what the bot uses as
soon as it is read (``Ingest.process_stream``): 5,000 parsed events hold 16 MB, the messages
made of them 1 MB.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import ijson
import requests
import urllib3

from zulip_goals_bot.errors import ZulipError

log = logging.getLogger(__name__)

# Bytes asked of the socket per read: large enough that the C parser, not Python, does the work.
READ_SIZE = 64 * 1024
# What a body that stops mid-way raises: a dropped or timed-out connection (urllib3's own errors,
# as ``raw`` is read directly) or JSON cut short.
_BROKEN = (ijson.JSONError, requests.RequestException, urllib3.exceptions.HTTPError, OSError)


class EventsInterrupted(ZulipError):
    """The response broke off mid-way: the events handed out so far are good, ask for the rest."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class EventStream:
    """The events of one successful response, as an iterator; heartbeats are counted, not kept.

    ``last_event_id`` is the id of the last event the consumer took in (heartbeats included), so
    that a response that breaks off is asked for again from there: none is skipped, and the
    consumer's own duplicate check makes a repeated one harmless.
    """

    def __init__(self, response: requests.Response | None) -> None:
        self._response = response
        self.last_event_id: int | None = None
        self.count = 0  # events handed out, heartbeats included

    @classmethod
    def empty(cls) -> EventStream:
        """A long poll that timed out: no events, ask again."""
        return cls(None)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The events other than heartbeats, one at a time, in the server's order.

        Raises ``EventsInterrupted`` when the connection drops or the body is not valid JSON.
        """
        if self._response is None:
            return
        response = self._response
        response.raw.decode_content = True  # the server may gzip the body
        try:
            events = ijson.items(response.raw, "events.item", use_float=True, buf_size=READ_SIZE)
            for event in events:
                if not isinstance(event, dict) or not isinstance(event.get("id"), int):
                    # The server numbers every event; one without a number cannot be asked for
                    # again or resumed from, so it is skipped with a warning.
                    log.warning("GET /events: skipping an event without an id: %.80r", event)
                    continue
                self.count += 1
                if event.get("type") != "heartbeat":
                    yield event
                # Set once the consumer asks for the next one: it has taken this one in.
                self.last_event_id = event["id"]
        except _BROKEN as exc:
            raise EventsInterrupted(
                f"GET /events: the response broke off after {self.count} events "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        finally:
            # Read to the end, the connection has gone back to the pool for the next long poll;
            # cut short, it is closed.
            response.close()

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
