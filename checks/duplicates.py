"""DUPLICATE_POLICY: the same policy number more than once in one night's extract (SPEC 3).

One finding per policy number, on its first row, naming every place it occurs, so the item
list holds one item per duplicated policy however many copies the extract carries.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from checks import findings
from checks.findings import RuleContext


def duplicate_policy(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    dup = frame["policy_no"].duplicated(keep=False) & frame["policy_no"].notna()
    if not dup.any():
        return findings.empty()
    rows = frame.loc[dup, ["policy_no", "_file", "_line"]]
    where = ("文件" + (rows["_file"] + 1).astype(str) + "第" + rows["_line"].astype(str) + "行")
    # each policy's places, its first ten joined: one pass over plain lists (a per-group
    # pandas call cost seconds on a night where most policy numbers repeat)
    codes, _ = pd.factorize(rows["policy_no"])
    sizes = np.bincount(codes)
    rank = pd.Series(codes).groupby(codes).cumcount().to_numpy()
    places: list[list[str]] = [[] for _ in sizes]
    for code, text in zip(codes[rank < 10].tolist(), where.to_numpy(dtype=object)[rank < 10].tolist()):
        places[code].append(text)
    joined = np.array(["、".join(p) + ("等" if n > 10 else "") for p, n in zip(places, sizes)], dtype=object)
    listed = pd.Series(joined[codes], index=rows.index).astype(where.dtype)
    count = pd.Series(sizes[codes], index=rows.index)
    first = ~rows["policy_no"].duplicated(keep="first")
    detail = "保单号在本批提取中出现" + count.astype(str) + "次"
    mask = pd.Series(False, index=frame.index)
    mask[rows.index[first.to_numpy()]] = True
    return findings.make(mask, "policy", "policy_no", detail.reindex(frame.index), listed.reindex(frame.index))
