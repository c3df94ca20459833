"""Chunks checked by worker processes (issue 16, `workers`): the same night with one process and
with two gives byte-identical items and quarantine files, the same worklist cells and the same
case store (tests/storedump.py), over two nights with a roster and small chunks; and a bad
`workers` setting is one clear line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from openpyxl import load_workbook

from pipeline.sample import write_sample
from tests.storedump import differences, dump


def _cells(folder: Path) -> dict[str, list]:
    return {p.name: [list(r) for r in load_workbook(p, read_only=True).active.iter_rows(values_only=True)]
            for p in sorted((folder / "worklists").glob("*.xlsx"))}


@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("nights")
    first = folder / "n1.csv"
    write_sample(1500, 5, str(first), agents_out=str(folder / "agents.csv"))
    second = folder / "n2.csv"
    write_sample(1200, 6, str(second), business_date=pd.Timestamp("2026-11-23").date(), after=[str(first)])
    return first, second, folder / "agents.csv"


@pytest.mark.parametrize("chunk_rows", [97, 100000])
def test_two_workers_make_the_night_one_process_makes(invoke, tmp_path, nights, chunk_rows):
    first, second, agents = nights
    outs = {}
    for workers in (1, 2):
        config = tmp_path / f"w{workers}.yaml"
        config.write_text(f"chunk_rows: {chunk_rows}\nworkers: {workers}\n", encoding="utf-8")
        db = f"sqlite:///{tmp_path / f'w{workers}' / 'cases.db'}"
        for date, extract in (("2026-11-20", first), ("2026-11-23", second)):
            out = tmp_path / f"w{workers}" / date
            result = invoke("run", str(extract), "--business-date", date, "--agents", str(agents), "--db", db,
                            "--out", str(out), "--config", str(config), "--quiet")
            assert result.exit_code == 0, result.output
        outs[workers] = (tmp_path / f"w{workers}", db)
    for date in ("2026-11-20", "2026-11-23"):
        a, b = outs[1][0] / date, outs[2][0] / date
        assert (a / "items.csv").read_bytes() == (b / "items.csv").read_bytes()
        assert (a / "quarantine.csv").read_bytes() == (b / "quarantine.csv").read_bytes()
        assert _cells(a) == _cells(b)
    assert len(pd.read_csv(outs[1][0] / "2026-11-23" / "items.csv")) > 50
    assert differences(dump(outs[1][1]), dump(outs[2][1])) == []


def test_a_bad_workers_setting_is_one_line(invoke, tmp_path, nights):
    config = tmp_path / "c.yaml"
    config.write_text("workers: 0\n", encoding="utf-8")
    result = invoke("run", str(nights[0]), "--business-date", "2026-11-20", "--config", str(config), "--quiet",
                    "--out", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert result.output.strip() == f"custdq: error: {config}: workers: must be a whole number of processes, " \
                                    "at least 1, or null (got 0)"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def test_a_killed_worker_ends_the_night_with_one_line_and_keeps_nothing(tmp_path):
    """A worker killed in the middle of the chunk loop (as the out-of-memory killer would): the
    night stops at once with exit 1 and one line, and the store holds no run of it. (With
    multiprocessing.Pool the night waited for the dead worker's chunk for ever.)"""
    import os
    import signal
    import subprocess
    import sys
    import time

    import sqlalchemy as sa

    extract = tmp_path / "night.csv"
    write_sample(60000, 9, str(extract))
    config = tmp_path / "w.yaml"
    config.write_text("chunk_rows: 4000\nworkers: 2\nexpectations:\n  enabled: false\n", encoding="utf-8")
    db = tmp_path / "cases.db"
    custdq = str(Path(sys.executable).with_name("custdq"))
    env = dict(os.environ, CUSTDQ_HASH_KEY="custdq-test-key-0123456789abcdef0123456789")
    proc = subprocess.Popen([custdq, "run", str(extract), "--business-date", "2026-11-20", "--db", f"sqlite:///{db}",
                             "--out", str(tmp_path / "out"), "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, victim = time.monotonic() + 120, None
    while victim is None and time.monotonic() < deadline and proc.poll() is None:
        kids = _children(proc.pid)
        if len(kids) >= 2:
            time.sleep(0.5)  # a few chunks in
            victim = kids[0]
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.02)
    assert victim is not None, "the night never had two chunk workers"
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the night waited for its dead worker")
    lines = [ln for ln in err.decode("utf-8").splitlines() if ln.strip()]
    assert proc.returncode == 1, lines
    assert "chunk worker process ended in the middle of the night" in lines[-1]
    assert "Traceback" not in err.decode("utf-8")
    assert not _children(proc.pid)
    if db.exists():
        with sa.create_engine(f"sqlite:///{db}").connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            assert "runs" not in tables or conn.execute(sa.text("select count(*) from runs")).scalar() == 0
    assert not (tmp_path / "out" / "manifest.json").exists()


def _forks_in_a_worker() -> bool:
    import multiprocessing

    from pipeline.store import hashkey

    asked, real = [], multiprocessing.get_context
    multiprocessing.get_context = lambda method: asked.append(method) or real(method)  # this worker's only
    hashkey._digest_parallel(b"k" * 32, [b"%d" % i for i in range(hashkey.PARALLEL_FROM)])
    return bool(asked)


def test_a_chunk_worker_hashes_on_its_own_core():
    """hashkey forks a helper for a long list only in the main process: a chunk worker's core
    is its share (the workers are not daemons, which the old test looked for)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        assert pool.submit(_forks_in_a_worker).result(timeout=120) is False
