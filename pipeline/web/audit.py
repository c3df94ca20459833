"""The access log (SPEC 8): every request that shows or changes items, the report or users, one
row each: who, when, method and path, the item ids shown or changed, the client's address and
the status code; a login also the user name it tried (`target`, masked), whether it succeeded
or not, so an attack on one account shows. The app only ever appends to it; `compliance` reads
it (web, API and `custdq audit list`).

People type what they look for into a filter or an address (`/items?agent=<a phone>`,
`/items/<an identity number>`): the path and the query are stored decoded, each path segment,
query name and value through checks.masking.mask_text, item ids (pipeline.night.items.ITEM_ID)
as they are.

>>> masked_path("/items/110105194912310021", "agent=138%201234%205678&rule=ID_SEX_MISMATCH&x=a%26b")
'/items/1****************1?agent=138****5678&rule=ID_SEX_MISMATCH&x=a%26b'
>>> masked_path("/api/items/DQ0123456789ABCDEF", "")
'/api/items/DQ0123456789ABCDEF'
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import queue
import re
import threading
import urllib.parse
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa

from checks.masking import mask_text
from pipeline.night.items import ITEM_ID
from pipeline.store.schema import access_log

log = logging.getLogger("custdq.web")
_RESERVED = re.compile(r"[%&=+#?\s\x00-\x1f\x7f]")  # what would read as another part of a query, or not at all


def _masked(text: str) -> str:
    return text if ITEM_ID.fullmatch(text) else mask_text(text)


def _quoted(text: str) -> str:
    """Percent-encoded where a character would read as a query's syntax; Chinese stays readable."""
    return _RESERVED.sub(lambda m: urllib.parse.quote(m.group(0), safe=""), text)


def masked_path(path: str, query: str) -> str:
    """The path (decoded, as routed) and the query string as the access log keeps them."""
    shown = "/".join(_masked(segment) for segment in path.split("/"))
    if not query:
        return shown
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return shown + "?" + "&".join(f"{_quoted(_masked(k))}={_quoted(_masked(v))}" for k, v in pairs)


def _row(at: str, user: str | None, method: str, path: str, item_ids: list[str], client: str | None,
         status: int, target: str | None = None) -> dict:
    return {"at": at, "user_name": user, "method": method, "path": path[:2000],
            "item_ids": ",".join(item_ids) or None,  # all of them, an export's too: who looked at which record
            "client": client if client is None or _address(client) else mask_text(client), "status": status,
            "target": target[:200] if target else None}


def _address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


@dataclass
class _Pending:
    row: dict
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class Recorder:
    """The app's one writer of the access log: requests hand their rows over and wait until the
    transaction holding them has committed (group commit), so no answer leaves before its look
    is on record, and concurrent requests do not queue one by one for SQLite's write lock.

    A group that fails is written again a row at a time, each in its own transaction: a row that
    cannot be written fails only its own request (which is then refused, calls.UNRECORDED)."""

    BATCH = 500

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.queue: queue.Queue[_Pending | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="custdq-access-log", daemon=True)
        self.thread.start()

    def record(self, at: str, user: str | None, method: str, path: str, item_ids: list[str], client: str | None,
               status: int, target: str | None = None) -> bool:
        """Write the row; True once it is committed, False when it could not be written."""
        pending = _Pending(_row(at, user, method, path, item_ids, client, status, target))
        self.queue.put(pending)
        if not pending.done.wait(timeout=600):
            log.error("access log: a row waited 10 minutes for its writer")
            return False
        if pending.error is not None:
            log.error("access log: a row could not be written (%s)", type(pending.error).__name__)
            return False
        return True

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
            self._write(batch)
            for p in batch:
                p.done.set()

    def _write(self, batch: list[_Pending]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(access_log.insert(), [p.row for p in batch])
            return
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
        for p in batch:  # one bad row must not fail the others: each again, in its own transaction
            try:
                with self.engine.begin() as conn:
                    conn.execute(access_log.insert(), [p.row])
            except Exception as exc:  # its own request learns it
                p.error = exc

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
