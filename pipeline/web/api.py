"""The JSON API (SPEC 8) for the insurer's other systems: bearer tokens from `custdq users
token`, the same scope, checks and access log as the pages. Errors are `{"error": ...}` with
the status SPEC 8 names (401, 403, 404, 409, 422)."""

from __future__ import annotations

import datetime as dt
import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline import clock
from pipeline.outputs.dashboard.data import gather
from pipeline.web import audit, queries
from pipeline.web.calls import NOT_FOUND, Call, Refused, guarded, json_body
from pipeline.web.dispose import dispose

MAX_LIMIT = 1000
PUBLIC = [f for f in queries.FIELDS if f not in ("disposed_by",)] + ["status", "version"]


def _int(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Refused(422, f"参数 {name} 应为整数", {"reason": f"{name} must be a whole number"}) from None
    if not low <= value <= high:
        raise Refused(422, f"参数 {name} 应在 {low} 到 {high} 之间", {"reason": f"{name} must be {low}..{high}"})
    return value


def since(request: Request) -> dt.date | None:
    raw = request.query_params.get("since")
    if not raw:
        return None
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise Refused(422, "参数 since 应为日期 YYYY-MM-DD", {"reason": "since must be YYYY-MM-DD"}) from None


def filters(request: Request, page_size: int) -> queries.Filters:
    q = request.query_params
    limit = _int(request, "limit", page_size, 1, MAX_LIMIT)
    assert limit is not None
    return queries.Filters(
        branch=q.get("branch") or None, rule=q.get("rule") or None, category=q.get("category") or None,
        status=q.get("status") or None, work_state=q.get("work_state") or None,
        overdue=q.get("overdue", "") in ("1", "true", "yes", "on"), due_within=_int(request, "due_within", None, 0, 3650),
        agent=q.get("agent") or None, sort=str(q.get("sort")) if q.get("sort") in queries.SORTS else "due_date",
        descending=q.get("order") == "desc", limit=limit, offset=_int(request, "offset", 0, 0, 10**9) or 0)


def _public(item: dict) -> dict:
    return {k: item.get(k) for k in PUBLIC}


@guarded("items", api=True)
def items_list(call: Call) -> Response:
    rows, total, more = queries.open_page(call.conn, call.user, filters(call.request, 50), clock.now().date(),
                                          int(call.request.app.state.cfg["web"]["count_limit"]))
    call.shown.extend(r["item_id"] for r in rows)
    # total: exact up to web.count_limit; beyond it total_more is true and total is the limit
    return JSONResponse({"items": [_public(r) for r in rows], "total": total.n, "total_more": total.more,
                         "next": more})


@guarded("items", api=True)
def item_one(call: Call) -> Response:
    item_id = call.request.path_params["item_id"]
    found = queries.item(call.conn, call.user, item_id)
    if found is None:
        raise Refused(404, NOT_FOUND)
    call.shown.append(item_id)
    events = [dict(e, what=json.loads(e["what"]) if e["what"] else None) for e in queries.events(call.conn, item_id)]
    return JSONResponse({**_public(found), "events": events})


@guarded("dispose", api=True)
def item_disposition(call: Call) -> Response:
    body = json_body(call.request.state.body)
    item_id = call.request.path_params["item_id"]
    after = dispose(call, item_id, str(body.get("state") or ""), str(body.get("result") or ""),
                    str(body.get("note") or ""), body.get("version"))
    return JSONResponse(_public(after))


def figures(conn, user, night: str | None) -> dict:
    """The dashboard's figures within the user's scope (SPEC 8: a branch user, its branches)."""
    if night is not None:
        try:
            night = dt.date.fromisoformat(night).isoformat()  # 20261101 reads as 2026-11-01
        except ValueError:
            raise Refused(422, "参数 night 应为日期 YYYY-MM-DD", {"reason": "night must be YYYY-MM-DD"}) from None
    board = gather(conn, night)
    branches = _records(board.dims.get("branch"))
    ageing = _records(board.ageing)
    if not user.every_branch:  # a branch user: their own branches' figures only
        mine = set(user.branches)
        return {"night": board.night, "branches": [b for b in branches if b["key"] in mine],
                "ageing": [a for a in ageing if a["branch"] in mine]}
    return {"night": board.night, "tonight": json.loads(json.dumps(board.tonight, default=str)),
            "rules": _records(board.rules), "branches": branches, "agents": _records(board.dims.get("agent"))[:20],
            "ageing": ageing}


@guarded("dashboard", api=True)
def dashboard(call: Call) -> Response:
    return JSONResponse(figures(call.conn, call.user, call.request.query_params.get("night") or None))


def _records(frame) -> list:
    if frame is None or not len(frame):
        return []
    return json.loads(frame.to_json(orient="records", force_ascii=False))


@guarded("access_log", api=True)
def access_log(call: Call) -> Response:
    limit = _int(call.request, "limit", 1000, 1, 10000)
    offset = _int(call.request, "offset", 0, 0, 10**9) or 0
    log = audit.entries(call.conn, call.request.query_params.get("user") or None, since(call.request), limit, offset)
    return JSONResponse({"entries": json.loads(log.to_json(orient="records", force_ascii=False))})


ROUTES = [
    Route("/api/items", items_list),
    Route("/api/items/{item_id}", item_one),
    Route("/api/items/{item_id}/disposition", item_disposition, methods=["POST"]),
    Route("/api/dashboard", dashboard),
    Route("/api/access-log", access_log),
]
