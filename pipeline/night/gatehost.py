"""The expectations gate in a process of its own, started with the night (issue 29: a small
night's fixed costs).

Great Expectations takes ~2.5 s of CPU to import. In the night's own process that import held
the GIL against the night's stages (a background thread) or waited at the gate; here it runs on
the other core from the night's first second, and the gate itself runs while the night writes
its outputs. The night hands the gate its inputs (small frames of figures and distinct values,
the suite's settings, the output folder) as one pickle on the host's standard input and reads
the `GateResult` back from its standard output.

The host is custdq's own child: it dies with the night (pipeline.children.bind), and it ends
when the night closes its standard input without a job. Anything that goes wrong in it (it
cannot start, Great Expectations fails to import, the gate raises) makes the night run the gate
in its own process instead, as before, so a failure is reported by the same code and words.

Run as `python -m pipeline.night.gatehost PARENT_PID`.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the host's own process starts without importing the library
    from pipeline.settings import Settings

ENV = {"GX_ANALYTICS_ENABLED": "false"}  # no usage statistics leave the machine


class GateHost:
    """The parent's handle: `send` the gate's inputs, `result` waits for its answer (None when the
    host failed: run the gate here), `close` ends the host whatever state it is in."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [sys.executable, "-m", "pipeline.night.gatehost", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, **ENV}, close_fds=True)
        self.sent = False

    def send(self, *job) -> bool:
        """Hand the host the gate's inputs; False when it is gone."""
        if self.proc is None or self.proc.stdin is None:
            return False
        try:
            pickle.dump(job, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.close()
        except (OSError, pickle.PicklingError):
            self.close()
            return False
        self.sent = True
        return True

    def result(self):
        """The host's `GateResult`, or None when it failed (the night runs the gate itself)."""
        if self.proc is None or not self.sent or self.proc.stdout is None:
            return None
        try:
            answer = pickle.load(self.proc.stdout)  # noqa: S301 - our own child's pipe
        except (OSError, EOFError, pickle.UnpicklingError):
            answer = None
        self.close()
        return answer

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:
                    pass
        if proc.poll() is None:
            proc.kill()
        proc.wait()


_EARLY: GateHost | None = None
_SPENT = False  # a night has run in this process: later ones import GX here once (cheaper than a host each)


def early() -> GateHost | None:
    """Start a host before the night's own imports and settings, for the first night of this
    process (`custdq run` calls this first thing: Great Expectations' import is the longest
    thing a small night waits for). A process that runs night after night (tests, a host that
    embeds custdq) imports GX itself from its second night on, once. The night takes the host
    over in `start`; the caller closes it when the night did not (a no-op otherwise)."""
    global _EARLY
    if _EARLY is None and not _SPENT and "great_expectations" not in sys.modules:
        try:
            _EARLY = GateHost()
        except OSError:
            _EARLY = None
    return _EARLY


def start(cfg: Settings) -> GateHost | None:
    """Tonight's host: the one `early` started, when the gate is on and this is the process's
    first night; None otherwise (the gate then runs in the night's process)."""
    global _EARLY, _SPENT
    host, _EARLY = _EARLY, None
    first, _SPENT = not _SPENT, True
    if host is not None and (not first or not cfg.expectations.enabled
                             or "great_expectations" in sys.modules):
        host.close()
        host = None
    return host


def _serve(parent: int) -> int:
    from pipeline import children

    children.bind(parent)
    answer_to = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints goes where stderr goes, never into the answer
    sys.modules["pyspark"] = None  # type: ignore[assignment] # Great Expectations' optional Spark
    # support is not needed here: without it its import takes 0.4 s less, and PySpark's own import
    # cannot end the process (pipeline.night.expectations.import_gx)
    from pipeline.night import expectations

    try:
        expectations.import_gx()
    except Exception:  # noqa: BLE001 - the night runs the gate itself and reports what is wrong
        pickle.dump(None, answer_to)
        return 1
    try:
        job = pickle.load(sys.stdin.buffer)  # noqa: S301 - the parent's pipe (bind: our parent)
    except (EOFError, OSError):
        return 0  # the night ended, or needs no gate
    figures, distinct, reference, cfg, out = job
    try:
        answer = expectations.run_gate(figures, distinct, reference, cfg, Path(out))
    except Exception:  # noqa: BLE001 - as above
        answer = None
    pickle.dump(answer, answer_to, protocol=pickle.HIGHEST_PROTOCOL)
    answer_to.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(_serve(int(sys.argv[1])))
