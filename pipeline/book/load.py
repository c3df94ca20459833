"""`custdq index load BOOK...`: seed the contact index from a full customer-book extract.

A book file has the columns of a policy extract and goes through the same reading,
normalisation, contract and scope as a night, so the index holds exactly what a night would
have written. Files are read one at a time (memory follows the largest file). The load is one
transaction; loading a book with the same `--as-of` date again replaces that load. Into an
empty index the rows go straight into the main tier with its lookup indexes dropped and rebuilt
afterwards (one sort per index instead of millions of random inserts); otherwise they are
written like a night's and the tiers are compacted at the end (pipeline.book.index).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pandas as pd

from pipeline.lock import store_lock
from pipeline import config, contract, hashkey, outputs, store
from pipeline.book import index
from pipeline.book.tonight import NightContacts
from pipeline.book.rows import contact_rows, version_of
from pipeline.columns import EXTRACT_COLUMNS, alias_map
from pipeline.engine import context
from pipeline.ingest import read_extract
from pipeline.normalise import normalise
from pipeline.progress import peak_memory_mb
from pipeline.scope import split


def load_book(paths: list[str], as_of: dt.date, out_dir: str | None = None, db: str | None = None,
              config_path: str | None = None, progress=print) -> dict:
    started = time.perf_counter()
    cfg = config.load(config_path)
    engine, key, created = store.open_with_key(db, cfg)
    try:
        manifest = _load(paths, as_of, out_dir, engine, key, created.url, cfg, progress, started)
    except BaseException:
        created.remove(engine)  # a first load that failed leaves no store and no key behind
        raise
    for line in created.notes():
        progress(f"custdq: {line}")
    return manifest


def _load(paths, as_of, out_dir, engine, key, db, cfg, progress, started) -> dict:
    version = version_of(as_of.isoformat(), "book")
    out = Path(out_dir) if out_dir else Path("out") / f"index-load-{as_of.isoformat()}"
    files, quarantines = [], []
    loaded: set[str] = set()  # a policy in two book files: the first file's row counts

    def books():
        """(contact rows, policies) of each file in turn; the file's accounting into `files`."""
        for path in paths:
            extract = read_extract([path], alias_map(EXTRACT_COLUMNS, cfg["aliases"]))
            frame = normalise(extract.frame, cfg)
            contract.validate_parsed(frame)
            sources = [i.path for i in extract.inputs]
            sp = split(frame, sources, cfg)
            checked = frame[sp.in_scope]
            again = checked["policy_no"].isin(loaded)
            rows = contact_rows(checked[~again], context(as_of, extract.frame, cfg), key, version)
            loaded.update(checked["policy_no"])
            quarantine = pd.concat([extract.quarantine, sp.quarantined], ignore_index=True)
            quarantines.append(quarantine)
            info = extract.inputs[0].to_dict() | {
                "rows_in_scope": int(sp.in_scope.sum()), "rows_out_of_scope": int(sp.out_of_scope.sum()),
                "rows_quarantined": len(quarantine), "policies_in_earlier_file": int(again.sum()),
                "contact_rows": len(rows)}
            if info["rows"] != info["rows_in_scope"] + info["rows_out_of_scope"] + info["rows_quarantined"]:
                raise RuntimeError("row reconciliation failed: a row was lost (bug)")
            files.append(info)
            progress(f"custdq: index load: {path}: {info['rows']} rows, {len(rows)} contact rows")
            yield rows, checked.loc[~again, "policy_no"]

    with store_lock(engine, "index load", None, float(cfg["store"]["lock_wait_seconds"]), notify=progress), \
            engine.begin() as conn:
        book = index.ContactIndex(conn)
        taken_back = book.undo(version)
        bulk = book.size()["rows"] == 0
        if bulk:  # into an empty index: straight into the main tier, file by file, indexes built once
            written = book.bulk_main(rows for rows, _ in books())
            compacted = None
        else:
            written = sum(book.write(NightContacts.of(rows, version), policies, version)["rows_written"]
                          for rows, policies in books())
            progress("custdq: index load: merging the tiers into the main index")
            compacted = book.compact()
        sizes = book.size()
    manifest = {
        "command": "index load", "as_of": as_of.isoformat(), "version": version, "inputs": files,
        "rows_read": sum(f["rows"] for f in files), "contact_rows_written": written,
        "rows_taken_back": taken_back, "bulk_mode": bulk, "compacted": compacted, "index": sizes, "case_store": store.safe_url(db),
        "seconds": round(time.perf_counter() - started, 1), "peak_memory_mb": peak_memory_mb(),
    }
    out.mkdir(parents=True, exist_ok=True)
    outputs.write_quarantine(pd.concat(quarantines, ignore_index=True), out)
    outputs.write_json(manifest, out / "manifest.json")
    manifest["out_dir"] = str(out)
    return manifest
