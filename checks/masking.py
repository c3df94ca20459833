"""Display masking of personal data (SPEC 5, JR/T 0171-2020), vectorised.

>>> mask_id(pd.Series(["11010519491231002X", "4.40106E+17", None], dtype="str")).tolist()
['1****************X', '4*********7', nan]
"""

from __future__ import annotations

import pandas as pd


def _stars(lengths: pd.Series) -> pd.Series:
    table = {n: "*" * max(int(n), 0) for n in lengths.dropna().unique()}
    return lengths.map(table)


def mask_id(values: pd.Series) -> pd.Series:
    """Identity numbers: only the first and the last character."""
    s = values.astype("str")
    return (s.str[:1] + _stars(s.str.len() - 2).astype("str") + s.str[-1:]).where(s.notna())
