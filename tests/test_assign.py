"""Assignment and bulk work (issue 32, point 3): a lead assigns items of the branch to a named
user (some at once, or every item a filter matches), the list's 我的 and 未分配 views, and one
disposition for a selection in one transaction, each item its own event, version-checked and
refused whole with the reasons. A real `custdq serve` process on a real SQLite file and on the
PostgreSQL server; the pages' form as a browser posts it."""

from __future__ import annotations

import os
import re

import pytest

from pipeline.store.schema import item_events
from tests.helpers import policy, postgres_url, read_outputs, store_rows, write_csv
from tests.webserve import Client, Server, csrf_of, prepare

GD, BJ, SZ, ZJ = "广东分公司", "北京分公司", "深圳分公司", "浙江分公司"
# one store and one server for the module; each test works in a branch of its own (GD: assignment
# and teams, SZ: bulk dispositions, ZJ: the list page), so no test depends on another's changes
USERS = {"lead": ("lead", GD), "gd": ("branch", GD), "gd2": ("branch", GD), "bj": ("branch", BJ),
         "sz": ("branch", SZ), "zjlead": ("lead", ZJ), "zj": ("branch", ZJ), "zj2": ("branch", ZJ)}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"assign-{request.param}")
    os.environ["CUSTDQ_HASH_KEY"] = "custdq-test-key-0123456789abcdef0123456789"
    db = f"sqlite:///{folder / 'cases.db'}" if request.param == "sqlite" else postgres_url()
    rows = [policy(f"P{n}", n, applicant_sex="女", branch=GD, agent_code="A1" if n < 13 else "A2")
            for n in range(10, 16)]  # six ID_SEX_MISMATCH, two agents
    rows += [policy(f"P{n}", n, applicant_sex="女", branch=SZ, agent_code="S1") for n in range(40, 46)]
    rows += [policy(f"P{n}", n, applicant_sex="女", branch=ZJ, agent_code="Z1") for n in range(50, 56)]
    rows.append(policy("P20", 20, applicant_sex="女", branch=BJ, agent_code="B1"))
    roster = write_csv(folder / "agents.csv", [
        {"业务员代码": code, "业务员姓名": name, "业务员电话": phone, "管理机构": branch, "团队": team, "团队主管": leader}
        for code, name, phone, branch, team, leader in (("A1", "甲", "13600000001", GD, "一组", "王组长"),
                                                        ("A2", "乙", "13600000002", GD, "二组", "李组长"),
                                                        ("B1", "丙", "13600000003", BJ, "北一组", "赵组长"),
                                                        ("S1", "丁", "13600000004", SZ, "深一组", "钱组长"),
                                                        ("Z1", "戊", "13600000005", ZJ, "浙一组", "孙组长"))])
    done = prepare("run", str(write_csv(folder / "n1.csv", rows)), "--business-date", "2026-11-20", "--out",
                   str(folder / "o1"), "--quiet", "--db", db, "--agents", str(roster), cwd=folder)
    assert done.returncode == 0, done.stderr
    tokens = {}
    for name, (role, branch) in USERS.items():
        added = prepare("users", "add", name, "--role", role, "--branch", branch, "--db", db,
                        stdin=f"{name}-password-1\n{name}-password-1\n", cwd=folder)
        assert added.returncode == 0, added.stderr
        tokens[name] = prepare("users", "token", name, "--db", db, cwd=folder).stdout.strip().splitlines()[-1]
    server = Server(db, folder)
    yield {"server": server, "tokens": tokens, "db": db, "found": read_outputs(folder / "o1")[0]}
    server.stop()


def api(site, who: str) -> Client:
    return Client(site["server"].base, site["tokens"][who])


def listed(site, who: str, query: str = "") -> list[dict]:
    status, body = api(site, who).json("GET", "/api/items?limit=100" + query)
    assert status == 200, body
    return body["items"]


def test_a_lead_assigns_by_choice_and_by_filter_and_the_list_has_mine_and_unassigned(site):
    gd = sorted(i["item_id"] for i in listed(site, "lead"))
    assert len(gd) >= 6 and listed(site, "gd", "&assignee=me") == []
    status, body = api(site, "lead").json("POST", "/api/items/assign", {"item_ids": gd[:2], "assignee": "gd"})
    assert status == 200, body
    assert [i["assignee"] for i in body["items"]] == ["gd", "gd"]
    assert sorted(i["item_id"] for i in listed(site, "gd", "&assignee=me")) == gd[:2]
    assert sorted(i["item_id"] for i in listed(site, "lead", "&assignee=none")) == gd[2:]
    # by filter: every unassigned item of the branch to gd2
    status, body = api(site, "lead").json("POST", "/api/items/assign",
                                          {"filter": {"assignee": "none"}, "assignee": "gd2"})
    assert status == 200 and sorted(i["item_id"] for i in body["items"]) == gd[2:]
    assert listed(site, "lead", "&assignee=none") == []
    events = store_rows(site["db"], item_events)
    assigned = events[(events["action"] == "assigned") & events["item_id"].isin(gd)]
    assert sorted(assigned["item_id"]) == gd and set(assigned["who"]) == {"lead"} and set(assigned["source"]) == {"web"}

    # refused whole: an assignee of another branch, a user who does not exist, another branch's item
    theirs = listed(site, "bj")[0]["item_id"]
    for body, code in (({"item_ids": gd[:1], "assignee": "bj"}, 422), ({"item_ids": gd[:1], "assignee": "nobody"}, 422),
                       ({"item_ids": [gd[0], theirs], "assignee": "gd"}, 404),
                       ({"item_ids": gd[:1], "filter": {}, "assignee": "gd"}, 422),
                       ({"filter": "assignee=none", "assignee": "gd"}, 422),  # the list's filters as an object
                       ({"filter": {"sort": "branch"}, "assignee": "gd"}, 422),  # which items, not their order
                       ({"filter": {"rule": "NO_SUCH_RULE"}, "assignee": "gd"}, 422)):
        assert api(site, "lead").json("POST", "/api/items/assign", body)[0] == code, body
    assert listed(site, "lead", "&assignee=gd2")[0]["assignee"] == "gd2"  # nothing changed
    assert api(site, "gd").json("POST", "/api/items/assign", {"item_ids": gd[:1], "assignee": "gd"})[0] == 403
    # unassigned again
    status, body = api(site, "lead").json("POST", "/api/items/assign", {"item_ids": gd[:1], "assignee": None})
    assert status == 200 and body["items"][0]["assignee"] is None


def test_a_bulk_disposition_is_one_transaction_refused_whole(site):
    mine = listed(site, "sz")
    chosen = [{"item_id": i["item_id"], "version": i["version"]} for i in mine[:3]]
    status, body = api(site, "sz").json("POST", "/api/items/disposition",
                                        {"items": chosen, "state": "处理中", "result": "无法联系", "note": "已致电"})
    assert status == 200, body
    assert [(i["work_state"], i["result"]) for i in body["items"]] == [("处理中", "无法联系")] * 3
    events = store_rows(site["db"], item_events)
    bulk = events[(events["action"] == "disposed") & (events["source"] == "web bulk")]
    assert sorted(bulk[bulk["item_id"].isin([c["item_id"] for c in chosen])]["item_id"]) == sorted(
        c["item_id"] for c in chosen)  # one event each

    # one stale version among fresh ones: nothing changes, the answer names it
    fresh = {i["item_id"]: i["version"] for i in listed(site, "sz")}
    stale = [{"item_id": c["item_id"], "version": c["version"]} for c in chosen[:1]] + [
        {"item_id": i["item_id"], "version": fresh[i["item_id"]]} for i in mine[3:5]]
    status, why = api(site, "sz").json("POST", "/api/items/disposition",
                                       {"items": stale, "state": "已完成", "result": "已更正", "note": ""})
    assert status == 409 and [r["item_id"] for r in why["refused"]] == [chosen[0]["item_id"]]
    assert all(i["state"] == "open" for i in listed(site, "sz"))
    # a disposition import would refuse: refused whole with the reason
    status, why = api(site, "sz").json("POST", "/api/items/disposition", {
        "items": [{"item_id": i, "version": v} for i, v in list(fresh.items())[3:5]], "state": "已完成", "result": ""})
    assert status == 422 and why["refused"][0]["reason"] == "处理状态为已完成，但未填写处理结果"
    theirs = listed(site, "bj")[0]
    assert api(site, "sz").json("POST", "/api/items/disposition", {
        "items": [{"item_id": theirs["item_id"], "version": theirs["version"]}], "state": "处理中"})[0] == 404
    assert api(site, "sz").json("POST", "/api/items/disposition", {
        "items": [{"item_id": mine[5]["item_id"], "version": fresh[mine[5]["item_id"]]}] * 2, "state": "处理中"})[0] == 422


def test_the_list_page_assigns_and_settles_a_selection(site):
    browser = Client(site["server"].base)
    assert browser.login("zjlead", "zjlead-password-1") == 303
    status, _, page = browser.call("GET", "/items?assignee=none")
    assert status == 200 and "分派所选" in page and "批量处理所选" in page and '<option value="zj">zj</option>' in page
    boxes = re.findall(r'name="item" value="([^"]+)"', page)
    versions = dict(re.findall(r'name="version-([^"]+)" value="(\d+)"', page))
    assert len(boxes) == len(listed(site, "zjlead")) >= 6
    form = [("csrf", csrf_of(page)), ("back", "assignee=none"), ("action", "assign"), ("assignee", "zj2"),
            ("item", boxes[0]), ("item", boxes[1])]
    status, headers, _ = browser.call("POST", "/items/many", form=form)  # a list: `item` twice, as a browser sends it
    assert status == 303 and "saved=assigned" in headers["location"] and "assignee=none" in headers["location"]
    assert {i["item_id"] for i in listed(site, "zj2", "&assignee=me")} == set(boxes[:2])
    status, _, page = browser.call("GET", "/items?assignee=none")
    assert len(re.findall(r'name="item" value="', page)) == len(boxes) - 2
    form = [("csrf", csrf_of(page)), ("back", ""), ("action", "dispose"), ("state", "处理中"), ("result", "无法联系"),
            ("note", "批量"), *[(k, v) for b in boxes[2:4] for k, v in (("item", b), (f"version-{b}", versions[b]))]]
    status, headers, _ = browser.call("POST", "/items/many", form=form)
    assert status == 303 and "saved=disposed" in headers["location"]
    states = {i["item_id"]: i["work_state"] for i in listed(site, "zjlead")}
    assert [states[b] for b in boxes[2:4]] == ["处理中", "处理中"]
    investigator = Client(site["server"].base)
    assert investigator.login("zj", "zj-password-1") == 303
    page = investigator.call("GET", "/items")[2]
    assert "批量处理所选" in page and "分派所选" not in page  # a branch user settles, never assigns


def test_items_show_their_agents_team_and_the_list_filters_by_it(site):
    """The roster's optional 团队 and 团队主管 (issue 32): on each item, and a filter of the list."""
    every = listed(site, "lead")
    assert {(i["agent_code"], i["team"], i["team_leader"]) for i in every} == {("A1", "一组", "王组长"),
                                                                            ("A2", "二组", "李组长")}
    first = listed(site, "lead", "&team=%E4%B8%80%E7%BB%84")  # 一组
    assert first and {i["agent_code"] for i in first} == {"A1"}
    assert listed(site, "bj", "&team=%E4%B8%80%E7%BB%84") == []  # another branch's team: nothing of theirs
    browser = Client(site["server"].base)
    assert browser.login("lead", "lead-password-1") == 303
    page = browser.call("GET", f"/items/{first[0]['item_id']}")[2]
    assert "团队主管" in page and "王组长" in page
