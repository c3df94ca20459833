"""python -m benchmarks [--rows N] [--seed S]: the night, ingest and date parsing against baselines."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipeline.ingest.columns import EXTRACT_COLUMNS, alias_map
from pipeline.ingest import read_extract
from pipeline.rows.normalise import map_distinct, parse_dates
from pipeline.night.run import NightRequest, run_night
from pipeline.sample import write_sample


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def per_row_date(text) -> object:
    """Baseline: the obvious per-row parser a first version would write."""
    if not isinstance(text, str):
        return None
    for fmt in ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"):
        try:
            return dt.datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem:.0f} GiB, {cpu}, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="custdq-bench-"))
    extract = work / "night.csv"
    gen_s, _ = timed(lambda: write_sample(args.rows, args.seed, str(extract)))
    mapping = alias_map(EXTRACT_COLUMNS)
    rows = []

    base_s, _ = timed(lambda: pd.read_csv(extract, dtype=str, keep_default_na=False))
    night_s, result = timed(lambda: run_night(NightRequest([str(extract)], dt.date(2026, 11, 20), str(work / "out"),
                                                           f"sqlite:///{work / 'c.db'}", quiet=True)))
    rows.append(("night end to end (custdq run)", night_s, "pandas.read_csv(dtype=str) alone", base_s))

    fast_s, _ = timed(lambda: read_extract([extract], mapping, fast=True))
    exact_s, _ = timed(lambda: read_extract([extract], mapping, fast=False))
    rows.append(("ingest, fast path (pyarrow + byte scan)", fast_s, "ingest, exact csv-module reader", exact_s))

    dates = pd.read_csv(extract, dtype=str, usecols=["投保人出生日期"])["投保人出生日期"].astype("str")
    vec_s, vec = timed(lambda: map_distinct(dates, parse_dates))
    row_s, per_row = timed(lambda: dates.map(per_row_date))
    agree = bool((pd.to_datetime(per_row).fillna(pd.Timestamp(0)) == vec.fillna(pd.Timestamp(0))).mean() > 0.99)
    rows.append(("birth dates, distinct-value parse", vec_s, "per-row datetime.strptime", row_s))

    print(f"\ncustdq benchmarks — {args.rows:,} rows (sample generated in {gen_s:.1f}s) on {machine()}\n")
    print(f"| {'measure':<42} | {'s':>7} | {'rows/s':>11} | {'baseline':<34} | {'s':>7} | {'speed-up':>8} |")
    print(f"|{'-' * 44}|{'-' * 9}|{'-' * 13}|{'-' * 36}|{'-' * 9}|{'-' * 10}|")
    for name, s, base_name, b in rows:
        print(f"| {name:<42} | {s:7.2f} | {args.rows / s:11,.0f} | {base_name:<34} | {b:7.2f} | {b / s:7.2f}x |")
    m = result.manifest
    print(f"\nnight stages (s): {m['timings_seconds']}; peak memory {m['peak_memory_mb']} MB; "
          f"items {m['items']['total']:,}; date parsers agree: {agree}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"bench-{args.rows}.json").write_text(json.dumps({
        "rows": args.rows, "machine": machine(), "results": [
            {"measure": n, "seconds": round(s, 3), "baseline": bn, "baseline_seconds": round(b, 3)}
            for n, s, bn, b in rows],
        "stages": m["timings_seconds"], "peak_memory_mb": m["peak_memory_mb"]}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
