"""Tonight's contact rows, held compactly while the night's chunks go by (issue 7).

A night of 10M policies has about 25M contact rows. As a pandas frame of Python bytes and
strings that is ~385 bytes a row (10 GB). Here each chunk's rows are one zstd-compressed Arrow
stream (hashes as binary, repeated texts dictionary-encoded; ~75 bytes a row), kept in a temporary file; in memory stay
numpy arrays: the extract row each came from, 64-bit digests of its value and customer and two
flags (26 bytes a row). The night then asks of them only what it needs: the digests, to find
the few rows that can be shared; those rows as a frame; and the rows themselves, a chunk at a time,
to be written into the contact index (pipeline.book.index).
"""

from __future__ import annotations

from typing import BinaryIO
import io
import os
import tempfile
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.book.digests import digest64
from pipeline.book.rows import CONTACT_COLUMNS, STORED, empty
from pipeline.errors import InputError

DICTIONARY = ["kind", "field", "branch", "channel", "agent_code", "receipt_date", "version"]


def tier_table(rows: pd.DataFrame) -> pa.Table:
    """A chunk's contact rows (STORED columns) as Arrow, repeated texts dictionary-encoded."""
    table = pa.Table.from_pandas(rows[STORED].reset_index(drop=True), preserve_index=False)
    for name in DICTIONARY:
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pc.dictionary_encode(table.column(name).cast(pa.string())))
    return table


def serialise(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table)
    return sink.getvalue()


def pool_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow rows -> the pandas shape of pool rows (hash columns as bytes)."""
    out = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        out[name] = col.to_pylist() if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type) \
            else col.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow")}.get)
    return pd.DataFrame(out)


@dataclass
class Packed:
    """One chunk's contact rows, compressed, with what the night keeps in memory of them."""

    blob: bytes  # STORED columns, a compressed Arrow stream (serialise)
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


_NONE = np.zeros(0, dtype=np.uint64)


class NightContacts:
    """Tonight's contact rows, chunk by chunk (see the module docstring)."""

    def __init__(self, version: str, digests: bool = True) -> None:
        self.version = version  # what contact_rows wrote into each row's `version`
        self.keeps_digests = digests  # a book load looks nothing up: 16 bytes a row it need not hold
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
        v, c = (packed.value64, packed.customer64) if self.keeps_digests else (_NONE, _NONE)
        self.parts.append(_Part(self.spill, self._end, len(blob), packed.rows, v, c,
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
        if not self.keeps_digests:
            raise RuntimeError("these contact rows were kept without their digests (bug)")
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

    def kept_tables(self):
        """(number of the first, the kept rows as an Arrow table) for each part, in order: the
        rows written into the contact index (pipeline.book.index)."""
        for part in self.parts:
            if part.keep.any():
                yield part.first_id, part.kept()

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
