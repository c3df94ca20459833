"""Worklists (SPEC 5): one XLSX per branch for the people who work through the items.

Chinese headers, 问题件编号 (the item id) first, sorted by 处理期限 (due date), frozen header,
filter, drop-downs for 处理状态 and 处理结果, column widths that fit Chinese text; 角色 and 状态 in
Chinese, 规则名称 (the catalogue's title) beside 规则代码, and 状态 重新打开 with its 重开原因 when
the night's frame carries `reopen_reason`. Printed: A4 landscape, all columns on one page wide,
the header row on every page, a page header with the title and a footer with the branch, the
business date and 第 n 页 / 共 N 页. Personal data is only ever the masked evidence. A branch
name becomes a file name inside `worklists/` and nothing else: path separators, dots and
characters Windows forbids are replaced, and the resolved path is checked.

pipeline/outputs/worklist_file.py writes each workbook whole (its structure: header, styles, widths,
pane, filter, drop-downs, print setup); the data rows are inline-string cells: every value a
string cell, never a formula, escaped as Excel expects text (&, <, >; control characters, lone
surrogates, literal `_xHHHH_`; cut to 32767 UTF-16 units), `<r>...</r>` text, not rich text.

Why so (1.22M items took 45 s here; a row is ~1.5 kB of XML, three quarters markup): the texts
are made once, column-wise - dates, codes and flags factorized, so only distinct values are
formatted and escaped; free text stays the Arrow array pandas holds - and one Arrow join over
all columns makes a slice's <row>s, whose data buffer goes to zlib as it is. Escaping is a byte
scan; only texts with &, <, >, a control character, '_x' or over 32767 bytes meet string kernels.
zlib level 2: of a 200k-row night's 367 MB of sheet XML, level 6 took 3.26 s of CPU for 33.8 MB,
level 1 1.21 s for 44.0 MB (+30 %), level 2 1.27 s for 41.2 MB (+22 %) - as fast as 1, smaller.
Files are written two at a time on threads (Arrow and zlib let go of the GIL), each by one thread
alone, so a file's content does not depend on the scheduling.

The folder is written beside the old one and swapped in, so a reader sees the old worklists or
the new ones, and a branch that has no items tonight leaves no stale file behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from checks.catalogue import RULES
from checks.shared import foreign_masked
from pipeline.cases.labels import RESULTS, REVIEW_STATE, STATES, ROLE_NAMES, SEVERITY_NAMES, STATUS_NAMES
from pipeline.outputs import WORKLISTS, worklist_file
from pipeline.outputs import text_bytes
from pipeline.outputs.worklist_file import NOT_XML, col_name

REOPENED = STATUS_NAMES["reopened"]  # 状态 of an item whose `reopen_reason` is set (a correction that did not happen)
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
STATUS = [c[1] for c in COLUMNS].index("status")
FILLED_IN = ["处理状态", "处理结果", "处理说明"]  # the teams' columns, pre-filled with the store's disposition
_FILLED_AT = [[c[0] for c in COLUMNS].index(title) for title in FILLED_IN]
UNKNOWN_BRANCH = "未知机构"
ROWS_PER_FILE = 1_048_575  # an Excel sheet holds 1,048,576 rows, the header included
SLICE = 20_000  # items turned into sheet XML at a time
WORKERS = min(2, os.cpu_count() or 1)  # files written at a time
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
TRANSFORMS = {  # item column -> its cell texts, element-wise (run on the distinct values only)
    "rule_title": lambda v: _texts(v.map(RULE_TITLES)),  # the code stays in 规则代码 (cases import checks it)
    "work_state": lambda v: _texts(v.fillna(STATES[0])),
    "role": lambda v: _texts(v.map(ROLE_NAMES).fillna(v)),
    "severity": lambda v: _texts(v.map(SEVERITY_NAMES).fillna(v)),
    "status": lambda v: _texts(v.map(STATUS_NAMES).fillna(v)),
    "provisional": lambda v: _texts(v.map({True: "是", False: "否"})),
    "reopen_reason": lambda v: _texts(v.astype(object)).str.strip().astype(object),  # why it was reopened, or ''
}


def _column_texts(values: pd.Series, texts=_texts):
    """One column's cell texts as (codes, texts): row i reads texts[codes[i]]. Factorized where
    equal keys mean equal texts (not for object: 1 == 1.0 == True), so `texts` runs on the
    distinct values only; codes None for the Arrow strings pandas holds, as they are (null for
    ''); `texts` None: the values are texts already. Texts are Arrow strings, or Python strings
    when one is a lone surrogate (not UTF-8)."""
    kind, types = values.dtype, pd.api.types
    if texts in (_texts, None) and isinstance(kind, pd.StringDtype) and kind.storage == "pyarrow":
        arr = pa.array(values.array)  # no copy
        arr = (arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr).cast(pa.large_string())
        if pc.count_distinct(arr.slice(0, 1000), mode="all").as_py() > 100:  # free text: as it is
            return None, arr
        coded = pc.dictionary_encode(arr, null_encoding="encode")  # a code list: its distinct texts escaped once
        return coded.indices.to_numpy(), coded.dictionary
    if texts and (isinstance(kind, pd.StringDtype) or types.is_datetime64_any_dtype(kind)
                  or types.is_bool_dtype(kind) or types.is_integer_dtype(kind)):
        codes, distinct = pd.factorize(values, use_na_sentinel=False)
        return codes.astype(np.int32), _arrow(texts(pd.Series(distinct)).tolist())  # 4 bytes an item a column
    return np.arange(len(values)), _arrow((texts(values) if texts else values).tolist())


def _arrow(texts: list):
    try:
        return pa.array(texts, pa.large_string())
    except (UnicodeEncodeError, pa.ArrowInvalid):  # a lone surrogate: never valid UTF-8
        return texts


def _cell_texts(items: pd.DataFrame) -> list:
    """(codes, texts) of every COLUMNS entry (`_column_texts`)."""
    absent = np.zeros(len(items), dtype=np.int32)
    reasons = (_column_texts(items["reopen_reason"], TRANSFORMS["reopen_reason"]) if "reopen_reason" in items.columns
               else (absent, [""]))
    out = []
    for header, column, _ in COLUMNS:
        source = "rule_code" if column == "rule_title" else column
        if column == "reopen_reason":
            out.append(reasons)
        elif source not in items.columns:
            out.append((absent, [STATES[0] if header == "处理状态" else ""]))
        else:
            out.append(_column_texts(items[source], TRANSFORMS.get(column, _texts)))
    (codes, texts), (reason_codes, reason_texts) = out[STATUS], reasons
    reopened = np.asarray([bool(t) for t in _as_list(reason_texts)], dtype=bool)[reason_codes]
    if reopened.any():  # 状态 reads 重新打开 where the item has a reopen reason
        codes = codes.copy()
        codes[reopened] = len(texts)
        out[STATUS] = codes, _arrow(_as_list(texts) + [REOPENED])
    return out


def _as_list(texts) -> list:
    return texts.fill_null("").to_pylist() if isinstance(texts, pa.Array) else list(texts)


def _cells(items: pd.DataFrame) -> pd.DataFrame:
    """The worklist's cell texts as a frame, one column per COLUMNS entry."""
    texts = [np.asarray(_as_list(t), dtype=object)[slice(None) if c is None else c] for c, t in _cell_texts(items)]
    return pd.DataFrame(dict(zip([c[0] for c in COLUMNS], texts)), index=items.index)


EXCEL_MAX_TEXT = 32767  # UTF-16 code units a cell may hold; Excel refuses (repairs) a longer one
_ESCAPED = re.compile(r"(_x[0-9a-fA-F]{4}_)")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")
_ODD = r"_x[0-9a-fA-F]{4}_|[\x00-\x08\x0b-\x1f]|\x{FFFE}|\x{FFFF}"  # what _excel_text changes (RE2)
_KEEP = bytes(b for b in range(256) if b in (9, 10) or (b >= 32 and b not in b"&<>"))  # bytes never escaped


def _excel_text(value: str) -> str:
    """The rare value with a control character or a literal _xHHHH_ (XlsxWriter's escaping)."""
    value = _ESCAPED.sub(r"_x005F\1", value)
    value = _CONTROL.sub(lambda m: f"_x{ord(m.group(0)):04X}_", value)
    return NOT_XML.sub(lambda m: f"_x{ord(m.group(0)):04X}_", value)


def _fit(value: str) -> str:
    """A text cut to what one Excel cell holds (as XlsxWriter's write_string cuts it)."""
    units = value.encode("utf-16-le", "surrogatepass")
    if len(units) <= 2 * EXCEL_MAX_TEXT:
        return value
    return units[: 2 * EXCEL_MAX_TEXT].decode("utf-16-le", "ignore")


def _fix(arr: pa.Array, mask: pa.Array, fix) -> pa.Array:
    """`fix` applied to the few texts `mask` marks (in Python), the others kept as they are."""
    if not pc.any(mask).as_py():
        return arr
    return pa.array([fix(v) if m else v for v, m in zip(arr.to_pylist(), mask.to_pylist())], pa.large_string())


def _escaped(texts) -> pa.Array:
    """Texts (Arrow, or Python strings one of which is a lone surrogate) cut to an Excel cell and
    escaped for a SpreadsheetML <t> element: Excel's _xHHHH_ escapes, then &, <, >."""
    if isinstance(texts, list):  # every text through _excel_text, once
        arr = pa.array([_excel_text(v) for v in texts], pa.large_string())
        arr = _fix(arr, pc.greater(pc.binary_length(arr), EXCEL_MAX_TEXT), _fit)  # UTF-16 units <= UTF-8 bytes
    else:
        arr = texts.fill_null("") if texts.null_count else texts
        arr, offsets, data = text_bytes(arr)
        raw = data.tobytes()
        if (not raw.translate(None, _KEEP) and b"_x" not in raw and b"\xef\xbf\xbe" not in raw
                and b"\xef\xbf\xbf" not in raw and np.diff(offsets).max(initial=0) <= EXCEL_MAX_TEXT):
            return arr  # nearly always: no control character, &, <, >, _x, U+FFFE/F, over-long text
        arr = _fix(arr, pc.greater(pc.binary_length(arr), EXCEL_MAX_TEXT), _fit)
        arr = _fix(arr, pc.match_substring_regex(arr, _ODD), _excel_text)
    if pc.any(pc.match_substring_regex(arr, "[&<>]")).as_py():
        for char, entity in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
            arr = pc.replace_substring(arr, char, entity)
    return arr


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


_PRESERVE, _PLAIN, _NOTHING = _text(' xml:space="preserve">'), _text(">"), _text("")
_SPACE = np.zeros(256, dtype=bool)
_SPACE[list(b"\t\n\f\r ")] = True  # RE2's \s, of XlsxWriter's test ^\s|\s$ as the Arrow kernel made it


def _openings(escaped: pa.Array) -> pa.Array:
    """'>', or ' xml:space="preserve">' before a text that starts or ends with white space (an
    ASCII byte, so each text's first and last byte tell)."""
    _, offsets, data = text_bytes(escaped)
    starts, ends = offsets[:-1], offsets[1:]
    if not len(data):
        return pa.repeat(_PLAIN, len(escaped))
    full = ends > starts
    spaced = full & (_SPACE[data[np.where(full, starts, 0)]] | _SPACE[data[np.where(full, ends - 1, 0)]])
    return pc.if_else(pa.array(spaced), _PRESERVE, _PLAIN)


class _Column:
    """One column's cells for any rows: factorized texts escaped once, Arrow's a slice at a time."""

    def __init__(self, codes, texts):
        self.codes, self.texts = codes, texts
        if codes is not None:
            escaped = _escaped(texts)
            self.texts = pc.binary_join_element_wise(_openings(escaped), escaped, _NOTHING)

    def take(self, rows: np.ndarray) -> list[pa.Array]:
        """'>text' (or ' xml:space="preserve">text') of these rows, in one array or two."""
        if self.codes is not None:
            return [self.texts.take(self.codes[rows])]
        escaped = _escaped(self.texts.take(rows))
        return [_openings(escaped), escaped]


def _sheet_rows(columns: list[_Column], rows: np.ndarray, first: int = 2, waiting: np.ndarray | None = None) -> np.ndarray:
    """<row> elements of data rows (sheet rows `first`, `first` + 1, ...), every value an
    inline-string cell, an empty one included (as XlsxWriter's write_string wrote it: a text
    cell, never a blank the next person's paste could turn into a number or formula): one Arrow
    join, whose data buffer is the rows' XML, back to back. The fill-in cells of a row `waiting`
    marks (an item waiting for its review) are read-only."""
    numbers = pc.cast(pa.array(np.arange(first, first + len(rows))), pa.large_string())
    cell = pc.binary_join_element_wise(numbers, _text('" t="inlineStr"><is><t'), _NOTHING)  # 'n" t=...><t'
    filled = cell
    if waiting is not None and waiting.any():
        locked = pc.binary_join_element_wise(numbers, _text(f'" s="{worklist_file.READ_ONLY}" t="inlineStr"><is><t'),
                                             _NOTHING)
        filled = pc.if_else(pa.array(waiting), locked, cell)
    args = [_text('<row r="'), numbers]
    for j, column in enumerate(columns):
        args += [_text(('"><c r="' if j == 0 else '</t></is></c><c r="') + col_name(j)),
                 filled if j in _FILLED_AT else cell, *column.take(rows)]
    xml = pc.binary_join_element_wise(*args, _text("</t></is></c></row>"), _NOTHING, _NOTHING)
    if xml.null_count:
        raise RuntimeError("a worklist cell without text (bug)")
    return text_bytes(xml)[2]


def _row_pieces(columns: list[_Column], rows: np.ndarray, waiting: np.ndarray):
    """The sheet's data rows, SLICE items at a time (a 100k-item branch is never one string);
    `waiting` (over every item): the items whose fill-in cells are read-only."""
    for start in range(0, len(rows), SLICE):
        part = rows[start: start + SLICE]
        yield _sheet_rows(columns, part, start + 2, waiting[part])


def _waiting(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The rows whose `column` (处理状态) is 待复核, items waiting for their review: read-only in a
    worklist, whose import refuses any change of them (pipeline/cases/disposition.py)."""
    if column not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return frame[column].eq(REVIEW_STATE).fillna(False).to_numpy(dtype=bool)


def _write_cells(path: Path, cells: pd.DataFrame, branch: str = "", business_date: str = "") -> None:
    """One worklist file of ready cell texts (`_cells`), as they are."""
    columns = [_Column(*_column_texts(cells[header], None)) for header in cells.columns]
    waiting = _waiting(cells, "处理状态")
    _write_book(path, len(cells), _row_pieces(columns, np.arange(len(cells)), waiting), branch, business_date,
                bool(waiting.any()))


SHEET = "问题件清单"


def header_footer(branch: str, business_date: str) -> tuple[str, str]:
    """The printed page's header and footer of a branch's worklist (worklist_file.header_footer).

    >>> header_footer("广东分公司", "2026-11-20")
    ('&C问题件清单（广东分公司，业务日期 2026-11-20）', '&L广东分公司&C第 &P 页 / 共 &N 页&R业务日期 2026-11-20')
    """
    return worklist_file.header_footer(SHEET, branch, business_date)


def _write_book(path: Path, last: int, pieces, branch: str = "", business_date: str = "",
                protected: bool = False) -> None:
    """A4 landscape, every column on one page wide (as many pages tall as it takes), the header
    row on every printed page, gridlines, a header with the sheet's title and a footer with the
    branch, the business date and the page number; frozen header, filter, drop-downs; protected
    when some rows are read-only."""
    titles = [c[0] for c in COLUMNS]
    header, footer = header_footer(branch, business_date)
    sheet = worklist_file.Sheet(
        SHEET, [worklist_file.Column(title, width, worklist_file.FILL_IN if title in FILLED_IN else worklist_file.HEADER)
                for title, _source, width in COLUMNS],
        {titles.index("处理状态"): STATES, titles.index("处理结果"): RESULTS}, header, footer, protected)
    worklist_file.write_book(path, sheet, last, pieces)


def _sorted_rows(items: pd.DataFrame) -> np.ndarray:
    """Row positions in the worklists' order: by 处理期限, then policy, rule and role, missing
    last, ties in the items' order (a stable sort; Arrow's, which orders text by code point as
    pandas does, when the keys convert)."""
    keys = ["due_date", "policy_no", "rule_code", "role"]
    try:
        if any(isinstance(items[k].dtype, pd.CategoricalDtype) for k in keys):  # pandas: in category order
            raise TypeError
        table = pa.table({k: pa.array(items[k]) for k in keys})
        return pc.sort_indices(table, sort_keys=[(k, "ascending", "at_end") for k in keys]).to_numpy()
    except (TypeError, pa.ArrowException, UnicodeEncodeError):
        return items[keys].reset_index(drop=True).sort_values(keys, na_position="last", kind="stable").index.to_numpy()


def write_worklist(items: pd.DataFrame, path: Path, branch: str = "", business_date: str = "") -> None:
    """One worklist file of `items` in their own order (the web app's export of a list)."""
    columns = [_Column(codes, values) for codes, values in _cell_texts(items)]
    waiting = _waiting(items, "work_state")
    _write_book(path, len(items), _row_pieces(columns, np.arange(len(items)), waiting), branch, business_date,
                bool(waiting.any()))


def branch_evidence(items: pd.DataFrame) -> pd.DataFrame:
    """`items` with each shared-contact evidence as its own branch may read it: a policy number it
    lists stays readable only when an item of that policy is in the row's branch (another
    branch's records masked, as the web app shows them: checks.shared.foreign_masked)."""
    listing = items["evidence"].str.contains("保单", regex=False, na=False).to_numpy(dtype=bool)
    if not listing.any():
        return items
    evidence = items["evidence"].to_numpy(dtype=object).copy()
    branch = items["branch"].fillna(UNKNOWN_BRANCH).astype(str)
    policies = items["policy_no"].astype(str)
    for name, at in pd.Series(branch[listing].to_numpy()).groupby(branch[listing].to_numpy()).indices.items():
        rows = np.flatnonzero(listing)[at]
        mine = set(policies[(branch == name).to_numpy()])
        evidence[rows] = foreign_masked(list(evidence[rows]), mine)
    return items.assign(evidence=pd.Series(evidence, index=items.index, dtype="str"))


def write_worklists(items: pd.DataFrame, out: Path) -> dict[str, list[str]]:
    """worklists/<branch>.xlsx for every branch with items; returns branch -> its file names.
    A branch's file shows other branches' policy numbers in shared-contact evidence masked."""
    items = branch_evidence(items)
    target = out / WORKLISTS
    staging = out / f".worklists.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    order = _sorted_rows(items)
    branches = items["branch"].fillna(UNKNOWN_BRANCH).astype(str).to_numpy(dtype=object)[order]
    written: dict[str, list[str]] = {}
    used: set[str] = set()
    files = []
    for branch, at in sorted(pd.Series(branches).groupby(branches, sort=False).indices.items()):
        rows = order[at]
        name = file_name(branch)
        if name.lower() in used:  # two branch names that clean to one file name
            name = name[:-5] + "_" + hashlib.sha256(branch.encode("utf-8")).hexdigest()[:6] + ".xlsx"
        used.add(name.lower())
        # a branch with more items than a sheet holds gets <branch>.xlsx, <branch>-2.xlsx, ...
        for n, start in enumerate(range(0, max(len(rows), 1), ROWS_PER_FILE), start=1):
            piece = name if n == 1 else f"{name[:-5]}-{n}.xlsx"
            path = (staging / piece).resolve()
            if path.parent != staging.resolve():
                raise RuntimeError("worklist file name escaped its folder (bug)")
            files.append((path, rows[start: start + ROWS_PER_FILE], branch))
            written.setdefault(branch, []).append(piece)
    columns = [_Column(codes, values) for codes, values in _cell_texts(items)]
    waiting = _waiting(items, "work_state")

    def write(file) -> None:
        path, rows, branch = file
        dates = _texts(items["business_date"].iloc[rows].drop_duplicates()) if "business_date" in items.columns else []
        business_date = max((d for d in dates if d), default="")  # tonight's T (the printed footer says it)
        _write_book(path, len(rows), _row_pieces(columns, rows, waiting), branch, business_date,
                    bool(waiting[rows].any()))

    # the biggest files first, on every core: Arrow's kernels and zlib let go of the GIL
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(write, sorted(files, key=lambda f: -len(f[1]))))
    old = out / f".worklists.old-{os.getpid()}"
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return written
