"""Arrow-backed string columns as numpy bytes: the shared ground of the vectorised checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def arrow_strings(values: pd.Series) -> pa.Array:
    """One contiguous Arrow string array for a pandas string Series (no copy when Arrow-backed)."""
    arr = pa.array(values.array) if not isinstance(values.array, np.ndarray) else pa.array(values.to_numpy())
    return (arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr).cast(pa.string())


def char_matrix(values: pd.Series, width: int) -> np.ndarray:
    """(n, width) uint8 bytes of ASCII strings that are all `width` long, cut from the Arrow buffer."""
    if not len(values):
        return np.zeros((0, width), dtype=np.uint8)
    arr = arrow_strings(values)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)
    return data[offsets[0]: offsets[-1]].reshape(len(arr), width)


def text_array(values) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.cast(pa.string())
    if isinstance(values, (pd.Series, pd.Index)):
        return pa.array(values.astype("str").array, type=pa.string())
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def isin_text(values, within) -> np.ndarray:
    """`values.isin(within)` for text, as numpy flags, hashed in Arrow: pandas' isin on Arrow
    strings walks `within` in Python (seconds for a million policy numbers).

    >>> isin_text(pd.Series(["P1", "P2", None], dtype="str"), ["P2", "P3"]).tolist()
    [False, True, False]
    """
    found = pc.is_in(text_array(values), value_set=text_array(within), skip_nulls=True)  # a missing value is in nothing
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)
