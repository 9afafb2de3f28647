"""The optional send window of a newsletter: office hours, weekdays, no public holidays.

Times are Europe/Paris wall-clock times (the agency's office hours), so the window
follows daylight saving. Public holidays are metropolitan France's (python-holidays).
A window whose end is not after its start is refused by the form; here it means
"no hour limit".
"""

import datetime as dt
from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

from holidays import HolidayBase
from holidays.countries.france import France

from service.newsletters.models import Newsletter

PARIS = ZoneInfo("Europe/Paris")


@dataclass(frozen=True)
class Window:
    start: dt.time | None = None
    end: dt.time | None = None
    weekdays_only: bool = False
    skip_holidays: bool = False

    @classmethod
    def of(cls, newsletter: Newsletter) -> "Window":
        return cls(
            newsletter.send_window_start,
            newsletter.send_window_end,
            newsletter.send_weekdays_only,
            newsletter.send_skip_holidays,
        )

    @property
    def hours(self) -> bool:
        return self.start is not None and self.end is not None and self.end > self.start

    @property
    def active(self) -> bool:
        return self.hours or self.weekdays_only or self.skip_holidays

    def day_open(self, day: dt.date) -> bool:
        if self.weekdays_only and day.weekday() >= 5:
            return False
        return not (self.skip_holidays and day in _french_holidays(day.year))

    def next_open(self, now: dt.datetime) -> dt.datetime | None:
        """None when sending may go on at ``now``; else when the window opens next (UTC)."""
        if not self.active:
            return None
        local = now.astimezone(PARIS)
        for offset in range(370):  # a year and a bit: some open day always exists
            day = local.date() + dt.timedelta(days=offset)
            if not self.day_open(day):
                continue
            opens = _at(day, self.start if self.hours else None)
            closes = _at(day + dt.timedelta(days=1), None)
            if self.hours:
                assert self.end is not None  # noqa: S101 - narrowed by self.hours
                closes = _at(day, self.end)
            if local < closes:
                return None if local >= opens else opens.astimezone(dt.UTC)
        return None  # unreachable with a sane window; never block sending forever

    def closes_at(self, now: dt.datetime) -> dt.datetime | None:
        """When the open slot containing ``now`` ends (UTC), None if unbounded."""
        if not self.active or self.next_open(now) is not None:
            return None
        local = now.astimezone(PARIS)
        if self.hours:
            assert self.end is not None  # noqa: S101 - narrowed by self.hours
            return _at(local.date(), self.end).astimezone(dt.UTC)
        return _at(local.date() + dt.timedelta(days=1), None).astimezone(dt.UTC)


def _at(day: dt.date, time: dt.time | None) -> dt.datetime:
    return dt.datetime.combine(day, time or dt.time(0, 0), PARIS)


@cache
def _french_holidays(year: int) -> HolidayBase:
    return France(years=year, language="fr")  # type: ignore[no-untyped-call]
