"""Tonight's figures per branch, channel and agent: policies checked, policies with a finding,
findings. Rates per 1,000 policies are computed from these on the page, so a small branch
compares fairly with a large one."""

from __future__ import annotations

import pandas as pd

DIMS = {"branch": "branch", "channel": "channel", "agent": "agent_code"}
UNKNOWN = "(空)"


def night_dims(checked: pd.DataFrame, fired: pd.DataFrame) -> pd.DataFrame:
    """One row per (dim, key) over tonight's in-scope policies and tonight's findings on them."""
    policies = checked[["policy_no", *DIMS.values()]].astype(object).drop_duplicates("policy_no")
    # object arrays: hash-table lookups (Arrow-string isin against a large list walks it in Python)
    mine = fired[fired["policy_no"].astype(object).isin(pd.Index(policies["policy_no"]))] if len(fired) else fired
    parts = []
    for dim, column in DIMS.items():
        key = policies[column].astype(object).fillna(UNKNOWN).astype(str)
        counts = key.value_counts()
        by_policy = pd.Series(key.to_numpy(), index=policies["policy_no"].to_numpy())
        if len(mine):
            fkey = mine["policy_no"].astype(object).map(by_policy)
            findings = fkey.value_counts()
            flagged = mine.assign(k=fkey.to_numpy()).drop_duplicates("policy_no")["k"].value_counts()
        else:
            findings = flagged = pd.Series(dtype="int64")
        parts.append(pd.DataFrame({"dim": dim, "key": counts.index, "policies": counts.to_numpy(),
                                   "flagged": flagged.reindex(counts.index).fillna(0).astype("int64").to_numpy(),
                                   "findings": findings.reindex(counts.index).fillna(0).astype("int64").to_numpy()}))
    return pd.concat(parts, ignore_index=True)
