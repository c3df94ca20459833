"""A night killed with SIGKILL leaves nothing running (issue 27, point 6): real `custdq run`
processes on a generated extract, the main process killed while its chunk workers read and
check the extract, in the contact index (the workers gone), and while it writes its outputs, on
SQLite and PostgreSQL. Every process of the night (the main process's descendants, seen by
walking /proc while it ran, and its process group; among them the expectations gate's own
process) is gone 2 s after the kill; the store's
writer lock is free; the same night run again ends exactly like an uninterrupted one (items,
manifest, the whole store). Also: hashkey's forked helper dies with the process that forked it,
`pipeline.children.bind` kills a child whose parent is gone (prctl, the watcher thread, the
parent that died before the child bound itself), on `--engine spark` the JVM and PySpark's
Python workers end with a killed driver, taking the night's staged rows with them, and a killed
`custdq serve` takes its worker processes with it."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.helpers import VOLATILE, postgres_url, read_outputs, stable
from tests.storedump import differences, dump

DATE = "2026-11-20"
ROWS = 12000
GONE_SECONDS = 2.0  # the bound: nothing of a killed night is alive this long after the kill
ROOT = Path(__file__).resolve().parent.parent
CUSTDQ = str(Path(sys.executable).with_name("custdq"))
KEY = "custdq-killed-night-key-0123456789abcdef"  # every night of the module (the fixtures' too)


# -- the process table ---------------------------------------------------------------------------

def _stat(pid: int) -> tuple[int, int, str, int] | None:
    """(parent, process group, state, start time) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[2]), fields[0], int(fields[19])


def _cpu_seconds(processes: set[tuple[int, int]]) -> float:
    total = 0
    for pid, _ in processes:
        try:
            total += int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11])
        except (OSError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _table() -> dict[int, tuple[int, int, str, int]]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _stat(int(entry.name))
            if info is not None:
                out[int(entry.name)] = info
    return out


def _children(pid: int) -> list[int]:
    """The children of a process, each thread's (Linux's /proc/PID/task/TID/children)."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                found += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    except OSError:
        pass
    return found


def descendants(root: int) -> set[tuple[int, int]]:
    """(pid, start time) of every living process below `root` (a zombie is dead: it holds
    neither memory nor files)."""
    found, todo = set(), [root]
    while todo:
        for pid in _children(todo.pop()):
            info = _stat(pid)
            if info is not None and info[2] not in "ZX":
                found.add((pid, info[3]))
                todo.append(pid)
    return found


def living(seen: set[tuple[int, int]], group: int) -> list[int]:
    """Which of the processes `seen` (pid, start time) still live, and any living process of
    process group `group` (a child forked after the last look)."""
    alive = []
    for pid, (_, pgid, state, start) in _table().items():
        if state not in "ZX" and ((pid, start) in seen or pgid == group):
            alive.append(pid)
    return sorted(alive)


def gone_within(seen: set[tuple[int, int]], group: int, seconds: float) -> list[int]:
    """Wait up to `seconds` for all of them to end; returns those still alive then (the test
    kills them after failing: they are its own processes)."""
    deadline = time.monotonic() + seconds
    while (alive := living(seen, group)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return alive


def killed(proc: subprocess.Popen, seen: set[tuple[int, int]], group: int) -> list[int]:
    """SIGKILL `proc`; the processes of `seen` (or of `group`) still alive GONE_SECONDS later."""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    return gone_within(seen, group, GONE_SECONDS)


def reap(seen: set[tuple[int, int]], group: int) -> None:
    """Kill what is left of `seen` (the test's own processes) once the test has looked."""
    for pid in living(seen, group):
        os.kill(pid, signal.SIGKILL)


class Night:
    """A `custdq run` in its own process group, its stderr read line by line as it comes."""

    def __init__(self, extract: Path, db: str, out: Path, config: Path, *more: str, env: dict | None = None):
        env = dict(os.environ, PYTHONPATH=str(ROOT), CUSTDQ_HASH_KEY=KEY, **(env or {}))
        env.pop("CUSTDQ_DEBUG", None)
        self.proc = subprocess.Popen([CUSTDQ, "run", str(extract), "--business-date", DATE, "--db", db, "--out",
                                      str(out), "--config", str(config), *more], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self.lines: list[str] = []
        self.seen: set[tuple[int, int]] = set()
        self.gates: set[int] = set()  # the pids of the gate processes (pipeline.night.gatehost) seen
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for raw in self.proc.stderr:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def kill_when(self, ready, timeout: float = 240) -> list[str]:
        """Watch the night until `ready(lines, children)` holds, then SIGKILL the main process;
        returns the stderr lines seen when it was decided. Fails when the night ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            kids = descendants(self.proc.pid)
            self.seen |= kids
            self.gates |= {pid for pid, _ in kids if _gate_host(pid)}
            lines = list(self.lines)
            if ready(lines, kids):
                self.seen |= descendants(self.proc.pid)
                self.proc.send_signal(signal.SIGKILL)
                assert self.proc.wait(timeout=30) == -signal.SIGKILL
                return lines
            time.sleep(0.02)
        self.proc.kill()
        pytest.fail(f"the night ended (exit {self.proc.poll()}) before the moment came: {self.lines[-5:]}")

    def finish(self) -> int:
        code = self.proc.wait(timeout=600)
        self.reader.join(timeout=10)
        return code


def _stages_begun(lines: list[str]) -> list[str]:
    return [line.split()[3] for line in lines if line.endswith(" ...") and len(line.split()) == 5]


# -- the night --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def extract(tmp_path_factory) -> Path:
    """A generated extract with many findings (the outputs take a while)."""
    from pipeline.sample import write_sample

    path = tmp_path_factory.mktemp("killed") / "night.csv"
    write_sample(ROWS, 27, str(path), defect_rate=0.3)
    return path


@pytest.fixture(scope="module")
def night(extract, tmp_path_factory):
    """A config with two chunk workers and small chunks, and the uninterrupted night's outputs
    and store."""
    folder = tmp_path_factory.mktemp("reference")
    config = folder / "night.yaml"
    config.write_text("chunk_rows: 8000\nworkers: 2\n", encoding="utf-8")
    db = f"sqlite:///{folder / 'cases.db'}"
    done = Night(extract, db, folder / "out", config)
    assert done.finish() == 0, done.lines[-5:]
    return extract, config, folder / "out", db


def _reading(lines, kids):
    return len(kids) >= 2 and any(line.endswith("rows read and checked") for line in lines)


def _gate_host(pid: int) -> bool:
    """Whether `pid` is the night's expectations gate process (pipeline.night.gatehost)."""
    try:
        return b"pipeline.night.gatehost" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _contact_index(lines, kids):  # the chunk loop over, its workers gone (the gate's process lives on)
    return f"custdq: {ROWS:,} rows read and checked" in lines and not [p for p, _ in kids if not _gate_host(p)]


def _outputs(lines, kids):
    return "outputs" in _stages_begun(lines)


MOMENTS = {"reading": (_reading, "ingest"), "contact index": (_contact_index, "ingest"), "outputs": (_outputs, "outputs")}


def _lock_is_free(db: str) -> bool:
    if db.startswith("sqlite"):
        fd = os.open(db[len("sqlite:///"):] + ".lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
    from pipeline.store.lock import ADVISORY_KEY

    engine = sa.create_engine(db.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            got = conn.execute(sa.text("select pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar()
            conn.execute(sa.text("select pg_advisory_unlock_all()"))
            return bool(got)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_killed_night_leaves_nothing_running_and_runs_again(night, tmp_path, backend):
    """The same night killed at each moment in turn (each run after the one killed before it),
    then run to its end."""
    extract, config, ref_out, ref_db = night
    db = f"sqlite:///{tmp_path / 'cases.db'}" if backend == "sqlite" else postgres_url()
    out = tmp_path / "out"
    for moment, (ready, last_stage) in MOMENTS.items():
        victim = Night(extract, db, out, config)
        try:
            lines = victim.kill_when(ready)
            alive = gone_within(victim.seen, victim.proc.pid, GONE_SECONDS)
        finally:
            for pid in living(victim.seen, victim.proc.pid):
                os.kill(pid, signal.SIGKILL)  # a failed test leaves nothing running either
        assert victim.seen, f"{moment}: the night had no child process to watch"
        if moment == "reading":  # the gate's process was among them, and is gone too
            assert victim.gates, victim.seen
        assert not alive, f"{moment}: alive {GONE_SECONDS} s after the main process was killed: {alive}"
        assert _stages_begun(lines)[-1] == last_stage, (moment, lines)  # the kill landed at the moment meant
        assert not (out / "manifest.json").exists(), moment
        assert _lock_is_free(db), moment

    again = Night(extract, db, out, config)
    assert again.finish() == 0, again.lines[-5:]
    items, quarantine, manifest = read_outputs(out)
    ref_items, ref_quarantine, ref_manifest = read_outputs(ref_out)
    pd.testing.assert_frame_equal(items, ref_items)
    pd.testing.assert_frame_equal(quarantine, ref_quarantine)
    for key in ref_manifest.keys() - VOLATILE:
        assert stable(manifest[key]) == stable(ref_manifest[key]), key
    assert not manifest["replaced_earlier_run"]  # the killed runs left nothing to replace
    assert differences(dump(db), dump(ref_db)) == []


# -- hashkey's helper, pipeline.children ----------------------------------------------------------

HASHING = """
import sys, pandas as pd
from pipeline.store import hashkey
values = pd.Series([f"+86139{i:08d}" for i in range(4_000_000)])
print("hashing", flush=True)
hashkey.keyed(b"k" * 32, values)
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="hashkey forks its helper only with two cores or more")
def test_hashkeys_forked_helper_dies_with_the_process_that_forked_it():
    """hashkey hashes a long list on two cores (a forked multiprocessing.Pool): its helper is
    killed with the process that forked it, in the middle of its half of the work (which would
    take it seconds more: without the binding it went on to the end, then found nobody to
    give its result)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", HASHING], env=env, stdout=subprocess.PIPE,
                            start_new_session=True)
    seen: set[tuple[int, int]] = set()
    try:
        assert proc.stdout.readline().strip() == b"hashing"
        deadline = time.monotonic() + 60
        while not seen and time.monotonic() < deadline and proc.poll() is None:
            seen = descendants(proc.pid)
            time.sleep(0.01)
        assert seen, "the helper never started"
        while time.monotonic() < deadline and _cpu_seconds(seen) < 0.5:  # it is hashing its half
            time.sleep(0.01)
        alive = killed(proc, seen, proc.pid)
    finally:
        reap(seen, proc.pid)
    assert not alive


def _bound_child(expected: str, prctl: bool) -> str:
    """A program that forks a child which binds itself to `expected` (an expression; `parent`
    is the real parent's pid), says how and its pid, and sleeps; the parent sleeps too, or with
    `expected` not its own pid, waits for the child and prints its exit status."""
    return f"""
import os, time
from pipeline import children
parent = os.getpid()
pid = os.fork()
if pid == 0:
    how = children.bind({expected}, prctl={prctl})
    print(how, os.getpid(), flush=True)
    time.sleep(120)
    os._exit(0)
if {expected} == parent:
    time.sleep(120)
else:
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


@pytest.mark.parametrize("prctl", [True, False])
def test_a_bound_child_dies_with_its_parent(prctl):
    """The kernel's parent-death signal (Linux) or the watcher thread (elsewhere; forced here)."""
    proc = subprocess.Popen([sys.executable, "-c", _bound_child("parent", prctl)],
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                            start_new_session=True)
    seen: set[tuple[int, int]] = set()
    try:
        how, child = proc.stdout.readline().split()
        info = _stat(int(child))
        assert info is not None and info[2] not in "ZX"
        seen = {(int(child), info[3])}
        assert how.decode() == ("prctl" if prctl and sys.platform.startswith("linux") else "watch")
        alive = killed(proc, seen, proc.pid)
    finally:
        reap(seen, proc.pid)
        if proc.poll() is None:
            proc.kill()
    assert not alive


def test_a_child_whose_parent_died_before_it_bound_itself_ends_at_once():
    """The race: the parent was gone between the fork and prctl (the child then has another
    parent than the one that forked it: here -1, which no parent is)."""
    done = subprocess.run([sys.executable, "-c", _bound_child("-1", True)],
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, timeout=60)
    assert done.stdout.decode().split() == [str(-signal.SIGKILL)], done


# -- custdq serve ----------------------------------------------------------------------------------

def test_a_killed_server_takes_its_worker_processes_with_it(tmp_path, invoke):
    """`custdq serve` with `web.workers: 2` (uvicorn's supervisor and its spawned workers): the
    supervisor killed, its workers end too and the port is free again (they used to go on
    serving it, orphaned)."""
    from tests.helpers import row, write_csv
    from tests.webserve import Server

    db = f"sqlite:///{tmp_path / 'cases.db'}"
    night = invoke("run", str(write_csv(tmp_path / "n.csv", [row()])), "--business-date", DATE, "--db", db,
                   "--out", str(tmp_path / "out"), "--quiet")
    assert night.exit_code == 0, night.output
    config = tmp_path / "serve.yaml"
    config.write_text("web:\n  workers: 2\n", encoding="utf-8")
    server = Server(db, tmp_path, "--config", str(config))
    seen = descendants(server.proc.pid)
    try:
        assert len([pid for pid, _ in seen if _name(pid).startswith("python")]) >= 2, seen
        alive = killed(server.proc, seen, -1)
    finally:
        reap(seen, -1)
    assert not alive
    import socket

    with socket.socket() as probe:  # nobody listens on the port any more (connections in TIME_WAIT may stay)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", server.port))
        probe.listen()


# -- Spark ---------------------------------------------------------------------------------------

SPARK_GONE_SECONDS = 10.0


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java 17 and no java is on PATH")
def test_a_killed_spark_driver_takes_the_jvm_and_the_staged_rows_with_it(extract, tmp_path):
    """`--engine spark` in local mode: the driver killed while its tasks run. The JVM PySpark
    started reads its standard input and exits when the driver's end of that pipe closes,
    running Spark's shutdown hooks (they delete its temporary folders, and the night's staged
    rows with them); PySpark's Python daemon and workers end with the JVM. Measured: 0.8-1.1 s
    on an idle machine, 4.3 s with both cores saturated, so the bound here is
    SPARK_GONE_SECONDS (a JVM killed outright would leave the staged rows behind)."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed (pip install 'custdq[spark]')")
    tmp = tmp_path / "tmp"  # Spark's temporary folders and Python's, to look into afterwards
    tmp.mkdir()
    config = tmp_path / "spark.yaml"
    config.write_text(f"chunk_rows: 2000\nspark: {{master: 'local[2]', conf: {{spark.local.dir: '{tmp}'}}}}\n",
                      encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    victim = Night(extract, db, tmp_path / "out", config, "--engine", "spark", env={"TMPDIR": str(tmp)})

    def tasks_running(lines, kids):  # the JVM and at least one Python worker of a task
        names = [_name(pid) for pid, _ in kids]
        return "java" in names and any("rows staged for Spark" in line for line in lines) \
            and sum(n.startswith("python") for n in names) >= 2

    try:
        victim.kill_when(tasks_running)
        alive = gone_within(victim.seen, victim.proc.pid, SPARK_GONE_SECONDS)
    finally:
        reap(victim.seen, victim.proc.pid)
    assert not alive
    assert _lock_is_free(db)
    assert not list(tmp.rglob("custdq-spark-*"))  # the staged rows hold the extract in plaintext
