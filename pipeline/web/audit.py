"""The access log (SPEC 8): every request that shows or changes items, the report or users, one
row each: who, when, method and path, the item ids shown or changed, the client's address and
the status code; a login also the user name it tried (`target`, masked), whether it succeeded
or not, so an attack on one account shows. The app only ever appends to it; `compliance` reads
it (web, API and `custdq audit list`).

People type what they look for into a filter or an address (`/items?agent=<a phone>`,
`/items/<an identity number>`): the path (decoded, as routed) and the query (decoded) are masked
as one text by checks.masking.mask_text, so digits spread over path segments or query values
(`/items/138/1234/5678`, `?agent=138&1234=5678`) are one number to it too (a query's names
between them are letters, which end a number: the limit of checks.masking); only the item ids
the request showed stay readable (an id typed but not shown is masked like any other number).

>>> masked_path("/items/110105194912310021", "agent=138%201234%205678&rule=ID_SEX_MISMATCH&x=a%26b")
'/items/1****************1?agent=138****5678&rule=ID_SEX_MISMATCH&x=a%26b'
>>> masked_path("/api/items/DQ0123456789ABCDEF", "", ["DQ0123456789ABCDEF"])
'/api/items/DQ0123456789ABCDEF'
>>> masked_path("/items/138/1234/5678", "limit=50&due_within=3&x=1%200")
'/items/138****5678?limit=50&due_within=3&x=1%200'
>>> masked_path("/api/items", "agent=138&1234=5678")
'/api/items?agent=138****5678'
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
from pipeline.store.schema import access_log

log = logging.getLogger("custdq.web")
_RESERVED = re.compile(r"[%&=+#?\s\x00-\x1f\x7f-\x9f]")  # what would read as another part of a query, or not at all
# in the path: what would not read at all (a terminal's escape sequences, when `audit list` prints it)
_UNPRINTABLE = re.compile(r"[%\s\x00-\x1f\x7f-\x9f]")


# stand-ins for a query's `&` and `=` while the whole is masked: no digit, no letter (so they join
# digit groups as any separator does), never typed (private use)
_AND, _IS = "\ue000", "\ue001"


def _quoted(text: str) -> str:
    """Percent-encoded where a character would read as a query's syntax; Chinese stays readable."""
    return _RESERVED.sub(lambda m: urllib.parse.quote(m.group(0), safe=""), text)


def _plain(text: str) -> str:
    return text.replace(_AND, "").replace(_IS, "")


def masked_path(path: str, query: str, shown: list[str] | tuple[str, ...] = ()) -> str:
    """The path (decoded, as routed) and the query string as the access log keeps them; `shown`:
    the item ids the request showed, kept readable."""
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True) if query else []
    text = _plain(path) + ("?" + _AND.join(_plain(k) + _IS + _plain(v) for k, v in pairs) if pairs else "")
    keep = re.compile("|".join(re.escape(i) for i in sorted(set(shown), key=len, reverse=True))) if shown else None
    masked = mask_text(text, keep)
    head, mark, tail = masked.partition("?")
    head = _UNPRINTABLE.sub(lambda m: urllib.parse.quote(m.group(0), safe=""), head)
    if not mark:
        return head
    return head + "?" + "&".join(_IS.join(_quoted(part) for part in pair.split(_IS)).replace(_IS, "=")
                                 for pair in tail.split(_AND))


def row(at: str, user: str | None, method: str, path: str, item_ids: list[str], client: str | None,
        status: int, target: str | None = None) -> dict:
    """One access-log row, as stored: `path` as masked_path made it, `target` as masked."""
    return {"at": at, "user_name": user, "method": method, "path": path[:2000],
            "item_ids": ",".join(item_ids) or None,  # all of them, an export's too: who looked at which record
            "client": (client if client is None or _address(client) else mask_text(client))[:64] if client else None,
            "status": status, "target": target[:200] if target else None}


def write(conn: sa.Connection, entry: dict) -> None:
    """Write one row in the caller's transaction (a change and the row that records it, together)."""
    conn.execute(access_log.insert(), [entry])


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

    def record(self, entry: dict) -> bool:
        """Write the row (`row`); True once it is committed, False when it could not be written."""
        pending = _Pending(entry)
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
    if user:  # the user's requests, and the logins that tried the name (stored masked: as typed or as masked)
        q = q.where(sa.or_(access_log.c.user_name == user,
                           access_log.c.target.in_({mask_text(user.strip()), user.strip()})))
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
