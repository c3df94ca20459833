"""`custdq report quarterly --quarter 2026Q3`: the quarter's confirmed-false customer
information (处理结果 虚假资料) per branch, channel and agent, as an xlsx ready to send.

An item counts in the quarter in which it was settled as 虚假资料 (its `closed_on`). Sheets:
- 汇总: per branch, channel and agent the items and policies and the policy numbers, a 小计 row
  after each branch's and a 合计 row at the end;
- 分机构: per branch the denominators of the quarter — policies checked (the nights' in-scope
  policies added up: a policy sent on two nights counts twice, so the sheet says so), items
  raised (first seen in the quarter), items settled in the quarter and of them 虚假资料 —, the
  share of settled items found false and false items per thousand policies checked, and a 合计;
- 明细: one row per item (no customer data beyond the masked evidence the worklists show);
- 投诉复核: per agent or agency whose policies were re-checked (AGENT_COMPLAINT_RECHECK items
  first seen in the quarter, SPEC 9): the complaints that triggered it, the policies re-checked,
  what the re-checks found (their 处理结果) and how many are still open.
Every cell is a string or a number written as such: nothing becomes a formula. The layout is
custdq's own: no regulator's template is reproduced (docs/quarterly.md).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
import xlsxwriter

from checks.masking import mask_text
from pipeline.store.schema import items, night_dims
from pipeline.errors import InputError
from pipeline.store import agent_names, read_frame

QUARTER = re.compile(r"^([0-9]{4})Q([1-4])$")


def quarter_bounds(text: str) -> tuple[dt.date, dt.date]:
    """'2026Q3' -> (2026-07-01, 2026-09-30).

    >>> quarter_bounds("2026Q3")
    (datetime.date(2026, 7, 1), datetime.date(2026, 9, 30))
    """
    m = QUARTER.match(text.strip().upper())
    if not m:
        raise InputError(f"--quarter {mask_text(text[:20])!r}: expected YYYYQn, e.g. 2026Q3")
    year, q = int(m.group(1)), int(m.group(2))
    if not 1 <= year <= 9998:  # a calendar date's years, less 9999 (its fourth quarter ends past the calendar)
        raise InputError(f"--quarter {text!r}: the year must be 0001 to 9998")
    start = dt.date(year, 3 * q - 2, 1)
    end = dt.date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1) - dt.timedelta(days=1)
    return start, end


def confirmed_false(conn: sa.Connection, start: dt.date, end: dt.date) -> pd.DataFrame:
    query = sa.select(items.c.item_id, items.c.policy_no, items.c.rule_code, items.c.role, items.c.category,
                      items.c.detail, items.c.evidence, items.c.branch, items.c.channel, items.c.agent_code,
                      items.c.first_seen, items.c.closed_on, items.c.note, items.c.disposed_by) \
        .where(items.c.close_reason == "false", items.c.closed_on >= start.isoformat(),
               items.c.closed_on <= end.isoformat()) \
        .order_by(items.c.branch, items.c.channel, items.c.agent_code, items.c.policy_no)
    return read_frame(conn, query)


def summary(detail: pd.DataFrame) -> pd.DataFrame:
    if detail.empty:
        return pd.DataFrame(columns=["branch", "channel", "agent_code", "items", "policies", "policy_list"])
    d = detail.fillna({"branch": "(空)", "channel": "(空)", "agent_code": "(空)"})
    g = d.groupby(["branch", "channel", "agent_code"], sort=True)
    out = g.agg(items=("item_id", "size"), policies=("policy_no", "nunique"),
                policy_list=("policy_no", lambda s: "、".join(sorted(set(s)))))
    return out.reset_index().sort_values(["branch", "channel", "items"], ascending=[True, True, False])


SUBTOTAL, TOTAL = "小计", "合计"


def with_totals(table: pd.DataFrame) -> pd.DataFrame:
    """The summary with a 小计 row after each branch's rows and a 合计 row at the end."""
    if table.empty:
        return table
    parts = []
    for branch, rows in table.groupby("branch", sort=True):
        parts.append(rows)
        parts.append(pd.DataFrame([{"branch": f"{branch} {SUBTOTAL}", "channel": "", "agent_code": "",
                                    "items": int(rows["items"].sum()), "policies": int(rows["policies"].sum()),
                                    "policy_list": ""}]))
    parts.append(pd.DataFrame([{"branch": TOTAL, "channel": "", "agent_code": "", "items": int(table["items"].sum()),
                                "policies": int(table["policies"].sum()), "policy_list": ""}]))
    return pd.concat(parts, ignore_index=True)


def denominators(conn: sa.Connection, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Per branch for the quarter: policies checked (the nights' counts added up), items raised,
    items settled, of them false; the false share of settled and per thousand checked; a 合计."""
    lo, hi = start.isoformat(), end.isoformat()
    checked = read_frame(conn, sa.select(night_dims.c.key.label("branch"), sa.func.sum(night_dims.c.policies)
                                         .label("checked"))
                         .where(night_dims.c.dim == "branch", night_dims.c.business_date >= lo,
                                night_dims.c.business_date <= hi).group_by(night_dims.c.key))
    raised = read_frame(conn, sa.select(items.c.branch, sa.func.count().label("raised"))
                        .where(items.c.first_seen >= lo, items.c.first_seen <= hi).group_by(items.c.branch))
    settled = read_frame(conn, sa.select(items.c.branch, sa.func.count().label("settled"),
                                         sa.func.sum(sa.case((items.c.close_reason == "false", 1), else_=0))
                                         .label("false"))
                         .where(items.c.close_reason.in_(["corrected", "legitimate", "false"]),
                                items.c.closed_on >= lo, items.c.closed_on <= hi).group_by(items.c.branch))
    frames = [f.assign(branch=f["branch"].fillna("(空)")).set_index("branch") for f in (checked, raised, settled)]
    t = pd.concat(frames, axis=1).fillna(0)
    for column in ("checked", "raised", "settled", "false"):
        t[column] = (t[column] if column in t else 0)
        t[column] = t[column].astype(int)
    t = t.sort_index()
    t.loc[TOTAL] = t.sum()
    t["false_share"] = (t["false"] / t["settled"].where(t["settled"] > 0)).round(4)
    t["per_1000"] = (1000 * t["false"] / t["checked"].where(t["checked"] > 0)).round(2)
    return t.reset_index().rename(columns={"index": "branch"})


DENOMINATOR_COLUMNS = [("机构", "branch", 16), ("检查保单（各批次合计）", "checked", 14), ("新增问题件", "raised", 12),
                       ("办结问题件", "settled", 12), ("其中虚假资料", "false", 12),
                       ("虚假资料占办结", "false_share", 14), ("每千检查保单虚假资料", "per_1000", 16)]
SUMMARY_COLUMNS = [("机构", "branch", 14), ("渠道", "channel", 8), ("业务员/中介代码", "agent_code", 16),
                   ("业务员姓名", "agent_name", 10), ("虚假资料问题件数", "items", 14), ("涉及保单数", "policies", 10), ("涉及保单", "policy_list", 60)]
DETAIL_COLUMNS = [("问题件编号", "item_id", 20), ("保单号", "policy_no", 18), ("机构", "branch", 14),
                  ("渠道", "channel", 8), ("业务员/中介代码", "agent_code", 16), ("业务员姓名", "agent_name", 10),
                  ("规则代码", "rule_code", 20),
                  ("问题类别", "category", 12), ("问题说明", "detail", 40), ("核查依据", "evidence", 50),
                  ("首次发现", "first_seen", 11), ("认定日期", "closed_on", 11), ("处理人", "disposed_by", 10),
                  ("处理说明", "note", 40)]


RECHECK_COLUMNS = [("业务员/机构代码", "agent_code", 16), ("业务员姓名", "agent_name", 10), ("机构", "branch", 16),
                   ("触发复核的投诉", "evidence", 40), ("复核保单数", "items", 10), ("已办结", "settled", 8),
                   ("已更正", "已更正", 8), ("核实无误", "核实无误", 8), ("虚假资料", "虚假资料", 8),
                   ("无法联系", "无法联系", 8), ("未办结", "open", 8)]


def rechecks(conn: sa.Connection, start: dt.date, end: dt.date) -> pd.DataFrame:
    """The quarter's re-checks (AGENT_COMPLAINT_RECHECK items first seen in it) per agent code:
    the complaints that triggered them, how many policies, what was found."""
    t = read_frame(conn, sa.select(items.c.agent_code, items.c.branch, items.c.evidence, items.c.state,
                                   items.c.result).where(items.c.rule_code == "AGENT_COMPLAINT_RECHECK",
                                                         items.c.first_seen >= start.isoformat(),
                                                         items.c.first_seen <= end.isoformat()))
    if not len(t):
        return pd.DataFrame(columns=[key for _, key, _ in RECHECK_COLUMNS])
    rows = []
    for code, g in t.groupby("agent_code", sort=True):
        row = {"agent_code": code, "branch": "、".join(sorted(g["branch"].dropna().unique())),
               "evidence": "；".join(sorted(g["evidence"].dropna().unique())), "items": len(g),
               "settled": int((g["state"] == "closed").sum()), "open": int((g["state"] != "closed").sum())}
        row |= {result: int((g["result"] == result).sum()) for result in ("已更正", "核实无误", "虚假资料", "无法联系")}
        rows.append(row)
    return pd.DataFrame(rows)


def write_report(engine: sa.Engine, quarter: str, path: Path) -> dict:
    from pipeline.files import atomic_write

    start, end = quarter_bounds(quarter)
    with engine.connect() as conn:
        detail = confirmed_false(conn, start, end)
        shares = denominators(conn, start, end)
        checked = rechecks(conn, start, end)
        names = agent_names(conn, sorted(set(detail["agent_code"].dropna()) | set(checked["agent_code"])))
    detail["agent_name"] = [names.get(c, "") for c in detail["agent_code"]]
    checked["agent_name"] = [names.get(c, "") for c in checked["agent_code"]]
    table = summary(detail)
    table["agent_name"] = [names.get(c, "") for c in table["agent_code"]]
    sheets = (("汇总", with_totals(table), SUMMARY_COLUMNS, "客户信息虚假资料汇总"),
              ("分机构", shares, DENOMINATOR_COLUMNS, "分机构检查与处理情况"),
              ("明细", detail, DETAIL_COLUMNS, "客户信息虚假资料明细"),
              ("投诉复核", checked, RECHECK_COLUMNS, "投诉触发的客户信息复核"))

    def write(tmp: Path) -> None:
        book = xlsxwriter.Workbook(str(tmp), {"strings_to_formulas": False, "strings_to_urls": False,
                                              "strings_to_numbers": False})
        head = book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
        title = book.add_format({"bold": True, "font_size": 13})
        share = book.add_format({"num_format": "0.00%"})
        for name, frame, columns, heading in sheets:
            sheet = book.add_worksheet(name)
            sheet.write_string(0, 0, f"{quarter.upper()} {heading}（{start.isoformat()} 至 {end.isoformat()}）", title)
            if name == "分机构":
                sheet.write_string(1, 0, "检查保单为各批次检查保单数之和：同一保单在两个批次中各计一次。")
            for col, (header, _, width) in enumerate(columns):
                sheet.set_column(col, col, width)
                sheet.write_string(2, col, header, head)
            for r, record in enumerate(frame.to_dict("records"), start=3):
                for col, (_, key, _) in enumerate(columns):
                    value = record.get(key)
                    if isinstance(value, (int, float)) and not isinstance(value, bool) and not pd.isna(value):
                        sheet.write_number(r, col, value, share if key == "false_share" else None)
                    elif isinstance(value, float):  # no denominator: no share
                        sheet.write_string(r, col, "")
                    else:
                        sheet.write_string(r, col, "" if value is None or (not isinstance(value, str) and pd.isna(value))
                                           else str(value))
            sheet.freeze_panes(3, 0)
            sheet.autofilter(2, 0, max(2 + len(frame), 3), len(columns) - 1)
        book.close()

    atomic_write(path, write)
    return {"quarter": quarter.upper(), "from": start.isoformat(), "to": end.isoformat(), "items": len(detail),
            "policies": int(detail["policy_no"].nunique()) if len(detail) else 0, "groups": len(table),
            "rechecked_agents": len(checked)}


def quarterly_report(db: str | None, config_path: str | None, quarter: str, path: Path) -> dict:
    """`custdq report quarterly`: a malformed quarter or an --out that is not .xlsx is refused
    before the store is opened."""
    from pipeline import store
    from pipeline.errors import InputError

    quarter_bounds(quarter)
    if path.suffix.lower() != ".xlsx":
        raise InputError(f"--out {path}: the report is an Excel workbook: name it .xlsx")
    return write_report(store.existing(db, config_path)[0], quarter, path)
