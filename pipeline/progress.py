"""Progress on stderr: a bar on a terminal, plain timestamped lines otherwise (SPEC 1).

Only stage names, counts and timings are printed: never a value from the data.
"""

from __future__ import annotations

import ctypes
import resource
import sys
import time
from contextlib import contextmanager

import pyarrow as pa


def peak_memory_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def use_system_allocator() -> None:
    """Arrow allocates through the C library's malloc, not its own pool: a night of many chunks
    then gives each chunk's memory back (`release`) instead of keeping it (with mimalloc, a
    1M-row night kept ~750 MB more resident at the end of its chunks; measured for issue 7)."""
    try:
        pa.set_memory_pool(pa.system_memory_pool())
    except (pa.ArrowException, AttributeError):
        pass


def release() -> None:
    """Hand freed heap memory back to the operating system (glibc's malloc_trim; elsewhere a no-op)."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if isinstance(_LIBC, ctypes.CDLL):
        _LIBC.malloc_trim(0)


_LIBC: ctypes.CDLL | bool | None = None  # None: not looked for yet; False: not glibc


def memory_mb() -> float | None:
    """The process's resident memory now (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return round(int(fh.read().split()[1]) * resource.getpagesize() / 2**20, 1)
    except (OSError, IndexError, ValueError):
        return None


class Stages:
    def __init__(self, names: list[str], stream=None, quiet: bool = False):
        self.names = names
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.timings: dict[str, float] = {}
        self.peaks: dict[str, float] = {}  # the process's peak memory (MB) when each stage ended
        self.resident: dict[str, float | None] = {}  # and its resident memory then (what the stage left held)

    def _say(self, text: str, end: str = "\n") -> None:
        if not self.quiet:
            print(text, end=end, file=self.stream, flush=True)

    @contextmanager
    def stage(self, name: str):
        """Time a stage. A stage entered again (the row-level stages run once per chunk) adds to
        its time silently: progress lines name each stage once."""
        if name in self.timings:
            started = time.perf_counter()
            yield
            self.timings[name] = round(self.timings[name] + time.perf_counter() - started, 3)
            self.peaks[name] = peak_memory_mb()
            self.resident[name] = memory_mb()
            return
        n = self.names.index(name) + 1 if name in self.names else len(self.timings) + 1
        total = len(self.names)
        if self.tty:
            bar = "#" * (n - 1) + "." * (total - n + 1)
            self._say(f"\rcustdq [{bar}] {n}/{total} {name:<12}", end="")
        else:
            self._say(f"custdq: {time.strftime('%H:%M:%S')} {n}/{total} {name} ...")
        started = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - started, 3)
        self.peaks[name] = peak_memory_mb()
        self.resident[name] = memory_mb()
        if not self.tty:
            self._say(f"custdq: {time.strftime('%H:%M:%S')} {n}/{total} {name} done in {self.timings[name]:.2f}s")
        elif n == total:
            self._say(f"\rcustdq [{'#' * total}] {total}/{total} done{' ' * 12}")

    def add(self, timings: dict[str, float]) -> None:
        """Add seconds spent elsewhere (a chunk worker) to the stages they were spent in."""
        for name, seconds in timings.items():
            self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 3)

    def note(self, text: str) -> None:
        if self.tty:
            self._say("")
        self._say(f"custdq: {text}")
