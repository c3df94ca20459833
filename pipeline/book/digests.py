"""64-bit digests of the contact index's keys, and set membership on them (issue 7, 16).

A night narrows tonight's contact rows to the few that can be shared by testing 64-bit digests
with numpy before any becomes a Python value (pipeline.book.detect): a keyed hash is uniformly random, so its
first 8 bytes are a digest as good as any; a policy number's digest is BLAKE2b's. A digest
collision only makes a lookup look at a row more; every answer is checked on the full values.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def digest64(values: pd.Series, column: str) -> np.ndarray:
    """64-bit digests: the first 8 bytes of a keyed hash, or BLAKE2b of a policy number."""
    if column == "policy_no":
        return np.fromiter((int.from_bytes(hashlib.blake2b(p.encode("utf-8"), digest_size=8).digest(), "little")
                            for p in values), dtype=np.uint64, count=len(values))
    if not len(values):
        return np.zeros(0, dtype=np.uint64)
    items = values.tolist() if isinstance(values, pd.Series) else list(values)
    joined = b"".join(items)
    if len(joined) == 16 * len(items):  # every hash is 16 bytes: cut the first 8 of each, vectorised
        return np.frombuffer(joined, dtype=np.uint8).reshape(-1, 16)[:, :8].copy().view("<u8").ravel()
    return np.frombuffer(b"".join(v[:8].ljust(8, b"\0") for v in items), dtype="<u8")


def member(probe: np.ndarray, digest: np.ndarray) -> np.ndarray:
    """probe[i] in digest (sorted, unique): binary search, no sort of the 50M-entry digest."""
    at = np.searchsorted(digest, probe)
    hit = at < len(digest)
    hit[hit] = digest[at[hit]] == probe[hit]
    return hit


def within(values: pa.Array, among: pa.Array) -> np.ndarray:
    """Flags of `values` found in `among` (same Arrow type), hashing the smaller of the two: a
    segment's rows against a million policy numbers hash the rows, not the million, each time."""
    if not len(values) or not len(among):
        return np.zeros(len(values), dtype=bool)
    if len(among) > 4 * len(values):
        among = among.filter(pc.is_in(among, value_set=values))
        if not len(among):
            return np.zeros(len(values), dtype=bool)
    return np.asarray(pc.is_in(values, value_set=among).to_numpy(zero_copy_only=False), dtype=bool)
