"""Phone normalisation on N values (default 10M) against per-row phonenumbers in the same run.

python -m benchmarks.phones [--rows N] [--baseline-rows M]
The per-row baseline (parse + format E.164 + is_valid_number) is timed on M values and
extrapolated; results are compared value by value on those M.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from benchmarks.__main__ import machine
from checks.phones import _one, normalise
from pipeline.sample.vocab import MOBILE_PREFIXES


def values(n: int, rng: np.random.Generator) -> pd.Series:
    """The mix of a real extract: plain mobiles, +86/0086 forms, dashes, landlines, odd shapes."""
    mobile = (pd.Series(np.asarray(MOBILE_PREFIXES)[rng.integers(0, len(MOBILE_PREFIXES), n)], dtype="str")
              + pd.Series(rng.integers(0, 10**8, n)).astype(str).str.zfill(8))
    land = "0" + pd.Series(rng.integers(10, 999, n)).astype(str) + "-" + pd.Series(rng.integers(2 * 10**7, 9 * 10**7, n)).astype(str)
    k = rng.choice(6, n, p=[0.70, 0.08, 0.05, 0.07, 0.08, 0.02])
    out = mobile.where(k == 0, ("+86 " + mobile).where(k == 1, ("0086" + mobile).where(
        k == 2, (mobile.str[:3] + "-" + mobile.str[3:7] + "-" + mobile.str[7:]).where(
            k == 3, land.where(k == 4, land + "转" + pd.Series(rng.integers(1, 999, n)).astype(str)))))).astype("str")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--baseline-rows", type=int, default=200_000)
    args = ap.parse_args()
    phones = values(args.rows, np.random.default_rng(3))
    started = time.perf_counter()
    ours = normalise(phones)
    vec_s = time.perf_counter() - started
    sample = phones.iloc[: args.baseline_rows]
    started = time.perf_counter()
    reference = [_one(v) for v in sample]
    row_s = (time.perf_counter() - started) * args.rows / len(sample)
    # the extension split is custdq's own step (phonenumbers knows no 转): compare on the rest
    plain = ours["extension"].iloc[: len(sample)].isna().to_numpy()
    mine = list(zip(ours["e164"].iloc[: len(sample)], ours["valid"].iloc[: len(sample)]))
    differ = sum(1 for p, (e, v), (re, rv) in zip(plain, mine, reference)
                 if p and ((None if pd.isna(e) else e) != re or bool(v) != rv))
    print(f"\nPhone normalisation on {args.rows:,} values, {machine()}\n")
    print("| measure | s | rows/s | speed-up |")
    print("|---|---|---|---|")
    print(f"| custdq checks.phones.normalise (vectorised) | {vec_s:.2f} | {args.rows / vec_s:,.0f} | {row_s / vec_s:.1f}x |")
    print(f"| per-row phonenumbers (extrapolated from {len(sample):,}) | {row_s:.1f} | {args.rows / row_s:,.0f} | 1x |")
    print(f"\nvalues compared: {int(plain.sum()):,}; differing from per-row phonenumbers: {differ}; "
          f"valid: {int(ours['valid'].sum()):,}")


if __name__ == "__main__":
    main()
