"""Fast path for well-formed delimited extracts: pyarrow parses, numpy finds the lines.

pyarrow's CSV reader is ~10x faster than the csv module but cannot say on which line a record
starts. A record ends at a newline preceded by an even number of quote characters (RFC 4180
doubles quotes inside quoted fields, so parity is exact), which numpy finds block by block
over a memory map. Both counts must agree; any disagreement (a line with the wrong number of
fields, undecodable bytes, stray quotes, CR-only line ends) returns None and the caller reads
the file with the exact, line-by-line reader instead. Newline (0x0A) and quote (0x22) bytes
never occur inside a multi-byte UTF-8 or GB18030 character, so the byte scan is safe for both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

BLOCK = 64 << 20
BLOCK_BYTES = 16 << 20  # pyarrow's parsing block
FAST_ENCODINGS = ("utf-8", "utf-8-sig", "gb18030")


def record_ends(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(byte offset of every record-ending newline, its 1-based physical line number), or None
    when the file has a bare CR (a line end to some readers and not to others)."""
    ends, lines = [], []
    quotes = newlines = 0
    size = path.stat().st_size
    with path.open("rb") as fh:
        for start in range(0, size, BLOCK):
            # read, not memory-mapped: a mapped 3 GB file counts in the process's memory as it is scanned
            fh.seek(start)
            block = np.frombuffer(fh.read(BLOCK + 1), dtype=np.uint8)  # a byte of overlap: what follows a CR
            found = _scan(block, start, quotes, newlines)
            if found is None:
                return None
            block_ends, block_lines, q, nl = found
            ends.append(block_ends)
            lines.append(block_lines)
            quotes += q
            newlines += nl
    return np.concatenate(ends or [np.zeros(0, np.int64)]), np.concatenate(lines or [np.zeros(0, np.int64)])


def _scan(block: np.ndarray, start: int, quotes: int, newlines: int):
    """One block's record ends and their lines, and its quote and newline counts; None at a bare CR."""
    cr = np.flatnonzero(block[:BLOCK] == 0x0D)
    if len(cr) and (cr[-1] + 1 >= len(block) or (block[cr + 1] != 0x0A).any()):
        return None
    block = block[:BLOCK]
    nl = np.flatnonzero(block == 0x0A)
    q = np.flatnonzero(block == 0x22)
    even = (quotes + np.searchsorted(q, nl)) % 2 == 0
    return nl[even] + start, np.flatnonzero(even) + newlines + 1, len(q), len(nl)


class FastPathLost(Exception):
    """The fast reader met something only the exact reader handles, after it had yielded rows:
    the caller reads the night again with the exact reader."""


def iter_fast(path: Path, encoding: str, delimiter: str, header_record: int, names: list[str | None],
              raw_header: list[str], chunk_rows: int | None):
    """None (read this file with the exact reader), or an iterator of (frame, start line per
    row, blank rows) with about `chunk_rows` records each (all of them when None). The iterator
    raises FastPathLost when a problem shows only after rows were yielded."""
    if encoding not in FAST_ENCODINGS:
        return None
    size = path.stat().st_size
    found = record_ends(path)
    if found is None:
        return None
    ends, lines = found
    if len(ends) <= header_record or not _is_header(path, ends, header_record, encoding, delimiter, raw_header):
        return None
    starts = ends[header_record:] + 1                  # record i starts after record i-1 ends
    start_lines = lines[header_record:] + 1
    stops = np.append(ends[header_record + 1:], size)  # the last record may lack a newline
    if starts[-1] >= size:                             # ... or not exist at all
        starts, start_lines, stops = starts[:-1], start_lines[:-1], stops[:-1]
    length = stops - starts
    empty = length == 0
    one = np.flatnonzero(length == 1)  # a record of one byte is blank when that byte is a CR
    if len(one):
        buf = np.memmap(path, dtype=np.uint8, mode="r")  # only those bytes' pages are touched
        empty[one] = buf[starts[one]] == 0x0D
        del buf
    keep_lines = start_lines[~empty]
    column_names = [n if n else f"_carried_{i}" for i, n in enumerate(names)]
    wanted = [n for n in names if n]
    options = dict(
        read_options=pacsv.ReadOptions(column_names=column_names, encoding=encoding.replace("-sig", ""),
                                       block_size=_block_size(size, len(keep_lines), chunk_rows)),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=True),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in column_names},
                                             include_columns=wanted, strings_can_be_null=False,
                                             quoted_strings_can_be_null=False),
    )
    return _parts(path, int(ends[header_record]) + 1, options, keep_lines, wanted, int(empty.sum()), chunk_rows)


def _parts(path: Path, begin: int, options: dict, keep_lines: np.ndarray, wanted: list[str], empty: int,
           chunk_rows: int | None):
    done = 0

    def part(batches: list[pa.RecordBatch], first: bool) -> tuple[pd.DataFrame, np.ndarray, int]:
        nonlocal done
        frame = pa.Table.from_batches(batches).to_pandas()
        if done + len(frame) > len(keep_lines):
            raise FastPathLost(path)
        lines = keep_lines[done: done + len(frame)]
        done += len(frame)
        blank = np.ones(len(frame), dtype=bool)
        for col in wanted:
            blank &= (frame[col].str.strip().fillna("") == "").to_numpy()
        frame = frame[~blank].reset_index(drop=True)
        return frame, lines[~blank], int(blank.sum()) + (empty if first else 0)

    with path.open("rb") as fh:
        fh.seek(begin)
        try:
            # whole: pyarrow's threaded reader; in chunks: its streaming reader, a block at a time
            source = pacsv.read_csv(fh, **options).to_batches() if chunk_rows is None else pacsv.open_csv(fh, **options)
            batches, held, first = [], 0, True
            for batch in source:
                batches.append(batch)
                held += batch.num_rows
                if chunk_rows is not None and held >= chunk_rows:
                    yield part(batches, first)
                    batches, held, first = [], 0, False
            last = part(batches, first) if batches else (_empty_part(wanted, empty) if first else None)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError, ValueError):
            raise FastPathLost(path) from None
    if done != len(keep_lines):  # checked before the last part: a one-part file can still fall back alone
        raise FastPathLost(path)
    if last is not None:
        yield last


def _block_size(size: int, records: int, chunk_rows: int | None) -> int:
    """pyarrow's block: 16 MiB, or smaller so that a chunk is not far over `chunk_rows` records
    (a record longer than a block makes pyarrow fail, and the exact reader takes over)."""
    if not chunk_rows or not records:
        return BLOCK_BYTES
    return int(min(BLOCK_BYTES, max(64 << 10, chunk_rows * size / records)))


def _empty_part(wanted: list[str], empty: int) -> tuple[pd.DataFrame, np.ndarray, int]:
    frame = pa.table({c: pa.array([], pa.string()) for c in wanted}).to_pandas()
    return frame, np.zeros(0, np.int64), empty


def _is_header(path: Path, ends: np.ndarray, index: int, encoding: str, delimiter: str, raw_header: list[str]) -> bool:
    """Do the bytes of record `index` parse to the header the exact reader found?"""
    import csv

    begin = int(ends[index - 1]) + 1 if index else 0
    with path.open("rb") as fh:
        fh.seek(begin)
        text = fh.read(int(ends[index]) - begin).decode(encoding, errors="replace").lstrip("\ufeff")
    parsed = next(csv.reader([text.rstrip("\r")], delimiter=delimiter), [])
    return parsed == list(raw_header)
