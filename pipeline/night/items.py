"""Findings -> items: one row per finding a person must act on (SPEC 5 `items.csv`).

`item_id` is a hash of what makes a finding the same finding on a later night: rule, policy,
role and field. It does not depend on row order, file name or the night, so re-running a
night, or meeting the same finding again tomorrow, gives the same id.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

import pandas as pd

from checks import findings

from pipeline.calendar import WorkCalendar

ITEM_COLUMNS = [
    "item_id", "business_date", "policy_no", "role", "rule_code", "severity", "category", "field",
    "detail", "evidence", "branch", "channel", "agent_code", "first_seen", "list_due", "channel_due",
    "cooling_off_end", "due_date", "provisional", "status", "last_seen", "source_file", "source_line",
    "cluster_id", "cluster_size",
]
# beside the item columns, kept in the case store only: what a confirmation of legitimacy
# suppresses (pipeline.cases.night); `value_text` becomes `value_key` (a keyed hash) before storing
KEY_COLUMNS = ["value_text", "value_key", "customer_key", "group_keys"]
DATE_FIELDS = ["business_date", "first_seen", "last_seen", "list_due", "channel_due", "cooling_off_end", "due_date"]


@dataclass
class Deadlines:
    list_due: dt.date
    channel_due: dt.date
    provisional: bool


def night_deadlines(business_date: dt.date, calendar: WorkCalendar, cfg: dict) -> Deadlines:
    d = cfg["deadlines"]
    list_due, p1 = calendar.add_workdays(business_date, int(d["list_working_days"]))
    channel_due, p2 = calendar.add_workdays(list_due, int(d["channel_working_days"]))
    return Deadlines(list_due, channel_due, p1 or p2)


# an item id as item_ids makes it: kept readable where text is masked (checks.masking.mask_text)
ITEM_ID = re.compile(r"\bDQ[0-9A-F]{16}\b")


def item_ids(table: pd.DataFrame) -> pd.Series:
    keys = table["rule_code"] + "|" + table["policy_no"] + "|" + table["role"] + "|" + table["field"]
    return keys.map(lambda k: "DQ" + hashlib.sha256(k.encode("utf-8")).hexdigest()[:16].upper()).astype("str")


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


def build(parts: list[pd.DataFrame], business_date: dt.date, deadlines: Deadlines, cfg: dict,
          book: pd.DataFrame | None = None) -> pd.DataFrame:
    """Items of the night from the chunks' findings (`rows_of`) and the book-wide findings,
    which carry their policy's columns themselves (earlier policies are not rows of tonight's
    extract). Parts come in extract order, so a finding met twice keeps its first row."""
    parts = [p for p in parts if len(p)]
    t = pd.concat(parts, ignore_index=True) if parts else rows_of(_NO_FINDINGS, _NO_ROWS, [])
    if book is not None and len(book):
        t = pd.concat([t, book.assign(value_text=None)[t.columns]], ignore_index=True)
    t["source_line"] = t["source_line"].astype("Int64")
    t["cluster_size"] = t["cluster_size"].astype("Int64")
    t["item_id"] = item_ids(t)
    night = pd.Timestamp(business_date)
    t["business_date"] = night
    t["first_seen"] = night
    t["last_seen"] = night
    t["list_due"] = pd.Timestamp(deadlines.list_due)
    t["channel_due"] = pd.Timestamp(deadlines.channel_due)
    receipt = pd.to_datetime(t["receipt_date_dt"])
    t["cooling_off_end"] = receipt + pd.Timedelta(days=int(cfg["deadlines"]["cooling_off_days"]))
    t["due_date"] = t["cooling_off_end"].where(t["cooling_off_end"] < t["channel_due"], t["channel_due"])
    t["provisional"] = deadlines.provisional
    t["status"] = "new"
    t = t.drop_duplicates("item_id", keep="first")
    t = t.sort_values(["due_date", "branch", "policy_no", "rule_code", "role", "field"], na_position="last", kind="stable")
    for col in DATE_FIELDS:
        t[col] = pd.to_datetime(t[col]).astype("datetime64[us]")
    return t[ITEM_COLUMNS + KEY_COLUMNS].reset_index(drop=True)


_NO_FINDINGS = findings.empty().assign(rule_code="", severity="", category="")
_NO_ROWS = pd.DataFrame({"policy_no": pd.Series(dtype="str"), "branch": pd.Series(dtype="str"),
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
