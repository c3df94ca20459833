"""The contact index's own file: an embedded DuckDB database beside the case store (issue 29).

Why DuckDB. The index is a table of tens of millions of keyed phones and accounts that a night
joins against a few hundred thousand of its own values, and then updates by appending rows and
deleting a few policies' rows: the work a columnar engine does best (a join scans two 16-byte
columns; an append writes new row groups; nothing is a random B-tree insert), with no tiers,
digests or compactions to keep by hand.

Where. `contact_index.path`; by default beside an SQLite store (`cases.db` ->
`cases.contacts.duckdb`), and for a PostgreSQL store in the folder of its hash key
(`contacts-<store id>.duckdb`).

Two stores, one truth. The case store and the index are two databases: every command that
changes the index does it in one DuckDB transaction, opened after the case store's and committed
just before it (`IndexFile.commit`). Both record a generation (a counter of committed writes)
and, per version the index holds (a night or a book load), a token of the write that made it.
Opening the index compares them:

* the same generation: the two agree;
* the index one ahead: a command was killed between the two commits; the caller takes back, on
  each side, every version the other side does not hold with the same token (pipeline.cases.nights
  `recover`, the code a re-run uses), then both agree again;
* anything else (an index behind its store, another store's index, another hash key, no index
  where the store has written one): exit 2 with one line, never a silent empty index.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import sqlalchemy as sa

from pipeline.errors import InputError
from pipeline.settings import Settings
from pipeline.store.schema import meta

FORMAT = "2"  # this file's layout (tables below); 2: the 64-bit search keys v64, c64, p64
READABLE_FORMATS = ("1", "2")  # the layouts `custdq index upgrade` copies into FORMAT
MAJOR = duckdb.__version__.split(".")[0]  # the DuckDB major version the file was written by
ROW_COLUMNS = """kind VARCHAR, value BLOB, customer BLOB, person BLOB, policy_no VARCHAR NOT NULL, field VARCHAR,
    masked_value VARCHAR, masked_name VARCHAR, masked_id VARCHAR, branch VARCHAR, channel VARCHAR, agent_code VARCHAR,
    receipt_date VARCHAR, version VARCHAR NOT NULL, h UBIGINT NOT NULL, h2 UBIGINT NOT NULL, v64 UBIGINT, c64 UBIGINT,
    p64 UBIGINT NOT NULL"""
TABLES = f"""
CREATE TABLE IF NOT EXISTS index_meta (key VARCHAR NOT NULL, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS contacts (id BIGINT NOT NULL, {ROW_COLUMNS});
CREATE TABLE IF NOT EXISTS replaced (by_version VARCHAR NOT NULL, id BIGINT NOT NULL, {ROW_COLUMNS});
CREATE TABLE IF NOT EXISTS seen (policy_no VARCHAR NOT NULL, version VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS versions (version VARCHAR NOT NULL, token VARCHAR NOT NULL);
"""
# the case store's side (its custdq_meta table)
STORE_GENERATION = "contact_index_generation"
STORE_VERSIONS = "contact_index_versions"
STORE_ID = "store_id"


def store_id(conn: sa.Connection) -> str:
    """The case store's identity (a random id made when it was first opened by this version)."""
    have = conn.execute(sa.select(meta.c.value).where(meta.c.key == STORE_ID)).scalar()
    if have is None:
        have = secrets.token_hex(8)
        conn.execute(meta.insert().values(key=STORE_ID, value=have))
    return str(have)


def _store_value(conn: sa.Connection, key: str) -> str | None:
    return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()


def _set_store_value(conn: sa.Connection, key: str, value: str) -> None:
    conn.execute(meta.delete().where(meta.c.key == key))
    conn.execute(meta.insert().values(key=key, value=value))


def store_state(conn: sa.Connection) -> tuple[int, dict[str, str]]:
    """(generation, {version: token}) as the case store records them."""
    generation = int(_store_value(conn, STORE_GENERATION) or 0)
    return generation, json.loads(_store_value(conn, STORE_VERSIONS) or "{}")


def index_path(cfg: Settings, url: str, identity: str, key_file: Path) -> Path:
    """Where the store's contact index lives (module docstring)."""
    configured = cfg.contact_index.path
    if configured:
        return Path(configured).expanduser()
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        store = Path(url[len("sqlite:///"):].split("?", 1)[0])
        return store.with_name(store.stem + ".contacts.duckdb")
    return key_file.parent / f"contacts-{identity}.duckdb"


def side_files(path: Path) -> list[Path]:
    """The index file and DuckDB's files beside it (its write-ahead log, its spill folder)."""
    return [path, path.with_name(path.name + ".wal"), path.with_name(path.name + ".tmp")]


@dataclass
class Mismatch:
    """A command killed between the index's commit and the case store's: what each side must
    take back (versions) so that both agree again."""

    index_only: list[str] = field(default_factory=list)  # versions to take back in the index
    store_only: list[str] = field(default_factory=list)  # versions to take back in the case store


class IndexFile:
    """One open contact index (a DuckDB connection), checked against its case store."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, read_only: bool, cfg: Settings):
        self.path = path
        self.con = con
        self.read_only = read_only
        self.cfg = cfg
        self.in_transaction = False
        self.token = ""
        self.created = False  # this command made the file

    # ---- SQL helpers -------------------------------------------------------------------
    @contextlib.contextmanager
    def registered(self, name: str, table):
        """`table` (Arrow) readable as `name` by the statements inside. A failure inside is the one
        raised: unregistering in a transaction the failure aborted fails too, and hid it (a night
        short of memory said "TransactionException")."""
        self.con.register(name, table)
        try:
            yield
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                self.con.unregister(name)
            raise
        self.con.unregister(name)

    def run(self, sql: str, params: list | None = None) -> list:
        """Run one statement to its end; its rows (a count for a write)."""
        return self.con.execute(sql, params).fetchall()

    def one(self, sql: str, params: list | None = None):
        rows = self.run(sql, params)
        return rows[0][0] if rows else None

    def arrow(self, sql: str, params: list | None = None):
        return self.con.sql(sql, params=params).to_arrow_table()

    def reader(self, sql: str, rows: int = 200_000):
        return self.con.sql(sql).to_arrow_reader(rows)

    def meta(self, key: str) -> str | None:
        return self.one("SELECT value FROM index_meta WHERE key = ?", [key])

    def set_meta(self, key: str, value: str) -> None:
        self.run("DELETE FROM index_meta WHERE key = ?", [key])
        self.run("INSERT INTO index_meta VALUES (?, ?)", [key, value])

    def generation(self) -> int:
        return int(self.meta("generation") or 0)

    def versions(self) -> dict[str, str]:
        return dict(self.run("SELECT version, token FROM versions ORDER BY version"))

    def empty(self) -> bool:
        return not self.one("SELECT count(*) FROM versions") and not self.one("SELECT count(*) FROM contacts")

    # ---- transactions ------------------------------------------------------------------
    def begin(self) -> None:
        """Start the command's write transaction (after the case store's has begun)."""
        if self.read_only:
            raise RuntimeError("the contact index was opened read-only (bug)")
        self.run("BEGIN TRANSACTION")
        self.in_transaction = True
        self.token = secrets.token_hex(8)

    def wrote(self, version: str) -> None:
        """`version` was (re)written by this transaction."""
        self.run("DELETE FROM versions WHERE version = ?", [version])
        self.run("INSERT INTO versions VALUES (?, ?)", [version, self.token])

    def forgot(self, version: str) -> None:
        """`version` was taken back by this transaction."""
        self.run("DELETE FROM versions WHERE version = ?", [version])

    def commit(self, conn: sa.Connection) -> None:
        """Record the new generation and versions on both sides, and commit the index: the case
        store's transaction (`conn`) commits after this, by its caller."""
        generation = max(self.generation(), store_state(conn)[0]) + 1
        self.set_meta("generation", str(generation))
        _set_store_value(conn, STORE_GENERATION, str(generation))
        _set_store_value(conn, STORE_VERSIONS, json.dumps(self.versions(), sort_keys=True))
        self.run("COMMIT")
        self.in_transaction = False

    def rollback(self) -> None:
        if self.in_transaction:
            self.in_transaction = False
            try:
                self.run("ROLLBACK")
            except duckdb.Error:
                pass  # the connection is gone already: nothing was committed

    def close(self) -> None:
        self.rollback()
        self.con.close()

    def working_copy(self, keep: dict[str, str] | None = None) -> IndexFile:
        """A copy of the index in a new file beside it (`<name>.load`), written statement by
        statement (a load of tens of millions of rows in one DuckDB transaction holds them in
        memory) and put in place of the index by `replace_with`: a failed load leaves the index
        as it was, the copy is removed. `keep`: a table's condition on the rows copied (the
        retention purge's copy without the destroyed rows; a DELETE of millions of rows is held
        in memory too)."""
        fresh = _beside(self.path, ".load")
        try:
            self._copy_to(fresh, keep)
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                self.run("DETACH DATABASE IF EXISTS custdq_fresh")
            for p in side_files(fresh):
                _remove(p)
            raise
        copy = IndexFile(fresh, _connect(fresh, self.cfg, False), False, self.cfg)
        copy.token = secrets.token_hex(8)
        return copy

    def replace_with(self, copy: IndexFile, conn: sa.Connection) -> None:
        """The index's commit for a working copy: the new generation recorded in the copy and in
        the case store (`conn`, committed by the caller after this), then the copy renamed over
        the index."""
        generation = max(copy.generation(), store_state(conn)[0]) + 1
        copy.set_meta("generation", str(generation))
        _set_store_value(conn, STORE_GENERATION, str(generation))
        _set_store_value(conn, STORE_VERSIONS, json.dumps(copy.versions(), sort_keys=True))
        copy.run("CHECKPOINT")
        copy.con.close()
        self.rollback()
        self.con.close()
        _into_place(copy.path, self.path)
        self.con = _connect(self.path, self.cfg, self.read_only)

    def discard(self) -> None:
        """Close and remove a working copy that will not be used."""
        try:
            self.con.close()
        finally:
            for p in side_files(self.path):
                _remove(p)

    def _copy_to(self, fresh: Path, keep: dict[str, str] | None = None) -> None:
        name = self.one("SELECT current_database()")
        old_umask = os.umask(0o077)
        try:
            self.run(f"ATTACH '{_quoted(fresh)}' AS custdq_fresh")
            if keep is None:
                self.run(f'COPY FROM DATABASE "{name}" TO custdq_fresh')
            else:
                self.run(f'COPY FROM DATABASE "{name}" TO custdq_fresh (SCHEMA)')
                for (table,) in self.run("SELECT table_name FROM duckdb_tables() WHERE database_name = ? "
                                         "ORDER BY table_name", [name]):
                    where = f" WHERE {keep[table]}" if table in keep else ""
                    self.run(f'INSERT INTO custdq_fresh."{table}" SELECT * FROM "{name}"."{table}"{where}')  # noqa: S608 - the catalogue's names, the caller's constant conditions
            self.run("DETACH custdq_fresh")
        finally:
            os.umask(old_umask)

    def __enter__(self) -> IndexFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the agreement with the case store ----------------------------------------------
    def mismatch(self, conn: sa.Connection) -> Mismatch | None:
        """None when the index and the case store agree; what to take back after a command was
        killed between the two commits; InputError for an index that cannot be this store's."""
        generation, versions = store_state(conn)
        mine = self.generation()
        if mine == generation:
            return None
        if mine == generation + 1:
            held = self.versions()
            return Mismatch(sorted(v for v, t in held.items() if versions.get(v) != t),
                            sorted(v for v, t in versions.items() if held.get(v) != t))
        if mine < generation:
            raise InputError(f"contact index {self.path}: older than its case store (it holds write {mine}, the store "
                             f"write {generation}): an index restored without its store? Restore both from one "
                             "`custdq store backup`; nothing was changed")
        raise InputError(f"contact index {self.path}: ahead of its case store by {mine - generation} writes: a case "
                         "store restored without its index? Restore both from one `custdq store backup`; nothing was "
                         "changed")


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _beside(path: Path, suffix: str) -> Path:
    """A new file's name beside the index, cleared of what a killed command left there."""
    made = path.with_name(path.name + suffix)
    for p in side_files(made):
        _remove(p)
    return made


def _into_place(made: Path, path: Path) -> None:
    """`made` (closed, checkpointed) renamed over the index at `path`, and the side files of both
    that no longer belong to a file removed: a command killed at any moment leaves one whole index."""
    os.replace(made, path)
    for p in side_files(made)[1:] + side_files(path)[1:2]:
        _remove(p)


def _connect(path: Path, cfg: Settings, read_only: bool) -> duckdb.DuckDBPyConnection:
    settings = cfg.contact_index
    config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": settings.memory_limit,
              "threads": settings.thread_count,
              "preserve_insertion_order": False,
              # no vacuum at checkpoints: DuckDB would merge row groups at every commit (up to 100
              # merges, 12-23 s a night on a 20M-policy book, whatever the night wrote); a night
              # adds one partial row group and marks its few replaced rows deleted, and the
              # retention purge copies what it keeps into a fresh file (`working_copy(keep=...)`)
              "max_vacuum_tasks": 0}
    temp = settings.temp_directory
    config["temp_directory"] = str(Path(temp).expanduser()) if temp else str(path.with_name(path.name + ".tmp"))
    try:
        return duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            raise InputError(f"contact index {path}: in use by another custdq command (a night or an index load); "
                             "try again when it has finished") from None
        raise InputError(f"contact index {path}: cannot open it ({text.splitlines()[0][:200]})") from None
    except duckdb.Error as exc:
        raise InputError(f"contact index {path}: not a contact index DuckDB can open "
                         f"({str(exc).splitlines()[0][:200]})") from None


def open_index(path: Path, cfg: Settings, conn: sa.Connection, fingerprint: str, create: bool,
               read_only: bool = False) -> IndexFile:
    """The store's contact index at `path`, checked against the store (`conn`) and its hash key
    (`fingerprint`). Only a store that has never written an index may have it created (`create`)."""
    identity = store_id(conn)
    generation, _ = store_state(conn)
    made = not path.exists()
    if made:
        if generation or not create:
            what = "its case store has written one" if generation else "nothing was created"
            raise InputError(f"contact index {path}: missing ({what}); restore it with the case store from one "
                             "`custdq store backup`, or set contact_index.path to where it is")
        _create(path, cfg, identity, fingerprint, generation)
    index = IndexFile(path, _connect(path, cfg, read_only), read_only, cfg)
    index.created = made
    try:
        _check(index, identity, fingerprint)
        index.mismatch(conn)  # an index behind its store, or too far ahead: refused here
    except BaseException:
        index.close()
        raise
    return index


def _create(path: Path, cfg: Settings, identity: str, fingerprint: str, generation: int) -> None:
    """A new, empty index at `path`, whole or not at all: made under another name and renamed
    into place, so a process killed while making it leaves no file that is half an index (the
    next command would refuse it as not a contact index)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    making = _beside(path, ".new")
    old_umask = os.umask(0o077)  # DuckDB creates its files with the process's umask: the owner's only
    try:
        con = _connect(making, cfg, read_only=False)
    finally:
        os.umask(old_umask)
    try:
        con.execute(TABLES).fetchall()
        for key, value in (("format", FORMAT), ("duckdb_major", MAJOR), ("store_id", identity),
                           ("hash_key_fingerprint", fingerprint), ("generation", str(generation)), ("next_id", "1")):
            con.execute("INSERT INTO index_meta VALUES (?, ?)", [key, value]).fetchall()
    finally:
        con.close()  # (a checkpoint: the whole index is in the one file)
    _into_place(making, path)


def _check(index: IndexFile, identity: str, fingerprint: str) -> None:
    try:
        fmt = index.meta("format")
    except duckdb.CatalogException:
        raise InputError(f"contact index {index.path}: not a custdq contact index; nothing was changed") from None
    if index.meta("duckdb_major") != MAJOR:
        raise InputError(f"contact index {index.path}: written by DuckDB {index.meta('duckdb_major')}.x, this custdq "
                         f"runs DuckDB {MAJOR}.x: upgrade it once with `custdq index upgrade` (a new file, the old "
                         "one kept); nothing was changed")
    if fmt != FORMAT and fmt in READABLE_FORMATS:
        raise InputError(f"contact index {index.path}: format {fmt}, written by an earlier custdq: upgrade it once "
                         "with `custdq index upgrade` (a new file, the old one kept); nothing was changed")
    if fmt != FORMAT:
        raise InputError(f"contact index {index.path}: format {fmt}, this custdq reads format {FORMAT}; "
                         "upgrade custdq")
    if index.meta("store_id") != identity:
        raise InputError(f"contact index {index.path}: belongs to another case store (store id "
                         f"{index.meta('store_id')}, this one {identity}); set contact_index.path to this store's "
                         "index; nothing was changed")
    if index.meta("hash_key_fingerprint") != fingerprint:
        raise InputError(f"contact index {index.path}: built with another hash key than this case store's; restore "
                         "the store's own key or index; nothing was changed")


def copy_file(index: IndexFile, dest: Path) -> None:
    """A consistent copy of the index (its writes checkpointed into the file first)."""
    index.run("CHECKPOINT")
    shutil.copy2(index.path, dest)
    os.chmod(dest, 0o600)


def path_for(conn: sa.Connection, url: str, cfg: Settings) -> Path:
    """The contact index's path for the case store at `url` (`conn`: a connection to it)."""
    from pipeline.store import hashkey

    return index_path(cfg, url, store_id(conn), hashkey.key_path(cfg.hash_key_file, url))


def open_for(engine: sa.Engine, url: str, cfg: Settings, key: bytes, create: bool = False,
             read_only: bool = False) -> IndexFile:
    """The contact index of the case store `engine` (at `url`), checked against it and its key."""
    from pipeline.store import hashkey

    from pipeline.book import legacy

    with engine.begin() as conn:
        # the store's identity committed before an index names it: a process killed between
        # would otherwise leave an index of a store id the store never kept
        path = path_for(conn, url, cfg)
    with engine.begin() as conn:
        old = legacy.present(conn)
        index = open_index(path, cfg, conn, hashkey.fingerprint(key), create or old, read_only)
    if old and not read_only:  # an index kept in the case store before schema 11: moved here, once
        try:
            with engine.begin() as conn:
                index.begin()
                legacy.migrate(conn, index)
                index.commit(conn)
        except BaseException:
            index.close()
            raise
    return index


def open_existing(engine: sa.Engine, url: str, cfg: Settings, key: bytes, read_only: bool = False) -> IndexFile | None:
    """The store's contact index, or None when the store has never written one (and there is
    none where it would be)."""
    with engine.begin() as conn:
        path = path_for(conn, url, cfg)
        if not path.exists() and not store_state(conn)[0]:
            return None
    return open_for(engine, url, cfg, key, read_only=read_only)

