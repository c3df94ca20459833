"""The JSON API (SPEC 8) for the insurer's other systems: bearer tokens from `custdq users
token`, the same scope, checks and access log as the pages. Errors are `{"error": ...}` with
the status SPEC 8 names (401, 403, 404, 409, 422); the API is described by an OpenAPI document at
/api/openapi.json (pipeline.web.openapi), its query parameters declared in pipeline.web.params."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from checks.catalogue import RULES
from checks.masking import mask_text
from pipeline import clock
from pipeline.outputs.dashboard.data import gather
from pipeline.web import audit, openapi, params, queries
from pipeline.web.calls import NOT_FOUND, Call, Refused, guarded, json_body
from pipeline.cases import evidence
from pipeline.web.dispose import assign_many, bulk_dispose, dispose, review

FIELDS = {"state", "result", "note", "version"}  # a disposition's body
PUBLIC = [f for f in queries.FIELDS if f not in ("disposed_by",)] + ["status", "version", "team", "team_leader"]


def filters(request: Request, page_size: int, strict: bool = False, user=None) -> queries.Filters:
    """The worklist's filters as sent (params.ITEM_FILTERS), or Refused(422); `strict` (the API):
    an unknown parameter too. `assignee=me` is the caller's (`user`) items, `none` the unassigned."""
    f = params.read_all(request, params.ITEM_FILTERS) if strict else {p.name: p.read(request)
                                                                       for p in params.ITEM_FILTERS}
    who = f["assignee"]
    return queries.Filters(
        branch=f["branch"], rule=f["rule"], category=f["category"], status=f["status"], work_state=f["work_state"],
        overdue=bool(f["overdue"]), due_within=f["due_within"], agent=f["agent"],
        assignee=(user.name if user is not None and who == "me" else None if who in ("me", "none") else who),
        unassigned=who == "none", team=f["team"], sort=f["sort"] or "due_date",
        descending=f["order"] == "desc", limit=f["limit"] or page_size, offset=f["offset"] or 0)


def _public(item: dict) -> dict:
    out = {k: item.get(k) for k in PUBLIC}
    out["provisional"] = bool(out["provisional"]) if out["provisional"] is not None else None  # SQLite: 0/1
    return out


@guarded("items", api=True)
def items_list(call: Call) -> Response:
    rows, total, more = queries.open_page(call.conn, call.user, filters(call.request, 50, strict=True, user=call.user),
                                          clock.now().date(),
                                          call.request.app.state.web.count_limit)
    call.shown.extend(r["item_id"] for r in rows)
    # total: exact up to web.count_limit; beyond it total_more is true and total is the limit
    return JSONResponse({"items": [_public(r) for r in rows], "total": total.n, "total_more": total.more,
                         "next": more})


@guarded("items", api=True)
def item_one(call: Call) -> Response:
    params.read_all(call.request, ())
    item_id = call.request.path_params["item_id"]
    found = queries.item(call.conn, call.user, item_id)
    if found is None:
        raise Refused(404, NOT_FOUND)
    call.shown.append(item_id)
    events = [dict(e, what=json.loads(e["what"]) if e["what"] else None) for e in queries.events(call.conn, item_id)]
    files = [dict(a, href=f"/items/{item_id}/attachments/{a['attachment_id']}") for a in evidence.listed(call.conn, item_id)]
    return JSONResponse({**_public(found), "events": events, "attachments": files})


@guarded("dispose", api=True)
def item_disposition(call: Call) -> Response:
    after = dispose(call, call.request.path_params["item_id"], _body(call, FIELDS), form=False, status=200)
    return JSONResponse(_public(after))


REVIEW_FIELDS = {"decision", "reason", "version"}  # a review's body
ASSIGN_FIELDS = {"assignee", "item_ids", "filter"}
BULK_FIELDS = {"items", "state", "result", "note"}


def _body(call: Call, allowed: set[str]) -> dict:
    """The request's JSON object, or Refused: no query parameter, no field but `allowed` (an
    unknown one is echoed masked)."""
    params.read_all(call.request, ())
    body = json_body(call.request.state.body)
    unknown = sorted(mask_text(k)[:40] for k in set(body) - allowed)  # echoed: masked
    if unknown:
        raise Refused(422, f"未知字段 {unknown[0]}（可用：{'、'.join(sorted(allowed))}）",
                      {"reason": f"unknown field {unknown[0]!r}"})
    return body


@guarded("assign", api=True)
def items_assign(call: Call) -> Response:
    after = assign_many(call, _body(call, ASSIGN_FIELDS), status=200)
    return JSONResponse({"items": [_public(i) for i in after]})


@guarded("dispose", api=True)
def items_bulk(call: Call) -> Response:
    after = bulk_dispose(call, _body(call, BULK_FIELDS), status=200)
    return JSONResponse({"items": [_public(i) for i in after]})


@guarded("review", api=True)
def item_review(call: Call) -> Response:
    after = review(call, call.request.path_params["item_id"], _body(call, REVIEW_FIELDS), form=False, status=200)
    return JSONResponse(_public(after))


def board_of(conn, user, night: dt.date | None):
    """The dashboard's figures (pipeline.outputs.dashboard.data.Board), overdue as of today as the
    list counts it; for a branch user only their own branches' rows of the per-branch figures."""
    board = gather(conn, night.isoformat() if night else None, clock.now().date())
    if not user.every_branch and board.night is not None:
        mine = set(user.branches)
        board.dims = {"branch": board.dims["branch"][board.dims["branch"]["key"].isin(mine)]}
        board.ageing = board.ageing[board.ageing["branch"].isin(mine)]
        board.progress = _mine(board.progress, mine)
        board.false_branches = board.false_branches[board.false_branches["branch"].isin(mine)]
        board.false_agents = board.false_agents[board.false_agents["branch"].isin(mine)]
    return board


def _mine(table, mine: set[str]):
    """A branch user's rows of a per-branch table, with a 合计 of those rows."""
    rows = table[table["branch"].isin(mine)]
    if rows.empty:
        return rows
    total = rows.drop(columns=["branch", "days_to_settle"]).sum()
    weights = rows["settled"].where(rows["days_to_settle"].notna(), 0)
    days = (rows["days_to_settle"].fillna(0) * weights).sum() / weights.sum() if weights.sum() else None
    return pd.concat([rows, pd.DataFrame([{"branch": "合计", **total.to_dict(),
                                           "days_to_settle": None if days is None else round(float(days), 1)}])],
                     ignore_index=True)


def figures(conn, user, night: dt.date | None) -> dict:
    """The dashboard's figures within the user's scope (SPEC 8: a branch user, its branches)."""
    board = board_of(conn, user, night)
    return figures_of(board, user)


def figures_of(board, user) -> dict:
    mine = {"night": board.night, "as_of": board.as_of, "quarter": board.quarter, "nights": len(board.trend),
            "branches": _records(board.dims.get("branch")), "ageing": _records(board.ageing),
            "progress": _records(board.progress), "false_by_branch": _records(board.false_branches),
            "false_by_agent": _named(_records(board.false_agents))}
    if not user.every_branch or board.night is None:  # a branch user: their own branches' figures only
        return mine
    return mine | {"tonight": json.loads(json.dumps(board.tonight, default=str)),
                   "rules": [r | {"title": RULES[r["rule"]].title if r["rule"] in RULES else ""}
                             for r in _records(board.rules)],
                   "agents": _named(_records(board.dims.get("agent")), "name")[:20],
                   "rule_trend": _records(board.rule_trend)}


def _named(rows: list[dict], key: str = "agent_name") -> list[dict]:
    """Agents' names from the roster, masked as any text from a file."""
    for r in rows:
        r[key] = mask_text(r.get(key) or "")
    return rows


@guarded("dashboard", api=True)
def dashboard(call: Call) -> Response:
    return JSONResponse(figures(call.conn, call.user, params.read_all(call.request, (params.NIGHT,))["night"]))


def _records(frame) -> list:
    if frame is None or not len(frame):
        return []
    return json.loads(frame.to_json(orient="records", force_ascii=False))


@guarded("access_log", api=True)
def access_log(call: Call) -> Response:
    f = params.read_all(call.request, params.ACCESS_FILTERS)
    log = audit.entries(call.conn, f["user"], f["since"], f["limit"] or 1000, f["offset"] or 0)
    return JSONResponse({"entries": json.loads(log.to_json(orient="records", force_ascii=False))})


async def openapi_json(request: Request) -> Response:
    """The API's OpenAPI document (public: pipeline.web.openapi says why)."""
    return JSONResponse(openapi.document())


ROUTES = [
    Route("/api/openapi.json", openapi_json),
    Route("/api/items", items_list),
    Route("/api/items/assign", items_assign, methods=["POST"]),
    Route("/api/items/disposition", items_bulk, methods=["POST"]),
    Route("/api/items/{item_id}", item_one),
    Route("/api/items/{item_id}/disposition", item_disposition, methods=["POST"]),
    Route("/api/items/{item_id}/review", item_review, methods=["POST"]),
    Route("/api/dashboard", dashboard),
    Route("/api/access-log", access_log),
]
