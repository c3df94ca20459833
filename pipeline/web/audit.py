"""The access log (SPEC 8): every request that shows or changes items, the report or users, one
row each: who, when, method and path, the item ids shown or changed, the client's address and
the status code; a login also the user name it tried (`target`, masked), whether it succeeded
or not, so an attack on one account shows. The app only ever appends to it; `compliance` reads it (web, API and
`custdq audit list`). A path's query string is kept as sent: no query parameter carries
personal data (filters are rule codes, branches, states and dates)."""

from __future__ import annotations

import datetime as dt
import queue
import threading
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa

from checks.masking import mask_text
from pipeline.store.schema import access_log

def _row(at: str, user: str | None, method: str, path: str, item_ids: list[str], client: str | None,
         status: int, target: str | None = None) -> dict:
    return {"at": at, "user_name": user, "method": method, "path": path[:2000],
            "item_ids": ",".join(item_ids) or None,  # all of them, an export's too: who looked at which record
            "client": client, "status": status, "target": target[:200] if target else None}


def record(conn: sa.Connection, at: str, user: str | None, method: str, path: str, item_ids: list[str],
           client: str | None, status: int, target: str | None = None) -> None:
    conn.execute(access_log.insert().values(_row(at, user, method, path, item_ids, client, status, target)))


@dataclass
class _Pending:
    row: dict
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class Recorder:
    """The app's one writer of the access log: requests hand their rows over and wait until the
    transaction holding them has committed (group commit), so no answer leaves before its look
    is on record, and concurrent requests do not queue one by one for SQLite's write lock."""

    BATCH = 500

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.queue: queue.Queue[_Pending | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="custdq-access-log", daemon=True)
        self.thread.start()

    def record(self, at: str, user: str | None, method: str, path: str, item_ids: list[str], client: str | None,
               status: int, target: str | None = None) -> None:
        pending = _Pending(_row(at, user, method, path, item_ids, client, status, target))
        self.queue.put(pending)
        if not pending.done.wait(timeout=600) or pending.error is not None:
            raise RuntimeError("the access log could not be written") from pending.error

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.BATCH:
                try:
                    more = self.queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.queue.put(None)  # finish this batch, then stop
                    break
                batch.append(more)
            try:
                with self.engine.begin() as conn:
                    conn.execute(access_log.insert(), [p.row for p in batch])
            except BaseException as exc:  # every request of the batch learns it
                for p in batch:
                    p.error = exc
            for p in batch:
                p.done.set()

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=30)


COLUMNS = ["id", "at", "user_name", "method", "path", "item_ids", "client", "status", "target"]


def _where(q, user: str | None, since: dt.date | None):
    if user:  # the user's requests, and the logins that tried their name (stored masked)
        q = q.where(sa.or_(access_log.c.user_name == user, access_log.c.target == mask_text(user.strip())))
    if since:
        q = q.where(access_log.c.at >= since.isoformat())
    return q


def count(conn: sa.Connection, user: str | None = None, since: dt.date | None = None) -> int:
    return int(conn.execute(_where(sa.select(sa.func.count()).select_from(access_log), user, since)).scalar_one())


def entries(conn: sa.Connection, user: str | None = None, since: dt.date | None = None,
            limit: int | None = None, offset: int = 0, newest_first: bool = False) -> pd.DataFrame:
    """The access log, oldest first (or newest first); `since`: from that day (China time) on."""
    q = _where(sa.select(*[access_log.c[c] for c in COLUMNS])
               .order_by(access_log.c.id.desc() if newest_first else access_log.c.id), user, since)
    if limit is not None:
        q = q.limit(limit).offset(offset)
    result = conn.execute(q)
    return pd.DataFrame(result.fetchall(), columns=COLUMNS)
