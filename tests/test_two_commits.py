"""Two stores, one truth (issue 29 point 3): a command killed with SIGKILL between the contact
index's commit and the case store's leaves the index one write ahead; the next command takes the
unfinished write back on both sides (the re-run's own code), and the night run again ends exactly
like an uninterrupted one: the same items, the same case store and index (tests/storedump.py).
Real processes, on a real SQLite file and on the real PostgreSQL server; a first run, a re-run
and a --rewind killed at that moment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import person, policy, postgres_url, write_csv
from tests.storedump import differences, dump

KEY = "custdq-two-commits-test-key-0123456789abcdef"
ROOT = Path(__file__).parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def make_db(backend, tmp_path):
    counter = iter(range(100))
    return lambda: (f"sqlite:///{tmp_path / f's{next(counter)}' / 'cases.db'}" if backend == "sqlite"
                    else postgres_url())


def custdq(*args: str, fault: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUSTDQ_HASH_KEY=KEY, PYTHONPATH=str(ROOT))
    env.pop("CUSTDQ_DEBUG", None)
    # a faulty night is custdq wrapped from outside (tests/faulty.py): killed right after the index commits
    command = [sys.executable, "-m", "tests.faulty"] if fault else [str(Path(sys.executable).with_name("custdq"))]
    return subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=300)


def night(extract: Path, date: str, db: str, out: Path, *extra: str, fault: bool = False) -> subprocess.CompletedProcess:
    # the expectations gate is off: the kill falls after it, between the stores' commits, and its
    # import would be most of each of these nights' time (tests/test_crash.py kills nights with it)
    config = out.parent / "no-gate.yaml"
    config.write_text("expectations:\n  enabled: false\n", encoding="utf-8")
    done = custdq("run", str(extract), "--business-date", date, "--db", db, "--out", str(out), "--quiet",
                  "--config", str(config), *extra, fault=fault)
    if fault:
        assert done.returncode == -signal.SIGKILL, done.stderr
    else:
        assert done.returncode == 0, done.stderr
    return done


def items(out: Path) -> pd.DataFrame:
    frame = pd.read_csv(out / "items.csv", dtype=str).drop(columns=["source_file"])
    return frame.sort_values("item_id").reset_index(drop=True)


@pytest.fixture
def extracts(tmp_path) -> list[Path]:
    one = [policy(f"P{n}", n) for n in range(1, 7)]
    two = [policy("Q1", 11, applicant_phone=person(1)["applicant_phone"]), policy("P2", 2, applicant_phone="13911112222"),
           policy("Q3", 13, bank_account=person(3)["bank_account"])]
    three = [policy("R1", 21, applicant_phone="13911112222"), policy("P4", 4)]
    wrong = [policy("W1", 31, applicant_phone=person(5)["applicant_phone"])]
    return [write_csv(tmp_path / f"{name}.csv", rows) for name, rows in
            (("n1", one), ("n2", two), ("n3", three), ("wrong", wrong))]


def test_a_night_killed_between_the_commits_runs_again_like_an_uninterrupted_one(make_db, backend, extracts, tmp_path):
    n1, n2, n3, wrong = extracts
    clean = make_db()
    for i, (extract, date) in enumerate(((n1, "2026-11-19"), (n2, "2026-11-20"), (n3, "2026-11-23"))):
        night(extract, date, clean, tmp_path / f"clean{i}")
    expected = dump(clean)

    db = make_db()
    night(n1, "2026-11-19", db, tmp_path / "a0")
    night(n2, "2026-11-20", db, tmp_path / "a1", fault=True)  # a first run, killed between the commits
    night(n2, "2026-11-20", db, tmp_path / "a1")  # run again: the index's unfinished write taken back first
    night(wrong, "2026-11-23", db, tmp_path / "a2")
    night(n3, "2026-11-23", db, tmp_path / "a2", fault=True)  # a re-run, killed between the commits
    recovered = night(n3, "2026-11-23", db, tmp_path / "a2")
    assert "taken back on both sides" in recovered.stderr
    assert items(tmp_path / "a2").equals(items(tmp_path / "clean2"))
    assert differences(dump(db), expected) == []

    if backend != "sqlite":
        return  # (the --rewind below is the same code on both backends: run once, CI stays under its budget)
    # a --rewind killed between the commits: the rewound night and the re-run both taken back
    night(wrong, "2026-11-20", db, tmp_path / "a3", "--rewind", fault=True)
    night(n2, "2026-11-20", db, tmp_path / "a4", "--rewind")
    night(n3, "2026-11-23", db, tmp_path / "a5")
    assert items(tmp_path / "a5").equals(items(tmp_path / "clean2"))
    assert differences(dump(db), expected) == []


def test_an_index_load_killed_between_the_commits_is_taken_back(extracts, tmp_path):
    n1, n2, _, _ = extracts
    db = f"sqlite:///{tmp_path / 'load' / 'cases.db'}"  # (the index's side is the same file on both backends)
    night(n1, "2026-11-19", db, tmp_path / "a0")
    before = dump(db)
    killed = custdq("index", "load", str(n2), "--as-of", "2026-11-19", "--db", db, "--out", str(tmp_path / "l"),
                    fault=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    again = custdq("index", "compact", "--db", db)  # a command that does not open the index changes nothing
    assert again.returncode == 0
    loaded = custdq("index", "load", str(n2), "--as-of", "2026-11-19", "--db", db, "--out", str(tmp_path / "l"))
    assert loaded.returncode == 0, loaded.stderr
    after = dump(db)
    assert len(after["index.contacts"]) > len(before["index.contacts"])
