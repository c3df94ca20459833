"""Findings -> items: one row per finding a person must act on (SPEC 5 `items.csv`), with the
night's deadlines (SPEC 4). The item's columns and id: pipeline.cases.items."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from pipeline.calendar import WorkCalendar
from pipeline.cases.items import DATE_FIELDS, ITEM_COLUMNS, KEY_COLUMNS, item_ids
from pipeline.rows.findings import NO_FINDINGS, NO_ROWS, rows_of
from pipeline.settings import Settings


@dataclass
class Deadlines:
    list_due: dt.date
    channel_due: dt.date
    provisional: bool


def night_deadlines(business_date: dt.date, calendar: WorkCalendar, cfg: Settings) -> Deadlines:
    d = cfg.deadlines
    list_due, p1 = calendar.add_workdays(business_date, d.list_working_days)
    channel_due, p2 = calendar.add_workdays(list_due, d.channel_working_days)
    return Deadlines(list_due, channel_due, p1 or p2)


def build(parts: list[pd.DataFrame], business_date: dt.date, deadlines: Deadlines, cfg: Settings,
          book: pd.DataFrame | None = None) -> pd.DataFrame:
    """Items of the night from the chunks' findings (`rows_of`) and the book-wide findings,
    which carry their policy's columns themselves (earlier policies are not rows of tonight's
    extract). Parts come in extract order, so a finding met twice keeps its first row."""
    parts = [p for p in parts if len(p)]
    t = pd.concat(parts, ignore_index=True) if parts else rows_of(NO_FINDINGS, NO_ROWS, [])
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
    t["cooling_off_end"] = receipt + pd.Timedelta(days=cfg.deadlines.cooling_off_days)
    t["due_date"] = t["cooling_off_end"].where(t["cooling_off_end"] < t["channel_due"], t["channel_due"])
    t["provisional"] = deadlines.provisional
    t["status"] = "new"
    t = t.drop_duplicates("item_id", keep="first")
    t = t.sort_values(["due_date", "branch", "policy_no", "rule_code", "role", "field"], na_position="last", kind="stable")
    for col in DATE_FIELDS:
        t[col] = pd.to_datetime(t[col]).astype("datetime64[us]")
    return t[ITEM_COLUMNS + KEY_COLUMNS].reset_index(drop=True)
