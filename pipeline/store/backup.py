"""`custdq store backup DEST`: the case store and its contact index, copied together under the
writer lock, so that the two copies agree (pipeline.book.database: a restored index must be the
one of the restored store's generation).

* an SQLite store is copied with SQLite's online backup (a consistent copy of the file, WAL
  included); a PostgreSQL store with `pg_dump --format=custom` (restored with `pg_restore`);
* the contact index is checkpointed and copied;
* `backup.json` says what was copied: the store's identity, the generation both copies are at,
  the hash key's fingerprint, each file's size and sha256.

The hash key is not copied: a backup that carries its key carries every keyed phone and account
in a form anyone holding it can test guesses against. Keep the key's own backup apart
(docs/contact-index.md, "Backup and restore").
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import sqlalchemy as sa

from pipeline import clock
from pipeline.errors import InputError


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _sqlite_copy(source: str, dest: Path) -> None:
    src = sqlite3.connect(source)
    dst = sqlite3.connect(dest)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _pg_dump(engine: sa.Engine, dest: Path) -> None:
    url = engine.url.set(drivername="postgresql")
    tool = shutil.which("pg_dump")
    if tool is None:
        raise InputError("store backup: pg_dump is not on PATH (install the PostgreSQL client of the server's "
                         "version); nothing was copied")
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    target = url.set(password=None).render_as_string(hide_password=False)
    done = subprocess.run([tool, "--format=custom", "--no-owner", f"--file={dest}", target], env=env,  # noqa: S603 - a fixed tool, no shell
                          capture_output=True, text=True)
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["failed"])[0]
        raise InputError(f"store backup: pg_dump failed ({first[:200]}); nothing usable was copied")


def backup(engine: sa.Engine, url: str, dest: Path, copy_index, facts: dict) -> dict:
    """Copy the store (`engine`, at `url`) into the new folder `dest`, and its contact index by
    `copy_index(dest)` (returns the copy's path, or None when the store has no index yet);
    `facts` (identity, generation, key fingerprint) go into backup.json. The caller holds the
    writer lock."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"store backup: {dest} exists and is not an empty folder; name a new one")
    old_umask = os.umask(0o077)  # the copies are the owner's only, as the store's files are
    try:
        dest.mkdir(parents=True, exist_ok=True)
        if engine.dialect.name == "sqlite":
            store_copy = dest / Path(str(engine.url.database)).name
            _sqlite_copy(str(engine.url.database), store_copy)
        else:
            store_copy = dest / "cases.pgdump"
            _pg_dump(engine, store_copy)
        index_copy = copy_index(dest)
    finally:
        os.umask(old_umask)
    files = [p for p in (store_copy, index_copy) if p is not None]
    record = {"made_at": clock.stamp(), "case_store": url, **facts,
              "files": {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files}}
    (dest / "backup.json").write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.chmod(dest / "backup.json", 0o600)
    return record
