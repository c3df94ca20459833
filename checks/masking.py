"""Display masking of personal data (SPEC 5, JR/T 0171-2020), vectorised.

>>> mask_id(pd.Series(["11010519491231002X", "4.40106E+17", None], dtype="str")).tolist()
['1****************X', '4*********7', nan]
>>> mask_phone(pd.Series(["13812345678", "1012345678", "95588"], dtype="str")).tolist()
['138****5678', '10******78', '9***8']
>>> mask_account(pd.Series(["6222021234567890123", "00000000000", "123456789"], dtype="str")).tolist()
['622202*********0123', '00*******00', '12*****89']

The SPEC's forms (first 3 + last 4 of a mobile, first 6 + last 4 of a card) are used where they
hide enough: at least 4 digits of a phone and 6 of an account. A shorter value would show nearly
all of itself that way (6 + 4 of an 11-digit account is 10 of its digits), so it keeps its first
2 and last 2 characters, or only its first and last below 8 characters.
>>> mask_name(pd.Series(["张三", "欧阳娜娜", None], dtype="str")).tolist()
['张*', '欧***', nan]
"""

from __future__ import annotations

import re

import pandas as pd


def _stars(lengths: pd.Series) -> pd.Series:
    table = {n: "*" * max(int(n), 0) for n in lengths.dropna().unique()}
    return lengths.map(table)


def mask_id(values: pd.Series) -> pd.Series:
    """Identity numbers: only the first and the last character."""
    s = values.astype("str")
    return (s.str[:1] + _stars(s.str.len() - 2).astype("str") + s.str[-1:]).where(s.notna())


def _keep(values: pd.Series, head: int, tail: int, min_hidden: int) -> pd.Series:
    s = values.astype("str")
    n = s.str.len()
    long = n - head - tail >= min_hidden
    middle = ~long & (n >= 8)
    h = s.str[:1].mask(long, s.str[:head]).mask(middle, s.str[:2])
    t = s.str[-1:].mask(long, s.str[-tail:]).mask(middle, s.str[-2:])
    stars = _stars((n - h.str.len() - t.str.len()).clip(lower=0)).astype("str")
    return (h + stars + t).where(s.notna())


def mask_phone(values: pd.Series) -> pd.Series:
    """Phones: the first 3 and last 4 digits (138****5678) when 4 or more stay hidden."""
    return _keep(values, 3, 4, 4)


def mask_account(values: pd.Series) -> pd.Series:
    """Bank accounts: the first 6 and last 4 digits when 6 or more stay hidden."""
    return _keep(values, 6, 4, 6)


def mask_name(values: pd.Series) -> pd.Series:
    """Names: the first character (the surname) only."""
    s = values.astype("str")
    return (s.str[:1] + _stars((s.str.len() - 1).clip(lower=0)).astype("str")).where(s.notna())


# a run of 6+ digits, possibly split by up to three spaces, dashes, dots or slashes at a time,
# with an optional check character X: any identity number, phone or account a person typed
# into free text (处理说明), however they grouped it (138 - 1234 - 5678, 6222/0212/3456/7890)
_DIGIT_RUN = re.compile(r"\d(?:[\s\-./]{0,3}\d){5,}[xX]?")


def mask_digits_in_text(text: str) -> str:
    """Free text with every long digit run reduced to its first and last character.

    >>> mask_digits_in_text("已联系客户，电话 138 1234 5678，身份证11010519491231002X")
    '已联系客户，电话 1***********8，身份证1****************X'
    >>> mask_digits_in_text("2026年11月回访3次")
    '2026年11月回访3次'
    >>> mask_digits_in_text("电话 138 - 1234 - 5678，卡号 6222/0212/3456/7890")
    '电话 1***************8，卡号 6*****************0'
    """
    def hide(match: re.Match) -> str:
        s = match.group(0)
        return s[0] + "*" * (len(s) - 2) + s[-1]

    return _DIGIT_RUN.sub(hide, text or "")
