"""Logging on stderr (`custdq -v` / `-vv`), with personal numbers masked on the way out.

custdq's own messages carry stage names, counts, timings and rule codes, never a value from the
data. The formatter is the safety net for everything else that reaches a log line - a library's
debug message, an exception text with a value in it, a traceback: every line passes
checks.masking.mask_text, the one function that masks identity numbers, phones and accounts
however their digits are grouped. Two forms only custdq's own lines use stay readable: counts
with thousands separators below a billion (`count`) and IPv4 addresses with their port.

>>> mask_line("phone 138-1234-5678, id 11010519491231002X, on 2026-11-20 at 02:45:21, 1,000,000 rows")
'phone 138****5678, id 1****************X, on 2026-11-20 at 02:45:21, 1,000,000 rows'
>>> mask_line("listening on 127.0.0.1:8080; 1,381,234,5678 is no count, nor 1,381,234 5678")
'listening on 127.0.0.1:8080; 138****5678 is no count, nor 138****5678'
>>> mask_line("business date 2026-11-20, 1 extract file(s); 11:02:03, 20 chunks; id 110105 1949-12-31 002X")
'business date 2026-11-20, 1 extract file(s); 11:02:03, 20 chunks; id 1****************X'
"""

from __future__ import annotations

import logging
import re
import sys

from checks.masking import mask_text

# a count as `count` writes it (4 to 9 digits in groups of three), an IPv4 address with its port,
# an ISO date or time: custdq's own forms, kept as they are (a stand-in letter holds their place
# while the line is masked, so a date and the count after it are not read as one number)
_OWN = re.compile(r"(?<![\d,.:-])(?:\d{1,3}(?:,\d{3}){1,2}|(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}"
                  r"(?:25[0-5]|2[0-4]\d|1?\d?\d)(?::\d{1,5})?|(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])|"
                  r"(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?)(?![\d]|[,.:-]\d)")
_STAND_IN = "\u16a0"  # a letter (RUNIC FENU), so the digits on either side of a kept form are not joined
LEVELS = {0: logging.WARNING, 1: logging.INFO}


def mask_line(text: str) -> str:
    text = text.replace(_STAND_IN, "")
    kept: list[str] = []
    ends: list[int] = []  # where the forms kept so far end

    def keep(match: re.Match) -> str:
        before = _JOINED_BEFORE.search(text, 0, match.start())
        if before is not None and not (ends and ends[-1] > before.start()):
            return match.group(0)  # digits just before: part of a longer number (110105 1949-12-31 002X)
        if _COUNT.fullmatch(match.group(0)) and _JOINED_AFTER.match(text, match.end()):
            return match.group(0)  # a count with digits just after: part of a longer number (1,381,234 5678)
        kept.append(match.group(0))
        ends.append(match.end())
        return _STAND_IN

    masked = mask_text(_OWN.sub(keep, text))
    parts = masked.split(_STAND_IN)
    if len(parts) != len(kept) + 1:  # never expected: then nothing is kept as it was
        return mask_text(text)
    return "".join(p + k for p, k in zip(parts, kept + [""]))


_JOINED_BEFORE = re.compile(r"\d[^\w]{0,4}\Z")
_JOINED_AFTER = re.compile(r"[^\w]{0,4}\d")
_COUNT = re.compile(r"\d{1,3}(?:,\d{3})+")  # (a date, a time or an address may have digits after it)


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
