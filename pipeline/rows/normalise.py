"""Normalisation before any rule (SPEC 2.5), done once, early, column-wise.

Phones: E.164 for region CN (`<col>_e164`, `<col>_national`, `<col>_valid`, checks/phones.py).
Bank accounts: digits with spaces and hyphens removed (`bank_account_digits`).
Every text column: full-width characters to half-width, trimmed (full-width and no-break
spaces included), empty or placeholder values (config `placeholders`) to missing. Identity
numbers: upper-case, inner whitespace removed. Key dates are parsed to `<col>_dt` and sex
codes to `<col>_code` (`M`/`F`); a value present but unreadable sets `<col>_unreadable`.

Parsing runs once per distinct value (`map_distinct`): a night has millions of rows but only
tens of thousands of distinct birth dates, so the cost follows the distinct values.
The raw frame is kept untouched by the caller for display.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from checks import phones as phone_numbers
from pipeline.ingest.clean import clean_text
from pipeline.ingest.columns import CANONICAL, DATE_COLUMNS, SEX_COLUMNS
from pipeline.settings import Settings

ID_COLUMNS = ("applicant_id_no", "insured_id_no")
PHONE_COLUMNS = ("applicant_phone", "insured_phone")
# columns with few distinct values a night: cleaned once per distinct value
FEW_VALUES = {"issue_date", "receipt_date", "product_code", "coverage_years", "channel", "branch", "agent_code",
              "applicant_sex", "applicant_birth_date", "applicant_id_type", "insured_sex", "insured_birth_date",
              "insured_id_type", "relation"}

SEX_CODES = {
    "男": "M", "男性": "M", "M": "M", "MALE": "M", "1": "M",
    "女": "F", "女性": "F", "F": "F", "FEMALE": "F", "2": "F",
}
_DATE_SEPARATED = (
    r"^(?P<y>[0-9]{4})\s*[-/.年]\s*(?P<m>[0-9]{1,2})\s*[-/.月]\s*(?P<d>[0-9]{1,2})\s*日?"
    r"(?:[ T]+[0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?$"
)
_DATE_COMPACT = r"^(?P<y>[0-9]{4})(?P<m>[0-9]{2})(?P<d>[0-9]{2})$"
_DATE_SERIAL = r"^(?P<n>[0-9]{5})(?:\.0+)?$"  # a spreadsheet date serial that lost its format
_EXCEL_EPOCH = np.datetime64("1899-12-30")


def map_distinct(series: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """Apply the vectorised `fn` to the distinct non-missing values only, then spread back.

    >>> map_distinct(pd.Series(["a", None, "a", "b"], dtype="str"), lambda s: s.str.upper()).tolist()
    ['A', nan, 'A', 'B']
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    mapped = fn(pd.Series(uniques, dtype="str")).reset_index(drop=True)
    return pd.Series(mapped.array.take(codes, allow_fill=True), index=series.index)


def parse_dates(values: pd.Series) -> pd.Series:
    """Distinct date texts -> timestamps (NaT when missing or not a real date).

    >>> parse_dates(pd.Series(["1990-1-2", "1990/01/02", "19900102", "1990年1月2日", "32875",
    ...                        "1990-02-30", "02/01/1990"], dtype="str")).dt.strftime("%Y-%m-%d").tolist()
    ['1990-01-02', '1990-01-02', '1990-01-02', '1990-01-02', '1990-01-02', nan, nan]
    """
    parts = values.str.extract(_DATE_SEPARATED)
    compact = values.str.extract(_DATE_COMPACT)
    parts = parts.fillna(compact)
    ymd = pd.DataFrame({
        "year": pd.to_numeric(parts["y"], errors="coerce"),
        "month": pd.to_numeric(parts["m"], errors="coerce"),
        "day": pd.to_numeric(parts["d"], errors="coerce"),
    })
    out = pd.to_datetime(ymd, errors="coerce").astype("datetime64[us]")
    serial = pd.to_numeric(values.str.extract(_DATE_SERIAL)["n"], errors="coerce")
    has_serial = serial.notna() & (serial >= 10000)
    if has_serial.any():
        days = serial[has_serial].to_numpy(dtype="int64").astype("timedelta64[D]")
        out[has_serial] = pd.to_datetime(_EXCEL_EPOCH + days).astype("datetime64[us]")
    return out


def parse_sex(values: pd.Series) -> pd.Series:
    """Distinct sex texts -> 'M' / 'F' / missing (GB/T 2261.1: 1 male, 2 female).

    >>> parse_sex(pd.Series(["男", "f", "2", "Male", "9"], dtype="str")).tolist()
    ['M', 'F', 'F', 'M', nan]
    """
    return values.str.upper().map(SEX_CODES).astype("str")


def parse_term_years(values: pd.Series) -> pd.Series:
    """Distinct coverage-term texts -> years (inf for whole life / to an age; NaN if unreadable).

    >>> parse_term_years(pd.Series(["20", "1年", "6个月", "180天", "终身", "至80岁", "见条款"], dtype="str")).round(2).tolist()
    [20.0, 1.0, 0.5, 0.49, inf, inf, nan]
    """
    v = values.str.upper().str.replace(" ", "", regex=False)
    num = v.str.extract(r"^([0-9]+(?:\.[0-9]+)?)")[0].astype(float)
    years = pd.Series(np.nan, index=v.index)
    years[v.str.fullmatch(r"[0-9]+(?:\.[0-9]+)?(?:年|Y|YEARS?)?", na=False)] = num
    years[v.str.fullmatch(r"[0-9]+(?:个月|月|M|MONTHS?)", na=False)] = num / 12
    years[v.str.fullmatch(r"[0-9]+(?:天|日|D|DAYS?)", na=False)] = num / 365
    years[v.str.contains(r"终身|长期|岁|WHOLE ?LIFE", regex=True, na=False)] = np.inf
    return years


def normalise(raw: pd.DataFrame, cfg: Settings) -> pd.DataFrame:
    """The normalised frame the rules read (see `pipeline.ingest.contract.PARSED`)."""
    placeholders = {p.upper() for p in cfg.placeholders}
    out = pd.DataFrame(index=raw.index)
    for name in CANONICAL:
        if name in FEW_VALUES:
            out[name] = map_distinct(raw[name], lambda s: clean_text(s, placeholders)).astype("str")
        else:
            out[name] = clean_text(raw[name], placeholders)
    for name in ID_COLUMNS:
        s = out[name].str.upper()
        spaced = s.str.contains(r"\s", regex=True, na=False)  # rare: only those rows pay for the regex
        out[name] = s.where(~spaced, s[spaced].str.replace(r"\s+", "", regex=True)) if spaced.any() else s
    for name in DATE_COLUMNS:
        out[f"{name}_dt"] = map_distinct(out[name], parse_dates).astype("datetime64[us]")
        out[f"{name}_unreadable"] = out[name].notna() & out[f"{name}_dt"].isna()
    for name in SEX_COLUMNS:
        out[f"{name}_code"] = map_distinct(out[name], parse_sex).astype("str")
        out[f"{name}_unreadable"] = out[name].notna() & out[f"{name}_code"].isna()
    for name in PHONE_COLUMNS:
        phones = phone_numbers.normalise(out[name])
        out[f"{name}_e164"] = phones["e164"].astype("str")
        out[f"{name}_national"] = phones["national"].astype("str")
        out[f"{name}_valid"] = phones["valid"].astype(bool)
    out["bank_account_digits"] = out["bank_account"].str.replace(r"[\s\-]", "", regex=True)
    selves = {v.upper() for v in cfg.self_relation}
    out["is_self"] = out["relation"].str.upper().isin(selves).fillna(False).astype(bool)
    out["coverage_years_value"] = map_distinct(out["coverage_years"], parse_term_years).astype(float)
    out["_file"] = raw["_file"].astype(int)
    out["_line"] = raw["_line"].astype(int)
    return out
