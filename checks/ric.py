"""Resident Identity Card number (居民身份证号码), GB 11643-1999.

Eighteen characters: a six-digit address code (GB/T 2260), the birth date YYYYMMDD, a
three-digit sequence whose last digit is odd for men and even for women, and an ISO 7064
MOD 11-2 check character (0-9 or X). First-generation cards carried fifteen digits: the same
without the century and without the check character. The same structure serves the residence
permits of Hong Kong, Macao and Taiwan residents (address codes 810000, 820000, 830000), and
the 2023 foreign permanent resident ID card (first digit 9; no address code).

>>> validate('11010519491231002x')
'11010519491231002X'
>>> get_birth_date('110105194912310021'), get_sex('110105194912310021')
(datetime.date(1949, 12, 31), 'F')
>>> upgrade('110105491231002')
'11010519491231002X'
"""

from __future__ import annotations

import datetime as dt
import re

from checks.exceptions import Corrupted, InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength, ValidationError
from checks.regions import known_codes

# ISO 7064 MOD 11-2: weight of position i (1-based from the left) is 2**(18-i) mod 11.
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# check character for (sum of weighted digits) mod 11 = 0, 1, 2, ..., 10
CHECK_CHARACTERS = "10X98765432"
_SCIENTIFIC = re.compile(r"^\d(?:\.\d+)?E[+]?\d+$", re.ASCII)
_SHAPE = re.compile(r"^(?:[0-9]{15}|[0-9]{17}[0-9X])$")
_TRAILING_ZERO_DECIMAL = re.compile(r"^\d+\.0+$", re.ASCII)
_FULLWIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}


def compact(number: str) -> str:
    """Remove spaces, full-width forms and lower case."""
    return re.sub(r"\s+", "", str(number).translate(_FULLWIDTH)).upper()


def calc_check_character(body: str) -> str:
    """The check character of the first 17 digits."""
    return CHECK_CHARACTERS[sum(int(c) * w for c, w in zip(body[:17], WEIGHTS)) % 11]


def is_corrupted(number: str) -> bool:
    """Spreadsheet damage: scientific notation, a trailing '.0', or the last three digits zeroed
    by Excel's 15 significant digits (with a wrong check character as a result).

    >>> is_corrupted('4.40106E+17'), is_corrupted('440106198001010011.0'), is_corrupted('110105194912310000')
    (True, True, True)
    >>> is_corrupted('440106198001010000')  # ends in 000, but 0 is its right check character
    False
    """
    number = compact(number)
    if _SCIENTIFIC.match(number) or _TRAILING_ZERO_DECIMAL.match(number):
        return True
    return len(number) == 18 and number.isascii() and number.isdigit() and number.endswith("000") and calc_check_character(number) != "0"


def _birth(number: str) -> dt.date:
    digits = number[6:14] if len(number) == 18 else "19" + number[6:12]
    try:
        return dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise InvalidComponent("the embedded birth date is not a real date") from None


def _shaped(number: str) -> str:
    """The compact number if it has the shape of one (ASCII digits only: `str.isdigit` would
    let '١' or '²' through), else a ValidationError."""
    number = compact(number)
    if is_corrupted(number):
        raise Corrupted()
    if len(number) not in (15, 18):
        raise InvalidLength()
    if not _SHAPE.match(number):
        raise InvalidFormat()
    return number


def validate(number: str, today: dt.date | None = None) -> str:
    """Return the compact number, or raise a ValidationError naming what is wrong.

    >>> validate('١١٠١٠٥١٩٤٩١٢٣١٠٠٢X')  # digits of another script are not digits here
    Traceback (most recent call last):
    checks.exceptions.InvalidFormat: the number has an invalid format
    """
    number = _shaped(number)
    if len(number) == 18 and calc_check_character(number) != number[17]:
        raise InvalidChecksum()
    birth = _birth(number)
    if birth.year < 1900 or birth > (today or dt.date.today()):
        raise InvalidComponent("the embedded birth date is before 1900 or in the future")
    if number[0] != "9" and number[:6] not in known_codes():
        raise InvalidComponent("the address code was never a GB/T 2260 code")
    return number


def is_valid(number: str) -> bool:
    try:
        return bool(validate(number))
    except ValidationError:
        return False


def get_birth_date(number: str) -> dt.date:
    return _birth(_shaped(number))


def get_sex(number: str) -> str:
    """'M' when the sequence digit is odd, else 'F'."""
    number = _shaped(number)
    return "M" if int(number[16 if len(number) == 18 else 14]) % 2 else "F"


def get_address_code(number: str) -> str:
    return _shaped(number)[:6]


def upgrade(number: str) -> str:
    """The 18-character form of a 15-digit number (century 19, new check character)."""
    number = _shaped(number)
    if len(number) != 15:
        return number
    body = number[:6] + "19" + number[6:]
    return body + calc_check_character(body)
