"""Worklists as an attack surface (issue 8 item 4): a worklist read back after its item ids or
choices were tampered with changes nothing in the case store and says why, row by row. Each
tampering is applied to a fresh copy of a real night's worklist (openpyxl, as a person or a
script would), imported into a real SQLite store, and the store's items and events compared
with their state before."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from pipeline.store.schema import item_events, items
from tests.helpers import approve_all, row, write_csv
from tests.helpers import store_rows

DATE = "2026-11-20"
ROWS = [row(policy_no="T1", applicant_phone=""), row(policy_no="T2", bank_account="123"),
        row(policy_no="T3", insured_sex="9")]


@pytest.fixture(scope="module")
def worklist(tmp_path_factory):
    """One night over three faulty policies: (its store folder, its worklist, item ids)."""
    from click.testing import CliRunner

    from pipeline.cli import cli

    folder = tmp_path_factory.mktemp("tamper")
    db = f"sqlite:///{folder / 'store' / 'cases.db'}"
    extract = write_csv(folder / "night.csv", ROWS)
    result = CliRunner().invoke(cli, ["run", str(extract), "--business-date", DATE, "--out", str(folder / "out"),
                                      "--quiet", "--db", db],
                                env={"CUSTDQ_HASH_KEY": "custdq-test-key-0123456789abcdef0123456789"})
    assert result.exit_code == 0, result.output
    (path,) = (folder / "out" / "worklists").glob("*.xlsx")
    ids = [c.value for c in load_workbook(path).active["A"][1:]]
    assert len(ids) == 3
    return folder / "store", path, ids


@pytest.fixture
def db(worklist, tmp_path) -> str:
    """A copy of the night's store for one test: what one tampering does never reaches another."""
    shutil.copytree(worklist[0], tmp_path / "store")
    return f"sqlite:///{tmp_path / 'store' / 'cases.db'}"


def snapshot(db: str) -> tuple[pd.DataFrame, int]:
    return store_rows(db, items).sort_values("item_id").reset_index(drop=True), len(store_rows(db, item_events))


def tampered(path: Path, target: Path, edit) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, target)
    book = load_workbook(target)
    sheet = book.active
    headers = [c.value for c in sheet[1]]
    edit(sheet, {h: i + 1 for i, h in enumerate(headers)})
    book.save(target)
    return target


def set_row(sheet, col, r: int, **values) -> None:
    for header, value in values.items():
        sheet.cell(r, col[header]).value = value  # (cell(r, c, None) would leave the old value)


# each: (name, edit of the sheet, what the rejection says); row 2 is the first item
TAMPERINGS = [
    ("unknown item id", lambda s, c: set_row(s, c, 2, 问题件编号="DQ" + "0" * 16, 处理状态="已完成", 处理结果="核实无误"),
     "问题件编号 DQ0000000000000000 不存在"),
    ("item id made a formula", lambda s, c: set_row(s, c, 2, 问题件编号='=HYPERLINK("http://evil.example","x")',
                                                   处理状态="已完成", 处理结果="已更正"),
     "问题件编号为空"),  # a formula is never evaluated: its cell reads as empty
    ("item id lower-cased", lambda s, c: set_row(s, c, 2, 问题件编号=s.cell(2, 1).value.lower(), 处理状态="已完成",
                                                处理结果="已更正"), "不存在（不是本案件库中的问题件）"),
    ("item id emptied", lambda s, c: set_row(s, c, 2, 问题件编号=None, 处理状态="已完成", 处理结果="已更正"),
     "问题件编号为空"),
    ("policy number edited", lambda s, c: set_row(s, c, 2, 保单号="T9", 处理状态="已完成", 处理结果="已更正"),
     "保单号已被修改，与问题件 DQ"),
    ("rule code edited", lambda s, c: set_row(s, c, 2, 规则代码="FIELD_INVALID", 处理状态="已完成", 处理结果="已更正"),
     "规则代码已被修改，与问题件 DQ"),
    ("state not a choice", lambda s, c: set_row(s, c, 2, 处理状态="完成", 处理结果="已更正"),
     "处理状态「完成」不在可选项中（未处理 / 处理中 / 已完成）"),
    ("state a number", lambda s, c: set_row(s, c, 2, 处理状态=1, 处理结果="已更正"),
     "处理状态「1」不在可选项中（未处理 / 处理中 / 已完成）"),
    ("result not a choice", lambda s, c: set_row(s, c, 2, 处理状态="已完成", 处理结果="已核实"),
     "处理结果「已核实」不在可选项中（已更正 / 核实无误 / 虚假资料 / 无法联系）"),
    ("result a formula", lambda s, c: set_row(s, c, 2, 处理状态="已完成", 处理结果='=IF(1,"已更正")'),
     "处理状态为已完成，但未填写处理结果"),  # a formula is never evaluated: its cell reads as empty
    ("result without a state", lambda s, c: set_row(s, c, 2, 处理结果="虚假资料"),
     "填写了处理结果，但处理状态为未处理"),
    ("settled while in progress", lambda s, c: set_row(s, c, 2, 处理状态="处理中", 处理结果="虚假资料"),
     "处理结果「虚假资料」会办结问题件，只能在处理状态为已完成时填写"),
    ("one item twice, two answers", lambda s, c: (set_row(s, c, 2, 处理状态="已完成", 处理结果="已更正"),
                                               s.append([s.cell(2, i).value for i in range(1, s.max_column + 1)]),
                                               set_row(s, c, s.max_row, 处理结果="虚假资料")),
     "再次出现，且处理与首次不同（首次出现在 广东分公司.xlsx 第 2 行）"),
]


@pytest.mark.parametrize("name,edit,reason", TAMPERINGS, ids=[t[0] for t in TAMPERINGS])
def test_a_tampered_row_changes_nothing_and_says_why(invoke, worklist, db, tmp_path, name, edit, reason):
    _, path, _ = worklist
    before = snapshot(db)
    target = tampered(path, tmp_path / "back" / path.name, edit)
    result = invoke("cases", "import", str(target), "--db", db, "--rejects", str(tmp_path / "rejects.csv"))
    assert result.exit_code == 1, result.output  # a rejected row: exit 1, the others applied
    assert "Traceback" not in result.output
    assert reason in result.output, result.output
    rejects = pd.read_csv(tmp_path / "rejects.csv", dtype=str)
    assert rejects["reason"].str.contains(reason, regex=False).any(), rejects
    assert rejects["row"].notna().all() and (rejects["file"] == path.name).all()
    if name == "one item twice, two answers":  # the first row is honest: it alone is applied
        assert "1 applied" in result.output
        after, events = snapshot(db)
        assert events == before[1] + 1
        return
    assert "0 applied" in result.output, result.output
    after = snapshot(db)
    pd.testing.assert_frame_equal(after[0], before[0])
    assert after[1] == before[1]


def test_a_settled_item_is_not_moved_backwards(invoke, tmp_path):
    """Once settled (虚假资料), a worklist that sets it back to 处理中 is refused; one that says
    未处理 and nothing else is the worklist as issued (issue 28): no change, no rejection."""
    db = f"sqlite:///{tmp_path / 'store' / 'cases.db'}"
    extract = write_csv(tmp_path / "night.csv", ROWS[:1])
    assert invoke("run", str(extract), "--business-date", DATE, "--out", str(tmp_path / "out"), "--quiet",
                  "--db", db).exit_code == 0
    (path,) = (tmp_path / "out" / "worklists").glob("*.xlsx")
    settle = tampered(path, tmp_path / "a" / path.name, lambda s, c: set_row(s, c, 2, 处理状态="已完成", 处理结果="虚假资料"))
    assert "1 applied" in invoke("cases", "import", str(settle), "--db", db).output
    assert approve_all(db) == 1  # reviewed and closed
    before = snapshot(db)
    for state in ("处理中", "未处理"):
        back = tampered(path, tmp_path / state / path.name, lambda s, c, state=state: set_row(s, c, 2, 处理状态=state, 处理结果=None))
        result = invoke("cases", "import", str(back), "--db", db)
        assert "0 applied" in result.output, result.output
        if state == "处理中":
            assert result.exit_code == 1 and "办结（虚假资料）：此行会把它重新打开" in result.output, result.output
        else:
            assert result.exit_code == 0 and "1 not filled in" in result.output, result.output
        after = snapshot(db)
        pd.testing.assert_frame_equal(after[0], before[0])
        assert after[1] == before[1]


def test_a_worklist_without_its_id_column_is_refused_whole(invoke, worklist, db, tmp_path):
    _, path, _ = worklist
    before = snapshot(db)

    def rename(sheet, col):
        sheet.cell(1, col["问题件编号"], "编号")

    target = tampered(path, tmp_path / "back" / path.name, rename)
    result = invoke("cases", "import", str(target), "--db", db)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and path.name in result.output
    after = snapshot(db)
    pd.testing.assert_frame_equal(after[0], before[0])
    assert after[1] == before[1]
