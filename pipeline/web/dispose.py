"""A disposition made in the web app or the API, and a review's decision on one: the same checks
and changes as `cases import` (pipeline.cases.disposition), under the store's writer lock (a
night changing the items at the same moment would otherwise overwrite it), refused when the
form is stale."""

from __future__ import annotations

import re
import threading
import time

import sqlalchemy as sa

from pipeline import clock
from pipeline.cases.disposition import MAX_NOTE, Entry, apply, approve, problem, review_problem, send_back
from pipeline.errors import InputError
from pipeline.store.lock import store_lock
from pipeline.store.schema import item_events, items
from pipeline.web import audit, queries
from pipeline.web.calls import NOT_FOUND, UNRECORDED, Call, Refused, log_row


_ONE_AT_A_TIME = threading.Lock()


MAX_VERSION = 2**63 - 1  # an event id (a BIGINT)
_DIGITS = re.compile(r"[0-9]{1,19}")


def version_of(value, form: bool) -> int:
    """The `version` sent: a JSON integer (the API: 7.0 is one too, as JSON Schema counts), the
    digits of a form field (the page)."""
    if isinstance(value, str) and form and _DIGITS.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, float) and not form and value.is_integer() and 0 <= value <= 2**53:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_VERSION:
        raise Refused(422, "缺少版本号（version）：请刷新页面后重试", {"reason": "version must be a whole number"})
    return value


def text_of(value, name: str, longest: int) -> str:
    """A text field of the disposition: a string (None reads as empty), at most `longest` characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Refused(422, f"{name} 应为文字", {"reason": f"{name} must be a string"})
    if len(value) > longest:
        raise Refused(422, f"{name} 最长 {longest} 个字符", {"reason": f"{name} must be at most {longest} characters"})
    return value


def dispose(call: Call, item_id: str, fields, form: bool, status: int) -> dict:
    """Apply the disposition `fields` (state, result, note, version: a form or a JSON object);
    returns the item as it is after. The request's access-log row (with `status`, the answer's)
    is written in the same transaction as the change: either both are on record or neither
    (`call.recorded`). Refused: 404 (not the caller's), 409 (`version` is not the item's: changed
    since the form was made), 422 (a value `cases import` would refuse, or not text, or too long),
    503 (a night holds the store)."""
    if queries.item(call.conn, call.user, item_id) is None:
        raise Refused(404, NOT_FOUND)
    call.shown.append(item_id)  # what a refusal below shows (its version, who changed it) is a look too
    sent = version_of(fields.get("version"), form)
    state, result = text_of(fields.get("state"), "state", 20), text_of(fields.get("result"), "result", 20)
    note = text_of(fields.get("note"), "note", MAX_NOTE)
    review = frozenset(call.request.app.state.cfg.review.results)

    def change(conn: sa.Connection, stored: dict, now) -> None:
        reason = problem(Entry(item_id, state.strip(), result.strip(), note), stored)
        if reason is not None:
            raise Refused(422, reason, {"reason": reason})
        apply(conn, Entry(item_id, state.strip(), result.strip(), note), stored, call.user.name,
              now.isoformat(timespec="seconds"), now.date().isoformat(), "web", review)

    return _locked(call, item_id, sent, status, change)


DECISIONS = {"approve": "批准", "return": "退回"}


def review(call: Call, item_id: str, fields, form: bool, status: int) -> dict:
    """A reviewer's decision on a settled item waiting in 待复核 (`fields`: decision approve or
    return, reason, version): approved, it closes as its result says; returned, it goes back to
    处理中 with the reason (required). Refused as `dispose` is, and 422 when the item is not
    waiting for a review or the reviewer settled it."""
    if queries.item(call.conn, call.user, item_id) is None:
        raise Refused(404, NOT_FOUND)
    call.shown.append(item_id)
    sent = version_of(fields.get("version"), form)
    decision = text_of(fields.get("decision"), "decision", 10).strip()
    reason = text_of(fields.get("reason"), "reason", MAX_NOTE).strip()
    if decision not in DECISIONS:
        raise Refused(422, "复核决定应为 approve（批准）或 return（退回）", {"reason": "decision must be approve or return"})
    if decision == "return" and not reason:
        raise Refused(422, "退回须填写原因", {"reason": "a return needs a reason"})

    def change(conn: sa.Connection, stored: dict, now) -> None:
        why = review_problem(stored, call.user.name)
        if why is not None:
            raise Refused(422, why, {"reason": why})
        at = now.isoformat(timespec="seconds")
        if decision == "approve":
            approve(conn, stored, call.user.name, at, now.date().isoformat(), "web")
        else:
            send_back(conn, stored, call.user.name, reason, at, "web")

    return _locked(call, item_id, sent, status, change)


def _locked(call: Call, item_id: str, sent: int, status: int, change) -> dict:
    """`change(conn, stored item, now)` under the writer lock, once the item's version is `sent`;
    the access-log row in the same transaction. Returns the item after."""
    app = call.request.app.state
    wait = app.web.lock_wait_seconds
    deadline = time.monotonic() + wait
    busy = Refused(503, "案件库正在被夜间批处理使用，请几分钟后重试", {"reason": "the store is busy"})
    # this process's dispositions queue here, in turn, and only the first polls for the store's lock
    if not _ONE_AT_A_TIME.acquire(timeout=wait):
        raise busy
    try:
        with store_lock(app.writer, "web disposition", None, max(0.0, deadline - time.monotonic())):
            with app.writer.begin() as conn:
                after = _apply(conn, call, item_id, sent, change)
                try:
                    audit.write(conn, log_row(call.request, call.user, call.shown, status))
                except sa.exc.DBAPIError:  # its row cannot be written: the change is rolled back with it
                    raise UNRECORDED from None
            call.recorded = True
            return after
    except (InputError, sa.exc.TimeoutError):
        raise busy from None
    finally:
        _ONE_AT_A_TIME.release()


def _apply(conn: sa.Connection, call: Call, item_id: str, sent: int, change) -> dict:
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
    if stored is None:
        raise Refused(404, NOT_FOUND)
    change(conn, stored, clock.now())
    return queries.item(conn, call.user, item_id) or {}
