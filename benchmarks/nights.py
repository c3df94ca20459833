"""python -m benchmarks.nights resend [--rows 1000000] | series [--nights 20 --new 500000 --resent 100000] |
small [--rows 1000 --runs 5]:
nights in a row on one store (issue 16, point 7).

`resend`: a first night of `--rows` policies, then the next night re-sends the whole book
(`custdq sample --after --resend 1.0 --changed 0.1`: a tenth with a new phone or account). The
target (issue 29): the re-sent night costs ≤ 1.3x the first night's time and peak memory.

`series`: `--nights` consecutive nights on one store, nobody settling items (so the listed
backlog grows) and no manual compaction: the first night `--new` policies, every later one
`--new` new policies (a tenth of them recurring customers) plus `--resent` policies of the
three nights before it, some changed, some corrected. The target (issue 29): the last night costs ≤ 1.15x
the second per (row read + item listed), and ≤ 1.15x its peak memory.

`small`: a small night's fixed costs (issue 29: a 1,000-row night ≤ 4 s). Two `--rows` nights
make a store; then, `--runs` times, the third night runs on a fresh copy of it, alternating
with the floor measured in the same run: a fresh interpreter importing what any night imports
(pandas, pyarrow, SQLAlchemy, DuckDB, pandera, openpyxl). Prints the medians and the night's
stage timings. `--config FILE` runs the measured nights with those settings (for instance
`expectations: {enabled: false}`, to see the night without Great Expectations).

Each night runs `custdq run` in a fresh process (wall time and the peak memory of its process
tree, as benchmarks.scale measures them). Extracts are generated first, outside the timings,
and kept in `--work` between runs. Writes benchmarks/results/nights-<mode>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

from benchmarks.__main__ import machine
from benchmarks.scale import CUSTDQ, KEY, measured

START = dt.date(2026, 11, 2)


def generate(out: Path, rows: int, seed: int, date: dt.date, after: list[Path], env: dict, **shares) -> None:
    if out.exists():
        return
    extra = [a for p in after for a in ("--after", str(p))]
    extra += [a for k, v in shares.items() for a in (f"--{k}", str(v))]
    got = measured([CUSTDQ, "sample", "--rows", str(rows), "--seed", str(seed), "--out", str(out),
                    "--business-date", date.isoformat(), *extra], 2**40, env)
    if got["exit"]:
        sys.exit(f"custdq sample failed: {got['stderr_tail']}")
    print(f"generated {out.name}: {rows:,} rows in {got['seconds']} s", flush=True)


def run(extract: Path, date: dt.date, store: Path, out: Path, limit: int, env: dict, config: str | None = None) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    got = measured([CUSTDQ, "run", str(extract), "--business-date", date.isoformat(), "--db", f"sqlite:///{store}",
                    "--out", str(out), *(["--config", config] if config else [])], limit, env)
    manifest = out / "manifest.json"
    if got["exit"] == 0 and manifest.exists():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        index = m["contact_index"]
        got.update(rows=m["rows"]["rows_read"], listed=m["items"]["total"], new_items=m["items"]["new"],
                   stages=m["timings_seconds"], index_rows=index.get("rows"), replaced_rows=index.get("replaced_rows"),
                   unchanged=index.get("policies_unchanged"), store_mb=round(store.stat().st_size / 2**20),
                   index_mb=round(store.with_name(store.stem + ".contacts.duckdb").stat().st_size / 2**20))
    shutil.rmtree(out, ignore_errors=True)
    return got


def _remove(store: Path) -> None:
    """The store and its contact index (and their side files)."""
    for p in [*store.parent.glob(store.name + "*"), *store.parent.glob(store.stem + ".contacts.duckdb*")]:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def show(i: int, got: dict) -> None:
    print(f"  night {i}: {got['seconds']} s, {got['peak_gb']} GB, exit {got['exit']}, rows {got.get('rows')}, "
          f"listed {got.get('listed')}, index {got.get('index_rows')} rows (replaced {got.get('replaced_rows')}), "
          f"store {got.get('store_mb')} MB, index {got.get('index_mb')} MB, stages {got.get('stages')}"
          f"{'' if got['exit'] == 0 else got['stderr_tail']}", flush=True)


def resend(args, env: dict, limit: int) -> dict:
    work = Path(args.work)
    first, again = work / f"book-{args.rows}.csv", work / f"book-{args.rows}-resent.csv"
    generate(first, args.rows, args.seed, START, [], env)
    generate(again, args.rows, args.seed + 1, START + dt.timedelta(days=1), [first], env,
             resend=1.0, changed=0.1, recurring=0.0)
    store = work / "cases.db"
    _remove(store)
    nights = []
    for i, (extract, date) in enumerate([(first, START), (again, START + dt.timedelta(days=1))], start=1):
        nights.append(run(extract, date, store, work / "out", limit, env))
        show(i, nights[-1])
    _remove(store)
    a, b = nights
    if a["exit"] == 0 and b["exit"] == 0:
        print(f"\nre-sent book of {args.rows:,} policies on {machine()}: {b['seconds'] / a['seconds']:.2f}x the first "
              f"night's time, {b['peak_gb'] / a['peak_gb']:.2f}x its peak memory (target ≤ 1.3x both, issue 29)")
    return {"rows": args.rows, "nights": nights}


def series(args, env: dict, limit: int) -> dict:
    work = Path(args.work)
    store = work / "cases.db"
    _remove(store)
    extracts: list[Path] = []
    nights = []
    rows = args.new + args.resent
    for i in range(1, args.nights + 1):
        date = START + dt.timedelta(days=i - 1)
        extract = work / f"series-{args.new}-{args.resent}-{i:02d}.csv"
        if i == 1:
            generate(extract, args.new, args.seed, date, [], env)
        else:
            generate(extract, rows, args.seed + i, date, extracts[-3:], env, resend=round(args.resent / rows, 6))
        extracts.append(extract)
        nights.append(run(extract, date, store, work / "out", limit, env))
        show(i, nights[-1])
        if nights[-1]["exit"]:
            break
        for old in extracts[:-3]:
            old.unlink(missing_ok=True)  # only the last three feed the next night's re-sent policies
    _remove(store)
    ok = [n for n in nights if n["exit"] == 0]
    if len(ok) == args.nights and args.nights >= 3:
        second, last = ok[1], ok[-1]
        per = [n["seconds"] / (n["rows"] + n["listed"]) * 1e6 for n in (second, last)]
        print(f"\n{args.nights} nights of {args.new:,} new + {args.resent:,} re-sent on {machine()}: night "
              f"{args.nights} costs {per[1] / per[0]:.2f}x night 2 per (row read + item listed) ({per[0]:.1f} → "
              f"{per[1]:.1f} µs), {last['peak_gb'] / second['peak_gb']:.2f}x its peak memory (target ≤ 1.15x both, issue 29)")
    return {"new": args.new, "resent": args.resent, "nights": nights}


FLOOR = "import pandas, pyarrow, sqlalchemy, duckdb, pandera.pandas, openpyxl"


def small(args, env: dict, limit: int) -> dict:
    import statistics

    work = Path(args.work)
    dates = [START + dt.timedelta(days=i) for i in range(3)]
    extracts = [work / f"small-{args.rows}-{i + 1}.csv" for i in range(3)]
    for i, (extract, date) in enumerate(zip(extracts, dates)):
        generate(extract, args.rows, args.seed + i, date, extracts[:i], env, **({"resend": 0.1} if i else {}))
    made = work / "small" / "cases.db"
    _remove(made)
    made.parent.mkdir(parents=True, exist_ok=True)
    for extract, date in zip(extracts[:2], dates[:2]):
        got = run(extract, date, made, work / "out", limit, env)
        if got["exit"]:
            sys.exit(f"custdq run failed: {got['stderr_tail']}")
    nights, floors = [], []
    for i in range(args.runs):
        store = work / "small-run" / "cases.db"
        shutil.rmtree(store.parent, ignore_errors=True)
        shutil.copytree(made.parent, store.parent)
        nights.append(run(extracts[2], dates[2], store, work / "out", limit, env, args.config))
        floors.append(measured([sys.executable, "-c", FLOOR], limit, env))
        print(f"  run {i + 1}: night {nights[-1]['seconds']} s (exit {nights[-1]['exit']}), floor {floors[-1]['seconds']} s, "
              f"stages {nights[-1].get('stages')}", flush=True)
    shutil.rmtree(work / "small-run", ignore_errors=True)
    _remove(made)
    night = statistics.median(n["seconds"] for n in nights)
    floor = statistics.median(f["seconds"] for f in floors)
    print(f"\n{args.rows:,}-row third night on {machine()}: median {night:.2f} s over {args.runs} runs (target ≤ 4 s); "
          f"the import floor {floor:.2f} s; the night is {night / floor:.2f}x the floor")
    return {"rows": args.rows, "nights": nights, "floors": floors, "median_s": night, "floor_s": floor}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("mode", choices=["resend", "series", "small"])
    ap.add_argument("--rows", type=int, default=None, help="resend: policies in the book (1,000,000); small: "
                    "rows a night (1,000)")
    ap.add_argument("--runs", type=int, default=5, help="small: how many times the third night runs")
    ap.add_argument("--config", help="small: settings for the measured nights (e.g. the expectations gate off)")
    ap.add_argument("--nights", type=int, default=20)
    ap.add_argument("--new", type=int, default=500_000)
    ap.add_argument("--resent", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--memory-limit-gb", type=float, default=20.0)
    ap.add_argument("--work", default="benchmarks/results/nights")
    args = ap.parse_args()
    args.rows = args.rows or (1000 if args.mode == "small" else 1_000_000)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CUSTDQ_HASH_KEY=KEY)
    limit = int(args.memory_limit_gb * 2**30)
    results = {"machine": machine(), "date": dt.date.today().isoformat(),
               **{"resend": resend, "series": series, "small": small}[args.mode](args, env, limit)}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"nights-{args.mode}.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
