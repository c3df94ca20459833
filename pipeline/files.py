"""A file written whole or not at all: written beside its place, flushed to disk, renamed into
place (the outputs, the quarterly report, an import's rejects); and the names of a night's
output files. A leaf module: the gate's own process reads the names without the outputs package."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# The files and folders of a night's output folder (SPEC 5), named here once (pipeline.outputs
# offers them as outputs.MANIFEST ...). manifest.json is written last: its presence marks a
# complete night.
MANIFEST = "manifest.json"
ITEMS_CSV, ITEMS_PARQUET, QUARANTINE = "items.csv", "items.parquet", "quarantine.csv"
DASHBOARD, EXPECTATIONS = "dashboard.html", "expectations.json"
WORKLISTS, DATA_DOCS = "worklists", "data_docs"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
