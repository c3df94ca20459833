"""What a Spark task does with one chunk of the night (runs on an executor)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.rows.chunks import check_chunk
from pipeline.night.progress import Stages, peak_memory_mb

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


def digests_path(root: str, n: int) -> str:
    return f"{root}/digests/part-{n:05d}.parquet"


def check_part(uri: str, n: int, first_row: int, job: dict) -> dict:
    """Check chunk `n` of the staging folder `uri`: its results go to results/, the 64-bit
    digests of its contact rows to digests/ (for the group-by); returns what the driver logs."""
    fs, root = staging_fs(uri)
    raw = pq.read_table(raw_path(root, n), filesystem=fs).to_pandas()
    raw.index = pd.RangeIndex(first_row, first_row + len(raw))  # the rows' places in the night
    stages = Stages([], quiet=True)
    result = check_chunk(raw, job["sources"], job["business_date"], job["cfg"], job["agents"], job["key"],
                         job["version"], stages, {})
    with fs.open_output_stream(result_path(root, n)) as fh:
        fh.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    packed = result.contacts
    if packed is not None:
        digests = pa.table({"value64": pa.array(packed.value64.view(np.int64)),
                            "customer64": pa.array(packed.customer64.view(np.int64))})
        pq.write_table(digests, digests_path(root, n), filesystem=fs)
    return {"chunk": n, "rows": len(raw), "contact_rows": 0 if packed is None else len(packed.rows),
            "seconds": json.dumps(stages.timings), "peak_memory_mb": peak_memory_mb()}


def checker(uri: str, job: dict):
    """The function mapInPandas runs over batches of (chunk, first_row)."""

    def run(batches):
        from pipeline.spark.session import quiet_warnings

        quiet_warnings()
        for batch in batches:
            done = [check_part(uri, int(n), int(first), job) for n, first in zip(batch["chunk"], batch["first_row"])]
            yield pd.DataFrame(done, columns=RESULT_COLUMNS)

    return run
