"""A disposition made in the web app or the API: the same checks and changes as `cases import`
(pipeline.cases.disposition), under the store's writer lock (a night changing the items at the
same moment would otherwise overwrite it), refused when the form is stale."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from pipeline import clock
from pipeline.cases.disposition import Entry, apply, problem
from pipeline.errors import InputError
from pipeline.store.lock import store_lock
from pipeline.store.schema import item_events, items
from pipeline.web import queries
from pipeline.web.calls import NOT_FOUND, Call, Refused


_ONE_AT_A_TIME = threading.Lock()


def dispose(call: Call, item_id: str, state: str, result: str, note: str, version) -> dict:
    """Apply the disposition; returns the item as it is after. Refused: 404 (not the caller's),
    409 (`version` is not the item's: changed since the form was made), 422 (a value `cases
    import` would refuse), 503 (a night holds the store)."""
    app = call.request.app.state
    if queries.item(call.conn, call.user, item_id) is None:
        raise Refused(404, NOT_FOUND)
    call.shown.append(item_id)  # what a refusal below shows (its version, who changed it) is a look too
    if isinstance(version, bool) or not (isinstance(version, int) or (isinstance(version, str) and
                                                                      version.strip().isascii() and
                                                                      version.strip().isdigit())):
        raise Refused(422, "缺少版本号（version）：请刷新页面后重试", {"reason": "version must be a whole number"})
    sent = int(version)
    wait = float(app.cfg["web"]["lock_wait_seconds"])
    deadline = time.monotonic() + wait
    busy = Refused(503, "案件库正在被夜间批处理使用，请几分钟后重试", {"reason": "the store is busy"})
    # this process's dispositions queue here, in turn, and only the first polls for the store's lock
    if not _ONE_AT_A_TIME.acquire(timeout=wait):
        raise busy
    try:
        with store_lock(app.writer, "web disposition", None, max(0.0, deadline - time.monotonic())):
            with app.writer.begin() as conn:
                return _apply(conn, call, item_id, Entry(item_id, state.strip(), result.strip(), note), sent)
    except (InputError, sa.exc.TimeoutError):
        raise busy from None
    finally:
        _ONE_AT_A_TIME.release()


def _apply(conn: sa.Connection, call: Call, item_id: str, entry: Entry, sent: int) -> dict:
    # take the item's row (PostgreSQL) or the database (SQLite) for writing before reading its version
    conn.execute(items.update().where(items.c.item_id == item_id).values(item_id=items.c.item_id))
    if queries.item(conn, call.user, item_id) is None:  # a night may have moved it since the check above
        raise Refused(404, NOT_FOUND)
    have = queries.version(conn, item_id)
    if have != sent:
        last = conn.execute(sa.select(item_events.c.who, item_events.c.at).where(item_events.c.id == have)).first()
        by = f"已被 {last.who} 于 {last.at[:16].replace('T', ' ')} 修改" if last else "已被修改"
        raise Refused(409, f"问题件 {item_id} {by}：请查看最新内容后重新提交",
                      {"reason": "stale version", "version": have})
    stored = queries.stored(conn, item_id)
    reason = problem(entry, stored)
    if reason is not None or stored is None:
        raise Refused(422, reason or NOT_FOUND, {"reason": reason})
    now = clock.now()
    apply(conn, entry, stored, call.user.name, now.isoformat(timespec="seconds"), now.date().isoformat(), "web")
    return queries.item(conn, call.user, item_id) or {}
