"""`custdq report quarterly --quarter 2026Q3`: the quarter's confirmed-false customer
information (处理结果 虚假资料) per branch, channel and agent, as an xlsx ready to send.

An item counts in the quarter in which it was settled as 虚假资料 (its `closed_on`). Sheets:
汇总 (branch, channel, agent: items, policies, the policy numbers) and 明细 (one row per item:
no customer data beyond the masked evidence the worklists already show). Every cell is a
string or a number written as such: nothing becomes a formula.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
import xlsxwriter

from checks.masking import mask_text
from pipeline.store.schema import items
from pipeline.errors import InputError
from pipeline.store import read_frame

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


SUMMARY_COLUMNS = [("机构", "branch", 14), ("渠道", "channel", 8), ("业务员/中介代码", "agent_code", 16),
                   ("虚假资料问题件数", "items", 14), ("涉及保单数", "policies", 10), ("涉及保单", "policy_list", 60)]
DETAIL_COLUMNS = [("问题件编号", "item_id", 20), ("保单号", "policy_no", 18), ("机构", "branch", 14),
                  ("渠道", "channel", 8), ("业务员/中介代码", "agent_code", 16), ("规则代码", "rule_code", 20),
                  ("问题类别", "category", 12), ("问题说明", "detail", 40), ("核查依据", "evidence", 50),
                  ("首次发现", "first_seen", 11), ("认定日期", "closed_on", 11), ("处理人", "disposed_by", 10),
                  ("处理说明", "note", 40)]


def write_report(engine: sa.Engine, quarter: str, path: Path) -> dict:
    from pipeline.outputs import atomic_write

    start, end = quarter_bounds(quarter)
    with engine.connect() as conn:
        detail = confirmed_false(conn, start, end)
    table = summary(detail)

    def write(tmp: Path) -> None:
        book = xlsxwriter.Workbook(str(tmp), {"strings_to_formulas": False, "strings_to_urls": False,
                                              "strings_to_numbers": False})
        head = book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
        title = book.add_format({"bold": True, "font_size": 13})
        for name, frame, columns in (("汇总", table, SUMMARY_COLUMNS), ("明细", detail, DETAIL_COLUMNS)):
            sheet = book.add_worksheet(name)
            sheet.write_string(0, 0, f"{quarter.upper()} 客户信息虚假资料汇总（{start.isoformat()} 至 {end.isoformat()}）",
                               title)
            for col, (header, _, width) in enumerate(columns):
                sheet.set_column(col, col, width)
                sheet.write_string(2, col, header, head)
            for r, record in enumerate(frame.to_dict("records"), start=3):
                for col, (_, key, _) in enumerate(columns):
                    value = record.get(key)
                    if isinstance(value, (int,)) and not isinstance(value, bool):
                        sheet.write_number(r, col, value)
                    else:
                        sheet.write_string(r, col, "" if value is None or (not isinstance(value, str) and pd.isna(value))
                                           else str(value))
            sheet.freeze_panes(3, 0)
            sheet.autofilter(2, 0, max(2 + len(frame), 3), len(columns) - 1)
        book.close()

    atomic_write(path, write)
    return {"quarter": quarter.upper(), "from": start.isoformat(), "to": end.isoformat(), "items": len(detail),
            "policies": int(detail["policy_no"].nunique()) if len(detail) else 0, "groups": len(table)}


def quarterly_report(db: str | None, config_path: str | None, quarter: str, path: Path) -> dict:
    """`custdq report quarterly`: a malformed quarter or an --out that is not .xlsx is refused
    before the store is opened."""
    from pipeline import store
    from pipeline.errors import InputError

    quarter_bounds(quarter)
    if path.suffix.lower() != ".xlsx":
        raise InputError(f"--out {path}: the report is an Excel workbook: name it .xlsx")
    return write_report(store.existing(db, config_path)[0], quarter, path)
