"""GB 11643 checks over whole columns: one analysis per column, numpy over a digit matrix.

The 18-character numbers are cut straight out of the Arrow string buffer into an (n, 18)
uint8 matrix, so checksum, birth date, sex and address code cost a few numpy passes and no
per-row Python. The scalar reference is `checks.ric`; tests hold the two equal.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from checks.arrays import arrow_strings, char_matrix
from checks.regions import known_codes
from checks.ric import CHECK_CHARACTERS, WEIGHTS

_CHECK = np.frombuffer(CHECK_CHARACTERS.encode("ascii"), dtype=np.uint8)
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
SCIENTIFIC = r"^[0-9](?:\.[0-9]+)?E\+?[0-9]+$"
DECIMAL_ZERO = r"^[0-9]+\.0+$"

# status of a number, most severe first; a number has exactly one
OK, CORRUPTED, FORMAT, CHECKSUM = "ok", "corrupted", "format", "checksum"


@lru_cache(maxsize=1)
def _known_table() -> np.ndarray:
    """known[code] is True for every address code an identity number may carry (direct lookup)."""
    table = np.zeros(1_000_000, dtype=bool)
    table[np.array([int(c) for c in known_codes()], dtype=np.int64)] = True
    return table


def _to_int(chars: np.ndarray) -> np.ndarray:
    """ASCII digit columns -> integers, column by column (no wide copy of the matrix)."""
    out = np.zeros(len(chars), dtype=np.int64 if chars.shape[1] > 9 else np.int32)
    for k in range(chars.shape[1]):
        out = out * 10 + (chars[:, k].astype(out.dtype) - 48)
    return out


def _weighted_sum(chars: np.ndarray) -> np.ndarray:
    """sum(weight_i * digit_i) over the first 17 ASCII digits, column by column."""
    total = np.zeros(len(chars), dtype=np.int32)
    for k, w in enumerate(WEIGHTS):
        total += chars[:, k].astype(np.int32) * w
    return total - 48 * sum(WEIGHTS)


def _all_digits(chars: np.ndarray) -> np.ndarray:
    """Every byte is an ASCII digit: bytes below '0' wrap around above 9 in uint8."""
    return (chars - np.uint8(48)).max(axis=1) <= 9


def _dates(y: np.ndarray, m: np.ndarray, d: np.ndarray, today: dt.date) -> tuple[np.ndarray, np.ndarray]:
    """(datetime64[D] or NaT, is a real date between 1900-01-01 and today)."""
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    month_ok = (m >= 1) & (m <= 12)
    dim = _DAYS[np.where(month_ok, m, 1)] + ((m == 2) & leap)
    real = month_ok & (d >= 1) & (d <= dim) & (y >= 1)
    # days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil)
    yy = (y - (m <= 2)).astype(np.int64)
    era = yy // 400
    yoe = yy - era * 400
    doy = (153 * np.where(m > 2, m - 3, m + 9) + 2) // 5 + d - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    date = np.where(real, days, np.iinfo(np.int64).min).astype("datetime64[D]")  # int64 min is NaT
    valid = real & (y >= 1900) & (date <= np.datetime64(today))
    return date, valid


def check18(m: np.ndarray, today: dt.date):
    """Checksum, birth date and sex of an (n, 18) matrix of well-shaped numbers.

    Returns (check character right, last three digits zeroed by Excel, birth date, birth date
    valid, male).
    """
    good = _CHECK[_weighted_sum(m) % 11] == m[:, 17]
    truncated = ~good & (m[:, 15] == 48) & (m[:, 16] == 48) & (m[:, 17] == 48)  # Excel's 15 digits
    birth, birth_ok = _dates(_to_int(m[:, 6:10]), _to_int(m[:, 10:12]), _to_int(m[:, 12:14]), today)
    male = m[:, 16] % 2 == 1  # ASCII '1' is 49: the parity of the byte is the digit's
    return good, truncated, birth, birth_ok, male


STATUSES = [OK, CORRUPTED, FORMAT, CHECKSUM]  # category codes 0..3; -1 is missing


def _is_digit(m: np.ndarray) -> np.ndarray:
    return (m >= 48) & (m <= 57)


def analyse(ids: pd.Series, today: dt.date, region_check: pd.Series | None = None) -> pd.DataFrame:
    """Per number: status, legacy15, embedded birth date, birth_invalid, sex, region_unknown, id18.

    `region_check` (bool, same index) switches the address-code check off where it does not
    apply (the foreign permanent resident card). Missing numbers come back with status NaN.
    """
    s = ids.astype("str")
    n = len(s)
    arr = arrow_strings(s)
    present = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    nbytes = np.asarray(pc.binary_length(arr).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    status = np.where(present, 2, -1).astype(np.int8)  # FORMAT until shown otherwise
    birth = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    birth_ok = np.zeros(n, dtype=bool)
    male = np.zeros(n, dtype=bool)
    region = np.zeros(n, dtype=np.int64)
    is15 = np.zeros(n, dtype=bool)

    idx = np.flatnonzero(nbytes == 18)
    if len(idx):
        m = char_matrix(s if len(idx) == n else s.iloc[idx], 18)
        shaped = _all_digits(m[:, :17]) & (_is_digit(m[:, 17]) | (m[:, 17] == 88))
        if not shaped.all():
            idx, m = idx[shaped], m[shaped]
        good, truncated, birth[idx], birth_ok[idx], male[idx] = check18(m, today)
        status[idx] = np.where(good, 0, np.where(truncated, 1, 3))
        region[idx] = _to_int(m[:, :6])
    idx15 = np.flatnonzero(nbytes == 15)
    if len(idx15):
        m = char_matrix(s.iloc[idx15], 15)
        digit_only = _all_digits(m)
        idx15, m = idx15[digit_only], m[digit_only]
        status[idx15] = 0
        is15[idx15] = True
        birth[idx15], birth_ok[idx15] = _dates(1900 + _to_int(m[:, 6:8]), _to_int(m[:, 8:10]),
                                               _to_int(m[:, 10:12]), today)
        male[idx15] = m[:, 14] % 2 == 1
        region[idx15] = _to_int(m[:, :6])
    rest = np.flatnonzero(status == 2)  # the few left over: is it spreadsheet damage?
    if len(rest):
        odd = s.iloc[rest]
        damaged = (odd.str.match(SCIENTIFIC, na=False) | odd.str.match(DECIMAL_ZERO, na=False)).to_numpy()
        status[rest[damaged]] = 1

    checked = status == 0
    region_known = _known_table()[np.clip(region, 0, 999_999)]
    applies = checked if region_check is None else checked & region_check.to_numpy(dtype=bool)
    out = pd.DataFrame(index=s.index)
    out["status"] = pd.Categorical.from_codes(status, STATUSES)
    out["legacy15"] = is15
    out["birth"] = np.where(checked, birth, np.datetime64("NaT")).astype("datetime64[us]")
    out["birth_invalid"] = checked & ~birth_ok
    out["sex"] = pd.Categorical.from_codes(np.where(checked, male.astype(np.int8), -1), ["F", "M"])
    out["region_unknown"] = applies & ~region_known
    id18 = s.where(pd.Series((status == 0) | (status == 3), index=s.index))
    if len(idx15):
        body = s.iloc[idx15].str[:6] + "19" + s.iloc[idx15].str[6:]
        check = pd.Series(_CHECK[_weighted_sum(char_matrix(body, 17)) % 11].view("S1").astype(str), index=body.index)
        id18.iloc[idx15] = (body + check).to_numpy()
    out["id18"] = id18  # the 18-character form, for customer identity (a 15-digit number upgraded)
    return out
