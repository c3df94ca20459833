"""Per-policy fingerprints of contact rows, computed on Arrow data a batch at a time (issue 16).

A re-sent policy whose contact rows are unchanged is not written again (pipeline.book.index).
To know, the night compares, per policy, a fingerprint of its stored live rows with one of its
rows tonight: the row count and two wrapping sums of 64-bit row hashes over every stored column
but the version. Sums do not care about order or batching, so both sides are folded one batch
(a stored segment, a chunk of tonight's rows, a page of SQL results) at a time and never held as
frames of every row: a re-sent book of 10M policies costs one row of three numbers per policy.

Row hashes are built column by column: a text column is dictionary-encoded and only its distinct
values are hashed (pandas' SipHash of the text, a missing value as the empty text, as before);
a 16-byte keyed hash is already uniformly random, so its two halves are mixed directly. The same
value hashes the same whatever its batch, encoding (plain or dictionary) or source (SQL, tier).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.book.rows import STORED

HASHED = [c for c in STORED if c not in ("version", "policy_no")]  # the policy is the group
BINARY = {"value", "customer", "person"}
FIELDS = [("n", pa.int64()), ("a", pa.uint64()), ("b", pa.uint64())]


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, element-wise on uint64 (wrapping)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _text_hashes(values: pa.Array) -> np.ndarray:
    """SipHash (pandas.util.hash_array) of each text or bytes value, a missing one as empty."""
    if not len(values) or pa.types.is_null(values.type):
        return np.full(len(values), _EMPTY, dtype=np.uint64)
    empty = b"" if pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type) else ""
    return pd.util.hash_array(np.asarray(pc.fill_null(values, empty).to_pylist(), dtype=object), categorize=False)


_EMPTY = pd.util.hash_array(np.array([""], dtype=object), categorize=False)[0]  # b"" hashes alike


def _binary_hashes(arr: pa.Array) -> np.ndarray:
    """Hash of each value of a binary column: 16-byte values by their halves, others by SipHash."""
    out = np.empty(len(arr), dtype=np.uint64)
    if not len(arr):
        return out
    lengths = pc.binary_length(arr).to_numpy(zero_copy_only=False)
    sixteen = np.nan_to_num(lengths.astype(float), nan=-1) == 16
    if sixteen.any():
        whole = arr.filter(pa.array(sixteen)) if not sixteen.all() else arr
        whole = whole.cast(pa.binary()) if not pa.types.is_binary(whole.type) else whole
        offsets = np.frombuffer(whole.buffers()[1], dtype=np.int32)[whole.offset: whole.offset + len(whole) + 1]
        data = np.frombuffer(whole.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[-1]].reshape(-1, 16)
        halves = data.copy().view("<u8")
        out[sixteen] = halves[:, 0] ^ _mix(halves[:, 1])
    if not sixteen.all():
        out[~sixteen] = _text_hashes(arr.filter(pa.array(~sixteen)))
    return out


def _column_hashes(column: pa.ChunkedArray | pa.Array, binary: bool) -> np.ndarray:
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for chunk in chunks:
        if pa.types.is_null(chunk.type):  # nothing but missing values (a column pandas held as all None)
            parts.append(np.full(len(chunk), _EMPTY, dtype=np.uint64))
            continue
        if binary and not pa.types.is_dictionary(chunk.type):
            parts.append(_binary_hashes(chunk))
            continue
        encoded = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
        per_value = np.append(_text_hashes(encoded.dictionary), _text_hashes(pa.array([""])))
        codes = pc.fill_null(encoded.indices, len(encoded.dictionary)).to_numpy(zero_copy_only=False)
        parts.append(per_value[codes.astype(np.int64)])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def row_hashes(table: pa.Table) -> np.ndarray:
    """A 64-bit hash of each row over the HASHED columns (in their order)."""
    h = np.zeros(table.num_rows, dtype=np.uint64)
    for i, name in enumerate(HASHED):
        with np.errstate(over="ignore"):
            h = _mix(h ^ (_column_hashes(table.column(name), name in BINARY) + np.uint64(i + 1)))
    return h


def partial(table: pa.Table) -> pa.Table:
    """(policy_no, n, a, b) of the rows of `table`: count and wrapping sums of two row hashes."""
    h = row_hashes(table)
    policy = table.column("policy_no")
    second = _mix(h ^ np.uint64(0x5851F42D4C957F2D))
    sums = pa.table({"policy_no": policy.cast(pa.large_string()), "a": pa.array(h), "b": pa.array(second)})
    grouped = sums.group_by("policy_no").aggregate([("a", "count"), ("a", "sum"), ("b", "sum")])
    return grouped.select(["policy_no", "a_count", "a_sum", "b_sum"]).rename_columns(["policy_no", "n", "a", "b"])


def combine(parts: list[pa.Table]) -> pa.Table:
    """One (policy_no, n, a, b) row per policy from the partial results of several batches."""
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return pa.table({"policy_no": pa.array([], pa.large_string()), **{n: pa.array([], t) for n, t in FIELDS}})
    whole = pa.concat_tables(parts)
    if len(parts) == 1:
        return whole
    grouped = whole.group_by("policy_no").aggregate([("n", "sum"), ("a", "sum"), ("b", "sum")])
    return grouped.select(["policy_no", "n_sum", "a_sum", "b_sum"]).rename_columns(["policy_no", "n", "a", "b"])


def unchanged(stored: pa.Table, tonight: pa.Table) -> pa.Array:
    """The policy numbers whose fingerprints are the same on both sides (both combined)."""
    joined = stored.join(tonight, "policy_no", join_type="inner", right_suffix="_t")
    same = pc.and_(pc.and_(pc.equal(joined["n"], joined["n_t"]), pc.equal(joined["a"], joined["a_t"])),
                   pc.equal(joined["b"], joined["b_t"]))
    return joined["policy_no"].filter(same).combine_chunks()
