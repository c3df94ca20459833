"""The managers' dashboard (issue 6): written by every run and by `custdq dashboard`, opened in a
real headless Chromium (Debian's `chromium`; `.ci/run` installs it): no console or page errors,
no network request, the night's figures visible, no personal data; a screenshot is kept in
`test-artifacts/`. Batch expectations through Great Expectations: a blocking failure exits 1
with every output written."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from checks.catalogue import SETTLED_BY_PEOPLE
from tests.helpers import ARTIFACTS, CHROMIUM, person, policy, read_outputs, row, write_csv


def two_nights(invoke, tmp_path, extra=()):
    db = f"sqlite:///{tmp_path / 'store' / 'cases.db'}"
    sample = tmp_path / "night.csv"
    assert invoke("sample", "--rows", "400", "--seed", "7", "--out", str(sample)).exit_code == 0
    outs = []
    for date in ("2026-11-19", "2026-11-20"):
        out = tmp_path / date
        result = invoke("run", str(sample), "--business-date", date, "--db", db, "--out", str(out), "--quiet", *extra)
        assert result.exit_code == 0, result.output
        outs.append(out)
    return db, sample, outs


def test_every_run_writes_a_self_contained_dashboard(invoke, tmp_path):
    _, sample, (_, out) = two_nights(invoke, tmp_path)
    html = (out / "dashboard.html").read_text(encoding="utf-8")
    _, _, manifest = read_outputs(out)
    assert "业务日期 2026-11-20" in html and f"{manifest['rows']['rows_in_scope']:,}" in html
    # nothing to fetch: scripts inline only (ECharts and the page's own), allowed by their hashes alone
    assert not re.search(r"<script[^>]*\bsrc=", html) and not re.search(r"""<link[^>]*href=""", html)
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)[1]
    assert policy.startswith("default-src 'none'; script-src 'sha256-") and "http" not in policy
    assert '<a href="data_docs/index.html">' in html and (out / "data_docs" / "index.html").exists()
    # no personal data: no name, identity number, phone or account of the extract
    extract = pd.read_csv(sample, dtype=str, keep_default_na=False)
    for column in ("投保人姓名", "投保人证件号码", "投保人手机", "被保险人姓名", "缴费账号"):
        values = {v for v in extract[column] if len(v) >= 2}
        leaked = [v for v in values if v in html]
        assert not leaked, (column, leaked[:3])


def test_custdq_dashboard_rebuilds_it_from_the_store(invoke, tmp_path):
    db, _, _ = two_nights(invoke, tmp_path)
    target = tmp_path / "board.html"
    result = invoke("dashboard", "--db", db, "--out", str(target))
    assert result.exit_code == 0 and "2026-11-20" in result.output
    older = invoke("dashboard", "--db", db, "--out", str(tmp_path / "old.html"), "--night", "2026-11-19")
    assert older.exit_code == 0 and "业务日期 2026-11-19" in (tmp_path / "old.html").read_text(encoding="utf-8")
    missing = invoke("dashboard", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--out", str(tmp_path / "e.html"))
    assert missing.exit_code == 2 and not (tmp_path / "none.db").exists() and not (tmp_path / "e.html").exists()
    from pipeline import store

    store.open_store(f"sqlite:///{tmp_path / 'empty.db'}").dispose()  # a store without a night yet
    empty = invoke("dashboard", "--db", f"sqlite:///{tmp_path / 'empty.db'}", "--out", str(tmp_path / "e.html"))
    assert empty.exit_code == 0 and "还没有任何批次" in (tmp_path / "e.html").read_text(encoding="utf-8")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_chromium_opens_the_dashboard_offline_without_errors(invoke, tmp_path):
    from playwright.sync_api import sync_playwright

    _, _, (_, out) = two_nights(invoke, tmp_path)
    page_url = (out / "dashboard.html").resolve().as_uri()
    problems, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_url, wait_until="load")
        text = page.inner_text("body")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        charts, boxes = page.locator(".chart svg").count(), page.locator(".chart").count()
        browser.close()
    assert problems == []
    assert requests == [page_url]  # the page itself, nothing else
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert f"{manifest['rows']['rows_in_scope']:,}" in text and "今晚检查保单" in text
    assert "按机构" in text and "逾期" in text and charts == boxes >= 4  # no 虚假资料 yet: that chart is left out
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000


def test_a_blocking_expectation_fails_the_run_after_writing_everything(invoke, tmp_path):
    cfg = tmp_path / "gate.yaml"
    cfg.write_text("expectations:\n  blocking: [unique_policy_no]\n", encoding="utf-8")
    extract = write_csv(tmp_path / "dup.csv", [row(policy_no="D1"), row(policy_no="D1"), row(policy_no="D2")])
    out = tmp_path / "o"
    result = invoke("run", str(extract), "--business-date", "2026-11-20", "--db", f"sqlite:///{tmp_path / 'c.db'}",
                    "--out", str(out), "--config", str(cfg), "--quiet")
    assert result.exit_code == 1, result.output
    assert "blocking expectations failed: unique_policy_no" in result.output
    for name in ("items.csv", "manifest.json", "dashboard.html", "expectations.json", "data_docs/index.html"):
        assert (out / name).exists(), name
    gate = json.loads((out / "expectations.json").read_text(encoding="utf-8"))
    assert gate["blocking_failed"] == ["unique_policy_no"]
    # the same night without the gate configured as blocking: exit 0
    ok = invoke("run", str(extract), "--business-date", "2026-11-20", "--db", f"sqlite:///{tmp_path / 'c.db'}",
                "--out", str(out), "--quiet")
    assert ok.exit_code == 0 and json.loads((out / "expectations.json").read_text())["failed"] >= 1


def test_the_gate_judges_the_failure_rate_of_every_rule_that_ran(invoke, tmp_path):
    """Each rule that ran tonight has its `rule_failure:` expectation, the shared-contact rules
    (judged against the book, after the row rules) as much as the others: a shared phone on half
    of tonight's rows fails PHONE_SHARED's under a limit of 10%."""
    cfg = tmp_path / "gate.yaml"
    cfg.write_text("expectations:\n  rule_failure_pct: {PHONE_SHARED: 10.0}\n", encoding="utf-8")
    phone = person(1)["applicant_phone"]
    extract = write_csv(tmp_path / "e.csv", [policy("G1", 1), policy("G2", 2, applicant_phone=phone),
                                             policy("G3", 3), policy("G4", 4)])
    out = tmp_path / "o"
    result = invoke("run", str(extract), "--business-date", "2026-11-20", "--db", f"sqlite:///{tmp_path / 'c.db'}",
                    "--out", str(out), "--config", str(cfg), "--quiet")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    judged = {r["name"]: r for r in manifest["expectations"]["results"]}
    ran = {code for code, r in manifest["rules"].items() if r["status"] == "ok"} - SETTLED_BY_PEOPLE  # (a task list)
    assert {"PHONE_SHARED", "BANK_SHARED"} <= ran
    assert {n.removeprefix("rule_failure:") for n in judged if n.startswith("rule_failure:")} == ran
    assert judged["rule_failure:PHONE_SHARED"]["success"] is False
    assert judged["rule_failure:BANK_SHARED"]["success"] is True


def test_volume_is_judged_against_recent_nights(invoke, tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    big = write_csv(tmp_path / "big.csv", [row(policy_no=f"V{i}") for i in range(20)])
    small = write_csv(tmp_path / "small.csv", [row(policy_no="V1")])
    for date in ("2026-11-17", "2026-11-18"):
        assert invoke("run", str(big), "--business-date", date, "--db", db, "--out", str(tmp_path / date),
                      "--quiet").exit_code == 0
    cfg = tmp_path / "v.yaml"
    cfg.write_text("expectations:\n  blocking: [volume]\n", encoding="utf-8")
    result = invoke("run", str(small), "--business-date", "2026-11-19", "--db", db, "--out", str(tmp_path / "s"),
                    "--config", str(cfg), "--quiet")
    assert result.exit_code == 1 and "volume" in result.output
    gate = json.loads((tmp_path / "s" / "expectations.json").read_text())
    assert gate["reference"] == {"median_rows_read": 20, "nights": 2}


# --- the backlog's aggregates (pipeline.outputs.dashboard.data): grouped by the database, never read item by item


def _backlog_store(url: str, n: int = 600, seed: int = 5):
    """A store with two runs and `n` crafted items: missing and literal "(空)" branches and agent
    codes, open and closed, due dates in every age bucket, shared-contact items first seen inside
    and before the trend window, clusters whose items disagree on cluster_size, items without a
    cluster id or size."""
    import numpy as np
    import sqlalchemy as sa

    from pipeline import store
    from pipeline.store.schema import items

    rng = np.random.default_rng(seed)
    engine = store.open_store(url)

    def pick(values):
        return values[rng.integers(len(values))]

    sizes = [2, 3, 4, 5, 6, 10, 11, 40] * 4

    rows = []
    for i in range(n):
        day = int(rng.integers(-40, 15))
        seen = f"2026-11-{int(rng.integers(10, 21)):02d}"
        cluster = int(rng.integers(-1, 30))
        rows.append(dict(
            item_id=f"DQ{i:016d}", rule_code=pick(["PHONE_SHARED", "BANK_SHARED", "MISSING_FIELD"]),
            policy_no=f"P{int(rng.integers(n // 3)):05d}", role="applicant", field="applicant_phone",
            severity="high", category="c", branch=pick(["广东分公司", "北京分公司", None, "(空)", "上海分公司"]),
            agent_code=pick([f"A{k:03d}" for k in range(12)] + [None, "(空)"]),
            cluster_id=None if cluster < 0 else f"CL{cluster:012d}",  # a cluster's items mostly agree on its size
            cluster_size=sizes[cluster] if rng.random() < 0.97 else pick(sizes + [None]),
            first_seen=seen, list_due=seen, channel_due=seen, due_date=str(pd.Timestamp("2026-11-20") + pd.Timedelta(days=day))[:10],
            provisional=False, last_seen=seen, state=pick(["open", "open", "closed"]), work_state="未处理"))
    with engine.begin() as conn:
        for date in ("2026-11-19", "2026-11-20"):
            conn.execute(store.runs.insert().values(business_date=date, started_at=date, finished_at=date, rows_read=1,
                                                    rows_in_scope=1, rows_quarantined=0, items=n, list_due=date,
                                                    list_due_met=True, manifest="{}"))
        conn.execute(store.night_dims.insert().values(business_date="2026-11-20", dim="branch", key="广东分公司",
                                                      policies=3, flagged=1, findings=2))
        if rows:
            conn.execute(sa.insert(items), rows)
    return engine, pd.DataFrame(rows)


def _expected(all_items: pd.DataFrame, as_of: str, since: str) -> dict[str, pd.DataFrame]:
    """The figures from every item in pandas, as the dashboard computed them before (with the
    largest cluster_size of a cluster's open items as its size)."""
    opened = all_items[all_items["state"] == "open"]
    late = (pd.Timestamp(as_of) - pd.to_datetime(opened["due_date"])).dt.days
    t = opened.assign(branch=opened["branch"].fillna("(空)"), late=late.to_numpy())
    ageing = pd.DataFrame({"branch": sorted(t["branch"].unique())}).set_index("branch")
    for label, lo, hi in [("未到期", None, 0), ("逾期1-3天", 1, 3), ("逾期4-7天", 4, 7), ("逾期8-30天", 8, 30),
                          ("逾期30天以上", 31, None)]:
        mask = (t["late"] <= hi) if lo is None else (t["late"] >= lo) & (True if hi is None else t["late"] <= hi)
        ageing[label] = t[mask].groupby("branch").size().reindex(ageing.index).fillna(0).astype(int)
    ageing["open"] = t.groupby("branch").size().reindex(ageing.index).fillna(0).astype(int)
    ageing["overdue"] = t[t["late"] > 0].groupby("branch").size().reindex(ageing.index).fillna(0).astype(int)
    shared = ("PHONE_SHARED", "BANK_SHARED")
    recent = all_items[all_items["rule_code"].isin(shared) & (all_items["first_seen"] >= since)]
    agents = recent.assign(agent_code=recent["agent_code"].fillna("(空)")).groupby("agent_code").agg(
        findings=("rule_code", "size"), policies=("policy_no", "nunique"), clusters=("cluster_id", "nunique"))
    size = opened[opened["rule_code"].isin(shared)].groupby("cluster_id", dropna=False)["cluster_size"].max()
    buckets = [("2人", 2, 2), ("3人", 3, 3), ("4-5人", 4, 5), ("6-10人", 6, 10), ("11人以上", 11, None)]
    return {"ageing": ageing.sort_values(["overdue", "open"], ascending=False).reset_index(),
            "shared_agents": agents.sort_values(["findings", "clusters"], ascending=False).head(15).reset_index(),
            "clusters": pd.DataFrame([{"bucket": b, "clusters": int(((size >= lo) & (True if hi is None else size <= hi)).sum())}
                                      for b, lo, hi in buckets])}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    from tests.helpers import postgres_url

    return f"sqlite:///{tmp_path / 'cases.db'}" if request.param == "sqlite" else postgres_url()


def test_the_backlog_figures_are_grouped_by_the_database(store_url):
    import sqlalchemy as sa

    from pipeline.outputs.dashboard.data import gather

    engine, all_items = _backlog_store(store_url)
    statements = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with engine.connect() as conn:
        board = gather(conn)
    engine.dispose()
    expected = _expected(all_items, "2026-11-20", "2026-11-19")
    assert len(expected["ageing"]) == 4 and expected["ageing"][["逾期1-3天", "逾期30天以上"]].to_numpy().min() > 0
    assert len(expected["shared_agents"]) == 13 and expected["clusters"]["clusters"].sum() == 31
    assert set(board.shared_agents["agent_name"]) == {""}  # no roster: no names, the codes stand alone
    for name, frame in expected.items():
        got = getattr(board, name).drop(columns=["agent_name"], errors="ignore")
        pd.testing.assert_frame_equal(got, frame, check_dtype=False, obj=name)
    # every read of the items is a grouping: the open backlog never comes back item by item (ageing,
    # shared agents, clusters, the quarter's progress and its days to settle, its 虚假资料 per branch and per agent)
    item_reads = [s for s in statements if re.search(r"\bFROM items\b", s)]
    assert len(item_reads) == 7 and all("GROUP BY" in s for s in item_reads), item_reads


def test_a_cluster_counts_once_at_its_largest_open_size(tmp_path):
    """Items of one cluster raised on different nights may disagree on its size: the largest
    open one counts (closed items do not), each cluster once."""
    import sqlalchemy as sa

    from pipeline.store.schema import items
    from pipeline.outputs.dashboard.data import gather

    engine, _ = _backlog_store(f"sqlite:///{tmp_path / 'c.db'}", n=0)

    base = dict(rule_code="PHONE_SHARED", role="applicant", field="applicant_phone", severity="high", category="c",
                first_seen="2026-11-20", list_due="2026-11-23", channel_due="2026-11-23", due_date="2026-11-23",
                provisional=False, last_seen="2026-11-20", work_state="未处理", state="open")
    with engine.begin() as conn:
        conn.execute(sa.insert(items), [
            base | dict(item_id="I1", policy_no="P1", cluster_id="CLA", cluster_size=2),  # grew from 2 ...
            base | dict(item_id="I2", policy_no="P2", cluster_id="CLA", cluster_size=6),  # ... to 6
            base | dict(item_id="I3", policy_no="P3", cluster_id="CLA", cluster_size=9, state="closed"),
            base | dict(item_id="I4", policy_no="P4", cluster_id="CLB", cluster_size=None),
            base | dict(item_id="I5", policy_no="P5", cluster_id="CLB", cluster_size=3, rule_code="BANK_SHARED")])
    with engine.connect() as conn:
        clusters = gather(conn).clusters.set_index("bucket")["clusters"].to_dict()
    engine.dispose()
    assert clusters == {"2人": 0, "3人": 1, "4-5人": 0, "6-10人": 1, "11人以上": 0}


def test_the_rules_table_shows_the_severity_the_night_judged_at(invoke, tmp_path):
    """A config's `rules.severity` override is what the dashboard shows (the catalogue's
    default only where the night recorded none), on the run's page and on a rebuild."""
    from pipeline import store
    from pipeline.outputs.dashboard.data import gather

    config = tmp_path / "severity.yaml"
    config.write_text("rules:\n  severity:\n    BANK_CARD_LUHN: error\n    PHONE_INVALID: warning\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    extract = write_csv(tmp_path / "n.csv", [row(), row(policy_no="P0002", bank_account="6222021234567890123")])
    assert invoke("run", str(extract), "--business-date", "2026-11-20", "--db", db, "--config", str(config),
                  "--out", str(tmp_path / "out"), "--quiet").exit_code == 0
    with store.open_store(db, create=False).connect() as conn:
        rules = gather(conn).rules.set_index("rule")["severity"]
    assert rules["BANK_CARD_LUHN"] == "error" and rules["PHONE_INVALID"] == "warning"
    assert rules["ID_CHECKSUM"] == "error" and rules["PHONE_SHARED"] == "warning"  # not overridden
