"""The dashboard a manager opens every morning (issue 28, point 5), on a store of two generated
nights with a roster and a worklist the teams filled in between them:

- the figures: the quarter's disposition progress per branch adds up to the items in the store,
  its overdue is the list's overdue, its 虚假资料 are the quarterly report's, the agents carry
  the roster's names; the API gives the same figures, a branch user only their own branches';
- the pages: `dashboard.html` (ECharts inline, allowed by its own CSP's hashes) and the web
  app's /dashboard (ECharts served by the app, CSP `script-src 'self'`) opened in a real
  Chromium: every chart drawn, no console message, no CSP violation, nothing fetched from
  outside; Chinese labels throughout; screenshots in test-artifacts/ (dashboard-*.png);
- the 运行提醒 in Chinese (the manifest's `warnings_zh`), the command line's in English.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline import clock, store
from pipeline.cases.quarterly import confirmed_false, quarter_bounds
from pipeline.store.schema import items
from tests.helpers import ARTIFACTS, CHROMIUM, approve_all
from tests.webserve import Client, Server, custdq, prepare

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "data", "samples")
ROSTER = os.path.abspath(os.path.join(SAMPLES, "agents_sample.csv"))
RESULTS = ["已更正", "核实无误", "虚假资料", "无法联系", None, None]  # None: 处理中
PASSWORDS = {"boss": "boss-password-1", "gd": "gd-password-12"}


def _settle(worklists) -> int:
    """Fill in the worklists as teams would: a result on four rows in six, 处理中 on the rest."""
    n = 0
    for path in worklists:
        book = openpyxl.load_workbook(path)
        sheet = book.worksheets[0]
        header = None
        for row in sheet.iter_rows():
            values = [c.value for c in row]
            if "处理状态" in values:
                header = {v: i for i, v in enumerate(values)}
                continue
            if header and row[header["问题件编号"]].value:
                result = RESULTS[n % len(RESULTS)]
                row[header["处理状态"]].value = "已完成" if result else "处理中"
                row[header["处理结果"]].value = result
                row[header["处理说明"]].value = "已电话核实" if result else None
                n += 1
        book.save(path)
    return n


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dashboard-charts")
    db = f"sqlite:///{folder / 'cases.db'}"
    first, second = folder / "n1.csv", folder / "n2.csv"
    assert prepare("sample", "--rows", "1500", "--seed", "31", "--out", str(first), "--business-date", "2026-11-20",
                  cwd=folder).returncode == 0
    assert prepare("sample", "--rows", "1500", "--seed", "32", "--after", str(first), "--business-date", "2026-11-23",
                  "--out", str(second), cwd=folder).returncode == 0
    night = prepare("run", str(first), "--business-date", "2026-11-20", "--agents", ROSTER, "--db", db,
                   "--out", str(folder / "o1"), "-q", cwd=folder)
    assert night.returncode == 0, night.stderr
    assert _settle(sorted((folder / "o1" / "worklists").glob("*.xlsx"))) > 50
    imported = prepare("cases", "import", *map(str, sorted((folder / "o1" / "worklists").glob("*.xlsx"))),
                      "--by", "张三", "--db", db, cwd=folder)
    assert imported.returncode == 0, imported.stderr
    assert approve_all(db) > 0  # the review approves what was settled (核实无误, 虚假资料)
    night = prepare("run", str(second), "--business-date", "2026-11-23", "--agents", ROSTER, "--db", db,
                   "--out", str(folder / "o2"), "-q", cwd=folder)
    assert night.returncode == 0, night.stderr
    for name, role, branch in (("boss", "manager", None), ("gd", "branch", "广东分公司")):
        added = prepare("users", "add", name, "--role", role, *(["--branch", branch] if branch else []), "--db", db,
                       stdin=f"{PASSWORDS[name]}\n{PASSWORDS[name]}\n", cwd=folder)
        assert added.returncode == 0, added.stderr
    tokens = {name: prepare("users", "token", name, "--db", db, cwd=folder).stdout.strip().splitlines()[-1]
              for name in PASSWORDS}
    rebuilt = prepare("dashboard", "--db", db, "--out", str(folder / "board.html"), cwd=folder)
    assert rebuilt.returncode == 0, rebuilt.stderr
    server = Server(db, folder)
    yield {"folder": folder, "db": db, "server": server, "night": night, "tokens": tokens}
    server.stop()


def _options(html: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="chart-options">(.*?)</script>', html, re.S)[1])


def test_the_progress_adds_up_to_the_store(board):
    html = (board["folder"] / "board.html").read_text(encoding="utf-8")
    progress = _options(html)["chart-progress"]
    engine = store.open_store(board["db"], create=False)
    today = clock.now().date()
    start, end = quarter_bounds(f"{today.year}Q{(today.month - 1) // 3 + 1}")
    with engine.connect() as conn:
        raised = pd.read_sql(sa.select(items.c.branch, items.c.state, items.c.work_state, items.c.result,
                                       items.c.due_date).where(items.c.first_seen >= start.isoformat()), conn)
        false = confirmed_false(conn, start, min(end, today))
    engine.dispose()
    drawn = {s["name"]: sum(s["data"]) for s in progress["series"]}
    assert sum(drawn.values()) == len(raised)  # every item of the quarter in exactly one column
    for result in ("已更正", "核实无误", "虚假资料", "无法联系"):
        assert drawn[result] == int((raised["result"] == result).sum()), result
    unsettled = raised["result"].isna()
    assert drawn["处理中"] == int(((raised["work_state"] == "处理中") & unsettled & (raised["state"] == "open")).sum())
    assert drawn["不再触发"] == int((unsettled & (raised["state"] == "closed")).sum())
    assert drawn["虚假资料"] > 0 and drawn["处理中"] > 0
    overdue = int(((raised["state"] == "open") & (raised["due_date"] < today.isoformat())).sum())
    total = re.search(r"<td[^>]*>合计</td>((?:<td[^>]*>[^<]*</td>)+)</tr>", html[html.index("处理进度"):])[1]
    cells = [c.replace(",", "") for c in re.findall(r">([^<]*)</td>", total)]
    assert int(cells[0]) == len(raised) and int(cells[8]) == overdue  # 新增 … 逾期（未结）
    false_drawn = sum(_options(html)["chart-false"]["series"][0]["data"])
    assert false_drawn == len(false) > 0  # the quarterly report's 虚假资料


def test_agents_are_named_as_the_roster_names_them(board):
    html = (board["folder"] / "board.html").read_text(encoding="utf-8")
    roster = pd.read_csv(ROSTER, dtype=str)
    code_col = next(c for c in roster.columns if c in ("业务员代码", "agent_code"))
    name_col = next(c for c in roster.columns if c in ("业务员姓名", "agent_name"))
    named = dict(zip(roster[code_col], roster[name_col]))
    shown = re.findall(r"<td class=\"l\">([^<（]+)（(A\d+)）</td>", html)
    assert len(shown) > 5
    for name, code in shown:
        assert named[code] == name, (code, name)


def test_every_label_is_chinese(board):
    html = (board["folder"] / "board.html").read_text(encoding="utf-8")
    body = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", body)
    assert not re.search(r"\b(error|warning|not_applicable|expectation|rule)\b", text), \
        re.search(r".{40}\b(error|warning|not_applicable|expectation|rule)\b.{40}", text)[0]
    assert "错误" in text and "警告" in text and "关键信息缺失（MISSING_FIELD）" in text
    manifest = json.loads((board["folder"] / "o2" / "manifest.json").read_text(encoding="utf-8"))
    assert len(manifest["warnings_zh"]) == len(manifest["warnings"]) > 0
    for line in manifest["warnings_zh"]:
        assert line in text
    assert all(f"warning: {line}" in board["night"].stderr for line in manifest["warnings"])


def test_the_api_gives_the_same_figures_within_the_callers_branches(board):
    everything = Client(board["server"].base, board["tokens"]["boss"]).json("GET", "/api/dashboard")[1]
    mine = Client(board["server"].base, board["tokens"]["gd"]).json("GET", "/api/dashboard")[1]
    branches = {p["branch"] for p in everything["progress"]} - {"合计"}
    assert len(branches) > 3 and {p["branch"] for p in mine["progress"]} == {"广东分公司", "合计"}
    whole = {p["branch"]: p for p in everything["progress"]}
    assert {k: v for k, v in mine["progress"][0].items()} == whole["广东分公司"]
    assert {a["branch"] for a in mine["false_by_agent"]} <= {"广东分公司"}
    assert "rules" not in mine and "tonight" not in mine
    assert all(a["agent_name"] for a in everything["false_by_agent"] if a["agent_code"] != "(空)")


def _shots(url: str, name: str, login: tuple[str, str] | None = None) -> dict:
    from playwright.sync_api import sync_playwright

    problems, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}"))
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        if login:
            base = url.rsplit("/", 1)[0]
            page.goto(base + "/login")
            page.fill("input[name=name]", login[0])
            page.fill("input[name=password]", login[1])
            page.click("button[type=submit]")
            page.wait_for_url(base + "/items")
        page.goto(url, wait_until="load")
        page.wait_for_function("document.documentElement.getAttribute('data-charts') !== null", timeout=10_000)
        drawn = {el: page.locator(f"#{el} svg").count() for el in page.eval_on_selector_all(
            ".chart", "els => els.map(e => e.id)")}
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
        text = page.inner_text("body")
        browser.close()
    return {"problems": problems, "requests": requests, "drawn": drawn, "text": text}


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_pages_draw_every_chart_offline_and_under_a_strict_csp(board):
    offline = (board["folder"] / "board.html").resolve().as_uri()
    seen = _shots(offline, "file")
    assert seen["problems"] == [] and seen["requests"] == [offline]
    assert set(seen["drawn"]) == {"chart-trend", "chart-rules", "chart-rule-pass", "chart-progress", "chart-false"}
    assert all(n == 1 for n in seen["drawn"].values()), seen["drawn"]

    base = board["server"].base
    web = _shots(base + "/dashboard", "web-manager", ("boss", PASSWORDS["boss"]))
    assert web["problems"] == [], web["problems"]  # a CSP violation is a console error
    assert all(u.startswith(base + "/") for u in web["requests"]), web["requests"]
    assert base + "/static/dashboard/echarts.min.js" in web["requests"]
    assert len(web["drawn"]) == 5 and all(n == 1 for n in web["drawn"].values()), web["drawn"]
    assert "处理进度" in web["text"] and "运行提醒" in web["text"]
    for line in re.findall(r"\n(\S+分公司)\t(\S+（A\d+）)\t(\S+)\t(\S+)", web["text"]):  # 虚假资料 per agent
        assert line[2].isdigit() and line[3].isdigit(), line

    branch = _shots(base + "/dashboard", "web-branch", ("gd", PASSWORDS["gd"]))
    assert branch["problems"] == [] and set(branch["drawn"]) == {"chart-progress", "chart-false"}
    assert "上海分公司" not in branch["text"] and "广东分公司" in branch["text"]
    assert re.search(r"广东分公司\t\S+（A\d+）\t\d+\t\d+", branch["text"]), branch["text"][-800:]


def test_the_offline_page_allows_exactly_its_own_scripts(board):
    html = (board["folder"] / "board.html").read_text(encoding="utf-8")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)[1]
    allowed = set(re.findall(r"'sha256-([^']+)'", policy))
    inline = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(inline) == 2
    assert allowed == {base64.b64encode(hashlib.sha256(s.encode("utf-8")).digest()).decode() for s in inline}
    web = Client(board["server"].base).call("GET", "/login")[1]
    assert "script-src 'self';" in web["content-security-policy"] and "unsafe" not in web["content-security-policy"]


def test_the_quarterly_report_names_the_agents_too(board):
    today = clock.now().date()
    target = board["folder"] / "q.xlsx"
    made = custdq("report", "quarterly", "--quarter", f"{today.year}Q{(today.month - 1) // 3 + 1}", "--db", board["db"],
                  "--out", str(target), cwd=board["folder"])
    assert made.returncode == 0, made.stderr
    roster = pd.read_csv(ROSTER, dtype=str)
    named = dict(zip(roster["业务员代码"], roster["业务员姓名"]))
    book = openpyxl.load_workbook(target)
    rows = [r for r in book["汇总"].iter_rows(min_row=4, values_only=True) if r[2]]
    assert len(rows) > 3 and all(r[3] == named[r[2]] for r in rows), rows[:3]
    detail = list(book["明细"].iter_rows(min_row=4, values_only=True))
    assert detail and all(r[5] == named[r[4]] for r in detail)
