"""One night on Spark: stage the extract as Parquet chunks, check them as Spark tasks, take
their results back in order, and group tonight's contact digests with the book's on Spark."""

from __future__ import annotations

import json
import logging
import os
import pickle
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.rows.chunks import Tally, check_here, empty_raw
from pipeline.rows.engine import CheckJob
from pipeline.errors import EngineError, InputError
from pipeline.ingest import FastPathLost, Reading, iter_extract
from pipeline.logs import count
from pipeline.progress import Stages, release
from pipeline.spark import session
from pipeline.settings import Settings
from pipeline.spark.tasks import RESULT_SCHEMA, TaskJob, checker, raw_path, result_path, staging_fs, unseal

log = logging.getLogger("custdq")


@contextmanager
def spark_failures(doing: str):
    """A failed Spark job as one line (its type; the message can quote a worker's traceback)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - Py4JJavaError, PythonException, AnalysisException ...
        if os.environ.get("CUSTDQ_DEBUG"):
            raise
        raise EngineError(f"Spark failed {doing} ({type(exc).__name__}); nothing of this night was kept. On a "
                          "cluster: does every executor read spark.staging and run this version of custdq? "
                          "CUSTDQ_DEBUG=1 shows Spark's message") from None


def _driver_temp(spark) -> str | None:
    """The JVM's own temporary folder on the driver (SparkFiles' root), which Spark deletes when
    the JVM exits; the JVM exits when the driver does, killed or not (it reads its standard
    input, the driver's pipe), so the rows staged in it do not outlive a killed night. None (the
    system's temporary folder) when Spark names none."""
    from pyspark import SparkFiles

    try:
        root = SparkFiles.getRootDirectory()
    except Exception:  # noqa: BLE001 - a PySpark without it: the system's temporary folder
        return None
    return root if os.path.isabs(root) and os.path.isdir(root) else None


class SparkNight:
    """The Spark engine of one night (pipeline.rows.engine.Engine); close() stops Spark and
    removes the staging folder."""

    def __init__(self, cfg: Settings) -> None:
        self.cfg = cfg
        self.spark = session.start(cfg, cfg.chunk_rows)
        configured = cfg.spark.staging
        if configured:  # a folder every executor reads (a shared mount, hdfs://, s3://)
            self.uri = f"{str(configured).rstrip('/')}/custdq-night-{uuid.uuid4().hex}"
            self.local = None
        else:  # local mode: a private temporary folder (0700) on this machine
            self.local = tempfile.mkdtemp(prefix="custdq-spark-", dir=_driver_temp(self.spark))
            self.uri = self.local
        self.fs, self.root = staging_fs(self.uri)
        try:
            for sub in ("raw", "results", "digests"):
                self.fs.create_dir(f"{self.root}/{sub}")
        except OSError as exc:
            self.close()
            raise InputError(f"spark.staging {configured}: cannot create the night's staging folder ({exc})") from None
        self.chunks = 0
        self.with_digests = 0
        self.executor_seconds: dict[str, float] = {}
        self.executor_peak_mb = 0.0

    def close(self) -> None:
        """Remove the staged rows (they hold the extract's plaintext) and stop Spark."""
        try:
            if self.local:
                shutil.rmtree(self.local, ignore_errors=True)
            else:
                self.fs.delete_dir(self.root)
        except (OSError, AttributeError):
            log.warning("could not remove the Spark staging folder; remove it by hand")
        if self.spark is not None:
            self.spark.stop()
            self.spark = None

    def chunking(self, chunks: int) -> dict:
        return {"rows_per_chunk": self.cfg.chunk_rows, "chunks": chunks}

    def describe(self) -> dict:
        sc = self.spark.sparkContext
        return {"name": "spark", "spark_version": self.spark.version, "master": sc.master,
                "default_parallelism": sc.defaultParallelism, "tasks": self.chunks,
                "staging": "temporary folder" if self.local else str(self.cfg.spark.staging),
                "executor_seconds": {k: round(v, 3) for k, v in self.executor_seconds.items()},
                "executor_peak_memory_mb": self.executor_peak_mb}

    # -- the row-level stages ------------------------------------------------------------------

    def check_rows(self, extracts: Sequence[str], mapping: dict[str, str], job: CheckJob,
                   stages: Stages) -> tuple[Reading, Tally]:
        try:
            reading, firsts = self._stage(extracts, mapping, self.cfg.chunk_rows, True, stages)
        except FastPathLost:
            stages.note("an extract file needs the exact reader part-way through: reading the night again")
            reading, firsts = self._stage(extracts, mapping, self.cfg.chunk_rows, False, stages)
        sources = [i.path for i in reading.inputs]
        tally = Tally.for_job(job)
        if not firsts:  # no file held a record: one empty chunk, here, keeps every table's columns
            check_here(empty_raw(reading), sources, job, stages, tally)
            return reading, tally
        task = TaskJob(job, sources, secrets.token_bytes(32))  # the tasks' results are sealed with its secret
        with stages.stage("check"):
            # one slice per chunk: every chunk its own task, spread over the executors
            todo = self.spark.sparkContext.parallelize(list(enumerate(firsts)), len(firsts))
            tasks = self.spark.createDataFrame(todo, "chunk long, first_row long")
            with spark_failures("checking the chunks"):
                done = tasks.mapInPandas(checker(self.uri, task), RESULT_SCHEMA).collect()
            stages.note(f"Spark checked {len(done)} chunks")
            for row in done:
                for name, seconds in json.loads(row["seconds"]).items():
                    self.executor_seconds[name] = self.executor_seconds.get(name, 0.0) + seconds
                self.executor_peak_mb = max(self.executor_peak_mb, float(row["peak_memory_mb"]))
                self.with_digests += row["contact_rows"] > 0
            for n in range(len(firsts)):  # in the order of the night's rows, as the local engine
                with self.fs.open_input_stream(result_path(self.root, n)) as fh:
                    blob = unseal(task.seal, n, fh.read())
                tally.take(pickle.loads(blob))  # noqa: S301 - unsealed: this night's own task wrote it
                self.fs.delete_file(result_path(self.root, n))
                tally.chunks += 1
            release()
        return reading, tally

    def _stage(self, extracts, mapping, chunk_rows, fast, stages) -> tuple[Reading, list[int]]:
        """Read the night on the driver and write it as Parquet chunks; the first row of each."""
        self.fs.delete_dir_contents(f"{self.root}/raw")
        reading, rows = Reading(), 0
        firsts: list[int] = []
        parts = iter_extract(extracts, mapping, reading, chunk_rows, fast)
        while True:
            with stages.stage("ingest"):
                raw = next(parts, None)
                if raw is None:
                    break
                if not len(raw):
                    continue
                pq.write_table(pa.Table.from_pandas(raw, preserve_index=False), raw_path(self.root, len(firsts)),
                               filesystem=self.fs, compression="zstd")
                firsts.append(int(raw.index[0]))
                rows += len(raw)
            del raw
        self.chunks = len(firsts)
        if firsts:
            stages.note(f"{count(rows)} rows staged for Spark in {len(firsts)} chunks")
        return reading, firsts

    # -- the shared-value group-by -------------------------------------------------------------

    def crowded(self, tonight_v: np.ndarray, tonight_c: np.ndarray, stored_v: np.ndarray,
                stored_c: np.ndarray) -> np.ndarray:
        """The value digests carried by two or more customer digests, over tonight's contact
        rows and the stored rows that share a value with them (sorted, unsigned). Tonight's
        digests are read from what the tasks staged (`tonight_v` and `tonight_c` are not
        needed: they stay on the driver). Tonight's rows here include a repeated policy number's later records, which the local engine leaves
        out: a few more candidates, never fewer (pipeline.book.detect.grow narrows exactly)."""
        from pyspark.sql import functions as F

        frames = []
        if self.with_digests:
            frames.append(self.spark.read.parquet(self._spark_path("digests")))
        if len(stored_v):
            frames.append(self.spark.createDataFrame(pd.DataFrame({"value64": stored_v.view(np.int64),
                                                                   "customer64": stored_c.view(np.int64)})))
        if not frames:
            return np.zeros(0, dtype=np.uint64)
        digests = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
        with spark_failures("grouping the contact values"):
            found = (digests.groupBy("value64").agg(F.countDistinct("customer64").alias("customers"))
                     .where(F.col("customers") >= 2).select("value64").toPandas())
        return np.sort(found["value64"].to_numpy(dtype=np.int64).view(np.uint64))

    def _spark_path(self, sub: str) -> str:
        return f"{self.uri}/{sub}" if "://" in self.uri else Path(self.root, sub).resolve().as_uri()
