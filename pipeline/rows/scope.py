"""Which rows are checked: quarantine (cannot be checked) and scope (SPEC 2.1 coverage term).

Every row read ends in exactly one of three places, so the manifest always adds up:
quarantined (with its source line and reason), out of scope (counted), or in scope (checked).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Split:
    in_scope: pd.Series  # bool per row
    out_of_scope: pd.Series
    quarantined: pd.DataFrame  # line-level quarantine rows for records that were parsed
    term_unreadable: int


def split(frame: pd.DataFrame, sources: list[str], cfg: dict) -> Split:
    no_policy = frame["policy_no"].isna()
    years = frame["coverage_years_value"]
    unreadable = frame["coverage_years"].notna() & years.isna()
    short = years < float(cfg["scope"]["min_coverage_years"])
    if not cfg["scope"]["unreadable_term_in_scope"]:
        short |= unreadable
    out = short.fillna(False) & ~no_policy
    q = frame.loc[no_policy, ["_file", "_line"]]
    quarantined = pd.DataFrame({
        "source_file": np.asarray(sources, dtype=object)[q["_file"].to_numpy()] if len(q) else [],
        "line": q["_line"].to_numpy(),
        "policy_no": None,
        "reason": "no policy number (policy_no / 保单号 is empty or a placeholder)",
    })
    return Split(~no_policy & ~out, out, quarantined, int((unreadable & ~no_policy).sum()))
