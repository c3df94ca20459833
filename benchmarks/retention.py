"""python -m benchmarks.retention [--rows 4100000] [--small 400000]: `custdq retention purge` on
a store of a whole customer book (issue 19: purge time and peak memory at 10M+ contact rows).

A book of `--rows` policy rows (~2.45 contact rows each: the default is just over 10M contact rows) is
generated with `custdq sample` and loaded with `custdq index load` as of 2019-06-01 (outside the
timings; kept in `--work` between runs), so that as of 2026-12-01 every policy last appeared more
than `retention.contacts_days` (5 years) ago: the worst case, where the purge destroys the whole
index, rewrites the index's file and VACUUMs the store's. Baseline measured in the same run: the same on
a book of `--small` rows. Printed: wall seconds and peak memory of `retention plan` and `purge`
(process tree, as benchmarks.scale measures it), the store's and index's size before and after, and the
large purge's seconds per contact row against the small one's. Writes
benchmarks/results/retention.json.
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

LOADED = dt.date(2019, 6, 1)
AS_OF = "2026-12-01"


def built(book: Path, work: Path, name: str, limit: int, env: dict) -> tuple[Path, int]:
    """The loaded store (kept as a pristine copy between runs) and its contact rows."""
    pristine = work / f"{name}-loaded.db"
    facts = work / f"{name}-loaded.json"
    if not pristine.exists():
        out = work / f"{name}-load-out"
        shutil.rmtree(out, ignore_errors=True)
        got = measured([CUSTDQ, "index", "load", str(book), "--as-of", LOADED.isoformat(), "--db",
                        f"sqlite:///{pristine}", "--out", str(out)], limit, env)
        if got["exit"]:
            raise SystemExit(f"index load failed: {got['stderr_tail']}")
        m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        facts.write_text(json.dumps({"contact_rows": m["contact_rows_written"], "load_seconds": got["seconds"]}))
        print(f"loaded {name}: {m['contact_rows_written']:,} contact rows in {got['seconds']} s", flush=True)
    return pristine, int(json.loads(facts.read_text())["contact_rows"])


def purge(pristine: Path, work: Path, limit: int, env: dict) -> dict:
    store = work / "purged.db"
    index, pristine_index = (p.with_name(p.stem + ".contacts.duckdb") for p in (store, pristine))
    shutil.copyfile(pristine, store)
    shutil.copyfile(pristine_index, index)
    db = f"sqlite:///{store}"
    before = store.stat().st_size + index.stat().st_size
    plan = measured([CUSTDQ, "retention", "plan", "--as-of", AS_OF, "--db", db], limit, env)
    done = measured([CUSTDQ, "retention", "purge", "--as-of", AS_OF, "--by", "benchmark", "--db", db], limit, env)
    if plan["exit"] or done["exit"]:
        raise SystemExit(f"retention failed: {plan['stderr_tail']} {done['stderr_tail']}")
    after = store.stat().st_size + index.stat().st_size
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    for p in (index, index.with_name(index.name + ".wal")):
        p.unlink(missing_ok=True)
    return {"plan_seconds": plan["seconds"], "plan_peak_gb": plan["peak_gb"], "purge_seconds": done["seconds"],
            "purge_peak_gb": done["peak_gb"], "store_mb_before": round(before / 2**20),
            "store_mb_after": round(after / 2**20)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=4_100_000, help="policy rows of the book (~2.45 contact rows each: 10M+)")
    ap.add_argument("--small", type=int, default=400_000, help="policy rows of the baseline book")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--memory-limit-gb", type=float, default=20.0)
    ap.add_argument("--work", default="benchmarks/results/retention")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CUSTDQ_HASH_KEY=KEY)
    limit = int(args.memory_limit_gb * 2**30)
    runs = {}
    for name, rows in (("small", args.small), ("large", args.rows)):
        book = work / f"book-{rows}.csv"
        generate(book, rows, args.seed, LOADED, [], env)
        pristine, contact_rows = built(book, work, f"book-{rows}", limit, env)
        runs[name] = got = {"rows": rows, "contact_rows": contact_rows, **purge(pristine, work, limit, env)}
        print(f"{name}: {contact_rows:,} contact rows: plan {got['plan_seconds']} s / {got['plan_peak_gb']} GB, "
              f"purge {got['purge_seconds']} s / {got['purge_peak_gb']} GB, store {got['store_mb_before']} MB -> "
              f"{got['store_mb_after']} MB", flush=True)
    per = [r["purge_seconds"] / r["contact_rows"] * 1e6 for r in (runs["small"], runs["large"])]
    print(f"purge per contact row: {per[0]:.2f} us (small) -> {per[1]:.2f} us (large), {per[1] / per[0]:.2f}x")
    results = {"machine": machine(), "date": dt.date.today().isoformat(), "as_of": AS_OF, "runs": runs}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "retention.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
