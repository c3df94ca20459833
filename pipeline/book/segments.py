"""The contact index's night tiers, stored as segments and read one segment at a time (issue 16).

A tier (a night's rows, or a book load's before compaction) is a list of segments in
`contact_segments`: kind `rows` holds up to SEGMENT_ROWS rows as one compressed Arrow stream
(dictionary-encoded texts, zstd); beside each, kinds `value` and `customer` hold the sorted
distinct 64-bit digests (pipeline.book.digests) of its rows' values and customers.

A lookup keeps only those digests in memory (16 bytes a row at most) and decodes a segment only
when one of its digests is asked for, one segment at a time: the night's memory no longer grows
with the rows the tiers hold. A segment written before its digests existed has them computed
from its rows when first read (the store is not rewritten for it).

A row's id is its tier's number (1 for the oldest tier) times TIER_ID plus its position in the
tier, as when the tiers were decoded whole.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from pipeline.book.digests import digest64_arrow, member
from pipeline.book.rows import STORED
from pipeline.store.schema import contact_segments

SEGMENT_ROWS = 500_000  # rows per Arrow segment (well under the 1 GB blob limits)
TIER_ID = 1 << 40  # pool ids of tier rows: (tier number) * TIER_ID + position; main rows keep theirs
DICTIONARY = ["kind", "field", "branch", "channel", "agent_code", "receipt_date", "version"]
DIGESTED = ("value", "customer")
SEEN = "seen"  # a tier's note of the policies its extract held unchanged (Tiers.note_seen)


def tier_table(rows: pd.DataFrame) -> pa.Table:
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


def decode(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(blob).read_all()


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


def sorted_digests(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.unique(digest64_arrow(column))


@dataclass
class Segment:
    tier: str
    part: int
    rows: int
    first_id: int  # the id of its first row


class Tiers:
    """The night tiers seen through one connection: their segments, digests and rows."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self._segments: list[Segment] | None = None
        self._digests: dict[tuple[str, int, str], np.ndarray] = {}

    def forget(self) -> None:
        self._segments = None
        self._digests = {}

    def segments(self) -> list[Segment]:
        """Every segment of every tier, oldest tier first."""
        if self._segments is None:
            seg = contact_segments
            q = (sa.select(seg.c.tier, seg.c.part, seg.c.rows).where(seg.c.kind == "rows")
                 .order_by(seg.c.tier, seg.c.part))
            out, number, last, offset = [], 0, None, 0
            for tier, part, rows in self.conn.execute(q):
                if tier != last:
                    number, last, offset = number + 1, tier, 0
                out.append(Segment(tier, int(part), int(rows), number * TIER_ID + offset))
                offset += int(rows)
            self._segments = out
        return self._segments

    def table(self, segment: Segment) -> pa.Table:
        seg = contact_segments
        data = self.conn.execute(sa.select(seg.c.data).where(
            seg.c.tier == segment.tier, seg.c.kind == "rows", seg.c.part == segment.part)).scalar_one()
        return decode(bytes(data))

    def digests(self, segment: Segment, name: str) -> np.ndarray:
        """The segment's sorted distinct digests of `name` (value or customer)."""
        key = (segment.tier, segment.part, name)
        if key not in self._digests:
            seg = contact_segments
            data = self.conn.execute(sa.select(seg.c.data).where(
                seg.c.tier == segment.tier, seg.c.kind == name, seg.c.part == segment.part)).scalar()
            if data is None:  # written before segments had digests
                table = self.table(segment)
                for other in DIGESTED:
                    self._digests[(segment.tier, segment.part, other)] = sorted_digests(table.column(other))
            else:
                self._digests[key] = np.frombuffer(bytes(data), dtype="<u8")
        return self._digests[key]

    def scan(self, wanted: dict[str, np.ndarray] | None = None) -> Iterator[tuple[Segment, pa.Table]]:
        """(segment, its rows) for every segment, decoded one at a time; with `wanted` (column ->
        sorted digests), only the segments holding at least one of them."""
        for segment in self.segments():
            if wanted is not None and not any(
                    len(probe) and member(probe, self.digests(segment, name)).any() for name, probe in wanted.items()):
                continue
            yield segment, self.table(segment)

    def tables(self) -> dict[str, pa.Table]:
        """Every tier decoded whole, oldest first (for tools and tests; a night never does this)."""
        parts: dict[str, list[pa.Table]] = {}
        for segment, table in self.scan():
            parts.setdefault(segment.tier, []).append(table)
        return {t: pa.concat_tables(p, promote_options="permissive") for t, p in parts.items()}

    def append(self, tier: str, pieces) -> int:
        """Write (rows, blob, digests) pieces as the next segments of `tier`; returns rows written."""
        seg = contact_segments
        start = int(self.conn.execute(sa.select(sa.func.coalesce(sa.func.max(seg.c.part) + 1, 0))
                                      .where(seg.c.tier == tier, seg.c.kind == "rows")).scalar_one())
        written, part = 0, start
        for n, blob, digests in pieces:
            if not n:
                continue
            self.conn.execute(seg.insert().values(tier=tier, kind="rows", part=part, rows=n, data=blob))
            for name in DIGESTED:
                d = np.asarray(digests[name], dtype="<u8")
                self.conn.execute(seg.insert().values(tier=tier, kind=name, part=part, rows=len(d), data=d.tobytes()))
            written += n
            part += 1
        self.forget()
        return written

    def rewrite(self, segment: Segment, table: pa.Table) -> None:
        """Replace a segment's rows (and digests) with `table`, a subset of them; an empty one
        removes the segment (pipeline.retention). Row ids of later segments of its tier move."""
        seg = contact_segments
        self.conn.execute(seg.delete().where(seg.c.tier == segment.tier, seg.c.part == segment.part,
                                             seg.c.kind.in_(["rows", *DIGESTED])))
        if table.num_rows:
            self.conn.execute(seg.insert().values(tier=segment.tier, kind="rows", part=segment.part,
                                                  rows=table.num_rows, data=serialise(table)))
            for name in DIGESTED:
                d = sorted_digests(table.column(name))
                self.conn.execute(seg.insert().values(tier=segment.tier, kind=name, part=segment.part, rows=len(d),
                                                      data=np.asarray(d, dtype="<u8").tobytes()))
        self.forget()

    def drop_all(self) -> None:
        """Remove every tier's rows (they went into the main tier); the appearances stay."""
        self.conn.execute(contact_segments.delete().where(contact_segments.c.tier != "main",
                                                          contact_segments.c.kind != SEEN))
        self.forget()

    def note_seen(self, tier: str, policies) -> None:
        """Record that `tier`'s extract held these policies although their rows were not written
        again (unchanged): the retention policy counts a policy's last appearance, not its last
        change (pipeline.retention.contacts). Taken back with the tier (a re-run)."""
        # sorted: `policies` come in the order of Arrow's threaded group-by, which varies from run
        # to run, and the same night must store the same bytes (tests/test_workers.py)
        table = pa.table({"policy_no": pa.array(sorted(str(p) for p in policies), type=pa.large_string())})
        if table.num_rows:
            self.conn.execute(contact_segments.insert().values(tier=tier, kind=SEEN, part=0, rows=table.num_rows,
                                                               data=serialise(table)))

    def seen(self) -> Iterator[tuple[str, pa.Array]]:
        """(tier, the policies it saw unchanged) for every tier that noted any, oldest first."""
        seg = contact_segments
        q = sa.select(seg.c.tier, seg.c.data).where(seg.c.kind == SEEN).order_by(seg.c.tier, seg.c.part)
        for tier, data in self.conn.execute(q):
            yield tier, decode(bytes(data)).column("policy_no").combine_chunks()
