"""Processes a command forks die with it, whatever kills it (issue 27, point 6).

A forked child outlives its parent by default: when the main `custdq run` process is killed
with SIGKILL (an operator, the kernel's out-of-memory killer), nothing runs its clean-up, and
its chunk workers waited on their queue for ever, orphaned, holding memory and the store's
files. `bind` is the first thing a child of custdq does (the chunk workers' and hashkey's pool
initialisers): from then on the child dies with SIGKILL as soon as its parent is gone.

- On Linux, `prctl(PR_SET_PDEATHSIG, SIGKILL)`: the kernel kills the child when the parent
  ends. The kernel watches the *thread* that forked the child, not the whole process: a pool
  must be created, and its workers forked, by a thread that outlives the pool (custdq's pools
  are made and closed by the thread that runs the night).
- The parent may die between the fork and the prctl call (the signal would then never come):
  right after it, the child compares `os.getppid()` with the parent's pid taken before the
  fork, and kills itself when they differ (an orphan has been handed to another process).
- Where prctl is missing (not Linux), a daemon thread in the child looks at `os.getppid()`
  every WATCH_SECONDS and kills the child when the parent has changed.

Spark's own processes need none of this: the JVM that PySpark starts reads its standard input
and exits when the driver's end of that pipe closes, which a killed driver's does (tested in
tests/test_killed_night.py), and PySpark's Python daemon exits with the JVM.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_SECONDS = 0.2  # the fallback's look at the parent: a dead parent's child ends within this


def bind(parent: int, prctl: bool = True) -> str:
    """In a child forked by process `parent` (its pid, taken before the fork): end this process
    with SIGKILL when the parent ends. Returns how: "prctl" (Linux) or "watch" (a thread).
    `prctl=False` uses the thread where prctl exists too (for tests)."""
    how = "prctl" if prctl and _pdeathsig(signal.SIGKILL) else "watch"
    if how == "watch":
        threading.Thread(target=_watch, args=(parent,), name="custdq-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent ended before the line above: nobody will signal us
        _die()
    return how


def _pdeathsig(sig: int) -> bool:
    """Ask the kernel for `sig` when the parent ends; False where prctl does not exist."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(WATCH_SECONDS)
    _die()


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
