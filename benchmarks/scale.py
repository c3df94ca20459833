"""python -m benchmarks.scale [--rows 1000000 10000000] [--runs 3] [--engines local spark] [--workers 1 2]
[--defect-rate 1.0]:
whole nights at scale (issues 7 and 16).

For each size, an extract generated with `custdq sample`, then `custdq run` on it in a fresh
process with a fresh SQLite store, `--runs` times; on the smallest size, the straightforward
baseline (benchmarks/baseline.py) in the same run, its runs alternating with custdq's. Wall
time, peak memory of the process tree (proportional set sizes from /proc, every 0.2 s) and custdq's stage
timings (from manifest.json). With `--engines local spark`, each night runs on both engines
(Spark in local mode on this machine, its JVM and Python workers counted in the memory); with
`--workers 1 2`, each local night runs with each number of chunk workers (the `workers` setting). A run whose tree passes `--memory-limit-gb` is stopped and
reported as such, so a size that does not fit cannot take the machine down.
Prints medians and the ratios issue 7 sets targets for; writes benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.__main__ import machine

CUSTDQ = str(Path(sys.executable).with_name("custdq"))
KEY = "custdq-benchmark-key-0123456789abcdef0123"


def _pss(pid: int) -> int:
    """Proportional set size: a page shared with a forked worker counts once across the two."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(root: int) -> int:
    """Memory of `root` and all its descendants (sum of their proportional set sizes)."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += _pss(pid)
        todo += [child for child, parent in parents.items() if parent == pid]
    return total


def measured(command: list[str], limit_bytes: int, env: dict) -> dict:
    """Run `command`; wall seconds, peak tree memory, exit status, whether the memory limit stopped
    it, and the last line it printed (for a stopped night: the stage it had reached)."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    peak, stopped = 0, False
    done = threading.Event()

    def watch():
        nonlocal peak, stopped
        while not done.is_set():
            now = tree_rss(proc.pid)
            peak = max(peak, now)
            if now > limit_bytes:
                stopped = True
                os.killpg(proc.pid, signal.SIGKILL)
                return
            done.wait(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    done.set()
    watcher.join()
    return {"seconds": round(time.perf_counter() - started, 2), "peak_gb": round(peak / 2**30, 2),
            "exit": proc.returncode, "stopped_at_limit": stopped,
            "stderr_tail": err.decode("utf-8", "replace").strip().splitlines()[-1:]}


def night(extract: Path, work: Path, limit: int, env: dict, engine: str = "local", workers: int | None = None) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    extra = []
    if workers is not None:
        (work / "workers.yaml").write_text(f"workers: {workers}\n", encoding="utf-8")
        extra = ["--config", str(work / "workers.yaml")]
    got = measured([CUSTDQ, "run", str(extract), "--business-date", "2026-11-20", "--db",
                    f"sqlite:///{work / 'cases.db'}", "--out", str(work / "out"), "--engine", engine, *extra],
                   limit, env)
    manifest = work / "out" / "manifest.json"
    if got["exit"] == 0 and manifest.exists():
        m = json.loads(manifest.read_text(encoding="utf-8"))
        got.update(stages=m["timings_seconds"], items=m["items"]["total"], rows=m["rows"]["rows_read"],
                   peak_mb_after_stage=m.get("peak_memory_mb_after_stage"))
    shutil.rmtree(work, ignore_errors=True)
    return got


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r["exit"] == 0]
    return round(statistics.median(values), 2) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--defect-rate", type=float, default=None,
                    help="custdq sample's share of rows given a defect (1.0: a bad night, nearly every row an item)")
    ap.add_argument("--memory-limit-gb", type=float, default=20.0)
    ap.add_argument("--no-baseline", action="store_true", help="skip the baseline (e.g. a second engine's run)")
    ap.add_argument("--engines", nargs="+", choices=["local", "spark"], default=["local"])
    ap.add_argument("--workers", type=int, nargs="+", help="chunk workers of the local engine to compare (default: "
                                                          "the setting's default, one per core)")
    ap.add_argument("--work", default="benchmarks/results/scale", help="extracts are kept here between runs")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CUSTDQ_HASH_KEY=KEY)
    limit = int(args.memory_limit_gb * 2**30)
    sizes = sorted(args.rows)
    setups = [(e, w) for e in args.engines for w in (args.workers if e == "local" and args.workers else [None])]
    label = {(e, w): e if w is None else f"{e} workers={w}" for e, w in setups}
    results: dict = {"machine": machine(), "sizes": {}, "baseline": []}
    for rows in sizes:
        rate = [] if args.defect_rate is None else ["--defect-rate", str(args.defect_rate)]
        extract = work / f"night-{rows}{'' if args.defect_rate is None else f'-defects-{args.defect_rate}'}.csv"
        if not extract.exists():
            gen = measured([CUSTDQ, "sample", "--rows", str(rows), "--seed", str(args.seed), "--out", str(extract),
                            *rate], limit, env)
            print(f"generated {rows:,} rows in {gen['seconds']} s ({gen['peak_gb']} GB)", flush=True)
        runs: dict[str, list] = {label[x]: [] for x in setups}
        for _ in range(args.runs):
            if rows == sizes[0] and not args.no_baseline:
                base = measured([sys.executable, "-m", "benchmarks.baseline", str(extract),
                                 str(work / "baseline-findings.csv")], limit, env)
                results["baseline"].append(base)
                print(f"  baseline {rows:,}: {base['seconds']} s, {base['peak_gb']} GB, exit {base['exit']}", flush=True)
            for engine, workers in setups:
                got = night(extract, work / "night", limit, env, engine, workers)
                runs[label[(engine, workers)]].append(got)
                print(f"  custdq run {label[(engine, workers)]} {rows:,}: {got['seconds']} s, {got['peak_gb']} GB, "
                      f"exit {got['exit']}{' (stopped at the memory limit)' if got['stopped_at_limit'] else ''} "
                      f"{got.get('stages') or got['stderr_tail']}", flush=True)
        results["sizes"][rows] = runs

    base_s = median(results["baseline"], "seconds")
    print(f"\nwhole nights, medians of {args.runs} runs, on {results['machine']}\n")
    print("| rows | engine | `custdq run` s | peak GB | items | vs baseline | vs smallest size |")
    print("|---|---|---|---|---|---|---|")
    for engine in label.values():
        first_s = median(results["sizes"][sizes[0]][engine], "seconds")
        for rows in sizes:
            runs = results["sizes"][rows][engine]
            s, gb = median(runs, "seconds"), median(runs, "peak_gb")
            items = next((r.get("items") for r in runs if r.get("items") is not None), None)
            if s is None:
                why = "stopped at the memory limit" if any(r["stopped_at_limit"] for r in runs) else "failed"
                print(f"| {rows:,} | {engine} | {why} | >{max(r['peak_gb'] for r in runs)} | | | |")
                continue
            speed = f"{base_s / s:.2f}x faster" if base_s and rows == sizes[0] else ""
            scale = f"{s / first_s:.2f}x the time" if first_s else ""
            print(f"| {rows:,} | {engine} | {s} | {gb} | {items:,} | {speed} | {scale} |")
    if base_s:
        print(f"| {sizes[0]:,} (baseline) | | {base_s} | {median(results['baseline'], 'peak_gb')} | | 1x | |")
    for engine in label.values():
        for rows in sizes:
            ok = [r for r in results["sizes"][rows][engine] if r["exit"] == 0]
            if ok:
                stages = {k: round(statistics.median(r["stages"][k] for r in ok), 2) for k in ok[0]["stages"]}
                print(f"\n{engine}, stages at {rows:,} rows (median s): {stages}")
                print(f"custdq's own peak memory (MB) when each stage ended, first run: {ok[0]['peak_mb_after_stage']}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "scale.json").write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
