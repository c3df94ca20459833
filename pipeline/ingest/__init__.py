"""Ingest: extract files -> one raw text frame with source positions, plus quarantined lines.

The format is read from the file's first bytes (ZIP -> XLSX, PAR1 -> Parquet, otherwise
delimited text), not from its name. Every value stays text: a float column would turn two
different identity numbers into one. Columns not in the contract are carried through the file
and ignored; `_file` and `_line` say where each record came from (the physical line a CSV
record starts on, the sheet row of an XLSX, the 1-based row of a Parquet file).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from checks.masking import mask_text
from pipeline.ingest import contract
from pipeline.ingest.columns import AGENT_COLUMNS, CANONICAL, COMPLAINT_COLUMNS
from pipeline.errors import InputError
from pipeline.ingest import parquet
from pipeline.ingest.fastcsv import FastPathLost, iter_fast
from pipeline.ingest.text import TextSource
from pipeline.ingest.xlsx import XlsxSource

CHUNK = 200_000
QUARANTINE_COLUMNS = ["source_file", "line", "policy_no", "reason"]


@dataclass
class InputInfo:
    path: str
    sha256: str
    format: str
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    rows: int = 0  # records read (blank lines not counted)
    blank_rows: int = 0
    reader: str | None = None  # text files: "fast" (pyarrow) or "exact" (line by line, after a problem)
    malformed_rows: int = 0
    columns_carried: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Kind:
    """What a table is: its key column, its columns, and its header contract."""

    key: str
    key_label: str
    columns: tuple[str, ...]
    check_columns: Callable[[list[str], str], None]  # (names, source); raises InputError


EXTRACT = Kind("policy_no", "保单号", CANONICAL, contract.check_columns)
ROSTER = Kind("agent_code", "业务员代码", tuple(c.name for c in AGENT_COLUMNS), contract.check_roster_columns)
COMPLAINTS = Kind("complaint_ref", "投诉编号", tuple(c.name for c in COMPLAINT_COLUMNS), contract.check_complaint_columns)


@dataclass
class Extract:
    frame: pd.DataFrame
    quarantine: pd.DataFrame
    inputs: list[InputInfo]
    absent_optional: list[str]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sniff_format(path: Path) -> str:
    with path.open("rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"PK\x03\x04"):
        return "xlsx"
    if magic.startswith(b"PAR1"):
        return "parquet"
    if magic.startswith(b"\xd0\xcf\x11\xe0"):
        raise InputError(f"{path}: legacy .xls workbooks are not read; save the sheet as .xlsx or CSV")
    return "csv"


def check_path(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an extract file")
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror or type(exc).__name__})") from None


def _frame_from_rows(names: list[str | None], rows: list[list[str | None]], lines: list[int]) -> pd.DataFrame:
    columns = list(zip(*rows)) if rows else [()] * len(names)
    table = pa.table({n: pa.array(columns[i], type=pa.string()) for i, n in enumerate(names) if n})
    frame = table.to_pandas()  # pandas' "str" dtype, backed by the same Arrow buffers
    frame["_line"] = np.asarray(lines, dtype=np.int64)
    return frame


def _records(source, info: InputInfo, quarantine: list[dict], kind: Kind, fast: bool,
             chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    """The file's records in frames of about `chunk_rows` (one frame when None)."""
    found, raw_header, records = source.open()
    # header cells the extract carries besides custdq's columns, for the manifest (masked: a file
    # without a header row has its first record there)
    info.columns_carried = [mask_text(str(h).strip()) for h, n in zip(raw_header, found.names)
                            if n is None and str(h).strip()]
    kind.check_columns([n for n in found.names if n], info.path)
    if fast and isinstance(source, TextSource):
        parts = iter_fast(source.path, source.encoding, source.delimiter, found.index, found.names, raw_header,
                          chunk_rows)
        if parts is not None:
            taken = 0
            try:
                for frame, lines, blank in parts:
                    info.blank_rows += blank
                    info.rows += len(frame)
                    info.reader = "fast"
                    frame["_line"] = lines.astype(np.int64)
                    taken += 1
                    yield frame
            except FastPathLost:
                if taken:
                    raise  # rows of this file were handed on: the caller reads the night again
                info.rows = info.blank_rows = 0  # nothing handed on yet: this file goes the exact way
            else:
                source.close()
                return
    info.reader = "exact"
    rows, lines, size = [], [], chunk_rows or CHUNK
    frames, yielded = [], False  # whole: frames of CHUNK rows joined at the end; in chunks: each yielded
    for line, fields, reason in records:
        if reason is not None:
            info.rows += 1
            info.malformed_rows += 1
            quarantine.append({"source_file": info.path, "line": line, "policy_no": None, "reason": reason})
            continue
        if not fields:
            info.blank_rows += 1
            continue
        info.rows += 1
        rows.append(fields)
        lines.append(line)
        if len(rows) >= size:
            frames.append(_frame_from_rows(found.names, rows, lines))
            rows, lines = [], []
            if chunk_rows:
                yield frames.pop()
                yielded = True
    if rows or not yielded:  # the rest, or an empty frame for a file without records
        frames.append(_frame_from_rows(found.names, rows, lines))
    if frames:
        yield pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _parquet_parts(path: Path, info: InputInfo, mapping: dict[str, str], kind: Kind,
                   chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    found, table = parquet.read(path, mapping, kind.key, kind.key_label)
    kind.check_columns(table.column_names, info.path)
    size = chunk_rows or max(table.num_rows, 1)
    for offset in range(0, max(table.num_rows, 1), size):
        frame = table.slice(offset, size).to_pandas()
        frame = frame.astype({c: "str" for c in frame.columns})
        frame["_line"] = np.arange(offset + 1, offset + len(frame) + 1, dtype=np.int64)
        blank = frame.drop(columns="_line").isna().all(axis=1)
        info.blank_rows += int(blank.sum())
        info.rows += len(frame) - int(blank.sum())
        yield frame[~blank].reset_index(drop=True)


@dataclass
class Reading:
    """What reading the night's files found besides the rows: filled in as the chunks go by."""

    inputs: list[InputInfo] = field(default_factory=list)
    quarantine_rows: list[dict] = field(default_factory=list)
    present: set[str] = field(default_factory=set)
    kind: Kind = EXTRACT

    @property
    def quarantine(self) -> pd.DataFrame:
        return pd.DataFrame(self.quarantine_rows, columns=QUARANTINE_COLUMNS)

    @property
    def absent_optional(self) -> list[str]:
        return [c for c in self.kind.columns if c not in self.present]


def iter_extract(paths: Sequence[str | Path], mapping: dict[str, str], reading: Reading, chunk_rows: int | None = None,
                 fast: bool = True) -> Iterator[pd.DataFrame]:
    """Every record of every file, in frames of about `chunk_rows` rows (one per file when None)
    with the kind's columns in order plus `_file` and `_line`, indexed by the record's position
    in the whole night (so a finding's `row` means the same whichever chunk it came from).
    Raises InputError naming the file for a structural problem, FastPathLost when the night
    must be read again with the exact reader."""
    kind, offset = reading.kind, 0
    checked = []
    for p in (Path(x) for x in paths):
        check_path(p)
        checked.append(p)
    ordered = list(kind.columns) + ["_file", "_line"]
    for file_no, p in enumerate(checked):
        fmt = sniff_format(p)
        info = InputInfo(path=str(p), sha256=sha256_of(p), format=fmt)
        reading.inputs.append(info)
        if fmt == "parquet":
            parts = _parquet_parts(p, info, mapping, kind, chunk_rows)
        else:
            source = (XlsxSource if fmt == "xlsx" else TextSource)(p, mapping, kind.key, kind.key_label)
            parts = _records(source, info, reading.quarantine_rows, kind, fast, chunk_rows)
        for frame in parts:
            if fmt != "parquet":
                info.encoding = source.encoding
                info.delimiter = getattr(source, "delimiter", None)
                info.sheet = source.sheet if isinstance(source, XlsxSource) else None
            reading.present.update(c for c in frame.columns if c in kind.columns)
            frame["_file"] = np.int32(file_no)
            for name in kind.columns:
                if name not in frame.columns:
                    frame[name] = pd.array([None] * len(frame), dtype="str")
            frame.index = pd.RangeIndex(offset, offset + len(frame))
            offset += len(frame)
            yield frame[ordered]


def read_extract(paths: list[str | Path], mapping: dict[str, str], fast: bool = True, kind: Kind = EXTRACT) -> Extract:
    """Read every file of one kind (policy extracts by default) whole; raises InputError naming
    the file for a structural problem."""
    reading = Reading(kind=kind)
    try:
        frames = list(iter_extract(paths, mapping, reading, None, fast))
    except FastPathLost:  # cannot happen when each file is one part, but read again to be sure
        reading = Reading(kind=kind)
        frames = list(iter_extract(paths, mapping, reading, None, False))
    frame = pd.concat(frames) if len(frames) > 1 else frames[0]
    return Extract(frame, reading.quarantine, reading.inputs, reading.absent_optional)
