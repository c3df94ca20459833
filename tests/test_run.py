"""The nightly job end to end through the CLI: outputs, reconciliation, scope, idempotent
re-runs, deadlines on the official calendar, exit codes."""

from __future__ import annotations


import pandas as pd
import pytest
import sqlalchemy as sa

from pipeline.cli import cli
from tests.helpers import read_outputs, reconciles, row, write_csv


def run(invoke, tmp_path, rows, date="2026-11-20", *extra):
    out = tmp_path / f"out-{date}"
    path = write_csv(tmp_path / "e.csv", rows)
    result = invoke("run", str(path), "--business-date", date, "--out", str(out), *extra)
    return result, out


def test_outputs_of_a_night(invoke, tmp_path):
    result, out = run(invoke, tmp_path, [row(), row(policy_no="P2", applicant_phone="")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["dashboard.html", "data_docs", "expectations.json", "items.csv",
                                                     "items.parquet", "manifest.json", "quarantine.csv", "worklists"]
    items, _, manifest = read_outputs(out)
    parquet = pd.read_parquet(out / "items.parquet")
    assert parquet["item_id"].tolist() == items["item_id"].tolist()
    assert str(parquet["due_date"].dtype).startswith("datetime64")
    for col in ["item_id", "business_date", "policy_no", "role", "rule_code", "severity", "category", "detail",
                "evidence", "branch", "channel", "agent_code", "first_seen", "list_due", "channel_due",
                "cooling_off_end", "due_date", "provisional", "status"]:
        assert col in items.columns
    assert items.iloc[0][["business_date", "first_seen", "status", "branch", "channel", "agent_code"]].tolist() == \
        ["2026-11-20", "2026-11-20", "new", "广东分公司", "个险", "A0001"]
    assert manifest["inputs"][0]["sha256"] and manifest["inputs"][0]["rows"] == 2
    assert set(manifest["timings_seconds"]) >= {"ingest", "normalise", "check", "outputs"}
    assert manifest["peak_memory_mb"] > 0 and manifest["versions"]["pandera"]
    assert manifest["findings_per_rule"] == {"MISSING_FIELD": 1}
    assert "2 rows read" in result.output  # the summary line on stderr


def test_progress_lines_carry_no_customer_data(invoke, tmp_path):
    result, _ = run(invoke, tmp_path, [row(applicant_name="诸葛孔明", applicant_phone="13912345678")])
    assert "诸葛孔明" not in result.output and "13912345678" not in result.output
    assert "1/12 ingest" in result.output


def test_scope_and_reconciliation(invoke, tmp_path):
    rows = [row(policy_no="A", coverage_years="6个月"), row(policy_no="B", coverage_years="0.5"),
            row(policy_no="C", coverage_years="1年"), row(policy_no="D", coverage_years="终身"),
            row(policy_no="E", coverage_years="见条款"), row(policy_no="", applicant_phone=""),
            row(policy_no="无", coverage_years="0.5"), row(policy_no="F", coverage_years="", applicant_phone="")]
    result, out = run(invoke, tmp_path, rows)
    items, quarantine, manifest = read_outputs(out)
    assert manifest["rows"] == {"rows_read": 8, "rows_in_scope": 4, "rows_out_of_scope": 2, "rows_quarantined": 2}
    assert reconciles(manifest) and manifest["coverage_term_unreadable_checked"] == 1
    assert quarantine["line"].tolist() == ["7", "8"]
    assert items["policy_no"].tolist() == ["F"]  # the quarantined row's missing phone is not an item


def test_rerun_replaces_and_yields_the_same_items(invoke, tmp_path):
    rows = [row(policy_no=f"P{i}", applicant_phone="" if i % 2 else "13912345678") for i in range(6)]
    _, out = run(invoke, tmp_path, rows)
    first = (out / "items.csv").read_bytes()
    (out / "items.csv").write_text("half-written", encoding="utf-8")
    result, _ = run(invoke, tmp_path, rows)
    assert result.exit_code == 0
    assert (out / "items.csv").read_bytes() == first
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'cases.db'}")
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from runs")).scalar() == 1


def test_item_ids_are_stable_across_nights_and_row_order(invoke, tmp_path):
    rows = [row(policy_no="S1", applicant_phone=""), row(policy_no="S2", insured_sex="9")]
    _, out1 = run(invoke, tmp_path, rows, "2026-11-20")
    _, out2 = run(invoke, tmp_path, list(reversed(rows)) + [row(policy_no="S3")], "2026-11-23")
    a, b = read_outputs(out1)[0], read_outputs(out2)[0]
    assert set(a["item_id"]) == set(b["item_id"]) and len(a) == 2


@pytest.mark.parametrize("date, list_due, channel_due", [
    ("2026-09-30", "2026-10-08", "2026-10-12"),  # National Day; Sat 2026-10-10 is a working day
    ("2026-02-14", "2026-02-24", "2026-02-27"),  # a working Saturday, then Spring Festival 2026
    ("2026-11-20", "2026-11-23", "2026-11-26"),  # an ordinary Friday
])
def test_deadlines_follow_the_official_calendar(invoke, tmp_path, date, list_due, channel_due):
    import datetime as dt

    import chinese_calendar

    def nth_workday(start, n):  # the reference: chinese-calendar itself
        day = start
        while n:
            day += dt.timedelta(days=1)
            n -= chinese_calendar.is_workday(day)
        return day

    t = dt.date.fromisoformat(date)
    assert nth_workday(t, 1).isoformat() == list_due
    assert nth_workday(nth_workday(t, 1), 3).isoformat() == channel_due
    result, out = run(invoke, tmp_path, [row(applicant_phone="", receipt_date="")], date)
    items, _, manifest = read_outputs(out)
    assert items[["list_due", "channel_due", "due_date", "provisional"]].values.tolist() == \
        [[list_due, channel_due, channel_due, "false"]]
    assert manifest["deadlines"]["list_due"] == list_due


def test_cooling_off_end_can_be_the_due_date(invoke, tmp_path):
    _, out = run(invoke, tmp_path, [row(applicant_phone="", receipt_date="2026-11-08")])
    items = read_outputs(out)[0]
    assert items[["cooling_off_end", "channel_due", "due_date"]].values.tolist() == \
        [["2026-11-23", "2026-11-26", "2026-11-23"]]


def test_year_end_into_an_uncovered_year_is_provisional(invoke, tmp_path):
    result, out = run(invoke, tmp_path, [row(applicant_phone="")], "2026-12-31", "--allow-future-date")
    items, _, manifest = read_outputs(out)
    assert result.exit_code == 0
    assert items["provisional"].tolist() == ["true"] and manifest["deadlines"]["provisional"] is True
    assert manifest["deadlines"]["calendar_years_uncovered"] == [2027]
    assert "provisional" in result.output


def test_config_years_cover_the_gap(invoke, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("calendar:\n  years:\n    2027:\n      source: a State Council notice (synthetic)\n"
                   "      holidays: ['2027-01-01']\n      workdays: []\n", encoding="utf-8")
    _, out = run(invoke, tmp_path, [row(applicant_phone="")], "2026-12-31", "--allow-future-date", "--config", str(cfg))
    items, _, manifest = read_outputs(out)
    assert items[["list_due", "provisional"]].values.tolist() == [["2027-01-04", "false"]]


@pytest.mark.parametrize("args, message", [
    (["--config", "/nonexistent.yaml"], "config file not found"),
    (["--db", "nosuchdb://x"], "not a database URL"),
])
def test_usage_errors_exit_2_with_one_line(invoke, tmp_path, args, message):
    result, _ = run(invoke, tmp_path, [row()], "2026-11-20", *args)
    assert result.exit_code == 2 and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_config_key_and_bad_date(invoke, tmp_path, runner):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("placeholdrs: [x]\n", encoding="utf-8")
    result, _ = run(invoke, tmp_path, [row()], "2026-11-20", "--config", str(cfg))
    assert result.exit_code == 2 and "unknown setting 'placeholdrs'" in result.output
    result = runner.invoke(cli, ["run", "x.csv", "--business-date", "2026-13-01"])
    assert result.exit_code == 2 and "is not a date" in result.output
    cfg.write_text("web: 5\n", encoding="utf-8")  # a section given a value: one line, not a traceback
    result, _ = run(invoke, tmp_path, [row()], "2026-11-20", "--config", str(cfg))
    assert result.exit_code == 2 and "setting 'web' must be a section" in result.output, result.output

    cfg.write_text("web:\n", encoding="utf-8")  # an empty section: said, not a traceback
    result, _ = run(invoke, tmp_path, [row()], "2026-11-20", "--config", str(cfg))
    assert result.exit_code == 2 and "setting 'web' must be a section" in result.output, result.output


def test_internal_errors_are_one_line_without_debug(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("CUSTDQ_DEBUG")
    import pipeline.rows.chunks as chunks_module

    def broken(*a, **k):
        raise KeyError("110101199003070011")

    monkeypatch.setattr(chunks_module, "normalise", broken)
    path = write_csv(tmp_path / "e.csv", [row()])
    result = runner.invoke(cli, ["run", str(path), "--business-date", "2026-11-20", "--out", str(tmp_path / "o"),
                                 "--db", f"sqlite:///{tmp_path / 'c.db'}", "--quiet"])
    assert result.exit_code == 1
    assert "internal error (KeyError)" in result.output and "110101199003070011" not in result.output
    assert "Traceback" not in result.output


def test_manifest_is_written_last(invoke, tmp_path, monkeypatch):
    import pipeline.store as store

    def down(*a, **k):
        raise RuntimeError("store down")

    monkeypatch.setattr(store, "record_run", down)
    with pytest.raises(RuntimeError):
        run(invoke, tmp_path, [row()])
    assert not (tmp_path / "out-2026-11-20" / "manifest.json").exists()


def test_a_night_started_from_python_c_writes_its_outputs(tmp_path):
    """With PySpark installed, Great Expectations' probe of Spark Connect used to end a process
    whose main module has no file (`python -c`, a pytest-xdist worker, an embedding host) with
    exit status 0 and no outputs: a silent success. The night must run to its end."""
    import os
    import subprocess
    import sys

    extract = write_csv(tmp_path / "e.csv", [row()])
    code = "import sys; from pipeline.cli import cli; sys.exit(cli())"
    env = dict(os.environ, CUSTDQ_HASH_KEY="k" * 40)
    done = subprocess.run([sys.executable, "-c", code, "run", str(extract), "--business-date", "2026-11-20",
                           "--db", f"sqlite:///{tmp_path / 'cases.db'}", "--out", str(tmp_path / "o"), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Skipping doctests" not in done.stderr
    assert (tmp_path / "o" / "manifest.json").exists() and (tmp_path / "o" / "expectations.json").exists()


def test_a_contact_index_short_of_memory_says_which_setting_and_commits_nothing(runner, tmp_path, monkeypatch):
    """DuckDB's OutOfMemoryException (the index's `memory_limit` too small for the night) is a
    line naming the setting, never "internal error"; the store keeps nothing of the night and the
    same night run with the default limit passes."""
    monkeypatch.delenv("CUSTDQ_DEBUG")
    from pipeline.sample import write_sample

    extract = tmp_path / "n.csv"
    write_sample(3000, 2, str(extract))
    tiny = tmp_path / "tiny.yaml"
    tiny.write_text("contact_index:\n  memory_limit: 1MB\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 's' / 'c.db'}"
    args = ["run", str(extract), "--business-date", "2026-11-20", "--out", str(tmp_path / "o"), "--db", db, "--quiet"]
    short = runner.invoke(cli, [*args, "--config", str(tiny)])
    assert short.exit_code == 1, short.output
    assert "contact_index.memory_limit" in short.output and "nothing was committed" in short.output
    assert "internal error" not in short.output and "Traceback" not in short.output
    assert not (tmp_path / "o").exists()
    again = runner.invoke(cli, args)
    assert again.exit_code == 0 and "its first night" in again.output, again.output
