"""A chunk's findings with their policy's columns: what the night keeps of each chunk's findings
(pipeline.rows.chunks), and what pipeline.night.items builds the night's items from."""

from __future__ import annotations

import pandas as pd

from checks import findings


def rows_of(found: pd.DataFrame, frame: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """The findings of one chunk (`row` refers to `frame`'s index) with their policy's columns
    and the normalised value each is about (`value_text`), ready for `build`."""
    rows = frame.loc[found["row"].to_numpy()]
    return found.reset_index(drop=True).assign(
        policy_no=rows["policy_no"].to_numpy(),
        branch=rows["branch"].to_numpy(),
        channel=rows["channel"].to_numpy(),
        agent_code=rows["agent_code"].to_numpy(),
        receipt_date_dt=rows["receipt_date_dt"].to_numpy(),
        source_file=pd.Series(sources, dtype=object).iloc[rows["_file"].to_numpy()].to_numpy(),
        source_line=rows["_line"].to_numpy(),
        cluster_id=None,
        cluster_size=pd.NA,
        value_text=_values_of(frame, rows, found["field"].to_numpy()),
        value_key=None, customer_key=None, group_keys=None,
    )

# a night without findings: the columns rows_of gives
NO_FINDINGS = findings.empty().assign(rule_code="", severity="", category="")
NO_ROWS = pd.DataFrame({"policy_no": pd.Series(dtype="str"), "branch": pd.Series(dtype="str"),
                         "channel": pd.Series(dtype="str"), "agent_code": pd.Series(dtype="str"),
                         "receipt_date_dt": pd.Series(dtype="datetime64[us]"), "_file": pd.Series(dtype="int64"),
                         "_line": pd.Series(dtype="int64")})


def _values_of(frame: pd.DataFrame, rows: pd.DataFrame, fields) -> list:
    """The normalised value of each finding's field in its row ("" for a policy-level finding)."""
    out = pd.Series("", index=range(len(rows)), dtype=object)
    fields = pd.Series(fields)
    for name in fields.unique():
        if name in frame.columns:
            at = (fields == name).to_numpy()
            out[at] = rows[name].to_numpy()[at]
    return out.fillna("").astype(str).tolist()
