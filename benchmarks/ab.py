"""The same nights run by an earlier commit's code (A) and this checkout's (B), turn about, in one
run of this machine: a change's cost as ratios, not seconds (the machine's noise moves both).

    python -m benchmarks.ab --against cdb67c5 --rows 1000000 --runs 2
    python -m benchmarks.ab --against cdb67c5 --rows 1000 --runs 5

Each run is a whole `custdq run` of one synthetic extract (`custdq sample`, the roster with it)
into a fresh store, in its own process; A's code comes from a `git worktree` of `--against`
(removed at the end), put first on PYTHONPATH. Printed: each side's median seconds and the
night's peak memory (the manifest's `peak_memory_mb`, the main process), and B/A. The items of
both sides are compared too: a change that was meant to keep the night must give the same
items.csv.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "custdq-benchmark-key-0123456789abcdef0123456789"
GIT = shutil.which("git") or "/usr/bin/git"  # the worktree of side A


def custdq(code: Path, *args: str, cwd: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(code), CUSTDQ_HASH_KEY=KEY)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", "from pipeline.cli import cli; cli(prog_name='custdq')", *args],
                          env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: a blocking expectation failed, outputs written
        sys.exit(f"custdq {' '.join(args[:1])} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", required=True, help="the commit whose code is side A")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=2, help="nights per side, taken in turn A, B, A, B ...")
    ap.add_argument("--seed", type=int, default=30)
    ap.add_argument("--defect-rate", type=float, default=0.05, help="share of rows given a defect (1.0: the bad night)")
    ap.add_argument("--work", default=None, help="folder for the extract and the nights (default: a temporary one)")
    args = ap.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="custdq-ab-"))
    work.mkdir(parents=True, exist_ok=True)
    old = work / "code-a"
    if old.exists():
        subprocess.run([GIT, "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    subprocess.run([GIT, "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), args.against], check=True)
    try:
        extract, roster = work / "night.csv", work / "agents.csv"
        custdq(ROOT, "sample", "--rows", str(args.rows), "--seed", str(args.seed), "--out", str(extract),
               "--defect-rate", str(args.defect_rate),
               "--agents-out", str(roster), cwd=work)
        seconds: dict[str, list[float]] = {"A": [], "B": []}
        peaks: dict[str, list[float]] = {"A": [], "B": []}
        for n in range(args.runs):
            for side, code in (("A", old), ("B", ROOT)):
                run = work / f"{side}{n}"
                shutil.rmtree(run, ignore_errors=True)
                run.mkdir()
                seconds[side].append(custdq(code, "run", str(extract), "--business-date", "2026-11-20", "--agents",
                                            str(roster), "--db", f"sqlite:///{run / 'cases.db'}", "--out",
                                            str(run / "out"), "--quiet", cwd=run))
                manifest = json.loads((run / "out" / "manifest.json").read_text(encoding="utf-8"))
                peaks[side].append(float(manifest["peak_memory_mb"]))
                print(f"  {side} run {n + 1}: {seconds[side][-1]:.2f} s, {peaks[side][-1]:.0f} MB", flush=True)
        same = filecmp.cmp(work / "A0" / "out" / "items.csv", work / "B0" / "out" / "items.csv", shallow=False)
        a_s, b_s = statistics.median(seconds["A"]), statistics.median(seconds["B"])
        a_m, b_m = statistics.median(peaks["A"]), statistics.median(peaks["B"])
        print(f"{args.rows:,} rows (defect rate {args.defect_rate}), {args.runs} run(s) a side; A = {args.against}, B = this checkout")
        print(f"  seconds  A {a_s:8.2f}  B {b_s:8.2f}  B/A {b_s / a_s:.2f}x")
        print(f"  peak MB  A {a_m:8.0f}  B {b_m:8.0f}  B/A {b_m / a_m:.2f}x")
        print(f"  items.csv {'identical' if same else 'DIFFERENT'}")
    finally:
        subprocess.run([GIT, "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
