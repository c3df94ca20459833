"""The worklists against the reference: what the per-value path of commit b023edb (pandas `.map`
per column, Python escaping per value, its sort and grouping) puts in every cell, read back with
openpyxl cell by cell, for hostile items - in Arrow strings and in object columns, in slices of
7 rows, on one thread or two. The reference is written out here, value by value, so a change
of the fast path that changes one cell's text, a row's place or a file's name fails."""

from __future__ import annotations

import hashlib
import re
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest

from checks.catalogue import RULES
from pipeline.outputs import worklists
from pipeline.cases.labels import ROLE_NAMES, SEVERITY_NAMES, STATUS_NAMES

HOSTILE = ["<r><t>x</t></r>", "a&b<c>d]]>", " leading", "trailing ", "\tlead tab", "line\nbreak", "cr\rhere",
           "ff\x0cx", "ctl\x01x\x1f", "_x0041_", "_X00a1_ and _x12G4_", "=1+1", "+86 139", "-1", "@A1", "emoji 😀",
           "张三", '"quoted"', "&amp;", "<![CDATA[x]]>", "\u3000全角\u3000", "\ufffe\uffff", "", "a,b", "\x7f",
           "\u2028", "trail\n", "x" * 40000, "保" * 40000, "😀" * 20000, "a" * 16383 + "&", None]


# --- the reference (b023edb), one value at a time ---------------------------------------------

def ref_texts(values: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.strftime("%Y-%m-%d").fillna("").astype(object)
    if pd.api.types.is_bool_dtype(values):
        return values.map({True: "是", False: "否"}).fillna("").astype(object)
    out = values.astype(object)
    return out.where(out.notna(), "").map(str)


def ref_cells(items: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=items.index)
    if "reopen_reason" in items.columns:
        reasons = items["reopen_reason"].astype(object)
        reopened = reasons.where(reasons.notna(), "").map(str).str.strip().astype(object)
    else:
        reopened = pd.Series("", index=items.index, dtype=object)
    for header, column, _ in worklists.COLUMNS:
        if column == "rule_title":
            values = items["rule_code"].map({code: rule.title for code, rule in RULES.items()})
        elif column == "reopen_reason":
            values = reopened
        elif column not in items.columns:
            values = pd.Series("未处理" if header == "处理状态" else "", index=items.index, dtype=object)
        else:
            values = items[column]
        if column == "work_state":
            values = values.fillna("未处理")
        elif column == "role":
            values = values.map(ROLE_NAMES).fillna(values)
        elif column == "severity":
            values = values.map(SEVERITY_NAMES).fillna(values)
        elif column == "status":
            values = values.map(STATUS_NAMES).fillna(values).astype(object).where(reopened.eq(""), "重新打开")
        elif column == "provisional":
            values = values.map({True: "是", False: "否"})
        out[header] = ref_texts(values).to_numpy(dtype=object)
    return out


def ref_cell(value: str) -> str:
    """What openpyxl reads back of one text: cut to 32767 UTF-16 units, then Excel's escapes."""
    units = value.encode("utf-16-le", "surrogatepass")
    if len(units) > 2 * 32767:
        value = units[: 2 * 32767].decode("utf-16-le", "ignore")
    value = re.sub(r"(_x[0-9a-fA-F]{4}_)", r"_x005F\1", value)
    value = re.sub(r"[\x00-\x08\x0b-\x1f]", lambda m: f"_x{ord(m.group(0)):04X}_", value)
    return re.sub(r"[\ud800-\udfff\ufffe\uffff]", lambda m: f"_x{ord(m.group(0)):04X}_", value)


def ref_files(items: pd.DataFrame) -> dict[str, list[list[str]]]:
    """file name -> its rows of cell texts, as b023edb sorted, grouped and named them."""
    keys = ["due_date", "policy_no", "rule_code", "role"]
    order = items[keys].sort_values(keys, na_position="last", kind="stable").index
    branches = items["branch"].fillna("未知机构").astype(str).reindex(order)
    files, used = {}, set()
    for branch, at in sorted(branches.groupby(branches, sort=False).indices.items()):
        name = worklists.file_name(branch)
        if name.lower() in used:
            name = name[:-5] + "_" + hashlib.sha256(branch.encode("utf-8")).hexdigest()[:6] + ".xlsx"
        used.add(name.lower())
        files[name] = [[ref_cell(v) for v in row] for row in ref_cells(items.loc[order[at]]).itertuples(index=False)]
    return files


# --- hostile items -------------------------------------------------------------------------------

def hostile_items(n: int = 240, dtype="str") -> pd.DataFrame:
    rng = np.random.default_rng(7)

    def pick(values):
        return pd.Series([values[i] for i in rng.integers(0, len(values), n)], dtype=dtype)

    def dates():
        days = pd.Series(pd.to_datetime("2026-11-20") + pd.to_timedelta(rng.integers(0, 4, n), unit="D"))
        return days.where(rng.random(n) > 0.2)  # NaT too

    codes = list(RULES)[:4] + ["NOT_A_RULE", None]
    items = pd.DataFrame({
        "item_id": pd.Series([f"DQ{i:016X}" for i in range(n)], dtype=dtype),
        "business_date": pd.Series(pd.to_datetime(["2026-11-20"] * n)),
        "policy_no": pick(["P1", "P2", "P10", "p1", "保单1", None, *HOSTILE[:6]]),
        "role": pick(["applicant", "insured", "policy", "odd", None, "x" * 40000]),
        "rule_code": pick(codes), "severity": pick(["error", "warning", "fatal", None]),
        "category": pick(HOSTILE), "detail": pick(HOSTILE), "evidence": pick(HOSTILE),
        "branch": pick(["广东分公司", "../../evil", "a/b", "a:b", "R&D 分公司", "CON", None, " ", "北京分公司"]),
        "channel": pick(["个险", "银保", None, "<b>"]), "agent_code": pick(HOSTILE),
        "first_seen": dates(), "list_due": dates(), "channel_due": dates(), "cooling_off_end": dates(),
        "due_date": dates(), "last_seen": dates(),
        "provisional": pd.Series(rng.random(n) > 0.5),
        "status": pick(["new", "open", "reopened", "closed", None]),
        "cluster_id": pick(["CL1", None, "CL2"]),
        "cluster_size": pd.array([None if i % 3 else i for i in range(n)], dtype="Int64"),
        "work_state": pick([None, "处理中", "已完成", "_x0041_"]), "result": pick([None, "已更正", "a&b"]),
        "note": pick(HOSTILE), "reopen_reason": pick([None, "", "  ", " 仍触发 ", "2026-11-21 已更正"]),
    })
    for column in ("evidence", "note", "agent_code"):  # free text (over 100 distinct texts): escaped a slice at a time
        items[column] = pd.Series([None if v is None else (f"{i}{v}" if i % 2 else f"{v}{i}")
                                   for i, v in enumerate(items[column].astype(object))], dtype=dtype)
    return items.set_axis(range(1000, 1000 + n))  # labels that are not positions


def read_files(folder) -> dict[str, list[list[str]]]:
    files = {}
    for path in sorted(folder.iterdir()):
        ws = openpyxl.load_workbook(path).active
        assert [c.value for c in ws[1]] == [c[0] for c in worklists.COLUMNS]
        rows = list(ws.iter_rows(min_row=2))
        assert all(c.data_type == "s" for r in rows for c in r)  # every cell a string cell, none a formula
        assert ws.dimensions == f"A1:Y{len(rows) + 1}" and ws.auto_filter.ref == f"A1:Y{max(len(rows), 1) + 1}"
        files[path.name] = [[c.value or "" for c in r] for r in rows]
        xml = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode("utf-8")
        for kept, text in re.findall(r'<t( xml:space="preserve")?>(.*?)</t>', xml, flags=re.S):
            assert bool(kept) == bool(re.search(r"^[\t\n\f\r ]|[\t\n\f\r ]$", text)), text  # as b023edb marked them
    return files


@pytest.mark.parametrize("dtype", ["str", object])
@pytest.mark.parametrize("slice_rows,workers", [(20_000, 2), (7, 1), (7, 2)])
def test_every_cell_reads_back_as_the_reference_writes_it(tmp_path, monkeypatch, dtype, slice_rows, workers):
    monkeypatch.setattr(worklists, "SLICE", slice_rows)
    monkeypatch.setattr(worklists, "WORKERS", workers)
    items = hostile_items(dtype=dtype)
    written = worklists.write_worklists(items, tmp_path)
    got, expected = read_files(tmp_path / "worklists"), ref_files(items)
    assert sorted(got) == sorted(expected) and sum(map(len, written.values())) == len(expected)
    for name in expected:
        assert len(got[name]) == len(expected[name]), name
        for r, (row, want) in enumerate(zip(got[name], expected[name])):
            for j, (cell, text) in enumerate(zip(row, want)):
                assert cell == text, (name, r, worklists.COLUMNS[j][0], cell[:80], text[:80])


def test_a_column_of_one_value_is_cut_and_escaped_too(tmp_path):
    """Every row alike (one distinct value a column): an over-long, an escaped, a spaced text."""
    items = hostile_items(5)
    for column, value in [("role", "y" * 40000), ("work_state", " a&b "), ("category", "😀" * 20000),
                          ("evidence", "_x0041_\x01"), ("note", "\t")]:
        items[column] = pd.Series([value] * 5, index=items.index, dtype="str")
    worklists.write_worklists(items, tmp_path)
    assert read_files(tmp_path / "worklists") == ref_files(items)


def test_the_files_do_not_depend_on_threads_or_slices(tmp_path, monkeypatch):
    items = hostile_items(200)
    sheets = []
    for n, (slice_rows, workers) in enumerate([(20_000, 1), (7, 2), (13, 2)]):
        monkeypatch.setattr(worklists, "SLICE", slice_rows)
        monkeypatch.setattr(worklists, "WORKERS", workers)
        worklists.write_worklists(items, tmp_path / str(n))
        folder = tmp_path / str(n) / "worklists"
        sheets.append({p.name: zipfile.ZipFile(p).read("xl/worksheets/sheet1.xml") for p in folder.iterdir()})
    assert sheets[0] == sheets[1] == sheets[2] and len(sheets[0]) > 3


def test_a_lone_surrogate_is_escaped_once(tmp_path):
    """A Python text that is not UTF-8 (a lone surrogate) becomes _xD800_; the other texts of its
    column are escaped once, as everywhere (b023edb escaped such a column twice: _x005F_x005F_...)."""
    cells = pd.DataFrame({h: ["a\ud800b", "_x0041_", "x\x01", " s "] for h, _, _ in worklists.COLUMNS}, dtype=object)
    worklists._write_cells(tmp_path / "w.xlsx", cells)
    ws = openpyxl.load_workbook(tmp_path / "w.xlsx").active
    assert [ws.cell(r, 1).value for r in range(2, 6)] == ["a_xD800_b", "_x005F_x0041_", "x_x0001_", " s "]
