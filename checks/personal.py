"""What has the form of a personal number, over a column: a resident identity number, a
mainland mobile number or a bank card.

The identifying columns of an extract (policy number, branch, channel, agent code) are stored
in the case store and shown to people as they are. When a core system's export shifts its
columns, a customer's identity number, mobile or card lands there; `form_of` tells such values
apart from codes, so the row can be quarantined instead of published (rows.scope).

The forms are strict, so that codes are not taken for personal numbers: separators (spaces,
dashes, dots ...) are ignored and Chinese numerals read as digits, then
- 身份证号: 17 digits and a check character that is right (GB 11643-1999), a real birth date and
  an address code that exists or existed (the checks of checks.ric_vector);
- 手机号: 11 digits starting 13-19, with or without the country code 86;
- 银行卡号: 16 to 19 digits that pass the Luhn check.
What they cannot tell apart from a code, they leave alone: a landline, an account that is not a
card, a 15-digit first-generation identity number (a branch code and a date make the same shape).

A column of all-digit codes has some values with these forms by chance: one 16-digit number in
ten passes the Luhn check, one 18-digit number in eleven has a right check character.
`shifted` tells chance from a shift: among the column's numbers of a value's length, codes pass
a form's check about as often as chance does, personal numbers nearly always. Only where most
of them pass is a value taken for a personal number.

>>> form_of(pd.Series(["11010519491231002X", "138-1234-5678", "6222021234567890128", "P2026000001255",
...                    "广东分公司", "A0400001", None], dtype="str"), dt.date(2026, 11, 20)).tolist()
['身份证号', '手机号', '银行卡号', nan, nan, nan, nan]
"""

from __future__ import annotations

import datetime as dt
import unicodedata

import pandas as pd

from checks.contacts import luhn_ok
from checks.ric_vector import OK, analyse

ID, MOBILE, CARD = "身份证号", "手机号", "银行卡号"
_NUMERALS = str.maketrans("〇一二三四五六七八九零", "01234567890")  # 一三八… is a phone too


def form_of(values: pd.Series, today: dt.date) -> pd.Series:
    """Per value: ID, MOBILE, CARD, or missing when it has none of these forms."""
    out = pd.Series(pd.NA, index=values.index, dtype="str")
    text = values.astype("str")
    text = text[text.str.len() >= 11]  # every form has 11 digits or more: branch names and codes go at once
    compact = text.str.translate(_NUMERALS).str.replace(r"[^0-9A-Za-z]", "", regex=True).str.upper()
    candidate = compact.str.fullmatch(r"[0-9]{11,19}X?", na=False)
    if not candidate.any():
        return out
    compact = compact[candidate]
    id18 = compact.str.len() == 18
    if id18.any():
        ids = analyse(compact[id18], today)
        real = (ids["status"] == OK) & ~ids["birth_invalid"] & ~ids["region_unknown"]
        out[real[real].index] = ID
    mobile = compact.str.fullmatch(r"(?:0{0,2}86)?1[3-9][0-9]{9}", na=False)
    out[mobile[mobile].index] = MOBILE
    cards = compact.str.fullmatch(r"[0-9]{16,19}", na=False) & out[compact.index].isna()
    if cards.any():
        ok = luhn_ok(compact[cards])
        out[ok[ok].index] = CARD
    return out


def form_of_text(text: str, today: dt.date) -> str | None:
    """`form_of` for one text a person typed (a user name, a branch, a filter): its form, or None.
    Judged after NFKC (full-width digits) with format characters (zero-width space ...) dropped.

    >>> form_of_text("１３８\u200b1234 5678", dt.date(2026, 11, 20)), form_of_text("张三", dt.date(2026, 11, 20))
    ('手机号', None)
    """
    folded = "".join(c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c) != "Cf")
    found = form_of(pd.Series([folded], dtype="str"), today).iloc[0]
    return None if pd.isna(found) else str(found)


CHANCE = 0.5  # share of a length's numbers with a form from which on they are no codes (chance: ~0.1)


def shifted(values: pd.Series, today: dt.date) -> pd.Series:
    """`form_of`, kept only where most of the column's numbers of the value's length have a form
    too: a shifted export (its identity numbers, mobiles or cards), not a column of codes among
    which some pass a check by chance.

    16-digit policy numbers, some Luhn-valid by chance, and one 19-digit card among them:
    >>> codes = pd.Series([f"8866{n * 7919 + 12345:012d}" for n in range(200)] + ["6222021234567890128"], dtype="str")
    >>> int(form_of(codes, dt.date(2026, 11, 20)).notna().sum()), shifted(codes, dt.date(2026, 11, 20)).dropna().tolist()
    (19, ['银行卡号'])
    >>> shifted(pd.Series(["P0001", "P0002", "6222021234567890128"], dtype="str"), dt.date(2026, 11, 20)).tolist()
    [nan, nan, '银行卡号']
    """
    form = form_of(values, today)
    if not form.notna().any():
        return form
    text = values[values.notna()].astype("str")
    compact = text.str.replace(r"[^0-9A-Za-z]", "", regex=True).str.upper()
    length = compact.str.len().where(compact.str.fullmatch(r"[0-9]+X?", na=False))
    share = form[compact.index].notna().groupby(length).mean()
    most = length.map(share).fillna(0.0) >= CHANCE
    return form.where(most.reindex(form.index, fill_value=False))
