"""`custdq cases import` (SPEC 6): worklists filled in by the teams, read back into the store.

Each row is validated against the store before anything changes: an unknown 问题件编号, a value
outside the drop-down choices, a policy number or rule code that does not match the item (an
edited row), an inconsistent pair (已完成 without a 处理结果), or a row that would move a settled
item backwards is rejected with its reason and changes nothing. Reasons (and a refused file's
message) are in Chinese, for the teams who read them, naming the item and the value at fault. A row equal to the item's
current disposition changes nothing, so importing the same file twice changes nothing more.

What a row may say and what it changes is pipeline.cases.disposition, the web app's code path
too. Every change is an event: who (`--by`, else the login name), when, what, from which file and row.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import io
import zipfile
from xml.etree.ElementTree import ParseError
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from openpyxl.utils.exceptions import InvalidFileException

from checks.masking import mask_text
from pipeline.cases.items import ITEM_ID
from pipeline import clock
from pipeline.cases.disposition import CHECKED, Entry, apply, disposition, earlier, held, problem, untouched
from pipeline.cases.night import CHUNK
from pipeline.cases.undo import python_value
from pipeline.store.schema import items
from pipeline.errors import InputError

REQUIRED = ["问题件编号", "处理状态", "处理结果", "处理说明"]
# what openpyxl raises on a file that is not a readable workbook (a damaged zip, broken XML ...)
UNREADABLE = (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, TypeError, AttributeError,
              OSError, ParseError, EOFError)


@dataclass
class Row:
    file: str
    sha: str
    line: int  # the spreadsheet's row number
    item_id: str
    state: str
    result: str
    note: str
    checked: dict = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.file} 第 {self.line} 行"

    @property
    def entry(self) -> Entry:
        return Entry(self.item_id, self.state, self.result, self.note, self.checked)


@dataclass
class ImportReport:
    files: list[dict] = field(default_factory=list)
    applied: int = 0
    unchanged: int = 0
    untouched: int = 0  # rows nobody filled in
    superseded: int = 0  # rows that say what their item held before it changed since (another's work)
    rejected: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"files": self.files, "applied": self.applied, "unchanged": self.unchanged,
                "untouched": self.untouched, "superseded": self.superseded, "rejected": len(self.rejected)}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def read_worklist(path: str | Path) -> list[Row]:
    """The rows of a worklist file (any sheet with the 问题件编号 header in its first rows)."""
    from openpyxl import load_workbook

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: 文件不存在")
    if not p.is_file():
        raise InputError(f"{p}: 不是文件")
    data = p.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if not data.startswith(b"PK"):
        raise InputError(f"{p}: 不是 xlsx 格式的问题件清单（请另存为 .xlsx 格式后再导入）")
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=False)  # formulas as formulas
    except UNREADABLE as exc:
        raise InputError(f"{p}: 不是 xlsx 格式的问题件清单，无法打开（{type(exc).__name__}）") from None
    try:
        for sheet in book.worksheets:
            rows = _values(sheet.iter_rows())
            for number, header in enumerate(rows, start=1):
                names = [_text(h) for h in header or ()]
                if "问题件编号" in names:
                    return _rows(p.name, sha, names, rows, number)
                if number >= 5:
                    break
    except UNREADABLE as exc:
        raise InputError(f"{p}: 工作簿已损坏，无法读取（{type(exc).__name__}）") from None
    finally:
        book.close()
    raise InputError(f"{p}: 不是 custdq 问题件清单（所有工作表的前 5 行中都没有“问题件编号”列标题）")


def _values(rows):
    """Each row's cell values, a formula cell read as empty: a formula is never evaluated nor its
    cached result taken, whoever saved the file (openpyxl leaves no result, Excel and LibreOffice
    Calc store one), so a formula typed into 处理结果 never settles an item."""
    for cells in rows:
        yield tuple(None if cell.data_type == "f" else cell.value for cell in cells)


def _rows(name: str, sha: str, names: list[str], rows, header_line: int) -> list[Row]:
    missing = [h for h in REQUIRED if h not in names]
    if missing:
        raise InputError(f"{name}: 问题件清单缺少以下列：{'、'.join(missing)}")
    at = {h: names.index(h) for h in REQUIRED + [c for c in CHECKED if c in names]}
    out = []
    for line, values in enumerate(rows, start=header_line + 1):
        values = list(values or ())
        cell = {h: _text(values[i]) if i < len(values) else "" for h, i in at.items()}
        if not any(cell.values()):
            continue
        out.append(Row(name, sha, line, cell["问题件编号"], cell["处理状态"], cell["处理结果"], cell["处理说明"],
                       {c: cell[c] for c in CHECKED if c in cell}))
    return out


def import_worklists(conn: sa.Connection, paths: list[str], who: str | None = None,
                     now: dt.datetime | None = None, review: frozenset[str] = frozenset()) -> ImportReport:
    """Read the worklists at `paths` into the store (one transaction: the caller's); a settled
    row whose 处理结果 is in `review` puts its item in 待复核, never past it."""
    who = who or _login()
    now = now or clock.now()
    at, today = now.isoformat(timespec="seconds"), now.date().isoformat()
    report = ImportReport()
    rows: list[Row] = []
    for path in paths:
        found = read_worklist(path)
        report.files.append({"file": str(path), "sha256": found[0].sha if found else "", "rows": len(found)})
        rows += found
    current = _items(conn, sorted({r.item_id for r in rows if r.item_id}))
    # what each item held when the import began, and before: a row saying one of these is a copy
    # of a worklist issued then, returned as it was (its item may have changed since)
    before = {i: {held(item)} for i, item in current.items()}
    looked: set[str] = set()
    seen: dict[str, Row] = {}
    for row in rows:
        item = current.get(row.item_id)
        if item is not None and untouched(row.entry):
            report.untouched += 1  # nobody filled it in: never a change, never a conflict
            continue
        said = disposition(row.entry) if item is not None else None
        if item is not None and said == held(item):
            report.unchanged += 1  # what the store holds: nothing to do, and no conflict with another's row
            continue
        if item is not None:
            if said not in before[row.item_id] and row.item_id not in looked:
                before[row.item_id] |= earlier(conn, item)
                looked.add(row.item_id)
            if said in before[row.item_id]:
                report.superseded += 1  # as issued; the item has moved on since (a colleague, the web)
                continue
        reason = problem(row.entry, item)
        first = seen.get(row.item_id)
        if reason is None and first is not None and (first.state, first.result, first.note) != \
                (row.state, row.result, row.note):
            reason = f"问题件 {row.item_id} 再次出现，且处理与首次不同（首次出现在 {first.where}）"
        if reason is not None:
            report.rejected.append({"file": row.file, "row": row.line, "item_id": mask_text(row.item_id[:40], ITEM_ID),
                                    "reason": reason})
            continue
        seen.setdefault(row.item_id, row)
        if item is None:
            raise RuntimeError("problem() let through a row whose item is not in the store (bug)")
        done = apply(conn, row.entry, item, who, at, today, f"{row.file} sha256:{row.sha[:16]} row {row.line}", review)
        setattr(report, done, getattr(report, done) + 1)
    return report


def _items(conn: sa.Connection, ids: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for i in range(0, len(ids), CHUNK):
        for record in conn.execute(sa.select(items).where(items.c.item_id.in_(ids[i:i + CHUNK]))).mappings():
            out[record["item_id"]] = {k: python_value(v) for k, v in record.items()}
    return out


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def rejects_frame(report: ImportReport) -> pd.DataFrame:
    return pd.DataFrame(report.rejected, columns=["file", "row", "item_id", "reason"])


def import_files(db: str | None, config_path: str | None, paths: list[str], who: str | None = None,
                 notify=None) -> ImportReport:
    """`custdq cases import`: the worklists read back into an existing store in one transaction,
    under the writer lock (`store.lock_wait_seconds`). The rejected rows are the report's
    (`rejects_frame`; `--rejects-out` writes them with pipeline.outputs.write_rejects)."""
    from pipeline import store
    from pipeline.store.lock import store_lock

    engine, cfg = store.existing(db, config_path)
    with store_lock(engine, "cases import", None, cfg.lock_wait, notify=notify):
        with engine.begin() as conn:
            report = import_worklists(conn, list(paths), who, review=frozenset(cfg.review.results))
    return report

