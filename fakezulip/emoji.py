"""A small subset of the emoji names the real server knows, with their Unicode code points.

Reactions with a name outside this table fail like an unknown emoji does on the real
server, so tests get the same error path; callers may pass ``emoji_code`` explicitly.
"""

from __future__ import annotations

UNICODE_EMOJI: dict[str, str] = {
    "+1": "1f44d",
    "thumbs_up": "1f44d",
    "like": "1f44d",
    "-1": "1f44e",
    "thumbs_down": "1f44e",
    "heart": "2764",
    "octopus": "1f419",
    "tada": "1f389",
    "eyes": "1f440",
    "rocket": "1f680",
    "fire": "1f525",
    "star": "2b50",
    "check": "2705",
    "check_mark": "2714",
    "cross_mark": "274c",
    "warning": "26a0",
    "question": "2753",
    "exclamation": "2757",
    "clap": "1f44f",
    "wave": "1f44b",
    "muscle": "1f4aa",
    "100": "1f4af",
    "thinking": "1f914",
    "joy": "1f602",
    "smile": "1f642",
    "smiley": "1f603",
    "big_smile": "1f604",
    "grinning": "1f600",
    "laughing": "1f606",
    "wink": "1f609",
    "heart_eyes": "1f60d",
    "cry": "1f622",
    "sob": "1f62d",
    "upside_down": "1f643",
    "see_no_evil": "1f648",
    "raised_hands": "1f64c",
    "working_on_it": "1f6e0",
    "hourglass": "231b",
    "calendar": "1f4c5",
    "sparkles": "2728",
    "trophy": "1f3c6",
    "bulb": "1f4a1",
    "memo": "1f4dd",
    "turtle": "1f422",
    "snail": "1f40c",
    "coffee": "2615",
    "cake": "1f370",
    "pizza": "1f355",
    "rainbow": "1f308",
    "zzz": "1f4a4",
    "stop_sign": "1f6d1",
    "red_circle": "1f534",
    "blue_circle": "1f535",
    "green_circle": "1f7e2",
    "yellow_circle": "1f7e1",
    "orange_circle": "1f7e0",
    "calendar_spiral": "1f5d3",
    "bell": "1f514",
    "lock": "1f512",
    "link": "1f517",
    "pushpin": "1f4cc",
}

ZULIP_EXTRA_EMOJI = frozenset({"zulip"})


def lookup(name: str) -> tuple[str, str] | None:
    """``(emoji_code, reaction_type)`` for a known emoji name, else ``None``."""
    code = UNICODE_EMOJI.get(name)
    if code is not None:
        return code, "unicode_emoji"
    if name in ZULIP_EXTRA_EMOJI:
        return name, "zulip_extra_emoji"
    return None
