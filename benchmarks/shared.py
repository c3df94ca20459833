"""python -m benchmarks.shared [--rows N] [--book M]: shared-contact detection of one night
against a book of M contact rows already in the case store (issue 4: 1M rows vs 50M, ≤ 60 s,
≤ 8 GB on 2 cores / 24 GB).

The book is seeded straight into the index through the same bulk writer `custdq index load`
uses (keyed values and customers; 0.2 % of tonight's phones and accounts planted under other
customers, so tonight meets real shared groups in the book). In the same run, the baseline is
the same night against an empty index. Each night runs as a separate `custdq run` process, so
peak memory is that of the real command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.__main__ import machine
from pipeline import config, store
from pipeline.store import hashkey
from pipeline.book import index
from pipeline.book.rows import STORED, contact_rows, version_of
from pipeline.ingest.columns import EXTRACT_COLUMNS, alias_map
from pipeline.rows.engine import context
from pipeline.ingest import read_extract
from pipeline.rows.normalise import normalise
from pipeline.sample import write_sample

KEY = "custdq-benchmark-key-0123456789abcdef0123456789"
CHUNK = 1_000_000


def tonight_rows(extract: Path, date: dt.date) -> pd.DataFrame:
    cfg = config.load()
    table = read_extract([str(extract)], alias_map(EXTRACT_COLUMNS))
    frame = normalise(table.frame, cfg)
    return contact_rows(frame, context(date, table.frame, cfg), KEY.encode(), "x")


def seed_book(db: str, total: int, planted: pd.DataFrame, seed: int) -> float:
    """`total` contact rows (~2.5 per policy, ~1.3 policies per customer, random keyed values)
    written by the bulk path `custdq index load` uses into an empty index."""
    rng = np.random.default_rng(seed)
    engine = store.open_store(db)
    store.check_key(engine, hashkey.fingerprint(KEY.encode()))
    started = time.perf_counter()

    def chunks():
        done, policy = 0, 0
        while done < total:
            n = min(CHUNK, total - done)
            values = rng.bytes(16 * n)
            customers = rng.bytes(16 * (n // 3 + 1))
            cust_idx = rng.integers(0, n // 3 + 1, n)
            pol = policy + np.arange(n) * 2 // 5
            kind = np.where(np.arange(n) % 5 < 3, "P", "B")
            rows = pd.DataFrame({
                "kind": kind,
                "value": [values[16 * i:16 * i + 16] for i in range(n)],
                "customer": [customers[16 * c:16 * c + 16] for c in cust_idx],
                "person": None,
                "policy_no": [f"B{p:010d}" for p in pol],
                "field": np.where(kind == "P", "applicant_phone", "bank_account"),
                "masked_value": np.where(kind == "P", "139****0000", "622202*********0000"),
                "masked_name": "张*", "masked_id": "4****************X", "branch": "广东分公司",
                "channel": "个险", "agent_code": "A0001", "receipt_date": "2026-10-01",
                "version": version_of("2026-10-31", "book"),
            })
            policy = int(pol[-1]) + 1
            if done == 0 and len(planted):  # tonight's values under other customers, other policies
                k = len(planted)
                rows.loc[: k - 1, "value"] = planted["value"].to_numpy()
                rows.loc[: k - 1, "kind"] = planted["kind"].to_numpy()
            done += n
            print(f"  book: {done:,} rows ({time.perf_counter() - started:.0f}s)", flush=True)
            yield rows[STORED]

    with engine.begin() as conn:
        index.ContactIndex(conn).bulk_main(chunks())
    return time.perf_counter() - started


def run_night(extract: Path, db: str, out: Path) -> dict:
    env = dict(os.environ, CUSTDQ_HASH_KEY=KEY)
    started = time.perf_counter()
    cmd = [sys.executable, "-c",
           "import resource, sys; from pipeline.cli import cli; sys.argv=['custdq']+sys.argv[1:];"
           "\ntry:\n    cli()\nfinally:\n"
           "    print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)",
           "run", str(extract), "--business-date", "2026-11-20", "--db", db, "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    peak_kb = int([line for line in proc.stderr.splitlines() if line.startswith("PEAK")][-1].split()[1])
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {"wall": wall, "peak_gb": peak_kb / 2**20, "shared": manifest["timings_seconds"]["shared"],
            "stats": manifest["contact_index"], "rules": {k: manifest["rules"][k] for k in ("PHONE_SHARED", "BANK_SHARED")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of tonight's extract")
    ap.add_argument("--book", type=int, default=50_000_000, help="contact rows in the book")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", help="folder for the extract and the stores (default: a temp folder)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="custdq-shared-"))
    work.mkdir(parents=True, exist_ok=True)
    extract = work / "night.csv"
    if not extract.exists():
        write_sample(args.rows, args.seed, str(extract))
    rows = tonight_rows(extract, dt.date(2026, 11, 20))
    planted = rows.sample(frac=0.002, random_state=args.seed)[["kind", "value"]]
    print(f"tonight: {args.rows:,} rows, {len(rows):,} contact rows; planting {len(planted):,} in the book")

    empty_db = f"sqlite:///{work / 'empty.db'}"
    for f in work.glob("empty.db*"):
        f.unlink()
    base = run_night(extract, empty_db, work / "out-empty")

    book_db_path = work / f"book-{args.book}.db"
    book_db = f"sqlite:///{book_db_path}"
    if not book_db_path.exists():
        seed_s = seed_book(book_db, args.book, planted, args.seed)
        print(f"book seeded: {args.book:,} contact rows in {seed_s:.0f}s, {book_db_path.stat().st_size / 2**30:.1f} GiB")
    # a re-run of the same night takes its own tier back first, so the seeded book can be reused
    night = run_night(extract, book_db, work / "out-book")

    print(f"\ncustdq shared-contact benchmark — {args.rows:,}-row night on {machine()}\n")
    print(f"{'':44} {'night wall':>10} {'shared stage':>12} {'peak RSS':>9}")
    print(f"{'against an empty index (baseline)':44} {base['wall']:9.1f}s {base['shared']:11.1f}s {base['peak_gb']:8.2f}G")
    print(f"{f'against a book of {args.book:,} contact rows':44} {night['wall']:9.1f}s {night['shared']:11.1f}s {night['peak_gb']:8.2f}G")
    print(f"\nratio book/empty: night {night['wall'] / base['wall']:.2f}x, shared stage {night['shared'] / max(base['shared'], 1e-9):.2f}x")
    for code, r in night["rules"].items():
        print(f"{code}: {r['findings']:,} items ({r['book']['earlier_policies_items']:,} on earlier policies), "
              f"{r['book']['clusters']:,} clusters, largest {r['book']['largest_cluster']}")
    print(f"index after the night: {night['stats']['rows']:,} rows; pool {night['stats']['pool_rows']:,} rows")
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "shared.json").write_text(json.dumps({"machine": machine(), "rows": args.rows, "book": args.book,
                                                     "empty": base, "book_night": night}, indent=2, default=str))


if __name__ == "__main__":
    main()
