"""China time, the clock of every date and timestamp custdq writes (business dates, deadlines,
events, the access log)."""

from __future__ import annotations

import datetime as dt

CHINA = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991


def now() -> dt.datetime:
    return dt.datetime.now(CHINA)


def stamp() -> str:
    """Now as an ISO timestamp with its offset, to the second."""
    return now().isoformat(timespec="seconds")
