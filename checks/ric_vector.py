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
import pyarrow as pa

from checks.regions import known_codes
from checks.ric import CHECK_CHARACTERS, WEIGHTS

_W = np.array(WEIGHTS, dtype=np.int64)
_CHECK = np.frombuffer(CHECK_CHARACTERS.encode("ascii"), dtype=np.uint8)
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
SCIENTIFIC = r"^\d(?:\.\d+)?E\+?\d+$"
DECIMAL_ZERO = r"^\d+\.0+$"

# status of a number, most severe first; a number has exactly one
OK, CORRUPTED, FORMAT, CHECKSUM = "ok", "corrupted", "format", "checksum"


@lru_cache(maxsize=1)
def _known_sorted() -> np.ndarray:
    return np.array(sorted(int(c) for c in known_codes()), dtype=np.int64)


def char_matrix(values: pd.Series, width: int) -> np.ndarray:
    """(n, width) uint8 bytes of ASCII strings that are all `width` long (no copy per row)."""
    if not len(values):
        return np.zeros((0, width), dtype=np.uint8)
    arr = pa.array(values.array) if not isinstance(values.array, np.ndarray) else pa.array(values.to_numpy())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = arr.cast(pa.string())
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    return data[offsets[0]: offsets[-1]].reshape(len(arr), width)


def _to_int(digits: np.ndarray) -> np.ndarray:
    out = np.zeros(len(digits), dtype=np.int64)
    for k in range(digits.shape[1]):
        out = out * 10 + digits[:, k]
    return out


def _dates(y: np.ndarray, m: np.ndarray, d: np.ndarray, today: dt.date) -> tuple[np.ndarray, np.ndarray]:
    """(datetime64[D] or NaT, is a real date between 1900-01-01 and today)."""
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    month_ok = (m >= 1) & (m <= 12)
    dim = _DAYS[np.where(month_ok, m, 1)] + ((m == 2) & leap)
    real = month_ok & (d >= 1) & (d <= dim) & (y >= 1)
    safe_y, safe_m, safe_d = np.where(real, y, 1970), np.where(real, m, 1), np.where(real, d, 1)
    date = ((safe_y - 1970).astype("datetime64[Y]").astype("datetime64[M]") + (safe_m - 1).astype("timedelta64[M]")
            ).astype("datetime64[D]") + (safe_d - 1).astype("timedelta64[D]")
    valid = real & (y >= 1900) & (date <= np.datetime64(today))
    return np.where(real, date, np.datetime64("NaT")), valid


def analyse(ids: pd.Series, today: dt.date, region_check: pd.Series | None = None) -> pd.DataFrame:
    """Per number: status, legacy15, embedded birth date, birth_invalid, sex, region_unknown, id18.

    `region_check` (bool, same index) switches the address-code check off where it does not
    apply (the foreign permanent resident card). Missing numbers come back with status NaN.
    """
    s = ids.astype("str")
    n = len(s)
    out = pd.DataFrame(index=s.index)
    present = s.notna().to_numpy()
    corrupted = (s.str.match(SCIENTIFIC, na=False) | s.str.match(DECIMAL_ZERO, na=False)).to_numpy()
    is18 = s.str.fullmatch(r"\d{17}[\dX]", na=False).to_numpy()
    is15 = s.str.fullmatch(r"\d{15}", na=False).to_numpy()
    status = np.full(n, None, dtype=object)
    status[present] = FORMAT
    status[corrupted] = CORRUPTED
    birth = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    birth_ok = np.zeros(n, dtype=bool)
    male = np.zeros(n, dtype=bool)
    region = np.zeros(n, dtype=np.int64)
    id18 = s.where(is18).to_numpy(dtype=object)

    if is18.any():
        m = char_matrix(s[is18], 18)
        digits = (m[:, :17] - 48).astype(np.int64)
        expected = _CHECK[(digits * _W).sum(axis=1) % 11]
        good = expected == m[:, 17]
        truncated = ~good & (m[:, 15] == 48) & (m[:, 16] == 48) & (m[:, 17] == 48)  # Excel's 15 digits
        idx = np.flatnonzero(is18)
        status[idx] = np.where(good, OK, np.where(truncated, CORRUPTED, CHECKSUM))
        birth[idx], birth_ok[idx] = _dates(_to_int(digits[:, 6:10]), _to_int(digits[:, 10:12]),
                                           _to_int(digits[:, 12:14]), today)
        male[idx] = digits[:, 16] % 2 == 1
        region[idx] = _to_int(digits[:, :6])
    if is15.any():
        m = char_matrix(s[is15], 15)
        digits = (m - 48).astype(np.int64)
        idx = np.flatnonzero(is15)
        status[idx] = OK
        birth[idx], birth_ok[idx] = _dates(1900 + _to_int(digits[:, 6:8]), _to_int(digits[:, 8:10]),
                                           _to_int(digits[:, 10:12]), today)
        male[idx] = digits[:, 14] % 2 == 1
        region[idx] = _to_int(digits[:, :6])
        body = s[is15].str[:6] + "19" + s[is15].str[6:]
        bm = (char_matrix(body, 17) - 48).astype(np.int64)
        id18[idx] = (body + pd.Series(_CHECK[(bm * _W).sum(axis=1) % 11].view("S1").astype(str), index=body.index)
                     ).to_numpy(dtype=object)

    checked = status == OK
    known = _known_sorted()
    pos = np.clip(np.searchsorted(known, region), 0, len(known) - 1)
    region_known = known[pos] == region
    applies = checked if region_check is None else checked & region_check.to_numpy(dtype=bool)
    out["status"] = pd.array(status, dtype="str")
    out["legacy15"] = is15
    out["birth"] = pd.to_datetime(np.where(checked, birth, np.datetime64("NaT"))).astype("datetime64[us]")
    out["birth_invalid"] = checked & ~birth_ok
    out["sex"] = pd.array(np.where(checked, np.where(male, "M", "F"), None), dtype="str")
    out["region_unknown"] = applies & ~region_known
    out["id18"] = pd.array(np.where(checked | (status == CHECKSUM), id18, None), dtype="str")
    return out
