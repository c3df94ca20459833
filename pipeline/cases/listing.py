"""`custdq cases list`: the open items for the console, deadline first (SPEC 1, 6).

An item is overdue when it is open and its `due_date` has passed (SPEC 6: past its due date
without a disposition; 无法联系 records an attempt, it does not settle the item).
No personal data is printed: item id, policy number, branch, rule, role, deadlines, disposition.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from pipeline.store import read_frame as _read
from pipeline.cases.tables import items

COLUMNS = ["due_date", "item_id", "branch", "channel", "policy_no", "rule_code", "role", "first_seen",
           "work_state", "result", "days_overdue"]
HEADERS = {"due_date": "处理期限", "item_id": "问题件编号", "branch": "机构", "channel": "渠道", "policy_no": "保单号",
           "rule_code": "规则代码", "role": "角色", "first_seen": "首次发现", "work_state": "处理状态",
           "result": "处理结果", "days_overdue": "逾期天数"}


def open_items(conn: sa.Connection, as_of: dt.date, overdue: bool = False, branch: str | None = None) -> pd.DataFrame:
    query = sa.select(*[items.c[c] for c in COLUMNS if c != "days_overdue"]).where(items.c.state == "open")
    if branch is not None:
        query = query.where(items.c.branch == branch)
    if overdue:
        query = query.where(items.c.due_date < as_of.isoformat())
    t = _read(conn, query.order_by(items.c.due_date, items.c.branch, items.c.policy_no, items.c.item_id))
    due = pd.to_datetime(t["due_date"])
    t["days_overdue"] = (pd.Timestamp(as_of) - due).dt.days.clip(lower=0).astype("int64")
    t["work_state"] = t["work_state"].fillna("未处理")
    return t[COLUMNS]


def render(t: pd.DataFrame, limit: int | None = None) -> str:
    """A plain text table (fixed columns, CJK counted double width) for a terminal or a pager."""
    shown = t if limit is None else t.head(limit)
    cells = [[HEADERS[c] for c in COLUMNS]] + [["" if pd.isna(v) else str(v) for v in r]
                                                for r in shown.itertuples(index=False, name=None)]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(v + " " * (w - _width(v)) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
