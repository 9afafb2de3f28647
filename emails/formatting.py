"""French formats for dates, times and sizes, done once at compile time."""

import datetime as dt
from zoneinfo import ZoneInfo

from babel.dates import format_date

PARIS = ZoneInfo("Europe/Paris")


def parse_local(value: str) -> dt.datetime:
    """A wall-clock time in Paris ("2027-01-16T09:30") as an aware datetime."""
    return dt.datetime.fromisoformat(value).replace(tzinfo=PARIS)


def french_time(moment: dt.datetime) -> str:
    """9 h 30, 14 h (the French typographic convention)."""
    return f"{moment.hour} h {moment.minute:02d}" if moment.minute else f"{moment.hour} h"


def french_date(moment: dt.date) -> str:
    """Samedi 16 janvier 2027."""
    text = format_date(moment, format="EEEE d MMMM y", locale="fr_FR")
    return text[:1].upper() + text[1:]


def event_when(start: dt.datetime, end: dt.datetime | None) -> str:
    """One line for an event: « Samedi 16 janvier 2027, 9 h 30 – 12 h 30 »."""
    day = french_date(start.date())
    if end is None:
        return f"{day}, {french_time(start)}"
    if end.date() == start.date():
        return f"{day}, {french_time(start)} – {french_time(end)}"
    first, last = french_date(start.date()).lower(), french_date(end.date()).lower()
    return f"Du {first}, {french_time(start)}, au {last}, {french_time(end)}"


def french_size(size: int | None) -> str | None:
    """2 400 000 → « 2,4 Mo » (decimal units, one decimal below 10)."""
    if size is None or size < 0:
        return None
    for unit, factor in (("Go", 10**9), ("Mo", 10**6), ("ko", 10**3)):
        if size >= factor:
            value = size / factor
            text = f"{value:.1f}" if value < 10 else f"{value:.0f}"
            return f"{text.replace('.', ',')} {unit}"
    return f"{size} octets"


def format_label(fmt: str | None, size: int | None) -> str | None:
    """« PDF, 2,4 Mo », or whichever half is known."""
    parts = [p for p in ((fmt or "").upper() or None, french_size(size)) if p]
    return ", ".join(parts) or None
