"""Complaints and re-checks (issue 31, SPEC 9, art. 14): `custdq complaints load` with Chinese
headers, idempotent by reference, bad rows rejected with their reason; an agent with two
substantiated mis-selling complaints within a year has every policy of theirs in the book
re-checked once, with that night's deadlines; no night resolves the re-checks. On a real SQLite
file and on the real PostgreSQL server."""

from __future__ import annotations

import openpyxl
import pytest

from tests.helpers import policy, postgres_url, read_outputs, write_csv, write_xlsx

HEADERS = ["投诉编号", "业务员代码", "投诉日期", "投诉类型", "是否查实"]


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'cases.db'}" if request.param == "sqlite" else postgres_url()


def complaint_file(path, rows, xlsx=False):
    records = [dict(zip(HEADERS, r)) for r in rows]
    return (write_xlsx if xlsx else write_csv)(path, records)


def night(invoke, tmp_path, db, date, rows, *extra):
    out = tmp_path / f"out-{date}"
    result = invoke("run", str(write_csv(tmp_path / f"e-{date}.csv", rows)), "--business-date", date, "--out", str(out),
                    "--quiet", "--db", db, *extra)
    assert result.exit_code == 0, result.output
    items, _, manifest = read_outputs(out)
    return items[items["rule_code"] == "AGENT_COMPLAINT_RECHECK"], manifest


def book(agent="A0001", n=3, start=1):
    return [policy(f"B{agent}{i}", 100 + i, agent_code=agent) for i in range(start, start + n)]


def test_a_load_is_idempotent_by_reference_and_rejects_what_it_cannot_read(invoke, tmp_path, db):
    night(invoke, tmp_path, db, "2026-11-02", book())
    good = [("C1", "A0001", "2026-03-01", "销售误导", "是"), ("C2", "A0001", "2026/6/10", "销售误导", "是")]
    bad = [("C3", "", "2026-05-01", "销售误导", "是"), ("C4", "A0001", "2026-13-01", "销售误导", "是"),
           ("C5", "A0001", "2026-05-02", "销售误导", "也许"), ("", "A0001", "2026-05-02", "销售误导", "否")]
    path = complaint_file(tmp_path / "c.xlsx", good + bad, xlsx=True)
    first = invoke("complaints", "load", str(path), "--db", db)
    assert first.exit_code == 1
    assert "2 new, 0 updated, 0 unchanged, 4 rejected" in first.output
    for reason in ("业务员代码或代理机构代码为空", "投诉日期无法识别", "是否查实应为“是”或“否”", "投诉编号为空"):
        assert reason in first.output
    again = invoke("complaints", "load", str(complaint_file(tmp_path / "c.csv", good)), "--db", db)
    assert again.exit_code == 0 and "0 new, 0 updated, 2 unchanged, 0 rejected" in again.output
    changed = invoke("complaints", "load", str(complaint_file(tmp_path / "d.csv", [good[0][:4] + ("否",)])), "--db", db)
    assert changed.exit_code == 0 and "0 new, 1 updated, 0 unchanged" in changed.output


def test_a_load_needs_an_existing_store_and_its_columns(invoke, tmp_path):
    path = complaint_file(tmp_path / "c.csv", [("C1", "A0001", "2026-03-01", "销售误导", "是")])
    missing = invoke("complaints", "load", str(path), "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.exit_code == 2 and not (tmp_path / "none.db").exists()
    write_csv(tmp_path / "s.csv", [{"投诉编号": "C1", "业务员代码": "A1"}])
    invoke("run", str(write_csv(tmp_path / "e.csv", book())), "--business-date", "2026-11-02", "--quiet",
           "--out", str(tmp_path / "o"), "--db", f"sqlite:///{tmp_path / 'c.db'}")
    short = invoke("complaints", "load", str(tmp_path / "s.csv"), "--db", f"sqlite:///{tmp_path / 'c.db'}")
    assert short.exit_code == 2 and "投诉日期" in short.output and "Traceback" not in short.output


def test_two_substantiated_mis_selling_complaints_recheck_the_agents_book_once(invoke, tmp_path, db):
    night(invoke, tmp_path, db, "2026-11-02", book("A0001", 3) + book("A0002", 2))
    _, manifest = night(invoke, tmp_path, db, "2026-11-03", book("A0001", 1, start=10))
    assert manifest["rules"]["AGENT_COMPLAINT_RECHECK"]["findings"] == 0  # nothing loaded yet: no warning
    assert not any("AGENT_COMPLAINT_RECHECK" in w for w in manifest["warnings"])
    path = complaint_file(tmp_path / "c.csv", [
        ("C1", "A0001", "2026-01-10", "销售误导", "是"), ("C2", "A0001", "2026-09-30", "销售误导", "是"),
        ("C3", "A0002", "2026-09-30", "销售误导", "是"), ("C4", "A0002", "2026-10-01", "销售误导", "否"),
        ("C5", "A0002", "2026-10-02", "服务态度", "是"), ("C6", "A0002", "2025-10-01", "销售误导", "是"),
    ])
    assert invoke("complaints", "load", str(path), "--db", db).exit_code == 0
    items, manifest = night(invoke, tmp_path, db, "2026-11-04", book("A0003", 1))
    assert sorted(items["policy_no"]) == sorted(["BA00011", "BA00012", "BA00013", "BA000110"])  # A0002: one that counts
    assert set(items["agent_code"]) == {"A0001"} and set(items["first_seen"]) == {"2026-11-04"}
    assert set(items["list_due"]) == {"2026-11-05"} and set(items["category"]) == {"投诉复核"}
    assert set(items["evidence"]) == {"投诉 C1（2026-01-10）、C2（2026-09-30）"}
    assert items["detail"].str.contains("2 起查实的销售误导投诉").all() and items["detail"].str.contains("回访").all()
    rule = manifest["rules"]["AGENT_COMPLAINT_RECHECK"]
    assert rule["status"] == "ok" and rule["findings"] == 4 and rule["book"]["agents_triggered"] == 1
    assert not any(n.endswith("AGENT_COMPLAINT_RECHECK") for n in
                   (r["name"] for r in manifest["expectations"]["results"]))  # a task list, not a failure rate

    # the next nights: raised once, carried, never resolved (one of the policies is re-sent tonight)
    items, manifest = night(invoke, tmp_path, db, "2026-11-05", book("A0001", 1))
    assert manifest["rules"]["AGENT_COMPLAINT_RECHECK"]["findings"] == 0
    assert len(items) == 4 and set(items["status"]) == {"open"} and set(items["first_seen"]) == {"2026-11-04"}
    assert manifest["items"]["resolved"] == 0

    # the quarterly report names the agent re-checked and what the re-checks found (none settled yet)
    report = tmp_path / "q.xlsx"
    assert invoke("report", "quarterly", "--quarter", "2026Q4", "--db", db, "--out", str(report)).exit_code == 0
    sheet = openpyxl.load_workbook(report)["投诉复核"]
    assert sheet.cell(1, 1).value.startswith("2026Q4 投诉触发的客户信息复核")
    rows = [[c.value for c in r] for r in sheet.iter_rows(min_row=4)]
    assert [r[0] for r in rows] == ["A0001"] and rows[0][3] == "投诉 C1（2026-01-10）、C2（2026-09-30）"
    assert rows[0][4:] == [4, 0, 0, 0, 0, 0, 4]


def test_the_threshold_and_window_are_settings(invoke, tmp_path, db):
    night(invoke, tmp_path, db, "2026-11-02", book("A0001", 2))
    path = complaint_file(tmp_path / "c.csv", [("C1", "A0001", "2026-01-10", "销售误导", "是"),
                                               ("C2", "A0001", "2026-09-30", "销售误导", "是")])
    assert invoke("complaints", "load", str(path), "--db", db).exit_code == 0
    three = tmp_path / "three.yaml"
    three.write_text("rules:\n  complaints:\n    threshold: 3\n", encoding="utf-8")
    items, _ = night(invoke, tmp_path, db, "2026-11-03", book("A0009", 1), "--config", str(three))
    assert items.empty
    short = tmp_path / "short.yaml"
    short.write_text("rules:\n  complaints:\n    window_days: 100\n", encoding="utf-8")
    items, _ = night(invoke, tmp_path, db, "2026-11-04", book("A0009", 1), "--config", str(short))
    assert items.empty  # C1 is older than 100 days
    items, _ = night(invoke, tmp_path, db, "2026-11-05", book("A0009", 1))
    assert sorted(items["policy_no"]) == ["BA00011", "BA00012"]


def test_the_sample_s_complaints_load_and_trigger_re_checks(invoke, tmp_path):
    """`custdq sample --complaints-out` (the README's second night): a file the load takes whole,
    about the roster's agents, some of whom reach the threshold."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    first, roster = tmp_path / "n1.csv", tmp_path / "agents.csv"
    assert invoke("sample", "--rows", "2000", "--seed", "11", "--out", str(first), "--agents-out", str(roster),
                  "--complaints-out", str(tmp_path / "c.csv")).exit_code == 0
    assert invoke("run", str(first), "--business-date", "2026-11-20", "--db", db, "--quiet",
                  "--out", str(tmp_path / "o1")).exit_code == 0
    loaded = invoke("complaints", "load", str(tmp_path / "c.csv"), "--db", db)
    assert loaded.exit_code == 0 and " 0 rejected" in loaded.output
    agents = set(read_csv_codes(roster))
    assert set(read_csv_codes(tmp_path / "c.csv")) <= agents
    items, manifest = night(invoke, tmp_path, db, "2026-11-23", book("ZZ01", 1))
    rule = manifest["rules"]["AGENT_COMPLAINT_RECHECK"]
    assert rule["status"] == "ok" and rule["book"]["agents_triggered"] >= 1 and len(items) == rule["findings"] > 0
    assert set(items["agent_code"]) <= agents


def read_csv_codes(path):
    import csv

    with open(path, encoding="utf-8") as fh:
        return [r["业务员代码"] for r in csv.DictReader(fh)]
