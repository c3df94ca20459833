"""What a Spark task does with one chunk of the night (runs on an executor)."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.errors import EngineError
from pipeline.rows.chunks import check_chunk
from pipeline.rows.engine import CheckJob
from pipeline.progress import Stages, peak_memory_mb

RESULT_COLUMNS = ["chunk", "rows", "contact_rows", "seconds", "peak_memory_mb"]
RESULT_SCHEMA = "chunk long, rows long, contact_rows long, seconds string, peak_memory_mb double"


def staging_fs(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of the night's staging folder (a local path or a URI pyarrow
    knows: hdfs://, s3://, gs://)."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), uri


def raw_path(root: str, n: int) -> str:
    return f"{root}/raw/part-{n:05d}.parquet"


def result_path(root: str, n: int) -> str:
    return f"{root}/results/part-{n:05d}.pickle"


def _mac(secret: bytes, n: int, blob: bytes) -> bytes:
    return hmac.digest(secret, n.to_bytes(8, "big") + blob, hashlib.sha256)


def seal(secret: bytes, n: int, blob: bytes) -> bytes:
    """Chunk `n`'s result as its task writes it: HMAC-SHA-256 under the night's secret of the
    chunk's number and the pickle, then the pickle.

    >>> unseal(b"s" * 32, 3, seal(b"s" * 32, 3, b"result")) == b"result"
    True
    """
    return _mac(secret, n, blob) + blob


def unseal(secret: bytes, n: int, sealed: bytes) -> bytes:
    """The pickle of chunk `n`'s result file, once its HMAC shows this night's own task wrote it
    for this chunk: the staging folder may be shared (spark.staging on a cluster), and whoever
    can write into it must not get the driver to unpickle a file of theirs, nor swap or replay
    one chunk's result for another's.

    >>> unseal(b"s" * 32, 3, seal(b"t" * 32, 3, b"result"))
    Traceback (most recent call last):
    pipeline.errors.EngineError: a chunk's result in the Spark staging folder was not written by this night's tasks for that chunk (changed, replaced or swapped); nothing of this night was kept
    >>> unseal(b"s" * 32, 4, seal(b"s" * 32, 3, b"result"))
    Traceback (most recent call last):
    pipeline.errors.EngineError: a chunk's result in the Spark staging folder was not written by this night's tasks for that chunk (changed, replaced or swapped); nothing of this night was kept
    """
    mac, blob = sealed[:32], sealed[32:]
    if len(sealed) < 32 or not hmac.compare_digest(mac, _mac(secret, n, blob)):
        raise EngineError("a chunk's result in the Spark staging folder was not written by this night's tasks "
                          "for that chunk (changed, replaced or swapped); nothing of this night was kept")
    return blob


def digests_path(root: str, n: int) -> str:
    return f"{root}/digests/part-{n:05d}.parquet"


@dataclass(frozen=True, eq=False)
class TaskJob:
    """What every Spark task of a night receives (pickled once into the task's closure): the
    night's CheckJob, its source files' names, and the secret its results are sealed with."""

    check: CheckJob
    sources: list[str]
    seal: bytes


def check_part(uri: str, n: int, first_row: int, job: TaskJob) -> dict:
    """Check chunk `n` of the staging folder `uri`: its results go to results/, the 64-bit
    digests of its contact rows to digests/ (for the group-by); returns what the driver logs."""
    fs, root = staging_fs(uri)
    raw = pq.read_table(raw_path(root, n), filesystem=fs).to_pandas()
    raw.index = pd.RangeIndex(first_row, first_row + len(raw))  # the rows' places in the night
    stages = Stages([], quiet=True)
    result = check_chunk(raw, job.sources, job.check, stages, {})
    with fs.open_output_stream(result_path(root, n)) as fh:
        fh.write(seal(job.seal, n, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)))
    packed = result.contacts
    if packed is not None:
        digests = pa.table({"value64": pa.array(packed.value64.view(np.int64)),
                            "customer64": pa.array(packed.customer64.view(np.int64))})
        pq.write_table(digests, digests_path(root, n), filesystem=fs)
    return {"chunk": n, "rows": len(raw), "contact_rows": 0 if packed is None else len(packed.rows),
            "seconds": json.dumps(stages.timings), "peak_memory_mb": peak_memory_mb()}


def checker(uri: str, job: TaskJob):
    """The function mapInPandas runs over batches of (chunk, first_row)."""

    def run(batches):
        from pipeline.spark.session import quiet_warnings

        quiet_warnings()
        for batch in batches:
            done = [check_part(uri, int(n), int(first), job) for n, first in zip(batch["chunk"], batch["first_row"])]
            yield pd.DataFrame(done, columns=RESULT_COLUMNS)

    return run
