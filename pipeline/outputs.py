"""Writers for the night's files (SPEC 5). Every file is written to a temporary name in the
same folder and renamed over the target, so a killed run never leaves a half-written output:
a reader sees the previous complete file or the new complete file.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from pipeline.items import DATE_FIELDS, ITEM_COLUMNS

# A cell a person may open in a spreadsheet never starts a formula (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TEXT_FIELDS = ["policy_no", "detail", "evidence", "branch", "channel", "agent_code", "source_file"]


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
    entries = sorted(staging.iterdir(), key=lambda p: p.name == "manifest.json")
    (out / "manifest.json").unlink(missing_ok=True)
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


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def defuse(series: pd.Series) -> pd.Series:
    """Prefix a quote to text that a spreadsheet would run as a formula.

    >>> defuse(pd.Series(["=HYPERLINK(1)", "张三", None, "-1"], dtype="str")).tolist()
    ["'=HYPERLINK(1)", '张三', nan, "'-1"]
    """
    s = series.astype("str")
    return s.where(~s.str.startswith(FORMULA_START).fillna(False), "'" + s)


def items_for_csv(items: pd.DataFrame) -> pd.DataFrame:
    out = items[ITEM_COLUMNS].copy()
    for col in DATE_FIELDS:
        out[col] = out[col].dt.strftime("%Y-%m-%d")
    for col in TEXT_FIELDS:
        out[col] = defuse(out[col])
    out["provisional"] = out["provisional"].map({True: "true", False: "false"})
    return out


def write_items(items: pd.DataFrame, out: Path) -> None:
    atomic_write(out / "items.csv", lambda p: items_for_csv(items).to_csv(p, index=False, encoding="utf-8-sig"))
    atomic_write(out / "items.parquet", lambda p: items[ITEM_COLUMNS].to_parquet(p, index=False))


def write_quarantine(quarantine: pd.DataFrame, out: Path) -> None:
    q = quarantine.copy()
    q["policy_no"] = defuse(q["policy_no"].astype("str"))
    atomic_write(out / "quarantine.csv", lambda p: q.to_csv(p, index=False, encoding="utf-8-sig"))


def write_json(data: dict, path: Path) -> None:
    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    atomic_write(path, lambda p: p.write_text(text + "\n", encoding="utf-8"))
