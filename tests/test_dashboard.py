"""The managers' dashboard (issue 6): written by every run and by `custdq dashboard`, opened in a
real headless Chromium (Debian's `chromium`; `.ci/run` installs it): no console or page errors,
no network request, the night's figures visible, no personal data; a screenshot is kept in
`test-artifacts/`. Batch expectations through Great Expectations: a blocking failure exits 1
with every output written."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import read_outputs, row, write_csv

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"


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
    # nothing to fetch: no script, no external URL, no stylesheet link
    assert "<script" not in html and not re.search(r"""(src|href)=["']?(https?:)?//""", html)
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
        charts = page.locator("svg").count()
        browser.close()
    assert problems == []
    assert requests == [page_url]  # the page itself, nothing else
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert f"{manifest['rows']['rows_in_scope']:,}" in text and "今晚检查行数" in text
    assert "按机构" in text and "逾期" in text and charts >= 5
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
