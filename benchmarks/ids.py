"""Identity-number rules on one column of N numbers (default 10M), against per-row baselines.

python -m benchmarks.ids [--rows N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np
import pandas as pd
from stdnum.cn import ric as stdnum_ric

from benchmarks.__main__ import machine
from checks import ric
from checks.arrays import char_matrix
from checks.ric_vector import analyse, check18
from pipeline.sample import people

TODAY = dt.date(2026, 11, 20)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--baseline-rows", type=int, default=100_000)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    base = people(1_000_000, rng, TODAY, 0, 90)["id_no"]
    ids = pd.Series(np.resize(base.to_numpy(dtype=object), args.rows), dtype="str")

    started = time.perf_counter()
    good, _, _, birth_ok, _ = check18(char_matrix(ids, 18), TODAY)
    core_s = time.perf_counter() - started
    started = time.perf_counter()
    result = analyse(ids, TODAY)
    vec_s = time.perf_counter() - started
    sample = ids.iloc[: args.baseline_rows].tolist()
    started = time.perf_counter()
    ours = [ric.is_valid(x) for x in sample]
    ours_s = (time.perf_counter() - started) * args.rows / len(sample)
    started = time.perf_counter()
    theirs = [stdnum_ric.is_valid(x) for x in sample]
    std_s = (time.perf_counter() - started) * args.rows / len(sample)
    wrong = sum(t != o for t, o in zip(theirs, ours))
    ok = int((result["status"] == "ok").sum())

    print(f"\nID rules on {args.rows:,} numbers, {machine()}\n")
    print("| measure | s | rows/s | speed-up vs per-row stdnum |")
    print("|---|---|---|---|")
    print(f"| checksum + birth date + sex (digit matrix, `check18`) | {core_s:.2f} | "
          f"{args.rows / core_s:,.0f} | {std_s / core_s:.0f}x |")
    print(f"| whole analysis (`analyse`: shape, damage, checksum, birth, sex, region, 18-digit form) | {vec_s:.2f} | "
          f"{args.rows / vec_s:,.0f} | {std_s / vec_s:.0f}x |")
    print(f"| per-row checks.ric.is_valid (extrapolated from {len(sample):,}) | {ours_s:.1f} | "
          f"{args.rows / ours_s:,.0f} | {std_s / ours_s:.1f}x |")
    print(f"| per-row python-stdnum cn.ric.is_valid (extrapolated from {len(sample):,}) | {std_s:.1f} | "
          f"{args.rows / std_s:,.0f} | 1x |")
    assert good.all() and birth_ok.all()
    print(f"\nnumbers passing: {ok:,}; python-stdnum disagrees with custdq on {wrong:,} of {len(sample):,} "
          f"valid generated numbers (its year ranges for address codes)")


if __name__ == "__main__":
    main()
