"""One writer at a time per case store (SPEC 1: re-running a date is safe; issue 5: two runs of
the same date at once - the second refuses with a clear message).

The lock dies with its holder, so a killed run never leaves a stale lock behind:
- SQLite: an exclusive `flock` on `<store file>.lock` beside the database;
- PostgreSQL: a session advisory lock (`pg_try_advisory_lock`) on a connection held open.
Who holds it (command, business date, pid, host, since) is written next to the lock so the
second comer can say who it is waiting for. A second run of the *same* business date refuses at
once (two schedulers firing the same night is a mistake to report, not to queue); any other
writer (another night, `cases import`, `index load`) waits up to `wait_seconds`, then refuses.
"""

from __future__ import annotations

from typing import Any
import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import time
from pathlib import Path

import sqlalchemy as sa

from pipeline.errors import InputError

ADVISORY_KEY = 0x6375737464710001  # "custdq" + 1: the store-wide writer lock
POLL_SECONDS = 0.5  # the longest pause between two tries; the first tries come within milliseconds
FIRST_POLL_SECONDS = 0.002


def _holder(what: str, night: str | None) -> dict:
    return {"what": what, "night": night, "pid": os.getpid(), "host": socket.gethostname(),
            "since": dt.datetime.now().astimezone().isoformat(timespec="seconds")}


def _describe(h: dict | None) -> str:
    if not h:
        return "another custdq process"
    night = f" of {h['night']}" if h.get("night") else ""
    return f"`custdq {h.get('what')}`{night} (pid {h.get('pid')} on {h.get('host')}, since {h.get('since')})"


_HELD: set[int] = set()  # the file descriptors that hold a lock now (the lock file, the locking session's socket)


def close_inherited() -> None:
    """In a forked child (a chunk worker): close its copies of the lock's descriptors, so that
    only the writer itself holds the lock and a killed writer's lock goes with it."""
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


@contextlib.contextmanager
def store_lock(engine: sa.Engine, what: str, night: str | None = None, wait_seconds: float = 3600,
               notify=None):
    """Hold the store's writer lock for the block; refuse (InputError) when it cannot be had."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        with _file_lock(Path(database).with_name(Path(database).name + ".lock"), what, night, wait_seconds,
                        notify):
            yield
    else:
        with _advisory_lock(engine, what, night, wait_seconds, notify):
            yield


def _wait(try_once, read_holder, night, wait_seconds, notify):
    deadline = time.monotonic() + wait_seconds
    told = False
    pause = FIRST_POLL_SECONDS  # doubling: a web disposition waits milliseconds for another, a night minutes
    while not try_once():
        holder = read_holder()
        if night is not None and holder and holder.get("night") == night and holder.get("what") == "run":
            raise InputError(f"business date {night} is already being run by {_describe(holder)}; "
                             "this run stopped without changing anything")
        if time.monotonic() >= deadline:
            raise InputError(f"the case store is busy: {_describe(holder)} still holds it after "
                             f"{wait_seconds:g} s; nothing was changed")
        if not told and notify:
            notify(f"waiting for {_describe(holder)} to finish")
            told = True
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, POLL_SECONDS)


@contextlib.contextmanager
def _file_lock(path: Path, what, night, wait_seconds, notify):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    _HELD.add(fd)
    try:
        def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False

        def read_holder() -> dict | None:
            try:
                return json.loads(Path(path).read_text(encoding="utf-8") or "null")
            except (OSError, ValueError):
                return None

        _wait(try_once, read_holder, night, wait_seconds, notify)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder(what, night)).encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        _HELD.discard(fd)
        os.close(fd)


@contextlib.contextmanager
def _advisory_lock(engine: sa.Engine, what, night, wait_seconds, notify):
    from pipeline.store.schema import meta  # the holder is noted in custdq_meta

    with engine.connect() as conn:
        raw: Any = conn.connection.driver_connection
        socket = raw.fileno()
        # held from here until the lock is let go or refused: a descriptor number left in _HELD
        # after its socket closed would be reused (by a worker pool's pipes) and closed in a child
        _HELD.add(socket)
        try:
            _advisory_hold(engine, conn, what, night, wait_seconds, notify, meta)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    with engine.begin() as c:
                        c.execute(meta.delete().where(meta.c.key == "writer"))
                conn.execute(sa.text("select pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                conn.commit()
        finally:
            _HELD.discard(socket)


def _advisory_hold(engine: sa.Engine, conn: sa.Connection, what, night, wait_seconds, notify, meta) -> None:
    """Wait for the advisory lock on `conn` (InputError when refused), then note the holder."""

    def try_once() -> bool:
        got = conn.execute(sa.text("select pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar()
        conn.commit()
        return bool(got)

    def read_holder() -> dict | None:
        with engine.connect() as c:
            text = c.execute(sa.select(meta.c.value).where(meta.c.key == "writer")).scalar()
        return json.loads(text) if text else None

    _wait(try_once, read_holder, night, wait_seconds, notify)
    with engine.begin() as c:
        c.execute(meta.delete().where(meta.c.key == "writer"))
        c.execute(meta.insert().values(key="writer", value=json.dumps(_holder(what, night))[:256]))
