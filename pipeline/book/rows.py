"""Contact rows of an extract: one row per valid phone or account of a policy and role, keyed.

Only comparable values are indexed: valid mainland phones that are not fillers (a filler is
PHONE_PLACEHOLDER's finding, not a clue linking thousands of customers) compared in E.164
form, and accounts of 8-30 digits (SPEC 2.5). A policy number that appears twice in one extract
contributes its first row (the duplicate is DUPLICATE_POLICY's finding).

Nothing here holds plaintext: `value` and `customer` are keyed hashes, the rest is masked or
not personal (policy number, branch, channel, agent code, receipt date).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from checks.contacts import placeholder_flags
from checks.customers import customers
from checks.findings import RuleContext
from checks.masking import mask_account, mask_id, mask_name, mask_phone
from pipeline.store.hashkey import keyed

CONTACT_COLUMNS = ["id", "kind", "value", "customer", "person", "policy_no", "field", "masked_value", "masked_name",
                   "masked_id", "branch", "channel", "agent_code", "receipt_date", "version", "row", "tonight"]
STORED = [c for c in CONTACT_COLUMNS if c not in ("id", "row", "tonight")]
NEEDED = {"policy_no", "bank_account_digits", "applicant_name", "insured_name", "applicant_id_no", "insured_id_no",
          "branch", "channel", "agent_code", "receipt_date_dt"}
FIELDS = (("P", "applicant_phone", "applicant"), ("P", "insured_phone", "insured"), ("B", "bank_account", "applicant"))


def version_of(business_date: str, source: str) -> str:
    """Versions order by date; at the same date a night's extract wins over a book load."""
    return business_date + ("N" if source == "night" else "B")


def contact_rows(frame: pd.DataFrame, ctx: RuleContext, key: bytes, version: str) -> pd.DataFrame:
    """The contact rows of `frame` (normalised, in scope) with `row` = the frame's index label."""
    first = ~frame["policy_no"].duplicated(keep="first")
    who = customers(frame, ctx)[first]  # cached per night, like the filler flags below
    filler = {field: placeholder_flags(frame, ctx, field)[first] for kind, field, _ in FIELDS if kind == "P"}
    frame = frame.loc[first, [c for c in frame.columns if c in NEEDED or c.endswith(("_national", "_valid", "_e164"))]]
    parts = []
    for kind, field, role in FIELDS:
        if kind == "P":
            national = frame[f"{field}_national"]
            ok = frame[f"{field}_valid"] & ~filler[field]
            text, masked = frame[f"{field}_e164"][ok], mask_phone(national[ok])
        else:
            digits = frame["bank_account_digits"]
            ok = digits.str.fullmatch(r"[0-9]{8,30}", na=False)
            text, masked = digits[ok], mask_account(digits[ok])
        if not ok.any():
            continue
        rows = frame[ok]
        parts.append(pd.DataFrame({
            "kind": kind, "value_text": kind + "|" + text, "customer_text": who.loc[ok, role],
            "person_text": who.loc[ok, f"{role}_person"],
            "policy_no": rows["policy_no"], "field": field, "masked_value": masked,
            "masked_name": mask_name(rows[f"{role}_name"]), "masked_id": mask_id(rows[f"{role}_id_no"]),
            "branch": rows["branch"], "channel": rows["channel"], "agent_code": rows["agent_code"],
            "receipt_date": rows["receipt_date_dt"].dt.strftime("%Y-%m-%d"),
            "row": rows.index.to_numpy(dtype=np.int64),
        }))
    if not parts:
        return empty()
    out = pd.concat(parts, ignore_index=True)
    out["value"] = keyed(key, out.pop("value_text"))
    # one pass for customers and persons: a customer known by name+birth+sex is its person text
    both = keyed(key, pd.concat([out.pop("customer_text"), out.pop("person_text")], ignore_index=True))
    out["customer"] = both.iloc[: len(out)].to_numpy()
    out["person"] = both.iloc[len(out):].to_numpy()
    out["id"] = -np.arange(1, len(out) + 1, dtype=np.int64)  # stored rows have positive ids
    out["version"] = version
    out["tonight"] = True
    return out[CONTACT_COLUMNS]


def empty() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in CONTACT_COLUMNS})
    return out.astype({"id": "int64", "row": "int64", "tonight": bool})
