"""No second history by mistake (issue 28, point 3), on the real `custdq` command: a store near
another store with nights is refused unless `--new-store`; a first store anywhere else is
created as SPEC 1 says, named by its absolute path; a business date after today needs
`--allow-future-date`; `users add` refuses a branch no night has seen unless `--new-branch`; a
header-only night warns on a new store too."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pipeline import clock
from tests.helpers import row, write_csv
from tests.webserve import custdq

PASSWORD = "correct horse battery\ncorrect horse battery\n"


def _night(tmp_path: Path, db: str, *extra: str, date: str = "2026-11-20", cwd: Path | None = None,
           out: str = "out"):
    extract = write_csv(tmp_path / "n.csv", [row(policy_no="A1", applicant_phone=""), row(policy_no="A2")])
    return custdq("run", str(extract), "--business-date", date, "--out", str(tmp_path / out / date), "-q",
                  *(["--db", db] if db else []), *extra, cwd=cwd or tmp_path)


def test_a_mistyped_store_next_to_the_real_one_is_refused(tmp_path):
    first = _night(tmp_path, f"sqlite:///{tmp_path / 'cases.db'}")
    assert first.returncode == 0, first.stderr
    assert f"created a new case store at sqlite:///{tmp_path / 'cases.db'}" in first.stderr  # absolute

    typo = _night(tmp_path, f"sqlite:///{tmp_path / 'case.db'}", date="2026-11-23")
    assert typo.returncode == 2, typo.stderr
    assert f"no case store at {tmp_path / 'case.db'}" in typo.stderr
    assert f"{tmp_path / 'cases.db'} (1 night, the latest 2026-11-20)" in typo.stderr
    assert "--new-store" in typo.stderr and "Traceback" not in typo.stderr
    assert not (tmp_path / "case.db").exists() and not (tmp_path / "out" / "2026-11-23").exists()

    meant = _night(tmp_path, f"sqlite:///{tmp_path / 'case.db'}", "--new-store", date="2026-11-23")
    assert meant.returncode == 0, meant.stderr
    assert "created a new case store" in meant.stderr and (tmp_path / "case.db").is_file()


def test_stores_kept_side_by_side_on_purpose_are_left_alone(tmp_path):
    # a store replaying the same night beside production, or one whose history ended long ago
    assert _night(tmp_path, f"sqlite:///{tmp_path / 'cases.db'}").returncode == 0
    replay = _night(tmp_path, f"sqlite:///{tmp_path / 'replay.db'}", out="replay")
    assert replay.returncode == 0, replay.stderr
    later = _night(tmp_path, f"sqlite:///{tmp_path / 'next-year.db'}", "--allow-future-date", date="2027-11-23")
    assert later.returncode == 0, later.stderr


def test_a_mistyped_folder_is_refused_and_not_created(tmp_path):
    (tmp_path / "srv" / "custdq").mkdir(parents=True)
    real = f"sqlite:///{tmp_path / 'srv' / 'custdq' / 'cases.db'}"
    assert _night(tmp_path, real).returncode == 0
    typo = _night(tmp_path, f"sqlite:///{tmp_path / 'srv' / 'custdg' / 'cases.db'}", date="2026-11-23")
    assert typo.returncode == 2, typo.stderr
    assert str(tmp_path / "srv" / "custdq" / "cases.db") in typo.stderr
    assert not (tmp_path / "srv" / "custdg").exists()


def test_the_default_store_from_a_subfolder_is_refused(tmp_path):
    home = _night(tmp_path, "")  # the default store .custdq/cases.db of the working folder
    assert home.returncode == 0, home.stderr
    assert f"sqlite:///{tmp_path / '.custdq' / 'cases.db'}" in home.stderr
    (tmp_path / "inbox").mkdir()
    lost = _night(tmp_path, "", date="2026-11-23", cwd=tmp_path / "inbox")
    assert lost.returncode == 2, lost.stderr
    assert str(tmp_path / ".custdq" / "cases.db") in lost.stderr
    assert not (tmp_path / "inbox" / ".custdq").exists()


def test_a_first_store_in_a_new_place_needs_no_flag(tmp_path):
    # SPEC 1: the first night creates its store; an empty store (no night) near it is no history
    (tmp_path / "empty.db").write_bytes(b"")
    fresh = _night(tmp_path, f"sqlite:///{tmp_path / 'nested' / 'cases.db'}")
    assert fresh.returncode == 0, fresh.stderr
    assert (tmp_path / "nested" / "cases.db").is_file()
    book = write_csv(tmp_path / "book.csv", [row(policy_no="B1")])
    other = tmp_path / "index" / "cases.db"
    load = custdq("index", "load", str(book), "--as-of", "2026-11-19", "--db", f"sqlite:///{other}",
                  "--out", str(tmp_path / "load"), cwd=tmp_path)
    assert load.returncode == 0, load.stderr  # the folder `index` holds no store with nights
    near = custdq("index", "load", str(book), "--as-of", "2026-11-24", "--db",
                  f"sqlite:///{tmp_path / 'nested' / 'book.db'}", "--out", str(tmp_path / "load2"), cwd=tmp_path)
    assert near.returncode == 2 and "--new-store" in near.stderr, near.stderr


def test_a_business_date_after_today_needs_a_flag(tmp_path):
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    later = (clock.now().date() + dt.timedelta(days=2)).isoformat()
    refused = _night(tmp_path, db, date=later)
    assert refused.returncode == 2, refused.stderr
    assert f"--business-date {later} is after today ({clock.now().date()}, China time)" in refused.stderr
    assert not (tmp_path / "cases.db").exists()  # refused before any store was made
    today = _night(tmp_path, db, date=clock.now().date().isoformat())
    assert today.returncode == 0, today.stderr
    meant = _night(tmp_path, db, "--allow-future-date", date=later)
    assert meant.returncode == 0, meant.stderr


def test_users_add_refuses_a_branch_no_night_has_seen(tmp_path):
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    # a store with no night yet cannot tell a typo from a new branch
    book = write_csv(tmp_path / "book.csv", [row(policy_no="B1")])
    assert custdq("index", "load", str(book), "--db", db, "--out", str(tmp_path / "l"), cwd=tmp_path).returncode == 0
    early = custdq("users", "add", "王五", "--role", "branch", "--branch", "四川分公司", "--db", db,
                   stdin=PASSWORD, cwd=tmp_path)
    assert early.returncode == 0, early.stderr
    assert _night(tmp_path, db).returncode == 0  # the night sees 广东分公司
    typo = custdq("users", "add", "张三", "--role", "branch", "--branch", "广东分司", "--db", db,
                  stdin=PASSWORD, cwd=tmp_path)
    assert typo.returncode == 2, typo.stderr
    assert "no night has seen the branch 广东分司 (did you mean 广东分公司?)" in typo.stderr
    assert "--new-branch" in typo.stderr
    listed = custdq("users", "list", "--db", db, cwd=tmp_path)
    assert "张三" not in listed.stdout + listed.stderr
    right = custdq("users", "add", "张三", "--role", "branch", "--branch", "广东分公司", "--db", db,
                   stdin=PASSWORD, cwd=tmp_path)
    assert right.returncode == 0, right.stderr
    new = custdq("users", "add", "李四", "--role", "branch", "--branch", "海南分公司", "--new-branch", "--db", db,
                 stdin=PASSWORD, cwd=tmp_path)
    assert new.returncode == 0, new.stderr


def test_a_header_only_night_warns_on_a_new_store(tmp_path):
    empty = write_csv(tmp_path / "empty.csv", [])
    night = custdq("run", str(empty), "--business-date", "2026-11-20", "--out", str(tmp_path / "o"),
                   "--db", f"sqlite:///{tmp_path / 'cases.db'}", cwd=tmp_path)
    assert night.returncode == 0, night.stderr
    assert "warning: the extract files hold no record" in night.stderr
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text(encoding="utf-8"))
    assert any("hold no record" in w for w in manifest["warnings"])
    outside = write_csv(tmp_path / "short.csv", [row(policy_no="O1", coverage_years="0.5")])  # below scope.min_coverage_years
    old = custdq("run", str(outside), "--business-date", "2026-11-21", "--out", str(tmp_path / "o2"),
                 "--db", f"sqlite:///{tmp_path / 'other' / 'cases.db'}", cwd=tmp_path)
    assert old.returncode == 0, old.stderr
    assert "warning: no row of the 1 read is in scope (1 out of scope, 0 quarantined)" in old.stderr


def test_a_night_of_another_store_never_replaces_a_nights_outputs(tmp_path):
    real = _night(tmp_path, f"sqlite:///{tmp_path / 'cases.db'}")
    assert real.returncode == 0, real.stderr
    out = tmp_path / "out" / "2026-11-20"
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert any(str(p).startswith("worklists") for p in before)
    other = f"sqlite:///{tmp_path / 'scratch' / 'cases.db'}"  # a test store, its night into the same folder
    refused = _night(tmp_path, other)
    assert refused.returncode == 2, refused.stderr
    assert f"--out {out} holds the night of another case store (sqlite:///{tmp_path / 'cases.db'})" in refused.stderr
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    again = _night(tmp_path, f"sqlite:///{tmp_path / 'cases.db'}")  # its own store re-runs the night as ever
    assert again.returncode == 0, again.stderr
    assert f"outputs in {out}" in again.stderr  # the folder by its absolute path
