"""Identity-number rules (SPEC 2.3, 3): ID_FORMAT, ID_CORRUPTED, ID_CHECKSUM, ID_BIRTH_INVALID,
ID_REGION_UNKNOWN, ID_LEGACY_15, ID_SEX_MISMATCH, ID_BIRTH_MISMATCH, for applicant and insured.

Which documents are checked: the resident identity card and the residence permits of Hong Kong,
Macao and Taiwan residents fully (and a number without a document type that has the exact shape
of an identity-card number); the 2023 foreign permanent resident card (18 characters,
first digit 9) without the address code; anything else (passport, 军官证, the 15-character
2004 foreign card) only for presence, by MISSING_FIELD.

One number, one kind of finding: a number that is corrupted, malformed or fails its check
character gets that one item; its birth date, sex and address code are not judged, since a
mistyped digit would only raise false alarms on top.
"""

from __future__ import annotations

import pandas as pd

from checks import findings
from checks.findings import RuleContext
from checks.masking import mask_id
from checks.ric_vector import CHECKSUM, CORRUPTED, FORMAT, OK, analyse

ROLES = ("applicant", "insured")
SEX_NAMES = {"M": "男", "F": "女"}


def _types(ctx: RuleContext, key: str) -> set[str]:
    return {str(v).upper() for v in ctx.params[key]}


def analysis(frame: pd.DataFrame, ctx: RuleContext, role: str) -> pd.DataFrame:
    """The role's identity numbers analysed once per night (cached on the context)."""
    key = ("ric", role, id(frame))
    if key not in ctx.cache:
        id_type = frame[f"{role}_id_type"].str.upper()
        number = frame[f"{role}_id_no"]
        card = id_type.isin(_types(ctx, "id_card_types") | _types(ctx, "residence_permit_types"))
        # no type given (already MISSING_FIELD) but the number has an ID card's exact shape: check it
        card |= id_type.isna() & number.str.fullmatch(r"[0-9]{17}[0-9X]|[0-9]{15}", na=False)
        foreign = id_type.isin(_types(ctx, "foreign_permanent_types")) & number.str.fullmatch(r"9[0-9]{16}[0-9X]", na=False)
        applies = (card | foreign).fillna(False) & number.notna()
        result = analyse(number.where(applies), ctx.business_date, region_check=card.fillna(False))
        ctx.cache[key] = result.assign(applies=applies, foreign=foreign.fillna(False))
    return ctx.cache[key]


def _per_role(frame: pd.DataFrame, ctx: RuleContext, pick) -> pd.DataFrame:
    """Run `pick(analysis, frame, role, label) -> (mask, detail, evidence)` per role. `detail` and
    `evidence` are strings or functions of the hit rows' (analysis, frame) slices; evidence
    defaults to the masked number. Nothing is formatted for rows that did not hit."""
    parts = []
    for role in ROLES:
        a = analysis(frame, ctx, role)
        column = f"{role}_id_no"
        mask, detail, evidence = pick(a, frame, role, ctx.labels[column])
        mask = (mask & a["applies"]).fillna(False).astype(bool)
        if not mask.any():
            continue
        hit_a, hit_f = a[mask], frame.loc[mask]
        detail = detail(hit_a, hit_f) if callable(detail) else detail
        evidence = evidence(hit_a, hit_f) if callable(evidence) else mask_id(hit_f[column])
        parts.append(findings.make(mask, role, column, _spread(detail, mask), _spread(evidence, mask)))
    return findings.concat(parts)


def _spread(value, mask: pd.Series):
    return value.reindex(mask.index) if isinstance(value, pd.Series) else value


def id_format(frame, ctx):
    return _per_role(frame, ctx, lambda a, f, r, label: (
        a["status"] == FORMAT,
        lambda ha, hf: label + "不是18位或15位身份证号码（" + hf[f"{r}_id_no"].str.len().astype(str) + "位）", None))


def id_corrupted(frame, ctx):
    return _per_role(frame, ctx, lambda a, f, r, label: (
        a["status"] == CORRUPTED, f"{label}已被表格软件损坏（科学计数法、末尾.0或后三位被置零），请按证件原件重新录入", None))


def id_checksum(frame, ctx):
    return _per_role(frame, ctx, lambda a, f, r, label: (a["status"] == CHECKSUM, f"{label}校验位错误", None))


def id_birth_invalid(frame, ctx):
    return _per_role(frame, ctx, lambda a, f, r, label: (
        a["birth_invalid"], f"{label}中的出生日期不是有效日期（不存在、早于1900年或晚于业务日期）", None))


def id_region_unknown(frame, ctx):
    return _per_role(frame, ctx, lambda a, f, r, label: (
        a["region_unknown"], f"{label}的地址码不是GB/T 2260行政区划代码", None))


def id_legacy_15(frame, ctx):
    return _per_role(frame, ctx, lambda a, f, r, label: (
        a["legacy15"] & (a["status"] == OK), f"{label}为15位旧号码，请更新为18位", None))


def id_sex_mismatch(frame, ctx):
    def pick(a, f, role, label):
        recorded = f[f"{role}_sex_code"]
        embedded = a["sex"].astype("str")
        mask = (a["status"] == OK) & recorded.notna() & embedded.notna() & (recorded != embedded)

        def evidence(ha, hf):
            return ("号码显示" + ha["sex"].astype("str").map(SEX_NAMES).fillna("") + "，记录为"
                    + hf[f"{role}_sex_code"].map(SEX_NAMES).fillna(""))
        return mask, f"{ctx.labels[f'{role}_sex']}与{label}不符", evidence
    return _per_role(frame, ctx, pick)


def id_birth_mismatch(frame, ctx):
    def pick(a, f, role, label):
        recorded = f[f"{role}_birth_date_dt"]
        embedded = a["birth"]
        mask = (a["status"] == OK) & ~a["birth_invalid"] & recorded.notna() & embedded.notna() & (recorded != embedded)

        def evidence(ha, hf):
            return ("号码显示" + ha["birth"].dt.strftime("%Y-%m-%d").fillna("") + "，记录为"
                    + hf[f"{role}_birth_date_dt"].dt.strftime("%Y-%m-%d").fillna(""))
        return mask, f"{ctx.labels[f'{role}_birth_date']}与{label}不符", evidence
    return _per_role(frame, ctx, pick)
