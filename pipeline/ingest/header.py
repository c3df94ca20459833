"""Finding the header row and mapping header cells to canonical names.

Real extracts have title rows above the header ("保单清单 2026-11-20"), so the header is the
row, among the first `SCAN_ROWS`, that names the most known columns, and it must name the
policy number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.ingest.columns import clean_header
from pipeline.errors import InputError

SCAN_ROWS = 30


@dataclass
class Header:
    index: int  # position of the header row among the rows scanned (0-based)
    names: list[str | None]  # canonical name per position, None for columns carried through
    matched: int


def score(row: Sequence[object], mapping: dict[str, str]) -> int:
    return len({mapping[h] for h in (clean_header(c) for c in row) if h in mapping})


def locate(rows: Sequence[Sequence[object]], mapping: dict[str, str], key: str = "policy_no") -> Header | None:
    """Best header among `rows`, or None when no row names `key` and one other column."""
    best: Header | None = None
    for i, row in enumerate(rows[:SCAN_ROWS]):
        cells = [clean_header(c) for c in row]
        names = [mapping.get(c) for c in cells]
        if key not in names:
            continue
        matched = len({n for n in names if n})
        if matched >= 2 and (best is None or matched > best.matched):
            best = Header(i, names, matched)
    return best


def check_unique(names: list[str | None], raw: Sequence[object], source: str) -> None:
    """Two header cells that mean the same canonical column make the extract ambiguous."""
    seen: dict[str, str] = {}
    for name, cell in zip(names, raw):
        if name is None:
            continue
        if name in seen:
            raise InputError(
                f"{source}: columns '{seen[name]}' and '{clean_header(cell)}' both mean {name}; keep one"
            )
        seen[name] = clean_header(cell)
