"""Tonight's figures per branch, channel and agent: policies checked, policies with a finding,
findings. Rates per 1,000 policies are computed from these on the page, so a small branch
compares fairly with a large one."""

from __future__ import annotations

import pandas as pd

DIMS = {"branch": "branch", "channel": "channel", "agent": "agent_code"}
UNKNOWN = "(空)"


def night_dims(checked: pd.DataFrame, fired: pd.DataFrame) -> pd.DataFrame:
    """One row per (dim, key) over tonight's in-scope policies and tonight's findings on them.
    Columns stay Arrow strings (a 10M-policy night as Python objects would take gigabytes)."""
    policies = checked[["policy_no", *DIMS.values()]].drop_duplicates("policy_no")
    policies = policies.astype("str").fillna({c: UNKNOWN for c in DIMS.values()})
    if len(fired):  # each finding on an in-scope policy, with its policy's keys
        mine = fired[["policy_no"]].astype("str").merge(policies, on="policy_no", how="inner")
        once = mine.drop_duplicates("policy_no")
    parts = []
    for dim, column in DIMS.items():
        counts = policies[column].value_counts()
        if len(fired):
            findings, flagged = mine[column].value_counts(), once[column].value_counts()
        else:
            findings = flagged = pd.Series(dtype="int64")
        parts.append(pd.DataFrame({"dim": dim, "key": counts.index.astype(object), "policies": counts.to_numpy(),
                                   "flagged": flagged.reindex(counts.index).fillna(0).astype("int64").to_numpy(),
                                   "findings": findings.reindex(counts.index).fillna(0).astype("int64").to_numpy()}))
    return pd.concat(parts, ignore_index=True)
