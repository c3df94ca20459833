"""Tonight's contact rows, held compactly while the night's chunks go by (issue 7).

A night of 10M policies has about 25M contact rows. As a pandas frame of Python bytes and
strings that is ~385 bytes a row (10 GB). Here each chunk's rows are one zstd-compressed Arrow
stream in the very format of a stored night tier (pipeline.book.index: hashes as binary,
repeated texts dictionary-encoded; ~75 bytes a row), kept in a temporary file; in memory stay
numpy arrays: the extract row each came from, 64-bit digests of its value and customer and two
flags (26 bytes a row). The night then asks of them only what it needs: the digests, to find
the few rows that can be shared; those rows as a frame; and the streams themselves, written as
the night's tier without being decoded when nothing in them changes.
"""

from __future__ import annotations

from typing import BinaryIO
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.book.digests import digest64, within
from pipeline.book.segments import SEGMENT_ROWS, pool_frame, serialise, sorted_digests, tier_table
from pipeline.book.rows import CONTACT_COLUMNS, empty
from pipeline.errors import InputError

GROUP_ROWS = 1_000_000  # kept rows tested against a set of policy numbers at a time


@dataclass
class Packed:
    """One chunk's contact rows, compressed, with what the night keeps in memory of them."""

    blob: bytes  # STORED columns, a compressed Arrow stream (pipeline.book.segments.serialise)
    rows: np.ndarray
    value64: np.ndarray
    customer64: np.ndarray
    bank: np.ndarray


def pack(rows: pd.DataFrame) -> Packed | None:
    """A chunk's contact rows (pipeline.book.rows.contact_rows) as Packed; None when it has none."""
    if not len(rows):
        return None
    return Packed(serialise(tier_table(rows)), rows["row"].to_numpy(np.int64), digest64(rows["value"], "value"),
                  digest64(rows["customer"], "customer"), (rows["kind"] == "B").to_numpy(dtype=bool))


@dataclass
class _Part:
    spill: BinaryIO  # the night's spill file
    at: int  # where the chunk's rows (STORED columns, a compressed Arrow stream) are in it
    size: int
    rows: np.ndarray  # the extract row of each
    value64: np.ndarray
    customer64: np.ndarray
    keep: np.ndarray  # which of them are tonight's rows (a policy number's first record)
    bank: np.ndarray  # which are accounts (kind B), not phones (kind P)
    first_id: int = 1  # kept rows are numbered -first_id, -first_id - 1, ...

    @property
    def blob(self) -> bytes:
        return os.pread(self.spill.fileno(), self.size, self.at)

    def table(self) -> pa.Table:
        return pa.ipc.open_stream(self.blob).read_all()

    def kept(self) -> pa.Table:
        table = self.table()
        return table if self.keep.all() else table.filter(pa.array(self.keep))


class NightContacts:
    """Tonight's contact rows, chunk by chunk (see the module docstring)."""

    def __init__(self, version: str) -> None:
        self.version = version  # what contact_rows wrote into each row's `version`
        self.parts: list[_Part] = []
        # the compressed rows wait on disk (an unnamed temporary file, gone when closed or when
        # the process ends): like the stored index they hold keyed hashes and masked text only
        self.spill = tempfile.TemporaryFile(prefix="custdq-contacts-")
        self._end = 0

    def close(self) -> None:
        self.spill.close()
        self.parts = []

    @classmethod
    def of(cls, rows: pd.DataFrame, version: str) -> NightContacts:
        night = cls(version)
        night.add(rows)
        return night

    def add(self, rows: pd.DataFrame) -> None:
        """One chunk's contact rows (pipeline.book.rows.contact_rows)."""
        packed = pack(rows)
        if packed is not None:
            self.add_packed(packed)

    def add_packed(self, packed: Packed) -> None:
        """One chunk's contact rows as `pack` made them (here or where the chunk was checked)."""
        blob = packed.blob
        try:
            os.pwrite(self.spill.fileno(), blob, self._end)
        except OSError as exc:
            raise InputError(f"temporary folder {tempfile.gettempdir()}: cannot hold tonight's contact rows "
                             f"({exc.strerror or type(exc).__name__}); point TMPDIR at a folder with room "
                             "(about 80 bytes per contact row)") from None
        self.parts.append(_Part(self.spill, self._end, len(blob), packed.rows, packed.value64, packed.customer64,
                                np.ones(len(packed.rows), dtype=bool), packed.bank))
        self._end += len(blob)

    def keep_first(self, first: np.ndarray) -> None:
        """Keep only the rows of records flagged in `first` (a flag per extract row: a policy
        number's first record tonight); number the kept rows -1, -2, ... in order."""
        start = 1
        for part in self.parts:
            part.keep = first[part.rows]
            part.first_id = start
            start += int(part.keep.sum())

    @property
    def num_rows(self) -> int:
        return sum(int(p.keep.sum()) for p in self.parts)

    def digests(self) -> tuple[np.ndarray, np.ndarray]:
        """(value, customer) digests of every kept row, in order."""
        if not self.parts:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.uint64)
        return (np.concatenate([p.value64[p.keep] for p in self.parts]),
                np.concatenate([p.customer64[p.keep] for p in self.parts]))

    def values(self):
        """The distinct values of each chunk, chunk by chunk (for lookups in the stored book)."""
        for part in self.parts:
            yield pc.unique(part.kept().column("value").combine_chunks())

    def frame(self, flags: np.ndarray | None = None) -> pd.DataFrame:
        """The kept rows where `flags` (one per kept row, in order; all when None) as a pool
        frame (CONTACT_COLUMNS)."""
        frames, start = [], 0
        for part in self.parts:
            n = int(part.keep.sum())
            mine = np.ones(n, dtype=bool) if flags is None else flags[start: start + n]
            start += n
            if not mine.any():
                continue
            table = part.kept().filter(pa.array(mine))
            frame = pool_frame(table)
            frame["id"] = -(part.first_id + np.flatnonzero(mine)).astype(np.int64)
            frame["row"] = part.rows[part.keep][mine]
            frames.append(frame)
        if not frames:
            return empty()
        out = pd.concat(frames, ignore_index=True)
        out["tonight"] = True
        return out.astype({"id": "int64", "row": "int64"})[CONTACT_COLUMNS]

    def _flags_of_policies(self, policies: pa.Array):
        """(part, its kept rows as a table, which of them belong to `policies`) for every part.
        Parts are tested a group of up to GROUP_ROWS rows at a time: one hash set of a million
        policy numbers per group, not per 62,500-row chunk."""
        group: list[tuple[_Part, pa.Table]] = []

        def flush():
            column = pa.chunked_array([t.column("policy_no").cast(pa.large_string()) for _, t in group]).combine_chunks()
            flags, start = within(column, policies), 0
            for part, table in group:
                yield part, table, flags[start: start + table.num_rows]
                start += table.num_rows
            group.clear()

        rows = 0
        for part in self.parts:
            table = part.kept()
            group.append((part, table))
            rows += table.num_rows
            if rows >= GROUP_ROWS:
                yield from flush()
                rows = 0
        if group:
            yield from flush()

    def frames(self):
        """The kept rows as pool frames, one part (chunk) at a time (a book load's bulk write)."""
        start = 1
        for part in self.parts:
            n = int(part.keep.sum())
            if n:
                frame = pool_frame(part.kept())
                frame["id"] = -np.arange(start, start + n, dtype=np.int64)
                frame["row"] = part.rows[part.keep]
                frame["tonight"] = True
                yield frame.astype({"id": "int64", "row": "int64"})[CONTACT_COLUMNS]
            start += n

    def rows_of_policies(self, policies: pd.Index) -> pd.DataFrame:
        """Every kept row of the given policy numbers."""
        if not len(policies) or not self.parts:
            return empty()
        wanted = pa.array(policies.astype(object).tolist(), type=pa.large_string())
        return self.frame(np.concatenate([flags for _, _, flags in self._flags_of_policies(wanted)]))

    def tables_of_policies(self, policies: pa.Array):
        """The kept rows of the given policy numbers (large strings), as Arrow tables, part by part."""
        if not len(policies):
            return
        for _, table, mine in self._flags_of_policies(policies):
            if mine.any():
                yield table if mine.all() else table.filter(pa.array(mine))

    def tested(self, kind: str) -> int:
        """Distinct extract records with a kept contact row of `kind` (P or B)."""
        kept = [p.rows[p.keep & (p.bank == (kind == "B"))] for p in self.parts]
        rows = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
        if not len(rows):
            return 0
        seen = np.zeros(int(rows.max()) + 1, dtype=bool)
        seen[rows] = True
        return int(seen.sum())

    def carries(self, keys: list[bytes]) -> set[bytes]:
        """Those of `keys` (keyed hashes of values) that a kept row carries."""
        if not keys:
            return set()
        wanted = pa.array(keys, type=pa.binary())
        probe = digest64(pd.Series(keys, dtype=object), "value")
        found: set[bytes] = set()
        for part in self.parts:
            if np.isin(part.value64[part.keep], probe).any():  # decode only a chunk that may hold one
                column = part.kept().column("value")
                found.update(column.filter(pc.is_in(column, value_set=wanted)).to_pylist())
        return found

    def tier_blobs(self, tier: str, unchanged: pd.Index):
        """(rows, compressed Arrow stream, digests) segments of the kept rows but those of
        `unchanged` policies, as tier `tier`: a chunk nothing was taken from is passed on as it is."""
        skip = pa.array(unchanged.astype(object).tolist(), type=pa.large_string())
        if not len(skip):
            parts = ((part, None, None) for part in self.parts)
        else:
            parts = self._flags_of_policies(skip)
        for part, table, skipped in parts:
            if skipped is None and part.keep.all() and tier == self.version and len(part.keep) <= SEGMENT_ROWS:
                yield len(part.keep), part.blob, {"value": np.unique(part.value64), "customer": np.unique(part.customer64)}
                continue
            table = part.kept() if table is None else table
            if skipped is not None and skipped.any():
                table = table.filter(pa.array(~skipped))
            if tier != self.version:
                table = table.set_column(table.schema.get_field_index("version"), "version",
                                         pc.dictionary_encode(pa.array([tier] * table.num_rows, type=pa.string())))
            for offset in range(0, table.num_rows, SEGMENT_ROWS):
                piece = table.slice(offset, SEGMENT_ROWS)
                yield piece.num_rows, serialise(piece), {name: sorted_digests(piece.column(name))
                                                         for name in ("value", "customer")}
