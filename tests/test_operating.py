"""What an operator meets night after night (issue 15): the store named once and never created
by mistake, clear one-line errors for URL mistakes and usage errors, the hash key created only
with a new store, warnings without `-v`, `runs list`, `cases show`, `cases list` and what the
teams read (a BOM in items.csv, 重新打开 with its reason). Every test drives the real command.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.cli import cli
from pipeline.errors import ExitCode
from tests.helpers import read_outputs, row, write_csv
from tests.helpers import fill

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def night_at(invoke, tmp_path):
    def _night(db: str, date: str, rows: list[dict], *extra: str, name: str | None = None):
        extract = write_csv(tmp_path / f"{name or date}.csv", rows)
        result = invoke("run", str(extract), "--business-date", date, "--db", db, "--out", str(tmp_path / date),
                        "--quiet", *extra)
        assert result.exit_code == 0, result.output
        return result

    return _night


READERS = [["cases", "list"], ["cases", "show", "DQ0000000000000000"], ["runs", "list"],
           ["dashboard", "--out", "board.html"], ["report", "quarterly", "--quarter", "2026Q4", "--out", "r.xlsx"],
           ["index", "compact"]]


@pytest.mark.parametrize("args", READERS, ids=[" ".join(a[:2]) for a in READERS])
def test_a_command_on_a_store_that_does_not_exist_creates_nothing(invoke, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    result = invoke(*args, "--db", f"sqlite:///{tmp_path / 'typo' / 'cases.db'}")
    assert result.exit_code == ExitCode.INPUT
    assert "no case store at" in one_line(result) and "nothing was created" in result.output
    assert not (tmp_path / "typo").exists()
    plain = invoke(*args)  # the default store under .custdq/ of a wrong working folder
    assert plain.exit_code == ExitCode.INPUT and "no case store" in one_line(plain)
    assert not (tmp_path / ".custdq").exists() and not (tmp_path / "board.html").exists()


def test_cases_import_on_a_missing_store_creates_nothing(invoke, tmp_path):
    result = invoke("cases", "import", str(tmp_path / "x.xlsx"), "--db", f"sqlite:///{tmp_path / 'no' / 'c.db'}")
    assert result.exit_code == 2 and "no case store" in one_line(result) and not (tmp_path / "no").exists()


def test_the_store_is_named_by_the_environment_or_the_config(runner, tmp_path, monkeypatch):
    def invoke(*args):  # no --db added: the store comes from the environment or the config
        return runner.invoke(cli, list(args), catch_exceptions=False)

    env_db, cfg_db = tmp_path / "env" / "cases.db", tmp_path / "cfg" / "cases.db"
    monkeypatch.setenv("CUSTDQ_DB", f"sqlite:///{env_db}")
    extract = write_csv(tmp_path / "e.csv", [row(applicant_phone="")])
    assert invoke("run", str(extract), "--business-date", "2026-11-20", "--out", str(tmp_path / "o"),
                  "--quiet").exit_code == 0
    assert env_db.exists()
    listed = invoke("cases", "list")
    assert listed.exit_code == 0 and "1 open item(s)" in listed.output
    config = tmp_path / "custdq.yaml"
    config.write_text(f"store:\n  url: sqlite:///{cfg_db}\n", encoding="utf-8")
    monkeypatch.delenv("CUSTDQ_DB")
    assert invoke("cases", "list", "--config", str(config)).exit_code == 2  # not created yet: refused
    assert not cfg_db.exists()
    assert invoke("run", str(extract), "--business-date", "2026-11-20", "--out", str(tmp_path / "o2"), "--quiet",
                  "--config", str(config)).exit_code == 0
    assert cfg_db.exists()
    monkeypatch.setenv("CUSTDQ_DB", f"sqlite:///{env_db}")  # the environment wins over the config ...
    assert "1 open item(s)" in invoke("cases", "list", "--config", str(config)).output
    wins = invoke("cases", "list", "--db", f"sqlite:///{tmp_path / 'none.db'}")  # ... and --db over both
    assert wins.exit_code == 2 and "none.db" in wins.output


@pytest.mark.parametrize("url,says", [
    ("postgres://postgres@127.0.0.1:5432/test", "write postgresql://, not postgres://"),
    ("cases.db", "not a database URL; for an SQLite file write sqlite:///cases.db"),
    ("mysql://root@127.0.0.1/test", "not a database URL custdq can open ('mysql')"),
])
def test_url_mistakes_get_one_clear_line(runner, tmp_path, monkeypatch, url, says):
    monkeypatch.chdir(tmp_path)

    def invoke(*args):
        return runner.invoke(cli, list(args), catch_exceptions=False)

    extract = write_csv(tmp_path / "e.csv", [row()])
    result = invoke("run", str(extract), "--business-date", "2026-11-20", "--db", url, "--quiet")
    assert result.exit_code == 2 and says in one_line(result)
    assert list(tmp_path.iterdir()) == [extract]  # nothing created


def test_a_new_store_and_its_key_are_announced_and_a_lost_key_is_never_replaced(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("CUSTDQ_HASH_KEY")
    db = f"sqlite:///{tmp_path / 's' / 'cases.db'}"
    extract = write_csv(tmp_path / "e.csv", [row()])
    args = ["run", str(extract), "--business-date", "2026-11-20", "--db", db, "--out", str(tmp_path / "o"), "--quiet"]
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert f"custdq: created a new case store at {db}" in first.output
    assert f"custdq: created the hash key {tmp_path / 's' / 'hash.key'}: back it up, kept apart from the store's backups" in first.output
    again = runner.invoke(cli, args)
    assert again.exit_code == 0 and "created" not in again.output
    moved = tmp_path / "elsewhere.key"
    config = tmp_path / "c.yaml"
    config.write_text(f"hash_key_file: {moved}\n", encoding="utf-8")
    lost = runner.invoke(cli, [*args, "--config", str(config)])
    assert lost.exit_code == 2 and str(moved) in one_line(lost) and "restore the key file" in lost.output
    assert not moved.exists()  # no stray key left behind
    moved.write_text("x" * 64, encoding="utf-8")
    other = runner.invoke(cli, [*args, "--config", str(config)])
    assert other.exit_code == 2 and f"the hash key file {moved} is not the key this case store was built with" \
        in one_line(other)


def test_usage_errors_are_one_line(invoke):
    for args, says in [(["run"], "Missing argument"), (["run", "x.csv", "--business-date", "2026-13-01"], "not a date"),
                       (["frobnicate"], "No such command"), (["cases", "list", "--limit", "-1"], "--limit")]:
        result = invoke(*args)
        assert result.exit_code == ExitCode.INPUT and says in one_line(result) and "--help" in result.output


def test_the_readme_exit_codes_are_the_enum():
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", README.split("## Exit codes", 1)[1].split("\n## ", 1)[0], re.M))
    assert sorted(map(int, table)) == sorted(int(c) for c in ExitCode)


def test_warnings_end_the_summary_without_verbose(invoke, night_at, tmp_path):
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    rows = [row(policy_no=f"P{i}", applicant_phone=f"139{i:08d}") for i in range(40)]
    first = night_at(db, "2026-11-20", rows, name="first")
    assert "warning: rules PHONE_IS_AGENT, BANK_IS_AGENT, ADDRESS_IS_AGENT did not run: no agent roster given (--agents)" in first.output
    same = night_at(db, "2026-11-23", rows, name="first")  # the same file again, for a later night
    assert f"warning: input {tmp_path / 'first.csv'} is the same file (sha256) as an input of the night of " \
           "2026-11-20" in same.output
    small = night_at(db, "2026-11-24", rows[:16], name="small")  # 40% of the usual volume
    assert "warning: expectation volume failed: rows read 40% of the median of the last 2 nights (40 rows); " \
           "expected 50% to 200%" in small.output
    assert "warning: the list was due on 2026-11-25 (T+1 working day) and is late" in small.output
    late = night_at(db, "2027-12-30", rows[:1], "--allow-future-date", name="late")  # deadlines in a year the calendar lacks
    assert re.search(r"warning: no official working-day calendar for 202[789]", late.output), late.output
    manifest = json.loads((tmp_path / "2027-12-30" / "manifest.json").read_text(encoding="utf-8"))
    assert [f"warning: {w}" for w in manifest["warnings"]] == \
        [line for line in late.output.splitlines() if line.startswith("warning:")]
    page = (tmp_path / "2027-12-30" / "dashboard.html").read_text(encoding="utf-8")
    assert "运行提醒" in page and "尚无官方工作日安排" in page  # the pages' warnings are Chinese


def test_what_the_teams_read(invoke, night_at, tmp_path):
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    rows = [row(policy_no=f"P{i:03d}", applicant_phone="") for i in range(60)]
    night_at(db, "2026-11-20", rows)
    raw = (tmp_path / "2026-11-20" / "items.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel on Chinese Windows reads it
    listed = invoke("cases", "list", "--db", db, "--as-of", "2026-11-21")
    lines = listed.output.splitlines()
    assert listed.exit_code == 0 and len([line for line in lines if line.startswith("2026-")]) == 50
    assert "custdq: 60 open item(s), 0 overdue as of 2026-11-21 (50 shown; --limit 0 shows all)" in listed.output
    from checks.catalogue import RULES

    assert f"MISSING_FIELD {RULES['MISSING_FIELD'].title}" in listed.output
    assert "投保人" in listed.output and "applicant" not in listed.output
    unknown = invoke("cases", "list", "--db", db, "--branch", "火星分公司")
    assert unknown.exit_code == 2 and "广东分公司" in one_line(unknown)

    found = read_outputs(tmp_path / "2026-11-20")[0]
    item = found.iloc[0]["item_id"]
    files = fill(tmp_path / "2026-11-20", {item: ("已完成", "已更正", "已改")}, tmp_path / "filled")
    assert invoke("cases", "import", *map(str, files), "--db", db, "--by", "李雷").exit_code == 0
    night_at(db, "2026-11-23", rows)  # the correction did not happen: reopened
    from openpyxl import load_workbook

    sheets = [load_workbook(p, read_only=True).active for p in (tmp_path / "2026-11-23" / "worklists").glob("*.xlsx")]
    cells = [list(r) for ws in sheets for r in ws.iter_rows(values_only=True)]
    header = cells[0]
    mine = next(r for r in cells if r[0] == item)
    assert mine[header.index("状态")] == "重新打开" and mine[header.index("处理状态")] == "未处理"
    assert mine[header.index("重开原因")].startswith("已更正于 ") and mine[header.index("重开原因")].endswith(
        "2026-11-23 仍触发")
    shown = invoke("cases", "show", item, "--db", db)
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert "状态：重新打开（已更正于 " in text and "2026-11-23 仍触发）" in text
    assert "处理状态：未处理" in text and "处理结果" not in text.split("历史：")[0]
    history = text.split("历史：")[1].strip().splitlines()
    assert [h.split()[1:3] for h in history] == [["custdq", "run"], ["李雷", "处置"], ["custdq", "run"]]
    assert "发现" in history[0] and "重新打开" in history[2] and "夜间批次 2026-11-23" in history[2]
    assert ".xlsx sha256:" in history[1] and " row 2" in history[1]
    listed = invoke("cases", "list", "--db", db)
    assert "重新打开" in listed.output
    runs = invoke("runs", "list", "--db", db)
    assert runs.exit_code == 0 and "2026-11-20" in runs.output and "2026-11-23" in runs.output
    assert "sha256:" in runs.output and "local" in runs.output


def test_only_the_latest_nights_keep_their_undo_journal(invoke, night_at, tmp_path):
    import sqlalchemy as sa

    from pipeline import store
    from pipeline.store.schema import night_undo

    db = f"sqlite:///{tmp_path / 'cases.db'}"
    config = tmp_path / "c.yaml"
    config.write_text("store:\n  undo_nights: 1\n", encoding="utf-8")
    rows = [row(policy_no=f"P{i}", applicant_phone="") for i in range(3)]
    night_at(db, "2026-11-20", rows, "--config", str(config), name="a")
    night_at(db, "2026-11-23", rows[:2], "--config", str(config), name="b")
    with store.open_store(db).connect() as conn:
        kept = conn.execute(sa.select(night_undo.c.night, sa.func.count()).group_by(night_undo.c.night)).all()
    # night 1: its marker alone; night 2: its marker and the two carried items (P2 was not judged)
    assert dict(kept) == {"2026-11-20": 1, "2026-11-23": 3}
    refused = invoke("run", str(tmp_path / "a.csv"), "--business-date", "2026-11-20", "--db", db, "--rewind",
                     "--config", str(config), "--out", str(tmp_path / "x"), "--quiet")
    assert refused.exit_code == 2 and "night 2026-11-20 can no longer be taken back" in one_line(refused)
    again = invoke("run", str(tmp_path / "b.csv"), "--business-date", "2026-11-23", "--db", db,
                   "--config", str(config), "--out", str(tmp_path / "y"), "--quiet")
    assert again.exit_code == 0, again.output  # the latest night can always be re-run


def test_a_first_night_that_fails_leaves_no_store_and_no_key(runner, tmp_path, monkeypatch):
    monkeypatch.delenv("CUSTDQ_HASH_KEY")
    bad = write_csv(tmp_path / "bad.csv", [{k: v for k, v in row().items() if k != "relation"}])
    db = f"sqlite:///{tmp_path / 'new' / 'cases.db'}"
    result = runner.invoke(cli, ["run", str(bad), "--business-date", "2026-11-20", "--db", db, "--quiet",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "missing required column" in one_line(result)
    assert not (tmp_path / "new").exists()  # no store, no key, no lock file, no folder
    loaded = runner.invoke(cli, ["index", "load", str(bad), "--db", db, "--out", str(tmp_path / "l")])
    assert loaded.exit_code == 2 and not (tmp_path / "new").exists()


def test_a_worklist_returned_as_sent_after_its_items_resolved_is_no_rejection(invoke, night_at, tmp_path):
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    night_at(db, "2026-11-20", [row(policy_no=f"P{i}", applicant_phone="") for i in range(3)], name="a")
    night_at(db, "2026-11-23", [row(policy_no=f"P{i}", applicant_phone=f"1391234567{i}") for i in range(3)],
             name="b")  # corrected in the core system: resolved
    late = invoke("cases", "import", *map(str, (tmp_path / "2026-11-20" / "worklists").glob("*.xlsx")), "--db", db)
    assert late.exit_code == 0 and "0 rejected" in late.output, late.output


def test_mistakes_that_used_to_pass_silently(invoke, night_at, tmp_path, monkeypatch):
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    night_at(db, "2026-11-20", [row()])
    assert invoke("dashboard", "--db", db, "--out", str(tmp_path / "d.html"), "--night", "2026-11-21").exit_code == 2
    report = invoke("report", "quarterly", "--quarter", "2026Q4", "--db", db, "--out", str(tmp_path / "r.csv"))
    assert report.exit_code == 2 and "name it .xlsx" in one_line(report)
    assert invoke("run", str(tmp_path / "2026-11-20.csv"), "--business-date", "20261120").exit_code == 2
    monkeypatch.chdir(tmp_path)
    failed = invoke("run", "nosuch.csv", "--business-date", "2026-11-24", "--db", db)
    assert failed.exit_code == 2 and not (tmp_path / "out").exists()  # no empty output folder left
    rerun = invoke("run", str(tmp_path / "2026-11-20.csv"), "--business-date", "2026-11-20", "--db", db,
                   "--out", str(tmp_path / "again"))
    assert "replaced the earlier run of this date" in rerun.output
