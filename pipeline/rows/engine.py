"""What a night (or a book load) asks of an engine, and the engine of this machine.

An engine does two things with a night's rows: it checks them (reads, normalises, holds them to
the contract, scopes them, judges them by the row rules and makes their keyed contact rows,
chunk by chunk), and it runs the shared-value group-by of PHONE_SHARED / BANK_SHARED (which
values do two or more customers carry). It also describes itself for the manifest and is
closed at the end of the night.

- `LocalEngine`: the chunks in this process or in `workers` processes (pipeline.rows.chunks),
  the group-by in numpy (pipeline.book.detect).
- `pipeline.spark.night.SparkNight`: the chunks as Spark tasks, the group-by on Spark.

pipeline.night.engines picks one by name: nothing else asks which engine runs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from pipeline.ingest import Reading
from pipeline.progress import Stages
from pipeline.rows.chunks import Tally, check_rows, per_worker
from pipeline.settings import Settings


@dataclass(frozen=True, eq=False)
class CheckJob:
    """What checking every chunk of one night (or one book file) needs besides its rows: the
    same for each chunk, so it is handed once to each worker process or Spark task (picklable)."""

    business_date: dt.date
    cfg: Settings
    agents: pd.DataFrame | None  # the roster's agents (pipeline.ingest.roster), or None
    key: bytes  # the store's hash key: contact rows are keyed with it
    version: str  # what the contact rows are written as (pipeline.book.rows.version_of)
    book_load: bool = False  # a book load keeps no findings and looks nothing up


class Engine(Protocol):
    """What the night asks of an engine."""

    def check_rows(self, extracts: Sequence[str], mapping: dict[str, str], job: CheckJob,
                   stages: Stages) -> tuple[Reading, Tally]:
        """Every row of `extracts` read and checked, chunk by chunk: what was read, and what the
        night keeps of the chunks, in the extract's order."""
        ...

    def crowded(self, tonight_v: np.ndarray, tonight_c: np.ndarray, stored_v: np.ndarray,
                stored_c: np.ndarray) -> np.ndarray:
        """The shared-value group-by: the value digests (sorted, unsigned) that two or more
        customer digests carry, over tonight's contact rows and the stored rows sharing a value
        with them. It may return more than the exact answer, never fewer (pipeline.book.detect
        narrows exactly)."""
        ...

    def describe(self) -> dict:
        """The manifest's `engine`."""
        ...

    def chunking(self, chunks: int) -> dict:
        """The manifest's `chunks`, for a night of `chunks` chunks."""
        ...

    def close(self) -> None:
        ...


class LocalEngine:
    """The chunks checked here or in `workers` forked processes; the group-by in numpy."""

    def __init__(self, cfg: Settings) -> None:
        self.cfg = cfg

    def check_rows(self, extracts: Sequence[str], mapping: dict[str, str], job: CheckJob,
                   stages: Stages) -> tuple[Reading, Tally]:
        return check_rows(list(extracts), mapping, job, stages)

    def crowded(self, tonight_v: np.ndarray, tonight_c: np.ndarray, stored_v: np.ndarray,
                stored_c: np.ndarray) -> np.ndarray:
        from pipeline.book.detect import crowded_here  # (a Spark task unpickling a CheckJob needs none of it)

        return crowded_here(tonight_v, tonight_c, stored_v, stored_c)

    def describe(self) -> dict:
        return {"name": "local"}

    def chunking(self, chunks: int) -> dict:
        workers = self.cfg.worker_processes
        return {"rows_per_chunk": self.cfg.chunk_rows, "chunks": chunks, "workers": workers,
                "rows_per_worker_chunk": per_worker(self.cfg.chunk_rows, workers)}

    def close(self) -> None:
        pass
