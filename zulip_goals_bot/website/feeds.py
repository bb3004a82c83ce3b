"""Atom feeds (RFC 4287) of the updates: one for the whole program, one per goal.

Built with ``xml.etree``, from plain values, so a feed is a pure function of its entries.  Every
date comes from the data (an entry's ``updated`` is when the message was last edited, the feed's
is its newest entry's), so an unchanged database gives an unchanged feed.  Ids are permanent:
an entry's is the Zulip message's link (or a name-based UUID when the server is unknown), a
feed's a name-based UUID of the program and the goal.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

ATOM_NS = "http://www.w3.org/2005/Atom"
# Name-based UUIDs for ids need a namespace of our own; any fixed UUID will do.
ID_NAMESPACE = uuid.UUID("6f0b8c2e-4a57-4e0f-9d55-2b1c7c1f0a11")


@dataclass(frozen=True, slots=True)
class Entry:
    """One update in a feed; ``html`` is already sanitized."""

    id: str
    title: str
    author: str
    published: datetime
    updated: datetime
    html: str
    link: str | None  # the message in Zulip (absolute), when readers can open it
    goal_link: str  # the goal's page, relative to the feed


@dataclass(frozen=True, slots=True)
class Feed:
    id: str
    title: str
    subtitle: str
    self_href: str  # relative to the feed itself, like every link of the site
    page_href: str  # the HTML page the feed belongs to
    fallback_updated: datetime  # for a feed without entries: when its goal(s) last changed
    entries: Sequence[Entry]

    @property
    def updated(self) -> datetime:
        return max((e.updated for e in self.entries), default=self.fallback_updated)


def name_id(*parts: str) -> str:
    """A permanent id for something named by ``parts`` (a program, a goal, a message)."""
    return uuid.uuid5(ID_NAMESPACE, "\x1f".join(parts)).urn


def _stamp(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def render_feed(feed: Feed) -> bytes:
    """The feed as UTF-8 XML.  Its links are relative to the feed's own address, as XML's base
    rules say, so the site works from any path."""
    root = ET.Element("feed", {"xmlns": ATOM_NS})
    _sub(root, "id", feed.id)
    _sub(root, "title", feed.title)
    _sub(root, "subtitle", feed.subtitle)
    _sub(root, "updated", _stamp(feed.updated))
    _sub(root, "link", rel="self", href=feed.self_href, type="application/atom+xml")
    _sub(root, "link", rel="alternate", href=feed.page_href, type="text/html")
    _sub(root, "generator", "zulip-goals-bot")
    for e in feed.entries:
        entry = _sub(root, "entry")
        _sub(entry, "id", e.id)
        _sub(entry, "title", e.title)
        author = _sub(entry, "author")
        _sub(author, "name", e.author)
        _sub(entry, "published", _stamp(e.published))
        _sub(entry, "updated", _stamp(e.updated))
        if e.link:
            _sub(entry, "link", rel="alternate", href=e.link, type="text/html")
        _sub(entry, "link", rel="related", href=e.goal_link, type="text/html")
        _sub(entry, "content", e.html, type="html")
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode", xml_declaration=False)
    return ('<?xml version="1.0" encoding="utf-8"?>\n' + body + "\n").encode()
