"""An SQLite store's files at rest are its owner's alone (issue 27, point 5): the store file,
its `-wal` and `-shm` and the writer lock's `.lock` are 0600, whatever the umask.

SQLite creates a database file 0644 (less the umask) and gives its `-wal`, `-shm` and
`-journal` files the database file's own mode, so the store file is created here, 0600 and
empty, before SQLite first opens it (SQLite takes an empty file for a new database). A store
whose files someone made readable to others (an older custdq, a copy, a restore) is tightened
to 0600 when its owner opens it, with one warning line saying so; opened by another user it
is left as it is, with a warning line too. The hash key file is 0600 as well
(pipeline.store.hashkey).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("custdq")
MODE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal", ".lock")  # SQLite's own beside the store, and the writer lock


def beside(path: Path) -> list[Path]:
    """The store file and the files beside it that hold its contents or its lock."""
    return [path, *(path.with_name(path.name + suffix) for suffix in SIDE_FILES)]


def create(path: Path) -> bool:
    """Create the store file, empty and 0600, unless it exists; True when this call made it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE))
    except FileExistsError:
        return False
    return True


def tighten(path: Path) -> None:
    """Make the store's files (those that exist) 0600 when they allow anyone else anything;
    one warning line either way (made 0600, or not ours to change)."""
    loose: list[tuple[Path, os.stat_result]] = []
    for p in beside(path):
        try:
            info = p.stat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
            loose.append((p, info))
    if not loose:
        return
    shown = ", ".join(f"{p.name} {stat.S_IMODE(info.st_mode):o}" for p, info in loose)
    if all(info.st_uid == os.geteuid() for _, info in loose):
        try:
            for p, _ in loose:
                p.chmod(MODE)
        except OSError as exc:
            log.warning("case store %s: readable by others (%s) and could not be made 0600 (%s)", path, shown,
                        exc.strerror)
            return
        log.warning("case store %s: was readable by others (%s); made 0600, its owner's only", path, shown)
    else:
        log.warning("case store %s: readable by others (%s); only its owner can make it 0600 "
                    "(chmod 600 %s*)", path, shown, path)
