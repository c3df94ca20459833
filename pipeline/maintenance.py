"""Commands that work on the case store and its contact index together (docs/contact-index.md):
`custdq store backup` and `custdq index upgrade`. Above both stores' packages, so that neither
imports the other's commands."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from pipeline import store
from pipeline.book import database
from pipeline.book.index import COLUMNS, DERIVED, ROW
from pipeline.errors import InputError
from pipeline.store import backup, hashkey
from pipeline.store.lock import store_lock


def backup_store(db: str | None, config_path: str | None, dest: Path, notify=None) -> dict:
    """`custdq store backup DEST`: the case store and its contact index copied together under the
    writer lock (pipeline.store.backup). A pair caught between two commits is copied as it is:
    the next command on the restored pair takes the unfinished write back as it would here."""

    engine, cfg = store.existing(db, config_path)
    url = store.resolve(db, cfg)
    key = store.existing_key(engine, db, cfg)
    with store_lock(engine, "store backup", None, cfg.lock_wait, notify=notify):
        index = database.open_existing(engine, url, cfg, key)
        try:
            with engine.begin() as conn:
                facts = {"store_id": database.store_id(conn), "generation": database.store_state(conn)[0],
                         "hash_key_fingerprint": hashkey.fingerprint(key),
                         "index_path": str(index.path.absolute()) if index is not None else None}

            def copy_index(folder: Path) -> Path | None:
                if index is None:
                    return None
                copy = folder / index.path.name
                database.copy_file(index, copy)  # checkpointed first: the copy needs no write-ahead log
                return copy

            record = backup.backup(engine, store.shown_url(url), dest, copy_index, facts)
        finally:
            if index is not None:
                index.close()
    engine.dispose()
    return record


def upgrade(db: str | None, config_path: str | None, notify=None) -> dict:
    """`custdq index upgrade`: copy an index written by another major version of DuckDB, or in
    an older layout of custdq's, into a new file in this version's format, under the writer lock;
    the old file is kept beside it as `<name>.duckdb.v<major>` (or `.f<format>`). The rows are
    copied as they are; the columns derived from them (row hashes, 64-bit search keys) are
    computed again by this DuckDB, so that lookups and fingerprints agree with tonight's."""

    engine, cfg = store.existing(db, config_path)
    url = store.resolve(db, cfg)
    with store_lock(engine, "index upgrade", None, cfg.lock_wait, notify=notify):
        with engine.begin() as conn:
            path = database.path_for(conn, url, cfg)
        if not path.exists():
            raise InputError(f"contact index {path}: missing; nothing to upgrade")
        con = database._connect(path, cfg, read_only=False)
        try:
            facts = dict(con.execute("SELECT key, value FROM index_meta").fetchall())
        except duckdb.Error:
            con.close()
            raise InputError(f"contact index {path}: not a custdq contact index; nothing was changed") from None
        old, fmt = facts.get("duckdb_major", "?"), facts.get("format", "?")
        done = {"path": str(path), "from": old, "to": database.MAJOR, "format_from": fmt, "format": database.FORMAT}
        if old == database.MAJOR and fmt == database.FORMAT:
            con.close()
            return {**done, "upgraded": False}
        if fmt not in database.READABLE_FORMATS:
            con.close()
            raise InputError(f"contact index {path}: format {fmt}, this custdq upgrades formats "
                             f"{', '.join(database.READABLE_FORMATS)}; upgrade custdq; nothing was changed")
        fresh = path.with_name(path.name + ".upgrade")
        for p in database.side_files(fresh):
            database._remove(p)
        try:
            _copy_upgraded(con, fresh)
        except BaseException:
            con.close()
            for p in database.side_files(fresh):
                database._remove(p)
            raise
        con.close()
        kept = path.with_name(f"{path.name}.v{old}" if old != database.MAJOR else f"{path.name}.f{fmt}")
        os.replace(path, kept)
        os.replace(fresh, path)
        database._remove(path.with_name(path.name + ".wal"))
        for p in (path, kept):  # keyed hashes and masked details: the owner's only, the kept file too
            os.chmod(p, 0o600)
    engine.dispose()
    return {**done, "upgraded": True, "kept": str(kept)}


def _copy_upgraded(con: duckdb.DuckDBPyConnection, fresh: Path) -> None:
    """The index open on `con` copied into a new file `fresh` in this version's layout: its rows
    as they are, the columns derived from them computed again (pipeline.book.index.DERIVED)."""
    old = con.execute("SELECT current_database()").fetchall()[0][0]
    old_umask = os.umask(0o077)
    try:
        con.execute(f"ATTACH '{database._quoted(fresh)}' AS custdq_fresh").fetchall()
        con.execute("USE custdq_fresh").fetchall()
        con.execute(database.TABLES).fetchall()
        for table, extra in (("contacts", ""), ("replaced", "by_version, ")):
            con.execute(f'INSERT INTO {table} ({extra}id, {ROW}) '  # noqa: S608 - constant names
                        f'SELECT {extra}id, {COLUMNS}, {DERIVED} FROM "{old}".{table}').fetchall()
        for table in ("seen", "versions", "index_meta"):
            con.execute(f'INSERT INTO {table} SELECT * FROM "{old}".{table}').fetchall()  # noqa: S608 - constant names
        con.execute("UPDATE index_meta SET value = ? WHERE key = 'duckdb_major'", [database.MAJOR]).fetchall()
        con.execute("UPDATE index_meta SET value = ? WHERE key = 'format'", [database.FORMAT]).fetchall()
        con.execute(f'USE "{old}"').fetchall()
        con.execute("DETACH custdq_fresh").fetchall()
    finally:
        os.umask(old_umask)
