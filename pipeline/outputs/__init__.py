"""Writers for the night's files (SPEC 5). Every file is written to a temporary name in the
same folder and renamed over the target, so a killed run never leaves a half-written output:
a reader sees the previous complete file or the new complete file.

The CSV files are the bytes pandas' `to_csv(index=False, encoding="utf-8-sig")` writes (Python's
csv module, QUOTE_MINIMAL, '\n' line ends), made in Arrow for a 1M-item night: each column's
texts as Arrow strings (missing as '', integers in decimal), a field with a comma, a quote or a
line break quoted and its quotes doubled - as the csv module does; '\r' alone is not quoted - and
one `binary_join_element_wise` a slice of rows, whose data buffer is written as it is. Only a
column whose bytes hold ',', '"' or '\n' meets a string kernel. A frame with a column of any
other kind (floats, booleans, mixed objects) goes to pandas itself. items.parquet is written on a
second thread meanwhile (Arrow's Parquet writer lets go of the GIL). Dates become text once per
distinct date.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.cases.listing import COLUMNS as LISTED, HEADERS as LISTED_HEADERS, displayed
from pipeline.files import (DASHBOARD, DATA_DOCS, EXPECTATIONS, ITEMS_CSV, ITEMS_PARQUET, MANIFEST,  # noqa: F401 - the
                            QUARANTINE, WORKLISTS, atomic_write)  # night's file names, as outputs.NAME
from pipeline.cases.items import DATE_FIELDS, ITEM_COLUMNS

# A cell a person may open in a spreadsheet never starts a formula (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TEXT_FIELDS = ["policy_no", "detail", "evidence", "branch", "channel", "agent_code", "source_file"]
CSV_SLICE = 100_000  # rows joined into CSV text at a time
_QUOTE, _COMMA, _END, _NOTHING = (pa.scalar(s, pa.large_string()) for s in ('"', ",", "\n", ""))


def refuse_foreign(out: Path, url: str) -> None:
    """Refuse (exit 2) an output folder that holds a complete night of another case store: the
    default `out/<business-date>/` of a run on another store (a test store, a `--new-store`)
    would otherwise replace that night's worklists and items without a word. A folder whose
    manifest names this store, or has none, is this night's to write."""
    import json

    from pipeline import store
    from pipeline.errors import InputError

    try:
        before = json.loads((out / MANIFEST).read_text(encoding="utf-8")).get("case_store")
    except (OSError, ValueError, AttributeError):
        return
    if not before or before in (store.safe_url(url), store.shown_url(url)):
        return
    raise InputError(f"--out {out.absolute()} holds the night of another case store ({before}), not of "
                     f"{store.shown_url(url)}; nothing was done. Name another folder with --out (or remove that "
                     "one if it is no longer needed)")


def staging_dir(out: Path) -> Path:
    """A fresh hidden folder inside `out` (same file system, so publishing is a rename)."""
    staging = out / f".staging-{os.getpid()}"
    discard(staging)
    staging.mkdir()
    return staging


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def publish(staging: Path, out: Path) -> None:
    """Move a complete night from `staging` into `out`: files by rename, folders swapped, stale
    staging folders of killed runs removed, manifest.json last (its presence marks a complete
    night). The previous manifest.json goes first: while files of two nights are side by side
    there is no manifest, and a present manifest lists (with checksums) exactly the files of its
    night. Nothing is written here, so a full disk cannot stop it half way."""
    entries = sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST)
    (out / MANIFEST).unlink(missing_ok=True)
    for entry in entries:
        target = out / entry.name
        if entry.is_dir():
            old = out / f".{entry.name}.old-{os.getpid()}"
            if target.exists():
                target.rename(old)
            entry.rename(target)
            discard(old)
        else:
            os.replace(entry, target)
    discard(staging)
    for stale in out.glob(".staging-*"):  # left by a killed run
        discard(stale)


def listing(folder: Path) -> dict[str, dict]:
    """Every file under `folder` (relative path -> bytes, sha256), for the manifest."""
    from pipeline.ingest import sha256_of

    return {path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": sha256_of(path)}
            for path in sorted(p for p in folder.rglob("*") if p.is_file())}


def text_bytes(arr) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """A large_string array (chunks combined), where each text starts (and the last ends) and
    the texts' bytes, back to back, as they lie in Arrow's buffer (no copy)."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2] or b"", dtype=np.uint8)[offsets[0]: offsets[-1]]
    return arr, offsets - offsets[0], data


_FORMULA_BYTES = np.zeros(256, dtype=bool)
_FORMULA_BYTES[[ord(c) for c in FORMULA_START]] = True  # one ASCII character each: a text's first byte tells


def defuse(series: pd.Series) -> pd.Series:
    """Prefix a quote to text that a spreadsheet would run as a formula.

    >>> defuse(pd.Series(["=HYPERLINK(1)", "张三", None, "-1"], dtype="str")).tolist()
    ["'=HYPERLINK(1)", '张三', nan, "'-1"]
    """
    s = series.astype("str")
    if s.dtype.storage != "pyarrow":
        return s.where(~s.str.startswith(FORMULA_START).fillna(False), "'" + s)
    arr, starts, data = text_bytes(pa.array(s.array))
    full = starts[1:] > starts[:-1]
    risky = full & _FORMULA_BYTES[data[np.where(full, starts[:-1], 0)]] if len(data) else full
    if not risky.any():
        return s
    quoted = pc.binary_join_element_wise(pa.scalar("'", pa.large_string()), arr, _NOTHING)
    return pd.Series(pc.if_else(pa.array(risky), quoted, arr), index=s.index, name=s.name, dtype="str")


def _dates(values: pd.Series) -> pd.Series:
    """YYYY-MM-DD (missing: NaN), formatted once per distinct date."""
    codes, distinct = pd.factorize(values)
    texts = pa.array(distinct.strftime("%Y-%m-%d").tolist() + [None], pa.large_string())
    return pd.Series(texts.take(np.where(codes < 0, len(distinct), codes)), index=values.index, dtype="str")


def items_for_csv(items: pd.DataFrame) -> pd.DataFrame:
    out = items[ITEM_COLUMNS]  # a new frame (copy on write): the items stay as they are
    for col in DATE_FIELDS:
        out[col] = _dates(out[col])
    for col in TEXT_FIELDS:
        out[col] = defuse(out[col])
    out["provisional"] = out["provisional"].map({True: "true", False: "false"})
    return out




def _csv_field(values: pd.Series) -> pa.Array | None:
    """One column's CSV fields as Python's csv module writes them (QUOTE_MINIMAL), or None for a
    column of a kind this does not write (floats, booleans, mixed objects: pandas does)."""
    kind = values.dtype
    inferred = pd.api.types.infer_dtype(values, skipna=True) if kind == object else None
    try:
        if isinstance(kind, pd.StringDtype) or inferred in ("string", "empty"):
            arr = pa.array(values, type=pa.large_string(), from_pandas=True)
        elif pd.api.types.is_integer_dtype(kind) or inferred == "integer":
            arr = pc.cast(pa.array(values, type=pa.int64(), from_pandas=True), pa.large_string())
        else:
            return None
    except (pa.ArrowException, OverflowError, UnicodeEncodeError):  # past 64 bits, a lone surrogate: pandas
        return None
    arr, _, data = text_bytes(arr.fill_null(""))
    raw = data.tobytes()
    if b"," in raw or b'"' in raw or b"\n" in raw:  # the few fields the csv module quotes
        quoted = pc.binary_join_element_wise(_QUOTE, pc.replace_substring(arr, '"', '""'), _QUOTE, _NOTHING)
        arr = pc.if_else(pc.match_substring_regex(arr, '[,"\n]'), quoted, arr)
    return arr


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """`frame.to_csv(path, index=False, encoding="utf-8-sig")`, byte for byte, at Arrow's speed."""
    # one column: the csv module writes an empty field alone on its line as "" (pandas does that)
    simple = os.linesep == "\n" and frame.columns.is_unique and len(frame.columns) > 1
    fields = [f for f in (_csv_field(frame[c]) for c in frame.columns) if f is not None] if simple else []
    if len(fields) < len(frame.columns) or not simple:
        frame.to_csv(path, index=False, encoding="utf-8-sig")
        return
    with open(path, "wb") as fh:
        fh.write(frame.head(0).to_csv(index=False).encode("utf-8-sig"))  # the BOM and pandas' own header line
        for start in range(0, len(frame), CSV_SLICE):
            cells = [f.slice(start, CSV_SLICE) for f in fields]
            rows = pc.binary_join_element_wise(*[x for cell in cells for x in (cell, _COMMA)][:-1], _END, _NOTHING)
            fh.write(text_bytes(rows)[2].data)


def write_items(items: pd.DataFrame, out: Path) -> None:
    table = pa.Table.from_pandas(items[ITEM_COLUMNS], preserve_index=False)  # what to_parquet(index=False) writes
    with ThreadPoolExecutor(1) as pool:  # the Parquet file meanwhile, from the table alone
        parquet = pool.submit(atomic_write, out / ITEMS_PARQUET, lambda p: pq.write_table(table, p, compression="snappy"))
        atomic_write(out / ITEMS_CSV, lambda p: write_csv(items_for_csv(items), p))
        parquet.result()


def write_quarantine(quarantine: pd.DataFrame, out: Path) -> None:
    q = quarantine.copy()
    q["policy_no"] = defuse(q["policy_no"].astype("str"))
    atomic_write(out / QUARANTINE, lambda p: write_csv(q, p))


def write_json(data: dict, path: Path) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)

    def write(p: Path) -> None:
        p.write_text(text + "\n", encoding="utf-8")

    atomic_write(path, write)


def write_rejects(frame: pd.DataFrame, path: str | Path) -> None:
    """`cases import --rejects-out`: the rejected rows as CSV (UTF-8 with a BOM, the item ids
    defused for spreadsheets)."""
    frame = frame.assign(item_id=defuse(frame["item_id"].astype("str")))
    atomic_write(Path(path), lambda p: frame.to_csv(p, index=False, encoding="utf-8-sig"))


def open_items_csv(t: pd.DataFrame, limit: int | None = None) -> str:
    """The open items as CSV (the first `limit` rows, or all) as the table shows them: its Chinese
    headers, roles and rules by name, a UTF-8 byte-order mark first (Excel then reads the Chinese
    right), ids and names defused for spreadsheets."""
    out = displayed(t.head(limit) if limit else t)
    for col in ("item_id", "branch", "channel", "policy_no"):
        out[col] = defuse(out[col].astype("str"))
    return "\ufeff" + out[LISTED].rename(columns=LISTED_HEADERS).to_csv(index=False)
