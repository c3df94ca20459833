"""Key-field completeness (MISSING_FIELD) and readability (FIELD_INVALID), SPEC 3.

Key fields. Applicant: name, sex, birth date, identity document type and number, address,
phone. Insured: name, sex, birth date, identity document type and number. Exemptions:
- the insured's identity document when the insured is under `minor_age` on the issue date
  (the business date when the issue date is missing or unreadable; never exempt when the
  insured's birth date is unknown, since then nobody can tell the insured is a minor);
- every insured field when `relation` is 本人: the applicant's fields describe the same person.
"""

from __future__ import annotations

import pandas as pd

from checks import findings
from checks.findings import RuleContext
from checks.masking import mask_raw, mask_text

APPLICANT_KEYS = ("applicant_name", "applicant_sex", "applicant_birth_date", "applicant_id_type",
                  "applicant_id_no", "applicant_address", "applicant_phone")
INSURED_KEYS = ("insured_name", "insured_sex", "insured_birth_date", "insured_id_type", "insured_id_no")
INSURED_ID = ("insured_id_type", "insured_id_no")
READABLE = ("applicant_sex", "applicant_birth_date", "insured_sex", "insured_birth_date", "issue_date", "receipt_date")


def role_of(column: str) -> str:
    return column.split("_", 1)[0] if column.startswith(("applicant_", "insured_")) else "policy"


def age_on(birth: pd.Series, on: pd.Series) -> pd.Series:
    """Whole years between two timestamp Series (NaN where either is missing)."""
    before_birthday = (on.dt.month * 100 + on.dt.day) < (birth.dt.month * 100 + birth.dt.day)
    return on.dt.year - birth.dt.year - before_birthday.astype(float)


def insured_is_minor(frame: pd.DataFrame, ctx: RuleContext) -> pd.Series:
    on = frame["issue_date_dt"].fillna(pd.Timestamp(ctx.business_date))
    age = age_on(frame["insured_birth_date_dt"], on)
    return (age < ctx.params["minor_age"]).fillna(False)


def raw_evidence(ctx: RuleContext, column: str, mask: pd.Series, shape_only: bool) -> pd.Series:
    """"原值: ..." on the rows of `mask` (looked up for those rows only): the placeholder a missing
    field held, through mask_text (a placeholder has no long digit run; anything else that read as
    missing keeps none); an unreadable value only by its shape (mask_raw), since a shifted export
    puts phones, identity numbers and accounts into date and sex columns."""
    raw = ctx.raw.loc[mask.index[mask.to_numpy(dtype=bool)], column].astype("str").str.strip()
    shown = mask_raw(raw) if shape_only else raw.map(mask_text, na_action="ignore").astype("str")
    return ("原值: " + shown).where(raw.fillna("") != "", "").reindex(mask.index)


def missing_field(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    exempt_insured = frame["is_self"]
    exempt_insured_id = exempt_insured | insured_is_minor(frame, ctx)
    parts = []
    for column in APPLICANT_KEYS + INSURED_KEYS:
        missing = frame[column].isna()
        if column.startswith("insured_"):
            missing &= ~(exempt_insured_id if column in INSURED_ID else exempt_insured)
        if missing.any():
            label = ctx.labels[column]
            evidence = raw_evidence(ctx, column, missing, shape_only=False)  # the placeholder typed
            parts.append(findings.make(missing, role_of(column), column, f"{label}缺失", evidence))
    return findings.concat(parts)


def field_invalid(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    parts = []
    for column in READABLE:
        bad = frame[f"{column}_unreadable"]
        if bad.any():
            label = ctx.labels[column]
            kind = "性别代码" if column.endswith("_sex") else "日期"
            evidence = raw_evidence(ctx, column, bad, shape_only=True)
            parts.append(findings.make(bad, role_of(column), column, f"{label}不是可识别的{kind}", evidence))
    return findings.concat(parts)
