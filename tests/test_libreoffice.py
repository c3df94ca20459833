"""Worklists through LibreOffice Calc (issue 15), the office suite of the teams on Linux and a
stand-in for the other suites that are not Excel (WPS): a real night's worklist printed to PDF
the way Calc prints it (A4 landscape, every column on one page wide, the header row on every
page, the footer with branch, business date and page number), and a filled-in worklist
re-saved by Calc (shared strings, its own cell types, formulas' results stored) imports exactly
as the original.

Runs LibreOffice headless (`soffice --convert-to`) with a private profile per test and a
timeout; reads PDFs with poppler's pdfinfo/pdftotext. Skipped, saying why, only when those
programs are not installed (.ci/run installs libreoffice-calc-nogui and poppler-utils).
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from pipeline import store
from pipeline.cases import imports
from pipeline.store.schema import item_events, items
from tests.helpers import row, write_csv
from tests.helpers import fill, item_of, store_rows

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
pytestmark = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not installed: "
                                "apt-get install libreoffice-calc-nogui poppler-utils")
DATE = "2026-11-20"
BRANCH = "广东分公司"
TIMEOUT = 240  # seconds for one conversion (a first start with a fresh profile takes a few)


def soffice(tmp_path: Path, source: Path, target: str, outdir: Path) -> Path:
    """`soffice --headless --convert-to TARGET` of one file into `outdir`; returns the new file."""
    outdir.mkdir(parents=True, exist_ok=True)
    profile = tmp_path / "lo-profile"  # private: parallel runs never share a profile (or its lock)
    done = subprocess.run([SOFFICE, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
                           "--convert-to", target, "--outdir", str(outdir), str(source)],
                          capture_output=True, text=True, timeout=TIMEOUT)
    made = outdir / (source.stem + "." + target.split(":")[0])
    assert done.returncode == 0 and made.exists(), (done.stdout, done.stderr)
    return made


def run_night(invoke, tmp_path: Path, rows: list[dict]) -> tuple[Path, str]:
    """A real `custdq run` of `rows` into tmp_path/out with its store in tmp_path/store."""
    db = f"sqlite:///{tmp_path / 'store' / 'cases.db'}"
    result = invoke("run", str(write_csv(tmp_path / "extract.csv", rows)), "--business-date", DATE,
                    "--out", str(tmp_path / "out"), "--quiet", "--db", db)
    assert result.exit_code == 0, result.output
    return tmp_path / "out", db


def faulty(n: int) -> list[dict]:
    """n policies, each with one or two findings (missing phone, placeholder phone, bad sex code)."""
    return [row(policy_no=f"P{i:04d}", applicant_phone=["", "13800138000", "13912345678"][i % 3],
                insured_sex="9" if i % 5 == 0 else "女") for i in range(n)]


@pytest.mark.skipif(shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None,
                    reason="poppler-utils (pdftotext, pdfinfo) is not installed")
def test_a_printed_worklist_is_a4_landscape_one_page_wide_with_header_and_footer(invoke, tmp_path):
    out, _ = run_night(invoke, tmp_path, faulty(300))
    worklist = out / "worklists" / f"{BRANCH}.xlsx"
    pdf = soffice(tmp_path, worklist, "pdf", tmp_path / "pdf")
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    width, height = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info).groups())
    assert (round(width), round(height)) == (842, 595)  # A4 (297 x 210 mm), landscape
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages >= 2  # 260 items: more than one page tall, and only one page wide
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout.split("\f")[:pages]
    assert len(text) == pages
    for n, page in enumerate(text, start=1):
        header_line = next(line for line in page.splitlines() if "问题件编号" in line)
        assert "处理说明" in header_line and "规则名称" in header_line  # the header row, first to last column
        assert f"问题件清单（{BRANCH}，业务日期 {DATE}）" in page  # the page header
        footer = page.strip().splitlines()[-1]
        assert BRANCH in footer and f"业务日期 {DATE}" in footer, footer
        assert re.search(rf"第\s*{n}\s*页\s*/\s*共\s*{pages}\s*页", footer), footer
    assert sum(page.count("DQ") for page in text) == 260  # every item printed once


def test_a_worklist_re_saved_by_calc_imports_exactly_as_the_original(invoke, tmp_path):
    """A filled worklist (openpyxl, as Excel users' files arrive) and the same file re-saved by
    Calc, imported into two copies of one store: the same report, the same items, the same events;
    a formula typed into a cell reads as empty in both, though Calc stored its result."""
    out, db = run_night(invoke, tmp_path, faulty(12) + [row(policy_no="Z1", bank_account="123")])
    found = pd.read_csv(out / "items.csv", dtype=str, keep_default_na=False)
    choices = {
        item_of(found, "P0000", "MISSING_FIELD"): ("已完成", "已更正", "已补录电话 139 1234 5678"),
        item_of(found, "P0001", "PHONE_PLACEHOLDER"): ("已完成", "核实无误", "  客户确认\n号码为本人所有 "),
        item_of(found, "Z1", "BANK_ACCOUNT_INVALID"): ("已完成", "虚假资料", None),
        item_of(found, "P0000", "FIELD_INVALID"): ("处理中", "无法联系", "=HYPERLINK(\"http://x\")"),
        item_of(found, "P0003", "MISSING_FIELD"): ("已完成", None, "12345"),  # rejected: no 处理结果
        item_of(found, "P0004", "PHONE_PLACEHOLDER"): ("搞定", None, None),  # rejected: not a choice
        item_of(found, "P0005", "FIELD_INVALID"): ("处理中", None, "0012"),
        item_of(found, "P0006", "MISSING_FIELD"): ("已完成", '=IF(1,"已更正")', None),  # rejected: a formula
    }
    (original,) = fill(out, choices, tmp_path / "filled")
    resaved = soffice(tmp_path, original, "xlsx:Calc MS Excel 2007 XML", tmp_path / "calc")  # no shell: no quotes
    assert resaved.name == original.name and resaved.read_bytes() != original.read_bytes()
    with zipfile.ZipFile(resaved) as z:
        assert "xl/sharedStrings.xml" in z.namelist()  # Calc writes shared strings, not inline ones
    cached = [c.value for r in load_workbook(resaved, data_only=True).active.iter_rows() for c in r]
    assert "http://x" in cached and cached.count("已更正") == 2  # Calc stored the formulas' results

    stores = {}
    for name, path in (("excel", original), ("calc", resaved)):
        shutil.copytree(tmp_path / "store", tmp_path / f"store-{name}")  # two identical stores
        url = f"sqlite:///{tmp_path / f'store-{name}' / 'cases.db'}"
        with store.open_store(url).begin() as conn:
            report = imports.import_worklists(conn, [str(path)], "审核员",
                                              dt.datetime(2026, 11, 21, 9, tzinfo=dt.timezone(dt.timedelta(hours=8))))
        stores[name] = (url, report)
    (a_url, a), (b_url, b) = stores["excel"], stores["calc"]
    assert a.applied == 5 and len(a.rejected) == 3 and a.untouched == len(found) - 8
    no_result, not_a_choice = "处理状态为已完成，但未填写处理结果", "处理状态「搞定」不在可选项中（未处理 / 处理中 / 已完成）"
    assert sorted(r["reason"] for r in b.rejected) == sorted([no_result, no_result, not_a_choice])
    assert [f["rows"] for f in a.files] == [f["rows"] for f in b.files] == [len(found)]
    assert {**a.to_dict(), "files": None} == {**b.to_dict(), "files": None}
    assert a.rejected == b.rejected
    one, other = (store_rows(u, items).sort_values("item_id").reset_index(drop=True) for u in (a_url, b_url))
    pd.testing.assert_frame_equal(one, other)
    assert one.set_index("item_id").loc[item_of(found, "P0001", "PHONE_PLACEHOLDER"), "note"] == \
        "客户确认\n号码为本人所有"
    events = [store_rows(u, item_events).drop(columns=["id", "source"], errors="ignore")
              .sort_values(["item_id", "action"]).reset_index(drop=True) for u in (a_url, b_url)]
    pd.testing.assert_frame_equal(*events)
    assert (store_rows(b_url, item_events)["source"].str.contains(" row ")).any()


def test_a_row_waiting_for_its_review_is_read_only_in_calc(invoke, tmp_path):
    """An item settled 核实无误 waits in 待复核 (review.results); the next night's worklist shows
    its 处理状态, 处理结果 and 处理说明 read-only: the sheet protected, those three cells locked,
    every other row's fill-in cells and every data cell editable. Re-saved by Calc, the file
    keeps exactly that: Calc read the protection as Excel does."""
    rows = faulty(6)
    out, db = run_night(invoke, tmp_path, rows)
    found = pd.read_csv(out / "items.csv", dtype=str, keep_default_na=False)
    waiting = item_of(found, "P0001", "PHONE_PLACEHOLDER")
    filled = fill(out, {waiting: ("已完成", "核实无误", "客户确认")}, tmp_path / "filled")
    assert invoke("cases", "import", *map(str, filled), "--by", "张三", "--db", db).exit_code == 0
    again = invoke("run", str(write_csv(tmp_path / "extract2.csv", rows)), "--business-date", "2026-11-23",
                   "--out", str(tmp_path / "out2"), "--quiet", "--db", db)
    assert again.exit_code == 0, again.output
    original = tmp_path / "out2" / "worklists" / f"{BRANCH}.xlsx"
    resaved = soffice(tmp_path, original, "xlsx:Calc MS Excel 2007 XML", tmp_path / "calc")
    for path in (original, resaved):
        sheet = load_workbook(path).active
        assert sheet.protection.sheet and not sheet.protection.autoFilter, path  # filtering stays allowed
        cells = locks(path, sheet)
        header = [c.value for c in sheet[1]]
        fill_in = [header.index(t) for t in ("处理状态", "处理结果", "处理说明")]
        locked = {row[0][0]: [row[c][1] for c in fill_in] for row in cells[1:]}
        assert locked.pop(waiting) == [True, True, True], path
        assert locked and all(flags == [False, False, False] for flags in locked.values()), path
        assert not any(flag for row in cells[1:] for c, (_, flag) in enumerate(row) if c not in fill_in), path
        assert all(flag for _, flag in cells[0]), path  # the headers the import reads by name


def locks(path: Path, sheet) -> list[list[tuple[object, bool]]]:
    """(value, locked) of every cell of the sheet's rows, as Excel and Calc read them: a cell the
    file writes by its own style, a cell it leaves out (Calc leaves empty ones out) by its
    column's (openpyxl's read-only rows give those as EmptyCell)."""
    from openpyxl.cell.read_only import EmptyCell

    columns = list(sheet.column_dimensions.values())

    def column_locked(n: int) -> bool:
        return next(d.protection.locked for d in columns if d.min <= n <= d.max)

    book = load_workbook(path, read_only=True)
    try:
        return [[(None, column_locked(n)) if isinstance(c, EmptyCell) else (c.value, bool(c.protection.locked))
                 for n, c in enumerate(row, start=1)]
                for row in book.active.iter_rows(max_col=sheet.max_column)]
    finally:
        book.close()
