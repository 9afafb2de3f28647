"""Agenda events as iCalendar (RFC 5545), with a VTIMEZONE for Europe/Paris."""

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import icalendar

from emails.formatting import parse_local

PRODID = "-//Lettrine//Lettre d'information//FR"


def _event(event: Mapping[str, Any], *, url: str | None, stamp: dt.datetime) -> icalendar.Event:
    item = icalendar.Event()
    item.add("uid", event["uid"])
    item.add("sequence", int(event.get("sequence") or 0))
    item.add("dtstamp", stamp.astimezone(dt.UTC))
    item.add("summary", event["title"])
    start = parse_local(event["start"])
    item.add("dtstart", start)
    if event.get("end"):
        item.add("dtend", parse_local(event["end"]))
    location = ", ".join(p for p in (event.get("place"), event.get("address")) if p)
    if location:
        item.add("location", location)
    description = event.get("description") or ""
    if event.get("registration_url"):
        description = f"{description}\n\nInscription : {event['registration_url']}".strip()
        item.add("url", event["registration_url"])
    elif url:
        item.add("url", url)
    if description:
        item.add("description", description)
    return item


def calendar(
    events: Iterable[Mapping[str, Any]], *, stamp: dt.datetime, name: str | None = None
) -> bytes:
    """A VCALENDAR of ``events``: one for « Ajouter à mon agenda », many for a feed."""
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    if name:
        cal.add("x-wr-calname", name)
    for event in events:
        cal.add_component(_event(event, url=None, stamp=stamp))
    cal.add_missing_timezones()
    return bytes(cal.to_ical())
