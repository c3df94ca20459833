"""Logging on stderr (`custdq -v` / `-vv`), with personal numbers masked on the way out.

custdq's own messages carry stage names, counts, timings and rule codes, never a value from the
data. The formatter is the safety net for everything else that reaches a log line - a library's
debug message, an exception text with a value in it, a traceback: every run of seven or more
digits (spaces or hyphens between them allowed, a trailing X included) keeps only its first and
last character. ISO dates and times stay readable; counts are logged with thousands separators.

>>> mask_line("phone 138-1234-5678, id 11010519491231002X, on 2026-11-20 at 02:45:21, 1,000,000 rows")
'phone 1***********8, id 1****************X, on 2026-11-20 at 02:45:21, 1,000,000 rows'
"""

from __future__ import annotations

import logging
import re
import sys

_NUMBER = re.compile(r"(?<![0-9])[0-9](?:[ \-]?[0-9]){6,}(?![0-9])[xX]?", re.ASCII)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
LEVELS = {0: logging.WARNING, 1: logging.INFO}


def mask_line(text: str) -> str:
    def hide(match: re.Match) -> str:
        s = match.group(0)
        if _DATE.fullmatch(s):
            return s
        return s[0] + "*" * (len(s) - 2) + s[-1]

    return _NUMBER.sub(hide, text)


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_line(super().format(record))


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a test runner may swap it)."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


_handler: logging.Handler | None = None


def configure(verbosity: int) -> None:
    """0: warnings and errors; 1 (-v): custdq's stage details; 2 (-vv): custdq's debug lines and
    SQLAlchemy's statements. Idempotent: one handler on the root logger."""
    global _handler
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    _handler = _Stderr()
    _handler.setFormatter(MaskingFormatter("custdq: %(levelname)s: %(name)s: %(message)s"))
    root.addHandler(_handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("custdq").setLevel(logging.DEBUG if verbosity >= 2 else LEVELS.get(verbosity, logging.INFO))
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO if verbosity >= 2 else logging.WARNING)
    logging.captureWarnings(True)  # a library warning quoting a value goes through the mask too


def count(n: int) -> str:
    """A count as logged: thousands separators, so it is never read as a personal number.

    >>> count(1234567)
    '1,234,567'
    """
    return f"{int(n):,}"
