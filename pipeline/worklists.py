"""Worklists (SPEC 5): one XLSX per branch for the people who work through the items.

Chinese headers, 问题件编号 (the item id) first, sorted by 处理期限 (due date), frozen header,
filter, drop-downs for 处理状态 and 处理结果, column widths that fit Chinese text; 角色 and 状态 in
Chinese, 规则名称 (the catalogue's title) beside 规则代码, and 状态 重新打开 with its 重开原因 when
the night's frame carries `reopen_reason`. Printed: A4 landscape, all columns on one page wide,
the header row on every page, a page header with the title and a footer with the branch, the
business date and 第 n 页 / 共 N 页. Personal data is only ever the masked evidence. A branch
name becomes a file name inside `worklists/` and nothing else: path separators, dots and
characters Windows forbids are replaced, and the resolved path is checked.

XlsxWriter writes each workbook's structure (header, styles, widths, frozen pane, filter,
drop-downs); the data rows, tens of thousands of string cells, are built column-wise as
SpreadsheetML inline-string cells with Arrow's string kernels and put into the sheet's
<sheetData> (XlsxWriter's per-cell calls took 30 of a 1M-row night's 110 seconds). Every value is
a string cell, so a cell never becomes a formula whatever a name or detail holds; text is
escaped as XlsxWriter escapes it (&, <, >; control characters and literal `_xHHHH_` as Excel
expects), and - unlike XlsxWriter's `write_string` - a value shaped like `<r>...</r>` is text
too, never passed through as rich-text XML.

The folder is written beside the old one and swapped in, so a reader sees the old worklists or
the new ones, and a branch that has no items tonight leaves no stale file behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import xlsxwriter
from xlsxwriter.utility import xl_col_to_name

from checks.catalogue import RULES
from pipeline.labels import ROLE_NAMES, SEVERITY_NAMES, STATUS_NAMES

REOPENED = STATUS_NAMES["reopened"]  # 状态 of an item whose `reopen_reason` is set (a correction that did not happen)
STATES = ["未处理", "处理中", "已完成"]  # 处理状态 (SPEC 5)
RESULTS = ["已更正", "核实无误", "虚假资料", "无法联系"]  # 处理结果 (SPEC 5)
# (header, item column or None for a column the teams fill in, width in characters)
COLUMNS = [
    ("问题件编号", "item_id", 20), ("保单号", "policy_no", 18), ("角色", "role", 8), ("规则代码", "rule_code", 20),
    ("规则名称", "rule_title", 26), ("严重程度", "severity", 8), ("问题类别", "category", 14), ("问题说明", "detail", 40),
    ("核查依据", "evidence", 50), ("渠道", "channel", 8), ("业务员代码", "agent_code", 12), ("首次发现", "first_seen", 11),
    ("最近发现", "last_seen", 11),
    ("清单下发期限", "list_due", 12), ("渠道核查期限", "channel_due", 12), ("犹豫期截止", "cooling_off_end", 11),
    ("处理期限", "due_date", 11), ("期限待定", "provisional", 8), ("状态", "status", 9),
    ("重开原因", "reopen_reason", 30), ("线索群", "cluster_id", 16), ("线索群人数", "cluster_size", 10),
    ("处理状态", "work_state", 10), ("处理结果", "result", 10), ("处理说明", "note", 40),
]
FILLED_IN = ["处理状态", "处理结果", "处理说明"]  # the teams' columns, pre-filled with the store's disposition
UNKNOWN_BRANCH = "未知机构"
ROWS_PER_FILE = 1_048_575  # an Excel sheet holds 1,048,576 rows, the header included
SLICE = 20_000  # items turned into sheet XML at a time
ZIP64_ROWS = 500_000  # past this many rows a sheet's XML may pass 2 GiB
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


def _texts(values: pd.Series) -> pd.Series:
    """Cell texts of one column: dates as YYYY-MM-DD, booleans 是/否, missing as ''."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.strftime("%Y-%m-%d").fillna("").astype(object)
    if pd.api.types.is_bool_dtype(values):
        return values.map({True: "是", False: "否"}).fillna("").astype(object)
    out = values.astype(object)
    return out.where(out.notna(), "").map(str)


RULE_TITLES = {code: rule.title for code, rule in RULES.items()}  # 规则名称 beside 规则代码


def _reopen_reasons(items: pd.DataFrame) -> pd.Series:
    """Why each item was reopened ('' when it was not): the optional `reopen_reason` column."""
    if "reopen_reason" not in items.columns:
        return pd.Series("", index=items.index, dtype=object)
    reasons = items["reopen_reason"].astype(object)
    reasons = reasons.where(reasons.notna(), "").map(str).str.strip()
    return reasons.astype(object)


def _cells(items: pd.DataFrame) -> pd.DataFrame:
    """The worklist's cell texts, one column per COLUMNS entry that comes from the item."""
    out = pd.DataFrame(index=items.index)
    reopened = _reopen_reasons(items)
    for header, column, _ in COLUMNS:
        if column == "rule_title":  # the catalogue's title; the code stays in 规则代码 (cases import checks it)
            values = items["rule_code"].map(RULE_TITLES)
        elif column == "reopen_reason":
            values = reopened
        elif column not in items.columns:
            values = pd.Series(STATES[0] if header == "处理状态" else "", index=items.index, dtype=object)
        else:
            values = items[column]
        if column == "work_state":
            values = values.fillna(STATES[0])
        elif column == "role":
            values = values.map(ROLE_NAMES).fillna(values)
        elif column == "severity":
            values = values.map(SEVERITY_NAMES).fillna(values)
        elif column == "status":
            values = values.map(STATUS_NAMES).fillna(values).astype(object).where(reopened.eq(""), REOPENED)
        elif column == "provisional":
            values = values.map({True: "是", False: "否"})
        out[header] = _texts(values).to_numpy(dtype=object)
    return out


EXCEL_MAX_TEXT = 32767  # UTF-16 code units a cell may hold; Excel refuses (repairs) a longer one
_ESCAPED = re.compile(r"(_x[0-9a-fA-F]{4}_)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")
_NOT_XML = re.compile(r"[\ud800-\udfff\ufffe\uffff]")


def _excel_text(value: str) -> str:
    """The rare value with a control character or a literal _xHHHH_ (XlsxWriter's escaping)."""
    value = _ESCAPED.sub(r"_x005F\1", value)
    value = _CONTROL.sub(lambda m: f"_x{ord(m.group(0)):04X}_", value)
    return _NOT_XML.sub(lambda m: f"_x{ord(m.group(0)):04X}_", value)


def _fit(value: str) -> str:
    """A text cut to what one Excel cell holds (as XlsxWriter's write_string cuts it)."""
    units = value.encode("utf-16-le", "surrogatepass")
    if len(units) <= 2 * EXCEL_MAX_TEXT:
        return value
    return units[: 2 * EXCEL_MAX_TEXT].decode("utf-16-le", "ignore")


def _xml_texts(values: pd.Series) -> pa.Array:
    """A column's texts, escaped for a SpreadsheetML <t> element."""
    try:
        arr = pa.array(values.to_numpy(dtype=object), type=pa.string())
    except (UnicodeEncodeError, pa.ArrowInvalid):  # a lone surrogate: never valid UTF-8
        arr = pa.array([_excel_text(v) for v in values], type=pa.string())
    long = pc.greater(pc.utf8_length(arr), EXCEL_MAX_TEXT // 2)
    if pc.any(long).as_py():
        arr = pa.array([_fit(v) if cut else v for v, cut in zip(arr.to_pylist(), long.to_pylist())], type=pa.string())
    odd = pc.match_substring_regex(arr, r"_x[0-9a-fA-F]{4}_|[\x00-\x08\x0b-\x1f]|\x{FFFE}|\x{FFFF}")
    if pc.any(odd).as_py():
        fixed = [_excel_text(v) if o else v for v, o in zip(arr.to_pylist(), odd.to_pylist())]
        arr = pa.array(fixed, type=pa.string())
    for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        arr = pc.replace_substring(arr, char, entity)
    return arr


def _sheet_rows(cells: pd.DataFrame, first: int = 2) -> bytes:
    """<row> elements of data rows (sheet rows `first`, `first` + 1, ...), every value an
    inline-string cell, an empty one included (as XlsxWriter's write_string wrote it: a text
    cell, never a blank the next person's paste could turn into a number or formula)."""
    if not len(cells):
        return b""
    numbers = pa.array(np.arange(first, len(cells) + first).astype(str))
    row_cells = []
    for j, header in enumerate(cells.columns):
        text = _xml_texts(cells[header])
        spaced = pc.match_substring_regex(text, r"^\s|\s$")
        preserve = pc.if_else(spaced, pa.scalar(' xml:space="preserve"'), pa.scalar(""))
        cell = pc.binary_join_element_wise(f'<c r="{xl_col_to_name(j)}', numbers, '" t="inlineStr"><is><t', preserve,
                                           ">", text, "</t></is></c>", "")
        row_cells.append(cell)
    rows = pc.binary_join_element_wise('<row r="', numbers, '">', *row_cells, "</row>", "")
    return "".join(rows.to_pylist()).encode("utf-8")


def _row_pieces(items: pd.DataFrame, cells=_cells):
    """The sheet's data rows, SLICE items at a time (a 100k-item branch is never one string)."""
    for start in range(0, len(items), SLICE):
        yield _sheet_rows(cells(items.iloc[start: start + SLICE]), start + 2)


def _write_one(path: Path, items: pd.DataFrame, branch: str = "") -> None:
    """One worklist file of `items`."""
    dates = _texts(items["business_date"].drop_duplicates()) if "business_date" in items.columns else []
    business_date = max((d for d in dates if d), default="")  # tonight's T (the printed footer says it)
    _write_book(path, len(items), _row_pieces(items), branch, business_date)


def _write_cells(path: Path, cells: pd.DataFrame, branch: str = "", business_date: str = "") -> None:
    """One worklist file of ready cell texts (`_cells`), as they are."""
    _write_book(path, len(cells), _row_pieces(cells, lambda c: c), branch, business_date)


SHEET = "问题件清单"


def _hf_text(value: str, room: int) -> str:
    """A text for a page header/footer: '&' starts a control code there (&P, &G, ...), so a
    branch's '&' becomes a full-width '＆'; tabs, line breaks and control characters become
    spaces; cut to `room` UTF-16 units (Excel allows 255 in the whole string)."""
    value = re.sub(r"[\x00-\x1f\x7f]+", " ", _NOT_XML.sub("", str(value))).replace("&", "＆").strip()
    return value.encode("utf-16-le")[: 2 * room].decode("utf-16-le", "ignore")


def header_footer(branch: str, business_date: str) -> tuple[str, str]:
    """The printed page's header (the sheet's title) and footer (branch, page n of N, business date).

    >>> header_footer("广东分公司", "2026-11-20")
    ('&C问题件清单（广东分公司，业务日期 2026-11-20）', '&L广东分公司&C第 &P 页 / 共 &N 页&R业务日期 2026-11-20')
    >>> header_footer("R&D", "")
    ('&C问题件清单（R＆D）', '&LR＆D&C第 &P 页 / 共 &N 页')
    """
    name, date = _hf_text(branch, 120), _hf_text(business_date, 10)
    about = "，".join(filter(None, [name, date and f"业务日期 {date}"]))
    header = f"&C{SHEET}（{about}）" if about else f"&C{SHEET}"
    footer = f"&L{name}&C第 &P 页 / 共 &N 页" + (f"&R业务日期 {date}" if date else "")
    return header, footer


def _print_setup(sheet, branch: str, business_date: str) -> None:
    """A4 landscape, every column on one page wide (as many pages tall as it takes), the header
    row on every printed page, gridlines, a header with the sheet's title and a footer with the
    branch, the business date and the page number. XlsxWriter writes these after <sheetData>
    (<printOptions>, <pageMargins>, <pageSetup>, <headerFooter>, as CT_Worksheet orders them) and
    in <sheetPr> (fitToPage) and workbook.xml (_xlnm.Print_Titles): the rows spliced into
    <sheetData> leave them where they are."""
    sheet.set_paper(9)  # A4
    sheet.set_landscape()
    sheet.fit_to_pages(1, 0)  # one page wide, any number tall
    sheet.repeat_rows(0)
    sheet.hide_gridlines(0)  # 0: gridlines on screen and on paper
    sheet.set_margins(left=0.25, right=0.25, top=0.55, bottom=0.55)
    header, footer = header_footer(branch, business_date)
    sheet.set_header(header, {"margin": 0.2})
    sheet.set_footer(footer, {"margin": 0.2})


def _write_book(path: Path, last: int, pieces, branch: str = "", business_date: str = "") -> None:
    skeleton = io.BytesIO()  # the structure, in memory: the file is written once, with its rows
    workbook = xlsxwriter.Workbook(skeleton, {"strings_to_formulas": False, "strings_to_urls": False,
                                               "strings_to_numbers": False})
    sheet = workbook.add_worksheet(SHEET)
    header = workbook.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
    fill_in = workbook.add_format({"bold": True, "bg_color": "#FFF2CC", "border": 1})
    for col, (title, source, width) in enumerate(COLUMNS):
        sheet.set_column(col, col, width)
        sheet.write_string(0, col, title, fill_in if title in FILLED_IN else header)
    state_col = [c[0] for c in COLUMNS].index("处理状态")
    result_col = state_col + 1
    if last:
        sheet.data_validation(1, state_col, last, state_col, {"validate": "list", "source": STATES})
        sheet.data_validation(1, result_col, last, result_col, {"validate": "list", "source": RESULTS})
    sheet.freeze_panes(1, 1)
    sheet.autofilter(0, 0, max(last, 1), len(COLUMNS) - 1)
    _print_setup(sheet, branch, business_date)
    workbook.close()
    _put_rows(skeleton, path, pieces, last + 1)


def _put_rows(skeleton: io.BytesIO, path: Path, pieces, last_row: int) -> None:
    """Write the workbook to `path` with the data rows (`pieces`, bytes) streamed into its
    sheet's <sheetData>."""
    with zipfile.ZipFile(skeleton) as z:
        members = [(info, z.read(info)) for info in z.infolist()]
    sheet_name = "xl/worksheets/sheet1.xml"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for info, data in members:
            if info.filename != sheet_name:
                z.writestr(info.filename, data, compress_type=zipfile.ZIP_DEFLATED)
                continue
            if data.count(b"</sheetData>") != 1:
                raise RuntimeError("unexpected worksheet XML from XlsxWriter (bug)")
            data = re.sub(rb'<dimension ref="A1:([A-Z]+)1"/>',
                          lambda m: b'<dimension ref="A1:' + m.group(1) + str(last_row).encode() + b'"/>', data)
            # XlsxWriter leaves out fitToWidth="1" (the schema's default); said outright, no reader guesses
            data = re.sub(rb"<pageSetup (?![^>]*fitToWidth)", b'<pageSetup fitToWidth="1" ', data, count=1)
            head, tail = data.split(b"</sheetData>")
            entry = zipfile.ZipInfo(info.filename, date_time=time.localtime(time.time())[:6])
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o600 << 16  # as writestr gives a member it names
            # a sheet near Excel's row limit can pass 2 GiB of XML: Zip64 then
            with z.open(entry, "w", force_zip64=last_row > ZIP64_ROWS) as fh:
                fh.write(head)
                for piece in pieces:
                    fh.write(piece)
                fh.write(b"</sheetData>" + tail)


def write_worklists(items: pd.DataFrame, out: Path) -> dict[str, list[str]]:
    """worklists/<branch>.xlsx for every branch with items; returns branch -> its file names."""
    target = out / "worklists"
    staging = out / f".worklists.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    branches = items["branch"].fillna(UNKNOWN_BRANCH).astype(str)
    written: dict[str, list[str]] = {}
    used: set[str] = set()
    keys = ["due_date", "policy_no", "rule_code", "role"]
    order = items[keys].sort_values(keys, na_position="last", kind="stable").index  # labels, not a copy of the items
    in_order = branches.reindex(order)
    for branch, at in sorted(in_order.groupby(in_order, sort=False).indices.items()):
        part = items.loc[order[at]]
        name = file_name(branch)
        if name.lower() in used:  # two branch names that clean to one file name
            name = name[:-5] + "_" + hashlib.sha256(branch.encode("utf-8")).hexdigest()[:6] + ".xlsx"
        used.add(name.lower())
        # a branch with more items than a sheet holds gets <branch>.xlsx, <branch>-2.xlsx, ...
        for n, start in enumerate(range(0, max(len(part), 1), ROWS_PER_FILE), start=1):
            piece = name if n == 1 else f"{name[:-5]}-{n}.xlsx"
            path = (staging / piece).resolve()
            if path.parent != staging.resolve():
                raise RuntimeError("worklist file name escaped its folder (bug)")
            _write_one(path, part.iloc[start: start + ROWS_PER_FILE], branch)
            written.setdefault(branch, []).append(piece)
    old = out / f".worklists.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return written
