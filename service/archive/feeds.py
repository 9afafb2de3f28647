"""The archive's feeds: Atom (RFC 4287) for issues, iCalendar for their agenda.

Feed and entry ids are tag URIs (RFC 4151) naming the database ids, not URLs: they
stay the same when a newsletter's slug changes, so feed readers never show an
issue twice.
"""

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from emails.calendar import calendar

ATOM = "http://www.w3.org/2005/Atom"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class FeedEntry:
    id: int
    title: str
    summary: str
    url: str
    created: dt.datetime
    published: dt.datetime


@dataclass(frozen=True)
class Feed:
    newsletter_id: int
    created: dt.datetime
    title: str
    subtitle: str
    author: str
    self_url: str
    page_url: str
    updated: dt.datetime


def tag_uri(base_url: str, created: dt.datetime, specific: str) -> str:
    host = urlsplit(base_url).hostname or "localhost"
    return f"tag:{host},{created.astimezone(dt.UTC).date().isoformat()}:lettrine/{specific}"


def _text(value: str) -> str:
    return _NOT_XML.sub("", value)


def _date(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _add(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = _text(text)
    return element


def atom(base_url: str, feed: Feed, entries: Sequence[FeedEntry]) -> bytes:
    root = ET.Element("feed", {"xmlns": ATOM, XML_LANG: "fr"})
    _add(root, "id", tag_uri(base_url, feed.created, f"newsletter/{feed.newsletter_id}"))
    _add(root, "title", feed.title)
    _add(root, "subtitle", feed.subtitle)
    _add(root, "updated", _date(feed.updated))
    _add(root, "link", rel="self", type="application/atom+xml", href=feed.self_url)
    _add(root, "link", rel="alternate", type="text/html", href=feed.page_url)
    author = _add(root, "author")
    _add(author, "name", feed.author)
    _add(root, "generator", "Lettrine")
    for entry in entries:
        item = _add(root, "entry")
        _add(item, "id", tag_uri(base_url, entry.created, f"issue/{entry.id}"))
        _add(item, "title", entry.title)
        _add(item, "link", rel="alternate", type="text/html", href=entry.url)
        _add(item, "published", _date(entry.published))
        # A sent issue does not change: its publication is its last significant update.
        _add(item, "updated", _date(entry.published))
        if entry.summary:
            _add(item, "summary", entry.summary)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def agenda(events: Sequence[Mapping[str, Any]], *, name: str, stamp: dt.datetime) -> bytes:
    """Every event once, with the VTIMEZONE and UIDs of the emails' « Ajouter à mon agenda »."""
    return calendar(events, stamp=stamp, name=name)
