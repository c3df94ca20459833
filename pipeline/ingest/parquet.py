"""Parquet extracts: columns cast to text up front, dates as ISO dates, integral floats without ".0"."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import InputError
from pipeline.ingest import header as hdr


def as_text(col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return col.cast(pa.string())
    if pa.types.is_date(t):
        return pc.strftime(col.cast(pa.timestamp("s")), format="%Y-%m-%d")
    if pa.types.is_timestamp(t):
        return pc.strftime(col, format="%Y-%m-%d")
    if pa.types.is_floating(t):
        integral = pc.and_(pc.equal(pc.floor(col), col), pc.less(pc.abs(col), 2.0**53))
        return pc.if_else(integral, pc.cast(pc.cast(col, pa.int64(), safe=False), pa.string()), pc.cast(col, pa.string()))
    if pa.types.is_dictionary(t):
        return as_text(col.cast(t.value_type))
    try:
        return pc.cast(col, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.chunked_array([pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())])


def read(path: Path, mapping: dict[str, str], key: str = "policy_no", key_label: str = "保单号"
         ) -> tuple[hdr.Header, pa.Table]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({type(exc).__name__})") from None
    found = hdr.locate([table.column_names], mapping, key)
    if found is None:
        raise InputError(f"{path}: no column named {key} / {key_label}")
    hdr.check_unique(found.names, table.column_names, str(path))
    cols = {n: as_text(table.column(i)) for i, n in enumerate(found.names) if n}
    return found, pa.table(cols)
