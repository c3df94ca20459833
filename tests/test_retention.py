"""`custdq retention plan | purge | log` (issue 19) on a real store of several nights, on SQLite
and on the PostgreSQL server: what goes and what stays (open items, their events, the quarters
still inside the policy), the destruction record, the SQLite file after VACUUM, the next night
against a store that never held the destroyed records, and the refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from stdnum import luhn

from pipeline import store
from pipeline.cases.quarterly import write_report
from pipeline.cases import evidence
from pipeline.store.schema import (attachments, complaints, destructions, item_events, items, runs,
                                   suppressions)
from tests.helpers import approve_all, contact_index, fill, policy, postgres_url, read_outputs, write_csv

NIGHTS = ["2015-03-02", "2015-03-04", "2021-06-02"]
NEXT = "2021-06-03"
CONFIG = "store:\n  undo_nights: 1\n"
AS_OF = "2026-12-01"


def rows(date: str) -> list[dict]:
    """P10-P14 applicants whose sex contradicts their identity number (ID_SEX_MISMATCH), P30 and
    P31 two customers on one phone (PHONE_SHARED); from the second night P10, P11 and P12 are
    corrected at the source."""
    def day(n: int) -> dict:  # a valid card of its own (no BANK_CARD_LUHN, no shared account)
        card = f"62220202{n:010d}"
        return {"issue_date": date, "receipt_date": date, "bank_account": card + luhn.calc_check_digit(card)}

    fixed = date != NIGHTS[0]
    out = [policy(f"P{n}", n, applicant_sex="男" if fixed and n in (10, 11, 12) else "女", **day(n))
           for n in (10, 11, 12, 13, 14)]
    out += [policy("P30", 30, applicant_phone="13912340000", **day(30)),
            policy("P31", 31, applicant_phone="13912340000", **day(31)),
            policy("P50", 50, applicant_phone="13912345555", **day(50)),  # P50's item stays open, P51's is
            policy("P51", 51, applicant_phone="13912345555", **day(51))]  # confirmed 虚假资料 (kept: Q4 2016)
    return out


def run(invoke, folder: Path, db: str, date: str, name: str) -> pd.DataFrame:
    out = folder / f"{name}-{date}"
    config = folder / "retention.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    done = invoke("run", str(write_csv(folder / f"{name}-{date}.csv", rows(date))), "--business-date", date,
                  "--db", db, "--out", str(out), "--quiet", "--config", str(config))
    assert done.exit_code == 0, done.output
    return read_outputs(out)[0]


def ids(found: pd.DataFrame, policy_no: str, rule: str) -> str:
    return found[(found["policy_no"] == policy_no) & (found["rule_code"] == rule)]["item_id"].iloc[0]


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request, tmp_path):
    os.environ["CUSTDQ_HASH_KEY"] = "custdq-test-key-0123456789abcdef0123456789"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    return postgres_url(), postgres_url()


def settle_years_ago(invoke, tmp_path: Path, db: str, first: pd.DataFrame) -> dict[str, str]:
    """After the first night: P11 and P12 confirmed 虚假资料, P30 and P31 核实无误, imported from
    the worklists; then their closing dates moved back to when such imports would have been made
    (the store records an import on the day it runs, and these stand for imports of 2015-2016)."""
    chosen = {"P11": ids(first, "P11", "ID_SEX_MISMATCH"), "P12": ids(first, "P12", "ID_SEX_MISMATCH"),
              "P30": ids(first, "P30", "PHONE_SHARED"), "P31": ids(first, "P31", "PHONE_SHARED"),
              "P51": ids(first, "P51", "PHONE_SHARED")}
    filled = fill(tmp_path / f"a-{NIGHTS[0]}", {chosen["P11"]: ("已完成", "虚假资料", "冒用身份"),
                                               chosen["P12"]: ("已完成", "虚假资料", "冒用身份"),
                                               chosen["P30"]: ("已完成", "核实无误", "夫妻"),
                                               chosen["P31"]: ("已完成", "核实无误", "夫妻"),
                                               chosen["P51"]: ("已完成", "虚假资料", "借用电话")}, tmp_path / "filled")
    for path in filled:
        assert invoke("cases", "import", str(path), "--by", "张三", "--db", db).exit_code == 0
    assert approve_all(db) == 5  # the compliance review approves them
    closed = {"P11": "2016-09-30", "P12": "2016-10-08", "P30": "2015-04-01", "P31": "2015-04-01",  # Q3, Q4 2016
              "P51": "2016-10-08"}
    engine = sa.create_engine(db)
    with engine.begin() as conn:
        for p, day in closed.items():
            conn.execute(items.update().where(items.c.item_id == chosen[p]).values(closed_on=day))
    engine.dispose()
    return chosen


def snapshot(db: str) -> dict:
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        open_items = pd.read_sql(sa.select(items).where(items.c.state == "open").order_by(items.c.item_id), conn)
        events = pd.read_sql(sa.select(item_events).where(item_events.c.item_id.in_(open_items["item_id"].tolist()))
                             .order_by(item_events.c.id), conn)
        counts = {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                  for t in (items, item_events, suppressions, runs)}
    engine.dispose()
    return {"open": open_items, "events": events, "counts": counts}


def report(db: str, quarter: str, path: Path) -> list[tuple]:
    engine = sa.create_engine(db)
    write_report(engine, quarter, path)
    engine.dispose()
    return [tuple(c.value for c in r) for ws in openpyxl.load_workbook(path).worksheets for r in ws.iter_rows()]


def contact_policies(db: str) -> set[str]:
    """Every policy the contact index holds a live row, a row kept for re-runs, or a note of."""
    with contact_index(db) as book:
        return {p for (p,) in book.db.run("SELECT policy_no FROM contacts UNION SELECT policy_no FROM replaced "
                                          "UNION SELECT policy_no FROM seen")}


FINDING = ["item_id", "policy_no", "role", "rule_code", "severity", "field", "evidence"]


def test_a_purge_destroys_what_the_plan_lists_and_nothing_still_needed(invoke, tmp_path, stores):
    a, b = stores
    first = run(invoke, tmp_path, a, NIGHTS[0], "a")
    chosen = settle_years_ago(invoke, tmp_path, a, first)
    for date in NIGHTS[1:]:
        run(invoke, tmp_path, a, date, "a")
    config = str(tmp_path / "retention.yaml")
    complaints_file = write_csv(tmp_path / "complaints.csv", [
        {"投诉编号": ref, "业务员代码": "A0001", "投诉日期": day, "投诉类型": "销售误导", "是否查实": "是"}
        for ref, day in (("C-2019", "2019-01-07"), ("C-2026", "2026-06-01"))])
    assert invoke("complaints", "load", str(complaints_file), "--db", a).exit_code == 0
    engine = sa.create_engine(a)
    with engine.begin() as conn:  # evidence on an item the purge destroys, and on one it keeps
        for who in ("P30", "P12"):
            stored = dict(conn.execute(sa.select(items).where(items.c.item_id == chosen[who])).mappings().one())
            evidence.add(conn, stored, b"%PDF-1.4\n%%EOF\n", f"{who}.pdf", "张三", "2015-04-01T10:00:00+08:00",
                         4096, 3, evidence.key_of(b"a test key of thirty-two bytes!!"))
    engine.dispose()
    before = snapshot(a)
    q4_before = report(a, "2016Q4", tmp_path / "q4-before.xlsx")
    q3_before = report(a, "2016Q3", tmp_path / "q3-before.xlsx")
    resolved = ids(first, "P10", "ID_SEX_MISMATCH")  # closed by the second night: the finding stopped

    plan = invoke("retention", "plan", "--as-of", AS_OF, "--db", a, "--config", config)
    assert plan.exit_code == 0, plan.output
    assert snapshot(a)["counts"] == before["counts"]  # the plan changes nothing
    listed = {}
    for line in plan.output.splitlines()[1:]:
        cells = line.split()
        if len(cells) in (4, 5) and not line.startswith("custdq"):  # table, reason (may be empty), rows, dates
            listed[(cells[0], cells[1] if len(cells) == 5 else "")] = int(cells[-3])
    assert listed[("items", "false")] == 1 and listed[("items", "legitimate")] == 2
    assert listed[("items", "resolved")] == 1 and listed[("runs", "")] == 2
    assert listed[("complaints", "销售误导")] == 1  # dated before the cut-off (5 years before --as-of)
    assert listed[("attachments", "pdf")] == 1  # the evidence of a destroyed item goes with it

    purged = invoke("retention", "purge", "--as-of", AS_OF, "--by", "合规部李四", "--db", a, "--config", config)
    assert purged.exit_code == 0, purged.output
    after = snapshot(a)
    pd.testing.assert_frame_equal(after["open"], before["open"])  # every open item, its deadlines ...
    pd.testing.assert_frame_equal(after["events"], before["events"])  # ... and its events
    engine = sa.create_engine(a)
    with engine.connect() as conn:
        left = set(conn.execute(sa.select(items.c.item_id)).scalars())
        record = conn.execute(sa.select(destructions)).mappings().one()
        kept_runs = set(conn.execute(sa.select(runs.c.business_date)).scalars())
        assert set(conn.execute(sa.select(complaints.c.complaint_ref)).scalars()) == {"C-2026"}
        assert set(conn.execute(sa.select(attachments.c.item_id)).scalars()) == {chosen["P12"]}
        assert conn.execute(sa.select(sa.func.count()).select_from(suppressions)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(item_events).where(
            item_events.c.item_id.in_([chosen["P11"], chosen["P30"], resolved]))).scalar_one() == 0
    engine.dispose()
    assert chosen["P12"] in left and not {chosen["P11"], chosen["P30"], chosen["P31"], resolved} & left
    # the contact index: every policy last seen before the cut-off goes, but not one with an open
    # item (P13, P14, P50), nor P51, whose phone P50's open item is about (P51's own item is closed)
    assert contact_policies(a) == {"P13", "P14", "P50", "P51"}
    assert kept_runs == {NIGHTS[2]}  # the nights before the runs' cut-off, but not the one a re-run can take back
    assert (record["by"], record["as_of"], len(record["digest"])) == ("合规部李四", AS_OF, 64)
    counts = {(c["table"], c["reason"]): c["rows"] for c in json.loads(record["counts"])}
    assert counts == listed  # the record holds what the plan listed

    assert report(a, "2016Q4", tmp_path / "q4-after.xlsx") == q4_before  # a quarter inside the policy
    assert report(a, "2016Q3", tmp_path / "q3-after.xlsx") != q3_before  # a quarter past it: gone whole

    logged = invoke("retention", "log", "--db", a)
    assert logged.exit_code == 0 and "合规部李四" in logged.output and record["digest"] in logged.output
    again = invoke("retention", "plan", "--as-of", AS_OF, "--db", a, "--config", config)
    assert "0 row(s) would be destroyed" in again.output

    # the next night equals that of a store that never held what was destroyed: the one night
    # still in scope, then the same next night
    in_scope = run(invoke, tmp_path, b, NIGHTS[2], "b")  # with the one disposition still in the store
    filled = fill(tmp_path / f"b-{NIGHTS[2]}", {ids(in_scope, "P51", "PHONE_SHARED"): ("已完成", "虚假资料", "借用电话")},
                  tmp_path / "filled-b")
    assert all(invoke("cases", "import", str(p), "--by", "张三", "--db", b).exit_code == 0 for p in filled)
    assert approve_all(b) == 1
    nxt_a = run(invoke, tmp_path, a, NEXT, "a")
    nxt_b = run(invoke, tmp_path, b, NEXT, "b")
    pd.testing.assert_frame_equal(nxt_a[FINDING].sort_values("item_id").reset_index(drop=True),
                                  nxt_b[FINDING].sort_values("item_id").reset_index(drop=True))
    assert chosen["P30"] in set(nxt_a["item_id"])  # the confirmation went with its item: raised again


def test_no_destroyed_key_is_left_in_the_sqlite_file_or_the_index(invoke, tmp_path, monkeypatch):
    os.environ["CUSTDQ_HASH_KEY"] = "custdq-test-key-0123456789abcdef0123456789"
    # as SQLite is built by default (Debian's build zeroes deleted cells): deleted bytes stay
    monkeypatch.setattr(store, "SQLITE_PRAGMAS", (*store.SQLITE_PRAGMAS, "PRAGMA secure_delete=OFF"))
    db = f"sqlite:///{tmp_path / 'a.db'}"
    first = run(invoke, tmp_path, db, NIGHTS[0], "a")
    chosen = settle_years_ago(invoke, tmp_path, db, first)
    for date in NIGHTS[1:]:
        run(invoke, tmp_path, db, date, "a")
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        doomed = [chosen["P11"], chosen["P30"], chosen["P31"]]
        keys = conn.execute(sa.select(suppressions.c.value_key, suppressions.c.subject_key)).all()
        phone = conn.execute(sa.select(items.c.value_key).where(items.c.item_id == chosen["P30"])).scalar_one()
        texts = [t.encode() for t in set(doomed) | {k for pair in keys for k in pair}] + [bytes.fromhex(phone)]
    engine.dispose()
    assert len(keys) and all(len(t) >= 16 for t in texts)
    files = [tmp_path / "a.db", tmp_path / "a.db-wal", tmp_path / "a.contacts.duckdb", tmp_path / "a.contacts.duckdb.wal"]
    assert all(t in b"".join(p.read_bytes() for p in files if p.exists()) for t in texts)  # there before
    assert bytes.fromhex(phone) in b"".join(p.read_bytes() for p in files[2:] if p.exists())  # in the index too
    done = invoke("retention", "purge", "--as-of", AS_OF, "--db", db, "--config", str(tmp_path / "retention.yaml"))
    assert done.exit_code == 0, done.output
    data = b"".join(p.read_bytes() for p in files if p.exists())
    assert not [t for t in texts if t in data]
    assert contact_policies(db) == {"P13", "P14", "P50", "P51"}


@pytest.mark.parametrize("settings, says", [
    ("store:\n  undo_nights: 14\nretention:\n  runs_days: 7\n", "shorter than store.undo_nights"),
    ("retention:\n  closed_items_days:\n    false_information: 30\n", "before the quarterly report"),
    ("retention:\n  access_log_days: 30\n", "who looked at a record kept"),
    ("retention:\n  complaints_days: 400\n", "still counted towards a re-check"),
    ("retention:\n  closed_items_days:\n    false: 3653\n", "unknown setting"),  # YAML's false: a boolean
    ("retention:\n  closed_items_days: null\n", "must be a section of settings"),
    ("retention:\n  runs_days: -1\n", "whole number of days"),
])
def test_a_policy_that_would_destroy_what_is_needed_is_refused(invoke, tmp_path, settings, says):
    os.environ["CUSTDQ_HASH_KEY"] = "custdq-test-key-0123456789abcdef0123456789"
    db = f"sqlite:///{tmp_path / 'a.db'}"
    run(invoke, tmp_path, db, NIGHTS[0], "a")
    config = tmp_path / "bad.yaml"
    config.write_text(settings, encoding="utf-8")
    for command in ("plan", "purge"):
        done = invoke("retention", command, "--as-of", AS_OF, "--db", db, "--config", str(config))
        assert done.exit_code == 2 and says in done.output and "Traceback" not in done.output
    assert snapshot(db)["counts"]["runs"] == 1


def test_a_purge_date_in_the_future_is_refused(invoke, tmp_path):
    os.environ["CUSTDQ_HASH_KEY"] = "custdq-test-key-0123456789abcdef0123456789"
    db = f"sqlite:///{tmp_path / 'a.db'}"
    run(invoke, tmp_path, db, NIGHTS[0], "a")
    done = invoke("retention", "purge", "--as-of", "2999-01-01", "--db", db)
    assert done.exit_code == 2 and "in the future" in done.output and len(done.output.strip().splitlines()) == 1
