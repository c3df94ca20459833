"""The one result shape of every rule, and what a rule may read besides the frame.

A rule returns a DataFrame with exactly `FINDING_COLUMNS`:

    row       index label of the extract row the finding is about
    role      applicant / insured / policy
    field     canonical column the finding is about ("" when none); part of the item's identity
    detail    what is wrong, in Chinese, naming the field
    evidence  what a person needs to see (already masked where it is personal data)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FINDING_COLUMNS = ["row", "role", "field", "detail", "evidence"]


class NotApplicable(Exception):
    """Raised by a rule that cannot apply tonight (e.g. no agent roster); the message says why."""


@dataclass
class RuleContext:
    business_date: dt.date
    raw: pd.DataFrame  # the extract as read, same index as the frame; for display only
    labels: dict[str, str]  # canonical column -> Chinese name
    params: dict = field(default_factory=dict)
    agents: pd.DataFrame | None = None  # the normalised agent roster, when one was given
    cache: dict = field(default_factory=dict)  # analyses of this frame shared by several rules
    night: dict = field(default_factory=dict)  # analyses of the night's fixed inputs (the roster), for every chunk


def empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "row" else "str") for c in FINDING_COLUMNS})


def make(mask: pd.Series, role: str, field_name: str, detail: str | pd.Series, evidence: str | pd.Series = "") -> pd.DataFrame:
    """Findings for the rows where `mask` is true; `detail`/`evidence` are scalars or aligned Series."""
    hit = mask.fillna(False).to_numpy(dtype=bool)
    if not hit.any():
        return empty()
    rows = mask.index[hit]

    def pick(v: str | pd.Series) -> pd.Series:
        if isinstance(v, pd.Series):
            return v[hit].fillna("").astype("str").reset_index(drop=True)
        return pd.Series([v] * len(rows), dtype="str")

    return pd.DataFrame({
        "row": np.asarray(rows, dtype="int64"),
        "role": pd.Series([role] * len(rows), dtype="str"),
        "field": pd.Series([field_name] * len(rows), dtype="str"),
        "detail": pick(detail),
        "evidence": pick(evidence),
    })


def concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else empty()
