"""Keyed hashing (issue 16 point 4): what custdq pays per value around HMAC-SHA-256, against
`hmac.digest` itself on the same values, measured in the same run.

python -m benchmarks.hashing [--values N] [--distinct D]

N values (default 2M) drawn from D distinct phone-like texts (default 500k: phones and customers
repeat across roles and policies). Three ways, each checked to give the same digests:
- `hmac.digest` per value (the floor a straightforward script pays for every value);
- `hashkey.hmac_sha256` per value (inner and outer states keyed once);
- `hashkey.keyed` on the Series (each distinct value once, UTF-8 straight out of Arrow, the
  second core taking half of a long list), as the night calls it.
"""

from __future__ import annotations

import argparse
import hmac
import time

import numpy as np
import pandas as pd

from benchmarks.__main__ import machine
from pipeline.store import hashkey

KEY = b"custdq-benchmark-key-0123456789abcdef0123"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--values", type=int, default=2_000_000)
    ap.add_argument("--distinct", type=int, default=500_000)
    args = ap.parse_args()
    rng = np.random.default_rng(16)
    pool = np.array([f"+86139{n:08d}" for n in rng.choice(10 ** 8, args.distinct, replace=False)], dtype=object)
    values = pd.Series(pool[rng.integers(0, args.distinct, args.values)], dtype="str")
    texts = values.tolist()

    started = time.perf_counter()
    plain = [hmac.digest(KEY, t.encode("utf-8"), "sha256")[:hashkey.DIGEST_BYTES] for t in texts]
    plain_s = time.perf_counter() - started
    started = time.perf_counter()
    states = list(map(hashkey.hmac_sha256(KEY), texts))
    states_s = time.perf_counter() - started
    started = time.perf_counter()
    night = hashkey.keyed(KEY, values)
    night_s = time.perf_counter() - started
    if not (plain == states == night.tolist()):
        raise SystemExit("the three ways disagree (bug)")
    per = 1e6 / args.values
    print(machine())
    print(f"{args.values:,} values, {args.distinct:,} distinct")
    print(f"hmac.digest per value:        {plain_s:6.2f} s  {plain_s * per:5.2f} us/value  1.00x")
    print(f"hmac_sha256 per value:        {states_s:6.2f} s  {states_s * per:5.2f} us/value  "
          f"{plain_s / states_s:4.2f}x")
    print(f"hashkey.keyed (as the night): {night_s:6.2f} s  {night_s * per:5.2f} us/value  {plain_s / night_s:4.2f}x")


if __name__ == "__main__":
    main()
