"""No second history by mistake (issue 28, point 3): `custdq run` and `custdq index load` create
a case store where none exists (SPEC 1: the first night needs no other step), but not where the
store that is missing looks like a slip of the operator's hand. A new SQLite store is refused,
exit 2 and nothing created, when a custdq store that holds nights is *near* it:

- in the same folder (`--db sqlite:///store/case.db` typed for `store/cases.db`);
- in a folder beside the store's own when that does not exist and the two names differ by a
  slip (`/srv/custdg/cases.db` typed for `/srv/custdq/cases.db`: difflib's ratio 0.8 or more);
- for the default store `.custdq/cases.db`, in the `.custdq/` of a folder above the working
  folder (`custdq run` started in a subfolder of the one it is always run from).

Only a store whose history tonight would continue counts: its latest night is before tonight's
business date (the `index load`'s as-of date) by at most CONTINUES days. That is the slip's
mark (tomorrow's night run on the wrong path), and it leaves alone the stores people keep side
by side on purpose: a test store beside production replaying the same nights, one store per
scenario of a harness, an old store kept for reference.

`--new-store` says the operator means a new, separate history, and skips the check. A store
is recognised by its first bytes (an SQLite file) and its `custdq_meta` and `runs` tables, read
through a read-only connection; anything that cannot be read is not a store. PostgreSQL needs
no check: a mistyped database name is no database, and the server refuses the connection.
"""

from __future__ import annotations

import datetime as dt
import difflib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputError

SUFFIXES = (".db", ".sqlite", ".sqlite3")
CONTINUES = 31  # days: a store whose latest night is this close before tonight is a live history
SLIP = 0.8  # two folder names this alike are one name and a slip of the hand
MOST = 200  # folder entries looked at, at most, in any one folder (a guard, not a search)


@dataclass(frozen=True)
class Neighbour:
    path: Path
    nights: int
    latest: str


def history(path: Path) -> Neighbour | None:
    """The store at `path` when it is a custdq store with at least one night, else None."""
    try:
        if not path.is_file() or path.stat().st_size < 100:
            return None
        with path.open("rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                return None
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"custdq_meta", "runs"} <= names:
                return None
            nights, latest = conn.execute("SELECT count(*), max(business_date) FROM runs").fetchone()
        finally:
            conn.close()
    except (OSError, sqlite3.Error):
        return None
    return Neighbour(path.resolve(), int(nights), str(latest)) if nights else None


def _files(folder: Path) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())[:MOST]
    except OSError:
        return []
    return [p for p in entries if p.suffix.lower() in SUFFIXES]


def neighbours(path: Path, default: bool, night: dt.date, cwd: Path | None = None) -> list[Neighbour]:
    """The custdq stores near a store file that does not exist yet whose history a night of
    `night` would continue (module docstring)."""
    path = path.absolute()
    candidates: list[Path] = []
    if path.parent.is_dir():
        candidates += _files(path.parent)
    else:
        missing = next(p for p in [path.parent, *path.parents] if p.parent.is_dir() or p.parent == p)
        try:
            folders = [p for p in sorted(missing.parent.iterdir())[:MOST] if p.is_dir()]
        except OSError:
            folders = []
        near = [d for d in folders if difflib.SequenceMatcher(None, d.name, missing.name).ratio() >= SLIP]
        candidates += [f for d in near for f in _files(d)]
    if default:
        here = (cwd or Path.cwd()).absolute()
        candidates += [p / ".custdq" / "cases.db" for p in here.parents]
    found = [n for n in map(history, dict.fromkeys(c for c in candidates if c != path)) if n is not None]
    return [n for n in found if _continues(n.latest, night)]


def _continues(latest: str, night: dt.date) -> bool:
    try:
        last = dt.date.fromisoformat(latest)
    except ValueError:
        return False
    return last < night <= last + dt.timedelta(days=CONTINUES)


def refuse_second_history(path: Path, default: bool, night: dt.date, flag: str = "--new-store") -> None:
    """Exit 2 (InputError) when a new store at `path` would start a second history by mistake."""
    found = neighbours(path, default, night)
    if not found:
        return
    near = "; ".join(f"{n.path} ({n.nights} night{'s' if n.nights != 1 else ''}, the latest {n.latest})"
                     for n in found[:3])
    raise InputError(f"no case store at {path.absolute()}, but a custdq store with nights is near it: {near}. "
                     f"A mistyped --db or the wrong working folder? Nothing was created. Name the store you mean "
                     f"with --db, or add {flag} to start a new, separate history at {path.absolute()}")
