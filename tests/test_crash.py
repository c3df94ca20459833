"""A night killed with SIGKILL at any moment, then run again, ends exactly like an uninterrupted
night (issue 8 item 2, in part): same items and deadlines, same case-store contents, and the
killed run never leaves a half-written file under an output's name. Real processes, a real
SQLite store; kills at several points of the night (by elapsed time, from just after start to
the end of the run)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

DATE = "2026-11-20"
ITEM_FIELDS = ["item_id", "policy_no", "rule_code", "role", "field", "first_seen", "list_due", "channel_due",
               "cooling_off_end", "due_date", "provisional", "state", "work_state", "value_key", "customer_key"]


def custdq(*args: str, env: dict) -> subprocess.Popen:
    command = Path(sys.executable).with_name("custdq")  # the installed console script
    return subprocess.Popen([str(command), *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def store_state(db: Path) -> dict:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        items = pd.read_sql(sa.text("select * from items"), conn)[ITEM_FIELDS].sort_values("item_id")
        runs = conn.execute(sa.text("select business_date, rows_read, items from runs")).fetchall()
        events = conn.execute(sa.text("select item_id, action, night from item_events order by item_id, action")).fetchall()
    engine.dispose()
    index = duckdb.connect(str(db.with_name("cases.contacts.duckdb")), read_only=True)
    contacts = index.execute("select 'live', version, count(*) from contacts group by all union all "
                             "select 'replaced', by_version, count(*) from replaced group by all").fetchall()
    index.close()
    return {"items": items.reset_index(drop=True), "runs": sorted(runs), "contacts": sorted(contacts),
            "events": events}


def check_visible(out: Path) -> None:
    """What a person or a downstream job can see in `out`: every file whole (it opens with its
    own reader), and a manifest.json, when there is one, lists exactly the night's files with
    their checksums - never a mix of two nights."""
    files = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(out).parts)}
    for name, path in files.items():
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".csv":
            pd.read_csv(path, dtype=str)
        elif path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".xlsx":
            load_workbook(path, read_only=True).close()
        elif path.name == "dashboard.html":
            assert path.read_text(encoding="utf-8").rstrip().endswith("</html>"), name
    if "manifest.json" in files:
        listed = json.loads(files["manifest.json"].read_text(encoding="utf-8"))["outputs"]
        assert set(listed) == set(files) - {"manifest.json"}, set(listed) ^ (set(files) - {"manifest.json"})
        for name, facts in listed.items():
            assert hashlib.sha256(files[name].read_bytes()).hexdigest() == facts["sha256"], name


@pytest.fixture(scope="module")
def night_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crash")
    path = folder / "night.csv"
    from pipeline.sample import write_sample
    write_sample(20000, 3, str(path))
    return path


def test_a_killed_night_run_again_equals_an_uninterrupted_one(night_file, tmp_path):
    env = dict(os.environ, CUSTDQ_HASH_KEY="custdq-crash-test-key-0123456789abcdef", PYTHONPATH=str(Path.cwd()))
    env.pop("CUSTDQ_DEBUG", None)
    reference_db = tmp_path / "ref" / "cases.db"
    ref = custdq("run", str(night_file), "--business-date", DATE, "--db", f"sqlite:///{reference_db}", "--out",
                 str(tmp_path / "ref-out"), "--quiet", env=env)
    assert ref.wait(timeout=300) == 0, ref.stderr.read().decode()
    # the time a warm night takes (the first run pays for cold caches): kills are placed in it
    started = time.monotonic()
    warm = custdq("run", str(night_file), "--business-date", DATE, "--db", f"sqlite:///{tmp_path / 'warm' / 'cases.db'}",
                  "--out", str(tmp_path / "warm-out"), "--quiet", env=env)
    assert warm.wait(timeout=300) == 0, warm.stderr.read().decode()
    whole = time.monotonic() - started
    expected_items = pd.read_csv(tmp_path / "ref-out" / "items.csv", dtype=str).sort_values("item_id")
    expected_store = store_state(reference_db)

    killed = 0
    # four moments spread over a warm night, each well inside it so that the kill lands
    for share in (0.05, 0.3, 0.55, 0.8):
        db = tmp_path / f"k{share}" / "cases.db"
        out = tmp_path / f"k{share}-out"
        shutil.copytree(tmp_path / "ref-out", out)  # the night's earlier complete outputs, to be replaced
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        manifest["case_store"] = f"sqlite:///{db}"  # as this store's own earlier run of the night wrote them
        (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
        victim = custdq("run", str(night_file), "--business-date", DATE, "--db", f"sqlite:///{db}", "--out",
                        str(out), "--quiet", env=env)
        time.sleep(whole * share)
        victim.send_signal(signal.SIGKILL)
        killed += victim.wait(timeout=60) == -signal.SIGKILL
        check_visible(out)  # no half-written file under a real name, no manifest over a mix of nights
        again = custdq("run", str(night_file), "--business-date", DATE, "--db", f"sqlite:///{db}", "--out",
                       str(out), "--quiet", env=env)
        assert again.wait(timeout=300) == 0, (share, again.stderr.read().decode())
        items = pd.read_csv(out / "items.csv", dtype=str).sort_values("item_id")
        pd.testing.assert_frame_equal(items.drop(columns=["source_file"]).reset_index(drop=True),
                                      expected_items.drop(columns=["source_file"]).reset_index(drop=True))
        got = store_state(db)
        pd.testing.assert_frame_equal(got["items"], expected_store["items"])
        assert got["runs"] == expected_store["runs"] and got["contacts"] == expected_store["contacts"]
        assert got["events"] == expected_store["events"]
        assert not [p.name for p in out.iterdir() if p.name.startswith(".")], share  # no temporary left over
        check_visible(out)
    assert killed >= 3  # the kills landed inside the night, not after it


def test_a_full_disk_fails_cleanly_and_keeps_the_previous_night(invoke, tmp_path):
    """A small tmpfs as --out: the first night fits, the second does not - exit 2 with one line,
    the first night's files unchanged, the store without the second night."""
    from tests.helpers import row, write_csv

    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()[:80]}")
    try:
        db = f"sqlite:///{tmp_path / 'store' / 'cases.db'}"
        out = mount / "night"
        first = invoke("run", str(write_csv(tmp_path / "a.csv", [row(applicant_phone="")])), "--business-date", DATE,
                       "--db", db, "--out", str(out), "--quiet")
        assert first.exit_code == 0, first.output
        before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        free = os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize
        (mount / "filler").write_bytes(b"\0" * max(free - 64 * 1024, 0))  # leave 64 KiB
        big = [row(policy_no=f"F{i}", applicant_phone="") for i in range(3000)]
        second = invoke("run", str(write_csv(tmp_path / "b.csv", big)), "--business-date", DATE, "--db", db,
                        "--out", str(out), "--quiet")
        assert second.exit_code == 2, second.output
        assert "No space left on device" in second.output and "Traceback" not in second.output
        assert len(second.output.strip().splitlines()) == 1
        after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert after == before  # the first night's outputs, byte for byte, and no leftovers
        engine = sa.create_engine(db)
        with engine.connect() as conn:
            assert conn.execute(sa.text("select rows_read from runs")).fetchall() == [(1,)]
            assert conn.execute(sa.text("select count(*) from items")).scalar() == 1
        engine.dispose()
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
