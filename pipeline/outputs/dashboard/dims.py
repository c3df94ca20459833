"""Tonight's figures per branch, channel and agent: policies checked, policies with a finding,
findings. Rates per 1,000 policies are computed from these on the page, so a small branch
compares fairly with a large one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from checks.arrays import text_array

DIMS = {"branch": "branch", "channel": "channel", "agent": "agent_code"}
UNKNOWN = "(空)"


def night_dims(checked: pd.DataFrame, fired: pd.DataFrame, first: np.ndarray | None = None) -> pd.DataFrame:
    """One row per (dim, key) over tonight's in-scope policies (a policy's keys are those of its
    first record tonight; `first` flags those records when the caller has them) and tonight's
    findings on them. Counted on category codes with numpy: a 10M-policy night is never turned
    into Python objects or a joined copy."""
    if first is None:
        first = ~checked["policy_no"].duplicated().to_numpy()
    # each policy (its first record) -> its findings tonight: tonight's findings are hashed, the
    # 10M policy numbers only probed (a hash set of every policy number would take a gigabyte)
    hit = np.zeros(len(checked), dtype=np.int64)
    if len(fired) and len(checked):
        counted = pc.value_counts(text_array(fired["policy_no"]).drop_null())
        at = pc.index_in(text_array(checked["policy_no"]), value_set=counted.field("values"))
        at = pc.fill_null(at, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        found = at >= 0
        hit[found] = counted.field("counts").to_numpy(zero_copy_only=False)[at[found]]
    hit = hit[first]
    parts = []
    for dim, column in DIMS.items():
        keys = _coded(checked[column])
        codes, n = keys.codes[first].astype(np.int64), len(keys.categories)
        counts = np.bincount(codes, minlength=n)
        flagged = np.bincount(codes, weights=hit > 0, minlength=n).astype(np.int64)
        findings = np.bincount(codes, weights=hit, minlength=n).astype(np.int64)
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
