"""`python -m tests.faulty ARGS...`: custdq ARGS, killed with SIGKILL right after the contact
index commits and before the case store does, the worst moment (tests/test_two_commits.py).

The kill is put in from outside, around the index's two commit methods, and only when this file
runs as the program (pytest imports it to collect doctests: that must change nothing). The
product itself has no switch that kills it."""

from __future__ import annotations

import functools
import os
import signal


def _killed_after(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        method(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    return wrapper


def main() -> None:
    from pipeline.book import database
    from pipeline.cli import cli

    database.IndexFile.commit = _killed_after(database.IndexFile.commit)  # type: ignore[method-assign]
    database.IndexFile.replace_with = _killed_after(database.IndexFile.replace_with)  # type: ignore[method-assign]
    cli(prog_name="custdq")


if __name__ == "__main__":
    main()
