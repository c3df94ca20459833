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

import functools
import re
import unicodedata

import pandas as pd
from stdnum import luhn

from checks import ric


def mask_raw(values: pd.Series) -> pd.Series:
    """A value as read, for evidence (FIELD_INVALID's 原值): its first character, every further
    letter or digit as `*` (punctuation and spaces kept, so its shape shows), its last character
    when it has 6 or more, and its length: useful to see what went wrong (a date written another
    way, a phone in a date column), never the value itself.

    >>> mask_raw(pd.Series(["1991/13/45", "13812345678", "3", "张三丰", "", None], dtype="str")).tolist()
    ['1***/**/*5（10 个字符）', '1*********8（11 个字符）', '3', '张**（3 个字符）', '', nan]
    """
    s = values.astype("str").str.replace(_format(), "", regex=True)
    n = s.str.len()
    middle = s.str[1:].str.replace(r"[^\W_]", "*", regex=True)
    shown = s.str[:1] + middle.where(n < 6, middle.str[:-1] + s.str[-1:])
    return shown.where(n <= 1, shown + "（" + n.astype("Int64").astype("str") + " 个字符）").where(s.notna())


def _ranges(category: str) -> str:
    """A regex character class of every code point of a Unicode general category."""
    points = [c for c in range(0x110000) if unicodedata.category(chr(c)) == category]
    spans, first, last = [], points[0], points[0]
    for c in points[1:] + [-1]:
        if c == last + 1:
            last = c
            continue
        spans.append(re.escape(chr(first)) + ("-" + re.escape(chr(last)) if last > first else ""))
        first = last = c
    return "[" + "".join(spans) + "]"


@functools.cache
def invisible() -> re.Pattern:
    """Control, format and line/paragraph separator characters: what a terminal would act on or
    not show (printed escaped by the commands' tables)."""
    return re.compile("|".join(_ranges(c) for c in ("Cc", "Cf", "Zl", "Zp")))


@functools.cache
def _format() -> re.Pattern:
    """Format characters (zero-width space, soft hyphen, BOM, bidi controls ...): invisible, dropped."""
    return re.compile(_ranges("Cf"))


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


# ---- free text: notes, log lines, the access log, error messages ------------------------------

# Separators a person (or a shifted export) may put between the digit groups of one number: any
# character that is neither a letter nor a digit, judged after NFKC (full-width forms, NBSP and
# the ideographic space fold to ASCII) - commas of every kind, brackets, dashes, underscores,
# colons, spaces - and the letters typed as dashes (ー, 丨). Format characters (zero-width space,
# soft hyphen, BOM ...) are dropped first. Any number of spaces, tabs and line breaks and at most
# MAX_SEPARATORS other separators in a row still join two digit groups.
MAX_SEPARATORS = 4
MIN_RUN = 7  # digits: a shorter run is a count, an amount or a date part, never a whole identifier
# Chinese numerals, which people also type digits with (一三八…, 二〇二六): read as digits
_NUMERALS = {c: str(i) for i, c in enumerate("〇一二三四五六七八九")} | \
    {c: str(i) for i, c in enumerate("零壹贰叁肆伍陆柒捌玖")} | {"两": "2", "幺": "1"}
_DASH_LETTERS = frozenset("ーｰ丨")


def _digits_of(char: str) -> str | None:
    """The ASCII digits one character stands for (full-width ３, Arabic-Indic ٣, circled ⑩,
    superscript ¹ and Chinese numerals 一 〇 alike), or None when it is not a digit."""
    if char.isascii():
        return char if char.isdigit() else None
    if char in _NUMERALS:
        return _NUMERALS[char]
    folded = unicodedata.normalize("NFKC", char)
    if not folded or not all(c.isdecimal() or c.isdigit() for c in folded):
        return None
    try:
        return "".join(str(unicodedata.digit(c)) for c in folded)
    except ValueError:
        return None


def _is_x(char: str) -> bool:
    return unicodedata.normalize("NFKC", char) in ("x", "X")


@functools.lru_cache(maxsize=4096)
def _joins(char: str) -> bool:
    """May stand between two digit groups of one number: not a letter (but a dash-like one), not
    a digit."""
    if char.isascii():
        return not char.isalnum()
    if char in _DASH_LETTERS:
        return True
    folded = unicodedata.normalize("NFKC", char)
    return not folded or not any(c.isalnum() for c in folded)


def mask_number(digits: str) -> str:
    """One number, as ASCII digits (and a final X), in its JR/T 0171 display form: an identity
    number (15 digits, or 17 and a check character) its first and last character, a mainland
    mobile its first 3 and last 4 digits, a card-like account (16-19 digits) its first 6 and last
    4; any other run of 7 or more digits its first and last digit only.

    >>> [mask_number(d) for d in ("11010519491231002X", "13812345678", "6222021234567890123", "01012345678")]
    ['1****************X', '138****5678', '622202*********0123', '0*********8']
    """
    n = len(digits)
    if n in (15, 18) and digits[:-1].isdigit():
        return digits[0] + "*" * (n - 2) + digits[-1]
    if n == 11 and digits[0] == "1" and digits[1] in "3456789":
        return digits[:3] + "****" + digits[-4:]
    if 16 <= n <= 19 and digits.isdigit():
        return digits[:6] + "*" * (n - 10) + digits[-4:]
    return digits[0] + "*" * (n - 2) + digits[-1]


# a run that is exactly a calendar date, a time of day, or both, stays as typed
_WHEN = re.compile(r"(?:(?:19|20)\d\d([-/.])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01]))?[ T]?"
                   r"(?:(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?)?")


def _spans(chars: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, digits) of every number in `chars` (format characters already dropped):
    digit groups joined across at most MAX_SEPARATORS separators, with a final X when one
    follows the last digit."""
    spans, i, n = [], 0, len(chars)
    while i < n:
        first = _digits_of(chars[i])
        if first is None:
            i += 1
            continue
        start, digits, end, j = i, [first], i + 1, i + 1
        while j < n:
            k, others = j, 0
            while k < n and _digits_of(chars[k]) is None and _joins(chars[k]):
                others += not chars[k].isspace()
                if others > MAX_SEPARATORS:
                    break
                k += 1
            d = _digits_of(chars[k]) if k < n else None
            if d is None:
                break
            digits.append(d)
            end, j = k + 1, k + 1
        if end < n and _is_x(chars[end]):
            digits.append("X")
            end += 1
        spans.append((start, end, "".join(digits)))
        i = end
    return spans


MAX_GAP = 40  # characters of separators only between two digit groups that join when they form a personal number
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
_LANDLINE = re.compile(r"0[1-9][0-9]{8,10}")  # an area code (010, 0755, ...) and a 7- or 8-digit number


def _personal(digits: str, landline: bool = True) -> bool:
    """The digits of a mainland mobile or landline with its area code, a resident identity number
    (its check character, birth date and region right: checks.ric) or a card (16-19 digits, Luhn)."""
    n = len(digits)
    return bool((n == 11 and _MOBILE.fullmatch(digits)) or (landline and _LANDLINE.fullmatch(digits))
                or (n == 18 and ric.is_valid(digits))
                or (16 <= n <= 19 and digits.isdigit() and luhn.is_valid(digits)))


def _apart(chars: list[str], left: tuple[int, int, str], right: tuple[int, int, str]) -> bool:
    """Two digit groups with more than MAX_GAP characters, or a letter, between them."""
    return right[0] - left[1] > MAX_GAP or not all(_joins(c) for c in chars[left[1]:right[0]])


def _joined(chars: list[str], spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """`spans`, with the groups that stand apart by more than MAX_SEPARATORS separators (no letter
    between them: `138-----1234-----5678`) joined where together they form a personal number; the
    short groups right after such a join go with it (a join that took the front of another
    number must not leave that number's tail to be read)."""
    out, i = [], 0
    while i < len(spans):
        start, end, digits = spans[i]
        best, acc, j = None, digits, i + 1
        while j < len(spans) and len(acc) < 19 and not acc.endswith("X"):
            if _apart(chars, spans[j - 1], spans[j]):
                break
            acc += spans[j][2]
            if _personal(acc):
                best = (j, acc)
            j += 1
        if best is None:
            out.append(spans[i])
            i += 1
            continue
        last, acc = best
        while last + 1 < len(spans) and len(spans[last + 1][2]) < MIN_RUN and not _apart(chars, spans[last],
                                                                                         spans[last + 1]):
            last += 1
            acc += spans[last][2]
        out.append((start, spans[last][1], acc))
        i = last + 1
    return out


def numbers(text: str) -> list[str]:
    """The digits of every number in `text` as mask_text reads them (separators, full-width and
    Chinese numerals alike), each as ASCII digits.

    >>> numbers("王１３８ 1234-5678，工号 E2026001 号")
    ['13812345678', '2026001']
    """
    chars = list(_format().sub("", str(text)))
    return [digits for _, _, digits in _joined(chars, _spans(chars))]


def holds_personal_number(text: str) -> bool:
    """Whether `text` holds a mobile, an identity number or a card however it is written
    (separators, full-width digits, Chinese numerals): a code typed as a filter must not.

    >>> holds_personal_number("一三八 一二三四 五六七八"), holds_personal_number("A0001")
    (True, False)
    """
    # 一 is a digit and a dash between groups alike: each reading of up to 6 of them is tried
    text = str(text)
    ones = [i for i, c in enumerate(text) if c == "一"][:6]
    readings = [text, text.translate(_NUMERALS_AS_DASHES)]
    for mask in range(1, 2 ** len(ones)):
        chars = list(text)
        for bit, at in enumerate(ones):
            if mask >> bit & 1:
                chars[at] = "-"
        readings.append("".join(chars))
    return any(_personal(digits, landline=False) for reading in readings for digits in numbers(reading))


_NUMERALS_AS_DASHES = str.maketrans({c: "-" for c in "〇一二三四五六七八九零ー丨"})


def mask_text(text: str | None, keep: re.Pattern | None = None) -> str:
    """Free text with every number in it that could be an identity number, phone or account
    shown only in its masked form (mask_number), however its digits were typed or separated:
    the one function for notes (处理说明), log lines, the access log and error messages.

    Format characters are removed first; each other character is judged by its NFKC form, so
    full-width digits and dashes, commas of every kind, brackets, colons, underscores and
    non-breaking spaces between the groups of a number do not keep it whole. Runs of fewer than
    MIN_RUN digits stay as typed, and so does a run that is exactly a calendar date or a time,
    or one inside a match of `keep` (the caller's own identifiers, e.g. item ids).

    >>> mask_text("已联系客户，电话 138 1234 5678，身份证11010519491231002X")
    '已联系客户，电话 138****5678，身份证1****************X'
    >>> mask_text("电话１３８－１２３４－５６７８；卡号 6222/0212/3456/7890 1")
    '电话138****5678；卡号 622202*******8901'
    >>> mask_text("手机138\\u200b1234\\u00ad5678，座机(010)\\u00a01234_5678")
    '手机138****5678，座机(0*********8'
    >>> mask_text("账户 1000000000 ----- 1381234 ----- 5678")  # a join never leaves a tail to read
    '账户 1*******************8'
    >>> mask_text("手机 138-----1234-----5678，卡 6222 / / / / / 0212 3456 7890 128")
    '手机 138****5678，卡 622202*********0128'
    >>> mask_text("2026年11月回访3次，2026-11-20 14:30 再访，金额 12,000 元")
    '2026年11月回访3次，2026-11-20 14:30 再访，金额 12,000 元'
    """
    if not text:
        return ""
    chars = list(_format().sub("", str(text)))
    kept = [m.span() for m in keep.finditer("".join(chars))] if keep is not None else []
    out, last = [], 0
    for start, end, digits in _joined(chars, _spans(chars)):
        run = "".join(chars[start:end])
        if len(digits.rstrip("X")) < MIN_RUN or _WHEN.fullmatch(unicodedata.normalize("NFKC", run)) or \
                any(a <= start and end <= b for a, b in kept):
            continue
        out.append("".join(chars[last:start]))
        out.append(mask_number(digits))
        last = end
    out.append("".join(chars[last:]))
    return "".join(out)
