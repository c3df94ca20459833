"""Mainland China's official working-day calendar (SPEC 4).

Source order for a date: the chinese-calendar package (State Council holiday notices, with
adjusted working weekends); then the config's `calendar.years` for a year the package does
not cover yet; otherwise weekends only, and the result is marked provisional.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING

import chinese_calendar

if TYPE_CHECKING:
    from pipeline.settings import CalendarYear


class WorkCalendar:
    def __init__(self, years: Mapping[int, CalendarYear] | None = None):
        """`years`: the config's `calendar.years` (checked when the config loaded: real days of their year)."""
        self.years = dict(years or {})
        self.uncovered: set[int] = set()
        self._extra = {y: (set(v.holidays), set(v.workdays)) for y, v in self.years.items()}

    @property
    def source(self) -> str:
        return f"chinese-calendar {getattr(chinese_calendar, '__version__', '')}".strip() + (
            f" + config years {sorted(self.years)}" if self.years else "")

    def is_workday(self, day: dt.date) -> tuple[bool, bool]:
        """(is a working day, the answer is authoritative)."""
        try:
            return chinese_calendar.is_workday(day), True
        except NotImplementedError:
            pass
        if day.year in self._extra:
            holidays, workdays = self._extra[day.year]
            if day in workdays:
                return True, True
            if day in holidays:
                return False, True
            return day.weekday() < 5, True
        self.uncovered.add(day.year)
        return day.weekday() < 5, False

    def add_workdays(self, start: dt.date, n: int) -> tuple[dt.date, bool]:
        """The n-th working day after `start`, and whether it is provisional."""
        day, provisional = start, False
        while n > 0:
            day += dt.timedelta(days=1)
            working, known = self.is_workday(day)
            provisional |= not known
            n -= working
        return day, provisional
