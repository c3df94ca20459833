"""Worklists (SPEC 5): one XLSX per branch for the people who work through the items.

Chinese headers, 问题件编号 (the item id) first, sorted by 处理期限 (due date), frozen header,
filter, drop-downs for 处理状态 and 处理结果, column widths that fit Chinese text. Personal data
is only ever the masked evidence. Every value is written as a string cell (xlsxwriter
`write_string`), so a cell never becomes a formula whatever a name or detail holds. A branch
name becomes a file name inside `worklists/` and nothing else: path separators, dots and
characters Windows forbids are replaced, and the resolved path is checked.

The folder is written beside the old one and swapped in, so a reader sees the old worklists or
the new ones, and a branch that has no items tonight leaves no stale file behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import xlsxwriter

ROLE_NAMES = {"applicant": "投保人", "insured": "被保险人", "policy": "保单"}
SEVERITY_NAMES = {"error": "错误", "warning": "警告"}
STATUS_NAMES = {"new": "新增", "open": "未结"}
STATES = ["未处理", "处理中", "已完成"]  # 处理状态 (SPEC 5)
RESULTS = ["已更正", "核实无误", "虚假资料", "无法联系"]  # 处理结果 (SPEC 5)
# (header, item column or None for a column the teams fill in, width in characters)
COLUMNS = [
    ("问题件编号", "item_id", 20), ("保单号", "policy_no", 18), ("角色", "role", 8), ("规则代码", "rule_code", 20),
    ("严重程度", "severity", 8), ("问题类别", "category", 14), ("问题说明", "detail", 40), ("核查依据", "evidence", 50),
    ("渠道", "channel", 8), ("业务员代码", "agent_code", 12), ("首次发现", "first_seen", 11), ("最近发现", "last_seen", 11),
    ("清单下发期限", "list_due", 12), ("渠道核查期限", "channel_due", 12), ("犹豫期截止", "cooling_off_end", 11),
    ("处理期限", "due_date", 11), ("期限待定", "provisional", 8), ("状态", "status", 6),
    ("线索群", "cluster_id", 16), ("线索群人数", "cluster_size", 10),
    ("处理状态", "work_state", 10), ("处理结果", "result", 10), ("处理说明", "note", 40),
]
FILLED_IN = ["处理状态", "处理结果", "处理说明"]  # the teams' columns, pre-filled with the store's disposition
UNKNOWN_BRANCH = "未知机构"
_FORBIDDEN = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


def file_name(branch: str) -> str:
    """A safe file name for a branch (never a path).

    >>> file_name("广东分公司")
    '广东分公司.xlsx'
    >>> file_name("../x")
    'x.xlsx'
    >>> file_name("CON")
    '_CON.xlsx'
    """
    name = re.sub(r"\.{2,}", "_", _FORBIDDEN.sub("_", str(branch)))
    name = re.sub(r"_+", "_", name).strip("._ ")[:80] or UNKNOWN_BRANCH
    if name.upper().split(".")[0] in {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
                                       *(f"LPT{i}" for i in range(10))}:
        name = "_" + name
    return name + ".xlsx"


def _text(value) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, (bool,)):
        return "是" if value else "否"
    return str(value)


def _cells(items: pd.DataFrame) -> pd.DataFrame:
    """The worklist's cell texts, one column per COLUMNS entry that comes from the item."""
    out = pd.DataFrame(index=items.index)
    for header, column, _ in COLUMNS:
        if column not in items.columns:
            values = pd.Series(STATES[0] if header == "处理状态" else "", index=items.index)
        else:
            values = items[column]
        if column == "work_state":
            values = values.fillna(STATES[0])
        elif column == "role":
            values = values.map(ROLE_NAMES).fillna(values)
        elif column == "severity":
            values = values.map(SEVERITY_NAMES).fillna(values)
        elif column == "status":
            values = values.map(STATUS_NAMES).fillna(values)
        elif column == "provisional":
            values = values.map({True: "是", False: "否"})
        out[header] = [_text(v) for v in values]
    return out


def _write_one(path: Path, cells: pd.DataFrame) -> None:
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_formulas": False,
                                               "strings_to_urls": False, "strings_to_numbers": False})
    sheet = workbook.add_worksheet("问题件清单")
    header = workbook.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
    fill_in = workbook.add_format({"bold": True, "bg_color": "#FFF2CC", "border": 1})
    for col, (title, source, width) in enumerate(COLUMNS):
        sheet.set_column(col, col, width)
        sheet.write_string(0, col, title, fill_in if title in FILLED_IN else header)
    last = len(cells)
    for row, values in enumerate(cells.itertuples(index=False, name=None), start=1):
        for col, value in enumerate(values):
            sheet.write_string(row, col, value)
    state_col = [c[0] for c in COLUMNS].index("处理状态")
    result_col = state_col + 1
    if last:
        sheet.data_validation(1, state_col, last, state_col, {"validate": "list", "source": STATES})
        sheet.data_validation(1, result_col, last, result_col, {"validate": "list", "source": RESULTS})
    sheet.freeze_panes(1, 1)
    sheet.autofilter(0, 0, max(last, 1), len(COLUMNS) - 1)
    workbook.close()


def write_worklists(items: pd.DataFrame, out: Path) -> dict[str, str]:
    """worklists/<branch>.xlsx for every branch with items; returns branch -> file name."""
    target = out / "worklists"
    staging = out / f".worklists.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    branches = items["branch"].fillna(UNKNOWN_BRANCH).astype(str)
    written: dict[str, str] = {}
    used: set[str] = set()
    ordered = items.sort_values(["due_date", "policy_no", "rule_code", "role"], na_position="last", kind="stable")
    for branch, part in ordered.groupby(branches.reindex(ordered.index), sort=True):
        name = file_name(branch)
        if name.lower() in used:  # two branch names that clean to one file name
            name = name[:-5] + "_" + hashlib.sha256(branch.encode("utf-8")).hexdigest()[:6] + ".xlsx"
        used.add(name.lower())
        path = (staging / name).resolve()
        if path.parent != staging.resolve():
            raise RuntimeError("worklist file name escaped its folder (bug)")
        _write_one(path, _cells(part))
        written[branch] = name
    old = out / f".worklists.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return written
