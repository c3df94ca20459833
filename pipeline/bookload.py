"""`custdq index load BOOK...`: seed the contact index from a full customer-book extract.

A book file has the columns of a policy extract and goes through the same reading,
normalisation, contract and scope as a night, so the index holds exactly what a night would
have written. Files are read one at a time, each chunk by chunk through the night's own row
stages (pipeline.rows.chunks, on `workers` processes): memory follows the chunk and a file's packed
contact rows (~26 bytes a row in memory, the rest in a temporary file). The load is one
copy of the contact index (pipeline.book.database `working_copy`: tens of millions of rows in
one DuckDB transaction would be held in memory), renamed over the index just before the case
store commits; loading a book with the same `--as-of` date again replaces that load. Each file's rows
are written as a night's are (pipeline.book.index): appended a chunk of Arrow rows at a time,
a policy already held with the same rows left as it is.

With `--engine spark` each file's rows are read, normalised, checked and turned into keyed
contact rows as Spark tasks (pipeline.spark.night, the night's own row stages), and the driver
writes what they hand back: the same rows as the local load, for a book whose row stages
outgrow one machine.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from pipeline.book.digests import within

from pipeline import outputs, settings, store
from pipeline.night import engines
from pipeline.rows.engine import CheckJob, Engine
from pipeline.settings import Settings
from pipeline.book import database, index
from pipeline.book.rows import version_of
from pipeline.ingest.columns import EXTRACT_COLUMNS, alias_map
from pipeline.store.lock import store_lock
from pipeline.progress import Stages, peak_memory_mb
from pipeline.cases.nights import recover

SPARK_STAGES = ["ingest", "normalise", "contract", "scope", "check"]  # the row stages of a book file


def load_book(paths: list[str], as_of: dt.date, out_dir: str | None = None, db: str | None = None,
              config_path: str | None = None, progress=print, engine_name: str = "local",
              new_store: bool = False) -> dict:
    engines.check_name(engine_name)
    started = time.perf_counter()
    cfg = settings.load(config_path)
    engine, key, created = store.open_with_key(db, cfg, new_store, as_of)
    checker: Engine | None = None
    try:
        checker = engines.engine_for(engine_name, cfg)
        manifest = _load(paths, as_of, out_dir, engine, key, created, cfg, progress, started, checker)
    except BaseException:
        created.remove(engine)  # a first load that failed leaves no store and no key behind
        raise
    finally:
        if checker is not None:
            checker.close()
    for line in created.notes():
        progress(f"custdq: {line}")
    return manifest


def compact_index(db: str | None, config_path: str | None) -> dict:
    """`custdq index compact`: nothing to do since the index lives in DuckDB (issue 29), which
    needs no compaction; kept, checking that the store exists, for schedulers that call it."""
    engine, cfg = store.existing(db, config_path)
    engine.dispose()
    return {"rows_moved": 0}


def first_records(policies: pa.ChunkedArray | pa.Array, con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """Flags of the first record of each policy number, in order: a DuckDB group-by of the
    positions (within its memory limit, spilling beyond it, for a 20M-row book file; no pandas
    hash table of Python strings).

    >>> first_records(pa.array(["P1", "P2", "P1", "P3", "P2"]), duckdb.connect()).tolist()
    [True, True, False, True, False]
    """
    positions = pa.table({"p": policies, "i": pa.array(np.arange(len(policies), dtype=np.int64))})
    con.register("load_positions", positions)
    try:
        firsts = con.sql("SELECT min(i) AS i FROM load_positions GROUP BY p").to_arrow_table()["i"]
    finally:
        con.unregister("load_positions")
    flags = np.zeros(len(policies), dtype=bool)
    flags[firsts.to_numpy()] = True
    return flags


def _load(paths: list[str], as_of: dt.date, out_dir: str | None, engine: sa.Engine, key: bytes,
          created: store.Created, cfg: Settings, progress: Callable[[str], object], started: float,
          checker: Engine) -> dict:
    db = created.url
    version = version_of(as_of.isoformat(), "book")
    out = Path(out_dir) if out_dir else Path("out") / f"index-load-{as_of.isoformat()}"
    files, quarantines = [], []
    loaded: list[pa.Array] = []  # the policy numbers of the earlier files (a policy in two: the first counts)

    job = CheckJob(as_of, cfg, None, key, version, book_load=True)

    def files_rows():
        """Per file: its accounting, its quarantine, its in-scope rows' policy numbers (indexed by
        row), and its contact rows (NightContacts) of every in-scope row. Both engines run the
        night's own row stages chunk by chunk (the local one on `workers` processes), so memory
        follows the chunk and the file's packed contact rows, not the file."""
        for path in paths:
            reading, tally = checker.check_rows([path], alias_map(EXTRACT_COLUMNS, cfg.aliases), job,
                                                Stages(SPARK_STAGES, quiet=True))
            info = reading.inputs[0].to_dict() | {"rows_in_scope": tally.in_scope,
                                                  "rows_out_of_scope": tally.out_of_scope}
            yield info, pd.concat([reading.quarantine, *tally.quarantined], ignore_index=True), \
                tally.policy_numbers(), tally.contacts

    def books(db: database.IndexFile):
        """(contact rows, policies) of each file in turn; the file's accounting into `files`."""
        for info, quarantine, (rows, policies), contacts in files_rows():
            # a policy's first record in the book counts, as a night keeps a policy number's
            # first record (its later copies in the file, and its rows in a later file, do not);
            # found on Arrow data: a 20M-row book file is never 20M Python strings
            again = within(policies.combine_chunks(), pa.chunked_array(loaded, pa.large_string()).combine_chunks()) \
                if loaded else np.zeros(len(policies), dtype=bool)
            first = first_records(policies, db.con) & ~again
            keep = np.zeros(int(rows.max()) + 1 if len(rows) else 0, dtype=bool)
            keep[rows[first]] = True
            contacts.keep_first(keep)
            if len(paths) > 1:
                loaded.append(policies.filter(pa.array(first)).combine_chunks())
            quarantines.append(quarantine)
            info = info | {"rows_quarantined": len(quarantine), "policies_in_earlier_file": int(again.sum()),
                           "contact_rows": contacts.num_rows}
            if info["rows"] != info["rows_in_scope"] + info["rows_out_of_scope"] + info["rows_quarantined"]:
                raise RuntimeError("row reconciliation failed: a row was lost (bug)")
            files.append(info)
            progress(f"custdq: index load: {info['path']}: {info['rows']} rows, {contacts.num_rows} contact rows")
            del rows, keep, again
            yield contacts, (policies, first)  # filtered by the caller that compares: a load into an empty index does not
            contacts.close()

    with store_lock(engine, "index load", None, cfg.lock_wait, notify=progress), \
            database.open_for(engine, db, cfg, key, create=True) as contact_index:
        if contact_index.created:
            created.index = contact_index.path
        with engine.begin() as conn:  # a command killed between the two commits, taken back
            recover(conn, contact_index)
        with engine.begin() as conn:
            # the load writes a copy of the index, statement by statement, renamed over it at the end
            work = contact_index.working_copy()
            try:
                book = index.ContactIndex(work)
                taken_back = book.undo(version)
                bulk = book.size()["rows"] == 0 and not book.size()["replaced_rows"]
                if bulk:  # into an empty index: each chunk appended, nothing to compare with
                    written = sum(book.append(contacts, version) for contacts, _ in books(work))
                else:
                    written = sum(book.write(contacts, policies.filter(pa.array(first)), version)["rows_written"]
                                  for contacts, (policies, first) in books(work))
                sizes = book.size()
            except BaseException:
                work.discard()
                raise
            contact_index.replace_with(work, conn)
    manifest = {
        "command": "index load", "as_of": as_of.isoformat(), "version": version, "inputs": files,
        "rows_read": sum(f["rows"] for f in files), "contact_rows_written": written,
        "rows_taken_back": taken_back, "bulk_mode": bulk,
        "engine": checker.describe(), "index": sizes, "case_store": store.safe_url(db),
        "seconds": round(time.perf_counter() - started, 1), "peak_memory_mb": peak_memory_mb(),
    }
    out.mkdir(parents=True, exist_ok=True)
    outputs.write_quarantine(pd.concat(quarantines, ignore_index=True), out)
    outputs.write_json(manifest, out / outputs.MANIFEST)
    manifest["out_dir"] = str(out)
    return manifest
