"""python -m benchmarks.book [--book 20000000] [--new 30000] [--resent 3000]:
a typical night against a seeded book (issue 29), the insurer's real shape.

A customer book of `--book` policies (generated with `custdq sample`, kept in `--work` between
runs) is loaded into a fresh SQLite store with `custdq index load`; then a typical night of
`--new` new policies (`--recurring` of them of book customers, so some phones and accounts are
shared with the book) plus `--resent` re-sent book policies runs on that store. The baseline,
measured in the same run: the same night on an empty store. Each command runs in a fresh
process (wall time, peak memory of its process tree, as benchmarks.scale measures them).

Printed: the load's seconds per book row and peak; the night's time and peak memory on the
seeded store against the empty one (targets: ≤ 1.3x both), and a 1,000-row night's time (the
night's fixed costs; target ≤ 4 s). Writes benchmarks/results/book.json.

Both nights run with the night's agent roster (`custdq sample --agents-out`: phones, accounts,
addresses, so PHONE_IS_AGENT, BANK_IS_AGENT and ADDRESS_IS_AGENT do their work). The seeded
store has complaints loaded before its night (`--recheck-agents` agents with two substantiated
mis-selling complaints each, from `custdq sample --complaints-out`), so its night also re-checks
those agents' policies across the whole book (AGENT_COMPLAINT_RECHECK, issue 31): the empty
store cannot take complaints before its first night, so this cost is in the seeded side only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd

from benchmarks.__main__ import machine
from benchmarks.nights import generate
from benchmarks.scale import CUSTDQ, KEY, measured

AS_OF = dt.date(2026, 11, 2)
AFTER_ROWS = 2_000_000
NIGHT = dt.date(2026, 11, 3)


def _remove_store(store: Path) -> None:
    for p in store.parent.glob(store.name + "*"):
        p.unlink(missing_ok=True)
    for p in store.parent.glob(store.stem + ".contacts.duckdb*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def load(book: Path, store: Path, out: Path, limit: int, env: dict) -> dict:
    got = measured([CUSTDQ, "index", "load", str(book), "--as-of", AS_OF.isoformat(), "--db", f"sqlite:///{store}",
                    "--out", str(out), "--new-store"], limit, env)
    manifest = out / "manifest.json"
    if got["exit"] == 0 and manifest.exists():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        index = store.with_name(store.stem + ".contacts.duckdb")
        got.update(rows=m["rows_read"], contact_rows=m["contact_rows_written"],
                   index_mb=round(index.stat().st_size / 2**20) if index.exists() else None)
    shutil.rmtree(out, ignore_errors=True)
    return got


def complaints(source: Path, agents: int, out: Path) -> Path:
    """`agents` agents of the sample's complaints file, each with its first two substantiated
    mis-selling complaints: each reaches the re-check threshold."""
    frame = pd.read_csv(source, dtype=str)
    chosen = frame[(frame["投诉类型"] == "销售误导") & (frame["是否查实"] == "是")].groupby("业务员代码").head(2)
    two = chosen.groupby("业务员代码")["投诉编号"].transform("size") == 2
    keep = chosen[two]["业务员代码"].drop_duplicates().head(agents)
    chosen[two & chosen["业务员代码"].isin(keep)].to_csv(out, index=False, encoding="utf-8")
    return out


def night(extract: Path, store: Path, out: Path, limit: int, env: dict, roster: Path,
          complaints_file: Path | None = None) -> dict:
    if complaints_file is not None:
        done = subprocess.run([CUSTDQ, "complaints", "load", str(complaints_file), "--db", f"sqlite:///{store}"],
                              env=env, capture_output=True, text=True)
        if done.returncode:
            return {"exit": done.returncode, "seconds": None, "peak_gb": None, "stderr_tail": done.stderr[-400:]}
    got = measured([CUSTDQ, "run", str(extract), "--business-date", NIGHT.isoformat(), "--db", f"sqlite:///{store}",
                    "--out", str(out), "--agents", str(roster), "--new-store"],
                   limit, env)
    manifest = out / "manifest.json"
    if got["exit"] == 0 and manifest.exists():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        got.update(rows=m["rows"]["rows_read"], items=m["items"]["total"], stages=m["timings_seconds"],
                   shared=m["contact_index"].get("seconds"), unchanged=m["contact_index"].get("policies_unchanged"),
                   shared_items=sum(v for k, v in m["findings_per_rule"].items() if k.endswith("_SHARED")),
                   rechecks=m["findings_per_rule"].get("AGENT_COMPLAINT_RECHECK"),
                   agent_rules={code: m["rules"][code].get("seconds") for code in (
                       "PHONE_IS_AGENT", "BANK_IS_AGENT", "ADDRESS_IS_AGENT", "AGENT_COMPLAINT_RECHECK")
                       if code in m["rules"]})
    shutil.rmtree(out, ignore_errors=True)
    return got


def show(name: str, got: dict) -> None:
    print(f"  {name}: {got['seconds']} s, {got['peak_gb']} GB, exit {got['exit']}, rows {got.get('rows')}, "
          f"items {got.get('items')} (shared {got.get('shared_items')}), stages {got.get('stages')}, "
          f"shared steps {got.get('shared')}, re-check items {got.get('rechecks')}, agents' rules' seconds "
          f"{got.get('agent_rules')}{'' if got['exit'] == 0 else got['stderr_tail']}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--book", type=int, default=20_000_000, help="policies in the seeded book")
    ap.add_argument("--new", type=int, default=30_000, help="new policies tonight")
    ap.add_argument("--resent", type=int, default=3_000, help="book policies re-sent tonight")
    ap.add_argument("--recurring", type=float, default=0.01, help="share of tonight's new policies of book customers")
    ap.add_argument("--recheck-agents", type=int, default=20,
                    help="agents with two substantiated mis-selling complaints loaded into the seeded store")
    ap.add_argument("--seed", type=int, default=29)
    ap.add_argument("--memory-limit-gb", type=float, default=20.0)
    ap.add_argument("--work", default="benchmarks/results/book")
    ap.add_argument("--reuse-load", action="store_true",
                    help="keep the loaded book (in --work/loaded) and, when it is there, copy it instead of loading "
                         "again (to re-measure the nights; the load's figures are then the earlier run's)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CUSTDQ_HASH_KEY=KEY)
    limit = int(args.memory_limit_gb * 2**30)

    book = work / f"book-{args.book}.csv"
    generate(book, args.book, args.seed, AS_OF, [], env)
    rows = args.new + args.resent
    tonight = work / f"night-{args.book}-{args.new}-{args.resent}.csv"
    # `custdq sample --after` holds the earlier extract in memory (a 20M-row book needs more than
    # 24 GB): tonight's re-sent policies and recurring customers come from the book's first rows
    source = book
    if args.book > AFTER_ROWS:
        source = work / f"book-{args.book}-head-{AFTER_ROWS}.csv"
        if not source.exists():
            with book.open("rb") as whole, source.open("wb") as head:
                for n, line in enumerate(whole):
                    if n > AFTER_ROWS:
                        break
                    head.write(line)
    roster, complained = tonight.with_suffix(".agents.csv"), tonight.with_suffix(".complaints.csv")
    if not roster.exists():
        tonight.unlink(missing_ok=True)  # made before the roster was: made again, with it
    generate(tonight, rows, args.seed + 1, NIGHT, [source], env, resend=round(args.resent / rows, 6),
             recurring=args.recurring, **{"agents-out": roster, "complaints-out": complained})
    chosen = complaints(complained, args.recheck_agents, work / f"complaints-{args.recheck_agents}.csv")
    small = work / "night-1000.csv"
    generate(small, 1000, args.seed + 2, NIGHT, [], env)

    seeded, empty, tiny = work / "seeded" / "cases.db", work / "empty" / "cases.db", work / "tiny" / "cases.db"
    for store in (seeded, empty, tiny):
        store.parent.mkdir(parents=True, exist_ok=True)
        _remove_store(store)
    runs: dict[str, dict] = {}
    loaded = work / "loaded" / f"book-{args.book}"
    if args.reuse_load and (loaded / "load.json").exists():
        for p in loaded.iterdir():
            if p.name != "load.json":
                shutil.copy2(p, seeded.parent / p.name)
        runs["load"] = got = json.loads((loaded / "load.json").read_text(encoding="utf-8"))
        print(f"the loaded book copied from {loaded} (its load's figures are that run's)", flush=True)
    else:
        runs["load"] = got = load(book, seeded, work / "load-out", limit, env)
        if args.reuse_load and got["exit"] == 0:
            shutil.rmtree(loaded, ignore_errors=True)
            loaded.mkdir(parents=True)
            for p in seeded.parent.iterdir():
                if p.is_file():
                    shutil.copy2(p, loaded / p.name)
            (loaded / "load.json").write_text(json.dumps(got, default=str), encoding="utf-8")
    per_row = got["seconds"] / got["rows"] * 1e6 if got["exit"] == 0 else None
    print(f"index load of {args.book:,} policies: {got['seconds']} s ({per_row and round(per_row, 1)} µs per book row), "
          f"peak {got['peak_gb']} GB, {got.get('contact_rows')} contact rows, index {got.get('index_mb')} MB, exit "
          f"{got['exit']}{'' if got['exit'] == 0 else got['stderr_tail']}", flush=True)
    if got["exit"]:
        return
    runs["empty"] = night(tonight, empty, work / "out-empty", limit, env, roster)
    show("night on an empty store", runs["empty"])
    runs["seeded"] = night(tonight, seeded, work / "out-seeded", limit, env, roster, chosen)
    show(f"night on the {args.book:,}-policy book, {args.recheck_agents} agents' complaints loaded", runs["seeded"])
    runs["tiny"] = night(small, tiny, work / "out-tiny", limit, env, roster)
    show("1,000-row night on an empty store", runs["tiny"])
    a, b = runs["empty"], runs["seeded"]
    if a["exit"] == 0 and b["exit"] == 0:
        print(f"\n{rows:,}-row night against a {args.book:,}-policy book on {machine()}: {b['seconds'] / a['seconds']:.2f}x "
              f"the time and {b['peak_gb'] / a['peak_gb']:.2f}x the peak memory of the same night on an empty store "
              f"(target ≤ 1.3x both); index load {per_row:.1f} µs per book row (target ≤ 30), peak "
              f"{runs['load']['peak_gb']} GB (target ≤ 3); a 1,000-row night {runs['tiny']['seconds']} s (target ≤ 4)")
    for store in (seeded, empty, tiny):
        _remove_store(store)
    results = {"machine": machine(), "date": dt.date.today().isoformat(), "args": vars(args), "runs": runs}
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "book.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
