"""The command line's papercuts (issue 28, point 7), each on the real `custdq` command or the
click runner over a real store: `-v` and `-q` after the subcommand, help texts whole, SQLite
URLs with two slashes or a trailing space, the password's length in `users add --help`, a
retention plan for a later day, `--after` repeated, `cases list --csv` as the table shows it,
`audit list` readable in a terminal, the README's demo writing nothing into the repository."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline import store
from pipeline.store.schema import access_log
from tests.helpers import row, write_csv
from tests.webserve import custdq

ROOT = Path(__file__).resolve().parents[1]


def _store(invoke, tmp_path) -> str:
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    extract = write_csv(tmp_path / "n1.csv", [row(policy_no="A1", applicant_phone=""), row(policy_no="A2")])
    night = invoke("run", str(extract), "--business-date", "2026-11-20", "--out", str(tmp_path / "o"), "-q",
                   "--db", db)
    assert night.exit_code == 0, night.output
    assert "stage" not in night.output.lower()  # -q after the subcommand: quiet
    return db


def test_verbose_after_the_subcommand(invoke, tmp_path):
    db = _store(invoke, tmp_path)
    plain = custdq("runs", "list", "--db", db, cwd=tmp_path)
    after = custdq("runs", "list", "--db", db, "-vv", cwd=tmp_path)
    before = custdq("-vv", "runs", "list", "--db", db, cwd=tmp_path)
    assert plain.returncode == after.returncode == before.returncode == 0, after.stderr
    assert "SELECT" not in plain.stderr and "SELECT" in after.stderr and "SELECT" in before.stderr


def test_help_texts_are_whole():
    shown = custdq("--help").stdout
    assert "..." not in shown.replace("[ARGS]...", "")
    assert "re-sent earlier policies, some changed, some corrected." in " ".join(shown.split())
    for group in ("cases", "users", "retention", "index", "audit", "runs", "report"):
        assert "..." not in custdq(group, "--help").stdout.replace("[ARGS]...", ""), group
    assert "at least 10 characters" in custdq("users", "add", "--help").stdout
    assert "--after A --after B" in " ".join(custdq("sample", "--help").stdout.split())


def test_sqlite_urls_people_mistype(invoke, tmp_path):
    db = _store(invoke, tmp_path)
    two = custdq("cases", "list", "--db", "sqlite://cases.db", cwd=tmp_path)
    assert two.returncode == 2 and "sqlite:///cases.db" in two.stderr and "Traceback" not in two.stderr
    assert not (tmp_path / "cases.db-journal").exists()
    spaced = custdq("cases", "list", "--db", f"  {db} ", cwd=tmp_path)
    assert spaced.returncode == 0 and "1 open item" in spaced.stderr, spaced.stderr


def test_a_retention_plan_for_a_later_day_changes_nothing_and_a_purge_is_refused(invoke, tmp_path):
    db = _store(invoke, tmp_path)
    plan = custdq("retention", "plan", "--as-of", "2031-12-31", "--db", db, cwd=tmp_path)
    assert plan.returncode == 0 and "nothing was changed" in plan.stderr, plan.stderr
    purge = custdq("retention", "purge", "--as-of", "2031-12-31", "--db", db, cwd=tmp_path)
    assert purge.returncode == 2 and "in the future" in purge.stderr


def test_audit_list_is_readable_in_a_terminal(invoke, tmp_path):
    db = _store(invoke, tmp_path)
    engine = store.open_store(db)
    ids = [f"DQ{n:016X}" for n in range(50)]
    with engine.begin() as conn:
        conn.execute(access_log.insert(), [
            {"at": "2026-11-21T09:00:00+08:00", "user_name": "张三", "method": "GET", "path": "/items?" + "x=y&" * 300,
             "item_ids": ",".join(ids), "client": "127.0.0.1", "status": 200, "target": None},
            {"at": "2026-11-21T09:01:00+08:00", "user_name": "李四", "method": "GET", "path": "/items",
             "item_ids": None, "client": "127.0.0.1", "status": 200, "target": None}])
    engine.dispose()
    listed = custdq("audit", "list", "--db", db, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == 3 and "…" in lines[1] and ids[-1] in lines[1]
    assert len(lines[2]) < 200  # a short row is not padded to the long one's ids
    assert lines[1].index(ids[0]) < 250  # the ids come after the short columns and a cut path


def test_the_readme_demo_writes_nothing_into_the_repository():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    written = [o for o in re.findall(r"--out (\S+)", readme) if not o.startswith(("DIR", "FILE"))]  # the demo's
    assert written and all(out.startswith("out/") for out in written), written  # out/ is ignored by git
    assert (ROOT / "docs" / "spec.md").exists() and "../shared" not in readme


def test_a_missing_column_is_named_by_every_header_it_is_known_by(invoke, tmp_path):
    extract = write_csv(tmp_path / "n.csv", [row(policy_no="A1")])
    text = extract.read_text(encoding="utf-8").splitlines()
    header = text[0].split(",")
    keep = [i for i, h in enumerate(header) if h != "applicant_phone"]
    (tmp_path / "cut.csv").write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in text) + "\n",
                                      encoding="utf-8")
    result = invoke("run", str(tmp_path / "cut.csv"), "--business-date", "2026-11-20", "--out", str(tmp_path / "o"),
                    "--db", f"sqlite:///{tmp_path / 'c.db'}")
    assert result.exit_code == 2, result.output
    assert "missing required column applicant_phone (投保人电话 / 投保人手机 / 投保人联系电话)" in result.output


def test_a_mistyped_branch_gets_the_nearest_names(invoke, tmp_path):
    db = _store(invoke, tmp_path)
    listed = custdq("cases", "list", "--branch", "广东分司", "--db", db, cwd=tmp_path)
    assert listed.returncode == 2, listed.stderr
    assert "no open item in that branch (did you mean 广东分公司?)" in listed.stderr
    report = custdq("report", "quarterly", "--quarter", "2026Q4", "--out", "q.xlsx", "--db", db, cwd=tmp_path)
    assert report.returncode == 0 and f"0 items on 0 policies in 0 branch/channel/agent groups -> {tmp_path / 'q.xlsx'}" \
        in report.stderr, report.stderr
