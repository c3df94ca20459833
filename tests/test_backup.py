"""`custdq store backup DEST` (issue 29 point 3): the case store and its contact index copied
together; restored as docs/contact-index.md ("Backup and restore") says, the pair runs the next night exactly as the
original does; a store restored without its index (or with another one) is refused with one
line. On a real SQLite file and on the real PostgreSQL server (pg_dump / pg_restore)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import person, policy, postgres_url, read_outputs, write_csv


def _nights(tmp_path: Path) -> list[Path]:
    one = [policy("P1", 1), policy("P2", 2)]
    two = [policy("P3", 3, applicant_phone=person(1)["applicant_phone"]), policy("P2", 2, applicant_phone="13911112222")]
    return [write_csv(tmp_path / "n1.csv", one), write_csv(tmp_path / "n2.csv", two)]


def _run(invoke, extract: Path, date: str, db: str, out: Path):
    result = invoke("run", str(extract), "--business-date", date, "--db", db, "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    return read_outputs(out)[0].drop(columns=["source_file"])


def test_a_restored_sqlite_backup_runs_the_next_night_as_the_original(invoke, tmp_path):
    n1, n2 = _nights(tmp_path)
    db = f"sqlite:///{tmp_path / 'live' / 'cases.db'}"
    _run(invoke, n1, "2026-11-19", db, tmp_path / "o1")
    done = invoke("store", "backup", str(tmp_path / "bk"), "--db", db)
    assert done.exit_code == 0, done.output
    record = json.loads((tmp_path / "bk" / "backup.json").read_text(encoding="utf-8"))
    assert set(record["files"]) == {"cases.db", "cases.contacts.duckdb"} and record["generation"] == 1
    assert not (tmp_path / "bk" / "hash.key").exists()  # the key is backed up apart
    assert all((tmp_path / "bk" / name).stat().st_mode & 0o077 == 0 for name in record["files"])
    expected = _run(invoke, n2, "2026-11-20", db, tmp_path / "o2")
    assert (expected["rule_code"] == "PHONE_SHARED").any()

    restored = tmp_path / "restored"
    restored.mkdir()
    for name in record["files"]:
        shutil.copy2(tmp_path / "bk" / name, restored / name)
    got = _run(invoke, n2, "2026-11-20", f"sqlite:///{restored / 'cases.db'}", tmp_path / "o3")
    assert got.equals(expected)

    # the store of the backup beside the live index two nights further: refused, nothing changed
    # (one write ahead is what a command killed between the two commits leaves: taken back)
    _run(invoke, n1, "2026-11-23", db, tmp_path / "o5")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy2(tmp_path / "bk" / "cases.db", alone / "cases.db")
    shutil.copy2(tmp_path / "live" / "cases.contacts.duckdb", alone / "cases.contacts.duckdb")
    refused = invoke("run", str(n2), "--business-date", "2026-11-21", "--db", f"sqlite:///{alone / 'cases.db'}",
                     "--out", str(tmp_path / "o4"), "--quiet")
    assert refused.exit_code == 2 and "ahead of its case store" in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and "Traceback" not in refused.output
    # and without any index: refused, never a silent empty one
    (alone / "cases.contacts.duckdb").unlink()
    refused = invoke("run", str(n2), "--business-date", "2026-11-21", "--db", f"sqlite:///{alone / 'cases.db'}",
                     "--out", str(tmp_path / "o4"), "--quiet")
    assert refused.exit_code == 2 and "missing" in refused.output
    assert not (alone / "cases.contacts.duckdb").exists()
    # a backup into a folder that holds something is refused
    again = invoke("store", "backup", str(tmp_path / "bk"), "--db", db)
    assert again.exit_code == 2 and "not an empty folder" in again.output


def test_a_restored_postgresql_backup_runs_the_next_night_as_the_original(invoke, tmp_path):
    if shutil.which("pg_restore") is None:
        pytest.skip("pg_restore is not on PATH")
    n1, n2 = _nights(tmp_path)
    db = postgres_url()
    _run(invoke, n1, "2026-11-19", db, tmp_path / "o1")
    done = invoke("store", "backup", str(tmp_path / "bk"), "--db", db)
    assert done.exit_code == 0, done.output
    record = json.loads((tmp_path / "bk" / "backup.json").read_text(encoding="utf-8"))
    index = Path(record["index_path"])
    assert set(record["files"]) == {"cases.pgdump", index.name}
    expected = _run(invoke, n2, "2026-11-20", db, tmp_path / "o2")

    # restore: the dump into a new database, the index file back where the store's index lives
    target = postgres_url()
    subprocess.run(["pg_restore", "--no-owner", "-d", target, str(tmp_path / "bk" / "cases.pgdump")], check=True)
    engine = sa.create_engine(db)
    engine.dispose()
    index.unlink()
    shutil.copy2(tmp_path / "bk" / index.name, index)
    got = _run(invoke, n2, "2026-11-20", target, tmp_path / "o3")
    assert got.equals(expected)
