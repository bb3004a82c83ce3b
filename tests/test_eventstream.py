"""Reading a ``GET /events`` body as a stream: heartbeats, events without ids, a cut body.

The response is a real ``requests.Response`` over a real urllib3 response whose bytes come from
memory; the end-to-end behaviour (a cut response resumed) is in ``tests/test_faults.py``.
"""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import pytest
import requests
import urllib3

from zulip_goals_bot.bot.eventstream import EventsInterrupted, EventStream


def response(body: bytes) -> requests.Response:
    r = requests.Response()
    r.status_code = 200
    r.raw = urllib3.HTTPResponse(body=io.BytesIO(body), preload_content=False)
    return r


def body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps({"result": "success", "msg": "", "events": events, "queue_id": "q"}).encode()


def message(event_id: int) -> dict[str, Any]:
    return {"id": event_id, "type": "message", "message": {"id": 100 + event_id}, "flags": []}


def test_heartbeats_are_counted_not_handed_out() -> None:
    stream = EventStream(response(body([message(1), {"id": 2, "type": "heartbeat"}, message(3),
                                        {"id": 4, "type": "heartbeat"}])))  # fmt: skip
    assert [e["id"] for e in stream] == [1, 3]
    assert (stream.count, stream.last_event_id) == (4, 4)


def test_an_event_without_an_id_is_skipped_and_the_others_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = EventStream(response(body([message(1), {"type": "message"}, message(2)])))
    assert [e["id"] for e in stream] == [1, 2]
    assert stream.last_event_id == 2
    assert "skipping an event without an id" in caplog.text


def test_a_cut_body_hands_out_the_whole_events_then_says_where_it_broke() -> None:
    whole = body([message(i) for i in range(1, 200)])
    stream = EventStream(response(whole[: len(whole) // 2]))
    taken: list[int] = []
    with pytest.raises(EventsInterrupted, match="broke off after"):
        for event in stream:
            taken.append(event["id"])
    assert taken == list(range(1, len(taken) + 1)) and 50 < len(taken) < 150
    assert stream.last_event_id == taken[-1]


def test_a_timed_out_long_poll_is_an_empty_stream() -> None:
    stream = EventStream.empty()
    assert list(stream) == [] and stream.last_event_id is None and stream.count == 0


def test_a_gzipped_body_is_read_whole() -> None:
    """Zulip's web server compresses large responses; the stream reads them decoded."""
    events = [message(i) | {"pad": "x" * 500} for i in range(1, 3_001)]
    r = requests.Response()
    r.status_code = 200
    r.raw = urllib3.HTTPResponse(
        body=io.BytesIO(gzip.compress(body(events))),
        headers={"Content-Encoding": "gzip"},
        preload_content=False,
    )
    stream = EventStream(r)
    assert [e["id"] for e in stream] == list(range(1, 3_001))
    assert stream.last_event_id == 3_000
