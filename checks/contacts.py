"""Contact rules on one record (SPEC 3): PHONE_INVALID, PHONE_PLACEHOLDER, BANK_ACCOUNT_INVALID,
BANK_CARD_LUHN, BANK_HOLDER_MISMATCH. Phones were normalised once (`<col>_e164`,
`<col>_national`, `<col>_valid`); accounts to digits (`bank_account_digits`).

A filler phone is a placeholder, not also an invalid number: one value, one finding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from checks import findings
from checks.findings import RuleContext
from checks.masking import mask_account, mask_name, mask_phone
from checks.arrays import char_matrix
from checks.phones import area_code_length

PHONES = (("applicant", "applicant_phone"), ("insured", "insured_phone"))


def _runs(length: int) -> set[str]:
    """Every run of `length` consecutive digits, ascending or descending (…8901…, …3210…)."""
    up, down = "0123456789" * 3, "9876543210" * 3
    return {seq[i:i + length] for seq in (up, down) for i in range(10)}


def placeholder_flags(frame: pd.DataFrame, ctx: RuleContext, column: str) -> pd.Series:
    """Filler flags of one phone column, computed once per night for both phone rules."""
    key = ("placeholder", column, id(frame))
    if key not in ctx.cache:
        ctx.cache[key] = placeholder(frame[f"{column}_national"], ctx)
    return ctx.cache[key]


def placeholder(national: pd.Series, ctx: RuleContext) -> pd.Series:
    """Filler numbers (config `phone_placeholders`) in a column of national numbers.

    Typed fillers, whatever their shape: a listed number; one digit repeated through the whole
    number; a whole number that is a consecutive run (12345678901, 12345678). And a real
    landline whose local number is a run (010-12345678, 0755-87654321): real as phonenumbers
    judges it from its CN metadata - a valid fixed-line number, its area code the one
    phonenumbers finds (`phones.area_code_length`), never a guess from the first digit. So a
    number that only looks like area code + run (238 1234 5678: 023 takes 8-digit local
    numbers) is not a valid number at all, PHONE_INVALID. A mobile with a run only in its last
    digits (138 1234 5678) is a real vanity number and is not flagged.

    >>> from types import SimpleNamespace
    >>> ctx = SimpleNamespace(params={"phone_placeholders": {"numbers": ["13800138000"], "repeated_digit": True,
    ...                                                      "consecutive_runs": True}})
    >>> placeholder(pd.Series(["1012345678", "75587654321", "23812345678", "13800138000", "13812345678",
    ...                        "11111111111", "12345678", "2387654321", None]), ctx).tolist()
    [True, True, False, True, False, True, True, True, False]
    """
    cfg = ctx.params["phone_placeholders"]  # phone_placeholders: (pipeline/default_config.yaml)
    listed = {str(n).lstrip("0") for n in cfg["numbers"]}
    hit = national.isin(listed).fillna(False)
    if cfg["repeated_digit"]:
        hit |= national.str.fullmatch(r"0+|1+|2+|3+|4+|5+|6+|7+|8+|9+", na=False)
    if cfg["consecutive_runs"]:
        length = national.str.len()
        for n in range(7, 12):
            hit |= national.where(length == n).isin(_runs(n)).fillna(False)
        # the area code is looked up only where the last 7 or 8 digits (a local number's) are a run
        ends = (national.str[-7:].isin(_runs(7)) | national.str[-8:].isin(_runs(8))).fillna(False) & ~hit
        if ends.any():
            candidates = national[ends]
            area = area_code_length(candidates)
            for digits in sorted(set(area[area > 0].tolist())):
                local = candidates.where(area == digits).str[digits:]
                for n in (7, 8):  # mainland local numbers
                    hit[ends] |= local.where(local.str.len() == n).isin(_runs(n)).fillna(False)
    return hit.astype(bool)


def phone_placeholder(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    parts = []
    for role, column in PHONES:
        hit = placeholder_flags(frame, ctx, column)
        if hit.any():
            evidence = mask_phone(frame.loc[hit, f"{column}_national"]).reindex(frame.index)
            parts.append(findings.make(hit, role, column, f"{ctx.labels[column]}为虚假填充号码", evidence))
    return findings.concat(parts)


def phone_invalid(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    parts = []
    for role, column in PHONES:
        bad = frame[column].notna() & ~frame[f"{column}_valid"] & ~placeholder_flags(frame, ctx, column)
        if bad.any():
            shown = frame.loc[bad, f"{column}_national"].fillna(frame.loc[bad, column])
            parts.append(findings.make(bad, role, column, f"{ctx.labels[column]}不是有效的中国大陆电话号码",
                                       mask_phone(shown).reindex(frame.index)))
    return findings.concat(parts)


def bank_account_invalid(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    digits = frame["bank_account_digits"]
    bad = frame["bank_account"].notna() & ~digits.str.fullmatch(r"[0-9]{8,30}", na=False)
    evidence = mask_account(frame.loc[bad, "bank_account_digits"]).reindex(frame.index)
    return findings.make(bad, "policy", "bank_account", "缴费账号不是8至30位数字", evidence)


def luhn_ok(digits: pd.Series) -> pd.Series:
    """Luhn check over a column of digit strings (left-padded to 19 with zeros, which keeps the
    sum); anything but 1 to 19 ASCII digits fails it."""
    out = pd.Series(False, index=digits.index)
    shaped = digits.str.fullmatch(r"[0-9]{1,19}", na=False).to_numpy(dtype=bool)
    if not shaped.any():
        return out
    padded = digits[shaped].str.pad(19, fillchar="0")
    m = char_matrix(padded, 19).astype(np.int16) - 48
    rev = m[:, ::-1]  # from the right: the check digit, then every second digit doubled
    odd = rev[:, 1::2] * 2
    total = rev[:, 0::2].sum(axis=1) + (odd - 9 * (odd > 9)).sum(axis=1)
    out[shaped] = total % 10 == 0
    return out


def bank_card_luhn(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    digits = frame["bank_account_digits"]
    card = digits.str.fullmatch(r"[0-9]{16,19}", na=False)
    bad = pd.Series(False, index=frame.index)
    if card.any():
        bad[card] = ~luhn_ok(digits[card])
    evidence = mask_account(frame.loc[bad, "bank_account_digits"]).reindex(frame.index)
    return findings.make(bad, "policy", "bank_account", "缴费账号形似银行卡号但未通过Luhn校验（部分银联卡属实，请核实）",
                         evidence)


def _name_key(names: pd.Series) -> pd.Series:
    return names.str.replace(r"[\s·•.]", "", regex=True)


def bank_holder_mismatch(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    holder, applicant = _name_key(frame["bank_account_holder"]), _name_key(frame["applicant_name"])
    bad = holder.notna() & applicant.notna() & (holder != applicant)
    evidence = ("户名" + mask_name(frame.loc[bad, "bank_account_holder"]) + "，投保人"
                + mask_name(frame.loc[bad, "applicant_name"])).reindex(frame.index)
    return findings.make(bad.fillna(False), "policy", "bank_account_holder", "缴费账户户名与投保人不一致", evidence)
