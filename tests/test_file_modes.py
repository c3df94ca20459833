"""Files at rest (issue 27, point 5), real `custdq` processes under umask 022 and 077: the SQLite
store file, its -wal and -shm (looked at while a night holds them) and the writer lock's file
are 0600 as `custdq run` and `custdq index load` create them, and stay 0600 through a
retention purge's VACUUM; the hash key is 0600; a store someone made 0644 is made 0600 when its
owner opens it, with one warning line. The outputs (the night's folder with its worklists and
Data Docs, an index load's folder, the dashboard, the quarterly report) get exactly what the
umask gives, never more (Data Docs' vendored files used to keep the package's 0644 / 0755)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import row, write_csv

ROOT = Path(__file__).resolve().parent.parent
CUSTDQ = str(Path(sys.executable).with_name("custdq"))
STORE_FILES = ("cases.db", "cases.db-wal", "cases.db-shm", "cases.db.lock", "hash.key")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def custdq(*args: str, umask: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("CUSTDQ_HASH_KEY", None)  # the key file beside the store, created by the night
    env.pop("CUSTDQ_DEBUG", None)
    return subprocess.Popen([CUSTDQ, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: os.umask(umask))


def done(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    return err.decode()


def watch_store(proc: subprocess.Popen, folder: Path) -> dict[str, set[int]]:
    """The modes of the store's files seen while `proc` runs (SQLite removes -wal and -shm
    when its last connection closes, so they are looked at while the night holds them)."""
    seen: dict[str, set[int]] = {}
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        for name in STORE_FILES:
            try:
                seen.setdefault(name, set()).add(mode(folder / name))
            except FileNotFoundError:
                continue
        time.sleep(0.005)
    return seen


def umask_gives(path: Path, umask: int) -> int:
    return (0o777 if path.is_dir() else 0o666) & ~umask


def wider(paths, umask: int) -> dict[str, str]:
    """Paths whose mode is not exactly what the umask gives a new file or folder."""
    return {str(p): f"{mode(p):o}" for p in paths if mode(p) != umask_gives(p, umask)}


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_the_store_is_its_owners_and_the_outputs_keep_the_umask(tmp_path, umask):
    extract = write_csv(tmp_path / "night.csv", [row(policy_no=f"P{i}", applicant_phone="13912345678")
                                                 for i in range(30)] + [row(policy_no="X1", applicant_id_no="1")])
    folder = tmp_path / "store"
    db = f"sqlite:///{folder / 'cases.db'}"
    out = tmp_path / "out" / "2026-11-20"
    night = custdq("run", str(extract), "--business-date", "2026-11-20", "--db", db, "--out", str(out), umask=umask)
    seen = watch_store(night, folder)
    done(night)
    assert {"cases.db-wal", "cases.db-shm", "cases.db.lock"} <= seen.keys(), seen
    assert seen == {name: {0o600} for name in seen}, seen
    assert (out / "data_docs" / "static" / "custdq").is_dir() and (out / "worklists").is_dir()
    assert wider([out.parent, *out.rglob("*")], umask) == {}

    done(custdq("dashboard", "--out", str(tmp_path / "dash" / "board.html"), "--db", db, umask=umask))
    done(custdq("report", "quarterly", "--quarter", "2026Q4", "--out", str(tmp_path / "q.xlsx"), "--db", db,
                umask=umask))
    loaded = tmp_path / "loaded"
    book = custdq("index", "load", str(extract), "--as-of", "2026-11-01", "--db", f"sqlite:///{loaded / 'cases.db'}",
                  "--out", str(loaded / "out"), umask=umask)
    seen = watch_store(book, loaded)
    done(book)
    assert seen and seen == {name: {0o600} for name in seen}, seen
    assert wider([tmp_path / "dash", tmp_path / "dash" / "board.html", tmp_path / "q.xlsx", loaded / "out",
                  *(loaded / "out").rglob("*")], umask) == {}

    purge = custdq("retention", "purge", "--as-of", "2026-12-01", "--db", db, umask=umask)
    seen = watch_store(purge, folder)
    done(purge)
    assert seen == {name: {0o600} for name in seen}, seen
    assert {mode(folder / n) for n in STORE_FILES if (folder / n).exists()} == {0o600}


def test_a_store_made_readable_by_others_is_tightened_by_its_owner(tmp_path):
    extract = write_csv(tmp_path / "night.csv", [row()])
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    done(custdq("run", str(extract), "--business-date", "2026-11-20", "--db", db, "--out", str(tmp_path / "out"),
                "--quiet", umask=0o022))
    for name in ("cases.db", "cases.db.lock"):
        (tmp_path / name).chmod(0o644)
    err = done(custdq("cases", "list", "--db", db, umask=0o022))
    lines = [line for line in err.splitlines() if "0600" in line]
    assert lines == [f"custdq: WARNING: custdq: case store {tmp_path / 'cases.db'}: was readable by others "
                     "(cases.db 644, cases.db.lock 644); made 0600, its owner's only"], err
    assert mode(tmp_path / "cases.db") == mode(tmp_path / "cases.db.lock") == 0o600
    assert "0600" not in done(custdq("cases", "list", "--db", db, umask=0o022))  # said once
