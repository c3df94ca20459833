"""python -m benchmarks.load [--rows 20000000] [--small 2000000]:
`custdq index load` of a whole customer book (issue 16, points 6 and 7).

A book of `--rows` policy rows (about 2.5 contact rows each, so the default is a book of ~50M
contact rows) and, as the baseline measured in the same run, a book of `--small` rows, each
generated with `custdq sample` (outside the timings, kept in `--work` between runs) and loaded
with `custdq index load` into a fresh SQLite store in a fresh process. Wall time, peak memory of
the process tree (as benchmarks.scale measures it) and the contact rows written, from the load's
manifest. The target: the large load's peak stays ≤ 6 GB (memory bounded by the chunk, not by
the book); the ratio printed is the large book's seconds per contact row against the small one's.
Writes benchmarks/results/load.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
from pathlib import Path

from benchmarks.__main__ import machine
from benchmarks.nights import generate
from benchmarks.scale import CUSTDQ, KEY, measured

AS_OF = dt.date(2026, 11, 1)


def load(book: Path, work: Path, limit: int, env: dict) -> dict:
    store, out = work / "book.db", work / "load-out"
    store.unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    got = measured([CUSTDQ, "index", "load", str(book), "--as-of", AS_OF.isoformat(), "--db", f"sqlite:///{store}",
                    "--out", str(out)], limit, env)
    manifest = out / "manifest.json"
    if got["exit"] == 0 and manifest.exists():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        got.update(rows=m["rows_read"], contact_rows=m["contact_rows_written"], store_mb=round(store.stat().st_size / 2**20),
                   own_seconds=m.get("seconds"), own_peak_mb=m.get("peak_memory_mb"))
    store.unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)
    return got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=20_000_000, help="policy rows of the book (~2.5 contact rows each)")
    ap.add_argument("--small", type=int, default=2_000_000, help="policy rows of the baseline book")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--memory-limit-gb", type=float, default=20.0)
    ap.add_argument("--work", default="benchmarks/results/load")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CUSTDQ_HASH_KEY=KEY)
    limit = int(args.memory_limit_gb * 2**30)
    runs = {}
    for name, rows in (("small", args.small), ("large", args.rows)):
        book = work / f"book-{rows}.csv"
        generate(book, rows, args.seed, AS_OF, [], env)
        runs[name] = got = load(book, work, limit, env)
        print(f"index load of {rows:,} rows: {got['seconds']} s, {got['peak_gb']} GB, exit {got['exit']}, "
              f"{got.get('contact_rows')} contact rows, store {got.get('store_mb')} MB"
              f"{'' if got['exit'] == 0 else got['stderr_tail']}", flush=True)
    small, large = runs["small"], runs["large"]
    if small["exit"] == 0 and large["exit"] == 0:
        per = [r["seconds"] / r["contact_rows"] * 1e6 for r in (small, large)]
        print(f"per contact row: {per[0]:.2f} us (small) -> {per[1]:.2f} us (large), {per[1] / per[0]:.2f}x; "
              f"peak {small['peak_gb']} -> {large['peak_gb']} GB (target <= 6 GB)")
    results = {"machine": machine(), "date": dt.date.today().isoformat(), "runs": runs}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "load.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
