"""A disposition made in the web app or the API, and a review's decision on one: the same checks
and changes as `cases import` (pipeline.cases.disposition), under the store's writer lock (a
night changing the items at the same moment would otherwise overwrite it), refused when the
form is stale."""

from __future__ import annotations

import dataclasses
import re
import threading
import time
import urllib.parse

import sqlalchemy as sa
from starlette.requests import Request

from checks.masking import mask_text

from pipeline import clock
from pipeline.cases.disposition import MAX_NOTE, Entry, apply, approve, assign, problem, review_problem, send_back
from pipeline.errors import InputError
from pipeline.store.lock import store_lock
from pipeline.store.schema import item_events, items
from pipeline.web import audit, params, queries
from pipeline.web.calls import NOT_FOUND, UNRECORDED, Call, Refused, log_row
from pipeline.web.roles import INVESTIGATORS
from pipeline.cases.labels import REVIEW_STATE


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
    return _writing(call, status, lambda conn: _apply(conn, call, item_id, sent, change))


def _writing(call: Call, status: int, work):
    """`work(conn)` in one transaction under the store's writer lock, with the request's
    access-log row (`status`): both on record or neither. Returns what `work` returns."""
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
                after = work(conn)
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


MAX_MANY = 1000  # items one assignment or one bulk disposition may name


def _ids(value) -> list[str]:
    if not isinstance(value, list) or not value or len(value) > MAX_MANY or not all(
            isinstance(v, str) and 0 < len(v) <= 40 for v in value):
        raise Refused(422, f"item_ids 应为 1 到 {MAX_MANY} 个问题件编号", {"reason": f"item_ids must list 1..{MAX_MANY} item ids"})
    return list(dict.fromkeys(value))


def _mine(conn: sa.Connection, call: Call, ids: list[str]) -> dict[str, dict]:
    """The stored items, every one the caller's to see, open (else the whole request is refused:
    404 naming none of another branch's, 422 for a closed one)."""
    out = {}
    for item_id in ids:
        if queries.item(conn, call.user, item_id) is None:
            raise Refused(404, NOT_FOUND, {"reason": "an item is not found", "item_id": mask_text(item_id[:40])})
        stored = queries.stored(conn, item_id)
        if stored is None:
            raise Refused(404, NOT_FOUND)
        out[item_id] = stored
    return out


def _selection(chosen) -> str:
    """An assignment's `filter` (the list's filters as an object: {"rule": "PHONE_SHARED",
    "assignee": "none"}) as the list's query string, or Refused(422); each value is then read and
    checked as the list reads it (params.SELECTING)."""
    known = {p.name: p for p in params.SELECTING}

    def text(name: str, value) -> str | None:
        if name not in known:
            return None
        if known[name].kind == "integer" and type(value) in (int, float):  # JSON's 27 and 27.0 alike
            return str(int(value)) if float(value).is_integer() else None
        return value if isinstance(value, str) else None

    texts = {k: text(k, v) for k, v in chosen.items()} if isinstance(chosen, dict) else {"": None}
    if any(v is None for v in texts.values()):
        raise Refused(422, "filter 应为清单的筛选条件，如 {\"rule\": \"PHONE_SHARED\", \"assignee\": \"none\"}",
                      {"reason": f"filter must be an object of the list's filters: {', '.join(known)}"})
    return urllib.parse.urlencode(texts)


def assign_many(call: Call, fields: dict, status: int) -> list[dict]:
    """A lead assigns items of their branches (`item_ids`, or `filter`: the list's filters,
    every open item they match up to MAX_MANY) to `assignee`, a branch user or lead who sees
    each item's branch (null: unassigned). One transaction; each item an `assigned` event; the
    whole refused (nothing changed) when any item or the assignee is not allowed."""
    from pipeline.web import api
    from pipeline.web.users import active

    assignee = fields.get("assignee")
    if assignee is not None and (not isinstance(assignee, str) or not 0 < len(assignee) <= 64):
        raise Refused(422, "assignee 应为用户名或 null", {"reason": "assignee must be a user name or null"})
    if ("item_ids" in fields) == ("filter" in fields):
        raise Refused(422, "请给出 item_ids 或 filter 之一", {"reason": "give item_ids or filter, not both"})
    if "filter" in fields:
        query = Request({"type": "http", "query_string": _selection(fields["filter"]).encode("utf-8"), "headers": []})
        f = dataclasses.replace(api.filters(query, MAX_MANY, strict=True, user=call.user), limit=MAX_MANY, offset=0)
        rows, _, more = queries.open_page(call.conn, call.user, f, clock.now().date(), MAX_MANY)
        if more:
            raise Refused(422, f"筛选结果超过 {MAX_MANY} 件：请缩小范围", {"reason": f"the filter matches more than {MAX_MANY}"})
        ids = [r["item_id"] for r in rows]
    else:
        ids = _ids(fields["item_ids"])
    call.shown.extend(ids)

    def work(conn: sa.Connection) -> list[dict]:
        found = _mine(conn, call, ids)
        if assignee is not None:
            person = active(conn, assignee)
            wrong = [i for i, it in found.items() if person is None or not person.sees(it["branch"])]
            if person is None or person.role not in INVESTIGATORS or wrong:
                raise Refused(422, f"不能分派给 {mask_text(assignee)}：须为问题件所属机构的在用机构用户",
                              {"reason": "the assignee is no enabled branch user of every item's branch"})
        closed = [i for i, it in found.items() if it["state"] != "open"]
        if closed:
            raise Refused(422, f"问题件 {closed[0]} 已关闭，不能分派", {"reason": "a closed item", "item_id": closed[0]})
        at = clock.now().isoformat(timespec="seconds")
        for item in found.values():
            assign(conn, item, assignee, call.user.name, at, "web")
        return [queries.item(conn, call.user, i) or {} for i in ids]

    return _writing(call, status, work)


def bulk_dispose(call: Call, fields: dict, status: int) -> list[dict]:
    """One disposition (`state`, `result`, `note`) for many items (`items`: [{item_id, version}]),
    in one transaction, each item its own event; refused as a whole (nothing changed) with each
    refused item and its reason when any item would be (not found, changed since its version, a
    disposition `cases import` would refuse)."""
    listed = fields.get("items")
    if not isinstance(listed, list) or not all(isinstance(x, dict) for x in listed):
        raise Refused(422, "items 应为 [{item_id, version}] 列表", {"reason": "items must be a list of {item_id, version}"})
    ids = _ids([x.get("item_id") for x in listed])
    if len(ids) != len(listed):
        raise Refused(422, "同一问题件出现两次", {"reason": "an item is listed twice"})
    versions = {x["item_id"]: version_of(x.get("version"), False) for x in listed}
    state, result = text_of(fields.get("state"), "state", 20).strip(), text_of(fields.get("result"), "result", 20).strip()
    note = text_of(fields.get("note"), "note", MAX_NOTE)
    review_results = frozenset(call.request.app.state.cfg.review.results)
    call.shown.extend(ids)

    def work(conn: sa.Connection) -> list[dict]:
        # take the rows (PostgreSQL) or the database (SQLite) for writing first
        conn.execute(items.update().where(items.c.item_id.in_(ids)).values(item_id=items.c.item_id))
        found = _mine(conn, call, ids)
        refused = []
        for item_id, item in found.items():
            have = queries.version(conn, item_id)
            why = "已被他人修改（版本不符）" if have != versions[item_id] else problem(
                Entry(item_id, state, result, note), item)
            if why is not None:
                refused.append({"item_id": item_id, "reason": why})
        if refused:
            raise Refused(409 if all(r["reason"].startswith("已被他人修改") for r in refused) else 422,
                          f"{len(refused)} 件问题件不能按此处理，全部未作更改：{refused[0]['item_id']} {refused[0]['reason']}",
                          {"reason": "some items would be refused; nothing was changed", "refused": refused})
        now = clock.now()
        for item_id, item in found.items():
            apply(conn, Entry(item_id, state, result, note), item, call.user.name, now.isoformat(timespec="seconds"),
                  now.date().isoformat(), "web bulk", review_results)
        return [queries.item(conn, call.user, i) or {} for i in ids]

    return _writing(call, status, work)


def attach(call: Call, item_id: str, content: bytes, name: str | None, status: int) -> dict:
    """Keep a file as evidence of an open item the caller may settle (pipeline.cases.evidence:
    PDF, JPEG or PNG by its content, within evidence.max_bytes and .max_files); 422 with why
    when it is refused, or when the item is closed or waiting for its review."""
    from pipeline.cases import evidence

    if queries.item(call.conn, call.user, item_id) is None:
        raise Refused(404, NOT_FOUND)
    call.shown.append(item_id)
    limits = call.request.app.state.cfg.evidence

    def work(conn: sa.Connection) -> dict:
        stored = queries.stored(conn, item_id)
        if stored is None or queries.item(conn, call.user, item_id) is None:
            raise Refused(404, NOT_FOUND)
        if stored["state"] != "open" or stored["work_state"] == REVIEW_STATE:
            raise Refused(422, f"问题件 {item_id} 已办结或正在等待复核，不能再添加附件", {"reason": "the item is settled"})
        try:
            return evidence.add(conn, stored, content, name, call.user.name, clock.stamp(), limits.max_bytes,
                                limits.max_files, call.request.app.state.evidence_key)
        except evidence.Refusal as exc:
            raise Refused(422, str(exc), {"reason": "the file is refused"}) from None

    return _writing(call, status, work)
