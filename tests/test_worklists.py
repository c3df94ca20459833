"""worklists/<branch>.xlsx (SPEC 5), opened with openpyxl as a person's Excel would read them."""

from __future__ import annotations

import openpyxl
from openpyxl.utils import get_column_letter

from pipeline.outputs.worklists import COLUMNS, RESULTS, STATES
from tests.helpers import read_outputs, row, write_csv


LAST = get_column_letter(len(COLUMNS))  # the last column's letter (处理说明)


def night(invoke, tmp_path, rows, name="e.csv"):
    out = tmp_path / "out"
    result = invoke("run", str(write_csv(tmp_path / name, rows)), "--business-date", "2026-11-20", "--out", str(out),
                    "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_one_workbook_per_branch_with_the_spec_columns(invoke, tmp_path):
    out = night(invoke, tmp_path, [row(applicant_phone="", branch="广东分公司"),
                                   row(policy_no="P2", applicant_address="", branch="北京分公司", receipt_date="2026-11-10"),
                                   row(policy_no="P3", applicant_phone="", branch="北京分公司", receipt_date="")])
    items, _, manifest = read_outputs(out)
    files = sorted(p.name for p in (out / "worklists").iterdir())
    assert files == ["北京分公司.xlsx", "广东分公司.xlsx"] and manifest["worklists"]["files"] == 2
    ws = openpyxl.load_workbook(out / "worklists" / "北京分公司.xlsx").active
    headers = [c.value for c in ws[1]]
    assert headers == [c[0] for c in COLUMNS] and headers[0] == "问题件编号"
    assert headers[-3:] == ["处理状态", "处理结果", "处理说明"]
    assert ws.freeze_panes == "B2" and ws.auto_filter.ref == f"A1:{LAST}{ws.max_row}" and LAST == "Y"
    ids = [ws.cell(r, 1).value for r in range(2, ws.max_row + 1)]
    assert sorted(ids) == sorted(items.loc[items["branch"] == "北京分公司", "item_id"])
    due = [ws.cell(r, headers.index("处理期限") + 1).value for r in range(2, ws.max_row + 1)]
    assert due == sorted(due) and due[0] == "2026-11-25"  # P2: cooling-off ends before the channel deadline
    choices = {str(dv.sqref).split(":")[0][0]: dv.formula1 for dv in ws.data_validations.dataValidation}
    assert choices == {"W": '"' + ",".join(STATES) + '"', "X": '"' + ",".join(RESULTS) + '"'}
    assert headers[headers.index("处理状态") - 1:] == ["线索群人数", "处理状态", "处理结果", "处理说明"]
    assert {ws.cell(r, headers.index("处理状态") + 1).value for r in range(2, ws.max_row + 1)} == {"未处理"}


def test_no_cell_is_a_formula_and_personal_data_is_masked(invoke, tmp_path):
    hostile = "=HYPERLINK(\"http://x\",\"点我\")"
    out = night(invoke, tmp_path, [row(applicant_name=hostile, bank_account_holder="@SUM(1)", applicant_phone="13912340000",
                                       applicant_id_no="+123", branch="广东分公司")])
    ws = openpyxl.load_workbook(out / "worklists" / "广东分公司.xlsx").active
    cells = [c for r in ws.iter_rows(min_row=2) for c in r if c.value is not None]
    assert cells and all(c.data_type == "s" for c in cells)  # text cells only: never 'f' (formula)
    text = " ".join(str(c.value) for c in cells)
    assert "13912340000" not in text and "HYPERLINK" not in text and "@SUM" not in text


def test_a_hostile_branch_name_stays_inside_worklists(invoke, tmp_path):
    out = night(invoke, tmp_path, [row(applicant_phone="", branch="../../evil"), row(policy_no="P2", applicant_phone="",
                                                                                    branch="a/b\\c:d")])
    names = sorted(p.name for p in (out / "worklists").iterdir())
    assert names == ["a_b_c_d.xlsx", "evil.xlsx"]
    everywhere = [p for p in tmp_path.rglob("*.xlsx")]
    assert all(p.parent == out / "worklists" for p in everywhere) and len(everywhere) == 2


def test_a_rerun_replaces_the_folder(invoke, tmp_path):
    night(invoke, tmp_path, [row(applicant_phone="", branch="广东分公司"), row(policy_no="P2", applicant_phone="", branch="北京分公司")])
    out = night(invoke, tmp_path, [row(applicant_phone="", branch="广东分公司")], name="e2.csv")
    assert sorted(p.name for p in (out / "worklists").iterdir()) == ["广东分公司.xlsx"]
    assert not [p for p in out.iterdir() if p.name.startswith(".worklists")]


HOSTILE = ["<r><t>x</t></r>", "a&b<c>d]]>", " leading", "trailing ", "tab\tin", "line\nbreak", "=1+1", "+86 139",
           "-1", "@A1", "emoji 😀", "张三", '"quoted"', "&amp;", "<![CDATA[x]]>", "x" * 32767]


def test_cells_read_back_exactly_as_written(tmp_path):
    """Every kind of text a field may hold comes back from openpyxl as the same string, in a
    string cell; XML-looking values (XlsxWriter passes '<r>...</r>' through as rich text) stay text."""
    import pandas as pd

    from pipeline.outputs.worklists import _write_cells

    cells = pd.DataFrame({h: [HOSTILE[(i + j) % len(HOSTILE)] for i in range(40)] for j, (h, _, _) in enumerate(COLUMNS)})
    cells.iloc[3, 5] = ""
    path = tmp_path / "w.xlsx"
    _write_cells(path, cells)
    ws = openpyxl.load_workbook(path).active
    assert ws.max_row == 41 and ws.auto_filter.ref == f"A1:{LAST}41" and ws.dimensions == f"A1:{LAST}41"
    for r in range(40):
        for j in range(len(COLUMNS)):
            cell = ws.cell(r + 2, j + 1)
            expected = cells.iat[r, j]
            assert (cell.value or "") == expected, (r, j, cell.value, expected)
            assert cell.data_type == "s"  # an empty value too: a text cell, as XlsxWriter wrote it


def test_control_characters_and_excel_escapes_are_escaped_as_excel_expects(tmp_path):
    import pandas as pd

    from pipeline.outputs.worklists import _write_cells

    cells = pd.DataFrame({h: ["ctl\x01x", "_x0041_"] for h, _, _ in COLUMNS})
    _write_cells(tmp_path / "w.xlsx", cells)
    ws = openpyxl.load_workbook(tmp_path / "w.xlsx").active  # openpyxl shows Excel's escapes as stored
    assert [ws.cell(r, 1).value for r in (2, 3)] == ["ctl_x0001_x", "_x005F_x0041_"]


def test_a_text_longer_than_an_excel_cell_is_cut_to_32767(tmp_path):
    """A 1 MB policy number (tests/corpus has one) must not make Excel repair the workbook."""
    import pandas as pd

    from pipeline.outputs.worklists import _write_cells

    cells = pd.DataFrame({h: ["保" * 40000, "x" * 1_000_000, "😀" * 20000] for h, _, _ in COLUMNS})
    _write_cells(tmp_path / "w.xlsx", cells)
    ws = openpyxl.load_workbook(tmp_path / "w.xlsx").active
    assert [ws.cell(r, 2).value for r in (2, 3)] == ["保" * 32767, "x" * 32767]
    assert ws.cell(4, 2).value == "😀" * 16383  # two UTF-16 units each: 32766, no half character


def test_a_sheet_written_in_slices_reads_back_whole(tmp_path, monkeypatch):
    """The rows go into the sheet SLICE items at a time (shrunk here to 7): row numbers run on
    across the slices and every cell reads back as written."""
    import pandas as pd

    from pipeline.outputs import worklists

    monkeypatch.setattr(worklists, "SLICE", 7)
    short = HOSTILE[:-1]  # the 32767-character one would be cut with a prefix
    cells = pd.DataFrame({h: [f"{j}-{i}-{short[(i + j) % len(short)]}" for i in range(40)]
                          for j, (h, _, _) in enumerate(COLUMNS)})
    worklists._write_cells(tmp_path / "w.xlsx", cells)
    ws = openpyxl.load_workbook(tmp_path / "w.xlsx").active
    assert ws.max_row == 41 and ws.dimensions == f"A1:{LAST}41"
    got = [[c.value for c in r] for r in ws.iter_rows(min_row=2)]
    assert got == cells.values.tolist()


def test_a_branch_with_more_items_than_a_sheet_holds_gets_more_files(invoke, tmp_path, monkeypatch):
    """Excel's 1,048,576 rows a sheet (shrunk here to 2 items a file): nothing is cut off."""
    from pipeline.outputs import worklists

    monkeypatch.setattr(worklists, "ROWS_PER_FILE", 2)
    out = night(invoke, tmp_path, [row(policy_no=f"P{i}", applicant_phone="", branch="广东分公司") for i in range(5)])
    items, _, manifest = read_outputs(out)
    names = sorted(p.name for p in (out / "worklists").iterdir())
    assert names == ["广东分公司-2.xlsx", "广东分公司-3.xlsx", "广东分公司.xlsx"]
    assert manifest["worklists"]["files"] == 3 and manifest["worklists"]["branches"] == 1
    ids = [c.value for name in names for c in openpyxl.load_workbook(out / "worklists" / name).active["A"][1:]]
    assert sorted(ids) == sorted(items["item_id"]) and len(ids) == 5


def sheet_rows(path) -> list[dict]:
    ws = openpyxl.load_workbook(path).active
    headers = [c.value for c in ws[1]]
    return [dict(zip(headers, (c.value or "" for c in r))) for r in ws.iter_rows(min_row=2)]


def test_roles_and_rules_read_in_chinese_beside_the_codes(invoke, tmp_path):
    """角色 in Chinese; 规则代码 keeps the code (cases import checks it) and 规则名称 beside it
    shows the catalogue's title; the store's values stay English codes."""
    from checks.catalogue import RULES

    out = night(invoke, tmp_path, [row(applicant_phone=""), row(policy_no="P2", insured_sex="9"),
                                   row(policy_no="P3", insured_phone="13800138000")])
    items, _, _ = read_outputs(out)
    assert set(items["role"]) <= {"applicant", "insured", "policy"}  # items.csv keeps the codes
    rows = sheet_rows(out / "worklists" / "广东分公司.xlsx")
    headers = [c[0] for c in COLUMNS]
    assert headers[headers.index("规则代码") + 1] == "规则名称"
    assert {r["角色"] for r in rows} <= {"投保人", "被保险人", "保单"} and "被保险人" in {r["角色"] for r in rows}
    for r in rows:
        assert r["规则代码"] in RULES and r["规则名称"] == RULES[r["规则代码"]].title
    assert {r["规则代码"] for r in rows} >= {"MISSING_FIELD", "PHONE_PLACEHOLDER"}
    assert {r["状态"] for r in rows} == {"新增"} and {r["重开原因"] for r in rows} == {""}


def test_a_reopened_item_says_so_and_why(invoke, tmp_path):
    """The night's frame may carry `reopen_reason`: set, 状态 reads 重新打开 and 重开原因 shows it;
    missing or null, 状态 is 新增/未结 as before - with or without the column."""
    import pandas as pd

    from pipeline.outputs.worklists import write_worklists

    out = night(invoke, tmp_path, [row(applicant_phone=""), row(policy_no="P2", insured_sex="9"),
                                   row(policy_no="P3", bank_account="123")])
    listing = pd.read_parquet(out / "items.parquet")
    assert len(listing) == 3
    listing["status"] = ["open", "open", "new"]
    reason = "2026-11-21 已更正，2026-11-23 仍触发"
    with_column = listing.assign(reopen_reason=[reason, None, float("nan")])
    by_id = {r["问题件编号"]: r for r in sheet_rows(
        tmp_path / "a" / "worklists" / write_worklists(with_column, tmp_path / "a")["广东分公司"][0])}
    ids = listing["item_id"].tolist()
    assert (by_id[ids[0]]["状态"], by_id[ids[0]]["重开原因"]) == ("重新打开", reason)
    assert (by_id[ids[1]]["状态"], by_id[ids[1]]["重开原因"]) == ("未结", "")
    assert (by_id[ids[2]]["状态"], by_id[ids[2]]["重开原因"]) == ("新增", "")
    without = {r["问题件编号"]: r for r in sheet_rows(
        tmp_path / "b" / "worklists" / write_worklists(listing, tmp_path / "b")["广东分公司"][0])}
    assert [without[i]["状态"] for i in ids] == ["未结", "未结", "新增"]
    assert {r["重开原因"] for r in without.values()} == {""}


# CT_Worksheet's sequence (ECMA-376 Part 1, 18.3.1.99): Excel and LibreOffice expect this order
CT_WORKSHEET = ["sheetPr", "dimension", "sheetViews", "sheetFormatPr", "cols", "sheetData", "sheetCalcPr",
                "sheetProtection", "protectedRanges", "scenarios", "autoFilter", "sortState", "dataConsolidate",
                "customSheetViews", "mergeCells", "phoneticPr", "conditionalFormatting", "dataValidations",
                "hyperlinks", "printOptions", "pageMargins", "pageSetup", "headerFooter", "rowBreaks", "colBreaks",
                "customProperties", "cellWatches", "ignoredErrors", "smartTags", "drawing", "legacyDrawing",
                "legacyDrawingHF", "drawingHF", "picture", "oleObjects", "controls", "webPublishItems", "tableParts",
                "extLst"]


def test_a_worklist_prints_a4_landscape_one_page_wide_with_titles_and_footer(invoke, tmp_path):
    """Issue 15: printed, every column on one page wide (as many pages tall as it takes), A4
    landscape, the header row on every page, a footer with branch, business date and page n of N;
    the print settings survive the rows spliced into <sheetData>, in CT_Worksheet's order."""
    import zipfile
    import xml.etree.ElementTree as ET

    out = night(invoke, tmp_path, [row(policy_no=f"P{i}", applicant_phone="", branch="R&D 分公司") for i in range(30)])
    path = out / "worklists" / "R&D 分公司.xlsx"
    ws = openpyxl.load_workbook(path).active
    setup = ws.page_setup
    assert (setup.orientation, setup.paperSize, setup.fitToWidth, setup.fitToHeight) == ("landscape", 9, 1, 0)
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.print_title_rows == "$1:$1"
    assert ws.print_options.gridLines
    assert ws.oddFooter.left.text == "R＆D 分公司"  # '&' would start a footer control code
    assert ws.oddFooter.center.text == "第 &P 页 / 共 &N 页" and ws.oddFooter.right.text == "业务日期 2026-11-20"
    assert ws.oddHeader.center.text == "问题件清单（R＆D 分公司，业务日期 2026-11-20）"
    assert ws.max_row == 31 and ws.cell(31, 1).value.startswith("DQ")  # the rows are all there too
    with zipfile.ZipFile(path) as z:
        sheet = ET.fromstring(z.read("xl/worksheets/sheet1.xml"))
        names = ET.fromstring(z.read("xl/workbook.xml")).find("{*}definedNames")
    children = [child.tag.split("}")[1] for child in sheet]
    assert {"pageSetup", "printOptions", "headerFooter", "pageMargins", "sheetData"} <= set(children)
    assert children == sorted(children, key=CT_WORKSHEET.index) and len(set(children)) == len(children)
    titles = [n.text for n in names if n.get("name") == "_xlnm.Print_Titles"]
    assert titles == ["问题件清单!$1:$1"]


def test_a_branchs_worklist_masks_other_branches_policy_numbers_in_shared_evidence(invoke, tmp_path):
    """Issue 27 (review): one phone, two customers, two branches. Each branch's worklist lists
    the other branch's record in the evidence with its policy number masked, as the web app
    shows it; items.csv (the operators' whole list) keeps both."""
    from tests.helpers import policy
    out = night(invoke, tmp_path, [policy("PGD30", 30, applicant_phone="13912340000", branch="广东分公司"),
                                   policy("PBJ31", 31, applicant_phone="13912340000", branch="北京分公司")])
    items, _, _ = read_outputs(out)
    shared = items[items["rule_code"] == "PHONE_SHARED"]
    assert set(shared["policy_no"]) == {"PGD30", "PBJ31"}
    assert "保单PBJ31 " in shared.loc[shared["policy_no"] == "PGD30", "evidence"].item()
    for branch, own, other in (("广东分公司", "PGD30", "PBJ31"), ("北京分公司", "PBJ31", "PGD30")):
        ws = openpyxl.load_workbook(out / "worklists" / f"{branch}.xlsx").active
        headers = [c.value for c in ws[1]]
        cells = [[c.value for c in r] for r in ws.iter_rows(min_row=2)]
        evidence = [r[headers.index("核查依据")] for r in cells if r[headers.index("规则代码")] == "PHONE_SHARED"]
        assert evidence and all(other not in e and f"保单{other[0]}***{other[-1]} " in e for e in evidence), evidence
        assert own in [r[headers.index("保单号")] for r in cells]
