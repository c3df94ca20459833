"""A second pair of eyes (issue 32, point 1; art. 13): a settled 核实无误 or 虚假资料 waits in
待复核 until a reviewer of its branch, who did not settle it, approves it (it closes, with its
suppressions and its place in the quarterly report) or returns it with a reason (back to
处理中). Through `cases import` (worklists filled in with openpyxl) and through a real
`custdq serve` process (the API and the pages), on a real SQLite file and on the PostgreSQL
server."""

from __future__ import annotations

import json
import os
import re

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.store.schema import item_events, items, suppressions
from tests.helpers import fill, item_of, policy, postgres_url, read_outputs, store_rows, write_csv
from tests.webserve import Client, Server, csrf_of, prepare

GD = "广东分公司"
PASSWORDS = {"gd": "gd-password-1", "rev": "rev-password-1", "rev_bj": "revbj-password-1"}


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'store' / 'cases.db'}" if request.param == "sqlite" else postgres_url()


def first_night(tmp_path, db) -> tuple[pd.DataFrame, object]:
    """P10, P11, P12 applicants whose sex contradicts their number; P30, P31 two customers on one phone."""
    rows = [policy(f"P{n}", n, applicant_sex="女", branch=GD) for n in (10, 11, 12)]
    rows += [policy("P30", 30, applicant_phone="13912340000", branch=GD),
             policy("P31", 31, applicant_phone="13912340000", branch=GD)]
    out = tmp_path / "night1"
    done = prepare("run", str(write_csv(tmp_path / "n1.csv", rows)), "--business-date", "2026-11-20", "--out",
                   str(out), "--quiet", "--db", db, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return read_outputs(out)[0], out


def stored(db: str, item_id: str) -> dict:
    frame = store_rows(db, items)
    return frame[frame["item_id"] == item_id].iloc[0].to_dict()


def test_an_imported_settlement_waits_for_its_review_and_goes_no_further(invoke, tmp_path, db):
    found, out = first_night(tmp_path, db)
    legit, false = item_of(found, "P30", "PHONE_SHARED"), item_of(found, "P10", "ID_SEX_MISMATCH")
    fixed = item_of(found, "P11", "ID_SEX_MISMATCH")
    filled = fill(out, {legit: ("已完成", "核实无误", "夫妻"), false: ("已完成", "虚假资料", "冒用身份"),
                        fixed: ("已完成", "已更正", "")}, tmp_path / "filled")
    done = invoke("cases", "import", *map(str, filled), "--by", "张三", "--db", db)
    assert done.exit_code == 0, done.output
    for item_id, result in ((legit, "核实无误"), (false, "虚假资料")):
        row = stored(db, item_id)
        assert (row["state"], row["work_state"], row["result"], row["disposed_by"]) == ("open", "待复核", result, "张三")
    assert stored(db, fixed)["state"] == "closed"  # 已更正 needs no review (the default)
    assert store_rows(db, suppressions).empty  # 核实无误 silences nothing before it is approved

    again = invoke("cases", "import", *map(str, filled), "--by", "张三", "--db", db)
    assert again.exit_code == 0 and "0 applied" in again.output  # the same file: nothing more
    changed = fill(out, {legit: ("处理中", "", "再核实")}, tmp_path / "changed")
    refused = invoke("cases", "import", *map(str, changed), "--by", "李四", "--db", db)
    assert refused.exit_code == 1 and "正在等待复核" in refused.output
    assert stored(db, legit)["work_state"] == "待复核"

    # the next night's worklist shows it as 待复核; returned as it was sent, it changes nothing
    rows = [policy(f"P{n}", n, applicant_sex="女", branch=GD) for n in (10, 11, 12)]
    rows += [policy("P30", 30, applicant_phone="13912340000", branch=GD),
             policy("P31", 31, applicant_phone="13912340000", branch=GD)]
    done = invoke("run", str(write_csv(tmp_path / "n2.csv", rows)), "--business-date", "2026-11-23", "--out",
                  str(tmp_path / "night2"), "--quiet", "--db", db)
    assert done.exit_code == 0, done.output
    listed = read_outputs(tmp_path / "night2")[0]
    assert set(listed[listed["item_id"].isin([legit, false])]["item_id"]) == {legit, false}
    book = next((tmp_path / "night2" / "worklists").glob("*.xlsx"))
    cells = pd.read_excel(book, dtype=str)
    assert cells.set_index("问题件编号").loc[legit, "处理状态"] == "待复核"
    sheet = openpyxl.load_workbook(book).active  # its fill-in cells read-only, the others' not
    at = {sheet.cell(r, 1).value: r for r in range(2, sheet.max_row + 1)}
    state = [c.value for c in sheet[1]].index("处理状态") + 1
    assert sheet.protection.sheet and sheet.cell(at[legit], state).protection.locked
    assert not sheet.cell(at[item_of(found, "P12", "ID_SEX_MISMATCH")], state).protection.locked
    typed = fill(tmp_path / "night2", {legit: ("待复核", "虚假资料", "夫妻")}, tmp_path / "typed")
    refused = invoke("cases", "import", *map(str, typed), "--by", "张三", "--db", db)
    assert refused.exit_code == 1 and "由系统在提交需复核的处理结果时设置" in refused.output
    as_sent = invoke("cases", "import", *map(str, fill(tmp_path / "night2", {}, tmp_path / "as-sent")), "--db", db)
    assert as_sent.exit_code == 0, as_sent.output


def test_review_can_be_switched_off_per_result(invoke, tmp_path, db):
    found, out = first_night(tmp_path, db)
    config = tmp_path / "review.yaml"
    config.write_text('review:\n  results: ["虚假资料"]\n', encoding="utf-8")
    legit = item_of(found, "P30", "PHONE_SHARED")
    filled = fill(out, {legit: ("已完成", "核实无误", "夫妻")}, tmp_path / "filled")
    assert invoke("cases", "import", *map(str, filled), "--by", "张三", "--db", db, "--config", str(config)).exit_code == 0
    assert stored(db, legit)["state"] == "closed" and not store_rows(db, suppressions).empty
    config.write_text('review:\n  results: ["无法联系"]\n', encoding="utf-8")
    bad = invoke("cases", "import", *map(str, filled), "--db", db, "--config", str(config))
    assert bad.exit_code == 2 and "review.results" in bad.output and "settles no item" in bad.output


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tmp_path_factory):
    """One night and one server for the module's tests; each test settles items of its own."""
    tmp_path = tmp_path_factory.mktemp(f"review-{request.param}")
    os.environ["CUSTDQ_HASH_KEY"] = "custdq-test-key-0123456789abcdef0123456789"
    db = f"sqlite:///{tmp_path / 'cases.db'}" if request.param == "sqlite" else postgres_url()
    found, _ = first_night(tmp_path, db)
    tokens = {}
    for name, role, branch in (("gd", "branch", GD), ("rev", "reviewer", GD), ("rev_bj", "reviewer", "北京分公司")):
        added = prepare("users", "add", name, "--role", role, "--branch", branch, "--new-branch", "--db", db,
                        stdin=f"{PASSWORDS[name]}\n{PASSWORDS[name]}\n", cwd=tmp_path)
        assert added.returncode == 0, added.stderr
        tokens[name] = prepare("users", "token", name, "--db", db, cwd=tmp_path).stdout.strip().splitlines()[-1]
    server = Server(db, tmp_path)
    yield {"server": server, "tokens": tokens, "db": db, "found": found}
    server.stop()


def settle(client: Client, item_id: str, result: str) -> dict:
    status, item = client.json("GET", f"/api/items/{item_id}")
    assert status == 200, item
    status, after = client.json("POST", f"/api/items/{item_id}/disposition",
                                {"state": "已完成", "result": result, "note": "已电话核实", "version": item["version"]})
    assert status == 200, after
    return after


def test_a_reviewer_approves_or_returns_and_never_their_own(site):
    api = {who: Client(site["server"].base, token) for who, token in site["tokens"].items()}
    legit, false = item_of(site["found"], "P30", "PHONE_SHARED"), item_of(site["found"], "P10", "ID_SEX_MISMATCH")
    pending = settle(api["gd"], legit, "核实无误")
    assert (pending["state"], pending["work_state"], pending["result"]) == ("open", "待复核", "核实无误")
    status, why = api["gd"].json("POST", f"/api/items/{legit}/disposition",
                                 {"state": "处理中", "result": "", "note": "", "version": pending["version"]})
    assert status == 422 and "正在等待复核" in why["error"]
    # a branch user may not review, a reviewer may not dispose, another branch's reviewer sees nothing
    assert api["gd"].json("POST", f"/api/items/{legit}/review", {"decision": "approve",
                                                                  "version": pending["version"]})[0] == 403
    assert api["rev"].json("POST", f"/api/items/{legit}/disposition", {"state": "处理中",
                                                                       "version": pending["version"]})[0] == 403
    assert api["rev_bj"].json("POST", f"/api/items/{legit}/review", {"decision": "approve",
                                                                      "version": pending["version"]})[0] == 404
    status, queue = api["rev"].json("GET", "/api/items?work_state=%E5%BE%85%E5%A4%8D%E6%A0%B8")
    assert status == 200 and legit in [i["item_id"] for i in queue["items"]]
    assert {i["work_state"] for i in queue["items"]} == {"待复核"}  # the queue: what waits, nothing else
    assert api["rev"].json("POST", f"/api/items/{legit}/review", {"decision": "return", "reason": "",
                                                                   "version": pending["version"]})[0] == 422
    assert api["rev"].json("POST", f"/api/items/{legit}/review", {"decision": "maybe",
                                                                   "version": pending["version"]})[0] == 422
    status, approved = api["rev"].json("POST", f"/api/items/{legit}/review", {"decision": "approve",
                                                                               "version": pending["version"]})
    assert status == 200, approved
    assert (approved["state"], approved["work_state"], approved["close_reason"]) == ("closed", "已完成", "legitimate")
    assert not store_rows(site["db"], suppressions).empty  # approved: now it silences the customers' finding
    again = api["rev"].json("POST", f"/api/items/{legit}/review", {"decision": "approve",
                                                                    "version": approved["version"]})
    assert again[0] == 422 and "不在待复核状态" in again[1]["error"]

    pending = settle(api["gd"], false, "虚假资料")
    status, returned = api["rev"].json("POST", f"/api/items/{false}/review", {
        "decision": "return", "reason": "缺少客户签字确认，电话 13912345678", "version": pending["version"]})
    assert status == 200, returned
    assert (returned["state"], returned["work_state"], returned["result"]) == ("open", "处理中", None)
    assert "缺少客户签字确认" in returned["reopen_reason"] and "13912345678" not in returned["reopen_reason"]
    status, one = api["gd"].json("GET", f"/api/items/{false}")
    assert [e["action"] for e in one["events"]] == ["raised", "disposed", "returned"]
    assert one["events"][-1]["who"] == "rev" and "缺少客户签字确认" in one["events"][-1]["what"]["reason"]

    # nobody reviews what they settled: a reviewer who settled it (here, through the store as an
    # import by that name would) is refused
    engine = sa.create_engine(site["db"])
    with engine.begin() as conn:
        conn.execute(items.update().where(items.c.item_id == false).values(
            work_state="待复核", result="虚假资料", disposed_by="rev"))
        conn.execute(item_events.insert().values(item_id=false, at="2026-11-21T10:00:00+08:00", who="rev", night=None,
                                                 action="disposed", what=json.dumps({}), before=None, source="test"))
    engine.dispose()
    status, item = api["rev"].json("GET", f"/api/items/{false}")
    refused = api["rev"].json("POST", f"/api/items/{false}/review", {"decision": "approve", "version": item["version"]})
    assert refused[0] == 422 and "本人提交" in refused[1]["error"]


def test_the_review_queue_and_its_form_in_the_pages(site):
    legit = item_of(site["found"], "P12", "ID_SEX_MISMATCH")
    settle(Client(site["server"].base, site["tokens"]["gd"]), legit, "核实无误")
    browser = Client(site["server"].base)
    assert browser.login("rev", PASSWORDS["rev"]) == 303
    status, _, home = browser.call("GET", "/items")
    assert status == 200 and "复核队列" in home
    status, _, queue = browser.call("GET", "/items?work_state=%E5%BE%85%E5%A4%8D%E6%A0%B8")
    assert status == 200 and legit in queue
    status, _, page = browser.call("GET", f"/items/{legit}")
    assert status == 200 and 'action="/items/' + legit + '/review"' in page and "/disposition" not in page
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    status, _, _ = browser.call("POST", f"/items/{legit}/review",
                                form={"csrf": csrf_of(page), "version": version, "decision": "approve", "reason": ""})
    assert status == 303
    status, _, page = browser.call("GET", f"/items/{legit}")
    assert "复核通过" in page and "已关闭" in page
    investigator = Client(site["server"].base)
    assert investigator.login("gd", PASSWORDS["gd"]) == 303
    assert "复核队列" not in investigator.call("GET", "/items")[2]
