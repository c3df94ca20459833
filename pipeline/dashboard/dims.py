"""Tonight's figures per branch, channel and agent: policies checked, policies with a finding,
findings. Rates per 1,000 policies are computed from these on the page, so a small branch
compares fairly with a large one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from checks.arrays import _text

DIMS = {"branch": "branch", "channel": "channel", "agent": "agent_code"}
UNKNOWN = "(空)"


def night_dims(checked: pd.DataFrame, fired: pd.DataFrame, first: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (dim, key) over tonight's in-scope policies (a policy's keys are those of its
    first record tonight; `first` flags those records when the caller has them) and tonight's
    findings on them. Counted on category codes with numpy: a 10M-policy night is never turned
    into Python objects or a joined copy."""
    if first is None:
        first = ~checked["policy_no"].duplicated().to_numpy()
    policies = checked.loc[first, ["policy_no", *DIMS.values()]]
    at = np.zeros(0, dtype=np.int64)  # the policy (its place in `policies`) of each finding on one
    if len(fired) and len(policies):
        found = pc.index_in(_text(fired["policy_no"]), value_set=_text(policies["policy_no"]))
        at = found.drop_null().to_numpy(zero_copy_only=False).astype(np.int64)
    once = np.unique(at)
    parts = []
    for dim, column in DIMS.items():
        keys = _coded(policies[column])
        codes, n = keys.codes.astype(np.int64), len(keys.categories)
        counts = np.bincount(codes, minlength=n)
        flagged = np.bincount(codes[once], minlength=n)
        findings = np.bincount(codes[at], minlength=n)
        seen = np.flatnonzero(counts)
        frame = pd.DataFrame({"dim": dim, "key": np.array([str(k) for k in keys.categories[seen]], dtype=object),
                              "policies": counts[seen], "flagged": flagged[seen], "findings": findings[seen]})
        parts.append(frame.sort_values(["policies", "key"], ascending=[False, True], kind="stable"))
    return pd.concat(parts, ignore_index=True).astype({"policies": "int64", "flagged": "int64", "findings": "int64"})


def _coded(values: pd.Series) -> pd.Categorical:
    """The column as categories of text, a missing or blank key as UNKNOWN."""
    cat = values.astype("category") if not isinstance(values.dtype, pd.CategoricalDtype) else values
    if cat.isna().any():
        if UNKNOWN not in cat.cat.categories:
            cat = cat.cat.add_categories([UNKNOWN])
        cat = cat.fillna(UNKNOWN)
    return cat.array
