"""The row-level stages of a night, chunk by chunk (issue 7: bounded memory at 10M rows).

Each chunk of about `chunk_rows` records is read, normalised, validated, split by scope,
checked by every row-level rule and turned into contact rows; then it is dropped. What the
night keeps of it is small: its findings with their policy's columns (a few percent of rows),
its in-scope rows' policy columns (for DUPLICATE_POLICY, the dashboard's figures and the case
store's reconciliation), its contact rows (keyed hashes and masked text), its quarantined lines
and the counts the manifest and the expectations need. Row labels are positions in the whole
night, so a finding means the same row whichever chunk it came from, and the outputs do not
depend on the chunk size (tests/test_chunks.py runs one night at several sizes).
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import os
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.types import union_categoricals

from checks.catalogue import NIGHT_RULES, ROW_RULES
from pipeline.ingest import contract
from pipeline.book.rows import contact_rows
from pipeline.book.tonight import NightContacts, Packed, pack
from pipeline.rules import Outcome, context, merge_outcomes, run_rules
from pipeline.errors import CustdqError
from pipeline.rows.profile import merge_profiles, profile
from pipeline.ingest import FastPathLost, Reading, iter_extract
from pipeline.rows.findings import rows_of
from pipeline.logs import count
from pipeline.rows.normalise import normalise
from pipeline.progress import Stages, release
from pipeline.rows.scope import split

if TYPE_CHECKING:
    from pipeline.rows.engine import CheckJob
    from pipeline.settings import Settings

log = logging.getLogger("custdq")
POLICY_COLUMNS = ["policy_no", "branch", "channel", "agent_code", "receipt_date_dt", "_file", "_line"]
CODED = ["branch", "channel", "agent_code"]  # few distinct values: kept as categories


@dataclass
class Tally:
    """What the night keeps of its chunks."""

    found: list[pd.DataFrame] = field(default_factory=list)  # items.rows_of of each chunk
    outcomes: list[Outcome] = field(default_factory=list)
    contacts: NightContacts | None = None
    policies: list[pd.DataFrame] = field(default_factory=list)  # POLICY_COLUMNS of in-scope rows
    quarantined: list[pd.DataFrame] = field(default_factory=list)
    in_scope: int = 0
    out_of_scope: int = 0
    term_unreadable: int = 0
    seen: dict | None = None  # expectations.profile, merged
    contact_seconds: float = 0.0
    night: dict = field(default_factory=dict)  # RuleContext.night: roster analyses, made once
    chunks: int = 0
    keeps_findings: bool = True  # a book load judges no items: it keeps no findings

    @classmethod
    def for_job(cls, job: CheckJob) -> Tally:
        """An empty tally for the chunks of `job` (a book load keeps no findings and no digests)."""
        return cls(contacts=NightContacts(job.version, digests=not job.book_load), keeps_findings=not job.book_load)

    def take(self, result: ChunkResult) -> None:
        """One chunk's results (chunks are taken in the order of the night's rows)."""
        if self.keeps_findings:
            self.found.append(result.found)
            self.policies.append(result.policies)
        else:  # a book load keeps each in-scope row's policy number only, as Arrow text: 20M Python
            # strings and their other columns would hold gigabytes
            numbers = pa.array(result.policies["policy_no"], type=pa.large_string())
            self.policies.append(pd.DataFrame({"policy_no": pd.Series(numbers, dtype=pd.ArrowDtype(pa.large_string()),
                                                                      index=result.policies.index)}))
        self.outcomes = merge_outcomes(self.outcomes, result.outcomes)
        self.seen = merge_profiles(self.seen, result.seen)
        self.quarantined.append(result.quarantined)
        self.in_scope += result.in_scope
        self.out_of_scope += result.out_of_scope
        self.term_unreadable += result.term_unreadable
        if result.contacts is not None:
            if self.contacts is None:
                raise RuntimeError("a chunk's contact rows came back to a tally that keeps none (bug)")
            self.contacts.add_packed(result.contacts)
        self.contact_seconds += result.contact_seconds

    def policy_numbers(self) -> tuple[np.ndarray, pa.ChunkedArray]:
        """(row in the night, policy number) of every in-scope row, in order, as numpy positions
        and the chunks' Arrow text (a book load's whole file: no frame of the other columns,
        no Python strings, no second copy); the chunks' parts are let go."""
        parts, self.policies = self.policies, []
        rows = np.concatenate([p.index.to_numpy(np.int64) for p in parts]) if parts else np.zeros(0, np.int64)
        numbers = [pa.array(p["policy_no"], type=pa.large_string()) for p in parts if len(p)]
        return rows, pa.chunked_array(numbers, pa.large_string())

    def policy_frame(self) -> pd.DataFrame:
        """Tonight's in-scope rows (POLICY_COLUMNS), indexed by their row in the night (once:
        the chunks' parts are let go)."""
        parts = [p for p in self.policies if len(p)] or self.policies[:1]
        self.policies = []  # the parts are not kept beside the whole
        if len(parts) == 1:
            return parts[0]
        out = pd.concat([p.drop(columns=CODED) for p in parts])
        for name in CODED:  # the categories of every chunk as one dictionary
            out[name] = pd.Series(union_categoricals([p[name] for p in parts]), index=out.index)
        return out[POLICY_COLUMNS]


def check_rows(extracts: list[str], mapping: dict[str, str], job: CheckJob, stages: Stages) -> tuple[Reading, Tally]:
    """Read and check every row of the night; a file the fast reader gives up on half-way makes
    the whole night read again with the exact reader (nothing is kept of the first pass). A
    book load (`job.book_load`) keeps no findings and needs no expectations."""
    chunk_rows = per_worker(job.cfg.chunk_rows, job.cfg.worker_processes)
    try:
        return _pass(extracts, mapping, job, stages, chunk_rows, True)
    except FastPathLost:
        stages.note("an extract file needs the exact reader part-way through: reading the night again")
        return _pass(extracts, mapping, job, stages, chunk_rows, False)


def per_worker(chunk_rows: int, workers: int) -> int:
    """The rows of one chunk with `workers` processes: a worker checks one chunk while one more
    waits for it, so each chunk is chunk_rows / (2 x workers) and the night holds about what one
    process holds with `chunk_rows` (measured at 1M rows: 2.02 GB with one process and 250,000,
    2.03 GB with two and 62,500 a chunk, 2.59 GB with 125,000, 3.72 GB with 250,000)."""
    return chunk_rows if workers < 2 else max(1, -(-chunk_rows // (2 * workers)))


def _pass(extracts: list[str], mapping: dict[str, str], job: CheckJob, stages: Stages, chunk_rows: int,
          fast: bool) -> tuple[Reading, Tally]:
    reading, tally = Reading(), Tally.for_job(job)
    parts = iter_extract(extracts, mapping, reading, chunk_rows, fast)
    workers = job.cfg.worker_processes
    pool = Workers(workers, job) if workers > 1 else None
    rows = 0
    try:
        while True:
            with stages.stage("ingest"):
                raw = next(parts, None)
            if raw is None:
                break
            sources = [i.path for i in reading.inputs]
            if pool is None:
                check_here(raw, sources, job, stages, tally)
            else:
                pool.submit(raw, sources)
            rows += len(raw)
            tally.chunks += 1
            whole = len(raw) >= chunk_rows
            del raw
            done = rows if pool is None else pool.take(tally, stages, keep=workers)  # at most `workers` waiting
            release()  # the chunk's working memory goes back before the next one is read
            if (tally.chunks > 1 or whole) and done:
                stages.note(f"{count(done)} rows read and checked")
        if pool is not None and pool.take(tally, stages, keep=0) and tally.chunks > 1:
            stages.note(f"{count(rows)} rows read and checked")
    finally:
        if pool is not None:
            pool.close()
    if not tally.policies:  # no file held a record: one empty chunk keeps every table's columns
        check_here(empty_raw(reading), [i.path for i in reading.inputs], job, stages, tally)
    return reading, tally


def empty_raw(reading: Reading) -> pd.DataFrame:
    """A chunk of no rows with the reading's columns (a night whose files hold no record)."""
    frame = pd.DataFrame({c: pd.Series(dtype="str") for c in reading.kind.columns})
    frame["_file"] = pd.Series(dtype="int32")
    frame["_line"] = pd.Series(dtype="int64")
    return frame


@dataclass
class ChunkResult:
    """What one chunk gives the night: made where the chunk is checked (here, or on a Spark
    executor: pipeline.spark), taken into the night's Tally in the order of the extract."""

    found: pd.DataFrame
    outcomes: list[Outcome]
    policies: pd.DataFrame
    seen: dict
    quarantined: pd.DataFrame
    in_scope: int
    out_of_scope: int
    term_unreadable: int
    contacts: Packed | None
    contact_seconds: float


def check_chunk(raw: pd.DataFrame, sources: list[str], job: CheckJob, stages: Stages, night: dict) -> ChunkResult:
    """The row-level stages of one chunk (`raw`, indexed by its rows' places in the night);
    `night`: the RuleContext's analyses kept from chunk to chunk in this process."""
    business_date, cfg = job.business_date, job.cfg
    with stages.stage("normalise"):
        frame = normalise(raw, cfg)
    with stages.stage("contract"):
        contract.validate_parsed(frame)
    with stages.stage("scope"):
        sp = split(frame, sources, cfg, business_date)
    with stages.stage("check"):
        ctx = context(business_date, raw, cfg, job.agents, night)
        checked = frame[sp.in_scope]  # one object: analyses cached on ctx are shared by the stages
        found, outcomes = run_rules(checked, ctx, cfg, ROW_RULES)
        found = rows_of(found, frame, sources)
        policies = checked[POLICY_COLUMNS].astype({c: "category" for c in CODED})
        seen = profile(checked)
    with stages.stage("shared"):
        started = time.perf_counter()
        contacts = pack(contact_rows(checked, ctx, job.key, job.version))
        seconds = time.perf_counter() - started
    return ChunkResult(found, outcomes, policies, seen, sp.quarantined,
                       int(sp.in_scope.sum()), int(sp.out_of_scope.sum()), sp.term_unreadable, contacts, seconds)


def check_here(raw: pd.DataFrame, sources: list[str], job: CheckJob, stages: Stages, tally: Tally) -> None:
    """One chunk checked in this process, its results into `tally`."""
    tally.take(check_chunk(raw, sources, job, stages, tally.night))


_JOB: CheckJob | None = None  # in a chunk worker: the night's job, handed over once when it starts
_NIGHT: dict = {}  # in a chunk worker: its RuleContext.night (roster analyses, made once per worker)


def _start_worker(parent: int, job: CheckJob) -> None:
    from pipeline import children
    from pipeline.store.lock import close_inherited

    global _JOB
    children.bind(parent)  # dies with the main process, whatever kills it
    close_inherited()  # the writer lock stays the writer's: a killed night's lock goes with it
    _JOB = job
    _NIGHT.clear()


def _check_in_worker(raw: pd.DataFrame, sources: list[str]) -> tuple[ChunkResult, dict]:
    stages = Stages([], quiet=True)
    if _JOB is None:
        raise RuntimeError("a chunk worker was given a chunk before its job (bug)")
    result = check_chunk(raw, sources, _JOB, stages, _NIGHT)
    release()
    return result, stages.timings


class WorkerLost(CustdqError):
    """A chunk worker process ended in the middle of the night (killed, out of memory). Exit 1;
    nothing of the night is kept."""


def _ready() -> int:
    return os.getpid()


class Workers:
    """Chunks checked in worker processes side by side (`workers`), their results taken back in
    the extract's order, so the night is the one a single process makes. The workers are forked
    before the night's heavy objects exist (and before the gate's background import) and get the
    night's settings once; each chunk travels to a worker and its ChunkResult back, pickled. At
    most `workers` chunks wait their turn, so memory stays bounded by the chunk size.

    A worker that dies (the kernel's out-of-memory killer, an operator's `kill`) ends the night
    with WorkerLost at once: a process pool that replaces the dead worker would wait for its
    chunk for ever (concurrent.futures reports the broken pool; multiprocessing.Pool does not).
    A main process that dies takes its workers with it (pipeline.children: they are forked here,
    by the thread that runs the night and closes the pool)."""

    def __init__(self, n: int, job: CheckJob):
        before = set(multiprocessing.active_children())
        self.pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork"),
                                        initializer=_start_worker, initargs=(os.getpid(), job))
        self.pending: deque = deque()
        self.done = 0  # rows of the chunks taken back
        self._result(self.pool.submit(_ready))  # forks every worker now (a fork pool starts all at once)
        self.children = [p for p in multiprocessing.active_children() if p not in before]

    def _result(self, future):
        try:
            return future.result()
        except BrokenProcessPool:
            codes = sorted({p.exitcode for p in self.children if p.exitcode is not None}) if hasattr(self, "children") \
                else []
            how = f" (exit status {', '.join(map(str, codes))})" if codes else ""
            raise WorkerLost(f"a chunk worker process ended in the middle of the night{how}: killed or out of "
                             "memory? Nothing of the night was kept; run it again (with `workers: 1` in the "
                             "config the night uses one process, or lower `chunk_rows`)") from None

    def submit(self, raw: pd.DataFrame, sources: list[str]) -> None:
        try:
            future = self.pool.submit(_check_in_worker, raw, sources)
        except BrokenProcessPool:  # a worker died before this chunk was handed over
            future = Future()
            future.set_exception(BrokenProcessPool())
            self._result(future)
        self.pending.append((future, len(raw)))

    def take(self, tally: Tally, stages, keep: int) -> int:
        """Take back the oldest results until `keep` are waiting; returns the rows taken so far
        (0 when nothing new was taken)."""
        before = self.done
        while len(self.pending) > keep:
            pending, rows = self.pending.popleft()
            result, timings = self._result(pending)
            tally.take(result)
            stages.add(timings)
            self.done += rows
        return self.done if self.done > before else 0

    def close(self) -> None:
        """Stop the workers: idle ones (every chunk taken back) end on the pool's own shutdown;
        busy ones (a night that failed, chunks nobody will take back) are killed at once. Killing
        idle workers before `shutdown(wait=True)` could leave the pool's manager thread waiting
        for ever on workers it never reaped (seen once, in a process that also held a Spark JVM)."""
        if all(future.done() for future, _ in self.pending):
            self.pool.shutdown(wait=True, cancel_futures=True)
            return
        for p in getattr(self, "children", []):
            if p.is_alive():
                p.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)


def night_rules(policies: pd.DataFrame, tally: Tally, business_date: dt.date, cfg: Settings, sources: list[str]
                ) -> tuple[list[pd.DataFrame], list[Outcome]]:
    """The rules over the whole night's policy numbers (NIGHT_RULES), added to the chunks'
    findings; the findings of a rule that failed in any chunk are dropped, as for one frame."""
    found, outcomes = run_rules(policies, context(business_date, policies, cfg), cfg, NIGHT_RULES)
    outcomes = tally.outcomes + outcomes
    failed = {o.rule_code for o in outcomes if o.status == "error"}
    parts = tally.found + [rows_of(found, policies, sources)]
    if failed:
        parts = [p[~p["rule_code"].isin(failed)] for p in parts]
    return parts, outcomes


def first_rows(policies: pd.DataFrame, repeated: pd.Series) -> np.ndarray:
    """A flag per extract row (up to the last in-scope one): the first record of its policy
    number tonight (its contact rows are the ones kept); `repeated` is
    `policies["policy_no"].duplicated()`."""
    flags = np.zeros(int(policies.index.max()) + 1 if len(policies) else 0, dtype=bool)
    flags[policies.index.to_numpy()[~repeated.to_numpy()]] = True
    return flags
