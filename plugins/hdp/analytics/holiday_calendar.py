"""The holiday calendar the demand forecast reads: off days, Spring Festival days, per month.

Chinese hospital volumes drop sharply around the Spring Festival (春节), whose dates follow the
lunar calendar and move between late January and mid February; the other statutory holidays
(Qingming, Labour Day, Dragon Boat, Mid-Autumn, National Day) close outpatient clinics too.
The dates come from the `holidays` package (`holidays.China`, computed for any year, past and
future, with the substituted days off); weekends are off days as well. Working weekends that
make up for a long holiday (调休) are not modelled: `holidays` lists the day off they buy, not
the Saturday worked, and the effect on a month's total is one day in thirty.

`month_calendar(months, country)` gives per month: days, off days (weekend or holiday), and
Spring Festival days. `country=None` is a calendar without holidays (weekends only), for series
of other countries such as the forecast bench's Australian ones.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

SPRING_FESTIVAL_NAMES = ("Chinese New Year", "Spring Festival")


@dataclass(frozen=True)
class MonthCalendar:
    """Calendar counts of one month (or of the part of it between two days)."""

    month: date  # first day of the month
    days: int
    off_days: int  # weekend days and holidays
    spring_festival_days: int  # days named after the Spring Festival (eve, observed, extended)

    @property
    def workdays(self) -> int:
        return self.days - self.off_days


@lru_cache(maxsize=64)
def _holidays(country: str, year: int) -> dict[date, str]:
    import holidays

    return dict(holidays.country_holidays(country, years=year).items())


def day_kind(day: date, country: str | None) -> tuple[bool, bool]:
    """(is an off day, is a Spring Festival day) of one calendar day."""
    name = _holidays(country, day.year).get(day) if country else None
    off = day.weekday() >= 5 or name is not None
    festive = bool(name) and any(n in name for n in SPRING_FESTIVAL_NAMES)
    return off, festive


def span_calendar(first: date, last: date, country: str | None) -> MonthCalendar:
    """Counts of the days first..last (inclusive), labelled with first's month."""
    days = off = festive = 0
    day = first
    while day <= last:
        is_off, is_festive = day_kind(day, country)
        days += 1
        off += is_off
        festive += is_festive
        day += timedelta(days=1)
    return MonthCalendar(first.replace(day=1), days, off, festive)


def month_calendar(months: Sequence[date], country: str | None) -> list[MonthCalendar]:
    """Counts of each whole month (first day of each month given)."""
    out = []
    for m in months:
        last = m.replace(day=calendar.monthrange(m.year, m.month)[1])
        out.append(span_calendar(m.replace(day=1), last, country))
    return out
