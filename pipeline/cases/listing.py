"""`custdq cases list` and `custdq cases show`: the items for the console (SPEC 1, 6).

An item is overdue when it is open and its `due_date` has passed (SPEC 6: past its due date
without a disposition; 无法联系 records an attempt, it does not settle the item).
No personal data is printed: item id, policy number, branch, rule, role, deadlines, disposition,
and in `cases show` the masked evidence the worklists show. Roles, rules and statuses are named
in Chinese (pipeline.cases.labels).
"""

from __future__ import annotations

import datetime as dt
import difflib

import pandas as pd
import sqlalchemy as sa

from checks.masking import invisible, mask_text
from pipeline.cases.items import ITEM_ID
from pipeline.cases import history
from pipeline.store.schema import items
from pipeline.errors import InputError
from pipeline.cases.labels import (ACTION_NAMES, CLOSE_NAMES, ROLE_NAMES, SEVERITY_NAMES, STATE_NAMES, changes,
                                     rule_name)
from pipeline.store import read_frame as _read

COLUMNS = ["due_date", "item_id", "branch", "channel", "policy_no", "rule_code", "role", "detail", "first_seen",
           "status", "work_state", "result", "days_overdue"]
HEADERS = {"due_date": "处理期限", "item_id": "问题件编号", "branch": "机构", "channel": "渠道", "policy_no": "保单号",
           "rule_code": "规则", "role": "角色", "detail": "问题说明", "first_seen": "首次发现", "status": "状态", "work_state": "处理状态",
           "result": "处理结果", "days_overdue": "逾期天数"}
DEFAULT_LIMIT = 50


def open_items(conn: sa.Connection, as_of: dt.date, overdue: bool = False, branch: str | None = None) -> pd.DataFrame:
    query = sa.select(*[items.c[c] for c in COLUMNS if c not in ("days_overdue", "status")],
                      items.c.reopen_reason).where(items.c.state == "open")
    if branch is not None:
        known = list(conn.execute(sa.select(items.c.branch).where(items.c.state == "open").distinct()
                                  .order_by(items.c.branch)).scalars())
        if branch not in known:
            shown = ", ".join(b for b in known if b) or "none"
            near = difflib.get_close_matches(branch, [b for b in known if b], n=3, cutoff=0.4)
            hint = f" (did you mean {' or '.join(near)}?)" if near else ""
            raise InputError(f"--branch {mask_text(branch[:60])}: no open item in that branch{hint}; the branches with "
                             f"open items: {shown}")
        query = query.where(items.c.branch == branch)
    if overdue:
        query = query.where(items.c.due_date < as_of.isoformat())
    t = _read(conn, query.order_by(items.c.due_date, items.c.branch, items.c.policy_no, items.c.item_id))
    due = pd.to_datetime(t["due_date"])
    t["days_overdue"] = (pd.Timestamp(as_of) - due).dt.days.clip(lower=0).astype("int64")
    t["work_state"] = t["work_state"].fillna("未处理")
    t["status"] = t["reopen_reason"].notna().map({True: "重新打开", False: "未结"})
    return t[COLUMNS]


def displayed(t: pd.DataFrame) -> pd.DataFrame:
    shown = t.copy()
    shown["role"] = shown["role"].map(lambda r: ROLE_NAMES.get(r, r))
    shown["rule_code"] = shown["rule_code"].map(rule_name)
    return shown


def render(t: pd.DataFrame, limit: int | None = None) -> str:
    """A plain text table (fixed columns, CJK counted double width) for a terminal or a pager."""
    shown = displayed(t if limit is None else t.head(limit))
    cells = [[HEADERS[c] for c in COLUMNS]] + [["" if pd.isna(v) else str(v) for v in r]
                                                for r in shown.itertuples(index=False, name=None)]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(v + " " * (w - _width(v)) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def render_frame(t: pd.DataFrame) -> str:
    """Any frame as a plain text table, its column names as headers; control and format
    characters shown escaped (`\\x1b`): what people typed never drives the reader's terminal."""
    cells = [list(t.columns)] + [["" if v is None or (not isinstance(v, str) and pd.isna(v)) else _visible(str(v))
                                  for v in r] for r in t.itertuples(index=False, name=None)]
    widths = [max(_width(row[i]) for row in cells) for i in range(len(t.columns))]
    return "\n".join("  ".join(v + " " * (w - _width(v)) for v, w in zip(row, widths)).rstrip() for row in cells)


def _visible(text: str) -> str:
    return invisible().sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


def _width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def show(conn: sa.Connection, item_id: str) -> str:
    """One item (masked, as the worklists show it) and its whole history, oldest event first."""
    row = conn.execute(sa.select(items).where(items.c.item_id == item_id.strip().upper())).mappings().first()
    if row is None:
        raise InputError(f"item {mask_text(item_id[:40], ITEM_ID)}: no such item in the case store")
    state = STATE_NAMES.get(row["state"], row["state"])
    if row["state"] == "closed":
        state += f"（{CLOSE_NAMES.get(row['close_reason'], row['close_reason'])}，{row['closed_on']}）"
    elif row["reopen_reason"]:
        state = f"重新打开（{row['reopen_reason']}）"
    fields = [
        ("问题件编号", row["item_id"]), ("保单号", row["policy_no"]), ("角色", ROLE_NAMES.get(row["role"], row["role"])),
        ("规则", f"{rule_name(row['rule_code'])}（{SEVERITY_NAMES.get(row['severity'], row['severity'])}，"
               f"{row['category']}）"),
        ("问题说明", row["detail"]), ("核查依据", row["evidence"]), ("机构", row["branch"]), ("渠道", row["channel"]),
        ("业务员代码", row["agent_code"]), ("来源", f"{row['source_file']} 第 {row['source_line']} 行"
                                          if row["source_file"] else "更早的夜间批次"),
        ("线索群", f"{row['cluster_id']}（{row['cluster_size']} 人）" if row["cluster_id"] else None),
        ("首次发现", row["first_seen"]), ("最近发现", row["last_seen"]),
        ("期限", f"清单 {row['list_due']}，渠道核查 {row['channel_due']}，犹豫期截止 {row['cooling_off_end'] or '-'}，"
               f"处理期限 {row['due_date']}{'（待定）' if row['provisional'] else ''}"),
        ("状态", state), ("处理状态", row["work_state"]), ("处理结果", row["result"]), ("处理说明", row["note"]),
        ("处理人", f"{row['disposed_by']}（{row['disposed_at']}）" if row["disposed_by"] else None),
    ]
    lines = [f"{k}：{v}" for k, v in fields if v not in (None, "")]
    lines.append("历史：")
    for e in history.events(conn, row["item_id"]):
        origin = f"夜间批次 {e['night']}" if e["night"] else (e["source"] or "")
        lines.append(f"  {e['at']}  {e['who']}  {ACTION_NAMES.get(e['action'], e['action'])}  {changes(e['what'])}  {origin}"
                     .rstrip())
    return "\n".join(lines)
