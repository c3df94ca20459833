"""The case lifecycle across nights (issue 5, SPEC 6): carry-over, worklists filled in with
openpyxl and imported back (twice), suppression, reopening, resolution, re-runs, the writer
lock and schema migration - every test on a real SQLite file and on the real PostgreSQL server.
"""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest
from openpyxl import load_workbook

from pipeline import store
from pipeline.store.schema import item_events, items, suppressions
from pipeline.store.lock import store_lock
from tests.helpers import approve_all, fill, item_of, read_outputs, row, store_rows, write_csv
from tests.helpers import person, policy
from tests.helpers import postgres_url
from tests.helpers import gate_off


@pytest.fixture
def invoke(invoke):
    """The nights of this module run with the expectations gate off (tests/data/gate_off.yaml)."""
    return gate_off(invoke)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'cases.db'}" if request.param == "sqlite" else postgres_url()


@pytest.fixture
def night(invoke, tmp_path, db):
    """Run one night on `rows`; returns (items.csv, manifest, output folder)."""

    def _night(date: str, rows: list[dict], *extra: str, code: int = 0):
        out = tmp_path / f"out-{date}"
        extract = write_csv(tmp_path / f"extract-{date}.csv", rows)
        result = invoke("run", str(extract), "--business-date", date, "--out", str(out), "--quiet", "--db", db, *extra)
        assert result.exit_code == code, result.output
        if code:
            return result
        found, _, manifest = read_outputs(out)
        return found, manifest, out

    return _night


NIGHT1 = [row(policy_no="A1", applicant_phone=""),  # MISSING_FIELD
          row(policy_no="A2", applicant_phone="13800138000"),  # PHONE_PLACEHOLDER
          row(policy_no="A3", bank_account="123"),  # BANK_ACCOUNT_INVALID
          row(policy_no="A4", insured_sex="9"),  # FIELD_INVALID
          row(policy_no="A5", applicant_phone="", branch="北京分公司"),
          row(policy_no="A6")]  # clean


def test_round_trip_run_fill_import_twice_next_night(invoke, night, tmp_path, db):
    found, m1, out1 = night("2026-11-20", NIGHT1)
    assert m1["items"]["new"] == len(found) == 5 and set(found["status"]) == {"new"}
    corrected = item_of(found, "A1", "MISSING_FIELD")
    legit = item_of(found, "A2", "PHONE_PLACEHOLDER")
    false = item_of(found, "A3", "BANK_ACCOUNT_INVALID")
    busy = item_of(found, "A4", "FIELD_INVALID")
    other_branch = item_of(found, "A5", "MISSING_FIELD")
    files = fill(out1, {
        corrected: ("已完成", "已更正", "已补录电话 139 1234 5678"),
        legit: ("已完成", "核实无误", "客户确认号码为本人所有"),
        false: ("已完成", "虚假资料", ""),
        busy: ("处理中", "无法联系", "=HYPERLINK(\"http://x\")"),
        other_branch: ("已完成", "", ""),  # 已完成 without a result: rejected
    }, tmp_path / "filled")
    assert len(files) == 2  # one worklist per branch
    # a tampered copy: unknown id, a choice that is not offered, an edited policy number
    book = load_workbook(tmp_path / "filled" / "广东分公司.xlsx")
    sheet = book.active
    headers = [c.value for c in sheet[1]]
    sheet.append(["DQ0000000000000000"] + [""] * (len(headers) - 1))
    sheet.append([corrected, "A9"] + [""] * (len(headers) - 2))
    sheet.cell(sheet.max_row, headers.index("处理状态") + 1, "已完成")
    sheet.cell(sheet.max_row, headers.index("处理结果") + 1, "核实无误")
    sheet.append([busy] + [""] * (len(headers) - 1))
    sheet.cell(sheet.max_row, headers.index("处理状态") + 1, "搞定")
    book.save(tmp_path / "tampered.xlsx")

    args = ["cases", "import", *map(str, files), "--db", db, "--by", "王五", "--rejects", str(tmp_path / "rej.csv")]
    first = invoke(*args)
    assert first.exit_code == 1, first.output  # a row was rejected (SPEC 1); the other four applied
    assert "4 applied" in first.output and "1 rejected" in first.output
    assert "处理状态为已完成，但未填写处理结果" in first.output
    rejects = pd.read_csv(tmp_path / "rej.csv", dtype=str)
    assert rejects["item_id"].tolist() == [other_branch]
    events_after_first = len(store_rows(db, item_events))
    again = invoke(*args)
    assert again.exit_code == 1 and "0 applied" in again.output and "4 unchanged" in again.output
    assert len(store_rows(db, item_events)) == events_after_first  # importing twice changes nothing more

    tampered = invoke("cases", "import", str(tmp_path / "tampered.xlsx"), "--db", db)
    assert tampered.exit_code == 1 and "0 applied" in tampered.output and "3 rejected" in tampered.output
    assert "问题件编号 DQ0000000000000000 不存在" in tampered.output
    assert f"保单号已被修改，与问题件 {corrected} 的记录不一致" in tampered.output
    assert "处理状态「搞定」不在可选项中（未处理 / 处理中 / 已完成）" in tampered.output

    waiting = store_rows(db, items).set_index("item_id").loc[[legit, false], ["state", "work_state"]]
    assert waiting.values.tolist() == [["open", "待复核"]] * 2  # 核实无误 and 虚假资料 wait for their review
    assert approve_all(db) == 2  # a reviewer approves them

    stored = store_rows(db, items).set_index("item_id")
    assert stored.loc[corrected, ["state", "close_reason", "work_state", "result"]].tolist() == \
        ["closed", "corrected", "已完成", "已更正"]
    assert stored.loc[corrected, "note"] == "已补录电话 139****5678"  # no phone at rest
    assert stored.loc[false, "close_reason"] == "false"
    assert stored.loc[busy, ["state", "work_state", "result"]].tolist() == ["open", "处理中", "无法联系"]
    assert stored.loc[busy, "disposed_by"] == "王五"
    event = store_rows(db, item_events).query("item_id == @corrected and action == 'disposed'").iloc[0]
    assert event["who"] == "王五" and json.loads(event["what"])["result"] == [None, "已更正"]
    assert "row " in event["source"] and ".xlsx" in event["source"]

    # the next night: the same extract - the "corrected" finding still fires
    found2, m2, out2 = night("2026-11-23", NIGHT1)
    assert m2["items"]["reopened"] == 1 and m2["items"]["suppressed"] == 1
    assert m2["items"]["settled_still_firing"] == 1 and m2["items"]["new"] == 0
    listed = found2.set_index("item_id")
    assert set(listed.index) == {corrected, busy, other_branch}
    assert listed.loc[corrected, "status"] == "open"
    # an item keeps the deadlines of the night it was first raised
    assert listed.loc[busy, ["first_seen", "list_due", "channel_due"]].tolist() == \
        ["2026-11-20", "2026-11-23", "2026-11-26"]
    assert listed.loc[busy, "last_seen"] == "2026-11-23"
    # the worklist carries the disposition so far
    sheet = load_workbook(out2 / "worklists" / "广东分公司.xlsx").active
    headers = [c.value for c in sheet[1]]
    by_id = {sheet.cell(r, 1).value: r for r in range(2, sheet.max_row + 1)}
    r = by_id[busy]
    assert [sheet.cell(r, headers.index(h) + 1).value for h in ("处理状态", "处理结果")] == ["处理中", "无法联系"]
    assert sheet.cell(r, headers.index("处理说明") + 1).data_type == "s"  # never a formula


def test_new_customer_on_a_confirmed_shared_phone_raises_only_their_item(invoke, night, tmp_path, db):
    phone = person(1)["applicant_phone"]
    first = [policy("S1", 1), policy("S2", 2, applicant_phone=phone)]
    found, _, out = night("2026-11-20", first)
    shared = found[found["rule_code"] == "PHONE_SHARED"]
    assert sorted(shared["policy_no"]) == ["S1", "S2"]
    fill(out, {item_of(found, "S1", "PHONE_SHARED"): ("已完成", "核实无误", "夫妻共用")}, tmp_path / "f")
    assert invoke("cases", "import", *map(str, (tmp_path / "f").glob("*.xlsx")), "--db", db).exit_code == 0
    assert store_rows(db, suppressions).empty and approve_all(db) == 1  # once reviewed:
    assert len(store_rows(db, suppressions)) == 2  # the two customers on that value

    # same customers again (a new policy of customer 2): nothing is raised, S2's item is settled too
    found2, m2, _ = night("2026-11-23", first + [policy("S3", 2, applicant_phone=phone)])
    assert found2[found2["rule_code"] == "PHONE_SHARED"].empty
    assert m2["items"]["suppressed"] == 3
    # a new customer joins the phone: only their item is raised, the evidence names the others
    found3, m3, _ = night("2026-11-24", [policy("S4", 4, applicant_phone=phone)])
    shared3 = found3[found3["rule_code"] == "PHONE_SHARED"]
    assert shared3["policy_no"].tolist() == ["S4"] and shared3["status"].tolist() == ["new"]
    assert "保单S1" in shared3["evidence"].iloc[0] and "等共" not in shared3["evidence"].iloc[0]


def test_a_finding_that_no_longer_fires_is_resolved(night, db):
    found, _, _ = night("2026-11-20", [row(policy_no="R1", applicant_phone=""), row(policy_no="R2", insured_sex="9")])
    assert len(found) == 2
    # R1 comes back corrected; R2 is not in tonight's extract, so its item is carried unjudged
    found2, m2, _ = night("2026-11-23", [row(policy_no="R1")])
    assert m2["items"]["resolved"] == 1 and found2["policy_no"].tolist() == ["R2"]
    assert found2["status"].tolist() == ["open"] and found2["last_seen"].tolist() == ["2026-11-20"]
    events = store_rows(db, item_events)
    assert events[events["action"] == "resolved"]["night"].tolist() == ["2026-11-23"]


def test_re_runs_replace_never_duplicate(night, db):
    rows = [row(policy_no="X1", applicant_phone=""), row(policy_no="X2", insured_sex="9")]
    night("2026-11-20", rows)
    night("2026-11-23", rows[:1])  # X1 carried, X2 unjudged
    refused = night("2026-11-20", rows, code=2)  # an earlier night: refused without --rewind (SPEC 7)
    assert "--rewind" in refused.output
    again, m, _ = night("2026-11-20", rows, "--rewind")  # 2026-11-23 taken back first
    assert sorted(again["policy_no"]) == ["X1", "X2"] and m["items"]["new"] == 2
    assert m["warnings"][0] == "rewound night(s) 2026-11-23: run them again, oldest first"
    redo, m2, _ = night("2026-11-23", [row(policy_no="X1"), row(policy_no="X2", insured_sex="9")])
    redo2, m3, _ = night("2026-11-23", [row(policy_no="X1"), row(policy_no="X2", insured_sex="9")])
    assert redo.equals(redo2) and m2["items"] == m3["items"] | {"run_events_taken_back": m2["items"]["run_events_taken_back"]}
    assert m3["items"]["resolved"] == 1 and redo2["policy_no"].tolist() == ["X2"]
    stored = store_rows(db, items)
    assert stored["item_id"].is_unique and len(stored) == 2
    events = store_rows(db, item_events)
    assert (events.groupby(["item_id", "action"]).size() == 1).all()  # no event twice


def test_a_second_run_of_the_same_date_refuses_clearly(night, invoke, tmp_path, db):
    engine = store.open_store(db)
    cfg = tmp_path / "wait.yaml"
    cfg.write_text("store:\n  lock_wait_seconds: 1\n", encoding="utf-8")
    with store_lock(engine, "run", "2026-11-20"):  # a run of 2026-11-20 in progress
        same = night("2026-11-20", [row()], code=2)
        assert "2026-11-20 is already being run by `custdq run` of 2026-11-20" in same.output
        other = night("2026-11-23", [row()], "--config", str(cfg), code=2)
        assert "the case store is busy" in other.output and "nothing was changed" in other.output
        listing = invoke("cases", "list", "--db", db)  # readers are never blocked
        assert listing.exit_code == 0
    night("2026-11-20", [row()])  # the lock went with its holder


def test_cases_list_overdue_and_branch(night, invoke, db):
    night("2026-11-20", [row(policy_no="L1", applicant_phone=""),
                         row(policy_no="L2", applicant_phone="", branch="北京分公司", receipt_date="2026-11-01")])
    listing = invoke("cases", "list", "--db", db, "--as-of", "2026-11-24")
    assert listing.exit_code == 0
    lines = [ln for ln in listing.output.splitlines() if ln.startswith("20")]
    assert [ln.split()[4] for ln in lines] == ["L2", "L1"]  # deadline first
    overdue = invoke("cases", "list", "--db", db, "--as-of", "2026-11-24", "--overdue", "--csv")
    text = overdue.output.split("custdq:")[0]
    assert text.startswith("\ufeff处理期限,问题件编号,机构")  # the table's Chinese headers, a BOM for Excel
    table = pd.read_csv(pd.io.common.StringIO(text.lstrip("\ufeff")), dtype=str)
    assert table["保单号"].tolist() == ["L2"] and table["逾期天数"].tolist() == ["8"]
    assert table["角色"].tolist() == ["投保人"] and table["规则"].str.startswith("MISSING_FIELD ").all()
    assert table["问题说明"].str.contains("缺失").all()  # which field, as the worklist says it (issue 28)
    branch = invoke("cases", "list", "--db", db, "--branch", "广东分公司", "--csv", "--as-of", "2026-11-24")
    assert pd.read_csv(pd.io.common.StringIO(branch.output.split("custdq:")[0].lstrip("\ufeff")))["保单号"].tolist() \
        == ["L1"]
    assert "13912345678" not in listing.output


def test_import_of_something_that_is_not_a_worklist_is_exit_2(invoke, night, tmp_path, db):
    night("2026-11-20", [row()])  # the store exists: only the files are wrong
    bad = tmp_path / "x.xlsx"
    bad.write_bytes(b"not a zip")
    result = invoke("cases", "import", str(bad), "--db", db)
    assert result.exit_code == 2 and "x.xlsx: 不是 xlsx 格式的问题件清单" in result.output
    from openpyxl import Workbook
    whole = Workbook()
    whole.active.append(["问题件编号", "处理状态", "处理结果", "处理说明"])
    whole.save(tmp_path / "whole.xlsx")
    data = (tmp_path / "whole.xlsx").read_bytes()
    (tmp_path / "cut.xlsx").write_bytes(data[: len(data) // 2])  # a worklist cut short in transfer
    result = invoke("cases", "import", str(tmp_path / "cut.xlsx"), "--db", db)
    assert result.exit_code == 2 and "cut.xlsx: 不是 xlsx 格式的问题件清单" in result.output
    from openpyxl import Workbook
    wb = Workbook()
    wb.active.append(["保单号", "备注"])
    wb.save(tmp_path / "other.xlsx")
    result = invoke("cases", "import", str(tmp_path / "other.xlsx"), "--db", db)
    assert result.exit_code == 2 and "other.xlsx: 不是 custdq 问题件清单" in result.output
    assert invoke("cases", "import", str(tmp_path / "missing.xlsx"), "--db", db).exit_code == 2


def test_an_older_store_is_migrated(invoke, tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a schema-1 store: the runs table only
        conn.execute("create table custdq_meta (key varchar(64) primary key, value varchar(256) not null)")
        conn.execute("insert into custdq_meta values ('schema_version', '1')")
        conn.execute("create table runs (business_date varchar(10) primary key, started_at varchar(32) not null, "
                     "finished_at varchar(32) not null, rows_read integer not null, rows_in_scope integer not null, "
                     "rows_quarantined integer not null, items integer not null, list_due varchar(10) not null, "
                     "list_due_met boolean not null, manifest text not null)")
        conn.execute("insert into runs values ('2026-11-19', 'a', 'b', 1, 1, 0, 0, '2026-11-20', 1, '{}')")
    extract = write_csv(tmp_path / "e.csv", [row(applicant_phone="")])
    result = invoke("run", str(extract), "--business-date", "2026-11-20", "--db", f"sqlite:///{path}",
                    "--out", str(tmp_path / "o"), "--quiet")
    assert result.exit_code == 0, result.output
    with sqlite3.connect(path) as conn:
        assert conn.execute("select value from custdq_meta where key='schema_version'").fetchone() == \
            (str(store.SCHEMA_VERSION),)
        assert [r[0] for r in conn.execute("select business_date from runs order by 1")] == ["2026-11-19", "2026-11-20"]
        assert conn.execute("select count(*) from items").fetchone() == (1,)


def test_a_schema_5_store_gains_the_web_tables_and_the_ordered_indexes(invoke, tmp_path):
    db = f"sqlite:///{tmp_path / 'five.db'}"  # one row that raises an item, so ANALYZE has rows to count
    assert invoke("run", str(write_csv(tmp_path / "e.csv", [row(insured_sex="9")])), "--business-date", "2026-11-20", "--db", db,
                  "--out", str(tmp_path / "o"), "--quiet").exit_code == 0
    with sqlite3.connect(tmp_path / "five.db") as conn:  # as schema 5 left it
        for table in ("users", "api_tokens", "access_log", "agents"):
            conn.execute(f"drop table {table}")
        for name in ("ix_items_open_due", "ix_items_open_branch", "ix_items_open_rule", "ix_items_open_agent",
                     "ix_items_policy_item", "ix_items_open_scope", "ix_items_open_work", "ix_items_seen",
                     "ix_items_open_assignee"):
            conn.execute(f"drop index {name}")
        conn.execute("alter table items drop column assignee")  # schema 13's
        conn.execute("create index ix_items_open on items (state, due_date)")
        conn.execute("create index ix_items_branch on items (branch)")
        conn.execute("create index ix_items_policy on items (policy_no)")
        conn.execute("update custdq_meta set value = '5' where key = 'schema_version'")
    store.open_store(db, create=False).dispose()
    with sqlite3.connect(tmp_path / "five.db") as conn:
        indexes = {r[0] for r in conn.execute("select name from sqlite_master where type='index' and tbl_name='items' "
                                              "and name like 'ix_%'")}
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        version = conn.execute("select value from custdq_meta where key='schema_version'").fetchone()[0]
        counted = {r[0] for r in conn.execute("select idx from sqlite_stat1 where tbl = 'items'")}
        assert "assignee" in {r[1] for r in conn.execute("pragma table_info(items)")}
    assert indexes == {"ix_items_open_due", "ix_items_open_branch", "ix_items_open_rule", "ix_items_open_agent",
                       "ix_items_policy_item", "ix_items_open_scope", "ix_items_open_work", "ix_items_seen",
                       "ix_items_open_assignee"}
    assert indexes <= counted  # the planner's statistics cover the new indexes (schema 7, 10)
    assert {"users", "api_tokens", "access_log", "agents", "complaints"} <= tables and version == str(store.SCHEMA_VERSION) == "13"


def test_quarterly_report_lists_confirmed_false_information(night, invoke, tmp_path, db):
    found, _, out = night("2026-09-10", [row(policy_no="Q1", bank_account="123", agent_code="A7"),
                                         row(policy_no="Q2", applicant_phone="", agent_code="A7"),
                                         row(policy_no="Q3", insured_sex="9", branch="北京分公司", agent_code="=1+1")])
    fill(out, {item_of(found, "Q1", "BANK_ACCOUNT_INVALID"): ("已完成", "虚假资料", "业务员代填账户"),
               item_of(found, "Q2", "MISSING_FIELD"): ("已完成", "已更正", ""),
               item_of(found, "Q3", "FIELD_INVALID"): ("已完成", "虚假资料", "")}, tmp_path / "q")
    from pipeline.cases import imports
    import datetime as dt
    with store.open_store(db).begin() as conn:  # settled on 2026-09-20, inside 2026Q3
        report = imports.import_worklists(conn, [str(p) for p in (tmp_path / "q").glob("*.xlsx")], "审核员",
                                          dt.datetime(2026, 9, 20, 10, tzinfo=dt.timezone(dt.timedelta(hours=8))))
    assert report.applied == 3
    target = tmp_path / "2026Q3.xlsx"
    result = invoke("report", "quarterly", "--quarter", "2026Q3", "--db", db, "--out", str(target))
    assert result.exit_code == 0 and "2 items on 2 policies" in result.output
    book = load_workbook(target)
    summary = [[c.value if c.value != "" else None for c in r] for r in book["汇总"].iter_rows(min_row=4)]
    assert summary == [["北京分公司", "个险", "=1+1", None, 1, 1, "Q3"], ["北京分公司 小计", None, None, None, 1, 1, None],
                       ["广东分公司", "个险", "A7", None, 1, 1, "Q1"], ["广东分公司 小计", None, None, None, 1, 1, None],
                       ["合计", None, None, None, 2, 2, None]]  # 业务员姓名 empty: this night had no roster
    assert book["汇总"].cell(4, 3).data_type == "s"  # an agent code like =1+1 stays text
    assert book["明细"].cell(1, 1).value.startswith("2026Q3 客户信息虚假资料明细")
    # the denominators: policies checked, items raised and settled in the quarter, per branch and in all
    shares = {r[0]: r[1:] for r in book["分机构"].iter_rows(min_row=4, values_only=True)}
    raised = found.groupby("branch").size()
    assert shares["广东分公司"][:4] == (2, raised["广东分公司"], 2, 1) and shares["广东分公司"][4] == 0.5
    assert shares["北京分公司"][:4] == (1, raised["北京分公司"], 1, 1) and shares["北京分公司"][5] == 1000
    assert shares["合计"][:4] == (3, len(found), 3, 2) and round(shares["合计"][4], 4) == 0.6667
    detail = [[c.value for c in r] for r in book["明细"].iter_rows(min_row=4)]
    assert sorted(r[1] for r in detail) == ["Q1", "Q3"] and {r[11] for r in detail} == {"2026-09-20"}
    empty = invoke("report", "quarterly", "--quarter", "2026Q4", "--db", db, "--out", str(tmp_path / "q4.xlsx"))
    assert empty.exit_code == 0 and "0 items" in empty.output
    bad = invoke("report", "quarterly", "--quarter", "2026Q5", "--db", db, "--out", str(tmp_path / "x.xlsx"))
    assert bad.exit_code == 2 and "expected YYYYQn" in bad.output


def test_rows_nobody_changed_never_fail_an_import(invoke, night, tmp_path, db):
    """Issue 28: two people return copies of one worklist, a colleague settles an item on the web
    between an export and its import, an old worklist comes back weeks later: rows that say what
    the worklist was issued with change nothing and are no rejection (exit 0); only a row that
    would change a settled item is refused."""
    from tests.webserve import Client, Server, custdq

    found, _, out1 = night("2026-11-20", NIGHT1)
    a1, a2 = item_of(found, "A1", "MISSING_FIELD"), item_of(found, "A2", "PHONE_PLACEHOLDER")
    a3, a4 = item_of(found, "A3", "BANK_ACCOUNT_INVALID"), item_of(found, "A4", "FIELD_INVALID")
    first = fill(out1, {a1: ("已完成", "已更正", ""), a4: ("处理中", "", "已致电客户")}, tmp_path / "zhang")
    done = invoke("cases", "import", *map(str, first), "--db", db, "--by", "张三")
    assert done.exit_code == 0 and "2 applied" in done.output, done.output
    # a colleague's copy of the same worklist as issued, one row of their own filled in: a1 is
    # settled now, a4 in progress, their rows for them untouched
    second = fill(out1, {a2: ("已完成", "核实无误", "本人号码")}, tmp_path / "li")
    done = invoke("cases", "import", *map(str, second), "--db", db, "--by", "李四")
    assert done.exit_code == 0 and "1 applied" in done.output and "0 rejected" in done.output, done.output

    # the next night's worklist is issued with a4 in progress; then a4 is settled on the web
    _, _, out2 = night("2026-11-23", NIGHT1)
    folder = tmp_path / "web"
    folder.mkdir()
    password = "web-password-1"
    assert custdq("users", "add", "wang", "--role", "branch", "--branch", "广东分公司", "--db", db,
                  stdin=f"{password}\n{password}\n", cwd=folder).returncode == 0
    token = custdq("users", "token", "wang", "--db", db, cwd=folder).stdout.strip().splitlines()[-1]
    server = Server(db, folder)
    try:
        client = Client(server.base, token)
        status, item = client.json("GET", f"/api/items/{a4}")
        assert status == 200 and item["work_state"] == "处理中"
        status, body = client.json("POST", f"/api/items/{a4}/disposition",
                                   {"state": "已完成", "result": "已更正", "note": "网页办结", "version": item["version"]})
        assert status == 200 and body["state"] == "closed", body
    finally:
        server.stop()
    # night 2's worklist comes back as issued (a4: 处理中 / 已致电客户): changes nothing, no rejection
    done = invoke("cases", "import", *sorted(map(str, (out2 / "worklists").glob("*.xlsx"))), "--db", db, "--by", "赵六")
    assert done.exit_code == 0 and "0 applied" in done.output and "0 rejected" in done.output, done.output
    assert "1 as issued but since changed by another" in done.output
    # and the first night's worklist, weeks later, untouched
    done = invoke("cases", "import", *sorted(map(str, (out1 / "worklists").glob("*.xlsx"))), "--db", db)
    assert done.exit_code == 0 and "0 applied" in done.output and "0 rejected" in done.output, done.output
    stored = store_rows(db, items).set_index("item_id")
    assert stored.loc[a4, ["state", "work_state", "result", "note"]].tolist() == ["closed", "已完成", "已更正", "网页办结"]
    assert stored.loc[a2, "result"] == "核实无误" and stored.loc[a3, "work_state"] in (None, "未处理")
    # a row that would change a settled item is still refused
    changed = fill(out2, {a4: ("处理中", "", "再次联系")}, tmp_path / "late")
    done = invoke("cases", "import", *map(str, changed), "--db", db)
    assert done.exit_code == 1 and "1 rejected" in done.output and "办结" in done.output, done.output
    assert store_rows(db, items).set_index("item_id").loc[a4, "note"] == "网页办结"
