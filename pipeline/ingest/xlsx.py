"""XLSX extracts: the sheet that holds the header, every cell as text.

Cells typed as numbers are turned back into the digits the file holds: an integer cell keeps
all its digits (an identity number stored as a number survives), an integral float below 2**53
is written without ".0", and a larger float (digits already lost by Excel) keeps its
scientific form so the identity rules can report the damage instead of guessing.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl

from pipeline.errors import InputError
from pipeline.ingest import header as hdr


def cell_text(value: object) -> str | None:
    """Text of one cell as the extract means it.

    >>> cell_text(440106199001011234), cell_text(13800138000.0), cell_text(4.40106199001011e17)
    ('440106199001011234', '13800138000', '4.40106199001011e+17')
    >>> cell_text(dt.datetime(1990, 1, 2)), cell_text(dt.datetime(2026, 1, 2, 8, 30))
    ('1990-01-02', '2026-01-02 08:30:00')
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


class XlsxSource:
    def __init__(self, path: Path, mapping: dict[str, str], key: str = "policy_no", key_label: str = "保单号"):
        self.path = path
        self.key, self.key_label = key, key_label
        self.mapping = mapping
        self.encoding = None
        self.sheet = None

    def open(self) -> tuple[hdr.Header, list[str], Iterator[tuple[int, list[str | None] | None, str | None]]]:
        handle = self.path.open("rb")  # a handle, so openpyxl does not judge the file by its name
        try:
            book = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as exc:
            handle.close()
            raise InputError(f"{self.path}: not a readable XLSX workbook ({type(exc).__name__})") from None
        best = None
        for ws in book.worksheets:
            if hasattr(ws, "reset_dimensions"):
                ws.reset_dimensions()
            top = [list(r) for r in ws.iter_rows(max_row=hdr.SCAN_ROWS, values_only=True)]
            found = hdr.locate(top, self.mapping, self.key)
            visible = getattr(ws, "sheet_state", "visible") == "visible"
            if found and (best is None or (visible, found.matched) > (best[0], best[2].matched)):
                best = (visible, ws, found, top[found.index])
        if best is None:
            book.close()
            handle.close()
            raise InputError(f"{self.path}: no sheet has a header row naming {self.key} / {self.key_label}")
        _, ws, found, raw_header = best
        self.sheet = ws.title
        hdr.check_unique(found.names, raw_header, f"{self.path} [{ws.title}]")
        width = len(raw_header)
        first = found.index + 2  # 1-based sheet row after the header

        def records() -> Iterator[tuple[int, list[str | None] | None, str | None]]:
            try:
                for line, row in enumerate(ws.iter_rows(min_row=first, values_only=True), start=first):
                    cells = [cell_text(v) for v in row[:width]]
                    if not any(c is not None and c.strip() for c in cells):
                        yield line, [], None
                        continue
                    cells += [None] * (width - len(cells))
                    yield line, cells, None
            finally:
                book.close()
                handle.close()

        return found, [str(c) if c is not None else "" for c in raw_header], records()
