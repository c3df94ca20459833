"""`custdq serve` (issue 18, SPEC 8) as a real uvicorn process on a loopback port, against a real
store a real night wrote: who may see what (SPEC 8's role table, IDOR), dispositions through
the API and the pages (the same checks as `cases import`, stale versions, CSRF), the next night
honouring them, the access log, login throttling, hostile text, the security headers."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import openpyxl
import pytest

from pipeline.outputs.worklists import COLUMNS
from tests.helpers import approve_all, policy, postgres_url, read_outputs, write_csv
from tests.webserve import Client, Server, csrf_of, custdq, prepare

GD, BJ = "广东分公司", "北京分公司"
PASSWORDS = {"gd": "gd-password-1", "gd2": "gd2-password-1", "bj": "bj-password-1", "boss": "boss-password", "audit": "audit-password",
             "root": "root-password"}
HOSTILE = '<script>alert("x")</script>'


def rows() -> list[dict]:
    out = [policy(f"P{n}", n, applicant_sex="女", branch=GD) for n in (10, 11, 12, 13, 14)]  # ID_SEX_MISMATCH
    out.append(policy("P20", 20, applicant_sex="女", branch=BJ))
    out += [policy("P30", 30, applicant_phone="13912340000", branch=GD),  # one phone, two customers, two branches
            policy("P31", 31, applicant_phone="13912340000", branch=BJ)]
    return out


def make_store(folder: Path, db: str) -> dict[str, str]:
    """A night of rows() in `db`, the users of every role, their tokens."""
    extract = write_csv(folder / "n1.csv", rows())
    night = prepare("run", str(extract), "--business-date", "2026-11-20", "--db", db, "--out", str(folder / "o1"),
                   "--quiet", cwd=folder)
    assert night.returncode == 0, night.stderr
    roles = {"gd": ("branch", [GD]), "gd2": ("branch", [GD]), "bj": ("branch", [BJ]), "boss": ("manager", []), "audit": ("compliance", []),
             "root": ("admin", [])}
    tokens = {}
    for name, (role, branches) in roles.items():
        added = prepare("users", "add", name, "--role", role, *[a for b in branches for a in ("--branch", b)],
                       "--db", db, stdin=f"{PASSWORDS[name]}\n{PASSWORDS[name]}\n", cwd=folder)
        assert added.returncode == 0, added.stderr
        token = prepare("users", "token", name, "--db", db, cwd=folder)
        assert token.returncode == 0, token.stderr
        tokens[name] = token.stdout.strip().splitlines()[-1]
    return tokens


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"web-{request.param}")
    os.environ["CUSTDQ_HASH_KEY"] = "custdq-test-key-0123456789abcdef0123456789"
    db = f"sqlite:///{folder / 'cases.db'}" if request.param == "sqlite" else postgres_url()
    tokens = make_store(folder, db)
    server = Server(db, folder)
    yield {"server": server, "tokens": tokens, "db": db, "folder": folder}
    server.stop()


def api(site, who: str | None) -> Client:
    return Client(site["server"].base, site["tokens"][who] if who else None)


def items_of(site, who: str, query: str = "") -> list[dict]:
    status, body = api(site, who).json("GET", "/api/items?limit=1000" + query)
    assert status == 200, body
    assert body["total"] == len(body["items"])
    return body["items"]


def test_each_role_sees_what_spec_8_allows(site):
    assert {i["branch"] for i in items_of(site, "gd")} == {GD}
    assert {i["branch"] for i in items_of(site, "bj")} == {BJ}
    every = items_of(site, "boss")
    assert {i["branch"] for i in every} == {GD, BJ} and items_of(site, "audit") == every
    assert len(every) == len(items_of(site, "gd")) + len(items_of(site, "bj"))
    assert all(isinstance(i["version"], int) and i["version"] >= 0 for i in every)  # 0: no event yet (raised by a night)
    assert api(site, "root").json("GET", "/api/items")[0] == 403  # admin: users, no items
    assert api(site, None).json("GET", "/api/items")[0] == 401
    assert Client(site["server"].base, "not-a-token").json("GET", "/api/items")[0] == 401
    for who, allowed in {"gd": False, "boss": False, "audit": True, "root": False}.items():
        assert (api(site, who).json("GET", "/api/access-log")[0] == 200) is allowed, who


def test_another_branchs_item_reads_exactly_like_an_unknown_one(site):
    theirs = items_of(site, "bj")[0]["item_id"]
    other = api(site, "gd").call("GET", f"/api/items/{theirs}")
    unknown = api(site, "gd").call("GET", "/api/items/DQ0000000000000000")
    assert other[0] == unknown[0] == 404 and other[2] == unknown[2]
    assert api(site, "gd").json("POST", f"/api/items/{theirs}/disposition",
                                {"state": "处理中", "result": "", "note": "", "version": 1})[0] == 404
    assert api(site, "bj").json("GET", f"/api/items/{theirs}")[0] == 200


def test_the_shared_cluster_shows_another_branchs_item_masked(site):
    shared = [i for i in items_of(site, "gd") if i["rule_code"] == "PHONE_SHARED"]
    assert len(shared) == 1
    browser = Client(site["server"].base)
    assert browser.login("gd", PASSWORDS["gd"]) == 303
    status, _, page = browser.call("GET", f"/items/{shared[0]['item_id']}")
    other = re.findall(r'<tr class="other">(.*?)</tr>', page, re.S)
    assert status == 200 and len(other) == 1
    assert "P*1" in other[0] and BJ in other[0] and "P31" not in other[0]  # masked number and branch only
    theirs = [i["item_id"] for i in items_of(site, "bj") if i["rule_code"] == "PHONE_SHARED"]
    assert len(theirs) == 1 and theirs[0] not in page  # no id, no link to an item they may not see


def test_a_disposition_through_the_api_then_a_stale_one_and_a_refused_one(site):
    mine = [i for i in items_of(site, "gd", "&rule=ID_SEX_MISMATCH") if i["policy_no"] == "P10"][0]
    client = api(site, "gd")
    path = f"/api/items/{mine['item_id']}/disposition"
    status, body = client.json("POST", path, {"state": "处理中", "result": "无法联系", "note": "客户电话 13912345678 未接",
                                              "version": mine["version"]})
    assert status == 200, body
    assert (body["work_state"], body["result"], body["state"]) == ("处理中", "无法联系", "open")
    assert "13912345678" not in body["note"] and body["version"] > mine["version"]
    stale, why = client.json("POST", path, {"state": "已完成", "result": "已更正", "note": "", "version": mine["version"]})
    assert stale == 409 and "gd" in why["error"]
    refused, why = client.json("POST", path, {"state": "已完成", "result": "", "note": "", "version": body["version"]})
    assert refused == 422 and why["error"] == "处理状态为已完成，但未填写处理结果"
    assert api(site, "boss").json("POST", path, {"state": "处理中", "version": body["version"]})[0] == 403
    for bad in (True, 1.5, "1e9", None, [1]):
        assert client.json("POST", path, {"state": "处理中", "result": "", "note": "", "version": bad})[0] == 422, bad
    assert client.call("POST", path, body={"note": "x" * 70_000, "version": body["version"]})[0] == 413
    assert client.call("POST", path, body=[])[0] == 400
    status, one = client.json("GET", f"/api/items/{mine['item_id']}")
    assert [e["action"] for e in one["events"]] == ["raised", "disposed"] and one["events"][-1]["who"] == "gd"


def test_the_next_night_honours_web_dispositions(site):
    folder, db = site["folder"], site["db"]
    gd = {i["policy_no"]: i for i in items_of(site, "gd", "&rule=ID_SEX_MISMATCH")}
    client = api(site, "gd")
    for no, result in (("P11", "核实无误"), ("P12", "已更正")):
        status, body = client.json("POST", f"/api/items/{gd[no]['item_id']}/disposition",
                                   {"state": "已完成", "result": result, "note": "", "version": gd[no]["version"]})
        assert status == 200 and body["state"] == ("open" if result == "核实无误" else "closed"), body
    assert approve_all(db) == 1  # 核实无误 waited for its review (tests/test_review.py): approved
    again = custdq("run", str(folder / "n1.csv"), "--business-date", "2026-11-23", "--db", db,
                   "--out", str(folder / "o2"), "--quiet", cwd=folder)
    assert again.returncode == 0, again.stderr
    listed = read_outputs(folder / "o2")[0]
    assert gd["P11"]["item_id"] not in set(listed["item_id"])  # confirmed legitimate: suppressed
    reopened = listed[listed["item_id"] == gd["P12"]["item_id"]]
    assert len(reopened) == 1 and reopened["status"].iloc[0] == "open"  # corrected, yet fires: reopened
    status, body = client.json("GET", f"/api/items/{gd['P12']['item_id']}")
    assert body["state"] == "open" and body["events"][-1]["action"] == "reopened"


def test_pages_refuse_a_form_without_its_csrf_token(site):
    browser = Client(site["server"].base)
    assert browser.login("gd", PASSWORDS["gd"]) == 303
    item = [i for i in items_of(site, "gd", "&rule=ID_SEX_MISMATCH") if i["policy_no"] == "P13"][0]
    status, _, page = browser.call("POST", f"/items/{item['item_id']}/disposition",
                                   form={"state": "处理中", "result": "", "note": "", "version": item["version"]})
    assert status == 403 and "CSRF" in page
    assert api(site, "gd").json("GET", f"/api/items/{item['item_id']}")[1]["work_state"] == "未处理"
    assert Client(site["server"].base).call("POST", "/login", form={"name": "gd", "password": PASSWORDS["gd"]})[0] == 403


def test_hostile_notes_are_shown_escaped(site):
    item = [i for i in items_of(site, "gd", "&rule=ID_SEX_MISMATCH") if i["policy_no"] == "P14"][0]
    status, _ = api(site, "gd").json("POST", f"/api/items/{item['item_id']}/disposition",
                                     {"state": "处理中", "result": "", "note": HOSTILE, "version": item["version"]})
    assert status == 200
    browser = Client(site["server"].base)
    browser.login("gd", PASSWORDS["gd"])
    status, headers, page = browser.call("GET", f"/items/{item['item_id']}")
    assert status == 200 and HOSTILE not in page and "&lt;script&gt;" in page
    policy = headers["content-security-policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy and "unsafe" not in policy
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"


def test_the_access_log_holds_every_look(site):
    mine = items_of(site, "bj")
    api(site, "bj").json("GET", f"/api/items/{mine[0]['item_id']}")
    status, body = api(site, "audit").json("GET", "/api/access-log?user=bj")
    assert status == 200
    looks = [e for e in body["entries"] if e["path"] == f"/api/items/{mine[0]['item_id']}"]
    assert looks and looks[-1]["status"] == 200 and looks[-1]["item_ids"] == mine[0]["item_id"]
    assert looks[-1]["client"] == "127.0.0.1" and looks[-1]["method"] == "GET"
    listed = [e for e in body["entries"] if e["path"].startswith("/api/items?")]
    assert listed and set(listed[-1]["item_ids"].split(",")) == {i["item_id"] for i in mine}
    refused = api(site, "gd").call("GET", "/api/access-log")
    assert refused[0] == 403
    shown = custdq("audit", "list", "--user", "bj", "--db", site["db"], cwd=site["folder"])
    assert shown.returncode == 0 and mine[0]["item_id"] in shown.stdout


# SPEC 8's table, endpoint by endpoint: the status each role gets (401/303: not signed in)
PAGES = {"/items": {"gd": 200, "boss": 200, "audit": 200, "root": 403, None: 303},
         "/access-log": {"gd": 403, "boss": 403, "audit": 200, "root": 403, None: 303},
         "/dashboard": {"gd": 200, "boss": 200, "audit": 200, "root": 403, None: 303},
         "/items.xlsx": {"gd": 200, "boss": 200, "audit": 200, "root": 403, None: 303},
         "/users": {"gd": 403, "boss": 403, "audit": 403, "root": 200, None: 303},
         "/report/quarterly": {"gd": 403, "boss": 200, "audit": 200, "root": 403, None: 303},
         "/report/quarterly?quarter=2026Q4": {"gd": 403, "boss": 200, "audit": 200, "root": 403, None: 303},
         "/report/quarterly?quarter=2026-4": {"boss": 422}}
CALLS = {"/api/items": {"gd": 200, "boss": 200, "audit": 200, "root": 403, None: 401},
         "/api/dashboard": {"gd": 200, "boss": 200, "audit": 200, "root": 403, None: 401},
         "/api/access-log": {"gd": 403, "boss": 403, "audit": 200, "root": 403, None: 401}}


def test_every_endpoint_answers_each_role_as_spec_8_says(site):
    item = items_of(site, "gd", "&rule=PHONE_SHARED")[0]
    pages = dict(PAGES, **{f"/items/{item['item_id']}": {"gd": 200, "bj": 404, "boss": 200, "audit": 200,
                                                         "root": 403, None: 303}})
    calls = dict(CALLS, **{f"/api/items/{item['item_id']}": {"gd": 200, "bj": 404, "boss": 200, "audit": 200,
                                                             "root": 403, None: 401}})
    for path, answers in pages.items():
        for who, expected in answers.items():
            browser = Client(site["server"].base)
            if who:
                assert browser.login(who, PASSWORDS[who]) == 303, who
            assert browser.call("GET", path)[0] == expected, (path, who)
    for path, answers in calls.items():
        for who, expected in answers.items():
            assert api(site, who).call("GET", path)[0] == expected, (path, who)
    post = f"/api/items/{item['item_id']}/disposition"
    for who, expected in {"boss": 403, "audit": 403, "root": 403, "bj": 404, None: 401}.items():
        assert api(site, who).json("POST", post, {"state": "处理中", "version": item["version"]})[0] == expected, who
    branch = api(site, "gd").json("GET", "/api/dashboard")[1]
    assert {b["key"] for b in branch["branches"]} == {GD} and "rules" not in branch  # its branches only
    assert {b["key"] for b in api(site, "boss").json("GET", "/api/dashboard")[1]["branches"]} == {GD, BJ}


def test_two_users_settling_one_item_the_second_is_told_who_came_first(site):
    item = items_of(site, "gd", "&rule=PHONE_SHARED")[0]
    first, second = api(site, "gd"), api(site, "gd2")
    body = {"state": "处理中", "result": "", "note": "已致电", "version": item["version"]}
    assert first.json("POST", f"/api/items/{item['item_id']}/disposition", body)[0] == 200
    status, why = second.json("POST", f"/api/items/{item['item_id']}/disposition", dict(body, note="另一说明"))
    assert status == 409 and "已被 gd 于" in why["error"]
    assert api(site, "gd").json("GET", f"/api/items/{item['item_id']}")[1]["note"] == "已致电"



def test_a_session_ends_after_its_idle_time_and_lives_while_used(site):
    config = site["folder"] / "idle.yaml"
    config.write_text("web:\n  session_idle_minutes: 0.1\n", encoding="utf-8")  # 6 seconds
    server = Server(site["db"], site["folder"], "--config", str(config))
    try:
        browser = Client(server.base)
        assert browser.login("gd", PASSWORDS["gd"]) == 303
        for _ in range(4):  # a request every 2.5 s keeps it alive past its 6 s
            time.sleep(2.5)
            assert browser.call("GET", "/items")[0] == 200
        time.sleep(8.5)
        status, headers, _ = browser.call("GET", "/items")
        assert status == 303 and headers["location"] == "/login"
    finally:
        server.stop()


def test_two_worker_processes_serve_one_store_and_log_every_look(site):
    config = site["folder"] / "workers.yaml"
    config.write_text("web:\n  workers: 2\n", encoding="utf-8")
    server = Server(site["db"], site["folder"], "--config", str(config))
    try:
        before = api(site, "audit").json("GET", "/api/access-log?user=gd&limit=10000")[1]["entries"]
        mine = [i for i in items_of(site, "gd") if i["rule_code"] == "ID_SEX_MISMATCH"][-1]
        clients = [Client(server.base, site["tokens"]["gd"]) for _ in range(6)]  # new connections, either worker
        seen = {c.json("GET", f"/api/items/{mine['item_id']}")[1]["version"] for c in clients}
        assert seen == {mine["version"]}
        status, after = clients[0].json("POST", f"/api/items/{mine['item_id']}/disposition",
                                        {"state": "处理中", "result": "", "note": "两个进程", "version": mine["version"]})
        assert status == 200, after
        assert {c.json("GET", f"/api/items/{mine['item_id']}")[1]["version"] for c in clients} == {after["version"]}
        assert clients[1].json("POST", f"/api/items/{mine['item_id']}/disposition",  # the stale form, in the other
                               {"state": "已完成", "result": "已更正", "note": "", "version": mine["version"]})[0] == 409
        logged = api(site, "audit").json("GET", "/api/access-log?user=gd&limit=10000")[1]["entries"]
        assert len(logged) - len(before) == 6 + 1 + 6 + 1 + 1  # the items_of above is one more look
    finally:
        server.stop()


def test_a_trusted_proxy_header_names_the_user(site):
    config = site["folder"] / "sso.yaml"
    config.write_text("web:\n  trusted_user_header: X-Remote-User\n", encoding="utf-8")
    server = Server(site["db"], site["folder"], "--config", str(config))
    try:
        client = Client(server.base)
        status, _, page = client.call("GET", "/items", headers={"X-Remote-User": "boss"})
        assert status == 200 and "boss（管理人员）" in page
        assert client.call("GET", "/items")[0] == 303
        assert client.call("GET", "/items", headers={"X-Remote-User": "nobody"})[0] == 303
    finally:
        server.stop()



def test_counts_are_exact_up_to_the_limit_and_say_more_beyond_it(site):
    every = items_of(site, "boss")  # the real figures, from the server whose limit is 10,000
    by_category: dict[str, int] = {}
    for i in every:
        by_category[i["category"]] = by_category.get(i["category"], 0) + 1
    small, large = min(by_category, key=by_category.get), max(by_category, key=by_category.get)
    limit = by_category[small] + 1 if by_category[large] > by_category[small] + 1 else by_category[small]
    assert by_category[large] > limit  # the store has a category above the limit and one within it
    config = site["folder"] / "counts.yaml"
    config.write_text(f"web:\n  count_limit: {limit}\n", encoding="utf-8")
    server = Server(site["db"], site["folder"], "--config", str(config))
    try:
        client = Client(server.base, site["tokens"]["boss"])
        q = urllib.parse.quote
        status, body = client.json("GET", f"/api/items?limit=1&category={q(small)}")
        assert status == 200 and (body["total"], body["total_more"]) == (by_category[small], False)
        status, body = client.json("GET", f"/api/items?limit=1&category={q(large)}")
        assert status == 200 and (body["total"], body["total_more"], body["next"]) == (limit, True, True)
        status, body = client.json("GET", f"/api/items?limit=1000&category={q(large)}")
        assert len(body["items"]) == by_category[large] and body["next"] is False  # every row is still listed
        browser = Client(server.base)
        assert browser.login("boss", PASSWORDS["boss"]) == 303
        status, _, page = browser.call("GET", f"/items?limit=20&category={q(large)}")
        assert status == 200 and f"超过 <strong>{limit}</strong> 件未结问题件" in page
        status, _, page = browser.call("GET", f"/items?limit=20&category={q(small)}")
        assert f"共 <strong>{by_category[small]}</strong> 件未结问题件" in page and "下一页" not in page
    finally:
        server.stop()


def test_the_export_is_the_lists_items_as_a_worklist_that_imports_back(site):
    browser = Client(site["server"].base)
    browser.login("gd", PASSWORDS["gd"])
    status, headers, _ = browser.call("GET", "/items.xlsx?rule=ID_SEX_MISMATCH")
    assert status == 200 and headers["content-type"].startswith("application/vnd.openxmlformats")
    path = site["folder"] / "export.xlsx"
    req = urllib.request.Request(site["server"].base + "/items.xlsx?rule=ID_SEX_MISMATCH")
    path.write_bytes(browser.opener.open(req, timeout=30).read())
    sheet = openpyxl.load_workbook(path).active
    header = [c.value for c in sheet[1]]
    assert header == [h for h, _, _ in COLUMNS]
    exported = [dict(zip(header, [c.value for c in r])) for r in sheet.iter_rows(min_row=2)]
    listed = items_of(site, "gd", "&rule=ID_SEX_MISMATCH")
    assert [r["问题件编号"] for r in exported] == [i["item_id"] for i in listed]
    target = exported[-1]
    sheet.cell(row=len(exported) + 1, column=header.index("处理状态") + 1, value="处理中")
    sheet.cell(row=len(exported) + 1, column=header.index("处理说明") + 1, value="导出后填写")
    openpyxl.Workbook.save(sheet.parent, path)
    back = custdq("cases", "import", str(path), "--by", "gd", "--db", site["db"], cwd=site["folder"])
    assert back.returncode == 0, back.stderr
    after = api(site, "gd").json("GET", f"/api/items/{target['问题件编号']}")[1]
    assert (after["work_state"], after["note"]) == ("处理中", "导出后填写")


def test_the_dashboard_links_to_the_items_behind_its_figures(site):
    browser = Client(site["server"].base)
    browser.login("boss", PASSWORDS["boss"])
    status, _, page = browser.call("GET", "/dashboard")
    links = set(re.findall(r'href="(/items\?[^"]+)"', page))
    assert status == 200 and links
    branch_link = [link for link in links if link.startswith("/items?branch=") and "overdue" not in link]
    assert len(branch_link) == 2
    for link in branch_link:
        shown = browser.call("GET", link.replace("&amp;", "&"))[2]
        branch = urllib.parse.unquote_plus(link.split("=", 1)[1])
        other = BJ if branch == GD else GD
        assert branch in shown and f"<td>{other}</td>" not in shown
    mine = Client(site["server"].base)
    mine.login("gd", PASSWORDS["gd"])
    page = mine.call("GET", "/dashboard")[2]
    assert GD in page and BJ not in page


def test_overdue_means_one_thing_on_the_dashboard_the_list_and_cases_list(site):
    """Issue 28: the dashboards count overdue as of today, as the list and `cases list` do, say
    so, and each overdue figure links to a list of exactly that many items."""
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    status, board = api(site, "boss").json("GET", "/api/dashboard")
    assert status == 200 and board["as_of"] == today
    total = sum(a["overdue"] for a in board["ageing"])
    assert total > 0  # the night's items are past their deadlines by now
    for row in board["ageing"]:
        status, listed = api(site, "boss").json(
            "GET", "/api/items?limit=1000&overdue=1&branch=" + urllib.parse.quote(row["branch"]))
        assert status == 200 and listed["total"] == row["overdue"], (row, listed["total"])
    listed = custdq("cases", "list", "--overdue", "--db", site["db"], cwd=site["folder"])
    assert f"{total} overdue as of {today}" in listed.stderr, listed.stderr
    browser = Client(site["server"].base)
    browser.login("boss", PASSWORDS["boss"])
    page = browser.call("GET", "/dashboard")[2]
    assert f"截至 {today}" in page
    made = custdq("dashboard", "--db", site["db"], "--out", str(site["folder"] / "board.html"), cwd=site["folder"])
    assert made.returncode == 0, made.stderr
    html = (site["folder"] / "board.html").read_text(encoding="utf-8")
    assert f"逾期问题件（截至 {today}）" in html and f">{total:,}<" in html


def test_the_list_counts_its_items_by_work_state(site):
    """Issue 28: above the list, how many of the items the filters match are in each 处理状态,
    each linking to that list; the figures are the API's totals for the same filters."""
    browser = Client(site["server"].base)
    browser.login("gd", PASSWORDS["gd"])
    for query in ("", "?rule=ID_SEX_MISMATCH"):
        page = browser.call("GET", "/items" + query)[2]
        shown = dict(re.findall(r'<a href="/items\?[^"]*work_state=[^"]*">(\S+) <strong>([\d,]+)</strong></a>', page))
        assert set(shown) == {"未处理", "处理中", "已完成", "待复核"}, shown
        for state, n in shown.items():
            more = ("&" + query[1:]) if query else ""
            total = api(site, "gd").json("GET", f"/api/items?limit=1&work_state={urllib.parse.quote(state)}{more}")[1]
            assert int(n.replace(",", "")) == total["total"], (query, state, n, total["total"])
        assert sum(int(n.replace(",", "")) for n in shown.values()) == int(re.search(r"共 <strong>(\d+)</strong>", page)[1])


def test_hostile_user_and_branch_names_are_shown_escaped(site):
    name, branch = '<b onmouseover="x()">evil</b>', '<img src=x onerror=alert(1)>分公司'
    added = custdq("users", "add", name, "--role", "branch", "--branch", branch, "--new-branch", "--db", site["db"],
                   stdin="evil-password-1\nevil-password-1\n", cwd=site["folder"])
    assert added.returncode == 0, added.stderr
    browser = Client(site["server"].base)
    assert browser.login(name, "evil-password-1") == 303
    status, _, page = browser.call("GET", "/items")
    assert status == 200 and name not in page and branch not in page
    assert "&lt;b onmouseover=&#34;x()&#34;&gt;evil&lt;/b&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;分公司" in page
    assert "共 <strong>0</strong> 件" in page  # a branch with no items: nothing of anyone else's



def test_signing_out_ends_the_session_and_every_copy_of_its_cookie(site):
    browser = Client(site["server"].base)
    assert browser.login("audit", PASSWORDS["audit"]) == 303
    copy = Client(site["server"].base)
    for cookie in browser.jar:
        copy.jar.set_cookie(cookie)
    assert copy.call("GET", "/items")[0] == 200
    page = browser.call("GET", "/items")[2]
    assert browser.call("POST", "/logout", form={"csrf": csrf_of(page)})[0] == 303
    assert copy.call("GET", "/items")[0] == 303  # the copied cookie no longer signs anyone in
    again = Client(site["server"].base)
    assert again.login("audit", PASSWORDS["audit"]) == 303 and again.call("GET", "/items")[0] == 200


# last: it locks a user and disables another
def test_five_wrong_passwords_lock_the_user_and_a_disabled_user_is_out(site):
    browser = Client(site["server"].base)
    for _ in range(5):
        assert browser.login("root", "wrong-password") == 401
    assert browser.login("root", PASSWORDS["root"]) == 401  # locked, even with the right password
    locked = browser.call("POST", "/login", form={"name": "root", "password": PASSWORDS["root"],
                                                  "csrf": csrf_of(browser.call("GET", "/login")[2])})
    unknown = browser.call("POST", "/login", form={"name": "nobody", "password": "whatever-1",
                                                   "csrf": csrf_of(browser.call("GET", "/login")[2])})
    assert locked[0] == unknown[0] == 401 and locked[2] == unknown[2]  # a locked name reads as an unknown one
    token = Client(site["server"].base, site["tokens"]["bj"])
    assert token.json("GET", "/api/items")[0] == 200
    off = custdq("users", "disable", "bj", "--db", site["db"], cwd=site["folder"])
    assert off.returncode == 0, off.stderr
    assert token.json("GET", "/api/items")[0] == 401
